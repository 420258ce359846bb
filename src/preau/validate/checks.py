"""French code checks, vectorised with polars, following :mod:`preau.codes`.

Used from a schema with the custom field property ``"preau:check"`` (ignored by frictionless; the
plain ``pattern`` beside it lets frictionless check the shape). Each check returns a boolean Series:
True where the (non-missing) value is a valid code.
"""

from __future__ import annotations

import polars as pl

from preau import codes
from preau.i18n import Text

UAI_LETTERS = pl.Series(list(codes.UAI_ALPHABET), dtype=pl.Utf8)


def check_uai(s: pl.Series) -> pl.Series:
    """7 digits + the right check letter (``N mod 23`` on the alphabet without I, O, Q)."""
    shape = s.str.contains(r"^[0-9]{7}[A-Z]$")
    num = pl.Series(s.str.slice(0, 7)).cast(pl.Int64, strict=False)
    letter = (num % 23).fill_null(0).cast(pl.UInt32)
    expected = UAI_LETTERS.gather(letter)
    return (shape & (s.str.slice(7, 1) == expected)).fill_null(False)


def check_insee(s: pl.Series) -> pl.Series:
    """INSEE commune code: 5 digits, or 2A/2B + 3 digits (text, leading zeros kept)."""
    return s.str.contains(codes.INSEE_PATTERN).fill_null(False)


def check_school_year(s: pl.Series) -> pl.Series:
    """``AAAA-AAAA`` where the second year is the first plus one."""
    shape = s.str.contains(r"^[0-9]{4}-[0-9]{4}$").fill_null(False)
    a = s.str.slice(0, 4).cast(pl.Int64, strict=False)
    b = s.str.slice(5, 4).cast(pl.Int64, strict=False)
    return (shape & (b == a + 1)).fill_null(False)


def check_level(s: pl.Series) -> pl.Series:
    """A premier-degré level code: TPS PS MS GS CP CE1 CE2 CM1 CM2 ULIS."""
    return s.is_in(list(codes.ALL_LEVELS)).fill_null(False)


CHECKS = {
    "uai": check_uai,
    "insee": check_insee,
    "annee_scolaire": check_school_year,
    "niveau": check_level,
}

DESCRIPTIONS = {
    "uai": Text("code UAI (7 chiffres et une lettre clé correcte)", "UAI code (7 digits and the right check letter)"),
    "insee": Text("code commune INSEE (5 caractères, 2A/2B pour la Corse)",
                  "INSEE commune code (5 characters, 2A/2B for Corsica)"),
    "annee_scolaire": Text("année scolaire AAAA-AAAA (deux années consécutives)",
                           "school year YYYY-YYYY (two consecutive years)"),
    "niveau": Text("code de niveau (" + " ".join(codes.ALL_LEVELS) + ")",
                   "level code (" + " ".join(codes.ALL_LEVELS) + ")"),
}


def run_check(spec: str | dict, s: pl.Series) -> pl.Series:
    """Apply a ``preau:check`` spec to a Utf8 Series (values listed in ``except`` always pass)."""
    name = spec.get("name") if isinstance(spec, dict) else spec
    ok = CHECKS[name](s)
    allowed = spec.get("except") if isinstance(spec, dict) else None
    if allowed:
        ok = ok | s.is_in([str(v) for v in allowed]).fill_null(False)
    return ok


def check_label(spec: str | dict) -> str:
    name = spec.get("name") if isinstance(spec, dict) else spec
    return str(name)
