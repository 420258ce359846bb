"""Shared helpers for the validator tests: run frictionless-py and Préau on the same file."""

from __future__ import annotations

from pathlib import Path

import pytest


def frictionless_errors(path: Path, schema: dict, *, limit_errors: int = 0) -> tuple[list[dict], dict]:
    """frictionless-py's errors for a UTF-8, comma-separated CSV (dialect given: no sniffing surprises)."""
    from frictionless import Dialect, Resource, Schema, formats

    control = formats.CsvControl(delimiter=",", quote_char='"', double_quote=True, skip_initial_space=False)
    resource = Resource(path=path.name, basepath=str(path.parent), schema=Schema.from_descriptor(schema), encoding="utf-8",
                        format="csv", dialect=Dialect(header_rows=[1], controls=[control]))
    report = resource.validate(limit_errors=limit_errors)
    d = report.to_descriptor()
    return [e for t in d.get("tasks", []) for e in t.get("errors", [])] + list(d.get("errors", [])), d


def key(e: dict, with_note: bool = True) -> tuple:
    return (e["type"], e.get("rowNumber"), e.get("fieldName"), e.get("fieldNumber"),
            e.get("note") if with_note and e["type"] != "foreign-key" else None)


@pytest.fixture
def tmp_csv(tmp_path):
    def write(text: str | bytes, name: str = "data.csv") -> Path:
        p = tmp_path / name
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_bytes(text.encode("utf-8"))
        return p
    return write


@pytest.fixture(scope="session")
def fl():
    """frictionless helpers as a fixture (test modules here are not a package)."""
    class _NS:
        errors = staticmethod(frictionless_errors)
        key = staticmethod(key)
    return _NS
