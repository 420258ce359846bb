"""The attacker's LP audit: it recovers cells that primary suppression alone leaves exposed.

Count tables are generated (random Poisson counts, or a few hand-set counts): no personal data.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from preau.disclosure import CountTable, Hierarchy, Policy, audit, protect
from preau.disclosure.generate import school_level_tables
from preau.disclosure.model import build_model


def _primary_only(table: CountTable) -> CountTable:
    k = table.policy.k
    v = pl.col(table.measure)
    frame = table.frame.with_columns(pl.when((v >= 1) & (v < k)).then(None).otherwise(v).alias(table.measure))
    return CountTable(table.name, frame, table.dimensions, table.measure, table.policy)


def _value(table: CountTable, cell: dict) -> int:
    f = table.frame
    for d, v in cell.items():
        f = f.filter(pl.col(d) == v)
    return int(f[table.measure][0])


def test_primary_only_is_caught_and_the_attack_recovers_the_cell():
    school, _ = school_level_tables(60, 40, seed=7)
    report = audit([_primary_only(school)])
    assert not report.ok
    exact = [u for u in report.unprotected if u.high - u.low < 1e-6]
    assert exact, "some hidden cell is pinned down exactly"
    for u in exact[:20]:
        assert u.low == pytest.approx(_value(school, u.cell)), "the attack recovers the true count"
        assert 1 <= u.low < school.policy.k


def _one_school(counts: dict[str, int]) -> pl.DataFrame:
    h = Hierarchy.niveau()
    rows = dict(counts)
    for node in ("C1", "C2", "C3", "TOTAL"):
        rows[node] = 0
    for lvl, n in counts.items():
        p = h.parent_of(lvl)
        while p is not None:
            rows[p] += n
            p = h.parent_of(p)
    return pl.DataFrame({"uai": ["E1"] * len(rows), "niveau": list(rows), "effectif": list(rows.values())})


def test_cycle_subtotal_reveals_a_level():
    """level ⊂ cycle ⊂ TOTAL: hiding CP alone is undone by C2 = CP + CE1 + CE2."""
    counts = {"TPS": 0, "PS": 20, "MS": 22, "GS": 21, "CP": 3, "CE1": 25, "CE2": 24, "CM1": 26, "CM2": 22,
              "ULIS": 0}
    f = _one_school(counts).with_columns(
        pl.when(pl.col("niveau") == "CP").then(None).otherwise(pl.col("effectif")).alias("effectif"))
    t = CountTable("ecole", f, {"uai": Hierarchy.flat(["E1"]), "niveau": Hierarchy.niveau()})
    report = audit([t])
    assert [u.cell for u in report.unprotected] == [{"uai": "E1", "niveau": "CP"}]
    assert report.unprotected[0].low == pytest.approx(3) and report.unprotected[0].high == pytest.approx(3)
    # without the cycle row the cell only moves within the TOTAL row equation: CP ∈ [0, TOTAL - others]
    # hidden together with CE1, it is protected
    f2 = f.with_columns(pl.when(pl.col("niveau") == "CE1").then(None).otherwise(pl.col("effectif")).alias("effectif"))
    assert audit([CountTable("ecole", f2, t.dimensions)]).ok


def test_commune_total_reveals_a_school_cell():
    """uai ⊂ commune ⊂ TOTAL: one hidden school cell is the commune total minus the others. A small
    one is reported; one of at least k is not (the attacker learns a count the rule would publish:
    ``attack.above_threshold``)."""
    school, _ = school_level_tables(30, 10, seed=3)
    f = school.frame
    h = school.dimensions["uai"]
    communes = {}
    for u, c in h.parent.items():
        if u.startswith("E"):
            communes.setdefault(c, []).append(u)
    leaves = f.filter(pl.col("uai").str.starts_with("E") & pl.col("niveau").is_in(["CP", "CE1", "CE2", "CM1", "CM2"]))
    in_pair = {u for m in communes.values() if len(m) >= 2 for u in m}
    leaves = leaves.filter(pl.col("uai").is_in(list(in_pair)))
    small = leaves.filter((pl.col("effectif") >= 1) & (pl.col("effectif") < school.policy.k)).row(0, named=True)
    large = leaves.filter(pl.col("effectif") >= school.policy.k).row(0, named=True)
    for cell, flagged in ((small, True), (large, False)):
        f2 = f.with_columns(pl.when((pl.col("uai") == cell["uai"]) & (pl.col("niveau") == cell["niveau"])).then(None)
                            .otherwise(pl.col("effectif")).alias("effectif"))
        report = audit([CountTable("ecole", f2, school.dimensions, policy=school.policy)])
        assert report.cells_hidden == 1
        if not flagged:
            assert report.ok
            continue
        assert len(report.unprotected) == 1
        u = report.unprotected[0]
        assert u.cell == {"uai": cell["uai"], "niveau": cell["niveau"]}
        assert u.low == pytest.approx(_value(school, u.cell)) == pytest.approx(u.high)


def test_hierarchy_equations_are_built():
    """The model has one equation per margin cell and dimension (cycles, communes, totals)."""
    school, _ = school_level_tables(25, 9, seed=1)
    m = build_model([school])
    n_schools, n_communes = 25, 9
    rows = n_schools + n_communes + 1
    # niveau: 4 equations per row (C1, C2, C3, TOTAL); uai: 14 per commune + 14 for the TOTAL row
    assert m.A.shape[0] == rows * 4 + 14 * (n_communes + 1)
    f = school.frame.with_row_index()
    row = f.filter((pl.col("uai") == "E0000000") & (pl.col("niveau") == "C2"))["index"][0]
    kids = f.filter((pl.col("uai") == "E0000000") & pl.col("niveau").is_in(["CP", "CE1", "CE2"]))["index"]
    eq = [e for e in range(m.A.shape[0]) if m.A[e, row] == -1]
    assert len(eq) == 1
    members = set(m.A[eq[0]].indices.tolist())
    assert members == {row, *kids.to_list()}


def test_linked_tables_share_cells_and_parents():
    """A commune × level table and the commune rows of a school × level table are the same cells
    (canonical keys: concept ``code_insee`` on the commune rows), and a cell's parent may sit in
    the other table: the model links them through shared variables, not copies."""
    school, communes = school_level_tables(25, 9, seed=1)
    single = build_model([school])
    m = build_model([communes, school])  # the commune table first: its cells are numbered first
    assert m.n == single.n  # every commune table cell is a commune row of the school table
    sv, cv = m.tables[1].var, m.tables[0].var
    assert np.array_equal(np.sort(cv), np.arange(communes.frame.height))
    sf = school.frame.with_row_index()
    cf = communes.frame.with_row_index()
    for code, lvl in [("10000", "PS"), ("10003", "C2"), ("TOTAL", "TOTAL"), ("10008", "TOTAL")]:
        c_row = cf.filter((pl.col("code_insee") == code) & (pl.col("niveau") == lvl))["index"][0]
        s_row = sf.filter((pl.col("uai") == code) & (pl.col("niveau") == lvl))["index"][0]
        assert cv[c_row] == sv[s_row]
    # a school's C2 cell sums into its own C2 total (levels) and into its commune's C2 cell,
    # which is a cell of the commune table
    row = sf.filter((pl.col("uai") == "E0000000") & (pl.col("niveau") == "C2"))["index"][0]
    eqs = [e for e in range(m.A.shape[0]) if m.A[e, sv[row]] == 1]
    parents = {int(j) for e in eqs for j, a in zip(m.A[e].indices, m.A[e].data) if a < 0}
    assert len(parents) == 2 and parents & set(cv.tolist())
    # the true values agree wherever a cell is in both tables
    assert np.array_equal(m.value[cv], communes.frame["effectif"].cast(pl.Float64).to_numpy())


def test_reopening_an_earlier_hidden_cell_is_caught():
    """A cell hidden in the published version and published now is disclosed (same data)."""
    school, _ = school_level_tables(40, 20, seed=5)
    old = protect([school])[0]
    now = CountTable(school.name, school.frame, school.dimensions)  # everything published
    report = audit([now], published=[old.table])
    assert not report.ok
    hidden_before = old.frame.filter(pl.col("secret")).height
    assert len(report.unprotected) == min(hidden_before, 1000)


def test_rule_none_tables_are_known_and_not_audited():
    school, _ = school_level_tables(30, 20, seed=2)
    exact = CountTable("ministere", school.frame, school.dimensions, policy=Policy("none"))
    report = audit([exact])
    assert report.ok and report.cells_hidden == 0


def test_audit_report_speaks_french_and_english():
    school, _ = school_level_tables(30, 20, seed=4)
    report = audit([_primary_only(school)]).to_report()
    assert report.errors
    p = report.errors[0]
    assert "non protégée" in p.message("fr") and "not protected" in p.message("en")
    assert p.file == "ecole-niveau"
    assert np.isfinite(len(report.to_json()))


def test_packed_keys_keep_distinct_keys_distinct():
    """Canonical keys are packed several ids to an Int64 column: two keys are equal after packing
    exactly when they were equal before, also when the ids need several columns."""
    from preau.disclosure.model import _key_frame, _padded, _sorted_keys

    rng = np.random.default_rng(4)
    n_items = 300_000  # 19 bits: 3 ids per column, 2 columns for 4 dimensions
    items = rng.integers(-1, n_items, size=(5000, 4))
    items[:50] = items[50:100]  # some equal keys
    items[100:110] = -2  # "no key" rows
    keys = _sorted_keys(items.copy())
    packed = _key_frame(keys, n_items)
    assert packed.width == 2
    assert packed.unique().height == len(np.unique(keys, axis=0))
    assert packed.n_unique() == len({tuple(r) for r in keys.tolist()})
    # a dimension fewer: padded with -1 (root), the same key as the four-column form
    three = _sorted_keys(_padded([items[:, 0], items[:, 1], items[:, 2]], 5000, 4))
    assert np.array_equal(three, np.sort(np.column_stack([np.full(5000, -1), items[:, :3]]), axis=1))
    few = _key_frame(np.clip(keys, -2, 99), 100)  # small ids: one column holds them all
    assert few.width == 1


def test_lookup_of_packed_keys_is_the_join():
    """Parent keys are looked up among the cells' keys through one column (rank of the first
    column, shifted, plus the second): the same variables as a join on both columns, -1 for keys
    the cells lack (a first column they never hold, or a known first column with another second)."""
    import polars as pl

    from preau.disclosure.model import _key_frame, _lookup, _sorted_keys

    rng = np.random.default_rng(7)
    n_items = 300_000
    cells = np.unique(_sorted_keys(rng.integers(-1, n_items, size=(4000, 4))), axis=0)
    index = _key_frame(cells, n_items).with_columns(v=pl.arange(0, len(cells), dtype=pl.Int64))
    known = cells[rng.integers(0, len(cells), 3000)]
    other_last = known.copy()
    other_last[:, 3] = (other_last[:, 3] + 1) % n_items  # known first column, second not with it
    fresh = _sorted_keys(rng.integers(-1, n_items, size=(3000, 4)))  # mostly unknown first columns
    keys = _key_frame(np.vstack([known, other_last, fresh, np.full((5, 4), -2)]), n_items)
    assert keys.width == 2
    got = _lookup(keys, index)
    want = keys.join(index, on=["k0", "k1"], how="left", maintain_order="left")["v"].fill_null(-1).to_numpy()
    assert np.array_equal(got, want)
    assert (got[:3000] >= 0).all() and (got[-5:] == -1).all() and (got == -1).sum() > 3000
