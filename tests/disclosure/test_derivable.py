"""A flow table linked to public school totals: a flow that is the only one into a school equals
that school's public total. Hiding it protects nothing; protect() must publish it rather than fail
the audit on it, and the primary cells must still be protected."""

from __future__ import annotations

import polars as pl

from preau.disclosure import CountTable, Hierarchy, Policy, ProtectionStats, audit, protect

FLOWS = {("S", "X"): 23, ("S", "Y"): 1, ("S", "Z"): 3, ("T", "Y"): 20, ("T", "Z"): 30, ("T", "W"): 40,
         ("U", "Y"): 2, ("U", "W"): 25, ("V", "X2"): 31, ("V", "W"): 2}


def tables():
    rows = [(s, u, n) for (s, u), n in FLOWS.items()]
    sectors, schools = {}, {}
    for s, u, n in rows:
        sectors[s] = sectors.get(s, 0) + n
        schools[u] = schools.get(u, 0) + n
    rows += [(s, "TOTAL", n) for s, n in sectors.items()] + [("TOTAL", u, n) for u, n in schools.items()]
    rows.append(("TOTAL", "TOTAL", sum(FLOWS.values())))
    flows = pl.DataFrame(rows, schema={"code_secteur": pl.String, "uai": pl.String, "effectif": pl.Int64},
                         orient="row")
    exact = pl.DataFrame({"uai": list(schools) + ["TOTAL"],
                          "effectif": list(schools.values()) + [sum(FLOWS.values())]})
    anchor = CountTable("ecoles", exact, {"uai": Hierarchy()}, policy=Policy(rule="none", k=1))
    flow = CountTable("flux", flows, {"code_secteur": Hierarchy(), "uai": Hierarchy()}, policy=Policy(k=5))
    return anchor, flow


def test_exactly_derivable_secondary_cells_are_published_and_primaries_protected():
    anchor, flow = tables()
    stats = ProtectionStats("modular")
    out = protect([anchor, flow], stats=stats)
    assert stats.audit.ok
    f = out[1].frame
    secret = dict(zip(zip(f["code_secteur"], f["uai"]), f["secret"]))
    for (s, u), n in FLOWS.items():
        if 1 <= n < 5:
            assert secret[(s, u)], f"primary ({s}, {u}) must be hidden"
    # the only flow into X and into X2 equal their public school totals: never worth hiding
    assert not secret[("S", "X")] and not secret[("V", "X2")]
    # independent audit from the published form (with the public totals) passes
    assert audit([anchor, out[1].table]).ok


def test_exact_intervals_are_the_attackers_lp_range_of_the_cells_asked_only():
    """x0 + x1 = 10 (published) with x0, x1 hidden: each in [0, 10]; x2 = 4 alone in x2 + x3 = 4
    with x3 published at 0: x2 is derived exactly. A third block is never touched."""
    import numpy as np
    import scipy.sparse as sp

    from preau.disclosure.attack import exact_intervals

    # variables: x0 x1 T01 | x2 x3 T23 | x4 x5 T45   (rows: T = sum of its two children)
    rows = [[1, 1, -1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, -1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1, -1]]
    A = sp.csr_matrix(np.array(rows, dtype=float))
    value = np.array([3, 7, 10, 4, 0, 4, 1, 1, 2], dtype=float)
    unknown = np.array([1, 1, 0, 1, 0, 0, 1, 1, 0], dtype=bool)
    low, high = exact_intervals(A, unknown, value, np.array([0, 3]), value)
    assert low.tolist() == [0.0, 4.0]
    assert high.tolist() == [10.0, 4.0]
