"""The compiled local pass (preau.disclosure.local) hides the same cells as the plain Python
loop it replaced, kept here as the oracle: same fix-point, same first minimum of the same scores."""

from __future__ import annotations

from collections import deque

import numpy as np
import polars as pl
import pytest

from preau.disclosure import protect
from preau.disclosure.generate import school_level_tables
from preau.disclosure.model import build_model
from preau.disclosure.suppress import BONUS, SMALL_PENALTY, ZERO_PENALTY, _local_pass, _primary, _State


def _score(x: float, w: float, bonus: bool) -> float:
    """The candidate's cost as the plain Python loop computed it (part of the oracle)."""
    return (x + (0.0 if bonus else BONUS) + (SMALL_PENALTY * w if x < w else 0.0)
            + (ZERO_PENALTY * w if x == 0 else 0.0))


def _python_local_pass(st, A, AT, max_bonus: int = 64) -> int:
    """The local pass as it was written in plain Python (until 0.x, December 2026): the oracle."""
    neg = A.data < 0
    ptr = A.indptr.tolist()
    idx = A.indices.tolist()
    neg_l = neg.tolist()
    tptr = AT.indptr.tolist()
    tidx = AT.indices.tolist()
    hid_a = st.hidden()
    hid = hid_a.tolist()
    x = st.x.tolist()
    width = st.width.tolist()
    dec = st.decidable.tolist()
    m = A.shape[0]
    # number of hidden cells per equation, kept up to date
    hcount = (np.asarray(abs(A) @ hid_a.astype(np.float64)).ravel().astype(np.int64)).tolist()
    dirty = deque(e for e in range(m) if hcount[e] > 0)
    queued = [False] * m
    for e in dirty:
        queued[e] = True
    added: list[int] = []

    # per equation: its parent, the hidden mass of its children, the largest width in it
    rows_of = np.repeat(np.arange(m), np.diff(A.indptr))
    eq_parent_a = np.full(m, -1, dtype=np.int64)
    eq_parent_a[rows_of[neg]] = A.indices[neg]
    eq_parent = eq_parent_a.tolist()
    child = ~neg
    hmass = np.bincount(rows_of[child], weights=(st.x * hid_a)[A.indices[child]], minlength=m).tolist()
    wmax_a = np.zeros(m)
    np.maximum.at(wmax_a, rows_of, st.width[A.indices])
    wmax = wmax_a.tolist()
    del rows_of, neg, child

    def hide(v: int) -> None:
        hid[v] = True
        added.append(v)
        xv = x[v]
        for e in tidx[tptr[v]:tptr[v + 1]]:
            hcount[e] += 1
            if eq_parent[e] != v:
                hmass[e] += xv
            if not queued[e]:
                queued[e] = True
                dirty.append(e)

    def has_bonus(v: int, eq: int) -> bool:
        """The candidate sits in another equation that already has a hidden cell."""
        for e in tidx[tptr[v]:tptr[v + 1]]:
            if e != eq and hcount[e] > 0:
                return True
        return False

    def best(cands: list[int], w: float, eq: int) -> int:
        """Cheapest candidate (see :func:`_score`): the first minimum."""
        use_bonus = len(cands) <= max_bonus
        best_v, best_s = -1, 0.0
        for v in cands:
            s = _score(x[v], w, use_bonus and has_bonus(v, eq))
            if best_v < 0 or s < best_s:
                best_v, best_s = v, s
        return best_v

    while dirty:
        e = dirty.popleft()
        queued[e] = False
        # fast path (wide equations are re-queued often): conditions visibly met
        p = eq_parent[e]
        if p >= 0 and hid[p]:
            if hcount[e] >= 2:
                continue
        elif hcount[e] >= 2 and hmass[e] >= wmax[e]:
            continue
        p0, p1 = ptr[e], ptr[e + 1]
        vs = idx[p0:p1]
        sg = neg_l[p0:p1]
        par = [v for v, n_ in zip(vs, sg) if n_]
        ch = [v for v, n_ in zip(vs, sg) if not n_]
        if not any(hid[v] for v in vs):
            continue
        if par and all(hid[v] for v in par):
            if any(hid[v] for v in ch):
                continue
            cands = [v for v in ch if dec[v] and not hid[v]]
            if not cands:
                continue  # children all known: the audit will report the parent
            hide(best(cands, max(width[v] for v in par), e))
            continue
        # published parent (or no parent row): hidden children need count >= 2 and mass >= width
        while True:
            hv = [v for v in ch if hid[v]]
            w = max((width[v] for v in hv), default=0.0)
            mass = sum(x[v] for v in hv)  # same order of additions as before (column order)
            need_count = len(hv) < 2
            need_mass = mass < w
            if not (need_count or need_mass):
                break
            cands = [v for v in ch if dec[v] and not hid[v]]
            if not cands:
                if par and all(dec[v] for v in par) and not all(hid[v] for v in par):
                    hide(par[0])
                break
            if need_mass:
                sel = [v for v in cands if x[v] >= (w - mass)]
                if sel:
                    hide(best(sel, w, e))
                else:
                    hide(max(cands, key=x.__getitem__))  # first maximum
            else:
                hide(best(cands, w, e))
    if added:
        st.sup[np.asarray(added, dtype=np.int64)] = True
    return len(added)


def _states(tables, published=()):
    """Two identical states after the primary suppression, and the model's equations."""
    out = []
    for _ in range(2):
        model = build_model(list(tables), list(published), with_values=True)
        st = _State(model, len(tables))
        st.sup[:] = _primary(st)
        out.append(st)
    A = out[0].model.A
    return out, A, A.T.tocsr()


@pytest.mark.parametrize("seed,k,max_bonus", [(0, 5, 64), (7, 11, 64), (3, 5, 2), (12, 3, 0)])
def test_compiled_local_pass_hides_the_same_cells(seed, k, max_bonus):
    tables = school_level_tables(n_schools=600, n_communes=300, seed=seed, k=k)  # linked tables
    (a, b), A, AT = _states(tables)
    primary = a.sup.copy()
    n_old = _python_local_pass(a, A, AT, max_bonus=max_bonus)
    n_new = _local_pass(b, A, AT, max_bonus=max_bonus)
    assert n_old > 0, "the case exercises the pass"
    assert n_new == n_old
    assert np.array_equal(a.sup, b.sup)
    assert (b.sup & ~primary).sum() == n_new


def test_compiled_local_pass_with_a_wide_protection():
    """A width above most counts: hidden masses are often short, and no single complement fills
    them (the largest is taken then)."""
    from preau.disclosure.hierarchy import CountTable, Policy

    tables = [CountTable(t.name, t.frame, t.dimensions, t.measure, Policy("threshold", 5, protection_width=60))
              for t in school_level_tables(n_schools=400, n_communes=200, seed=5)]
    (a, b), A, AT = _states(tables)
    n_old = _python_local_pass(a, A, AT)
    assert _local_pass(b, A, AT) == n_old
    assert np.array_equal(a.sup, b.sup)


def test_compiled_local_pass_with_a_published_version():
    """Cells fixed by an earlier publication (known, or hidden and absent now) are not chosen."""
    first = protect([school_level_tables(n_schools=200, n_communes=90, seed=21)[0]])[0]
    again, _ = school_level_tables(n_schools=200, n_communes=90, seed=21, counts_seed=4)
    (a, b), A, AT = _states([again], [first.table])
    assert a.fixed.any() and a.decidable.any()
    n_old = _python_local_pass(a, A, AT)
    assert _local_pass(b, A, AT) == n_old
    assert np.array_equal(a.sup, b.sup)
    assert not (b.sup & b.fixed & ~b.old_hidden).any(), "nothing the attacker knows is hidden"


def test_compiled_local_pass_without_equations():
    """A single cell with no margin: no equation, nothing to add."""
    from preau.disclosure.hierarchy import CountTable, Hierarchy, Policy

    t = CountTable("seul", pl.DataFrame({"uai": ["E0000001"], "effectif": [2]}),
                   {"uai": Hierarchy.flat(["E0000001"])}, policy=Policy("threshold", 5))
    (a, b), A, AT = _states([t])
    assert _python_local_pass(a, A, AT) == _local_pass(b, A, AT)
    assert np.array_equal(a.sup, b.sup)
