"""Primary and secondary suppression over hierarchies and linked tables, proven by the audit.

Method (all tables of a build together, on one model — see :mod:`preau.disclosure.model`):

1. **Primary**: a cell with ``1 ≤ n < k`` is hidden (zeros are published). Cells of a table with
   rule ``none`` (published exactly elsewhere) and cells published earlier with the same value are
   known to the attacker and are never hidden; cells hidden in an earlier published version stay
   hidden (no re-opening by differencing).
2. **Local pass** (fast, every equation ``parent = Σ children``): with a published parent, the
   hidden children of an equation must be at least two and add up to at least the protection
   width (else their sum, hence each, is narrowed); with a hidden parent, at least one child is
   hidden. The cheapest complement is chosen, preferring cells that already sit next to hidden
   cells (they close rectangles, as in the optimal methods).
3. **Audit-driven repair** (the proof): the attacker LPs run on every hidden cell; for each cell
   still narrowed to less than its width, a *protection LP* (Fischetti–Salazar style) looks, in
   the cell's neighbourhood, for a cheapest deviation ``y`` with ``A y = 0``, ``y_c = w`` and
   ``x + y ≥ 0``, where hidden cells cost nothing and published cells cost their count. Hiding
   the support of ``y`` makes ``x`` and ``x + y`` both feasible, so the cell's range becomes ≥ w:
   each repair is guaranteed, and hiding more never narrows another cell. Repeat until the audit
   passes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from preau.disclosure.attack import DEBUG, SMALL_BLOCK, above_threshold, _components, close_workers, map_jobs, start_workers, _feasible_point, _highs as _attacker_lp, _solve as _lp_solve, cap_widths, AuditReport, _report, audit, audit_model, exact_intervals
from preau.disclosure.hierarchy import CountTable
from preau.disclosure.lp import BIG, build_lp, optimal
from preau.disclosure.model import Model, build_model
from preau.errors import PreauError, Problem

Method = Literal["modular", "hypercube", "primary"]


@dataclass
class ProtectedTable:
    """A protected table: ``frame`` has the measure null where hidden and a ``secret`` column."""

    name: str
    frame: pl.DataFrame
    table: CountTable  # the published form (for :func:`preau.disclosure.audit`)
    cells: int
    cells_hidden: int
    pupils_hidden: int
    primary: int
    rule: str
    k: int | None
    protection_width: int | None
    audit: str = "passed"

    def disclosure(self) -> dict:
        """The ``disclosure`` entry of the build manifest / ``disclosure.json``."""
        return {"rule": "threshold" if self.rule == "threshold" else "none", "k": self.k,
                "protection_width": self.protection_width, "cells": self.cells,
                "cells_hidden": self.cells_hidden, "pupils_hidden": self.pupils_hidden, "audit": self.audit}


@dataclass
class ProtectionStats:
    method: str
    seconds: float = 0.0
    primary: int = 0
    hidden: int = 0
    pupils_hidden: int = 0
    local_added: int = 0
    repair_rounds: int = 0
    repair_lps: int = 0
    repair_added: int = 0
    unhidden: int = 0  # secondary cells published again by the un-hide pass
    audit: AuditReport | None = None
    timings: dict = field(default_factory=dict)


class _State:
    """Per-variable facts shared by the suppression steps."""

    def __init__(self, model: Model, n_current: int):
        n = model.n
        self.model = model
        self.value = model.value
        # a feasible point: the true counts, completed where no value is known here (see
        # _complete); the witnesses x + y of the repair are only valid if x is feasible
        self.x = _complete(model)
        self.in_current = np.zeros(n, bool)
        self.in_none = np.zeros(n, bool)
        self.k = np.zeros(n)
        self.width = np.zeros(n)
        self.old_hidden = np.zeros(n, bool)
        self.old_known = np.zeros(n, bool)  # published earlier with the current value
        self.old_only = np.ones(n, bool)
        for i, ti in enumerate(model.tables):
            pol = ti.table.policy
            if i < n_current:
                self.in_current[ti.var] = True
                self.old_only[ti.var] = False
                if pol.rule == "none":
                    self.in_none[ti.var] = True
                else:
                    np.maximum.at(self.k, ti.var, float(pol.k))
            else:
                self.old_hidden[ti.var[ti.hidden]] = True
                pub = ti.var[~ti.hidden]
                same = ti.values[~ti.hidden] == model.value[pub]
                self.old_known[pub[same]] = True
            if pol.rule == "threshold":
                np.maximum.at(self.width, ti.var, float(pol.width))
        self.old_only &= ~self.in_current
        # variables the attacker knows whatever we do
        self.fixed = self.in_none | self.old_known | (self.old_only & ~self.old_hidden)
        self.decidable = self.in_current & ~self.fixed
        self.width = cap_widths(model.A, self.width, self.in_none, model.value)
        # unknown whatever we do: hidden in an earlier version and absent from this build
        self.unknown_always = self.old_only & self.old_hidden
        self.sup = np.zeros(n, bool)
        # witnesses: lowest / highest value of each variable seen in a feasible point
        self.lo = self.x.copy()
        self.hi = self.lo.copy()

    def hidden(self) -> np.ndarray:
        return self.sup | self.unknown_always

    def hidden_at(self, idx: np.ndarray) -> np.ndarray:
        """:meth:`hidden` of some cells only (the repair asks per component: O(cells asked))."""
        return self.sup[idx] | self.unknown_always[idx]

    def known(self) -> np.ndarray:
        return ~self.hidden()


def _complete(model: Model) -> np.ndarray:
    """The true counts, with a feasible value for the cells whose value this build does not have:
    cells hidden in a table given as ``published`` (an earlier version, or the public outputs a
    restricted reader also sees) and absent from the tables being protected. Taking them as 0 (as
    before) gives a point that breaks the equations they sit in: the attacker LPs restricted around
    it were infeasible (``audit-inconsistent``) and certificates built from it were not proofs.
    The completion is an interior point of the equations with every known value fixed."""
    v = model.value
    unk = np.isnan(v)
    if not unk.any():
        return v.copy()
    A = model.A.tocsc()
    known = ~unk
    rhs = -(A[:, known] @ v[known]) if known.any() else np.zeros(A.shape[0])
    AU = A[:, unk].tocsr()
    rows = np.nonzero(np.diff(AU.indptr) > 0)[0]
    x = v.copy()
    if len(rows) == 0:
        x[unk] = 0.0
        return x
    AU = AU[rows]
    _, vlab, rlab = _components(AU)
    x[unk] = np.maximum(_feasible_point(AU, rhs[rows], vlab, rlab), 0.0)
    return x


def _check_sums(model: Model, n_current: int) -> None:
    """The true counts must satisfy every equation (margins = sums of their parts)."""
    v = model.value
    ok = ~np.isnan(v)
    A = model.A
    full = np.asarray((abs(A) @ (~ok).astype(np.float64))).ravel() == 0
    res = A @ np.nan_to_num(v)
    bad = np.nonzero(full & (np.abs(res) > 1e-6))[0]
    if len(bad):
        var = A.indices[A.indptr[bad[0]]:A.indptr[bad[0] + 1]]
        parent = var[A.data[A.indptr[bad[0]]:A.indptr[bad[0] + 1]] < 0]
        t, row = model.where(int(parent[0] if len(parent) else var[0]))
        cell = ", ".join(f"{d}={t.frame[d][row]}" for d in t.dimensions)
        raise PreauError(Problem(
            "disclosure-margins",
            f"{len(bad)} total(s) ne sont pas la somme de leurs parties (par ex. la cellule {cell})",
            f"{len(bad)} total(s) are not the sum of their parts (e.g. cell {cell})", file=t.name))


def _primary(st: _State) -> np.ndarray:
    v = st.value
    prim = st.decidable & (v >= 1) & (v < st.k)
    forced = st.decidable & st.old_hidden
    return prim | forced


SMALL_PENALTY = 4.0
ZERO_PENALTY = 6.0
BONUS = 50.0  # extra cost of a complement that closes no rectangle with hidden cells (50: such a complement is chosen whenever one exists — fewer cells and pupils hidden than 5, see docs)


def _local_pass(st: _State, A: sp.csr_matrix, AT: sp.csr_matrix, max_bonus: int = 64) -> int:
    """Fix-point of the per-equation conditions (see module doc). Returns cells added.

    The loop is compiled (:mod:`preau.disclosure.local`; plain Python on lists before, national
    build 3.4 s, see CHANGELOG); its choices are those of the conditions above: the first minimum
    of the candidates' cost (``local._score``: BONUS, SMALL_PENALTY, ZERO_PENALTY above), in the
    equation's column order."""
    from preau.disclosure.local import local_pass

    m = A.shape[0]
    neg = A.data < 0
    hid = st.hidden()  # a new array: the pass updates it
    # number of hidden cells per equation, kept up to date
    hcount = np.asarray(abs(A) @ hid.astype(np.float64)).ravel().astype(np.int64)
    # per equation: its parent, the hidden mass of its children, the largest width in it
    rows_of = np.repeat(np.arange(m), np.diff(A.indptr))
    eq_parent = np.full(m, -1, dtype=np.int64)
    eq_parent[rows_of[neg]] = A.indices[neg]
    child = ~neg
    hmass = np.bincount(rows_of[child], weights=(st.x * hid)[A.indices[child]], minlength=m)
    wmax = np.zeros(m)
    np.maximum.at(wmax, rows_of, st.width[A.indices])
    del rows_of, child
    added = local_pass(A.indptr, A.indices, neg, AT.indptr, AT.indices, hid,
                       np.ascontiguousarray(st.x, dtype=np.float64), np.ascontiguousarray(st.width, dtype=np.float64),
                       st.decidable, hcount, eq_parent, hmass, wmax,
                       max_bonus, BONUS, SMALL_PENALTY, ZERO_PENALTY)
    if len(added):
        st.sup[added] = True
    return len(added)


def _neighbourhood(c: int, st: _State, A: sp.csr_matrix, AT: sp.csr_matrix, max_vars: int,
                   depth: int, wide: int = 40, hidden_only: bool = False) -> np.ndarray:
    """Variables near ``c`` in the equation graph; wide equations contribute only their hidden
    members, their parent and their cheapest published members."""
    ptr, idx, coef = A.indptr, A.indices, A.data
    tptr, tidx = AT.indptr, AT.indices
    hid = st.hidden()
    usable = hid.copy() if hidden_only else st.decidable | hid
    usable[c] = True
    seen = {c}
    frontier = [c]
    seen_eq: set[int] = set()
    for _ in range(depth):
        nxt = []
        for v in frontier:
            for e in tidx[tptr[v]:tptr[v + 1]]:
                if e in seen_eq:
                    continue
                seen_eq.add(e)
                vs = idx[ptr[e]:ptr[e + 1]]
                vs = vs[usable[vs]]
                if len(vs) > wide:
                    cs = coef[ptr[e]:ptr[e + 1]][usable[idx[ptr[e]:ptr[e + 1]]]]
                    par = vs[cs < 0]
                    hv = vs[hid[vs] & (cs > 0)]
                    hv = hv[np.argsort(-st.x[hv], kind="stable")[:wide]]  # hidden, most mass first
                    rest = vs[~hid[vs] & (cs > 0)]
                    cheap = rest[np.argsort(st.x[rest], kind="stable")[:wide]]
                    vs = np.concatenate([par, hv, cheap])
                for u in vs.tolist():
                    if u not in seen:
                        seen.add(u)
                        nxt.append(u)
            if len(seen) >= max_vars:
                break
        frontier = nxt
        if len(seen) >= max_vars or not frontier:
            break
    return np.fromiter(seen, dtype=np.int64)[:max_vars * 2]


# neighbourhood tiers of the protection LP: (depth, max variables, exclude published cells above
# cap × width; None = no cap). Stop at the first tier whose cost is below GOOD_ENOUGH × width.
# The first tier moves hidden cells only: a cell the audit could not prove is often protected
# already, and a deviation through hidden cells alone is the missing witness (nothing added).
REPAIR_TIERS = ((6, 600, "hidden"), (10, 2000, "hidden"), (3, 400, 20), (4, 3000, 20), (4, 3000, None), (6, 20000, None))
GOOD_ENOUGH = 8


def _cheaper(best: tuple | None, y: np.ndarray, N: np.ndarray, st: "_State") -> tuple | None:
    """The cheaper of ``best`` and the deviation ``y`` on ``N`` (cost: cells newly hidden, each its
    count + 1). Returns ``(cost, new cells, support, y on the support)``."""
    nz = np.abs(y) > 1e-7
    support = N[nz]
    new = support[~st.sup[support] & st.decidable[support]]
    cost = float((st.x[new] + 1).sum())
    return (cost, new, support, y[nz]) if best is None or cost < best[0] else best


def _repair(c: int, st: _State, A: sp.csr_matrix, AT: sp.csr_matrix, known_short: bool = False) -> tuple[int, int]:
    """Protection LP for one cell (see module doc). Returns (cells added, LPs solved).

    ``known_short``: the attacker's exact range of the cell is below its width, so no deviation
    through hidden cells alone exists: the hidden-only tiers are skipped."""
    w = float(st.width[c])
    lps = 0
    best = None
    for depth, max_vars, cap in REPAIR_TIERS:
        if known_short and cap == "hidden":
            continue
        N = _neighbourhood(c, st, A, AT, max_vars, depth, hidden_only=cap == "hidden")
        if cap == "hidden":
            cap = None
        if cap is not None:
            N = N[(st.x[N] <= cap * w) | st.hidden_at(N) | (N == c)]
        for direction in (1.0, -1.0):
            if direction < 0 and st.x[c] < w:
                continue
            res = _protection_lp(c, N, st, A, w, direction)
            lps += 1
            if res is not None:
                best = _cheaper(best, res[0], N, st)
        if best is not None and best[0] <= GOOD_ENOUGH * w:
            break
    if best is None and 0 < st.x[c] < w:
        # no deviation moves it by its width either way: one to 0 and one up by the rest (a
        # range [0, w] from two witnesses), on the widest neighbourhood
        def solve(amount: float, direction: float) -> np.ndarray | None:
            res = _protection_lp(c, N, st, A, w, direction, amount)
            return None if res is None else res[0]

        split = _split_deviations(solve, float(st.x[c]), w)
        lps += 2
        if split is not None:
            return sum(_apply_deviation(st, _cheaper(None, y, N, st)) for y in split), lps
    if best is None:
        return -1, lps
    return _apply_deviation(st, best), lps


def _split_deviations(solve, x: float, w: float) -> list[np.ndarray] | None:
    """A cell of count ``0 < x < w`` that no deviation moves by its width either way (its interval
    is bounded on both sides: at most a small public total above it, 0 below) is still protected
    by two: one down to 0 and one up by ``w − x``, whose witnesses give the range ``[0, w]``.
    ``solve(amount, direction)`` returns a deviation (or ``None``). Returns both, or ``None``."""
    down = solve(x, -1.0)
    if down is None:
        return None
    up = solve(w - x, 1.0)
    if up is None:
        return None
    return [down, up]


def _deviation_lp(st: _State, N: np.ndarray, w: float) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """The protection LP over the variables ``N``: columns ``y+`` (n) then ``y−`` (n),
    ``A_N (y+ − y−) = 0``, ``y− ≤ x`` (so ``x + y ≥ 0``); hidden cells cost almost nothing,
    published ones their count (+1, scaled by the width). Returns (matrix, cost, upper bounds)."""
    sub = st.AC[:, N].tocsr()
    rows = np.nonzero(np.diff(sub.indptr) > 0)[0]
    sub = sub[rows]
    M = sp.hstack([sub, -sub], format="csc")
    cost = _deviation_cost(st, N, w)
    return M, np.concatenate([cost, cost]), np.concatenate([np.full(len(N), BIG), st.x[N]])


def _deviation_cost(st: _State, N: np.ndarray, w: float) -> np.ndarray:
    return np.where(st.hidden_at(N), 1e-3, (st.x[N] + 1.0) / w)


def _protection_lp(c: int, N: np.ndarray, st: _State, A: sp.csr_matrix, w: float,
                   direction: float, amount: float | None = None) -> tuple[np.ndarray, float] | None:
    """The cheapest deviation moving ``c`` by ``amount`` (default ``w``) in ``direction``."""
    n = len(N)
    M, cost, upper = _deviation_lp(st, N, w)
    lower = np.zeros(2 * n)
    ci = int(np.nonzero(N == c)[0][0])
    move = w if amount is None else amount
    if direction > 0:
        lower[ci] = upper[ci] = move
        upper[n + ci] = 0.0
    else:
        lower[n + ci] = upper[n + ci] = move
        upper[ci] = 0.0
    # dual simplex without presolve: on the national fallback cells (neighbourhoods of 20,000
    # cells) 5× faster than the primal simplex after presolve, for the same optimum
    h = build_lp(M, cost=cost, lower=lower, upper=upper, presolve="off")
    h.setOptionValue("simplex_strategy", 1)
    h.run()
    if not optimal(h):
        return None
    sol = np.asarray(h.getSolution().col_value)
    return sol[:n] - sol[n:], h.getInfo().objective_function_value


# Cells whose component (over the cells that can move: decidable or unknown) has at most this many
# variables get their protection LP on the whole component, one HiGHS model per component kept
# warm across cells (only the repaired cell's bounds and the costs of newly hidden cells change).
# Larger components (national tables) use the neighbourhood tiers of :func:`_repair`.
REPAIR_COMPONENT = 20_000
# Where a cell's whole component is larger (linked tables of several départements: département
# rows and cross-border flows join them), the protection LP first runs on a *local* component: the
# movable cells linked through equations of at most LOCAL_WIDE movable members (the wide ones — a
# département's communes, the départements of the country — are not followed), up to
# LOCAL_COMPONENT cells. Any deviation on a subset of the cells that keeps every equation
# restricted to that subset balanced keeps the full equations balanced (cells outside stay as they
# are): the repair is as sound as on the whole component, only possibly dearer or infeasible — then
# the neighbourhood tiers of :func:`_repair` run as before.
LOCAL_WIDE = 100
LOCAL_COMPONENT = 40_000
# On a local component, the protection LPs of a round first move only the cells within REPAIR_BALL
# steps (cell → equation → cell, over the same equations) of the cells to repair: a subset, so as
# sound, and smaller LPs (national round 0: 488k cells instead of 876k). A cell with no deviation
# there gets the whole local component next. Optima may be a little dearer. National replay
# (676,254 cells hidden before, repair 34.5 s): 3 steps 23.5 s, +200 cells, +22k pupils hidden;
# 4 steps 27.2 s, +47 cells, +1.8k pupils; 5 steps 30.5 s, +43 cells; 6 steps 31–33 s.
REPAIR_BALL = 4


class _ComponentLPs:
    """Components of the movable cells (see ``REPAIR_COMPONENT``); with ``local``, the local
    components (``LOCAL_WIDE``, ``LOCAL_COMPONENT``). The protection LPs run per component in
    :func:`_repair_group`."""

    def __init__(self, st: _State, A: sp.csr_matrix, local: bool = False):
        self.limit = LOCAL_COMPONENT if local else REPAIR_COMPONENT
        self.movable = np.nonzero(st.decidable | st.unknown_always)[0]
        Am = A[:, self.movable].tocsr()
        if local:
            Am = Am[np.diff(Am.indptr) <= LOCAL_WIDE]
        _, lab, _ = _components(Am)
        self.label = lab
        self.by_row, self.by_col = (Am, Am.tocsc()) if local else (None, None)  # Am is CSR
        self.comp = np.full(st.model.n, -1, dtype=np.int64)
        self.comp[self.movable] = lab
        self.size = np.bincount(lab) if len(lab) else np.zeros(0, np.int64)

    def covers(self, c: int) -> bool:
        k = self.comp[c]
        return k >= 0 and self.size[k] <= self.limit

    def ball(self, cells: list[int], depth: int) -> np.ndarray:
        """The movable cells within ``depth`` steps (cell → equation → cell, over the equations of
        the local components) of ``cells``: sorted model indices, within the cells' components."""
        cols = np.searchsorted(self.movable, np.asarray(cells, dtype=np.int64))
        seen = np.zeros(len(self.movable), bool)
        seen[cols] = True
        front = cols
        for _ in range(depth):
            rows = np.unique(self.by_col[:, front].indices)
            near = np.unique(self.by_row[rows].indices)
            front = near[~seen[near]]
            if not len(front):
                break
            seen[front] = True
        return self.movable[seen]

    def members(self, ks: list[int]) -> dict[int, np.ndarray]:
        """The cells (sorted model indices) of each component of ``ks`` (one sort for all)."""
        want = np.zeros(len(self.size), bool)
        want[np.asarray(ks, dtype=np.int64)] = True
        sel = np.nonzero(want[self.label])[0]
        order = sel[np.argsort(self.label[sel], kind="stable")]
        labs = self.label[order]
        cuts = np.flatnonzero(np.diff(labs)) + 1
        return {int(self.label[g[0]]): self.movable[g] for g in np.split(order, cuts) if len(g)}


class _SubState:
    """The cells of one component in local numbering (0..n−1): what their repairs read and write,
    in this process or in a worker (picklable). Duck-types the parts of :class:`_State` that
    :func:`_deviation_lp`, :func:`_cheaper` and :func:`_apply_deviation` use."""

    def __init__(self, st: _State, N: np.ndarray):
        sub = st.AC[:, N].tocsr()
        self.AC = sub[np.diff(sub.indptr) > 0].tocsc()
        self.x = st.x[N]
        self.width = st.width[N]
        self.sup = st.sup[N].copy()
        self.unknown_always = st.unknown_always[N]
        self.decidable = st.decidable[N]
        self.lo = st.lo[N].copy()
        self.hi = st.hi[N].copy()

    def hidden_at(self, idx: np.ndarray) -> np.ndarray:
        return self.sup[idx] | self.unknown_always[idx]


# Cells of a component whose count is below their width can only be moved up (``y_c = +w``): up to
# REPAIR_GROUP of them, no two sharing an equation with the other's equation neighbours, get one
# protection LP together (``y_c = w_c`` for each; any optimum moves each by its width, so hiding
# its support protects them all, as one LP per cell would). HiGHS pays about half of a repair LP's
# time whatever its iterations (national local components: 3–5 ms of 6–9 ms), so fewer LPs cost
# less; the joint optimum may share less than one cell after another does (a cell hidden by the
# first is free for the next). Measured on the 12 largest local components of the national round
# 0 (1,368 LPs, 13.9 s): 2 cells 828 LPs, 10.7 s; 4 cells 550 LPs, 8.3 s, 1,170 cells hidden
# instead of 1,150 (+1.7 %), pupils +1.6 %; 8 cells 7.8 s, +2.0 %, +1.1 %; requiring the cells to
# be 2 steps apart leaves no group at all. The cells that can move both ways keep their own LPs.
# National replay, back to back: repair 27.2 → 18.0 s (6,066 → 2,580 LPs), protect 70.9 → 63.9 s;
# 676,379 cells hidden instead of 676,300 (+0.012 %), 14,740,442 pupils (+0.018 %); the
# school × level bench: 130,732 cells instead of 130,736, the same pupils.
REPAIR_GROUP = 4


def _repair_group(job: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], int, int]:
    """Protection LPs of ``cells`` (local numbers, in order) on their whole component ``ss``: one
    HiGHS model kept warm across the cells (only the repaired cells' bounds and the costs of newly
    hidden cells change; cells that can only move up are repaired ``REPAIR_GROUP`` at a time). A
    deviation moves cells of the component only, so components are independent: any process may
    repair any of them, in any order, with the same result.
    Returns (cells newly hidden, lo, hi, cells with no deviation, cells tried, LPs solved)."""
    ss, cells = job
    n = len(ss.x)
    N = np.arange(n)
    w = float(max(ss.width.max(), 1.0))
    M, cost, upper = _deviation_lp(ss, N, w)
    h = build_lp(M, cost=cost, upper=upper, presolve="choose")
    h.setOptionValue("simplex_strategy", 1)  # dual simplex: re-solves after bound changes stay warm
    AC = ss.AC  # equations × cells (CSC)
    AR = AC.tocsr() if REPAIR_GROUP > 1 else None
    sup0 = ss.sup.copy()
    hid = ss.hidden_at(N)
    failed: list[int] = []
    tried = lps = 0

    def unprotected(c: int) -> bool:  # not hidden earlier only, nor certified by a repair before
        return bool(ss.sup[c]) and ss.hi[c] - ss.lo[c] < ss.width[c] - 1e-6

    def update_costs() -> None:  # cells hidden since the model was built: their cost changes
        now = ss.hidden_at(N)
        changed = np.nonzero(now != hid)[0]
        if len(changed):
            cc = _deviation_cost(ss, changed, w)
            cols = np.concatenate([changed, changed + n]).astype(np.int32)
            h.changeColsCost(len(cols), cols, np.concatenate([cc, cc]))
            hid[changed] = now[changed]

    def solve(group: np.ndarray, directions: np.ndarray):
        """Optimal deviation with ``y_c = direction × width`` for each cell of ``group``, or None."""
        nonlocal lps
        wc = ss.width[group].astype(np.float64)
        fixed = np.where(directions > 0, group, group + n)
        zero = np.where(directions > 0, group + n, group)
        cols = np.concatenate([fixed, zero]).astype(np.int32)
        val = np.concatenate([wc, np.zeros(len(group))])
        h.changeColsBounds(len(cols), cols, val, val)
        h.run()
        lps += 1
        y = None
        if optimal(h):
            sol = np.asarray(h.getSolution().col_value)
            y = sol[:n] - sol[n:]
        back = np.concatenate([group, group + n]).astype(np.int32)
        h.changeColsBounds(len(back), back, np.zeros(len(back)), np.concatenate([np.full(len(group), BIG), ss.x[group]]))
        return y

    def one(c: int) -> None:
        best = None
        for direction in (1.0, -1.0):
            if direction < 0 and ss.x[c] < ss.width[c]:
                continue
            y = solve(np.array([c]), np.array([direction]))
            if y is not None:
                best = _cheaper(best, y, N, ss)
        if best is None:
            failed.append(int(c))
        else:
            _apply_deviation(ss, best)

    pending = list(cells)
    while True:
        pending = [c for c in pending if unprotected(c)]
        if not pending:
            break
        # the first cell left, and (when it can only move up) the next ones that can only move up
        # and share no equation with the group's equation neighbours
        group, rest = [pending[0]], pending[1:]
        if REPAIR_GROUP > 1 and ss.x[group[0]] < ss.width[group[0]]:
            used = np.zeros(AC.shape[0], bool)  # equations of the group's equation neighbours

            def claim(rows: np.ndarray) -> None:  # the equations of these equations' cells
                used[AC[:, AR[rows].indices].indices] = True

            claim(AC.indices[AC.indptr[group[0]]:AC.indptr[group[0] + 1]])
            later = []
            for i, c in enumerate(rest):
                if len(group) == REPAIR_GROUP:
                    later += rest[i:]
                    break
                rows = AC.indices[AC.indptr[c]:AC.indptr[c + 1]]
                if ss.x[c] < ss.width[c] and not used[rows].any():
                    group.append(c)
                    claim(rows)
                else:
                    later.append(c)
            rest = later
        update_costs()
        tried += len(group)
        if len(group) == 1:
            one(group[0])
        else:
            y = solve(np.asarray(group), np.ones(len(group)))
            if y is not None:
                _apply_deviation(ss, _cheaper(None, y, N, ss))
            else:  # some cell of the group cannot move with the others: each alone
                for c in group:
                    update_costs()
                    one(c)
        pending = rest
    order = {c: i for i, c in enumerate(cells)}
    failed.sort(key=order.__getitem__)  # in the order given (groups take cells out of it)
    return np.nonzero(ss.sup & ~sup0)[0], ss.lo, ss.hi, failed, tried, lps


def _repair_components(st: _State, groups: list[tuple[np.ndarray, list[int]]]) -> list[tuple]:
    """:func:`_repair_group` of each ``(component cells, cells to repair)``, in worker processes
    when the components are many and large (see :func:`preau.disclosure.attack.map_jobs`); the
    results are applied to ``st``. Returns, per group, (failed cells, cells tried, LPs)."""
    # dearest first (component size × cells), one job at a time: the two processes end together
    # (national round 0: 179 components of 2k–32k cells)
    order = sorted(range(len(groups)), key=lambda i: -len(groups[i][0]) * len(groups[i][1]))
    # built as the workers take them (the first are solved while the next are cut out of the model)
    jobs = ((_SubState(st, groups[i][0]), np.searchsorted(groups[i][0], groups[i][1]).tolist()) for i in order)
    size = sum(len(N) for N, _ in groups)
    results = [None] * len(groups)
    for i, r in zip(order, map_jobs(_repair_group, jobs, size, chunksize=1, count=len(order))):
        results[i] = r
    out = []
    for (N, _), (new, lo, hi, failed, tried, lps) in zip(groups, results):
        st.sup[N[new]] = True
        np.minimum(st.lo[N], lo, out=lo)
        np.maximum(st.hi[N], hi, out=hi)
        st.lo[N], st.hi[N] = lo, hi
        out.append((N[np.asarray(failed, dtype=np.int64)], tried, lps))
    return out


def _apply_deviation(st: _State, best: tuple) -> int:
    """Hide the support of the chosen deviation; ``x + y`` is then feasible: a witness for every
    cell it moves. Returns the number of cells newly hidden."""
    _, new, support, y = best
    st.sup[new] = True
    moved = st.x[support] + y
    np.minimum.at(st.lo, support, moved)
    np.maximum.at(st.hi, support, moved)
    return len(new)


def _publish_derivable(st: _State, bad: np.ndarray) -> np.ndarray:
    """Publish the secondary cells the attacker can compute exactly anyway.

    A non-primary hidden cell whose exact attacker interval has zero width (e.g. a flow that is
    the only one into a school whose total the ministry publishes) protects nothing and reveals
    nothing once published: publishing it leaves the attacker's feasible set unchanged, so every
    other cell keeps its interval. Such cells can never meet a protection width, so without this
    the audit would fail on them. Exact LPs run for the candidates only, on their own blocks.
    Returns the cells published.
    """
    prim = _primary(st)
    cand = np.array([c for c in np.asarray(bad).tolist() if st.sup[c] and not prim[c]], dtype=np.int64)
    if not len(cand):
        return cand
    hid = st.hidden()
    low, high = exact_intervals(st.model.A, hid, st.x, cand, st.x, prior=(st.lo, st.hi))
    np.minimum.at(st.lo, cand, low)  # exact bounds: the repair skips cells now shown wide enough
    np.maximum.at(st.hi, cand, high)
    fixed = cand[high - low < 1e-6]
    st.sup[fixed] = False
    return fixed


# The un-hide pass (less information lost; ``protect(..., unhide=False)`` skips it) is bounded in
# work, not in time, so that the same tables give the same pattern on any machine: it stops once
# UNHIDE_PROBE candidates have been tried if fewer than UNHIDE_RATE of the tries could be published
# (checked after every try from then on), and after UNHIDE_MAX_TRIES tries in any case. The largest
# secondary cells are almost all needed: national build, 4 published of 200 tried in 12 s; demo
# (département 65), 2 of 200 in 40 s, 0 of the first 50.
UNHIDE_PROBE = 50
UNHIDE_RATE = 0.05
UNHIDE_MAX_TRIES = 1000


def _unhide_pass(st: _State) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Publish secondary cells the protection does not need, largest first (they weigh most in
    pupils lost). A candidate is published when, with it fixed at its value, every hidden cell
    sharing an equation with it keeps an attacker range ≥ its width (exact LPs on its block, one
    warm-started HiGHS model per block; cells published earlier in the pass stay fixed). Only
    cells of blocks up to ``SMALL_BLOCK`` unknowns are tried. This is a screen, not the proof:
    the caller re-runs the exact audit and hides again what it published in a failing block.
    Returns (cells published, their block labels, block label of every model variable or -1)."""
    hid = st.hidden()
    U = np.nonzero(hid)[0]
    block_of = np.full(st.model.n, -1, dtype=np.int64)
    if not len(U):
        return [], np.zeros(0, np.int64), block_of
    prim = _primary(st)
    known = ~hid
    rhs = -(st.AC[:, known] @ st.x[known])
    AU = st.AC[:, U].tocsr()
    rows = np.nonzero(np.diff(AU.indptr) > 0)[0]
    AU = AU[rows]
    rhs = rhs[rows]
    ncomp, vlab, rlab = _components(AU)
    block_of[U] = vlab
    sizes = np.bincount(vlab, minlength=ncomp)
    AUc = AU.tocsc()
    local = np.full(st.model.n, -1, dtype=np.int64)
    local[U] = np.arange(len(U))
    cand = U[st.sup[U] & ~prim[U] & st.decidable[U] & (sizes[vlab] <= SMALL_BLOCK) & (st.x[U] > 0)]
    cand = cand[np.argsort(-st.x[cand], kind="stable")]
    fixed = np.zeros(len(U), bool)
    models: dict[int, tuple] = {}
    published: list[int] = []
    tried = 0
    for c in cand.tolist():
        if tried >= UNHIDE_MAX_TRIES or (tried >= UNHIDE_PROBE and len(published) < UNHIDE_RATE * tried):
            break
        tried += 1
        i = int(local[c])
        b = int(vlab[i])
        if b not in models:
            vsel = np.nonzero(vlab == b)[0]  # sorted: a variable's column is its rank in vsel
            rsel = np.nonzero(rlab == b)[0]
            models[b] = (_attacker_lp(AU[rsel][:, vsel].tocsc(), rhs[rsel]), vsel)
        h, vsel = models[b]
        eqs = AUc.indices[AUc.indptr[i]:AUc.indptr[i + 1]]
        nb = np.unique(np.concatenate([AU.indices[AU.indptr[r]:AU.indptr[r + 1]] for r in eqs])) if len(eqs) else eqs
        nb = nb[(nb != i) & ~fixed[nb] & (st.width[U[nb]] > 0)]
        j = int(np.searchsorted(vsel, i))
        xc = float(st.x[c])
        h.changeColsBounds(1, np.array([j], dtype=np.int32), np.array([xc]), np.array([xc]))
        if _still_protected(h, np.searchsorted(vsel, nb), st.x[U[nb]], st.width[U[nb]], len(vsel)):
            fixed[i] = True
            published.append(c)
        else:
            h.changeColsBounds(1, np.array([j], dtype=np.int32), np.array([0.0]), np.array([BIG]))
    if DEBUG:
        print(f"unhide: {len(published)} published of {tried} tried ({len(cand)} candidates)", file=sys.stderr)
    if published:
        st.sup[np.asarray(published, dtype=np.int64)] = False
    return published, block_of[np.asarray(published, dtype=np.int64)], block_of


def _still_protected(h, idx: np.ndarray, x: np.ndarray, width: np.ndarray, n: int) -> bool:
    """Every variable ``idx`` of the LP in ``h`` still has max − min ≥ its width (pushes first,
    then one exact max / min per cell not yet shown wide enough)."""
    if not len(idx):
        return True
    lo, hi = x.astype(np.float64).copy(), x.astype(np.float64).copy()
    cost = np.zeros(n)
    cost[idx] = 1.0
    if not _widen(h, cost, idx, lo, hi):
        return False
    for k in np.nonzero(hi - lo < width - 1e-6)[0].tolist():
        if hi[k] - lo[k] >= width[k] - 1e-6:
            continue
        cost[:] = 0.0
        cost[idx[k]] = 1.0
        if not _widen(h, cost, idx, lo, hi) or hi[k] - lo[k] < width[k] - 1e-6:
            return False
    return True


def _widen(h, cost: np.ndarray, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Max then min of ``cost`` · x; every solution widens ``lo``/``hi`` of the cells ``idx``.
    False when an LP has no optimum."""
    for sense_max in (True, False):
        y = _lp_solve(h, cost, sense_max)
        if y is None:
            return False
        np.minimum(lo, y[idx], out=lo)
        np.maximum(hi, y[idx], out=hi)
    return True


def _attacked(att, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell of ``cells``: unknown to the attack, its interval exact, its width (NaN where not
    unknown or no witness). Positions by a sorted search (:meth:`Attack.where`), not a dict of
    the attack's unknowns (0.68M nationally: 0.23 s per audit)."""
    i = att.where(cells)
    known = i >= 0
    i = np.where(known, i, 0)
    return known, known & att.exact[i], np.where(known, att.high[i] - att.low[i], np.nan)


def _attack_state(st: _State, exact: bool = False):
    """Audit of the current pattern, reusing the witnesses already found (they stay feasible
    when more cells are hidden). Without ``exact``, cells not certified count as unprotected."""
    hid = st.hidden()
    att, bad = audit_model(st.model, hid, ~hid, st.width, seed=st.x, prior=(st.lo, st.hi),
                           exact=exact)
    if len(bad):
        # secondary cells the attacker derives exactly (their exact LP range is zero) protect
        # nothing: publish them. The feasible set does not change, so no other interval does.
        prim = _primary(st)
        b = np.asarray(bad, dtype=np.int64)
        known, ex, span = _attacked(att, b)
        derived = b[known & ex & st.sup[b] & ~prim[b] & (span < 1e-6)]
        if len(derived):
            st.sup[derived] = False
            bad = np.setdiff1d(bad, derived)
        # secondary cells no witness could move at all are likely derivable exactly: confirm with
        # exact LPs and publish them now, before any repair LP is spent on them
        # (exact LPs for those cells only; publishing them leaves every other interval as it is)
        b = np.asarray(bad, dtype=np.int64)
        known, ex, span = _attacked(att, b)
        flat = b[known & ~ex & (span < 0.5)]
        if len(flat):
            bad = np.setdiff1d(bad, _publish_derivable(st, flat))
        # after those are published (an exactly derived secondary cell protects nothing): a cell
        # whose exact interval lies wholly at or above its threshold is not small, whatever its
        # range (see attack.above_threshold); the independent audit accepts it likewise
        if len(bad):
            accepted = np.zeros(st.model.n, bool)
            accepted[att.var[above_threshold(att, st.k)]] = True
            bad = bad[~accepted[bad]]
    with np.errstate(invalid="ignore"):  # NaN bounds (no witness yet) simply don't update
        np.minimum.at(st.lo, att.var, att.low)
        np.maximum.at(st.hi, att.var, att.high)
    return att, bad


def _repair_round(st: _State, A: sp.csr_matrix, AT: sp.csr_matrix, att, bad: np.ndarray,
                  stats: ProtectionStats, cache: dict) -> int:
    """One repair round over the cells ``bad`` the last audit left unprotected (see the module
    doc). ``cache`` keeps the component labels across rounds. Returns the cells repaired."""
    t = time.perf_counter()
    round_added = 0
    repaired = 0
    unrepairable: list[int] = []
    from_components: list[int] = []  # of those, the cells no deviation on a whole component moved
    exact = np.zeros(st.model.n, bool)  # cells whose last audit interval is the LP optimum
    exact[att.var[att.exact]] = True
    # cells of components small enough are repaired per component (independent: in worker
    # processes when many), the others afterwards on neighbourhoods, one after another
    groups: dict[tuple[int, int], list[int]] = {}
    fallback: list[int] = []
    for c in bad.tolist():
        if not st.sup[c] or st.hi[c] - st.lo[c] >= st.width[c] - 1e-6:
            continue  # hidden earlier only (nothing to decide), or certified by a previous repair
        if "comps" not in cache:
            cache["comps"] = _ComponentLPs(st, A)
        comps = cache["comps"]
        if comps.covers(int(c)):
            groups.setdefault((0, int(comps.comp[c])), []).append(int(c))
            continue
        if "local" not in cache:
            cache["local"] = _ComponentLPs(st, A, local=True)
        local = cache["local"]
        if local.covers(int(c)):
            groups.setdefault((1, int(local.comp[c])), []).append(int(c))
        else:
            fallback.append(int(c))
    keys = list(groups)
    members = {0: cache["comps"].members([k for kind, k in keys if kind == 0]) if "comps" in cache else {},
               1: cache["local"].members([k for kind, k in keys if kind == 1]) if "local" in cache else {}}
    before = int(st.sup.sum())
    # local components: first the cells near the cells to repair (REPAIR_BALL), then the whole
    # local component for the cells with no deviation there
    jobs = [(cache["local"].ball(groups[(kind, k)], REPAIR_BALL) if kind == 1 else members[kind][k], groups[(kind, k)])
            for kind, k in keys]
    retry: dict[int, list[int]] = {}  # local component → its cells to repair on the whole of it
    for (kind, k), (N, _), (failed, tried, lps) in zip(keys, jobs, _repair_components(st, jobs)):
        stats.repair_lps += lps
        repaired += tried - len(failed)
        if kind == 1 and len(failed) and len(N) < len(members[1][k]):
            retry[k] = failed.tolist()
        else:  # no deviation on a whole component, or on a whole local one (neighbourhoods next)
            (unrepairable if kind == 0 else fallback).extend(failed.tolist())
            if kind == 0:
                from_components.extend(failed.tolist())
    for failed, tried, lps in _repair_components(st, [(members[1][k], cells) for k, cells in retry.items()]):
        stats.repair_lps += lps
        repaired += tried - len(failed)
        fallback.extend(failed.tolist())
    round_added += int(st.sup.sum()) - before
    if DEBUG:
        print(f"  components: {len(keys)} ({sum(kind for kind, _ in keys)} local), "
              f"{sum(len(v) for v in groups.values())} cells, {time.perf_counter() - t:.1f}s; "
              f"fallback {len(fallback)}", file=sys.stderr)
    added, done, failed = _repair_cells(fallback, st, A, AT, exact, stats)
    round_added += added
    repaired += done
    unrepairable += failed
    if unrepairable:
        # cells no deviation can move: if the attacker derives them exactly, publish them
        # (only secondary ones; see _publish_derivable) — checked only here, it needs exact LPs
        published = _publish_derivable(st, np.asarray(unrepairable, dtype=np.int64))
        repaired += len(published)
        # the others of whole components get the neighbourhood tiers, which end with the split
        # deviations (_split_deviations). Only now: tried in the component repairs, the split hid a
        # cell the publication above made useless, and the school × level bench's independent
        # audit took 15.7 → 21.4 s on the harder pattern.
        added, done, _ = _repair_cells(sorted(set(from_components) - set(published.tolist())),
                                       st, A, AT, exact, stats)
        round_added += added
        repaired += done
    stats.repair_added += round_added
    if DEBUG:
        print(f"  repaired {repaired}, added {round_added} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return repaired


def _repair_cells(cells, st: _State, A: sp.csr_matrix, AT: sp.csr_matrix, exact: np.ndarray,
                  stats: ProtectionStats) -> tuple[int, int, list[int]]:
    """:func:`_repair` (neighbourhood tiers) of each cell still unprotected, one after another.
    Returns (cells hidden, cells repaired, cells no deviation moved)."""
    hidden = repaired = 0
    failed: list[int] = []
    for c in cells:
        if not st.sup[c] or st.hi[c] - st.lo[c] >= st.width[c] - 1e-6:
            continue
        added, lps = _repair(int(c), st, A, AT, known_short=bool(exact[c]))
        stats.repair_lps += lps
        hidden += max(added, 0)
        repaired += added >= 0
        if added < 0:
            failed.append(int(c))
    return hidden, repaired, failed


# Tables of this many cells in all make models whose audit maps its LPs to worker processes (the
# unknowns, about a quarter of the cells nationally, above attack.PARALLEL_FROM_VARS): the workers
# are started at once, their start-up overlapping the model's construction (national: model
# 5–7 s and local pass 0.5 s on one core).
PRESTART_FROM_CELLS = 500_000


def protect(tables: list[CountTable], published: list[CountTable] = (), method: Method = "modular",
            max_rounds: int = 50, stats: ProtectionStats | None = None, unhide: bool = True) -> list[ProtectedTable]:
    """Protect all tables of a build together (shared cells are one cell), taking the earlier
    ``published`` versions as known, and prove it with the audit.

    ``method``: ``modular`` (Préau's method), ``hypercube`` (baseline, see
    :mod:`preau.disclosure.hypercube`, 2-dimension tables only) or ``primary`` (primary only:
    for tests and benchmarks, fails the audit on tables with margins).
    Raises :class:`PreauError` (with the audit report) if any hidden cell stays unprotected —
    the build never publishes a table that fails the audit.
    """
    if sum(t.frame.height for t in tables) + sum(t.frame.height for t in published) >= PRESTART_FROM_CELLS:
        start_workers()  # started while the model is built (one core is idle then)
    try:
        return _protect(tables, published, method, max_rounds, stats, unhide)
    finally:
        close_workers()


def _protect(tables: list[CountTable], published: list[CountTable], method: Method, max_rounds: int,
             stats: ProtectionStats | None, unhide: bool) -> list[ProtectedTable]:
    stats = stats if stats is not None else ProtectionStats(method)
    t0 = time.perf_counter()
    model = build_model(list(tables), list(published), with_values=True)
    _check_sums(model, len(tables))
    st = _State(model, len(tables))
    stats.timings["model"] = time.perf_counter() - t0
    st.sup[:] = _primary(st)
    stats.primary = int(st.sup.sum())
    A = model.A
    AT = A.T.tocsr()
    st.AC = A.tocsc()
    if method == "modular":
        t = time.perf_counter()
        stats.local_added = _local_pass(st, A, AT)
        stats.timings["local"] = time.perf_counter() - t
    elif method == "hypercube":
        from preau.disclosure.hypercube import hypercube

        t = time.perf_counter()
        hypercube(st, tables)
        stats.timings["hypercube"] = time.perf_counter() - t
    t = time.perf_counter()
    att, bad = _attack_state(st, exact=method != "modular")
    exact_done = method != "modular"
    stats.timings["audit"] = time.perf_counter() - t
    cache: dict = {}
    while method == "modular" and len(bad) and stats.repair_rounds < max_rounds:
        if DEBUG:
            print(f"round {stats.repair_rounds}: {len(bad)} unprotected", file=sys.stderr)
        stats.repair_rounds += 1
        t = time.perf_counter()
        repaired = _repair_round(st, A, AT, att, bad, stats, cache)
        stats.timings["repair"] = stats.timings.get("repair", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        exact_done = repaired == 0
        att, bad = _attack_state(st, exact=exact_done)
        stats.timings["audit"] += time.perf_counter() - t
        if repaired == 0:
            break  # nothing more can be hidden: the exact audit above names what is left
    if len(bad) and not exact_done:
        t = time.perf_counter()
        att, bad = _attack_state(st, exact=True)
        stats.timings["audit"] += time.perf_counter() - t
    if method == "modular" and unhide and not len(bad):
        t = time.perf_counter()
        published, blocks, block_of = _unhide_pass(st)
        stats.unhidden = len(published)
        if published:
            # witnesses of the touched blocks may have moved a cell now published: start them
            # again from the true counts, and prove the new pattern with the exact audit
            touched = np.isin(block_of, np.unique(blocks))
            st.lo[touched] = st.x[touched]
            st.hi[touched] = st.x[touched]
            att, bad = _attack_state(st, exact=True)
            if len(bad):  # the screen missed something: hide again what it published there
                back = np.asarray(published, dtype=np.int64)[np.isin(blocks, block_of[bad])]
                st.sup[back] = True
                stats.unhidden -= len(back)
                att, bad = _attack_state(st, exact=True)
        stats.timings["unhide"] = time.perf_counter() - t
    if DEBUG:
        print(f"protect timings: {stats.timings}, repair rounds {stats.repair_rounds}, lps {stats.repair_lps}", file=sys.stderr)
    hid = st.hidden()
    stats.audit = _report(model, att, bad, hid, st.width, stats.timings["audit"])
    stats.hidden = int(st.sup.sum())
    stats.pupils_hidden = int(st.x[st.sup].sum())
    stats.seconds = time.perf_counter() - t0
    verdict = "passed" if stats.audit.ok else "failed"
    out = _outputs(st, tables, verdict)
    if not stats.audit.ok and method == "modular":
        raise PreauError(stats.audit.to_report())
    return out


def _outputs(st: _State, tables: list[CountTable], verdict: str) -> list[ProtectedTable]:
    out = []
    for ti in st.model.tables[:len(tables)]:
        t = ti.table
        hid = st.sup[ti.var]
        vals = t.frame.get_column(t.measure)
        frame = t.frame.with_columns(
            pl.when(pl.Series(hid)).then(None).otherwise(vals).cast(vals.dtype).alias(t.measure),
            pl.Series(t.secret, hid, dtype=pl.Boolean),
        )
        pub = CountTable(t.name, frame, t.dimensions, t.measure, t.policy, t.secret, t.cut)
        v = vals.to_numpy()
        rule = t.policy.rule
        out.append(ProtectedTable(
            name=t.name, frame=frame, table=pub, cells=t.frame.height, cells_hidden=int(hid.sum()),
            pupils_hidden=int(v[hid].sum()), primary=int(((v >= 1) & (v < t.policy.k) & hid).sum()),
            rule=rule, k=t.policy.k if rule == "threshold" else None,
            protection_width=t.policy.width if rule == "threshold" else None,
            audit=verdict if rule == "threshold" else "not-applicable"))
    return out


def protect_independently(tables: list[CountTable], method: Method = "modular") -> list[ProtectedTable]:
    """Each table protected on its own (what NOT to do with linked tables; for tests/benches)."""
    return [protect([t], method=method)[0] for t in tables]


def verify(protected: list[ProtectedTable], published: list[CountTable] = ()) -> AuditReport:
    """Independent audit of protected tables, from their published form only."""
    return audit([p.table for p in protected], published)
