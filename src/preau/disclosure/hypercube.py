"""Hypercube baseline (GHMITER-style, as in tau-Argus / sdcTable HYPERCUBE) for 2-dimension tables.

The hierarchical table is cut into non-hierarchical subtables (one level of each hierarchy: a
parent row with its children × a parent column with its children), processed top-down and
repeated until nothing changes. Every hidden cell of a subtable gets the cheapest *rectangle*
(hypercube of dimension 2: the cell and three corners) whose corners let it move by at least the
protection width; corners are hidden. Fast and simple, but it over-suppresses and, on hierarchical
or linked tables, it is not guaranteed to pass the audit: it is the benchmark's baseline only.
"""

from __future__ import annotations

import numpy as np

from preau.disclosure.hierarchy import CountTable
from preau.disclosure.model import _dim_ids

MAX_ROWS = 300  # candidate partner rows/columns per cell in wide subtables


def hypercube(st, tables: list[CountTable], max_passes: int = 20) -> int:
    added = 0
    for ti in st.model.tables[:len(tables)]:
        t = ti.table
        if len(t.dimensions) != 2 or t.policy.rule != "threshold":
            continue
        added += _hypercube_table(st, t, ti.var, max_passes)
    return added


def _children(ids: np.ndarray, parent: np.ndarray, nnodes: int) -> tuple[dict, np.ndarray]:
    present = np.zeros(nnodes, bool)
    present[ids] = True
    kids: dict[int, list[int]] = {}
    for node in np.nonzero(present)[0]:
        p = parent[node]
        if p >= 0 and present[p]:
            kids.setdefault(int(p), []).append(int(node))
    depth = np.zeros(nnodes, dtype=np.int64)
    for node in range(nnodes):
        d, p = 0, parent[node]
        while p >= 0:
            d += 1
            p = parent[p]
        depth[node] = d
    return kids, depth


def _hypercube_table(st, t: CountTable, var: np.ndarray, max_passes: int) -> int:
    d1, d2 = list(t.dimensions)
    rid, rpar, rnames, _, _ = _dim_ids(t, d1, t.dimensions[d1])
    cid, cpar, cnames, _, _ = _dim_ids(t, d2, t.dimensions[d2])
    nr, nc = len(rnames), len(cnames)
    grid = np.full(nr * nc, -1, dtype=np.int64)
    grid[rid * nc + cid] = var
    rk, rdepth = _children(rid, rpar, nr)
    ck, cdepth = _children(cid, cpar, nc)
    subs = [(int(rdepth[P] + cdepth[Q]), P, Q) for P in rk for Q in ck]
    subs.sort()
    x, w_all = st.x, st.width
    added = 0
    done: dict[int, set[int]] = {}  # per subtable, the cells already given a rectangle there
    for _ in range(max_passes):
        changed = 0
        for si, (_, P, Q) in enumerate(subs):
            R = np.array([P] + rk[P])
            K = np.array([Q] + ck[Q])
            V = grid[R[:, None] * nc + K[None, :]]
            exists = V >= 0
            Vs = np.where(exists, V, 0)
            S = st.sup[Vs] & exists
            if not S.any():
                continue
            seen = done.setdefault(si, set())
            todo = [(i, j) for i, j in zip(*np.nonzero(S)) if int(Vs[i, j]) not in seen]
            if not todo:
                continue
            X = np.where(exists, x[Vs], 0.0)
            usable = exists & (st.decidable[Vs] | S)
            sig_r = np.ones(len(R))
            sig_r[0] = -1
            sig_c = np.ones(len(K))
            sig_c[0] = -1
            for i, j in todo:
                S = st.sup[Vs] & exists  # refreshed: earlier rectangles of this subtable
                changed += _rectangle(i, j, X, S, usable, sig_r, sig_c, float(w_all[Vs[i, j]]), st, Vs)
                seen.add(int(Vs[i, j]))
        added += changed
        if not changed:
            break
    return added


def _rectangle(i, j, X, S, usable, sig_r, sig_c, w, st, V) -> int:
    nr, nc = X.shape
    rows = np.arange(nr)
    rows = rows[(rows != i) & usable[:, j]]
    cols = np.arange(nc)
    cols = cols[(cols != j) & usable[i, :]]
    if len(rows) == 0 or len(cols) == 0:
        return 0
    if len(rows) > MAX_ROWS:
        pref = S[rows, j]
        cheap = rows[~pref][np.argsort(X[rows[~pref], j], kind="stable")[:MAX_ROWS]]
        rows = np.unique(np.concatenate([rows[pref], cheap, rows[rows == 0]]))
    a = X[i, cols][None, :]  # (i, j')
    b = X[rows, j][:, None]  # (i', j)
    c = X[np.ix_(rows, cols)]  # (i', j')
    sa = -sig_c[cols][None, :] * sig_c[j]
    sb = -sig_r[rows][:, None] * sig_r[i]
    sc = sig_r[i] * sig_r[rows][:, None] * sig_c[j] * sig_c[cols][None, :]
    inf = np.inf
    up = np.minimum(np.minimum(np.where(sa < 0, a, inf), np.where(sb < 0, b, inf)), np.where(sc < 0, c, inf))
    down = np.minimum(np.minimum(np.where(sa > 0, a, inf), np.where(sb > 0, b, inf)),
                      np.minimum(np.where(sc > 0, c, inf), X[i, j]))
    rng = np.minimum(up, BIGR) + np.minimum(down, BIGR)
    ok = usable[np.ix_(rows, cols)]
    cost = (np.where(S[i, cols], 0.0, X[i, cols] + 1.0)[None, :]
            + np.where(S[rows, j], 0.0, X[rows, j] + 1.0)[:, None]
            + np.where(S[np.ix_(rows, cols)], 0.0, c + 1.0))
    feasible = ok & (rng >= w)
    if feasible.any():
        cost = np.where(feasible, cost, inf)
    else:  # no rectangle protects it: take the widest (the audit will tell)
        cost = np.where(ok, -rng, inf)
    flat = int(np.argmin(cost))
    if not np.isfinite(cost.flat[flat]):
        return 0
    ri, cj = divmod(flat, len(cols))
    i2, j2 = rows[ri], cols[cj]
    added = 0
    for (p, q) in ((i, j2), (i2, j), (i2, j2)):
        v = V[p, q]
        if not st.sup[v]:
            st.sup[v] = True
            added += 1
    return added


BIGR = 1e12
