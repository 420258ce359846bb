"""Protection widths capped by what the public totals leave (``attack.cap_widths``): a child is at
most its parent's bound, a parent at most the sum of its children's, carried through the equations."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from preau.disclosure.attack import cap_widths

# 0: school X1 total (public, 2)   1: school X2 total (public, 2)
# 2: flow Y → X1   3: flow Y → X2   4: flow Z → X1   5: sector Y total   6, 7: Y's two level cells
# 8: sector Z total, 9: a cell under Z with a third, unbounded child 10
EQUATIONS = [
    {0: -1, 2: 1, 4: 1},   # X1 = (Y, X1) + (Z, X1)
    {1: -1, 3: 1},         # X2 = (Y, X2)
    {5: -1, 2: 1, 3: 1},   # Y = (Y, X1) + (Y, X2)
    {5: -1, 6: 1, 7: 1},   # Y = its two level cells
    {8: -1, 4: 1, 10: 1},  # Z = (Z, X1) + an unbounded cell
    {8: -1, 9: 1},         # Z = its one level cell
]


def _matrix() -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for r, eq in enumerate(EQUATIONS):
        for c, v in eq.items():
            rows.append(r)
            cols.append(c)
            vals.append(v)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(EQUATIONS), 11))


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Widths of 5 everywhere; the two school totals public, at 2."""
    public = np.zeros(11, bool)
    public[[0, 1]] = True
    value = np.full(11, np.nan)
    value[[0, 1]] = 2.0
    return np.full(11, 5.0), public, value


def test_direct_children_of_a_public_total_only_with_one_round():
    width, public, value = _inputs()
    w = cap_widths(_matrix(), width, public, value, rounds=1)
    assert w.tolist() == [2, 2, 2, 2, 2, 5, 5, 5, 5, 5, 5]


def test_bounds_carried_through_the_equations():
    width, public, value = _inputs()
    w = cap_widths(_matrix(), width, public, value)
    # Y's flows go to X1 and X2 only: Y ≤ 2 + 2, so its level cells too
    assert w[5] == 4 and w[6] == 4 and w[7] == 4
    # Z has an unbounded flow: no cap for Z nor its level cell
    assert w[8] == 5 and w[9] == 5 and w[10] == 5
    assert w[4] == 2  # still at most X1
    # never above the width asked
    assert (w <= width).all()
