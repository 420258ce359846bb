"""The local pass of the secondary suppression, compiled: the fix-point of the per-equation
conditions (see :mod:`preau.disclosure.suppress`), one loop over a queue of equations.

It was plain Python on lists (equations have a handful of members, where numpy's per-call cost
dominated): 3.4 s on the national build, on one core, while the audit's worker processes waited.
The same loop compiled by numba makes the same choices — the first minimum of the same float
scores, in the equation's column order, masses added in the same order — so the cells hidden are
the same (tests/disclosure/test_local_pass.py compares it with the plain Python loop).
"""

from __future__ import annotations

import numba
import numpy as np


# cache=True: compiled on the first call once per machine, loaded from the cache afterwards
# (see preau.ingest._scan_kernel: module-level functions, so that the cache is found again)
@numba.njit(cache=True)
def _score(x, w, bonus, bonus_cost, small_penalty, zero_penalty):
    """Cost of hiding a candidate: its count, + ``bonus_cost`` (suppress.BONUS) unless it closes
    a rectangle with hidden cells, + a multiple of w when it is below the width itself (a small
    complement needs its own protection: it cascades), more for a zero."""
    return (x + (0.0 if bonus else bonus_cost) + (small_penalty * w if x < w else 0.0)
            + (zero_penalty * w if x == 0 else 0.0))


@numba.njit(cache=True)
def _has_bonus(v, eq, tptr, tidx, hcount):
    for k in range(tptr[v], tptr[v + 1]):
        e = tidx[k]
        if e != eq and hcount[e] > 0:
            return True
    return False


@numba.njit(cache=True)
def _best(cands, nc, w, eq, x, tptr, tidx, hcount, max_bonus, bonus_cost, small_penalty, zero_penalty):
    use_bonus = nc <= max_bonus
    best_v = -1
    best_s = 0.0
    for i in range(nc):
        v = cands[i]
        s = _score(x[v], w, use_bonus and _has_bonus(v, eq, tptr, tidx, hcount),
                   bonus_cost, small_penalty, zero_penalty)
        if best_v < 0 or s < best_s:
            best_v = v
            best_s = s
    return best_v


@numba.njit(cache=True)
def local_pass(ptr, idx, neg, tptr, tidx, hid, x, width, dec, hcount, eq_parent, hmass, wmax,
               max_bonus, bonus_cost, small_penalty, zero_penalty):
    """The local pass on CSR equations (``ptr``, ``idx``; ``neg``: the parent entries) and their
    transpose (``tptr``, ``tidx``). ``hid``, ``hcount`` and ``hmass`` are updated in place.
    Returns the cells hidden, in the order they were."""
    m = ptr.shape[0] - 1
    # FIFO of the equations to look at: each is queued once at most, so m slots suffice
    queue = np.empty(max(m, 1), np.int64)
    queued = np.zeros(m, np.bool_)
    head = 0
    size = 0
    for e in range(m):
        if hcount[e] > 0:
            queue[size] = e
            size += 1
            queued[e] = True
    added = np.empty(x.shape[0], np.int64)
    nadd = 0
    longest = 0
    for e in range(m):
        longest = max(longest, ptr[e + 1] - ptr[e])
    cands = np.empty(max(longest, 1), np.int64)
    sel = np.empty(max(longest, 1), np.int64)
    while size > 0:
        e = queue[head]
        head = head + 1 if head + 1 < m else 0
        size -= 1
        queued[e] = False
        p = eq_parent[e]
        # fast path (wide equations are re-queued often): conditions visibly met
        if p >= 0 and hid[p]:
            if hcount[e] >= 2:
                continue
        elif hcount[e] >= 2 and hmass[e] >= wmax[e]:
            continue
        p0 = ptr[e]
        p1 = ptr[e + 1]
        any_hidden = False
        for j in range(p0, p1):
            if hid[idx[j]]:
                any_hidden = True
                break
        if not any_hidden:
            continue
        npar = 0
        first_par = -1
        parents_hidden = True
        parents_decidable = True
        wpar = 0.0
        for j in range(p0, p1):
            if neg[j]:
                v = idx[j]
                if npar == 0:
                    first_par = v
                    wpar = width[v]
                elif width[v] > wpar:
                    wpar = width[v]
                npar += 1
                parents_hidden = parents_hidden and hid[v]
                parents_decidable = parents_decidable and dec[v]
        to_hide = -1
        if npar > 0 and parents_hidden:
            child_hidden = False
            nc = 0
            for j in range(p0, p1):
                if not neg[j]:
                    v = idx[j]
                    if hid[v]:
                        child_hidden = True
                        break
                    if dec[v]:
                        cands[nc] = v
                        nc += 1
            if child_hidden or nc == 0:
                continue  # no candidate: children all known, the audit will report the parent
            to_hide = _best(cands, nc, wpar, e, x, tptr, tidx, hcount, max_bonus, bonus_cost,
                            small_penalty, zero_penalty)
        # published parent (or no parent row): hidden children need count >= 2 and mass >= width
        while True:
            last = to_hide >= 0  # the parent case above: one complement, then done with e
            if not last:
                nh = 0
                w = 0.0
                mass = 0.0
                nc = 0
                for j in range(p0, p1):
                    if not neg[j]:
                        v = idx[j]
                        if hid[v]:
                            nh += 1
                            if width[v] > w:
                                w = width[v]
                            mass += x[v]
                        elif dec[v]:
                            cands[nc] = v
                            nc += 1
                need_count = nh < 2
                need_mass = mass < w
                if not (need_count or need_mass):
                    break
                if nc == 0:  # no complement left: the parent itself, when it may be hidden
                    if not (npar > 0 and parents_decidable and not parents_hidden):
                        break
                    to_hide = first_par
                    last = True
                elif need_mass:
                    ns = 0
                    for i in range(nc):
                        if x[cands[i]] >= w - mass:
                            sel[ns] = cands[i]
                            ns += 1
                    if ns > 0:
                        to_hide = _best(sel, ns, w, e, x, tptr, tidx, hcount, max_bonus, bonus_cost,
                                        small_penalty, zero_penalty)
                    else:  # the first maximum
                        to_hide = cands[0]
                        for i in range(1, nc):
                            if x[cands[i]] > x[to_hide]:
                                to_hide = cands[i]
                else:
                    to_hide = _best(cands, nc, w, e, x, tptr, tidx, hcount, max_bonus, bonus_cost,
                                    small_penalty, zero_penalty)
            # hide it: counts, masses and the queue of its equations
            v = to_hide
            to_hide = -1
            hid[v] = True
            added[nadd] = v
            nadd += 1
            xv = x[v]
            for k in range(tptr[v], tptr[v + 1]):
                f = tidx[k]
                hcount[f] += 1
                if eq_parent[f] != v:
                    hmass[f] += xv
                if not queued[f]:
                    queued[f] = True
                    tail = head + size
                    queue[tail if tail < m else tail - m] = f
                    size += 1
            if last:
                break
    return added[:nadd]

