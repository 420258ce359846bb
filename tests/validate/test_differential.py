"""Differential tests: Préau's findings equal frictionless-py's, error for error.

hypothesis writes dirty CSV files (wrong types, broken constraints, duplicate keys, ragged rows,
blank rows, quoted cells with commas / quotes / line breaks, CRLF, altered headers) against a few
schemas; both validators run on the same file; the lists of errors (type, row, field name, field
number and note, in order) must be equal.

Where they must differ, the test says why:
* Préau's French code checks (``preau:check``: UAI check letter, INSEE, school year, level) are an
  extension frictionless ignores: Préau reports them as extra ``constraint-error``s with the note
  ``constraint "preau:check" is "…"``; removing those, the lists are equal.
* frictionless stops at 1,000 errors by default (``DEFAULT_LIMIT_ERRORS``): we call it with
  ``limit_errors=0`` (no cap) so both reports are complete; ``test_no_error_cap`` shows the cap.
* frictionless sniffs the CSV dialect and guesses which row is the header (the first row whose width
  is close to the sample's average); Préau's contract is UTF-8, comma, header on row 1, so
  frictionless gets that dialect explicitly (its guesses change on a dirty sample, e.g. after a
  blank line).
"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from preau.codes import make_uai
from preau.validate import engine, validate_table


@pytest.fixture(autouse=True, params=["never", "always"])
def distinct_mode(request, monkeypatch):
    """Every comparison runs twice: cells checked one by one, and once per distinct value (the path
    large columns with few distinct values take), so both paths must equal frictionless."""
    monkeypatch.setattr(engine, "DISTINCT_MODE", request.param)
    return request.param


SCHEMA_A = {
    "fields": [
        {"name": "id", "type": "integer", "constraints": {"required": True, "unique": True, "minimum": 1}},
        {"name": "nom", "type": "string", "constraints": {"pattern": "[a-z]+", "maxLength": 4}},
        {"name": "score", "type": "number", "constraints": {"minimum": 0, "maximum": 100}},
        {"name": "ok", "type": "boolean"},
        {"name": "jour", "type": "date", "constraints": {"minimum": "2020-01-01"}},
        {"name": "an", "type": "year", "constraints": {"enum": [2024, 2025]}},
    ],
    "primaryKey": ["id"],
}
SCHEMA_B = {
    "fields": [
        {"name": "a", "type": "string", "constraints": {"enum": ["x", "y", "z"], "required": True}},
        {"name": "b", "type": "integer", "constraints": {"minimum": 1, "maximum": 9}},
        {"name": "c", "type": "string", "constraints": {"minLength": 2, "required": True}},
        {"name": "d", "type": "integer", "constraints": {"maximum": 5}},
    ],
    "primaryKey": ["a", "b"],
    "foreignKeys": [{"fields": ["d"], "reference": {"resource": "", "fields": ["b"]}}],
    "missingValues": ["", "NA"],
}
U1, U2 = make_uai(650012), make_uai(650113)
BAD_UAI = U1[:7] + ("A" if U1[7] != "A" else "B")
SCHEMA_C = {
    "fields": [
        {"name": "annee_scolaire", "type": "string", "constraints": {"required": True, "pattern": r"\d{4}-\d{4}"},
         "preau:check": "annee_scolaire"},
        {"name": "uai", "type": "string", "constraints": {"required": True, "pattern": r"(\d{7}[A-Z]|TOTAL)"},
         "preau:check": {"name": "uai", "except": ["TOTAL"]}},
        {"name": "niveau", "type": "string", "constraints": {"enum": ["CP", "CE1", "XX", "TOTAL"]},
         "preau:check": {"name": "niveau", "except": ["TOTAL"]}},
        {"name": "effectif", "type": "integer", "constraints": {"minimum": 0}},
        {"name": "secret", "type": "boolean", "constraints": {"required": True}},
    ],
    "primaryKey": ["annee_scolaire", "uai", "niveau"],
}

TOKENS = {
    "integer": ["1", "2", "3", "7", "10", "-4", "0", "01", " 5", "+3", "1_000", "x", "1.5", "", "9" * 20, "٣"],
    "number": ["0", "1.5", "100", "100.5", "-1", "1e2", "NaN", "inf", " 3 ", "abc", "", ".5", "1,5"],
    "string": ["ab", "abcd", "abcde", "Zz", "a1", "", "x", "y", "z", "a,b", 'q"q', "li\nne", "é", " ab"],
    "boolean": ["true", "false", "True", "FALSE", "1", "0", "yes", "", "vrai"],
    "date": ["2024-01-31", "2019-12-31", "2024-02-30", "2024-1-5", "31/01/2024", "", "2024-01-31T00:00"],
    "year": ["2024", "2025", "2023", "24", "20245", "", "abcd", " 202"],
}
C_TOKENS = {
    "annee_scolaire": ["2025-2026", "2024-2025", "2024-2026", "2025/2026", "", "TOTAL"],
    "uai": [U1, U2, BAD_UAI, "TOTAL", "065001", "", "0650012a"],
    "niveau": ["CP", "CE1", "XX", "TOTAL", "cp", ""],
    "effectif": ["0", "5", "-1", "", "x"],
    "secret": ["true", "false", "", "oui"],
}


def _cells(schema: dict, draw, tokens_for) -> list[str]:
    return [draw(st.sampled_from(tokens_for(f))) for f in schema["fields"]]


@st.composite
def dirty_csv(draw, schema: dict, tokens_for) -> str:
    names = [f["name"] for f in schema["fields"]]
    header = list(names)
    hmode = draw(st.sampled_from(["ok"] * 6 + ["rename", "dup", "blank", "missing", "extra", "case"]))
    if hmode == "rename":
        header[draw(st.integers(0, len(header) - 1))] = "autre"
    elif hmode == "dup":
        header[-1] = header[0]
    elif hmode == "blank":
        header[draw(st.integers(0, len(header) - 1))] = ""
    elif hmode == "missing":
        header = header[:-1]
    elif hmode == "extra":
        header = header + ["bonus"]
    elif hmode == "case":
        header[0] = header[0].upper()
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["row"] * 8 + ["short", "long", "blank", "commas"]))
        cells = _cells(schema, draw, tokens_for)
        if kind == "short":
            cells = cells[: draw(st.integers(1, len(cells) - 1))]
        elif kind == "long":
            cells = cells + ["plus"] * draw(st.integers(1, 2))
        elif kind == "blank":
            cells = None
        elif kind == "commas":
            cells = [""] * len(names)
        rows.append(cells)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(header)
    text = buf.getvalue()
    for cells in rows:
        if cells is None:
            text += newline
        else:
            b = io.StringIO()
            csv.writer(b, lineterminator=newline).writerow(cells)
            text += b.getvalue()
    return text


def _compare(fl, tmp_path, text: str, schema: dict, drop_preau_checks: bool = False) -> None:
    p = tmp_path / "dirty.csv"
    p.write_bytes(text.encode("utf-8"))
    theirs, _ = fl.errors(p, schema)
    ours = validate_table(p, schema).to_frictionless_dict()
    mine = [e for t in ours["tasks"] for e in t["errors"]]
    if drop_preau_checks:
        # Préau-only French code checks: frictionless ignores "preau:check" (documented difference).
        mine = [e for e in mine if 'constraint "preau:check"' not in e.get("note", "")]
    assert [fl.key(e) for e in mine] == [fl.key(e) for e in theirs], text


SETTINGS = settings(max_examples=int(__import__("os").environ.get("PREAU_DIFF_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_schema_a_same_errors(fl, tmp_path, data):
    text = data.draw(dirty_csv(SCHEMA_A, lambda f: TOKENS[f["type"]]))
    _compare(fl, tmp_path, text, SCHEMA_A)


@SETTINGS
@given(data=st.data())
def test_schema_b_same_errors_with_self_foreign_key_and_missing_values(fl, tmp_path, data):
    def tokens(f):
        return (["x", "y", "z", "w", "", "NA"] if f["name"] == "a" else TOKENS[f["type"]] + ["NA"])
    text = data.draw(dirty_csv(SCHEMA_B, tokens))
    _compare(fl, tmp_path, text, SCHEMA_B)


@SETTINGS
@given(data=st.data())
def test_french_code_checks_are_the_only_difference(fl, tmp_path, data):
    text = data.draw(dirty_csv(SCHEMA_C, lambda f: C_TOKENS[f["name"]]))
    _compare(fl, tmp_path, text, SCHEMA_C, drop_preau_checks=True)


def test_french_code_checks_find_what_frictionless_cannot(fl, tmp_path):
    text = ("annee_scolaire,uai,niveau,effectif,secret\n"
            f"2024-2026,{BAD_UAI},XX,3,false\n"
            f"2025-2026,{U1},CP,3,false\n")
    p = tmp_path / "codes.csv"
    p.write_text(text, encoding="utf-8")
    theirs, _ = fl.errors(p, SCHEMA_C)
    assert theirs == []  # the shape is right: frictionless sees nothing wrong
    mine = validate_table(p, SCHEMA_C).tasks[0].errors
    assert [(e["rowNumber"], e["fieldName"], e["note"]) for e in mine] == [
        (2, "annee_scolaire", 'constraint "preau:check" is "annee_scolaire"'),
        (2, "uai", 'constraint "preau:check" is "uai"'),
        (2, "niveau", 'constraint "preau:check" is "niveau"'),
    ]


def test_no_error_cap(fl, tmp_path):
    """frictionless cuts its default report at 1,000 errors; Préau's report is complete."""
    rows = "".join(f"{i},x\n" for i in range(1, 1501))
    p = tmp_path / "many.csv"
    p.write_text("id,n\n" + rows, encoding="utf-8")
    schema = {"fields": [{"name": "id", "type": "integer"}, {"name": "n", "type": "integer"}]}
    capped, desc = fl.errors(p, schema, limit_errors=1000)
    full, _ = fl.errors(p, schema)
    ours = validate_table(p, schema)
    assert len(capped) == 1000 and any("error limit" in w for t in desc["tasks"] for w in t["warnings"])
    assert len(full) == 1500
    assert ours.error_count == 1500
    assert [fl.key(e) for e in ours.tasks[0].errors] == [fl.key(e) for e in full]


SCHEMA_D = {
    "fields": [
        # no minimum here: frictionless-py crashes (TypeError) comparing an aware datetime with a naive bound
        {"name": "quand", "type": "datetime"},
        {"name": "heure", "type": "time"},
        {"name": "mois", "type": "yearmonth"},
        {"name": "montant", "type": "number", "groupChar": " ", "decimalChar": ",", "constraints": {"maximum": 1000}},
        {"name": "brut", "type": "integer", "bareNumber": False, "constraints": {"enum": [5, 10]}},
        {"name": "jour", "type": "date", "format": "%d/%m/%Y"},
        {"name": "oui", "type": "boolean", "trueValues": ["oui"], "falseValues": ["non"]},
    ],
}
D_TOKENS = {
    "quand": ["2024-01-31T10:00:00", "2019-05-01T00:00:00", "2024-01-31T10:00:00Z", "2024-01-31", "x",
              "2024-01-31T10:00:00+02:00", "2024-01-31 10:00:00", ""],
    "heure": ["10:00:00", "25:00:00", "10:00", "x", ""],
    "mois": ["2024-01", "2024-13", "2024", "x", ""],
    "montant": ["1 000,5", "999,9", "12.5", "x", "", "-3"],
    "brut": ["5", "10 €", "€5", "7", "x", ""],
    "jour": ["31/01/2024", "2024-01-31", "31/02/2024", ""],
    "oui": ["oui", "non", "true", ""],
}


@SETTINGS
@given(data=st.data())
def test_other_types_and_formats_same_errors(fl, tmp_path, data):
    text = data.draw(dirty_csv(SCHEMA_D, lambda f: D_TOKENS[f["name"]]))
    _compare(fl, tmp_path, text, SCHEMA_D)
