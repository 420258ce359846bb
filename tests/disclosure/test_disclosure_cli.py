"""``preau audit`` on a folder of protected CSVs + disclosure-tables.json (generated counts)."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from preau.cli import app
from preau.disclosure import CountTable, protect
from preau.disclosure.files import load_folder, write_folder
from preau.disclosure.generate import school_level_tables

runner = CliRunner()


def test_audit_passes_on_protected_tables(tmp_path):
    school, communes = school_level_tables(60, 40, seed=12)
    out = protect([school, communes])
    write_folder([o.table for o in out], tmp_path)
    [(_, tables, published)] = load_folder(tmp_path)
    assert [t.name for t in tables] == ["ecole-niveau", "commune-niveau"] and published == []
    res = runner.invoke(app, ["audit", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["passed"] is True
    # distinct cells: the commune × level cells are also rows of the school table
    assert data["cells_hidden"] == out[0].cells_hidden
    res = runner.invoke(app, ["--lang", "fr", "audit", str(tmp_path)])
    assert res.exit_code == 0 and "Audit réussi" in res.output


def test_audit_fails_on_primary_only(tmp_path):
    school, _ = school_level_tables(40, 30, seed=13)
    v = pl.col("effectif")
    f = school.frame.with_columns(pl.when((v >= 1) & (v < 5)).then(None).otherwise(v).alias("effectif"))
    write_folder([CountTable(school.name, f, school.dimensions)], tmp_path)
    res = runner.invoke(app, ["audit", str(tmp_path), "--json"])
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert data["passed"] is False and data["unprotected"] > 0
    cell = data["cells"][0]
    assert cell["table"] == "ecole-niveau" and set(cell["cell"]) == {"uai", "niveau"}
    res = runner.invoke(app, ["--lang", "en", "audit", str(tmp_path)])
    assert res.exit_code == 1 and "not protected" in res.output


def test_audit_reads_every_group_of_a_build(tmp_path):
    """A build writes one audit group per publisher and access level under _build/data/."""
    school, communes = school_level_tables(50, 30, seed=14)
    out = protect([school, communes])
    write_folder([o.table for o in out], tmp_path / "_build" / "data" / "demo-65" / "_audit" / "public")
    other, _ = school_level_tables(30, 20, seed=15)
    v = pl.col("effectif")
    leaky = other.frame.with_columns(pl.when((v >= 1) & (v < 5)).then(None).otherwise(v).alias("effectif"))
    groups = load_folder(tmp_path)
    assert [[t.name for t in g[1]] for g in groups] == [["ecole-niveau", "commune-niveau"]]
    assert runner.invoke(app, ["audit", str(tmp_path)]).exit_code == 0
    write_folder([CountTable("ecole-niveau", leaky, other.dimensions)],
                 tmp_path / "_build" / "data" / "demo-66" / "_audit" / "public")
    res = runner.invoke(app, ["audit", str(tmp_path), "--json"])
    assert res.exit_code == 1
    cells = json.loads(res.output)["cells"]
    assert cells and all("demo-66" in c["table"] for c in cells)


def test_audit_bad_input_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["audit", str(tmp_path), "--json"])
    assert res.exit_code == 2
    assert json.loads(res.output)["problems"][0]["code"] == "audit-nothing"
    (tmp_path / "disclosure-tables.json").write_text('{"tables": [{"name": "x", "path": "x.csv", '
                                                     '"dimensions": {"uai": {}}}]}')
    res = runner.invoke(app, ["audit", str(tmp_path)])
    assert res.exit_code == 2 and "x.csv" in res.output
    (tmp_path / "x.csv").write_bytes(b"\x00\x01binary")
    res = runner.invoke(app, ["--lang", "en", "audit", str(tmp_path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
