"""Invariants of the synthetic territory."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import polars as pl
import pytest
import shapely

from preau.codes import LEVELS, is_valid_uai
from preau.synth import BAN_COLUMNS, ONDE_HEADERS, generate

YEARS = ["2024-2025", "2025-2026", "2026-2027"]


def truth(synth_dir, year):
    return pl.read_parquet(synth_dir / "verite" / f"eleves-{year}.parquet")


def test_files_and_formats(synth_dir):
    for name in ["communes.geojson", "adresses-65.csv", "ecoles.csv", "carte-scolaire.csv", "secteurs.geojson"]:
        assert (synth_dir / name).stat().st_size > 0
    raw = (synth_dir / "eleves-2026-2027.csv").read_bytes()
    header = raw.split(b"\r\n", 1)[0].decode("cp1252").split(";")
    assert header == list(ONDE_HEADERS)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # real Windows-1252 (é, ’ …)
    ban = (synth_dir / "adresses-65.csv").read_text(encoding="utf-8").split("\n", 1)[0].split(";")
    assert ban == BAN_COLUMNS


def test_deterministic_by_seed(tmp_path, synth_dir):
    again = generate(tmp_path / "again", ["65"], seed=2026, years=3)
    for name in ["eleves-2026-2027.csv", "ecoles.csv", "carte-scolaire.csv", "adresses-65.csv"]:
        assert (again.out_dir / name).read_bytes() == (synth_dir / name).read_bytes()


def test_schools_have_valid_uai_and_stand_in_their_commune(synth_dir):
    schools = pl.read_csv(synth_dir / "ecoles.csv", separator=";", infer_schema=False)
    assert schools.height > 200
    assert all(is_valid_uai(u) for u in schools["identifiant_de_l_etablissement"])
    assert schools["identifiant_de_l_etablissement"].n_unique() == schools.height
    communes = gpd.read_file(synth_dir / "communes.geojson").set_index("code_insee")
    geoms = communes.geometry.reindex(schools["code_commune"].to_list()).values
    pts = shapely.points(schools["longitude"].cast(pl.Float64).to_numpy(), schools["latitude"].cast(pl.Float64).to_numpy())
    inside = shapely.covers(shapely.buffer(geoms, 1e-6), pts)
    assert inside.all(), schools.filter(~pl.Series(inside))["identifiant_de_l_etablissement"].to_list()


def test_every_pupil_address_is_in_the_reference(synth_dir):
    ban = pl.read_csv(synth_dir / "adresses-65.csv", separator=";", infer_schema=False, columns=["id"])
    ids = set(ban["id"])
    for year in YEARS:
        t = truth(synth_dir, year)
        assert set(t["ban_id"]) <= ids


def test_levels_move_up_one_per_year_or_repeat(synth_dir):
    order = {lvl: i for i, lvl in enumerate(LEVELS)}
    a, b = truth(synth_dir, YEARS[0]), truth(synth_dir, YEARS[1])
    both = a.join(b, on="identifiant_eleve", suffix="_next").filter(
        (pl.col("niveau") != "ULIS") & (pl.col("niveau_next") != "ULIS"))
    assert both.height > 10_000
    step = both["niveau_next"].replace_strict(order) - both["niveau"].replace_strict(order)
    assert set(step.unique().to_list()) <= {0, 1}
    assert (step == 1).mean() > 0.9 and (step == 0).sum() > 0  # mostly up, a few repeat
    # cohorts: the CM2 pupils of year 1 have left, new PS arrive
    assert both.filter(pl.col("niveau") == "CM2").height == 0
    assert b.filter(pl.col("niveau") == "PS").height > 1000


def test_birth_years_match_levels(synth_dir):
    from preau.ingest import read_export
    from preau.tables import derive

    frame = derive(read_export(synth_dir / "eleves-2026-2027.csv").frame)
    share = frame["ecart_age"].value_counts(normalize=True)
    normal = share.filter(pl.col("ecart_age") == "normal")["proportion"][0]
    assert 0.9 < normal < 0.99  # a few ahead or behind, as in reality
    assert set(frame["ecart_age"].drop_nulls().unique()) == {"avance", "normal", "retard"}


def test_sectors_partition_each_commune(synth_dir):
    communes = gpd.read_file(synth_dir / "communes.geojson").to_crs(2154)
    sectors = gpd.read_file(synth_dir / "secteurs.geojson").to_crs(2154)
    assert sectors["code_secteur"].is_unique
    # no overlap between sectors
    total = sectors.area.sum()
    union = shapely.union_all(sectors.geometry.values)
    assert abs(union.area - total) / total < 1e-4
    # every commune is covered by sectors (all communes of the territory)
    cover = gpd.overlay(communes[["code_insee", "geometry"]], sectors[["code_secteur", "geometry"]], how="intersection")
    covered = cover.dissolve("code_insee").area
    share = (covered / communes.set_index("code_insee").area).reindex(communes["code_insee"]).fillna(0)
    assert (share > 0.999).all(), share[share <= 0.999].head()


def test_pupils_mostly_attend_their_sector_school(synth_dir):
    schools = pl.read_csv(synth_dir / "ecoles.csv", separator=";", infer_schema=False).select(
        pl.col("identifiant_de_l_etablissement").alias("uai"), "code_secteur", "statut_public_prive")
    t = truth(synth_dir, YEARS[-1]).join(schools, on="uai")
    public = t.filter(pl.col("statut_public_prive") == "Public")
    same = (public["code_secteur"] == public["code_secteur_residence"]).mean()
    assert 0.85 < same < 0.995  # derogations and ULIS exist
    assert t.filter(pl.col("statut_public_prive") != "Public").height > 0


def test_output_does_not_depend_on_worker_processes(tmp_path):
    """Départements generated in worker processes give the same files, in the same order, as in-process."""
    one = generate(tmp_path / "one", ["90", "2A"], seed=11, years=1, workers=1)
    two = generate(tmp_path / "two", ["90", "2A"], seed=11, years=1, workers=2)
    names = sorted(p.relative_to(one.out_dir).as_posix() for p in one.out_dir.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(two.out_dir).as_posix() for p in two.out_dir.rglob("*") if p.is_file())
    assert "adresses-2A.csv" in names and "eleves-2026-2027.csv" in names
    for name in names:
        assert (one.out_dir / name).read_bytes() == (two.out_dir / name).read_bytes(), name
    export = pl.read_csv(one.out_dir / "eleves-2026-2027.csv", separator=";", encoding="cp1252", infer_schema=False)
    assert export.height == one.counts["eleves 2026-2027"]
    assert export["INE"].is_unique().all()
    assert set(export["Code INSEE commune"].str.slice(0, 2)) == {"90", "2A"}
    # one export per school year, départements in the order asked
    first_2a = export["Code INSEE commune"].str.starts_with("2A").arg_max()
    assert export["Code INSEE commune"][:first_2a].str.starts_with("90").all()


def test_towns_have_fewer_addresses_per_inhabitant_than_villages(synth_dir):
    """BAN-like density: flats in towns, houses in villages."""
    ban = pl.read_csv(synth_dir / "adresses-65.csv", separator=";", infer_schema=False, columns=["code_insee"])
    communes = gpd.read_file(synth_dir / "communes.geojson")[["code_insee", "population"]]
    per = (ban.group_by("code_insee").len().join(pl.from_pandas(communes), on="code_insee")
           .with_columns((pl.col("population") / pl.col("len")).alias("inhabitants_per_address")))
    town = per.filter(pl.col("population") > 20_000)["inhabitants_per_address"].mean()
    village = per.filter((pl.col("population") > 100) & (pl.col("population") < 1000))["inhabitants_per_address"].mean()
    assert 1.5 < village < 2.5
    assert town > 1.5 * village
