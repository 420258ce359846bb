"""The geography stage on the synthetic territory (``preau.synth``): geocoding, sectors, layers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyogrio
import pytest
import shapely

from preau.geo import (assign_sectors, build_layers, build_sectors, check_topology, geocode, load_reference,
                       read_communes, read_sectors)

COLS = {"adresse": "Adresse", "code_postal": "Code postal", "commune": "Commune", "code_insee": "Code INSEE commune"}


@pytest.fixture(scope="module")
def ref(synth_dir):
    return load_reference(sorted(synth_dir.glob("adresses-*.csv")))


@pytest.fixture(scope="module")
def pupils(synth_dir):
    """The latest year's pupil export joined with the synthetic truth (BAN id, sector, address variant)."""
    year = json.loads((synth_dir / "synth.json").read_text(encoding="utf-8"))["school_years"][-1]
    el = pl.read_csv(synth_dir / f"eleves-{year}.csv", separator=";", encoding="cp1252", infer_schema=False)
    truth = pl.read_parquet(synth_dir / "verite" / f"eleves-{year}.parquet")
    return el.join(truth, left_on="INE", right_on="identifiant_eleve", how="left", maintain_order="left")


@pytest.fixture(scope="module")
def built(synth_dir, ref):
    return build_sectors(synth_dir / "carte-scolaire.csv", ref, synth_dir / "communes.geojson")


def test_clean_reference_addresses_geocode_to_their_point(synth_dir, ref):
    ban = pl.read_csv(next(synth_dir.glob("adresses-*.csv")), separator=";", infer_schema=False)
    inp = ban.select(pl.concat_str([pl.col("numero"), pl.col("rep").fill_null(""), pl.col("nom_voie")], separator=" ")
                     .alias("adresse"), "code_postal", pl.col("nom_commune").alias("commune"))
    res = geocode(inp, ref)
    exact = (res["result_id"] == ban["id"]).fill_null(False).mean()
    assert exact >= 0.99, exact


def test_pupil_addresses_by_variant(pupils, ref):
    res = pl.concat([pupils, geocode(pupils, ref, COLS)], how="horizontal")
    same = (pl.col("result_id") == pl.col("ban_id")).fill_null(False)
    by = {v: g for (v,), g in res.group_by(["variante_adresse"])}
    assert set(by) >= {"exacte", "abreviation", "sans_numero", "faute_de_frappe"}
    for variant in ("exacte", "majuscules", "sans_accents"):
        g = by[variant]
        assert g.select(same.mean()).item() >= 0.99, variant
    for variant in ("abreviation", "faute_de_frappe"):  # noisy but numbered: still the exact point
        g = by[variant]
        assert (g["result_type"] == "housenumber").mean() >= 0.97, variant
        assert g.select(same.mean()).item() >= 0.97, variant
    g = by["sans_numero"]
    assert (g["result_type"] == "street").all()
    assert (res["result_code_insee"] == res["Code INSEE commune"]).mean() >= 0.999


def test_every_pupil_lands_in_its_true_sector(pupils, ref, synth_dir, built):
    for sectors in (read_sectors(synth_dir / "secteurs.geojson"), built.sectors):
        res = assign_sectors(pupils, ref, sectors, COLS)
        assert res.height == pupils.height
        assert all(dt != pl.Float64 or name == "result_score" for name, dt in res.schema.items())  # no coordinates
        got = pl.concat([pupils.select("code_secteur_residence", "variante_adresse"),
                         res.select(pl.col("code_secteur_residence").alias("got"), "result_type")], how="horizontal")
        known = got.filter(pl.col("got").is_not_null())
        assert (known["got"] == known["code_secteur_residence"]).all()
        unknown = got.filter(pl.col("got").is_null())
        # Only a street without number on a street split between sectors stays unknown.
        assert (unknown["result_type"] == "street").all() and unknown.height <= 0.01 * got.height


def test_rebuilt_sectors_match_the_truth(synth_dir, built):
    truth = read_sectors(synth_dir / "secteurs.geojson")
    assert built.match["street_match_rate"] >= 0.99 and built.match["address_match_rate"] >= 0.99
    m = truth.merge(built.sectors[["code_secteur", "geometry"]], on="code_secteur", how="left", suffixes=("_t", "_b"))
    inter = shapely.area(shapely.intersection(m["geometry_t"].values, m["geometry_b"].fillna(shapely.Polygon()).values))
    assert inter.sum() / truth.area.sum() >= 0.98
    topo = check_topology(built.sectors, read_communes(synth_dir / "communes.geojson"))
    assert not topo["overlaps"] and not topo["gaps"]


def _layer_points(path: Path) -> np.ndarray:
    df = pyogrio.read_dataframe(path)
    if df.crs is not None and df.crs.to_epsg() != 2154:
        df = df.to_crs("EPSG:2154")
    return shapely.get_coordinates(df.geometry.values)


def test_layers_hold_no_pupil_coordinate_or_address(tmp_path, synth_dir, ref, pupils, built):
    manifests = build_layers(tmp_path / "data", "demo-65", ecoles=synth_dir / "ecoles.csv",
                             communes=synth_dir / "communes.geojson", sectors=built.sectors)
    assert set(manifests) == {"carte-ecoles", "secteurs-scolaires", "communes"}
    assert all(m["validation"]["valid"] for m in manifests.values())  # attributes match schemas/couche-*
    ban = pl.read_csv(next(synth_dir.glob("adresses-*.csv")), separator=";", infer_schema=False)
    schools = pl.read_csv(synth_dir / "ecoles.csv", separator=";", infer_schema=False)
    homes = (pupils.select("ban_id").unique().join(ban, left_on="ban_id", right_on="id")
             .join(schools.select(pl.col("ban_id")), on="ban_id", how="anti"))  # a school's own point is public
    xy = homes.select(pl.col("x").cast(float), pl.col("y").cast(float)).to_numpy()
    lonlat = homes.select(pl.col("lon").cast(float), pl.col("lat").cast(float)).to_numpy()
    assert len(xy) > 1000
    addresses = set(pupils["Adresse"].drop_nulls().to_list()) - set(schools["adresse_1"].drop_nulls().to_list())
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert len(files) >= 3 * 8
    assert _leaks(files, xy, lonlat, addresses) == []
    # Negative control: the scanner does find a planted pupil point and address.
    planted = tmp_path / "planted.geojson"
    lon, lat = lonlat[len(lonlat) // 2]
    props = json.dumps({"a": max(addresses, key=len)}, ensure_ascii=False)
    planted.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": ' + props
                       + f', "geometry": {{"type": "Point", "coordinates": [{lon:.6f}, {lat:.6f}]}}}}]}}', encoding="utf-8")
    assert _leaks([planted], xy, lonlat, addresses) == [("planted.geojson", "vertex"), ("planted.geojson", "pair"),
                                                        ("planted.geojson", "address")]


def _leaks(files, xy, lonlat, addresses) -> list[tuple[str, str]]:
    """Which files hold a pupil's point (vertex within 5 cm, or a "lon, lat" text pair) or address.
    Returns names and kinds only, so a failure never prints a coordinate or an address."""
    tree = shapely.STRtree(shapely.points(xy))
    pupil_pairs = {(f"{lon:.6f}", f"{lat:.6f}") for lon, lat in lonlat}
    found = []
    for f in files:
        if f.suffix in (".geojson", ".gpkg", ".fgb"):
            pts = _layer_points(f)
            _, hit = tree.query_nearest(shapely.points(pts), max_distance=0.05, return_distance=False, all_matches=False)
            if len(hit):
                found.append((f.name, "vertex"))
        text = f.read_bytes().decode("utf-8", errors="ignore")
        if set(re.findall(r"(-?\d+\.\d{6}),\s?(-?\d+\.\d{6})", text)) & pupil_pairs:
            found.append((f.name, "pair"))
        if f.suffix in (".geojson", ".json", ".svg"):
            lowered = text.lower()
            if any(a.lower() in lowered for a in addresses if len(a) > 12):
                found.append((f.name, "address"))
    return found
