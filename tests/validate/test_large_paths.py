"""The validator's large-file paths give frictionless' findings, error for error.

Files of a few thousand rows take paths that small corpora never reach: only the checked columns
are read (the others come from the line for the rows a report shows), ragged rows are located by
byte arithmetic, duplicate keys are pre-filtered by hashes. Generated data only (random tokens).
"""

from __future__ import annotations

import random

import pytest

from preau.validate import validate_table
from preau.validate.reader import read_csv_bytes, read_csv_text

SCHEMA = {
    "fields": [
        {"name": "id", "type": "string", "constraints": {"required": True}},
        {"name": "label", "type": "string"},
        {"name": "n", "type": "integer", "constraints": {"unique": True, "minimum": 0}},
        {"name": "note", "type": "string"},
        {"name": "code", "type": "string", "constraints": {"pattern": "[A-Z]{3}"}},
        {"name": "free", "type": "string"},
    ],
    "primaryKey": ["id", "code"],
}


def _token(rng: random.Random, k: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(k))


def _dirty(rng: random.Random, rows: int, eol: str) -> str:
    lines = ["id,label,n,note,code,free"]
    for i in range(rows):
        cells = [f"ID{i:06d}", _token(rng, 5), str(i), _token(rng, 4), _token(rng, 3), _token(rng, 2)]
        r = rng.random()
        if r < 0.004:
            cells = cells[: rng.randint(1, 5)]  # short row: missing cells
        elif r < 0.006:
            cells[1] = '"' + cells[1] + '"'  # quoted cell (re-read with the csv module)
        elif r < 0.008:
            cells[3] = '""'  # quoted empty cell
        elif r < 0.011:
            cells[0] = f"ID{rng.randrange(max(i, 1)):06d}"  # maybe a duplicate key
            cells[4] = "AAA"
        elif r < 0.013:
            cells[2] = str(rng.randrange(max(i, 1)))  # duplicate value of a unique field
        elif r < 0.015:
            cells[4] = "ab"  # pattern error
        elif r < 0.016:
            cells = ["", "", "", "", "", ""]  # blank row
        elif r < 0.017:
            cells = ["", "", "", "x", "", ""]  # blank in the checked columns only
        elif r < 0.018:
            cells[-1] = ""  # empty last cell (a short-row candidate that is not short)
        lines.append(",".join(cells))
    return eol.join(lines) + eol


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_large_file_same_errors_as_frictionless(fl, tmp_path, eol):
    rng = random.Random(len(eol))
    p = tmp_path / "large.csv"
    p.write_bytes(_dirty(rng, 12_000, eol).encode("utf-8"))
    theirs, _ = fl.errors(p, SCHEMA)
    mine = [e for t in validate_table(p, SCHEMA).to_frictionless_dict()["tasks"] for e in t["errors"]]
    assert {e["type"] for e in theirs} >= {"missing-cell", "primary-key", "unique-error", "constraint-error",
                                           "blank-row"}
    assert [fl.key(e) for e in mine] == [fl.key(e) for e in theirs]
    # the report shows every cell of a row, also those of columns not read
    by_row = {(e["type"], e.get("rowNumber")): e.get("cells") for e in theirs}
    for e in mine:
        assert e.get("cells") == by_row[(e["type"], e.get("rowNumber"))]


def test_projected_read_equals_full_read():
    rng = random.Random(3)
    text = _dirty(rng, 3_000, "\n")
    full = read_csv_text(text, delimiter=",", quotechar='"', header=True)
    part = read_csv_bytes(text.encode("utf-8"), needed={2, 4})
    assert part.lazy == {0, 1, 3}  # the last column is always read
    assert part.labels == full.labels
    cols = [c for c in full.frame.columns if c in part.frame.columns]
    assert part.frame.equals(full.frame.select(cols))
    wanted = list(range(2, full.frame.height + 2, 3)) + [full.frame.height + 1, 5, 2]  # unsorted, repeats
    many = part.records(wanted)  # one walk over the lines
    for row, n in full.frame.select("__row", "__n").iter_rows():
        expected = [v for v in full.frame.row(row - 2)[: min(n, 6)]] + full.extra.get(row, [])
        assert part.record(row) == expected
        assert many.get(row, expected) == expected
    assert set(many) == set(wanted)


LOW_CARD_SCHEMA = {
    "fields": [
        {"name": "id", "type": "string", "constraints": {"required": True}},
        {"name": "annee", "type": "string", "constraints": {"required": True, "pattern": r"\d{4}-\d{4}"},
         "preau:check": "annee_scolaire"},
        {"name": "niveau", "type": "string", "constraints": {"enum": ["CP", "CE1", "CE2"]}},
        {"name": "jour", "type": "date", "constraints": {"minimum": "2015-01-01"}},
        {"name": "ok", "type": "boolean"},
        {"name": "nombre", "type": "integer", "constraints": {"minimum": 0, "maximum": 30}},
        {"name": "code", "type": "string", "constraints": {"pattern": "[A-Z]{4}"}},
    ],
    "primaryKey": ["id"],
}


def test_few_distinct_values_path_same_errors_as_frictionless(fl, tmp_path):
    """Columns with few distinct values are checked once per value, then mapped back to the rows."""
    from preau.validate import engine

    rng = random.Random(11)
    lines = ["id,annee,niveau,jour,ok,nombre,code"]
    for i in range(12_000):
        cells = [f"E{i:06d}", "2025-2026", rng.choice(["CP", "CE1", "CE2"]),
                 f"2016-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", rng.choice(["true", "false"]),
                 str(rng.randint(0, 30)), _token(rng, 4)]
        r = rng.random()
        if r < 0.002:
            cells[1] = rng.choice(["2025-2027", "2025/2026", ""])
        elif r < 0.004:
            cells[2] = rng.choice(["CM3", ""])
        elif r < 0.006:
            cells[3] = rng.choice(["2016-02-30", "2014-05-01", "01/02/2016"])
        elif r < 0.008:
            cells[4] = "oui"
        elif r < 0.010:
            cells[5] = rng.choice(["31", "-1", "x"])
        elif r < 0.011:
            cells[6] = "ab1"
        elif r < 0.012:
            cells = cells[:4]
        lines.append(",".join(cells))
    p = tmp_path / "low.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw = read_csv_bytes(p.read_bytes())
    few = [j for j in range(1, 6) if engine._few_distinct(raw.frame.get_column(f"c{j}"))]
    assert few == [1, 2, 3, 4, 5] and not engine._few_distinct(raw.frame.get_column("c6"))
    theirs, _ = fl.errors(p, LOW_CARD_SCHEMA)
    mine = [e for e in validate_table(p, LOW_CARD_SCHEMA).tasks[0].errors
            if 'constraint "preau:check"' not in e["note"]]
    assert {e["type"] for e in theirs} >= {"type-error", "constraint-error", "missing-cell"}
    assert [fl.key(e) for e in mine] == [fl.key(e) for e in theirs]
