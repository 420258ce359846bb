"""Aggregation of the canonical frame into the declared tables (before disclosure control)."""

from __future__ import annotations

import polars as pl
import pytest

from preau.ingest import read_export
from preau.tables import (COUNTED, HORS_ULIS, build_table, count_pupils, derive, from_pieces, ministry_table,
                          school_level_counts, to_pieces)
from preau.workspace import load_workspace

YEAR = "2026-2027"


@pytest.fixture(scope="module")
def pupils(synth_dir):
    truth = pl.read_parquet(synth_dir / "verite" / f"eleves-{YEAR}.parquet")
    frame = derive(read_export(synth_dir / f"eleves-{YEAR}.csv").frame)
    # residence sector from the synthetic truth (the geocoder is tested on its own)
    return frame.with_columns(truth["code_secteur_residence"])


@pytest.fixture(scope="module")
def ws():
    return load_workspace(".")[0]


def cell(df, **kw):
    expr = pl.lit(True)
    for k, v in kw.items():
        expr = expr & (pl.col(k) == v)
    return df.filter(expr)["effectif"].to_list()


def test_commune_level_margins_add_up(pupils, ws):
    t = build_table(ws.datasets["effectifs-commune-niveau"], pupils)
    f = t.frame
    assert cell(f, code_insee="TOTAL", niveau="TOTAL") == [pupils.height]
    # every commune: levels add up to cycles, cycles + ULIS to the total
    leaves = f.filter(pl.col("niveau").is_in(["TPS", "PS", "MS", "GS"])).group_by("code_insee").agg(pl.col("effectif").sum())
    c1 = f.filter(pl.col("niveau") == "C1").select("code_insee", pl.col("effectif").alias("c1"))
    assert leaves.join(c1, on="code_insee").filter(pl.col("effectif") != pl.col("c1")).height == 0
    tot = f.filter(pl.col("niveau") == "TOTAL").select("code_insee", pl.col("effectif").alias("t"))
    parts = f.filter(pl.col("niveau").is_in(["C1", "C2", "C3", "ULIS"])).group_by("code_insee").agg(pl.col("effectif").sum())
    assert parts.join(tot, on="code_insee").filter(pl.col("effectif") != pl.col("t")).height == 0
    # complete grid: every commune has all 14 level rows (zeros published)
    assert f.group_by("code_insee").len()["len"].unique().to_list() == [14]
    assert (f["effectif"] == 0).sum() > 0


def test_flow_table_is_linked_to_school_totals(pupils, ws):
    flows = build_table(ws.datasets["flux-secteur-ecole"], pupils).frame
    anchor = school_level_counts(pupils).frame.filter(pl.col("niveau") == "TOTAL")
    per_school = flows.filter(pl.col("code_secteur") == "TOTAL").select("uai", pl.col("effectif").alias("f"))
    joined = anchor.select("uai", "effectif").join(per_school, on="uai")
    assert joined.height == anchor.height and (joined["effectif"] == joined["f"]).all()


def test_service_and_age_gap_tables(pupils, ws):
    svc = build_table(ws.datasets["restauration-periscolaire-ecole"], pupils)
    assert len(svc.pieces) == 3
    f = svc.frame
    for service in ("cantine", "periscolaire", "transport"):
        assert cell(f, uai="TOTAL", service=service, inscrit="oui") == [int(pupils[service].sum())]
        assert cell(f, uai="TOTAL", service=service, inscrit="TOTAL") == [pupils.height]
    age = build_table(ws.datasets["ecart-age-ecole"], pupils)
    hors_ulis = pupils.filter(pl.col("niveau") != "ULIS").height
    assert cell(age.frame, uai="TOTAL", ecart_age="TOTAL") == [hors_ulis]
    # linked to the exact school table through the hors-ULIS total
    piece = age.pieces[0].frame
    assert set(piece["niveau"]) == {HORS_ULIS}
    anchor = school_level_counts(pupils).frame
    assert cell(anchor, uai="TOTAL", niveau=HORS_ULIS) == [hors_ulis]


def test_pieces_round_trip(pupils, ws):
    svc = build_table(ws.datasets["restauration-periscolaire-ecole"], pupils)
    frames = [p.frame.with_columns(pl.lit(False).alias("secret")) for p in svc.pieces]
    back = from_pieces(svc.dims, frames)
    assert back.drop("secret").equals(svc.frame)
    again = to_pieces(svc.dataset, svc.dims, back, svc.policy)
    assert [p.frame.height for p in again] == [p.frame.height for p in svc.pieces]


def test_ministry_table(pupils, synth_dir):
    schools = pl.read_csv(synth_dir / "ecoles.csv", separator=";", infer_schema=False)
    m = ministry_table(pupils, schools)
    assert m["numero_de_l_ecole"].n_unique() == m.height == pupils["uai"].n_unique()
    assert m["nombre_total_d_eleves"].sum() == pupils.height
    lv = [c for c in m.columns if c.endswith("_hors_ulis") and "elementaire" not in c]
    assert (m.select(pl.sum_horizontal(lv) + pl.col("nombre_d_eleves_en_ulis")).to_series()
            == m["nombre_total_d_eleves"]).all()
    assert (m["nombre_total_de_classes"] >= 1).all()
    assert set(m["secteur"]) == {"public", "privé"}


def test_service_cells_are_the_pupils_counted_row_by_row(pupils, ws):
    """Every school × service × registered cell of the service table is the number of pupil rows of
    that school with that service flag (the table is summed from one count over all services)."""
    f = build_table(ws.datasets["restauration-periscolaire-ecole"], pupils).frame
    leaf = f.filter((pl.col("uai") != "TOTAL") & (pl.col("inscrit") != "TOTAL"))
    rows = []
    for service in ("cantine", "periscolaire", "transport"):
        rows.append(pupils.group_by(pl.col("annee_scolaire").cast(pl.String), pl.col("uai").cast(pl.String),
                                    pl.when(pl.col(service)).then(pl.lit("oui")).otherwise(pl.lit("non")).alias("inscrit"))
                    .len().with_columns(pl.lit(service).alias("service")))
    direct = pl.concat(rows).rename({"len": "direct"})
    both = leaf.join(direct, on=["annee_scolaire", "uai", "service", "inscrit"], how="full", coalesce=True)
    assert both.height == leaf.height  # zeros are listed (complete grid), nothing is missing
    assert (both["effectif"] == both["direct"].fill_null(0)).all()
    assert both["direct"].null_count() < both.height  # the check is not vacuous


@pytest.mark.parametrize("categorical", [False, True])
def test_derive_age_gap_and_cycle(categorical):
    """ecart_age from the school year's first year, the birth year and the level's normal age:
    ahead, normal, behind, none for ULIS; per distinct year (several years in one frame)."""
    from preau.codes import NORMAL_AGE

    cp = NORMAL_AGE["CP"]
    frame = pl.DataFrame({"annee_scolaire": ["2026-2027", "2026-2027", "2026-2027", "2025-2026", "2026-2027", None],
                          "niveau": ["CP", "CP", "CP", "CP", "ULIS", "CP"],
                          "annee_naissance": [2026 - cp + 1, 2026 - cp, 2026 - cp - 2, 2025 - cp, 2016, 2020]},
                         schema_overrides={"annee_naissance": pl.Int32})
    if categorical:
        frame = frame.with_columns(pl.col("annee_scolaire", "niveau").cast(pl.Categorical))
    out = derive(frame)
    assert out["ecart_age"].cast(pl.String).to_list() == ["avance", "normal", "retard", "normal", None, None]
    assert out["cycle"].cast(pl.String).to_list() == ["C2", "C2", "C2", "C2", "ULIS", "C2"]
    assert "annee_naissance" not in out.columns and out.schema["ecart_age"] == pl.Categorical


def test_tables_from_counted_pupils_are_the_same(pupils, ws, synth_dir):
    """The pipeline counts the pupils once (count_pupils) and sums that frame: every table, its
    pieces and the ministry table are the same as when each groups the pupils itself (the services
    table, whose columns the counted frame lacks, reads the pupils either way)."""
    datasets = [d for d in ws.datasets.values() if d.get("kind", "table") == "table"]
    counted = count_pupils(pupils, datasets)
    assert counted[COUNTED].sum() == pupils.height
    assert counted.height < pupils.height / 2  # far fewer rows than pupils: what makes it worth it
    assert school_level_counts(pupils, counted=counted).frame.equals(school_level_counts(pupils).frame)
    schools = pl.read_csv(synth_dir / "ecoles.csv", separator=";", infer_schema=False)
    assert ministry_table(pupils, schools, counted=counted).equals(ministry_table(pupils, schools))
    compared = 0
    for ds in datasets:
        if ds.get("shape") == "ministere":
            continue
        a, b = build_table(ds, pupils, counted=counted), build_table(ds, pupils)
        assert a.frame.equals(b.frame), ds.id
        assert len(a.pieces) == len(b.pieces) and all(x.frame.equals(y.frame) for x, y in zip(a.pieces, b.pieces))
        compared += 1
    assert compared >= 5
