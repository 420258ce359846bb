"""Workspace loading: the reference workspace is valid; mistakes are reported as file:line."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preau.errors import PreauError
from preau.workspace import load_workspace

ROOT = Path(__file__).resolve().parents[1]


def copy_workspace(tmp_path: Path) -> Path:
    for sub in ("publishers", "datasets", "schemas"):
        shutil.copytree(ROOT / sub, tmp_path / sub)
    return tmp_path


def test_reference_workspace_is_valid():
    ws, report = load_workspace(ROOT)
    assert report.ok
    assert "demo-65" in ws.publishers
    assert {"effectifs-ecole-niveau", "flux-secteur-ecole", "ecart-age-ecole"} <= set(ws.datasets)
    for ds in ws.datasets.values():
        assert ds["schema"] in ws.schemas


@pytest.mark.parametrize("mutation, code, line", [
    (lambda t: t.replace("k = 5\n", "k = 1\n", 1), "config-invalid", None),
    (lambda t: t.replace('licence = "etalab-2.0"', 'licence = "proprietaire"'), "config-invalid", None),
    (lambda t: t.replace('schema = "flux-secteur-ecole"', 'schema = "inconnu"'), "config-invalid", None),
    (lambda t: t.replace('rule = "threshold"', 'rule = "arrondi"'), "config-invalid", None),
    (lambda t: t.replace("[disclosure]", "[disclosure\n"), "config-syntax", None),
])
def test_dataset_mistakes_name_file_and_line(tmp_path, mutation, code, line):
    ws = copy_workspace(tmp_path)
    path = ws / "datasets" / "flux-secteur-ecole.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(mutation(text), encoding="utf-8")
    with pytest.raises(PreauError) as info:
        load_workspace(ws)
    problems = [p for p in info.value.report.errors if p.code == code]
    assert problems, info.value.report.render()
    p = problems[0]
    assert p.file.endswith("flux-secteur-ecole.toml")
    assert p.line and 1 <= p.line <= len(path.read_text(encoding="utf-8").splitlines()) + 1
    assert p.fr != p.en  # both languages


def test_missing_key_and_cli_exit_code(tmp_path):
    ws = copy_workspace(tmp_path)
    path = ws / "publishers" / "demo-65.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('kind = "departement"\n', ""), encoding="utf-8")
    for lang, word in (("fr", "clé obligatoire manquante"), ("en", "missing required key")):
        proc = subprocess.run([sys.executable, "-m", "preau", "--lang", lang, "check", str(ws)],
                              capture_output=True, text=True)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert "demo-65.toml" in proc.stderr and word in proc.stderr


def test_init_scaffolds_a_valid_workspace(tmp_path):
    target = tmp_path / "commune"
    proc = subprocess.run([sys.executable, "-m", "preau", "init", str(target), "--id", "ville-test",
                           "--name", "Ville de Test", "--territory", "65440"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ws, report = load_workspace(target)
    assert report.ok and "ville-test" in ws.publishers
    assert set(ws.datasets) and set(ws.schemas)
