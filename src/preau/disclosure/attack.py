"""The attacker's linear programs (the proof that hidden cells are protected).

The attacker knows every published cell of every table (this build and earlier published versions)
and the equations linking them (sums along each hierarchy, shared cells of linked tables,
non-negativity; integrality relaxed). For each hidden cell c we need ``max c − min c`` under those
constraints; c is protected iff that range is at least the protection width, or its exact
interval lies wholly at or above the threshold k (:func:`above_threshold`: not a small count).

Scaling: published cells are substituted, the remaining equations split into independent blocks
(connected components); blocks are solved together as one block-diagonal LP in HiGHS. Two cheap
passes first push all pending cells up then down (any feasible point widens the interval seen for
every cell); in exact mode, groups of pending cells of a block are then pushed together, each cell
once; only cells not yet certified get their own exact min/max LPs, one cell per block per round
(blocks are independent, so one LP answers one cell of every block at once).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from preau.disclosure.hierarchy import CountTable
from preau.disclosure.lp import BIG, build_lp, new_highs  # noqa: F401  (new_highs re-exported)
from preau.disclosure.model import Model, build_model
from preau.errors import PreauError, Problem, Report

DEBUG = bool(os.environ.get("PREAU_DEBUG"))
EPS = 1e-6
BATCH_VARS = 5_000  # variables per block-diagonal LP (HiGHS is superlinear: small batches are faster)
# ... for the exact LPs of whole blocks: a batch runs as many rounds as its block with the most
# pending cells, so smaller batches waste fewer LPs on finished blocks (national first audit:
# 74 s with 5,000, 58 s with 1,500; 800 and 2,500 about the same)
EXACT_BATCH_VARS = 1_500
MAX_PUSH = 30
# exact mode: pending cells of a block pushed together, each once, before their own LPs (national
# first audit, exact phase: 48,391 LPs 20.1 s with one cell per LP; 4: 18.8 s, 8: 16.7 s,
# 16: 29,033 LPs 15.6 s, 64: 17.6 s, 256: 19.7 s; same cells hidden)
GROUP_CELLS = 16
# the restricted LPs of the first audit (level 2) push pending cells in groups too, up to this many
# per block, and need no targeted rounds after them (national first audit: 92,823 cells left for
# the exact LPs → 97,422, level 2 12.7 → 10.7 s, exact phase 18.1 → 17.3 s; 16: 37,909 cells left,
# 15.4 + 15.6 s; 256: 10.1 + 18.4 s; same cells found unprotected, same cells hidden in the end)
GROUP_LOCAL_CELLS = 64
WIDE = 60  # equations with more unknowns are cut for the local certification
CLUSTER = 64  # level-1 blocks per level-2 cluster
CLUSTER_VARS = 5_000  # and variables at most (as a batch: see _clusters)
LOCAL_TARGETED = 0  # targeted rounds in local certification (the grouped passes do their work)
LEVELS = (2,)
MAX_CELL_LPS = 5_000
FEW_PENDING = 0.05  # share of pending cells in small blocks below which they skip the restricted levels
SMALL_BLOCK = 15_000  # blocks up to this many unknowns get exact LPs directly (warm-started simplex is fast there; the largest neighbourhood tier below is as large: a block that small is better solved whole)
MAX_EXACT_ROUNDS = 25  # exact min/max rounds per large block; beyond, cells stay "not proven" (still a failure)


@dataclass
class Attack:
    """Result of the attack on the unknown variables of a model."""

    var: np.ndarray  # unknown variables (model ids)
    low: np.ndarray  # best lower bound found (exact for unprotected / exactly solved cells)
    high: np.ndarray
    exact: np.ndarray  # bool: low/high are the LP optimum
    protected: np.ndarray  # bool
    blocks: int = 0
    largest_block: int = 0
    lps: int = 0

    def where(self, cells: np.ndarray) -> np.ndarray:
        """Position of each of ``cells`` (model ids) among :attr:`var` (sorted), -1 where not unknown."""
        cells = np.asarray(cells, dtype=np.int64)
        i = np.searchsorted(self.var, cells)
        found = i < len(self.var)
        found[found] = self.var[i[found]] == cells[found]
        return np.where(found, i, -1)


def _highs(AU: sp.csc_matrix, rhs: np.ndarray) -> highspy.Highs:
    """The attacker's LP: ``AU x = rhs``, ``x ≥ 0`` (cost set per solve)."""
    return build_lp(AU, row_lower=rhs, row_upper=rhs)


def _solve(h: highspy.Highs, cost: np.ndarray, sense_max: bool) -> np.ndarray | None:
    n = len(cost)
    c = (-cost if sense_max else cost).astype(np.float64)
    # Only the costs that differ from the last solve's are passed: the audit's targeted LPs change
    # a few costs of blocks of thousands of cells (all n costs: 0.4 of 2.3 ms per LP).
    last = getattr(h, "_preau_cost", None)
    if last is None or len(last) != n:
        h.changeColsCost(n, np.arange(n, dtype=np.int32), c)
    else:
        changed = np.flatnonzero(c != last).astype(np.int32)
        if len(changed):
            h.changeColsCost(len(changed), changed, c[changed])
    h._preau_cost = c
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(h.getSolution().col_value)


def _attack_batch(AU: sp.csc_matrix, rhs: np.ndarray, comp: np.ndarray, width: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray, exact: bool, rng: np.random.Generator,
                  targeted_rounds: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Widen the intervals ``lo``/``hi`` (witness points) of the variables of independent blocks
    solved as one LP. With ``exact``, pending cells get their own min/max LPs (exact bounds)."""
    n = AU.shape[1]
    T0 = time.perf_counter()
    h = _highs(AU, rhs)
    lo = lo.copy()
    hi = hi.copy()
    exact_lo = np.full(n, np.nan)
    exact_hi = np.full(n, np.nan)
    lps = 0

    def pending_mask():
        short = hi - lo < width - EPS
        # exact mode: until both exact bounds are known; else until the cell's targeted LPs ran
        return short & (np.isnan(exact_lo) | np.isnan(exact_hi)) if exact else short & np.isnan(exact_lo)

    def solve(w, sense_max):
        nonlocal lps
        x = _solve(h, w, sense_max)
        lps += 1
        if x is None:
            raise _infeasible()
        np.minimum(lo, x, out=lo)
        np.maximum(hi, x, out=hi)
        return x

    def exact_per_block(cells, sense_max, out):
        """The max (or min) LP of the first of ``cells`` in each block, its optimum into ``out``."""
        if len(cells):
            _, first = np.unique(comp[cells], return_index=True)
            chosen = cells[first]
            w = np.zeros(n)
            w[chosen] = 1.0
            out[chosen] = solve(w, sense_max)[chosen]

    # cheap passes: push every pending cell up, then down, then random directions, while it pays
    prev = None
    for rnd in range(MAX_PUSH):
        pend = pending_mask()
        npend = int(pend.sum())
        if npend == 0 or (prev is not None and rnd > 3 and npend > 0.8 * prev):
            break
        prev = npend
        w = np.zeros(n)
        if rnd < 2:
            w[pend] = 1.0
            senses = (True,) if rnd == 0 else (False,)
        else:
            w[pend] = rng.uniform(-1.0, 1.0, npend)
            senses = (True, False)
        for sense_max in senses:
            solve(w, sense_max)
        if DEBUG:
            print(f"  push {rnd}: pending {pending_mask().sum()} / {n} t={time.perf_counter() - T0:.2f}",
                  file=sys.stderr)
    # grouped passes: up to GROUP_CELLS pending cells of each block (GROUP_LOCAL_CELLS on the
    # restricted LPs) pushed together, each cell once; most pending cells are protected, and cells
    # far apart in a block barely interfere, so one LP certifies many (a feasible point: sound). In
    # exact mode the cells it leaves get their own exact LPs below; on restricted LPs they are left
    # to the exact phase of the caller.
    if GROUP_CELLS > 1:
        tried = np.zeros(n, bool)
        while True:
            pend = np.nonzero(pending_mask() & ~tried)[0]
            if len(pend) == 0:
                break
            pend = rng.permutation(pend)
            order = np.argsort(comp[pend], kind="stable")
            pend = pend[order]
            blk = comp[pend]
            start = np.searchsorted(blk, blk)  # first position of each cell's block
            chosen = pend[np.arange(len(pend)) - start < (GROUP_CELLS if exact else GROUP_LOCAL_CELLS)]
            tried[chosen] = True
            w = np.zeros(n)
            w[chosen] = 1.0
            solve(w, True)
            left = chosen[hi[chosen] - lo[chosen] < width[chosen] - EPS]
            if len(left):
                w = np.zeros(n)
                w[left] = 1.0
                solve(w, False)
        if DEBUG:
            print(f"  grouped: pending {int(pending_mask().sum())} lps {lps} t={time.perf_counter() - T0:.2f}",
                  file=sys.stderr)
    # targeted passes: one pending cell per block and per round (blocks are independent)
    rounds = 0
    bounds = None
    while targeted_rounds is None or rounds < targeted_rounds:
        pend = np.nonzero(pending_mask())[0]
        if len(pend) == 0:
            break
        rounds += 1
        if exact:
            # exact mode: a cell whose witnesses already reach a bound of the interval propagation
            # (:func:`propagate_bounds`, valid for every feasible point) has that bound as its LP
            # optimum, no LP needed. National first audit: of the 17,699 cells left to the targeted
            # LPs, 9,646 had their maximum so and 13,797 their minimum (6,401 both).
            if bounds is None:
                bounds = propagate_bounds(AU, rhs)
            _settle_at_bounds(pend, lo, hi, exact_lo, exact_hi, bounds)
            exact_per_block(pend[np.isnan(exact_hi[pend])], True, exact_hi)
            # the minimum of the cells whose maximum is known and that are still too narrow (the
            # maximum's witness may have widened them enough)
            pend = np.nonzero(pending_mask())[0]
            _settle_at_bounds(pend, lo, hi, exact_lo, exact_hi, bounds)
            exact_per_block(pend[np.isnan(exact_lo[pend]) & ~np.isnan(exact_hi[pend])], False, exact_lo)
            continue
        _, first = np.unique(comp[pend], return_index=True)
        chosen = pend[first]
        w = np.zeros(n)
        w[chosen] = 1.0
        x = solve(w, True)
        # the cells the max already shows wide enough need no min (protected; their interval
        # is then not exact, which only unprotected cells need)
        left = chosen[hi[chosen] - lo[chosen] < width[chosen] - EPS]
        # a cell a witness already put at 0 is at its lower bound (x ≥ 0): no LP needed
        at_zero = lo[left] <= EPS
        exact_lo[left[at_zero]] = np.minimum(lo[left[at_zero]], 0.0)
        left = left[~at_zero]
        if len(left) == 0:
            continue
        if len(left) < len(chosen):
            w = np.zeros(n)
            w[left] = 1.0
        x = solve(w, False)
        if targeted_rounds is None:
            exact_lo[left] = x[left]  # local mode: done with these cells (not exact)
    if DEBUG:
        print(f"  targeted rounds {rounds}, lps {lps} t={time.perf_counter() - T0:.2f}", file=sys.stderr)
    done = ~np.isnan(exact_hi) & ~np.isnan(exact_lo)
    lo[done] = exact_lo[done]
    hi[done] = exact_hi[done]
    return lo, hi, done, lps


PROPAGATION_ROUNDS = 50


def propagate_bounds(AU: sp.spmatrix, rhs: np.ndarray, rounds: int = PROPAGATION_ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``L ≤ x ≤ U`` every solution of ``AU x = rhs``, ``x ≥ 0`` satisfies (entries ±1), by
    interval propagation: each equation bounds each of its unknowns by the range of the others,
    repeated until nothing changes (at most ``rounds`` times). ``U`` is ``inf`` where unbounded.
    Sound, not tight: the LP interval of a cell lies within ``[L, U]``; where a feasible point
    reaches a bound, that bound is the LP optimum."""
    M = sp.csr_matrix(AU)
    m, n = M.shape
    rows = np.repeat(np.arange(m), np.diff(M.indptr))
    cols, pos = M.indices, M.data > 0
    r = rhs[rows]
    L = np.zeros(n)
    U = np.full(n, np.inf)
    for _ in range(rounds):
        # each term's range (coefficient ±1); the range of the others = row total − own term,
        # with the infinite terms counted apart
        lo_t = np.where(pos, L[cols], -U[cols])
        hi_t = np.where(pos, U[cols], -L[cols])
        lo_inf, hi_inf = np.isinf(lo_t), np.isinf(hi_t)
        s_lo = np.bincount(rows, np.where(lo_inf, 0.0, lo_t), m)[rows]
        s_hi = np.bincount(rows, np.where(hi_inf, 0.0, hi_t), m)[rows]
        n_lo = np.bincount(rows, lo_inf, m)[rows]
        n_hi = np.bincount(rows, hi_inf, m)[rows]
        with np.errstate(invalid="ignore"):
            o_lo = np.where(lo_inf, np.where(n_lo == 1, s_lo, -np.inf), np.where(n_lo == 0, s_lo - lo_t, -np.inf))
            o_hi = np.where(hi_inf, np.where(n_hi == 1, s_hi, np.inf), np.where(n_hi == 0, s_hi - hi_t, np.inf))
        new_L, new_U = L.copy(), U.copy()
        np.maximum.at(new_L, cols, np.where(pos, r - o_hi, o_lo - r))
        np.minimum.at(new_U, cols, np.where(pos, r - o_lo, o_hi - r))
        if np.array_equal(new_L, L) and np.array_equal(new_U, U):
            break
        L, U = new_L, new_U
    return L, U


def _settle_at_bounds(cells: np.ndarray, lo: np.ndarray, hi: np.ndarray, exact_lo: np.ndarray,
                      exact_hi: np.ndarray, bounds: tuple[np.ndarray, np.ndarray]) -> None:
    """Exact bounds of ``cells`` a witness already reaches (see :func:`propagate_bounds`), in place."""
    L, U = bounds
    top = cells[np.isnan(exact_hi[cells]) & (hi[cells] >= U[cells] - EPS)]
    exact_hi[top] = U[top]
    bottom = cells[np.isnan(exact_lo[cells]) & (lo[cells] <= L[cells] + EPS)]
    exact_lo[bottom] = L[bottom]


def _infeasible() -> PreauError:
    return PreauError(Problem("audit-inconsistent",
                              "les cellules publiées sont incohérentes (les totaux ne correspondent pas aux sommes)",
                              "published cells are inconsistent (totals do not match their sums)"))


def _components(AU: sp.csr_matrix) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of the bipartite graph variables–equations: (count, var labels, row labels)."""
    nU = AU.shape[1]
    G = sp.bmat([[None, AU.T], [AU, None]], format="csr")
    ncomp, lab = connected_components(G, directed=False)
    return ncomp, lab[:nU], lab[nU:]


def _batches(labels: np.ndarray, limit: int | None = None) -> list[np.ndarray]:
    """Group block labels into batches of at most ``limit`` variables (big blocks alone)."""
    limit = BATCH_VARS if limit is None else limit
    uniq, sizes = np.unique(labels, return_counts=True)
    order = np.argsort(-sizes, kind="stable")
    batches, cur, cur_n = [], [], 0
    for i in order:
        if cur and cur_n + sizes[i] > limit:
            batches.append(np.array(cur))
            cur, cur_n = [], 0
        cur.append(uniq[i])
        cur_n += sizes[i]
    if cur:
        batches.append(np.array(cur))
    return batches


def _split_lp(AU: sp.csr_matrix, x0: np.ndarray, group: np.ndarray, vsel: np.ndarray):
    """The restriction of ``AU x = rhs`` to the variables ``vsel``, every other unknown fixed at
    the feasible point ``x0``, with each equation split per group (groups become independent).
    Any point of it is a feasible point of the full system: its widths are valid certificates."""
    sub = AU[:, vsel].tocoo()
    g = group[vsel][sub.col]
    key = sub.row.astype(np.int64) * (int(group.max()) + 1) + g
    uniq, row = np.unique(key, return_inverse=True)
    M = sp.csc_matrix((sub.data, (row, sub.col)), shape=(len(uniq), len(vsel)))
    rhs = M @ x0[vsel]
    return M, rhs


def _feasible_point(AU: sp.csr_matrix, rhs: np.ndarray, vlab: np.ndarray, rlab: np.ndarray) -> np.ndarray:
    x0 = np.zeros(AU.shape[1])
    for batch in _batches(vlab):
        inb = np.zeros(int(vlab.max()) + 1, bool)
        inb[batch] = True
        vsel = np.nonzero(inb[vlab])[0]
        rsel = np.nonzero(inb[rlab])[0]
        h = _highs(AU[rsel][:, vsel].tocsc(), rhs[rsel])
        # an interior point (interior-point method, no crossover) leaves every cell room to move
        # both ways, which the restricted LPs need; a vertex would pin many cells at 0
        h.setOptionValue("solver", "ipm")
        h.setOptionValue("run_crossover", "off")
        x = _solve(h, np.zeros(len(vsel)), False)
        if x is None:
            raise _infeasible()
        x0[vsel] = x
    return x0


def attack(A: sp.csr_matrix, unknown: np.ndarray, value: np.ndarray, width: np.ndarray,
           seed: np.ndarray | None = None, prior: tuple[np.ndarray, np.ndarray] | None = None,
           exact: bool = True, seed_rng: int = 0) -> Attack:
    """Attacker intervals of every unknown variable.

    ``value`` holds the published values (used where ``~unknown``); ``width`` the protection width
    per variable; ``seed`` optional true values (a feasible point); ``prior`` optional
    (low, high) per variable already proven by feasible points (kept valid when cells are added).

    Cells are first certified on small restricted LPs (every other unknown fixed at a feasible
    point: blocks = components once the wide equations are cut, then clusters of blocks sharing
    wide equations). With ``exact``, the cells still not certified get exact min/max LPs on their
    full block: those intervals are reported. Without, they are returned unprotected (callers
    that can hide more cells, like :func:`preau.disclosure.protect`, repair them).
    """
    U = np.nonzero(unknown)[0]
    K = np.nonzero(~unknown)[0]
    if len(U) == 0:
        z = np.zeros(0)
        return Attack(U, z, z, z.astype(bool), z.astype(bool))
    Ac = A.tocsc()
    AU = Ac[:, U]
    kv = np.nan_to_num(value[K])
    rhs = -(Ac[:, K] @ kv) if len(K) else np.zeros(A.shape[0])
    AUr = AU.tocsr()
    rows = np.nonzero(np.diff(AUr.indptr) > 0)[0]
    AU = AUr[rows]
    rhs = rhs[rows]
    nU = len(U)
    ncomp, vlab, rlab = _components(AU)
    sizes = np.bincount(vlab, minlength=ncomp)
    wU = width[U].astype(np.float64)
    rng = np.random.default_rng(seed_rng)
    T0 = time.perf_counter()
    x0 = seed[U].copy() if seed is not None else _feasible_point(AU, rhs, vlab, rlab)
    if DEBUG:
        print(f"attack: {nU} unknowns, {ncomp} blocks, largest {sizes.max()}, feasible point "
              f"{time.perf_counter() - T0:.1f}s", file=sys.stderr)
    lo = x0.copy()
    hi = x0.copy()
    if prior is not None:
        np.minimum(lo, prior[0][U], out=lo)
        np.maximum(hi, prior[1][U], out=hi)
    lps = 0
    done = np.zeros(nU, bool)
    pending = hi - lo < wU - EPS
    # level 1: blocks once the wide equations are cut; level 2: clusters of failing level-1 blocks.
    # When few cells of small blocks are pending (a re-audit after a repair), those go straight to
    # the exact LPs below: a few pending cells make clusters of up to 190,000 variables (national
    # build: re-audit 26 s → 1.5 s); when many are (a first audit), the restricted LPs certify
    # most of them for less (national school × level bench: audit 11 s, 17 s without).
    small = (sizes <= SMALL_BLOCK)[vlab]
    few = (pending & small).sum() < FEW_PENDING * nU
    rnnz = np.diff(AU.indptr)
    narrow = AU[rnnz <= WIDE]
    _, g1, _ = _components(narrow)
    for level in LEVELS:
        todo = pending & ~small if few else pending
        if not todo.any():
            break
        if level == 1:
            group = g1
        else:
            group = _clusters(AU, rnnz, g1, todo)
        active = np.isin(group, np.unique(group[todo]))
        vsel = np.nonzero(active)[0]
        M, r = _split_lp(AU, x0, group, vsel)
        _, lab_local = np.unique(group[vsel], return_inverse=True)
        base = int(rng.integers(2**31))
        batches = _batches(lab_local)
        members = _Members(lab_local)
        where = []

        def jobs():  # built while the workers solve the first ones (see map_jobs)
            for i, batch in enumerate(batches):
                cols = members.of(batch)
                Mb = M[:, cols]
                keep = np.nonzero(np.diff(Mb.tocsr().indptr) > 0)[0]
                Mb = Mb.tocsr()[keep].tocsc()
                wv = np.where(todo[vsel[cols]], wU[vsel[cols]], 0.0)
                where.append(vsel[cols])
                yield (Mb, r[keep], lab_local[cols], wv, lo[vsel[cols]], hi[vsel[cols]], (base, i),
                       LOCAL_TARGETED, False)

        if DEBUG:
            print(f"level {level}: {int(todo.sum())} pending, {len(vsel)} variables in {len(batches)} batches "
                  f"t={time.perf_counter() - T0:.1f}s", file=sys.stderr)
        solved = _map_batches(jobs(), len(batches), len(vsel))  # a list: ``where`` is complete
        for idx, (l2, h2, _, n_lp) in zip(where, solved):
            lps += n_lp
            lo[idx] = l2
            hi[idx] = h2
        pending = hi - lo < wU - EPS
        if DEBUG:
            print(f"level {level}: pending {pending.sum()} / {nU} t={time.perf_counter() - T0:.1f}s", file=sys.stderr)
    # small blocks (the usual case for linked tables of one territory): the cells the certificates
    # left get exact min / max LPs on their whole block, warm-started, one pending cell per block
    # per LP until none is left. Exact answers are both the proof and what the repair needs (no
    # repair is spent on a cell that was protected already); the per-cell restricted LPs below
    # (level 2.5) cost far more there.
    settled = np.zeros(nU, bool)  # cells of small blocks: solved exactly there, not retried below
    if (small & pending).any():
        T1 = time.perf_counter()
        if DEBUG:
            pb = np.bincount(vlab[pending & small], minlength=ncomp)
            print(f"small blocks: pending {(pending & small).sum()} in {(pb > 0).sum()} blocks, max per block "
                  f"{pb.max()}, sizes of those {np.sort(sizes[pb > 0])[-5:]}", file=sys.stderr)
        l2, h2, d2, n_lp = _exact_blocks(AU, rhs, vlab, rlab, ncomp, pending & small, wU, lo, hi, rng, None)
        lps += n_lp
        lo, hi, done = l2, h2, done | d2
        pending = hi - lo < wU - EPS
        if DEBUG:
            print(f"small blocks (exact): pending {(pending & small).sum()}, {n_lp} LPs, "
                  f"{time.perf_counter() - T1:.1f}s", file=sys.stderr)
        settled = small
        pending &= ~settled
    if pending.any() and pending.sum() <= MAX_CELL_LPS:
        # level 2.5: one restricted LP around each cell still pending (a breadth-first
        # neighbourhood in the equation graph, the rest fixed at x0)
        for max_vars, depth, wide in ((800, 8, 40), (4000, 12, 120), (15000, 16, 300)):
            if pending.any():
                T2, n2 = time.perf_counter(), int(pending.sum())
                lps += _cell_witnesses(AU, x0, np.nonzero(pending)[0], lo, hi, wU, max_vars, depth, wide)
                pending = (hi - lo < wU - EPS) & ~settled
                if DEBUG:
                    print(f"  level 2.5 ({max_vars} vars): {n2} -> {int(pending.sum())} pending, "
                          f"{time.perf_counter() - T2:.1f}s", file=sys.stderr)
        if DEBUG:
            print(f"level 2.5: pending {pending.sum()} / {nU} t={time.perf_counter() - T0:.1f}s", file=sys.stderr)
    if exact and pending.any():
        # level 3: exact LPs on the full blocks of the cells still pending
        l2, h2, d2, n_lp = _exact_blocks(AU, rhs, vlab, rlab, ncomp, pending, wU, lo, hi, rng, MAX_EXACT_ROUNDS)
        lps += n_lp
        lo, hi, done = l2, h2, done | d2
        if DEBUG:
            print(f"level 3 (exact): {int(done.sum())} cells solved exactly t={time.perf_counter() - T0:.1f}s",
                  file=sys.stderr)
    protected = hi - lo >= wU - EPS
    return Attack(U, lo, hi, done, protected, blocks=int(ncomp), largest_block=int(sizes.max()) if len(sizes) else 0,
                  lps=lps)


def exact_intervals(A: sp.csr_matrix, unknown: np.ndarray, value: np.ndarray, cells: np.ndarray,
                    seed: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None = None,
                    seed_rng: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's exact interval (LP min and max) of each of ``cells`` (model ids, all
    unknown), from exact LPs on their blocks only (every other block is left alone). ``seed`` is
    a feasible point (the true values); ``prior`` intervals already seen make the pushes start wider."""
    U = np.nonzero(unknown)[0]
    K = np.nonzero(~unknown)[0]
    Ac = A.tocsc()
    rhs = -(Ac[:, K] @ np.nan_to_num(value[K])) if len(K) else np.zeros(A.shape[0])
    AUr = Ac[:, U].tocsr()
    rows = np.nonzero(np.diff(AUr.indptr) > 0)[0]
    AU, rhs = AUr[rows], rhs[rows]
    ncomp, vlab, rlab = _components(AU)
    lo = seed[U].astype(np.float64).copy()
    hi = lo.copy()
    if prior is not None:
        np.minimum(lo, prior[0][U], out=lo)
        np.maximum(hi, prior[1][U], out=hi)
    local = np.searchsorted(U, cells)
    pending = np.zeros(len(U), bool)
    pending[local] = True
    # width ∞ on the cells asked: the pushes never certify them, each gets its own min / max LP
    width = np.where(pending, np.inf, 0.0)
    lo, hi, _, _ = _exact_blocks(AU, rhs, vlab, rlab, ncomp, pending, width, lo, hi,
                                 np.random.default_rng(seed_rng), None)
    return lo[local], hi[local]


def _exact_blocks(AU: sp.csr_matrix, rhs: np.ndarray, vlab: np.ndarray, rlab: np.ndarray, ncomp: int,
                  pending: np.ndarray, wU: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator,
                  rounds: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Exact min / max LPs of the ``pending`` cells on their full blocks (blocks batched; at most
    ``rounds`` cells per block, None = all). Returns (low, high, exactly solved, LPs)."""
    lo, hi = lo.copy(), hi.copy()
    done = np.zeros(len(lo), bool)
    lps = 0
    active = np.isin(vlab, np.unique(vlab[pending]))
    base = int(rng.integers(2**31))  # one generator per batch: results do not depend on the workers
    batches = _batches(vlab[active], EXACT_BATCH_VARS)
    vmembers, rmembers = _Members(vlab, ncomp), _Members(rlab, ncomp)
    vsels = []

    def jobs():  # built while the workers solve the first ones (see map_jobs)
        for i, batch in enumerate(batches):
            vsel, rsel = vmembers.of(batch), rmembers.of(batch)
            sub = AU[rsel][:, vsel].tocsc()
            wv = np.where(pending[vsel], wU[vsel], 0.0)
            vsels.append(vsel)
            yield (sub, rhs[rsel], vlab[vsel], wv, lo[vsel], hi[vsel], (base, i), rounds, True)

    solved = _map_batches(jobs(), len(batches), int(active.sum()))  # a list: ``vsels`` is complete
    for vsel, (l2, h2, d2, n_lp) in zip(vsels, solved):
        lps += n_lp
        lo[vsel], hi[vsel], done[vsel] = l2, h2, d2
    return lo, hi, done, lps


# Independent blocks are solved in worker processes when there are many of them (national builds:
# hundreds of département blocks); below that, process start-up (≈ 1 s each: numpy, scipy, HiGHS)
# costs more than it saves. Spawned, not forked: HiGHS' thread pool does not survive a fork.
PARALLEL_FROM_VARS = 60_000
WORKERS = int(os.environ.get("PREAU_WORKERS", "0")) or min(2, os.cpu_count() or 1)


def _solve_batch(job) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    sub, rhs, comp, width, lo, hi, seed, rounds, exact = job
    return _attack_batch(sub, rhs, comp, width, lo, hi, exact=exact, rng=np.random.default_rng(seed),
                         targeted_rounds=rounds)


def _map_batches(jobs, count: int, size: int) -> list:
    """:func:`_attack_batch` of each of ``count`` jobs (independent blocks, ``size`` variables in
    all), in order; in ``WORKERS`` processes for large inputs."""
    return map_jobs(_solve_batch, jobs, size, count=count)


_POOL = None


def map_jobs(fn, jobs, size: int, chunksize: int | None = None, count: int | None = None) -> list:
    """``fn`` of each job (independent, picklable), in order: in this process for small inputs
    (``size`` variables in all), else in ``WORKERS`` spawned processes. The processes are started
    once and kept until :func:`close_workers` (a national protection maps jobs a dozen times).
    ``jobs``: a list, or an iterator of ``count`` jobs, consumed as the jobs are handed out: the
    workers solve the first ones while the next are built, instead of one core idling meanwhile
    (national first audit, with :class:`_Members`: level 2's LPs start at 0.5 s instead of 0.9 s,
    the exact phase 10.4 → 9.3 s)."""
    global _POOL
    count = len(jobs) if count is None else count
    if WORKERS < 2 or count < 2 * WORKERS or size < PARALLEL_FROM_VARS:
        return [fn(j) for j in jobs]
    start_workers()
    return list(_POOL.map(fn, jobs, chunksize=chunksize or max(1, count // (8 * WORKERS))))


class _Members:
    """The positions holding each label of ``labels`` (sorted), for many sets of labels: one sort
    instead of a pass over every position per set (national first audit: 145 and 330 batches of
    0.68M variables)."""

    def __init__(self, labels: np.ndarray, n: int | None = None):
        self.order = np.argsort(labels, kind="stable")
        n = int(labels.max()) + 1 if n is None and len(labels) else (n or 0)
        self.start = np.searchsorted(labels[self.order], np.arange(n + 1))

    def of(self, chosen: np.ndarray) -> np.ndarray:
        """Positions whose label is one of ``chosen`` (distinct labels), in increasing order."""
        parts = [self.order[self.start[k]:self.start[k + 1]] for k in np.asarray(chosen).tolist()]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def start_workers() -> None:
    """Start the worker processes of :func:`map_jobs` now (their start-up, about 1 s each, then
    overlaps the caller's own work, e.g. building the model), if they are not running yet."""
    global _POOL
    if _POOL is None and WORKERS >= 2:
        from preau.processes import spawn_pool

        _POOL = spawn_pool(WORKERS, preload=__name__)


def close_workers() -> None:
    """Stop the worker processes of :func:`map_jobs`, if any were started."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(cancel_futures=True)
        _POOL = None


def _cell_witnesses(AU: sp.csr_matrix, x0: np.ndarray, cells: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    width: np.ndarray, max_vars: int = 800, depth: int = 8, wide: int = 40) -> int:
    """Max and min of each cell on the restricted LP of its neighbourhood (others fixed at x0)."""
    AUc = AU.tocsc()
    rptr, ridx = AU.indptr, AU.indices
    cptr, cidx = AUc.indptr, AUc.indices
    lps = 0
    for c in cells.tolist():
        if hi[c] - lo[c] >= width[c] - EPS:
            continue
        seen = {c}
        frontier = [c]
        seen_rows: set[int] = set()
        for _ in range(depth):
            nxt = []
            for v in frontier:
                for r in cidx[cptr[v]:cptr[v + 1]].tolist():
                    if r in seen_rows:
                        continue
                    seen_rows.add(r)
                    members = ridx[rptr[r]:rptr[r + 1]]
                    if len(members) > wide:
                        members = members[np.argsort(-x0[members], kind="stable")[:wide]]
                    for u in members.tolist():
                        if u not in seen:
                            seen.add(u)
                            nxt.append(u)
                if len(seen) >= max_vars:
                    break
            frontier = nxt
            if len(seen) >= max_vars or not frontier:
                break
        N = np.fromiter(seen, dtype=np.int64)
        group = np.zeros(AU.shape[1], dtype=np.int64)
        M, rhs = _split_lp(AU, x0, group, N)
        keep = np.nonzero(np.diff(M.tocsr().indptr) > 0)[0]
        M = M.tocsr()[keep].tocsc()
        h = _highs(M, rhs[keep])
        w = np.zeros(len(N))
        w[int(np.nonzero(N == c)[0][0])] = 1.0
        for sense_max in (True, False):
            x = _solve(h, w, sense_max)
            lps += 1
            if x is None:
                break
            np.minimum.at(lo, N, x)
            np.maximum.at(hi, N, x)
    return lps


def _clusters(AU: sp.csr_matrix, rnnz: np.ndarray, g1: np.ndarray, pending: np.ndarray) -> np.ndarray:
    """Level-2 groups: level-1 blocks with pending cells, clustered by the wide equations they sit
    in (blocks with the same signature can close rectangles through those equations)."""
    wide = np.nonzero(rnnz > WIDE)[0]
    ng = int(g1.max()) + 1
    group = g1.copy()
    if len(wide) == 0:
        return group
    W = AU[wide].tocoo()
    inc = sp.csr_matrix((np.ones(len(W.data)), (g1[W.col], W.row)), shape=(ng, len(wide)))
    inc.sum_duplicates()
    failing = np.unique(g1[pending])
    sig = []
    for g in failing:
        cols = inc.indices[inc.indptr[g]:inc.indptr[g + 1]]
        sig.append(tuple(sorted(cols.tolist())))
    order = np.array(sorted(range(len(failing)), key=lambda i: sig[i]), dtype=np.int64)
    # consecutive blocks (same or close signatures) form a cluster of at most CLUSTER blocks and
    # CLUSTER_VARS variables: HiGHS is superlinear, one cluster of 61k variables took 64 s of the
    # national first audit's 74 s level 2 (cutting a cluster is sound: see _split_lp)
    size = np.bincount(g1, minlength=ng)[failing[order]]
    cluster = np.zeros(len(order), dtype=np.int64)
    k = n_blocks = n_vars = 0
    for i, s in enumerate(size.tolist()):
        if n_blocks and (n_blocks >= CLUSTER or n_vars + s > CLUSTER_VARS):
            k += 1
            n_blocks = n_vars = 0
        cluster[i] = k
        n_blocks += 1
        n_vars += s
    remap = np.arange(ng, dtype=np.int64)
    remap[failing[order]] = ng + cluster
    group = remap[g1]
    return group


@dataclass
class UnprotectedCell:
    """A hidden cell not protected: ``exact`` when low/high are the attacker's LP optimum; else
    the protection could not be proven in the time allowed and low/high is the interval seen."""

    table: str
    cell: dict[str, str]
    low: float
    high: float
    width: int
    exact: bool = True

    def to_dict(self) -> dict:
        return {"table": self.table, "cell": self.cell, "low": _num(self.low), "high": _num(self.high),
                "width": self.width, "exact": self.exact}


def _num(x: float):
    if x >= BIG * 0.999:
        return None
    r = round(x)
    return int(r) if abs(x - r) < 1e-6 else round(x, 6)


@dataclass
class AuditReport:
    """Outcome of the audit: every hidden cell, how many are protected, which are not."""

    cells_hidden: int
    unprotected: list[UnprotectedCell] = field(default_factory=list)
    blocks: int = 0
    largest_block: int = 0
    lps: int = 0
    seconds: float = 0.0
    n_unprotected: int | None = None  # all of them (``unprotected`` lists the first 1,000)

    @property
    def ok(self) -> bool:
        return not self.unprotected

    def to_dict(self) -> dict:
        n = len(self.unprotected) if self.n_unprotected is None else self.n_unprotected
        return {"passed": self.ok, "cells_hidden": self.cells_hidden, "unprotected": n,
                "blocks": self.blocks, "largest_block": self.largest_block, "lps": self.lps,
                "seconds": round(self.seconds, 3), "cells": [u.to_dict() for u in self.unprotected]}

    def to_report(self) -> Report:
        report = Report(subject="audit")
        for u in self.unprotected:
            key = ", ".join(f"{k}={v}" for k, v in u.cell.items())
            lo, hi = _num(u.low), _num(u.high)
            if not u.exact:
                report.error(
                    "audit-unproven",
                    f"cellule masquée dont la protection n'a pas pu être démontrée ({key}) : intervalle vu "
                    f"{lo}..{hi}, largeur requise {u.width}",
                    f"hidden cell whose protection could not be proven ({key}): interval seen {lo}..{hi}, "
                    f"required width {u.width}", file=u.table)
                continue
            report.error(
                "audit-unprotected",
                f"cellule masquée non protégée ({key}) : l'attaquant la situe entre {lo} et {hi} "
                f"(écart {_num(u.high - u.low)} < {u.width})",
                f"hidden cell not protected ({key}): the attacker narrows it to {lo}..{hi} "
                f"(range {_num(u.high - u.low)} < {u.width})",
                file=u.table)
        return report


def _cell_key(t: CountTable, row: int) -> dict[str, str]:
    return {d: str(t.frame.get_column(d)[row]) for d in t.dimensions}


def _widths(model: Model, hidden_any: np.ndarray) -> np.ndarray:
    width = np.zeros(model.n)
    public = np.zeros(model.n, bool)  # cells of rule-none tables: public whatever this build does
    for ti in model.tables:
        pol = ti.table.policy
        if pol.rule == "threshold":
            np.maximum.at(width, ti.var, float(pol.width))
        else:
            public[ti.var[~ti.hidden]] = True
    return cap_widths(model.A, width, public, model.value)


CAP_ROUNDS = 6  # rounds of bound propagation in cap_widths (each: children → parents → children)


def cap_widths(A: sp.csr_matrix, width: np.ndarray, public: np.ndarray, value: np.ndarray,
               rounds: int | None = None) -> np.ndarray:
    """Protection width capped by a public bound: a cell adding up to a total published by a
    rule-``none`` table (e.g. the ministry's exact school total) lies in [0, total] whatever is
    hidden; when that total is below the width, the width required is the total (the whole range
    the public data leaves).

    The bounds are carried through the equations (``parent = Σ children``, every cell ≥ 0): a
    child is at most its parent's bound, a parent at most the sum of its children's. So a sector
    whose flows all go to small schools has a total of at most the sum of those schools' public
    totals, and each of its level cells as much (a small synthetic Meuse: a sector of 4 pupils whose
    cells no hiding could widen to 5 blocked the build). Each bound is the attacker's too: he knows
    the equations and the public totals."""
    if not public.any():
        return width
    rounds = CAP_ROUNDS if rounds is None else rounds
    coo = A.tocoo()
    neg = coo.data < 0
    parent_of_row = np.full(A.shape[0], -1, dtype=np.int64)
    parent_of_row[coo.row[neg]] = coo.col[neg]
    crow, child = coo.row[~neg], coo.col[~neg]
    p = parent_of_row[crow]
    ok = p >= 0
    crow, child, p = crow[ok], child[ok], p[ok]
    ub = np.full(len(width), np.inf)
    known = public & ~np.isnan(value)
    ub[known] = value[known]
    # groups sorted once: each child's parents, each parent's rows (np.minimum.reduceat per group)
    by_child = np.argsort(child, kind="stable")
    c_sorted, c_par = child[by_child], p[by_child]
    c_start = np.flatnonzero(np.r_[True, c_sorted[1:] != c_sorted[:-1]])
    rows = np.flatnonzero(parent_of_row >= 0)
    by_parent = rows[np.argsort(parent_of_row[rows], kind="stable")]
    r_par = parent_of_row[by_parent]
    r_start = np.flatnonzero(np.r_[True, r_par[1:] != r_par[:-1]])
    for _ in range(max(rounds, 1)):
        before = ub.copy()
        # a child is at most its parent
        if len(c_sorted):
            up = np.minimum.reduceat(ub[c_par], c_start)
            np.minimum(ub[c_sorted[c_start]], up, out=up)
            ub[c_sorted[c_start]] = up
        if rounds <= 1:
            break
        # a parent is at most the sum of its children (inf where one is unbounded)
        if len(r_par):
            sums = np.bincount(crow, weights=ub[child], minlength=A.shape[0])
            down = np.minimum.reduceat(sums[by_parent], r_start)
            np.minimum(ub[r_par[r_start]], down, out=down)
            ub[r_par[r_start]] = down
        if np.array_equal(ub, before):
            break
    return np.minimum(width, ub)


def audit_model(model: Model, hidden: np.ndarray, known: np.ndarray, width: np.ndarray,
                seed: np.ndarray | None = None, prior=None, exact: bool = True,
                k: np.ndarray | None = None) -> tuple[Attack, np.ndarray]:
    """Attack a model: ``hidden`` vars must be protected; ``known`` vars are published values.

    Returns the attack (over the unknown vars) and the hidden vars that are not protected (a
    hidden var that is also known somewhere is unprotected: it was re-opened).

    ``k``: the threshold of each var (0 where none). A hidden var whose *exact* attacker interval
    lies wholly at or above its threshold is not counted unprotected whatever its range: the
    attacker learns only that its count is not small — a count the rule would publish — and the
    small cells it helps to hide are audited on their own intervals (see :func:`above_threshold`).
    """
    unknown = ~known
    att = attack(model.A, unknown, model.value, width, seed, prior=prior, exact=exact)
    short = ~att.protected & hidden[att.var] & (width[att.var] > 0)
    if k is not None:
        short &= ~above_threshold(att, k)
    bad_unknown = att.var[short]
    reopened = np.nonzero(hidden & known & (width > 0))[0]
    return att, np.concatenate([bad_unknown, reopened])


def above_threshold(att: Attack, k: np.ndarray) -> np.ndarray:
    """Per attacked var: its exact interval lies wholly at or above its threshold ``k`` (> 0).

    Such a hidden cell cannot be a small (primary) one: the attacker learns that it is a secondary
    cell and roughly its count, which the threshold rule allows to publish. Found on small
    territories: a sector total of 6 narrowed to [5, 7] by the public school totals and the flows
    table's listing alone, even with every hideable cell hidden, blocked the whole build."""
    kk = k[att.var]
    return att.exact & (kk > 0) & (att.low >= kk - EPS)


def _thresholds(model: Model) -> np.ndarray:
    """The threshold ``k`` of each var: the largest of its threshold tables' (0 elsewhere)."""
    k = np.zeros(model.n)
    for ti in model.tables:
        if ti.table.policy.rule == "threshold":
            np.maximum.at(k, ti.var, float(ti.table.policy.k))
    return k


def audit(tables: list[CountTable], published: list[CountTable] = ()) -> AuditReport:
    """Audit published-form tables (hidden cells null or ``secret`` true) together with earlier
    ``published`` versions. Every hidden cell must have an attacker interval ≥ its table's
    protection width."""
    t0 = time.perf_counter()
    model = build_model(list(tables), list(published), with_values=False)
    hidden = np.zeros(model.n, bool)
    known = np.zeros(model.n, bool)
    for ti in model.tables:
        hidden[ti.var[ti.hidden]] = True
        known[ti.var[~ti.hidden]] = True
    width = _widths(model, hidden)
    try:
        att, bad = audit_model(model, hidden, known, width, k=_thresholds(model))
    finally:
        close_workers()
    return _report(model, att, bad, hidden, width, time.perf_counter() - t0)


def _report(model: Model, att: Attack, bad: np.ndarray, hidden: np.ndarray, width: np.ndarray,
            seconds: float) -> AuditReport:
    cells = []
    shown = np.asarray(bad[:1000], dtype=np.int64)
    for v, i in zip(shown.tolist(), att.where(shown).tolist()):
        t, row = model.where(v)
        if i < 0:  # re-opened: published somewhere
            lo = hi = float(model.value[v]) if not np.isnan(model.value[v]) else 0.0
            ex = True
        else:
            lo, hi, ex = float(att.low[i]), float(att.high[i]), bool(att.exact[i])
        cells.append(UnprotectedCell(t.name, _cell_key(t, row), lo, hi, int(width[v]), ex))
    return AuditReport(cells_hidden=int(hidden.sum()), unprotected=cells, n_unprotected=len(bad), blocks=att.blocks,
                       largest_block=att.largest_block, lps=att.lps, seconds=seconds)


def frame_hidden(frame: pl.DataFrame, measure: str = "effectif") -> int:
    return int(frame.get_column(measure).is_null().sum())
