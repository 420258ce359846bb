"""Flows into a school whose pupils all come from one sector: the lone flow equals the school's
public total, so it is protected only if zero cells of its column may be hidden with it."""

from __future__ import annotations

import polars as pl
import pytest

from preau.disclosure import protect
from preau.errors import PreauError
from preau.tables import add_hideable_zeros, build_table, school_level_counts, to_pieces
from preau.workspace import Dataset, load_workspace

YEAR = "2026-2027"
# sector A → school X: 3 (all of X's pupils); A → W: 10; B → W: 8; B → V: 6
FLOWS = [("65001-01", "0650001A", 3), ("65001-01", "0650002B", 10), ("65002-01", "0650002B", 8),
         ("65002-01", "0650003C", 6)]


def pupils() -> pl.DataFrame:
    rows = [(YEAR, sector, uai, "CP") for sector, uai, n in FLOWS for _ in range(n)]
    return pl.DataFrame(rows, schema=["annee_scolaire", "code_secteur_residence", "uai", "niveau"], orient="row")


def flows_dataset(with_zeros: bool) -> Dataset:
    ds = load_workspace(".")[0].datasets["flux-secteur-ecole"]
    disclosure = dict(ds.raw["disclosure"])
    if not with_zeros:
        disclosure.pop("hideable_zeros", None)
    return Dataset(id=ds.id, file=ds.file, raw={**ds.raw, "disclosure": disclosure})


def test_shipped_flows_dataset_declares_hideable_zeros():
    assert flows_dataset(True).disclosure["hideable_zeros"] == {"rows": "code_secteur", "columns": "uai"}


def test_zero_cell_added_where_a_column_would_be_pinned():
    t = build_table(flows_dataset(True), pupils())
    assert t.extra["zero_cells_added"] == 1
    added = t.frame.filter((pl.col("code_secteur") == "65002-01") & (pl.col("uai") == "0650001A"))
    assert added["effectif"].to_list() == [0]
    # margins unchanged: zeros add nothing
    assert t.frame.filter((pl.col("code_secteur") == "TOTAL") & (pl.col("uai") == "0650001A"))["effectif"].to_list() == [3]


def test_no_zero_cell_when_no_column_is_pinned():
    frame = pl.DataFrame({"annee_scolaire": [YEAR] * 3, "code_secteur": ["A", "B", "TOTAL"], "uai": ["X"] * 3,
                          "effectif": [2, 2, 4]})
    out, added = add_hideable_zeros(frame, "code_secteur", "uai", k=5)
    assert added == 0 and out.equals(frame)


def test_lone_small_flow_fails_the_audit_without_zeros_and_passes_with_them():
    p = pupils()
    anchor = school_level_counts(p)  # the ministry's exact school totals: known to the attacker
    bare = build_table(flows_dataset(False), p)
    with pytest.raises(PreauError) as exc:
        protect([anchor] + bare.pieces)
    assert "0650001A" in str(exc.value)
    t = build_table(flows_dataset(True), p)
    out = protect([anchor] + t.pieces)
    flows = out[1].frame
    lone = flows.filter((pl.col("code_secteur") == "65001-01") & (pl.col("uai") == "0650001A"))
    assert lone["secret"].to_list() == [True]
    zero = flows.filter((pl.col("code_secteur") == "65002-01") & (pl.col("uai") == "0650001A"))
    assert zero["secret"].to_list() == [True]


# sector A sends all its 4 pupils to school X (X has no other pupil); B → W: 12, B → V: 9, C → V: 7
LONE_ROW = [("65001-01", "0650001A", 4), ("65002-01", "0650002B", 12), ("65002-01", "0650003C", 9),
            ("65003-01", "0650003C", 7)]


def lone_row_pupils() -> pl.DataFrame:
    rows = [(YEAR, sector, uai, "CP") for sector, uai, n in LONE_ROW for _ in range(n)]
    return pl.DataFrame(rows, schema=["annee_scolaire", "code_secteur_residence", "uai", "niveau"], orient="row")


def test_lone_row_gets_a_rectangle_of_zeros():
    """A sector whose pupils all attend one school that has no other pupil: its one flow equals both
    public-side totals. Zeros (Z, X) and (Y, W) around a large nearby flow (Z, W) close a rectangle."""
    t = build_table(flows_dataset(True), lone_row_pupils())
    zeros = t.frame.filter((pl.col("effectif") == 0) & (pl.col("code_secteur") != "TOTAL") & (pl.col("uai") != "TOTAL"))
    pairs = set(zip(zeros["code_secteur"], zeros["uai"]))
    assert ("65002-01", "0650001A") in pairs and ("65001-01", "0650002B") in pairs  # around B → W (12)
    out = protect([school_level_counts(lone_row_pupils())] + t.pieces)
    flows = out[1].frame
    lone = flows.filter((pl.col("code_secteur") == "65001-01") & (pl.col("uai") == "0650001A"))
    assert lone["secret"].to_list() == [True]


def test_lone_cell_of_a_row_no_other_row_meets_gets_a_rectangle():
    """Every pupil of a département in one « not located » sector row: no other row sends to its
    schools, so the rectangle goes through a nearby row (same département prefix)."""
    flows = [("65000-00", "0650001A", 3), ("65000-00", "0650002B", 40), ("65001-01", "0650003C", 30),
             ("65002-01", "0650003C", 20), ("65002-01", "0650004D", 25)]
    rows = [(YEAR, sector, uai, "CP") for sector, uai, n in flows for _ in range(n)]
    p = pl.DataFrame(rows, schema=["annee_scolaire", "code_secteur_residence", "uai", "niveau"], orient="row")
    t = build_table(flows_dataset(True), p)
    assert t.extra["zero_cells_added"] >= 2
    out = protect([school_level_counts(p)] + t.pieces)
    lone = out[1].frame.filter((pl.col("code_secteur") == "65000-00") & (pl.col("uai") == "0650001A"))
    assert lone["secret"].to_list() == [True]


# sector A sends its 3 pupils to school X only; X has one more pupil, from B; B → W: 6, C → W: 9.
# A's total is at most X's public total (4): below the width (5), whatever is hidden among the
# listed cells. Found by a one-département build with a sector layer (synthetic Hautes-Pyrénées).
ROW_INTO_SHARED = [("65001-01", "0650001A", 3), ("65002-01", "0650001A", 1), ("65002-01", "0650002B", 6),
                   ("65003-01", "0650002B", 9)]


def _pupils_of(flows) -> pl.DataFrame:
    rows = [(YEAR, sector, uai, "CP") for sector, uai, n in flows for _ in range(n)]
    return pl.DataFrame(rows, schema=["annee_scolaire", "code_secteur_residence", "uai", "niveau"], orient="row")


def _width_of(pieces, sector: str) -> float:
    """The protection width the model asks of the flows table's cell (sector, TOTAL)."""
    from preau.disclosure.model import build_model
    from preau.disclosure.suppress import _State

    model = build_model(list(pieces), [], with_values=True)
    st = _State(model, len(pieces))
    for ti in model.tables:
        if ti.table.name.startswith("flux"):
            f = ti.table.frame.with_row_index("_r")
            row = f.filter((pl.col("code_secteur") == sector) & (pl.col("uai") == "TOTAL"))["_r"]
            if len(row):
                return float(st.width[ti.var[row[0]]])
    raise AssertionError(sector)


def test_row_whose_only_school_is_small_gets_zeros_of_its_row():
    p = _pupils_of(ROW_INTO_SHARED)
    anchor = school_level_counts(p)
    t = build_table(flows_dataset(True), p)
    # with the non-zero cells alone, A's total is at most X's public total (4): its width is capped
    # there (attack.cap_widths), below the 5 asked; with A's row of zeros it gets the whole width
    bare = to_pieces(t.dataset, t.dims, t.frame.filter(pl.col("effectif") > 0), t.policy)
    assert _width_of([anchor] + bare, "65001-01") == 4
    assert _width_of([anchor] + t.pieces, "65001-01") == 5
    zeros = t.frame.filter((pl.col("effectif") == 0) & (pl.col("code_secteur") != "TOTAL") & (pl.col("uai") != "TOTAL"))
    assert ("65001-01", "0650002B") in set(zip(zeros["code_secteur"], zeros["uai"]))  # A → W, a true zero
    assert t.extra["zero_cells_added"] == zeros.height
    # margins unchanged: zeros add nothing
    total = t.frame.filter((pl.col("code_secteur") == "65001-01") & (pl.col("uai") == "TOTAL"))["effectif"]
    assert total.to_list() == [3]
    out = protect([anchor] + t.pieces)  # the audit passes
    flows = out[1].frame
    lone = flows.filter((pl.col("code_secteur") == "65001-01") & (pl.col("uai") == "0650001A"))
    assert lone["secret"].to_list() == [True]


def test_zero_cells_do_not_depend_on_row_order():
    """Equal flows (ties) are chosen by their codes, not by the rows' order or the threads: the
    same table gives the same zero cells, so the same protection, from run to run."""
    # 20 equal flows of 10 in département 65, and lone small flows from sectors sending nowhere else
    rows = [(YEAR, f"65{i:03d}-01", f"06500{i:02d}A", 10) for i in range(20)]
    rows += [(YEAR, f"65{100 + i:03d}-01", f"06501{i:02d}B", 2) for i in range(5)]
    leaf = pl.DataFrame(rows, schema=["annee_scolaire", "code_secteur", "uai", "effectif"], orient="row")
    margins = pl.concat([
        leaf.group_by("annee_scolaire", "uai").agg(pl.col("effectif").sum())
        .with_columns(code_secteur=pl.lit("TOTAL")).select(leaf.columns),
        leaf.group_by("annee_scolaire", "code_secteur").agg(pl.col("effectif").sum())
        .with_columns(uai=pl.lit("TOTAL")).select(leaf.columns),
    ])
    frame = pl.concat([leaf, margins])
    key = ["annee_scolaire", "code_secteur", "uai"]
    first, n = add_hideable_zeros(frame, "code_secteur", "uai", k=5)
    assert n > 0
    for seed in range(8):
        out, m = add_hideable_zeros(frame.sample(fraction=1.0, shuffle=True, seed=seed), "code_secteur", "uai", k=5)
        assert m == n and out.sort(key).equals(first.sort(key))


def test_anchor_table_rows_in_a_fixed_order():
    """The exact school table (the attacker's anchor) comes sorted: its rows, hence the model's
    variable numbers, do not depend on the group-by's threads or on the pupils' order."""
    p = pupils()
    a = school_level_counts(p).frame
    for seed in range(5):
        assert school_level_counts(p.sample(fraction=1.0, shuffle=True, seed=seed)).frame.equals(a)
