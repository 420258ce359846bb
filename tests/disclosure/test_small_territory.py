"""Small territories whose audit failed (the build refused to publish), found by a sweep of small
synthetic territories (one département each, scale 0.2):

- Hautes-Pyrénées, seed 1: a cell no single deviation could move by its width (its interval is
  bounded on both sides: at most a small school's public total above, 0 below) is now protected
  by two, one down to 0 and one up by the rest (``suppress._split_deviations``);
- Creuse, seed 8: a secondary sector total of 6 narrowed to [5, 7] by the public school totals and
  the flows table's listing alone: an exact interval wholly at or above the threshold is accepted
  (``attack.above_threshold``), the attacker learns only that the count is not small;
- Meuse, seed 13: a sector of 4 pupils whose flows go to small schools only: its total is at most
  the sum of their public totals, so are its level cells, and no hiding could widen them to 5: the
  widths are capped at the bounds carried through the equations (``attack.cap_widths``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from preau.errors import PreauError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synth_workspace import write_synth_workspace  # noqa: E402


def _workspace(base: Path, dep: str, seed: int, scale: float) -> Path:
    from preau.synth import generate

    synth = base / "synth"
    generate(synth, [dep], seed=seed, years=1, scale=scale)
    return write_synth_workspace(base / "ws", synth, "petit", [dep])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return _workspace(tmp_path_factory.mktemp("petit-territoire"), "65", 1, 0.2)


@pytest.fixture(scope="module")
def creuse(tmp_path_factory):
    return _workspace(tmp_path_factory.mktemp("creuse"), "23", 8, 0.2)


@pytest.fixture(scope="module")
def meuse(tmp_path_factory):
    return _workspace(tmp_path_factory.mktemp("meuse"), "55", 13, 0.2)


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


def test_secondary_total_narrowed_above_the_threshold_is_accepted(creuse, tmp_path):
    from preau.disclosure.files import audit_folder
    from preau.pipeline import build

    result = build(creuse, tmp_path / "out")
    d = json.loads((result.out_dir / "petit" / "effectifs-secteur-niveau" / "disclosure.json").read_text(encoding="utf-8"))
    assert d["audit"] == "passed"
    assert audit_folder(result.out_dir / "petit" / "_audit").ok  # the independent audit agrees


def test_without_the_threshold_rule_that_build_fails(creuse, tmp_path, monkeypatch):
    import numpy as np

    import preau.disclosure.attack as attack
    from preau.pipeline import build

    import preau.disclosure.suppress as suppress

    never = lambda att, k: np.zeros(len(att.var), bool)  # noqa: E731
    monkeypatch.setattr(attack, "above_threshold", never)  # the independent audit's
    monkeypatch.setattr(suppress, "above_threshold", never)  # the protection's
    with pytest.raises(PreauError) as err:
        build(creuse, tmp_path / "out")
    assert {p.code for p in err.value.report.errors} == {"audit-unprotected"}
    assert "23165-01" in str(err.value)


def test_above_threshold_needs_an_exact_interval_wholly_at_or_above_k():
    import numpy as np

    from preau.disclosure.attack import Attack, above_threshold

    var = np.arange(5)
    att = Attack(var=var, low=np.array([5.0, 5.0, 4.0, 6.0, 0.0]), high=np.array([7.0, 7.0, 7.0, 8.0, 9.0]),
                 exact=np.array([True, False, True, True, True]), protected=np.zeros(5, bool))
    k = np.array([5.0, 5.0, 5.0, 0.0, 5.0])
    # exact and low ≥ k; not exact; low below k; no threshold; low 0
    assert above_threshold(att, k).tolist() == [True, False, False, False, False]


def test_widths_capped_through_the_equations_let_meuse_publish(meuse, tmp_path, monkeypatch):
    import preau.disclosure.attack as attack
    from preau.disclosure.files import audit_folder
    from preau.pipeline import build

    result = build(meuse, tmp_path / "out")
    assert audit_folder(result.out_dir / "petit" / "_audit").ok
    # with the bounds of direct public parents only (as before), the same build fails
    monkeypatch.setattr(attack, "CAP_ROUNDS", 1)
    with pytest.raises(PreauError) as err:
        build(meuse, tmp_path / "again")
    assert {p.code for p in err.value.report.errors} == {"audit-unprotected"}
