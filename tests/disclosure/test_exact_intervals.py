"""The attacker's exact intervals (preau.disclosure.attack.exact_intervals) against an independent
LP per cell (scipy.optimize.linprog), on random two-way tables with margins and many hidden cells,
zeros included: the shortcuts of the exact rounds (a witness at 0 is the exact minimum) must give
the LP optimum."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from preau.disclosure import attack
from preau.disclosure.attack import exact_intervals


def table(rng, R, C):
    """Cells of an R × C table with its row, column and grand totals, and the sum equations."""
    inner = rng.poisson(2.0, size=(R, C)).astype(float)
    inner[rng.random((R, C)) < 0.3] = 0.0
    n_in = R * C
    values = np.concatenate([inner.ravel(), inner.sum(1), inner.sum(0), [inner.sum()]])
    rows = []
    for r in range(R):  # row total = sum of its cells
        e = np.zeros(len(values)); e[r * C:(r + 1) * C] = 1; e[n_in + r] = -1; rows.append(e)
    for c in range(C):
        e = np.zeros(len(values)); e[c:n_in:C] = 1; e[n_in + R + c] = -1; rows.append(e)
    e = np.zeros(len(values)); e[n_in:n_in + R] = 1; e[-1] = -1; rows.append(e)
    return sp.csr_matrix(np.array(rows)), values, n_in


@pytest.mark.parametrize("pushes", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_exact_intervals_match_an_independent_lp_per_cell(seed, pushes, monkeypatch):
    if not pushes:  # the exact rounds alone (no witness from the cheap passes): each min / max is theirs
        monkeypatch.setattr(attack, "MAX_PUSH", 0)
        monkeypatch.setattr(attack, "GROUP_CELLS", 1)
    rng = np.random.default_rng(seed)
    A, values, n_in = table(rng, 6, 7)
    unknown = np.zeros(len(values), bool)
    unknown[rng.choice(n_in, size=18, replace=False)] = True
    unknown[n_in + rng.choice(13, size=2, replace=False)] = True  # two margins hidden as well
    cells = np.flatnonzero(unknown)
    low, high = exact_intervals(A, unknown, values, cells, values)
    # independent: each hidden cell minimised and maximised over {A x = 0, x ≥ 0, published fixed}
    bounds = [(0, None) if u else (v, v) for u, v in zip(unknown, values)]
    for i, c in enumerate(cells):
        cost = np.zeros(len(values)); cost[c] = 1
        lo = linprog(cost, A_eq=A.toarray(), b_eq=np.zeros(A.shape[0]), bounds=bounds).fun
        hi = -linprog(-cost, A_eq=A.toarray(), b_eq=np.zeros(A.shape[0]), bounds=bounds).fun
        assert low[i] == pytest.approx(lo, abs=1e-6), f"cell {c}: min"
        assert high[i] == pytest.approx(hi, abs=1e-6), f"cell {c}: max"
    assert (low == 0).any(), "the sample must hold cells whose minimum is 0"


def test_the_exact_rounds_alone_find_a_minimum_no_witness_reached(monkeypatch):
    """x0 + x1 + x2 = 10 published, x0 = 3, x1 = 5, x2 = 2 hidden, x2 ≤ 2 by a published
    x2 + x3 = 2: without the cheap passes, the max LP of x0 leaves x0 at 8 or 10 and x1 at 0; x0's
    minimum (0, x1 = 8) needs its own LP, x2's minimum (0) is read from a witness at 0."""
    monkeypatch.setattr(attack, "MAX_PUSH", 0)
    monkeypatch.setattr(attack, "GROUP_CELLS", 1)
    # variables: x0 x1 x2 T | x3 U   (rows: T = x0 + x1 + x2, U = x2 + x3)
    A = sp.csr_matrix(np.array([[1, 1, 1, -1, 0, 0], [0, 0, 1, 0, 1, -1]], dtype=float))
    value = np.array([3, 5, 2, 10, 0, 2], dtype=float)
    unknown = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    low, high = exact_intervals(A, unknown, value, np.array([0, 1, 2]), value)
    assert low.tolist() == [0.0, 0.0, 0.0]
    assert high.tolist() == [10.0, 10.0, 2.0]


@pytest.mark.parametrize("seed", range(4))
def test_propagated_bounds_contain_every_lp_interval_and_spare_lps(seed, monkeypatch):
    """attack.propagate_bounds is sound (each hidden cell's LP min / max within [L, U], checked by
    linprog) and tight often enough that the exact rounds skip LPs (same intervals as without)."""
    rng = np.random.default_rng(100 + seed)
    A, values, n_in = table(rng, 6, 7)
    unknown = np.zeros(len(values), bool)
    unknown[rng.choice(n_in, size=20, replace=False)] = True
    unknown[n_in + rng.choice(13, size=3, replace=False)] = True
    U = np.flatnonzero(unknown)
    K = np.flatnonzero(~unknown)
    Ac = A.tocsc()
    rhs = -(Ac[:, K] @ values[K])
    L_b, U_b = attack.propagate_bounds(Ac[:, U], rhs)
    bounds = [(0, None) if u else (v, v) for u, v in zip(unknown, values)]
    for i, c in enumerate(U):
        cost = np.zeros(len(values)); cost[c] = 1
        lo = linprog(cost, A_eq=A.toarray(), b_eq=np.zeros(A.shape[0]), bounds=bounds).fun
        hi = -linprog(-cost, A_eq=A.toarray(), b_eq=np.zeros(A.shape[0]), bounds=bounds).fun
        assert L_b[i] <= lo + 1e-9 and hi <= U_b[i] + 1e-9, f"cell {c}: [{lo}, {hi}] not within [{L_b[i]}, {U_b[i]}]"
    assert np.isfinite(U_b).all()  # every unknown of a table with a published grand total is bounded

    calls = {"lps": 0}
    solve = attack._solve

    def counted(*a, **k):
        calls["lps"] += 1
        return solve(*a, **k)

    monkeypatch.setattr(attack, "_solve", counted)
    low, high = exact_intervals(A, unknown, values, U, values)
    with_bounds = calls["lps"]
    calls["lps"] = 0
    monkeypatch.setattr(attack, "propagate_bounds", lambda AU, rhs: (np.zeros(AU.shape[1]), np.full(AU.shape[1], np.inf)))
    low2, high2 = exact_intervals(A, unknown, values, U, values)
    assert low == pytest.approx(low2, abs=1e-6) and high == pytest.approx(high2, abs=1e-6)
    assert with_bounds < calls["lps"], "the propagated bounds spared no LP"


def test_propagated_bounds_of_a_chain_of_equations():
    """x0 + x1 = 5, x1 + x2 = 3, x2 = 1 (x ≥ 0): propagation finds x2 = 1, x1 = 2, x0 = 3; and an
    equation with two free unknowns leaves them in [0, total]; a hidden parent with an unbounded
    child stays unbounded."""
    AU = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=float))
    L, U = attack.propagate_bounds(AU, np.array([5.0, 3.0, 1.0, 4.0]))
    assert L.tolist() == [3.0, 2.0, 1.0, 0.0, 0.0]
    assert U.tolist() == [3.0, 2.0, 1.0, 4.0, 4.0]
    # a hidden parent and its children (coefficient −1 on the parent): a + b − T = 0, a + c = 2:
    # a and c ≤ 2, b and T unbounded
    AU = sp.csr_matrix(np.array([[-1, 1, 1, 0], [0, 1, 0, 1]], dtype=float))  # columns T, a, b, c
    L, U = attack.propagate_bounds(AU, np.array([0.0, 2.0]))
    assert U[1] == 2.0 and U[3] == 2.0 and np.isinf(U[0]) and np.isinf(U[2])


def test_attack_where_finds_positions_of_unknowns():
    """Attack.where: the position of each cell among the attack's unknowns (a sorted search), -1
    for a cell the attacker knows, against the plain dictionary it replaced."""
    rng = np.random.default_rng(3)
    A, values, _ = table(rng, 7, 9)
    unknown = rng.random(len(values)) < 0.4
    width = np.full(len(values), 2.0)
    att = attack.attack(A, unknown, values, width, seed=values)
    pos = {int(v): i for i, v in enumerate(att.var)}
    cells = np.concatenate([rng.integers(0, len(values), 200), [0, len(values) - 1]])
    assert att.where(cells).tolist() == [pos.get(int(c), -1) for c in cells]
    assert (att.where(att.var) == np.arange(len(att.var))).all()
    assert att.where(np.zeros(0, dtype=np.int64)).tolist() == []
