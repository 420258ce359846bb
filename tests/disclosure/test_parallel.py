"""The attacker's exact block LPs give the same intervals whether solved in this process or in
worker processes (national builds: hundreds of independent département blocks)."""

from __future__ import annotations

import numpy as np

from preau.disclosure import attack as attack_mod
from preau.disclosure import protect
from preau.disclosure.generate import school_level_tables


def _many_blocks(copies: int = 30):
    """The attacker's system of a small protected school × level table, repeated as independent blocks."""
    import scipy.sparse as sp

    from preau.disclosure.attack import _widths
    from preau.disclosure.model import build_model

    out = protect(list(school_level_tables(n_schools=40, n_communes=25, seed=3)))
    model = build_model([o.table for o in out], with_values=False)
    hidden = np.zeros(model.n, bool)
    for ti in model.tables:
        hidden[ti.var[ti.hidden]] = True
    true = build_model(list(school_level_tables(n_schools=40, n_communes=25, seed=3))).value
    width = _widths(model, hidden)
    A = sp.block_diag([model.A] * copies, format="csr")
    tile = lambda a: np.tile(a, copies)  # noqa: E731
    # a width no cell reaches: every hidden cell gets its exact min and max LPs
    return A, tile(hidden), tile(np.where(hidden, np.nan, true)), tile(np.where(hidden, 1000.0, width)), tile(true)


def test_exact_blocks_in_worker_processes_match_one_process(monkeypatch):
    A, hidden, value, width, true = _many_blocks()
    assert hidden.sum() > 200
    monkeypatch.setattr(attack_mod, "LEVELS", ())  # straight to the exact block LPs
    monkeypatch.setattr(attack_mod, "WORKERS", 1)
    one = attack_mod.attack(A, hidden, value, width, seed=true)
    calls = []
    real = attack_mod._map_batches

    def spy(jobs, count, size):
        calls.append(count)
        return real(jobs, count, size)

    monkeypatch.setattr(attack_mod, "WORKERS", 2)
    monkeypatch.setattr(attack_mod, "PARALLEL_FROM_VARS", 0)
    monkeypatch.setattr(attack_mod, "EXACT_BATCH_VARS", 40)  # a few blocks per batch: many batches
    monkeypatch.setattr(attack_mod, "_map_batches", spy)
    two = attack_mod.attack(A, hidden, value, width, seed=true)
    assert calls and max(calls) >= 4  # the exact LPs went through the worker pool
    assert one.exact.sum() > 100 and np.array_equal(one.exact, two.exact)
    assert np.allclose(one.low[one.exact], two.low[two.exact]) and np.allclose(one.high[one.exact], two.high[two.exact])
    assert np.array_equal(one.protected, two.protected) and not one.protected.any()


def test_worker_error_reaches_the_caller(monkeypatch):
    """An infeasible system (inconsistent published cells) raised in a worker is the same
    user-facing error as in one process."""
    import scipy.sparse as sp

    from preau.errors import PreauError

    A = sp.csc_matrix(np.array([[1.0, 1.0, 0, 0], [0, 0, 1.0, 1.0]]))
    rhs = np.array([-1.0, 3.0])  # x0 + x1 = -1 with x >= 0: infeasible
    job = (A, rhs, np.array([0, 0, 1, 1]), np.full(4, 5.0), np.zeros(4), np.zeros(4), (0, 0), None, True)
    monkeypatch.setattr(attack_mod, "PARALLEL_FROM_VARS", 0)
    monkeypatch.setattr(attack_mod, "WORKERS", 2)
    try:
        attack_mod._map_batches(iter([job] * 4), 4, 16)
    except PreauError as exc:
        assert exc.report.problems[0].code == "audit-inconsistent"
    else:
        raise AssertionError("the infeasible LP was not reported")


def test_jobs_given_as_an_iterator_come_back_in_order(monkeypatch):
    """map_jobs takes the jobs as they are built (an iterator: the workers start on the first ones):
    the results are those of a list of the same jobs, in order, in one process or in workers."""
    jobs = [(i, i % 7) for i in range(40)]
    expected = [divmod(a + 3, b + 1) for a, b in jobs]
    monkeypatch.setattr(attack_mod, "PARALLEL_FROM_VARS", 0)
    for workers in (1, 2):
        monkeypatch.setattr(attack_mod, "WORKERS", workers)
        built = []

        def lazily():
            for j in jobs:
                built.append(j)
                yield j

        try:
            assert attack_mod.map_jobs(_divmod_job, lazily(), 100, count=len(jobs)) == expected
        finally:
            attack_mod.close_workers()
        assert built == jobs


def _divmod_job(job):
    return divmod(job[0] + 3, job[1] + 1)


def test_members_of_labels_match_a_scan():
    """_Members.of: the positions of a set of labels, sorted, as np.isin over every position gives."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 50, 3000)
    m = attack_mod._Members(labels, 60)
    for _ in range(20):
        chosen = rng.choice(60, size=int(rng.integers(0, 12)), replace=False)
        assert np.array_equal(m.of(chosen), np.nonzero(np.isin(labels, chosen))[0])
    assert np.array_equal(attack_mod._Members(labels).of([49]), np.nonzero(labels == 49)[0])


def test_repairs_per_component_in_worker_processes_match_one_process(monkeypatch):
    """Cells the audit finds unprotected are repaired per component of the movable cells, the
    components in worker processes when many: the protected pattern is the same as in one process,
    and the audit of the published tables passes."""
    from preau.disclosure import suppress, verify

    tables = list(school_level_tables(n_schools=400, n_communes=60, seed=11))
    monkeypatch.setattr(suppress, "REPAIR_COMPONENT", 0)  # no whole component is small: local ones
    monkeypatch.setattr(suppress, "LOCAL_WIDE", 12)  # cut at the wide equations: one per commune or so
    monkeypatch.setattr(suppress, "_local_pass", lambda st, A, AT: 0)  # primaries only: the repairs do it all
    calls = []
    real = suppress.map_jobs

    def spy(fn, jobs, size, **kw):
        calls.append((fn.__name__, kw["count"] if kw.get("count") is not None else len(jobs)))
        return real(fn, jobs, size, **kw)

    monkeypatch.setattr(suppress, "map_jobs", spy)
    monkeypatch.setattr(attack_mod, "WORKERS", 1)
    stats_one = suppress.ProtectionStats("modular")
    one = protect(tables, stats=stats_one)
    repairs = [n for name, n in calls if name == "_repair_group"]
    assert repairs and max(repairs) >= 4, calls  # several components repaired in one round
    assert stats_one.repair_added > 0
    monkeypatch.setattr(attack_mod, "WORKERS", 2)
    monkeypatch.setattr(attack_mod, "PARALLEL_FROM_VARS", 0)
    two = protect(tables)
    assert attack_mod._POOL is None  # the workers are stopped when protect returns
    for a, b in zip(one, two):
        assert a.frame.equals(b.frame)
    assert verify(two).ok


def test_level2_clusters_are_capped_in_variables(monkeypatch):
    """Level-2 clusters gather failing level-1 blocks sharing wide equations, at most CLUSTER
    blocks and CLUSTER_VARS variables (one cluster of 61k variables was most of a national
    audit), and never split a level-1 block."""
    import numpy as np
    import scipy.sparse as sp

    from preau.disclosure import attack

    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 40, 300)
    rows, cols, r = [], [], 0
    start = np.concatenate([[0], np.cumsum(sizes)])
    for b, s in enumerate(sizes):  # a chain of narrow equations inside each block
        for j in range(s - 1):
            rows += [r, r]
            cols += [start[b] + j, start[b] + j + 1]
            r += 1
    for b in range(len(sizes)):  # one wide equation through the first cell of every block
        rows.append(r)
        cols.append(start[b])
    AU = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(r + 1, start[-1]))
    rnnz = np.diff(AU.indptr)
    _, g1, _ = attack._components(AU[rnnz <= attack.WIDE])
    assert len(np.unique(g1)) == len(sizes)
    monkeypatch.setattr(attack, "CLUSTER_VARS", 200)
    group = attack._clusters(AU, rnnz, g1, np.ones(AU.shape[1], bool))
    per_group = np.bincount(np.unique(group, return_inverse=True)[1])
    assert per_group.max() <= 200 and per_group.sum() == AU.shape[1]
    for g in np.unique(g1):  # a block stays whole
        assert len(np.unique(group[g1 == g])) == 1
    # CLUSTER blocks at most
    blocks_per_group = [len(np.unique(g1[group == k])) for k in np.unique(group)]
    assert max(blocks_per_group) <= attack.CLUSTER
    monkeypatch.setattr(attack, "CLUSTER_VARS", 10**9)
    group = attack._clusters(AU, rnnz, g1, np.ones(AU.shape[1], bool))
    assert np.bincount(np.unique(group, return_inverse=True)[1]).max() > 200  # the cap was what held


def test_repair_ball_is_the_neighbourhood_in_the_local_equations():
    """``_ComponentLPs.ball``: the movable cells within d steps cell → equation → cell, following
    only the equations of the local components (checked against a plain breadth-first search)."""
    import scipy.sparse as sp

    from preau.disclosure import suppress

    rng = np.random.default_rng(5)
    A = sp.random(300, 500, density=0.006, random_state=7, format="csr")
    A.data[:] = 1.0

    class St:  # the parts of _State that _ComponentLPs reads
        decidable = np.ones(500, bool)
        unknown_always = np.zeros(500, bool)
        model = type("M", (), {"n": 500})()

    St.decidable[rng.choice(500, 60, replace=False)] = False  # fixed cells: not movable
    comps = suppress._ComponentLPs(St, A, local=True)
    movable = set(np.nonzero(St.decidable)[0].tolist())
    narrow = [r for r in range(300) if sum(c in movable for c in A[r].indices) <= suppress.LOCAL_WIDE]
    for start in rng.choice(sorted(movable), 10, replace=False).tolist():
        for depth in (0, 1, 3):
            seen, front = {start}, {start}
            for _ in range(depth):
                nxt = set()
                for r in narrow:
                    members = [c for c in A[r].indices.tolist() if c in movable]
                    if front & set(members):
                        nxt |= set(members)
                front = nxt - seen
                seen |= nxt
            assert comps.ball([start], depth).tolist() == sorted(seen)


def test_cells_with_no_deviation_near_them_are_repaired_on_the_whole_local_component(monkeypatch):
    """With a ball of 0 steps (the cell alone: no deviation keeps its equations balanced) every
    cell is repaired again on its whole local component: the same pattern as a ball covering the
    components, and the audit passes."""
    from preau.disclosure import suppress, verify

    tables = list(school_level_tables(n_schools=200, n_communes=40, seed=13))
    monkeypatch.setattr(suppress, "REPAIR_COMPONENT", 0)
    monkeypatch.setattr(suppress, "LOCAL_WIDE", 12)
    monkeypatch.setattr(suppress, "_local_pass", lambda st, A, AT: 0)
    monkeypatch.setattr(attack_mod, "WORKERS", 1)
    calls = []
    real = suppress._repair_components

    def spy(st, groups):
        calls.append(sum(len(g[1]) for g in groups))
        return real(st, groups)

    monkeypatch.setattr(suppress, "_repair_components", spy)
    monkeypatch.setattr(suppress, "REPAIR_BALL", 0)
    stats = suppress.ProtectionStats("modular")
    tight = protect(tables, stats=stats)
    assert len(calls) >= 2 and calls[1] == calls[0]  # every cell of round 0 tried again, on the whole
    assert stats.repair_added > 0
    monkeypatch.setattr(suppress, "REPAIR_BALL", 10**6)
    wide = protect(tables)
    for a, b in zip(tight, wide):
        assert a.frame.equals(b.frame)
    assert verify(tight).ok


def test_grouped_passes_find_the_same_cells(monkeypatch):
    """The exact phase first pushes up to GROUP_CELLS pending cells of a block together (feasible
    points: sound certificates), then gives the cells left their own LPs: the same cells are
    protected and the unprotected ones get the same exact intervals as with one cell per LP.
    (Fewer LPs on blocks of thousands of cells: measured on the national build, not here.)"""
    A, hidden, value, _, true = _many_blocks(copies=6)
    monkeypatch.setattr(attack_mod, "LEVELS", ())
    monkeypatch.setattr(attack_mod, "WORKERS", 1)
    for w in (8.0, 12.0):  # about half, then most of the hidden cells unprotected
        runs = {}
        for group in (1, 16):
            monkeypatch.setattr(attack_mod, "GROUP_CELLS", group)
            runs[group] = attack_mod.attack(A, hidden, value, np.where(hidden, w, 0.0), seed=true)
        one, grouped = runs[1], runs[16]
        assert 0 < one.protected.sum() < len(one.protected)  # both kinds of cells
        assert np.array_equal(one.protected, grouped.protected)
        bad = ~one.protected
        assert grouped.exact[bad].all() and one.exact[bad].all()
        assert np.allclose(one.low[bad], grouped.low[bad]) and np.allclose(one.high[bad], grouped.high[bad])


def test_cells_that_can_only_move_up_are_repaired_a_few_at_a_time(monkeypatch):
    """Up to REPAIR_GROUP cells below their width, no two sharing an equation neighbourhood, get one
    protection LP together: fewer LPs than one per cell, the audit passes (each cell moved by its
    width in a feasible point), and joint LPs with several cells fixed really ran."""
    from preau.disclosure import suppress, verify

    tables = list(school_level_tables(n_schools=300, n_communes=50, seed=21))
    monkeypatch.setattr(suppress, "_local_pass", lambda st, A, AT: 0)  # every cell left to the repair
    monkeypatch.setattr(attack_mod, "WORKERS", 1)
    import highspy

    fixed_per_lp = []  # cells fixed at their width in each protection LP
    real_bounds = highspy.Highs.changeColsBounds

    def spy(self, num, cols, lower, upper):
        lower, upper = np.asarray(lower), np.asarray(upper)
        fixed = int(((lower == upper) & (lower > 0)).sum())
        if fixed:
            fixed_per_lp.append(fixed)
        return real_bounds(self, num, cols, lower, upper)

    runs = {}
    for group in (1, 4):
        monkeypatch.setattr(suppress, "REPAIR_GROUP", group)
        fixed_per_lp.clear()
        monkeypatch.setattr(highspy.Highs, "changeColsBounds", spy)
        stats = suppress.ProtectionStats("modular")
        out = protect(tables, stats=stats)
        monkeypatch.setattr(highspy.Highs, "changeColsBounds", real_bounds)
        assert verify(out).ok
        runs[group] = (stats.repair_lps, max(fixed_per_lp, default=0), stats.hidden)
    print(runs)
    assert runs[1][1] == 1  # one cell per LP
    assert runs[4][1] > 1  # several cells in one LP
    assert runs[4][0] < runs[1][0]  # fewer LPs


def test_workers_started_ahead_are_used_then_stopped(monkeypatch):
    """Tables above PRESTART_FROM_CELLS get their worker processes started before the model is built:
    the same pattern as in one process, and no process is left once protect() returns."""
    from preau.disclosure import suppress

    tables = list(school_level_tables(n_schools=60, n_communes=30, seed=5))
    monkeypatch.setattr(attack_mod, "BATCH_VARS", 20)  # many small restricted batches: jobs for the pool
    monkeypatch.setattr(attack_mod, "WORKERS", 1)
    one = protect(tables)
    started, maps = [], []
    real = attack_mod.start_workers

    def spy():
        real()
        pool = attack_mod._POOL
        started.append(pool is not None)
        run = pool.map
        pool.map = lambda *a, **k: maps.append(1) or run(*a, **k)  # the audit's jobs go to this pool

    monkeypatch.setattr(attack_mod, "WORKERS", 2)
    monkeypatch.setattr(attack_mod, "PARALLEL_FROM_VARS", 0)
    monkeypatch.setattr(suppress, "PRESTART_FROM_CELLS", 0)
    monkeypatch.setattr(suppress, "start_workers", spy)
    two = protect(tables)
    assert started == [True]
    assert maps  # the processes started ahead are the ones the audit used
    assert attack_mod._POOL is None
    for a, b in zip(one, two):
        assert a.frame.equals(b.frame)
