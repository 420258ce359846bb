"""French school codes: UAI, INSEE commune codes, school years, levels and cycles.

This module sits below every stage (ingest, tables, validate, geo…) so each can use the same rules.
"""

from __future__ import annotations

import re

# UAI check letter: N mod 23 on the alphabet without I, O and Q.
UAI_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ"
_UAI_RE = re.compile(r"^(\d{7})([A-Z])$")
_INSEE_RE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_YEAR_RE = re.compile(r"^(\d{4})-(\d{4})$")

# Levels of the premier degré, in school order, with their cycle and normal age at the start of year.
LEVELS = ("TPS", "PS", "MS", "GS", "CP", "CE1", "CE2", "CM1", "CM2")
ULIS = "ULIS"
ALL_LEVELS = LEVELS + (ULIS,)
CYCLE = {"TPS": "C1", "PS": "C1", "MS": "C1", "GS": "C1", "CP": "C2", "CE1": "C2", "CE2": "C2",
         "CM1": "C3", "CM2": "C3", "ULIS": "ULIS"}
# Age a pupil turns during the calendar year in which the school year starts (CP: 6).
NORMAL_AGE = {"TPS": 2, "PS": 3, "MS": 4, "GS": 5, "CP": 6, "CE1": 7, "CE2": 8, "CM1": 9, "CM2": 10}
PRE_ELEMENTARY = ("TPS", "PS", "MS", "GS")
ELEMENTARY = ("CP", "CE1", "CE2", "CM1", "CM2")


def uai_check_letter(digits: str | int) -> str:
    """Check letter of a UAI from its 7 leading digits (``"0750654"`` → ``"D"``)."""
    return UAI_ALPHABET[int(digits) % 23]


def make_uai(number: int) -> str:
    """A UAI from a number below 10,000,000, with its check letter."""
    digits = f"{number:07d}"
    return digits + uai_check_letter(digits)


def is_valid_uai(code: object) -> bool:
    """True when ``code`` is 7 digits followed by the right check letter."""
    if not isinstance(code, str):
        return False
    m = _UAI_RE.match(code)
    return bool(m) and uai_check_letter(m.group(1)) == m.group(2)


def uai_departement(uai: str) -> str:
    """Département of a UAI (``0650012A`` → ``65``; Corsica ``620…`` → ``2A``, ``720…`` → ``2B``)."""
    head = uai[:3]
    if head == "620":
        return "2A"
    if head == "720":
        return "2B"
    if head.startswith("9"):  # overseas: 971…976
        return head
    return head[1:]


def is_valid_insee(code: object) -> bool:
    """INSEE commune code: 5 characters, digits, or 2A/2B followed by 3 digits (always text)."""
    return isinstance(code, str) and bool(_INSEE_RE.match(code))


def insee_departement(code: str) -> str:
    return code[:3] if code.startswith("97") else code[:2]


def insee_departement_expr(insee):
    """:func:`insee_departement` as a polars expression over a column of INSEE codes."""
    import polars as pl

    return pl.when(insee.str.starts_with("97")).then(insee.str.slice(0, 3)).otherwise(insee.str.slice(0, 2))


def is_valid_school_year(value: object) -> bool:
    """``AAAA-AAAA`` where the second year is the first plus one."""
    if not isinstance(value, str):
        return False
    m = _YEAR_RE.match(value)
    return bool(m) and int(m.group(2)) == int(m.group(1)) + 1


def school_year(start: int) -> str:
    return f"{start}-{start + 1}"


def school_year_start(value: str) -> int:
    return int(value[:4])


def normal_birth_year(level: str, year_start: int) -> int | None:
    """Birth year of a pupil at the normal age for ``level`` in the school year starting ``year_start``."""
    age = NORMAL_AGE.get(level)
    return None if age is None else year_start - age


UAI_PATTERN = r"^\d{7}[A-Z]$"
INSEE_PATTERN = r"^(\d{5}|2[AB]\d{3})$"
SCHOOL_YEAR_PATTERN = r"^\d{4}-\d{4}$"
