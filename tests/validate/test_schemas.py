"""Every schema folder: valid for the real frictionless CLI, its example passes, metadata complete,
README generated and up to date."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from preau.validate import validate_table
from preau.validate.doc import MARKER, generated_readmes

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
FOLDERS = sorted(p.parent for p in SCHEMAS.glob("*/schema.json"))
FRICTIONLESS = str(Path(sys.executable).with_name("frictionless"))
# The tables this stage owns (geo layers, couche-*, belong to the geo stage).
OURS = ["eleves-premier-degre", "effectifs-ecole-niveau", "effectifs-commune-niveau", "effectifs-secteur-niveau",
        "flux-secteur-ecole", "restauration-periscolaire-ecole", "ecart-age-ecole", "flux-secteur-ecole-niveau"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # relative paths: frictionless refuses absolute paths as "not safe"
    return subprocess.run([FRICTIONLESS, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_frictionless_accepts_schema_and_example(folder):
    res = run("validate", "--type", "schema", "schema.json", cwd=folder)
    assert res.returncode == 0, res.stdout + res.stderr
    res = run("validate", "--schema", "schema.json", "exemple-valide.csv", cwd=folder)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("exemple-valide.csv", "CHANGELOG.md", "README.md"):
        assert (folder / name).exists(), f"{folder.name}: {name} missing"


def test_frictionless_cli_catches_a_broken_schema(tmp_path):
    bad = tmp_path / "schema.json"
    bad.write_text(json.dumps({"fields": [{"name": "a", "type": "entier"}]}), encoding="utf-8")
    assert run("validate", "--type", "schema", "schema.json", cwd=tmp_path).returncode != 0


@pytest.mark.parametrize("name", OURS)
def test_our_schemas_metadata_and_examples(name):
    folder = SCHEMAS / name
    schema = json.loads((folder / "schema.json").read_text(encoding="utf-8"))
    assert schema["name"] == name
    assert re.fullmatch(r"\d+\.\d+\.\d+", schema["version"])
    for key in ("title", "description", "created", "homepage", "licenses", "contributors", "primaryKey"):
        assert schema.get(key), f"{name}: {key} missing"
    assert f"[{schema['version']}]" in (folder / "CHANGELOG.md").read_text(encoding="utf-8")
    for field in schema["fields"]:
        for key in ("title", "description", "example"):
            assert key in field and field[key] != "" or key == "example", f"{name}.{field['name']}: {key}"
    # Préau's own validator (French code checks included) accepts the example too
    report = validate_table(folder / "exemple-valide.csv", folder / "schema.json")
    assert report.valid, report.render("en")


def test_output_tables_document_suppression():
    for name in OURS[2:]:
        schema = json.loads((SCHEMAS / name / "schema.json").read_text(encoding="utf-8"))
        fields = {f["name"]: f for f in schema["fields"]}
        assert list(fields)[-2:] == ["effectif", "secret"]
        assert fields["effectif"]["type"] == "integer" and fields["effectif"]["constraints"] == {"minimum": 0}
        assert fields["secret"]["type"] == "boolean" and fields["secret"]["constraints"]["required"]
        assert "vide" in fields["effectif"]["description"].lower() and "TOTAL" in schema["description"]


def test_pupil_schema_flags_personal_fields():
    schema = json.loads((SCHEMAS / "eleves-premier-degre" / "schema.json").read_text(encoding="utf-8"))
    personal = {f["name"] for f in schema["fields"] if f.get("preau:personal")}
    assert personal == {"identifiant_eleve", "nom", "prenom", "date_naissance", "commune_naissance", "adresse",
                        "code_postal", "commune_residence", "responsable1_nom", "responsable1_prenom",
                        "responsable1_telephone", "responsable2_nom", "responsable2_prenom"}


def test_generated_readmes_are_up_to_date():
    expected = generated_readmes(SCHEMAS)
    for name in OURS:
        assert (SCHEMAS / name / "README.md") in expected, f"{name}: README not generated"
    for path, text in expected.items():
        assert path.exists() and path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run 'preau schema doc'")
        assert MARKER in text


def test_readme_lists_every_field():
    for name in OURS:
        schema = json.loads((SCHEMAS / name / "schema.json").read_text(encoding="utf-8"))
        text = (SCHEMAS / name / "README.md").read_text(encoding="utf-8")
        for f in schema["fields"]:
            assert f"`{f['name']}`" in text


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_preau_accepts_every_example(folder):
    """Préau's validator (French code checks included) accepts every schema's own example."""
    report = validate_table(folder / "exemple-valide.csv", folder / "schema.json")
    assert report.valid, report.render("en")
