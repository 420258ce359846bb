"""Préau's validator on malformed inputs, privacy, French checks, packages, CLI and renderings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from preau.codes import make_uai
from preau.errors import PreauError
from preau.validate import validate_package, validate_table

ROOT = Path(__file__).resolve().parents[2]
PREAU = str(Path(sys.executable).with_name("preau"))
U1, U2 = make_uai(650012), make_uai(650113)
BAD_UAI = U1[:7] + ("A" if U1[7] != "A" else "B")
SIMPLE = {"fields": [{"name": "id", "type": "integer", "constraints": {"required": True}},
                     {"name": "nom", "type": "string"}, {"name": "n", "type": "integer"}]}


def errors(report) -> list[tuple]:
    return [(e["type"], e.get("rowNumber"), e.get("fieldName")) for t in report.tasks for e in t.errors]


def types(report) -> list[str]:
    return [e["type"] for e in report.flat_errors()]


# --- malformed CSV files: clear errors in the report, never a traceback ---------------------------

def test_ragged_rows(tmp_csv):
    r = validate_table(tmp_csv("id,nom,n\n1,a\n2,b,3,4\n3,c,5\n"), SIMPLE)
    assert errors(r) == [("missing-cell", 2, "n"), ("extra-cell", 3, "")]
    assert "moins de valeurs" in r.render("fr") and "fewer values" in r.render("en")


def test_bad_quoting_spanning_lines_and_unbalanced(tmp_csv):
    ok = validate_table(tmp_csv('id,nom,n\n1,"a, ""b""\nsuite",2\n3,c,4\n'), SIMPLE)
    assert ok.valid and ok.tasks[0].stats["rows"] == 2
    bad = validate_table(tmp_csv('id,nom,n\n1,"jamais fermé,2\n3,c,4\n'), SIMPLE)
    assert not bad.valid  # the rest of the file is one cell: the row is ragged, reported as such
    assert "missing-cell" in types(bad)


def test_bom_is_ignored_with_a_warning(tmp_csv):
    r = validate_table(tmp_csv(b"\xef\xbb\xbfid,nom,n\n1,a,2\n"), SIMPLE)
    assert r.valid
    assert "BOM" in r.render("fr")


def test_mixed_line_endings(tmp_csv):
    r = validate_table(tmp_csv("id,nom,n\r\n1,a,2\n2,b,x\r3,c,4\r\n"), SIMPLE)
    assert errors(r) == [("type-error", 3, "n")]
    assert "fins de ligne" in r.render("fr")


def test_cp1252_given_as_utf8(tmp_csv):
    r = validate_table(tmp_csv("id,nom,n\n1,élève,2\n".encode("cp1252")), SIMPLE)
    assert types(r) == ["encoding-error"]
    text = r.render("fr")
    assert "UTF-8" in text and "ligne 2" in text and "Windows-1252" in text


def test_empty_and_binary_files(tmp_csv):
    assert types(validate_table(tmp_csv(b""), SIMPLE)) == ["source-error"]
    assert types(validate_table(tmp_csv(bytes(range(256)) * 4), SIMPLE)) == ["source-error"]
    assert "binaire" in validate_table(tmp_csv(b"PK\x03\x04\x00\x00"), SIMPLE).render("fr")


def test_header_errors(tmp_csv):
    r = validate_table(tmp_csv("id,id,\n1,2,3\n"), SIMPLE)
    assert [(e["type"], e["fieldNumber"]) for e in r.tasks[0].errors] == [
        ("duplicate-label", 2), ("blank-label", 3)]


def test_missing_file_and_schema_raise_usage_errors(tmp_path, tmp_csv):
    with pytest.raises(PreauError):
        validate_table(tmp_path / "absent.csv", SIMPLE)
    with pytest.raises(PreauError):
        validate_table(tmp_csv("id\n1\n"), "pas-un-schema")


# --- malformed schemas ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,needle", [
    ('{"fields": [', "JSON"),
    ('{"fields": [{"name": "a", "type": "entier"}]}', "entier"),
    ('{"fields": [{"name": "a", "constraints": {"pattern": "(["}}]}', "pattern"),
    ('{"fields": [{"name": "a"}], "primaryKey": ["b"]}', "clé primaire"),
    ('{"fields": [{"name": "a", "preau:check": "siret"}]}', "siret"),
    ('[1, 2]', "objet"),
])
def test_malformed_schema(tmp_path, tmp_csv, text, needle):
    schema = tmp_path / "schema.json"
    schema.write_text(text, encoding="utf-8")
    r = validate_table(tmp_csv("a\n1\n"), schema)
    assert not r.valid and set(types(r)) == {"schema-error"}
    assert needle in r.render("fr")


# --- French code checks ---------------------------------------------------------------------------

def test_french_checks_in_a_real_schema(tmp_csv):
    header = "annee_scolaire,code_insee,nom_commune,niveau,effectif,secret\n"
    rows = ("2025-2026,2A004,Ajaccio,CP,3,false\n"
            "2025-2027,65440,Tarbes,CP,3,false\n"
            "2025-2026,6544,Tarbes,CP,3,false\n"
            "2025-2026,TOTAL,TOTAL,C2,,true\n"
            "2025-2026,65440,Tarbes,CM3,-1,peut-être\n")
    r = validate_table(tmp_csv(header + rows), "effectifs-commune-niveau")
    found = [(e["rowNumber"], e["fieldName"], e["note"]) for e in r.tasks[0].errors]
    assert (3, "annee_scolaire", 'constraint "preau:check" is "annee_scolaire"') in found
    assert any(row == 4 and f == "code_insee" for row, f, _ in found)
    assert all(row != 2 and row != 5 for row, _, _ in found)  # 2A and TOTAL / C2 margins are fine
    assert [e["type"] for e in r.tasks[0].errors if e["rowNumber"] == 6] == [
        "constraint-error", "constraint-error", "constraint-error", "type-error"]


def test_uai_check_letter(tmp_csv):
    schema = {"fields": [{"name": "uai", "type": "string", "preau:check": "uai"}]}
    r = validate_table(tmp_csv(f"uai\n{U1}\n{BAD_UAI}\n{U2}\n"), schema)
    assert errors(r) == [("constraint-error", 3, "uai")]
    assert "lettre clé" in r.render("fr")


# --- privacy --------------------------------------------------------------------------------------

def _pupils(n: int, seed: int = 3) -> pl.DataFrame:
    """Pupil-like rows made of random tokens (no realistic personal value)."""
    rng = np.random.default_rng(seed)
    tok = lambda k: ["Z" + "".join(rng.choice(list("QXWKJV"), 7)) + str(i) for i in range(k)]  # noqa: E731
    return pl.DataFrame({
        "annee_scolaire": ["2025-2026"] * n, "identifiant_eleve": [f"{i:010d}A" for i in range(n)],
        "nom": tok(n), "prenom": tok(n), "sexe": ["F", "M"] * (n // 2),
        "date_naissance": ["2018-03-04"] * n, "commune_naissance": tok(n), "adresse": tok(n),
        "code_postal": ["00000"] * n, "commune_residence": tok(n), "code_insee_residence": ["65440"] * n,
        "uai": [U1] * n, "nom_ecole": ["ECOLE"] * n, "niveau": ["CP"] * n, "classe": ["CP-A"] * n,
        "responsable1_nom": tok(n), "responsable1_prenom": tok(n), "responsable1_telephone": tok(n),
        "responsable2_nom": tok(n), "responsable2_prenom": tok(n),
        "cantine": ["true"] * n, "periscolaire": ["false"] * n, "transport": ["false"] * n,
    })


def test_personal_values_never_shown(tmp_path):
    df = _pupils(6)
    secret_values = set()
    df = df.with_columns(
        pl.Series("date_naissance", ["2018-03-04", "pas-une-date-ZQX1", "2018-02-30", "2018-03-04", "", "x"]),
        pl.Series("identifiant_eleve", ["0000000000A"] * 2 + [f"{i:010d}A" for i in range(2, 6)]),
        pl.Series("code_postal", ["00000", "ZQXW9", "00000", "00000", "00000", "00000"]),
    )
    for col in ("nom", "prenom", "adresse", "date_naissance", "code_postal", "identifiant_eleve"):
        secret_values |= {v for v in df.get_column(col).to_list() if v and len(v) > 1}
    path = tmp_path / "eleves.csv"
    text = df.write_csv()
    # one ragged row too: its values must all be masked
    text += "2025-2026,ZQXWRAGGED1,ZQXWRAGGED2\n"
    secret_values |= {"ZQXWRAGGED1", "ZQXWRAGGED2"}
    path.write_text(text, encoding="utf-8")
    r = validate_table(path, "eleves-premier-degre")
    assert not r.valid
    outputs = [r.to_json(), r.render("fr"), r.render("en"), r.to_html("fr"), r.to_html("en")]
    for out in outputs:
        for v in secret_values:
            assert v not in out, f"personal value leaked: {v!r}"
    assert "valeur masquée" in r.to_json()
    kinds = {(e["type"], e.get("fieldName")) for e in r.tasks[0].errors}
    assert ("type-error", "date_naissance") in kinds and ("primary-key", None) in kinds
    assert ("constraint-error", "code_postal") in kinds and ("missing-cell", "sexe") in kinds


def test_cli_does_not_leak_either(tmp_path):
    df = _pupils(4).with_columns(pl.Series("nom", ["", "ZQXWLEAK", "ZQXW2", "ZQXW3"]),
                                 pl.Series("adresse", ["ZQXWADDR"] * 4),
                                 pl.Series("date_naissance", ["ZQXWDATE", "", "", ""]))
    path = tmp_path / "eleves.csv"
    path.write_text(df.write_csv(), encoding="utf-8")
    for extra in ([], ["--json"], ["--lang", "en"]):
        res = subprocess.run([PREAU, "validate", str(path), "--schema", "eleves-premier-degre", *extra],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 1
        assert "ZQXW" not in res.stdout + res.stderr


# --- complete reports, frames, packages, CLI --------------------------------------------------------

def test_report_is_complete_and_frictionless_shaped(tmp_csv):
    rows = "".join(f"{i},a,x\n" for i in range(1, 2501))
    r = validate_table(tmp_csv("id,nom,n\n" + rows), SIMPLE)
    d = r.to_frictionless_dict()
    assert d["valid"] is False and d["stats"]["errors"] == 2500 == len(d["tasks"][0]["errors"])
    e = d["tasks"][0]["errors"][0]
    assert {"type", "title", "description", "message", "tags", "note", "cells", "rowNumber", "cell",
            "fieldName", "fieldNumber"} <= set(e)
    assert e["rowNumber"] == 2 and e["fieldNumber"] == 3 and e["cells"] == ["1", "a", "x"]
    assert "1 500" not in r.render("fr") and "2500" in r.render("fr")


def test_frame_and_parquet_input(tmp_path):
    schema = ROOT / "schemas" / "effectifs-secteur-niveau"
    df = pl.DataFrame({"annee_scolaire": ["2025-2026"] * 2, "code_secteur": ["65440-01", "TOTAL"],
                       "niveau": ["CP", "TOTAL"], "effectif": [None, 12], "secret": [True, False]})
    assert validate_table(df, schema).valid
    p = tmp_path / "t.parquet"
    df.with_columns(pl.lit("CQ").alias("niveau")).write_parquet(p)
    r = validate_table(p, schema / "schema.json")
    assert [(e["fieldName"], e["note"].split('"')[1]) for e in r.tasks[0].errors] == [
        ("niveau", "enum"), ("niveau", "preau:check")] * 2


def _package(tmp_path: Path, ecoles: str, effectifs: str) -> Path:
    (tmp_path / "ecoles.csv").write_text(ecoles, encoding="utf-8")
    (tmp_path / "effectifs.csv").write_text(effectifs, encoding="utf-8")
    pkg = {"name": "test", "resources": [
        {"name": "ecoles", "path": "ecoles.csv", "schema": {"fields": [{"name": "uai", "type": "string"}],
                                                            "primaryKey": ["uai"]}},
        {"name": "effectifs", "path": "effectifs.csv", "schema": {
            "fields": [{"name": "uai", "type": "string"}, {"name": "effectif", "type": "integer"}],
            "foreignKeys": [{"fields": ["uai"], "reference": {"resource": "ecoles", "fields": ["uai"]}}]}},
    ]}
    path = tmp_path / "datapackage.json"
    path.write_text(json.dumps(pkg), encoding="utf-8")
    return path


def test_package_foreign_keys_match_frictionless(tmp_path):
    from frictionless import Package

    path = _package(tmp_path, f"uai\n{U1}\n{U2}\n", f"uai,effectif\n{U1},3\n{BAD_UAI},4\n{U2},x\n,5\n")
    ours = validate_package(path)
    theirs = Package(str(path.name), basepath=str(tmp_path)).validate(limit_errors=0).to_descriptor()
    key = lambda e: (e["type"], e.get("rowNumber"), e.get("fieldName"))  # noqa: E731
    assert [key(e) for t in ours.to_frictionless_dict()["tasks"] for e in t["errors"]] == [
        key(e) for t in theirs["tasks"] for e in t["errors"]]
    fk = [e for e in ours.flat_errors() if e["type"] == "foreign-key"]
    assert len(fk) == 1 and fk[0]["fieldCells"] == [BAD_UAI] and fk[0]["referenceName"] == "ecoles"


def test_cli_exit_codes_and_outputs(tmp_path, tmp_csv):
    good = ROOT / "schemas" / "ecart-age-ecole" / "exemple-valide.csv"
    ok = subprocess.run([PREAU, "validate", str(good), "--schema", "ecart-age-ecole"], capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0 and "Valide" in ok.stdout
    bad = tmp_csv("annee_scolaire,uai,ecart_age,effectif,secret\n2025-2026,<b>x</b>,retard,1,false\n")
    html = tmp_path / "r.html"
    res = subprocess.run([PREAU, "validate", str(bad), "--schema", "ecart-age-ecole", "--json", "--html", str(html)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    d = json.loads(res.stdout)
    assert d["valid"] is False and d["tasks"][0]["errors"][0]["fieldName"] == "uai"
    page = html.read_text(encoding="utf-8")
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<script" not in page
    en = subprocess.run([PREAU, "validate", str(bad), "--schema", "ecart-age-ecole", "--lang", "en"],
                        capture_output=True, text=True, timeout=120)
    assert en.returncode == 1 and "Invalid" in en.stdout and "Constraint not met" in en.stdout
    missing = subprocess.run([PREAU, "validate", str(tmp_path / "nope.csv"), "--schema", "ecart-age-ecole"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "introuvable" in missing.stderr
    nosch = subprocess.run([PREAU, "validate", str(bad)], capture_output=True, text=True, timeout=120)
    assert nosch.returncode == 2
    pkg = _package(tmp_path, f"uai\n{U1}\n", f"uai,effectif\n{U1},3\n")
    assert subprocess.run([PREAU, "validate", str(pkg)], capture_output=True, timeout=120).returncode == 0


def test_unsupported_fields_match_is_said(tmp_csv):
    schema = dict(SIMPLE, fieldsMatch="subset")
    r = validate_table(tmp_csv("id,nom,n\n1,a,2\n"), schema)
    assert r.valid and "fieldsMatch" in r.render("fr")


def test_insee_check_shares_the_pattern_pass(tmp_csv, monkeypatch):
    """With the INSEE pattern beside it, the INSEE check reuses the pattern's regex pass: same findings."""
    from preau.validate import checks

    schema = {"fields": [{"name": "n", "type": "integer"},
                         {"name": "code", "type": "string", "preau:check": "insee",
                          "constraints": {"pattern": r"^(\d{5}|2[AB]\d{3})$"}}]}
    p = tmp_csv("n,code\n1,65440\n2,2A004\n3,6A123\n4,2C001\n5,\n6, 65440\n7,6544\n8,2B100\n")

    def findings():
        return [(e["rowNumber"], e["note"]) for e in validate_table(p, schema).tasks[0].errors]

    shared = findings()
    monkeypatch.setattr(checks, "same_as_pattern", lambda spec, pattern: False)
    assert shared == findings()
    assert [row for row, note in shared if "preau:check" in note] == [4, 5, 7, 8]  # not the empty cell (row 6)


def test_json_report_is_the_frictionless_dict(tmp_csv):
    """The indented JSON (one line per error, written by json's C encoder) holds the report exactly."""
    r = validate_table(tmp_csv("id,nom,n\n1,a,x\n,b,2\n3,c\n4,d,5,6\n"), SIMPLE)
    text = r.to_json()
    assert json.loads(text) == json.loads(json.dumps(r.to_frictionless_dict()))
    assert json.loads(r.to_json(indent=None)) == json.loads(text)
    lines = text.splitlines()
    assert lines[0] == "{" and sum(1 for ln in lines if ln.lstrip().startswith('{"type": ')) == r.error_count


def test_cli_json_output_complete_on_fast_exit(tmp_csv):
    """`preau validate` leaves without freeing memory (os._exit): a large report still arrives whole."""
    rows = "".join(f"{i},a,x\n" for i in range(1, 3001))
    schema = tmp_csv(json.dumps(SIMPLE), name="schema.json")
    res = subprocess.run([PREAU, "validate", str(tmp_csv("id,nom,n\n" + rows)), "--schema", str(schema), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and len(res.stdout) > 1_000_000  # far beyond a pipe's buffer
    d = json.loads(res.stdout)
    assert d["stats"]["errors"] == len(d["tasks"][0]["errors"]) == 3000
