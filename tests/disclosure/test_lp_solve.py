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


def test_build_lp_passes_the_lp_it_is_given():
    """build_lp hands the arrays over as buffers: the LP HiGHS holds is the one asked for, defaults
    included, and it solves as an LP (all columns continuous)."""
    import highspy
    import numpy as np
    import scipy.sparse as sp

    from preau.disclosure.lp import BIG, build_lp, optimal

    # x0 = x1 + x2, x1 = 2: minimise x0 + 3 x2 (x0 ≤ 10)
    M = sp.csr_matrix(np.array([[1.0, -1.0, -1.0], [0.0, 1.0, 0.0]]))
    h = build_lp(M, cost=np.array([1.0, 0.0, 3.0]), upper=np.array([10.0, BIG, BIG]),
                 row_lower=np.array([0.0, 2.0]), row_upper=np.array([0.0, 2.0]), presolve="off")
    lp = h.getLp()
    assert list(lp.col_cost_) == [1.0, 0.0, 3.0] and list(lp.col_lower_) == [0.0, 0.0, 0.0]
    assert list(lp.col_upper_) == [10.0, BIG, BIG]
    assert list(lp.row_lower_) == [0.0, 2.0] and list(lp.row_upper_) == [0.0, 2.0]
    assert lp.a_matrix_.format_ == highspy.MatrixFormat.kColwise
    assert sp.csc_matrix((lp.a_matrix_.value_, lp.a_matrix_.index_, lp.a_matrix_.start_), shape=(2, 3)).toarray().tolist() \
        == M.toarray().tolist()
    h.run()
    assert optimal(h) and list(h.getSolution().col_value) == [2.0, 2.0, 0.0]
    assert h.getInfo().mip_node_count <= 0  # solved as an LP, not a MIP
    d = build_lp(M)  # defaults: zero cost, 0 ≤ x ≤ BIG, rows = 0
    dl = d.getLp()
    assert list(dl.col_cost_) == [0.0] * 3 and list(dl.col_upper_) == [BIG] * 3 and list(dl.row_upper_) == [0.0, 0.0]
