"""Préau's secondary suppression: its output passes the audit, on hierarchies, linked tables and
successive school years. Generated count tables only (random Poisson counts)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preau.disclosure import CountTable, Hierarchy, Policy, ProtectionStats, audit, protect, verify
from preau.disclosure.generate import school_level_tables
from preau.disclosure.suppress import protect_independently


def _check_output(table: CountTable, out) -> None:
    f = out.frame
    assert f.columns == table.frame.columns + ["secret"]
    v = table.frame[table.measure].to_numpy()
    secret = f["secret"].to_numpy()
    assert (f[table.measure].is_null().to_numpy() == secret).all(), "hidden ⇔ measure empty"
    small = (v >= 1) & (v < table.policy.k)
    assert secret[small].all(), "every primary cell is hidden"
    published = ~secret
    assert (f[table.measure].to_numpy()[published] == v[published]).all(), "published counts unchanged"
    assert out.cells_hidden == int(secret.sum()) and out.pupils_hidden == int(v[secret].sum())


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(n_schools=st.integers(5, 120), ratio=st.floats(0.2, 1.0), seed=st.integers(0, 10_000),
       k=st.sampled_from([3, 5, 11]))
def test_output_passes_the_audit(n_schools, ratio, seed, k):
    school, _ = school_level_tables(n_schools, max(1, int(n_schools * ratio)), seed=seed, k=k)
    stats = ProtectionStats("modular")
    out = protect([school], stats=stats)[0]
    _check_output(school, out)
    assert stats.audit.ok
    report = audit([out.table])  # independent audit, from the published form only
    assert report.ok, report.to_dict()["cells"][:3]
    assert report.cells_hidden == out.cells_hidden


def test_flat_two_dimension_table_with_service_dimension():
    rng = np.random.default_rng(11)
    schools = [f"E{i}" for i in range(40)]
    oui = rng.poisson(rng.choice([2, 8, 30], len(schools)))
    non = rng.poisson(rng.choice([1, 5, 20], len(schools)))
    rows = []
    for s, a, b in zip(schools, oui, non):
        rows += [(s, "oui", int(a)), (s, "non", int(b)), (s, "TOTAL", int(a + b))]
    rows += [("TOTAL", "oui", int(oui.sum())), ("TOTAL", "non", int(non.sum())),
             ("TOTAL", "TOTAL", int(oui.sum() + non.sum()))]
    f = pl.DataFrame(rows, schema=["uai", "inscrit", "effectif"], orient="row")
    t = CountTable("cantine", f, {"uai": Hierarchy.flat(schools), "inscrit": Hierarchy.flat(["oui", "non"])})
    out = protect([t])[0]
    _check_output(t, out)
    assert verify([out]).ok


def _linked_pair(seed: int):
    """School × level (schools only, uai → commune) and commune × level: the commune cells of
    the second table are the sums of the first (linked by the commune concept)."""
    full, communes = school_level_tables(150, 90, seed=seed)
    h = full.dimensions["uai"]
    school_rows = full.frame.filter(pl.col("uai").str.starts_with("E") | (pl.col("uai") == "TOTAL"))
    school = CountTable("ecole-niveau", school_rows, {"uai": h, "niveau": Hierarchy.niveau()})
    return school, communes


def test_linked_tables_are_protected_together():
    school, communes = _linked_pair(seed=21)
    out = protect([school, communes])
    for t, o in zip((school, communes), out):
        _check_output(t, o)
    assert verify(out).ok, "joint protection passes the joint audit"
    # protected one by one, each passes alone but not together (the commune sums link them)
    separate = protect_independently([school, communes])
    assert audit([separate[0].table]).ok and audit([separate[1].table]).ok
    joint = verify(separate)
    assert not joint.ok
    assert {u.table for u in joint.unprotected} <= {"ecole-niveau", "commune-niveau"}


def test_shared_margin_cells_are_one_cell():
    """A school table carrying commune rows and a commune table share those cells: same status."""
    school, communes = school_level_tables(80, 50, seed=8)
    out = protect([school, communes])
    s = out[0].frame.filter(~pl.col("uai").str.starts_with("E")).rename({"uai": "code_insee"})
    c = out[1].frame
    j = s.join(c, on=["code_insee", "niveau"], suffix="_c")
    assert j.height == c.height
    assert (j["secret"] == j["secret_c"]).all()
    assert verify(out).ok


def _years_table(y1: pl.DataFrame, y2: pl.DataFrame, dims: dict, k: int = 5) -> CountTable:
    """Year 1 + year 2 + their multi-year total, with an ``annee_scolaire`` dimension."""
    a = y1.with_columns(pl.lit("2024-2025").alias("annee_scolaire"))
    b = y2.with_columns(pl.lit("2025-2026").alias("annee_scolaire"))
    tot = (pl.concat([a, b]).group_by(list(dims)).agg(pl.col("effectif").sum())
           .with_columns(pl.lit("TOTAL").alias("annee_scolaire")))
    frame = pl.concat([a, b, tot.select(a.columns)])
    dims = dict(dims) | {"annee_scolaire": Hierarchy.flat(["2024-2025", "2025-2026"])}
    return CountTable("ecole-niveau", frame, dims, policy=Policy("threshold", k))


def test_second_year_does_not_reopen_the_first():
    year1, _ = school_level_tables(70, 40, seed=31)
    year2, _ = school_level_tables(70, 40, seed=31, counts_seed=2)  # same schools, new counts
    dims = year1.dimensions
    y2 = year2.frame
    # year 1 as published last year (with its school-year column)
    first = protect([_one_year(year1.frame, dims, "2024-2025")])[0]
    both = _years_table(year1.frame, y2, dims)
    out = protect([both], published=[first.table])[0]
    assert verify([out], published=[first.table]).ok, "with the published year, the audit passes"
    hidden_before = first.frame.filter(pl.col("secret")).select(list(dims) + ["annee_scolaire"])
    again = out.frame.join(hidden_before, on=list(dims) + ["annee_scolaire"])
    assert again["secret"].all(), "what was hidden stays hidden"
    naive = protect([both])[0]  # ignores what was published last year
    report = verify([naive], published=[first.table])
    assert not report.ok, "a naive independent suppression re-opens cells by differencing"


def _one_year(frame: pl.DataFrame, dims: dict, year: str) -> CountTable:
    f = frame.with_columns(pl.lit(year).alias("annee_scolaire"))
    return CountTable("ecole-niveau", f, dict(dims) | {"annee_scolaire": Hierarchy.flat([year])})


def _bump(table: CountTable, uai: str, level: str, delta: int) -> CountTable:
    """Correct one school cell by ``delta`` and every margin above it (counts stay consistent)."""
    hu, hn = table.dimensions["uai"], table.dimensions["niveau"]
    rows = [uai, hu.parent_of(uai), "TOTAL"]
    levels = [level, hn.parent_of(level), "TOTAL"]
    hit = pl.col("uai").is_in(rows) & pl.col("niveau").is_in(levels)
    f = table.frame.with_columns(pl.when(hit).then(pl.col("effectif") + delta).otherwise(pl.col("effectif")))
    return CountTable(table.name, f, table.dimensions, table.measure, table.policy)


def test_corrected_republication_keeps_the_pattern():
    """The same series republished with corrected counts: earlier hidden cells stay hidden, the
    superseded counts do not make the model inconsistent, and the audit passes."""
    school, _ = school_level_tables(60, 30, seed=41)
    first = protect([school])[0]
    corrected = _bump(_bump(school, "E0000003", "CE1", 2), "E0000010", "CM2", -1)
    assert not corrected.frame.equals(school.frame)
    out = protect([corrected], published=[first.table])[0]
    old_hidden = first.frame["secret"].to_numpy()
    assert out.frame["secret"].to_numpy()[old_hidden].all()
    assert verify([out], published=[first.table]).ok


def test_hypercube_baseline_hides_more_pupils():
    school, _ = school_level_tables(400, 300, seed=5)
    s_mod, s_hyp = ProtectionStats("modular"), ProtectionStats("hypercube")
    protect([school], stats=s_mod)
    protect([school], method="hypercube", stats=s_hyp)
    assert s_mod.audit.ok
    assert s_mod.pupils_hidden < s_hyp.pupils_hidden


def test_width_capped_by_a_public_total():
    """A school whose exact total (3 pupils) is public: its age-gap cells lie in [0, 3] whatever is
    hidden; they are hidden and the audit requires the whole public range, not k."""
    exact = pl.DataFrame({"uai": ["E1", "E2", "TOTAL"], "ecart_age": ["TOTAL"] * 3, "effectif": [3, 40, 43]})
    gap = pl.DataFrame({
        "uai": ["E1"] * 4 + ["E2"] * 4 + ["TOTAL"] * 4,
        "ecart_age": ["avance", "normal", "retard", "TOTAL"] * 3,
        "effectif": [0, 2, 1, 3, 2, 30, 8, 40, 2, 32, 9, 43]})
    dims = {"uai": Hierarchy.flat(["E1", "E2"]), "ecart_age": Hierarchy.flat(["avance", "normal", "retard"])}
    public = CountTable("ministere", exact, dims, policy=Policy("none"))
    table = CountTable("ecart-age", gap, dims, policy=Policy("threshold", 5))
    out = protect([public, table])
    hidden = out[1].frame.filter(pl.col("secret"))
    assert {("E1", "normal"), ("E1", "retard")} <= set(zip(hidden["uai"], hidden["ecart_age"]))
    assert out[1].frame.filter((pl.col("uai") == "E1") & (pl.col("ecart_age") == "TOTAL"))["secret"].to_list() == [False]
    assert verify(out).ok
