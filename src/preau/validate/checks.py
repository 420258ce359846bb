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

# Each check is a polars expression over a Utf8 expression, so that all columns' checks can run in
# one query (polars evaluates the expressions of a ``select`` in parallel).


def uai_expr(e: pl.Expr) -> pl.Expr:
    """7 digits + the right check letter (``N mod 23`` on the alphabet without I, O, Q)."""
    shape = e.str.contains(r"^[0-9]{7}[A-Z]$")
    num = e.str.slice(0, 7).cast(pl.Int64, strict=False)
    expected = pl.lit(codes.UAI_ALPHABET).str.slice((num % 23).fill_null(0), 1)
    return (shape & (e.str.slice(7, 1) == expected)).fill_null(False)


def insee_expr(e: pl.Expr) -> pl.Expr:
    """INSEE commune code: 5 digits, or 2A/2B + 3 digits (text, leading zeros kept)."""
    return e.str.contains(codes.INSEE_PATTERN).fill_null(False)


def school_year_expr(e: pl.Expr) -> pl.Expr:
    """``AAAA-AAAA`` where the second year is the first plus one."""
    shape = e.str.contains(r"^[0-9]{4}-[0-9]{4}$").fill_null(False)
    a = e.str.slice(0, 4).cast(pl.Int64, strict=False)
    b = e.str.slice(5, 4).cast(pl.Int64, strict=False)
    return (shape & (b == a + 1)).fill_null(False)


def level_expr(e: pl.Expr) -> pl.Expr:
    """A premier-degré level code: TPS PS MS GS CP CE1 CE2 CM1 CM2 ULIS."""
    return e.is_in(list(codes.ALL_LEVELS)).fill_null(False)


EXPRS = {
    "uai": uai_expr,
    "insee": insee_expr,
    "annee_scolaire": school_year_expr,
    "niveau": level_expr,
}


def _on_series(expr_of):
    def run(s: pl.Series) -> pl.Series:
        return pl.DataFrame({"s": s}).select(expr_of(pl.col("s")).alias("ok")).get_column("ok")
    run.__doc__ = expr_of.__doc__
    return run


check_uai = _on_series(uai_expr)
check_insee = _on_series(insee_expr)
check_school_year = _on_series(school_year_expr)
check_level = _on_series(level_expr)

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


def check_expr(spec: str | dict, e: pl.Expr) -> pl.Expr:
    """A ``preau:check`` spec as an expression over a Utf8 expression (values in ``except``, and values
    matching the regular expression ``except_pattern`` — e.g. département subtotal rows — always pass)."""
    name = spec.get("name") if isinstance(spec, dict) else spec
    ok = EXPRS[name](e)
    allowed = spec.get("except") if isinstance(spec, dict) else None
    if allowed:
        ok = ok | e.is_in([str(v) for v in allowed]).fill_null(False)
    pattern = spec.get("except_pattern") if isinstance(spec, dict) else None
    if pattern:
        ok = ok | e.str.contains(f"^(?:{pattern})$").fill_null(False)
    return ok


def same_as_pattern(spec: str | dict, pattern: str) -> bool:
    """True when a check accepts exactly the cells a Table Schema ``pattern`` accepts (the INSEE check
    is a regular expression: with the same ``pattern`` beside it, one regex pass gives both)."""
    if isinstance(spec, dict) and (spec.get("except") or spec.get("except_pattern")):
        return False
    return check_label(spec) == "insee" and pattern.removeprefix("^").removesuffix("$") == \
        codes.INSEE_PATTERN.removeprefix("^").removesuffix("$")


def run_check(spec: str | dict, s: pl.Series) -> pl.Series:
    """Apply a ``preau:check`` spec to a Utf8 Series (values listed in ``except`` always pass)."""
    return pl.DataFrame({"s": s}).select(check_expr(spec, pl.col("s")).alias("ok")).get_column("ok")


def check_label(spec: str | dict) -> str:
    name = spec.get("name") if isinstance(spec, dict) else spec
    return str(name)
