"""A small territory whose audit failed: a cell no single deviation could move by its width (its
interval is bounded on both sides: at most a small school's public total above, 0 below) is now
protected by two, one down to 0 and one up by the rest (``suppress._split_deviations``).

Found by a sweep of small synthetic territories (Hautes-Pyrénées, seed 1, scale 0.2: a flow of 4
into a school of 6, width 5; the build refused to publish)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preau.errors import PreauError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from preau.synth import generate

    base = tmp_path_factory.mktemp("petit-territoire")
    synth = base / "synth"
    generate(synth, ["65"], seed=1, years=1, scale=0.2)
    ws = base / "ws"
    (ws / "publishers").mkdir(parents=True)
    for sub in ("datasets", "schemas"):
        (ws / sub).symlink_to(ROOT / sub)
    export = sorted(synth.glob("eleves-*.csv"))[-1]
    lines = ['id = "petit"', 'name = { fr = "Petit territoire (fictif)", en = "Small territory (synthetic)" }',
             'kind = "departement"', 'licence = "etalab-2.0"', 'territory = ["65"]', "",
             "[[sources]]", f'path = "{export}"', 'profile = "onde"',
             f'school_year = "{export.stem.removeprefix("eleves-")}"', "",
             "[references]", f'schools = "{synth / "ecoles.csv"}"',
             "addresses = [" + ", ".join(f'"{p}"' for p in sorted(synth.glob("adresses-*.csv"))) + "]",
             f'communes = "{synth / "communes.geojson"}"', f'sector_rules = "{synth / "carte-scolaire.csv"}"']
    (ws / "publishers" / "petit.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ws


def test_small_territory_is_published_with_its_audit_passed(workspace, tmp_path):
    from preau.disclosure.files import audit_folder
    from preau.pipeline import build

    result = build(workspace, tmp_path / "out")
    folder = result.out_dir / "petit"
    for name in ("flux-secteur-ecole", "effectifs-secteur-niveau"):
        d = json.loads((folder / name / "disclosure.json").read_text(encoding="utf-8"))
        assert d["audit"] == "passed" and d["cells_hidden"] > 0
    # the audit proved again from the files alone, as `preau audit` does
    assert audit_folder(folder / "_audit").ok


def test_without_the_split_the_same_build_fails_its_audit(workspace, tmp_path, monkeypatch):
    import preau.disclosure.suppress as suppress
    from preau.pipeline import build

    monkeypatch.setattr(suppress, "_split_deviations", lambda *args, **kwargs: None)
    with pytest.raises(PreauError) as err:
        build(workspace, tmp_path / "out")
    assert {p.code for p in err.value.report.errors} == {"audit-unprotected"}
    assert not (tmp_path / "out" / "data").exists()  # nothing half-published
