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
