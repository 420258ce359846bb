"""Cell readers: text → typed value, with frictionless-py's exact rules.

Each type has a vectorised fast path (polars) for the common, clearly valid shapes, and an exact
Python reader (same rules as frictionless-py 5) applied once per distinct remaining value.
"""

from __future__ import annotations

import base64
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Callable

import polars as pl

DEFAULT_TRUE = ["true", "True", "TRUE", "1"]
DEFAULT_FALSE = ["false", "False", "FALSE", "0"]

DTYPES: dict[str, pl.DataType] = {
    "integer": pl.Int64, "number": pl.Float64, "boolean": pl.Boolean, "date": pl.Date,
    "datetime": pl.Datetime("us"), "time": pl.Time, "year": pl.Int64, "yearmonth": pl.Int64,
}

_BARE = re.compile(r"((^[^-\d]*)|(\D*$))")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S*$")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _fmt(field: dict) -> str:
    return field.get("format", "default") or "default"


def python_reader(field: dict) -> Callable[[str], tuple[bool, Any]]:
    """An exact reader: ``text -> (ok, value)`` (value in the polars representation of the type)."""
    ftype = field.get("type", "any")
    fmt = _fmt(field)

    if ftype in ("string", "any"):
        if ftype == "string" and fmt == "email":
            return lambda c: (bool(_EMAIL.match(c)), c)
        if ftype == "string" and fmt == "uri":
            return lambda c: (bool(_URI.match(c)), c)
        if ftype == "string" and fmt == "uuid":
            return lambda c: (bool(_UUID.match(c)), c)
        if ftype == "string" and fmt == "binary":
            def binary(c: str) -> tuple[bool, Any]:
                try:
                    base64.b64decode(c)
                except Exception:
                    return False, None
                return True, c
            return binary
        return lambda c: (True, c)

    if ftype == "integer":
        bare = field.get("bareNumber", True)

        def integer(c: str) -> tuple[bool, Any]:
            c = c.strip()
            if not bare:
                c = _BARE.sub("", c)
            try:
                v = int(c)
            except Exception:
                return False, None
            return True, v if -(2**127) <= v < 2**127 else None
        return integer

    if ftype == "number":
        group = field.get("groupChar", "")
        dec = field.get("decimalChar", ".")
        bare = field.get("bareNumber", True)
        processor = any(k in field for k in ("groupChar", "decimalChar", "bareNumber"))

        def number(c: str) -> tuple[bool, Any]:
            c = c.strip()
            if processor:
                if not bare:
                    c = _BARE.sub("", c)
                c = c.replace(group, "")
                if dec != "." and "." in c:
                    return False, None
                c = c.replace(dec, ".")
            try:
                return True, float(Decimal(c))
            except Exception:
                return False, None
        return number

    if ftype == "boolean":
        mapping = {v: True for v in field.get("trueValues", DEFAULT_TRUE)}
        mapping.update({v: False for v in field.get("falseValues", DEFAULT_FALSE)})

        def boolean(c: str) -> tuple[bool, Any]:
            v = mapping.get(c)
            return v is not None, v
        return boolean

    if ftype == "date":
        def pdate(c: str) -> tuple[bool, Any]:
            try:
                if fmt == "default":
                    return True, datetime.strptime(c, "%Y-%m-%d").date()
                if fmt == "any":
                    from dateutil import parser
                    return True, parser.parse(c).date()
                return True, datetime.strptime(c, fmt).date()
            except Exception:
                return False, None
        return pdate

    if ftype == "datetime":
        def pdatetime(c: str) -> tuple[bool, Any]:
            try:
                if fmt == "default":
                    from dateutil import parser
                    assert c[16] == ":"
                    assert len(c) >= 19
                    v = parser.isoparse(c)
                elif fmt == "any":
                    from dateutil import parser
                    v = parser.parse(c)
                else:
                    v = datetime.strptime(c, fmt)
            except Exception:
                return False, None
            if v.tzinfo is not None:
                from datetime import timezone
                v = v.astimezone(timezone.utc).replace(tzinfo=None)
            return True, v
        return pdatetime

    if ftype == "time":
        def ptime(c: str) -> tuple[bool, Any]:
            try:
                if fmt == "default":
                    from dateutil import parser
                    assert c[5] == ":"
                    assert len(c) >= 8
                    v = parser.isoparse(f"2000-01-01T{c}").time()
                elif fmt == "any":
                    from dateutil import parser
                    v = parser.parse(c).time()
                else:
                    v = datetime.strptime(c, fmt).time()
            except Exception:
                return False, None
            return True, v
        return ptime

    if ftype == "year":
        def year(c: str) -> tuple[bool, Any]:
            if len(c) != 4:
                return False, None
            try:
                v = int(c)
            except Exception:
                return False, None
            return (0 <= v <= 9999), (v if 0 <= v <= 9999 else None)
        return year

    if ftype == "yearmonth":
        def yearmonth(c: str) -> tuple[bool, Any]:
            parts = c.split("-")
            if len(parts) != 2:
                return False, None
            try:
                y, m = int(parts[0]), int(parts[1])
            except Exception:
                return False, None
            if y < 0 or y > 9999 or m < 1 or m > 12:
                return False, None
            return True, y * 100 + m
        return yearmonth

    if ftype in ("object", "array", "geojson"):
        import json

        want = {"object": dict, "geojson": dict, "array": list}[ftype]

        def pjson(c: str) -> tuple[bool, Any]:
            try:
                v = json.loads(c)
            except Exception:
                return False, None
            return isinstance(v, want), c
        return pjson

    if ftype == "geopoint":
        def geopoint(c: str) -> tuple[bool, Any]:
            try:
                if fmt == "default":
                    lon, lat = (Decimal(x.strip()) for x in c.split(","))
                elif fmt == "array":
                    import json
                    lon, lat = (Decimal(str(x)) for x in json.loads(c))
                else:
                    import json
                    d = json.loads(c)
                    lon, lat = Decimal(str(d["lon"])), Decimal(str(d["lat"]))
                ok = -180 <= lon <= 180 and -90 <= lat <= 90
            except Exception:
                return False, None
            return ok, c if ok else None
        return geopoint

    # list, duration: accepted as text (duration: ISO 8601 shape)
    if ftype == "duration":
        pat = re.compile(r"^-?P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
                         r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$")
        return lambda c: (bool(pat.match(c)), c)
    return lambda c: (True, c)


def fast_path(field: dict, raw: pl.Series) -> tuple[pl.Series, pl.Series] | None:
    """Vectorised (mask of surely-valid cells, their typed values), or None when the type has none."""
    ftype = field.get("type", "any")
    fmt = _fmt(field)
    if ftype == "integer" and field.get("bareNumber", True):
        mask = raw.str.contains(r"^-?[0-9]{1,18}$").fill_null(False)
        return mask, raw.cast(pl.Int64, strict=False)
    if ftype == "number" and not any(k in field for k in ("groupChar", "decimalChar", "bareNumber")):
        mask = raw.str.contains(r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$").fill_null(False)
        return mask, raw.cast(pl.Float64, strict=False)
    if ftype == "date" and fmt == "default":
        shape = raw.str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$").fill_null(False)
        val = raw.str.to_date("%Y-%m-%d", strict=False)
        return (shape & val.is_not_null()).fill_null(False), val
    if ftype == "year":
        mask = raw.str.contains(r"^[0-9]{4}$").fill_null(False)
        return mask, raw.cast(pl.Int64, strict=False)
    return None


def to_series(values: list, ftype: str) -> pl.Series:
    dtype = DTYPES.get(ftype, pl.Utf8)
    return pl.Series(values, dtype=dtype)


def read_constraint(field: dict, value: Any) -> Any:
    """A constraint value as the field reads it (frictionless: ``value_reader(constraint)``)."""
    ftype = field.get("type", "any")
    if ftype in ("integer",):
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        if isinstance(value, str):
            return python_reader(field)(value)[1]
        return None
    if ftype == "number":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return python_reader(field)(value)[1]
        return None
    if ftype == "year":
        if isinstance(value, int) and not isinstance(value, bool):
            return value if 0 <= value <= 9999 else None
        if isinstance(value, str):
            return python_reader(field)(value)[1]
        return None
    if ftype == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return python_reader(field)(value)[1]
        return None
    if isinstance(value, str):
        ok, v = python_reader(field)(value)
        return v if ok else None
    if ftype in ("string", "any"):
        return value if isinstance(value, str) else None
    return None


def is_date_like(v: Any) -> bool:
    return isinstance(v, (date, datetime, time))
