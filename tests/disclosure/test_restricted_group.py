"""A restricted table protected after the public ones, with every public output known to its
reader (``published=``), as ``preau build`` does for restricted datasets. Generated counts only."""

from __future__ import annotations

import polars as pl
import pytest

from preau.disclosure import attack, suppress

from preau.disclosure import CountTable, Policy, audit, protect
from preau.disclosure.generate import school_level_tables


def _restricted_setting(seed: int, n_schools: int = 60, n_communes: int = 25):
    school, commune = school_level_tables(n_schools, n_communes, seed=seed, k=5)
    public = protect([commune])[0]  # the public group: commune × level, k = 5
    # the restricted table: school × level at k = 3, WITHOUT commune rows of its own; its schools
    # still add up to the commune cells (hierarchy uai → commune), which the public table holds —
    # some of them hidden there, so their true value is not in the restricted model
    communes = set(commune.frame["code_insee"].to_list())
    f = school.frame.filter(~pl.col("uai").is_in(list(communes)))
    restricted = CountTable("ecole-niveau-restreint", f, school.dimensions, policy=Policy("threshold", 3))
    known = CountTable("commune-niveau@public", public.frame, public.table.dimensions, policy=Policy("none", k=1))
    return public, restricted, known


@pytest.mark.parametrize("paths", ["small-blocks", "large-blocks"])
def test_public_cells_hidden_elsewhere_do_not_break_the_restricted_group(paths, monkeypatch):
    if paths == "large-blocks":  # the national-size code paths: restricted certificates, local repairs
        monkeypatch.setattr(attack, "SMALL_BLOCK", 0)
        monkeypatch.setattr(suppress, "REPAIR_COMPONENT", 0)
    for seed in (1, 2, 3):
        public, restricted, known = _restricted_setting(seed)
        assert public.cells_hidden > 0  # the case under test: hidden public cells, unknown here
        out = protect([restricted], published=[known])[0]
        assert out.cells_hidden > 0
        # the independent audit: the restricted reader knows the public output too
        report = audit([out.table], published=[known])
        assert report.ok, report.to_dict()["cells"][:3]


def test_feasible_point_completes_cells_known_to_nobody_here():
    """The point protect works from satisfies every equation, including the ones through cells
    hidden in a published table and absent from this build (their value is not known here)."""
    import numpy as np

    from preau.disclosure.model import build_model

    public, restricted, known = _restricted_setting(2)
    model = build_model([restricted], [known], with_values=True)
    missing = np.isnan(model.value)
    assert missing.any()
    x = suppress._complete(model)
    assert np.isfinite(x).all() and (x >= -1e-9).all()
    assert np.allclose(x[~missing], model.value[~missing])
    assert np.abs(model.A @ x).max() < 1e-6


def test_unhide_pass_publishes_only_what_the_audit_still_proves():
    """The un-hide pass never loses more than without it, and its output passes the audit."""
    from preau.disclosure import ProtectionStats

    school, _ = school_level_tables(300, 200, seed=4, k=5)
    off, on = ProtectionStats("modular"), ProtectionStats("modular")
    a = protect([school], stats=off, unhide=False)[0]
    b = protect([school], stats=on, unhide=True)[0]
    assert b.cells_hidden == a.cells_hidden - on.unhidden
    assert b.pupils_hidden <= a.pupils_hidden
    assert audit([b.table]).ok


def test_unhide_pass_is_bounded_in_work_not_in_time(monkeypatch):
    """The same tables give the same pattern however slow the machine: a clock that jumps an hour
    at every reading changes nothing, and the pass stops at its try budget."""
    import time as time_mod

    from preau.disclosure import ProtectionStats, suppress

    school, _ = school_level_tables(400, 60, seed=11, k=5)
    normal = ProtectionStats("modular")
    a = protect([school], stats=normal)[0]
    clock = iter(range(0, 10**9, 3600))
    monkeypatch.setattr(time_mod, "perf_counter", lambda: float(next(clock)))
    slow = ProtectionStats("modular")
    b = protect([school], stats=slow)[0]
    assert normal.unhidden >= 2 and slow.unhidden == normal.unhidden
    assert a.frame.equals(b.frame)
    monkeypatch.undo()
    monkeypatch.setattr(suppress, "UNHIDE_PROBE", 10**6)  # only the try budget can stop it
    monkeypatch.setattr(suppress, "UNHIDE_MAX_TRIES", 1)
    capped = ProtectionStats("modular")
    protect([school], stats=capped)
    assert capped.unhidden <= 1 < normal.unhidden
