"""One place that sets up HiGHS linear programs (the attacker's LPs and the protection LPs)."""

from __future__ import annotations

import os
import sys

import highspy
import numpy as np
import scipy.sparse as sp

BIG = 1e9  # upper bound standing for "unbounded"
PRESOLVE = os.environ.get("PREAU_PRESOLVE", "on")
# HiGHS presolve rule "dependent equations" (bit 10 of ``presolve_rule_off`` in HiGHS 1.16). Our
# systems are sums along hierarchies: many equations are dependent, and that rule's search (a
# factorisation of the equations) is what dominates big blocks — on the national school × level
# block (113k equations, 118k unknowns) presolve took 18 of 19.5 s with it, 1 s without, for the
# same optimum. The simplex copes with the redundant rows.
NO_DEPENDENT_EQUATIONS = 1 << 10

_BANNER_DONE = False


def new_highs() -> highspy.Highs:
    """A silent HiGHS instance (the first one prints a banner on stdout: keep ``--json`` clean)."""
    global _BANNER_DONE
    if not _BANNER_DONE:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _BANNER_DONE = True
    else:
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("simplex_strategy", 4)  # primal simplex: the basis stays feasible when the cost changes
    return h


def build_lp(M: sp.spmatrix, *, cost: np.ndarray | None = None, lower: np.ndarray | None = None,
             upper: np.ndarray | None = None, row_lower: np.ndarray | None = None,
             row_upper: np.ndarray | None = None, presolve: str | None = None) -> highspy.Highs:
    """A HiGHS instance holding ``row_lower ≤ M x ≤ row_upper``, ``lower ≤ x ≤ upper``, minimise
    ``cost · x``. Defaults: zero cost, ``0 ≤ x ≤ BIG``, rows ``= 0``."""
    M = sp.csc_matrix(M)
    nrow, ncol = M.shape
    h = new_highs()
    h.setOptionValue("presolve", presolve or PRESOLVE)
    h.setOptionValue("presolve_rule_off", NO_DEPENDENT_EQUATIONS)
    f64 = lambda a, n, fill: np.full(n, fill) if a is None else np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    # the arrays go to HiGHS as numpy buffers (passModel's array overload): a HighsLp's fields are
    # filled element by element (national fallback repairs, 40k columns: 22 → 3 ms per LP). All
    # columns continuous: the same LP.
    status = h.passModel(ncol, nrow, M.nnz, int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize), 0.0,
                         f64(cost, ncol, 0.0), f64(lower, ncol, 0.0), f64(upper, ncol, BIG),
                         f64(row_lower, nrow, 0.0), f64(row_upper, nrow, 0.0),
                         M.indptr.astype(np.int32), M.indices.astype(np.int32), M.data.astype(np.float64),
                         np.zeros(ncol, dtype=np.int32))
    if status == highspy.HighsStatus.kError:
        raise ValueError("HiGHS refused the LP")  # a bug of ours (sizes), never a user's data
    return h


def optimal(h: highspy.Highs) -> bool:
    return h.getModelStatus() == highspy.HighsModelStatus.kOptimal
