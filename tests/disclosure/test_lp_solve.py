"""The attacker's LP helper of the audit (generated counts only)."""

import numpy as np
import pytest
import scipy.sparse as sp


def test_solve_reuses_the_model_with_only_the_changed_costs():
    """_solve passes HiGHS only the costs that changed since the last solve on the same model: a
    sequence of objectives on one model gives the optima of fresh models, one per objective."""
    from preau.disclosure.attack import _highs, _solve

    rng = np.random.default_rng(3)
    x = rng.integers(0, 9, (6, 5)).astype(float)
    A = sp.vstack([sp.kron(sp.eye(6), np.ones((1, 5))), sp.kron(np.ones((1, 6)), sp.eye(5))]).tocsr()
    rhs = A @ x.ravel()
    warm = _highs(A.tocsc(), rhs)
    for k in range(12):
        cost = np.zeros(30)
        cost[rng.choice(30, size=1 + k % 4, replace=False)] = rng.uniform(-1, 1, 1 + k % 4)
        sense = bool(k % 2)
        got = _solve(warm, cost, sense)
        want = _solve(_highs(A.tocsc(), rhs), cost, sense)
        assert got @ cost == pytest.approx(want @ cost, abs=1e-9), k
        assert np.allclose(A @ got, rhs)
