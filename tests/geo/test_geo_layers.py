import json

import geopandas as gpd
import numpy as np
import pandas as pd
import polars as pl
import pyogrio
import pytest
import shapely
from typer.testing import CliRunner

from preau.errors import PreauError
from preau.geo import build_sectors, publish_layers, read_communes, sector_counts, sectors_layer


@pytest.fixture(scope="module")
def sectors(mini, mini_ref):
    return build_sectors(mini["rules"], mini_ref, mini["communes"]).sectors


def _schools():
    return gpd.GeoDataFrame(
        {"uai": ["0650901B", "0650902C"], "nom": ["École des Tilleuls", "École du Moulin"],
         "type_ecole": ["primaire", "maternelle"], "statut": ["public", "public"], "code_insee": ["65901", "65901"],
         "nom_commune": ["Bourg-Fictif", "Bourg-Fictif"], "code_secteur": ["65901-01", "65901-02"],
         "restauration": [True, False], "ulis": [False, False]},
        geometry=gpd.points_from_xy([450500.0, 451500.0], [6250500.0, 6251500.0]), crs="EPSG:2154")


def _counts():
    rows = []
    for code, total, c1 in (("65901-01", 40, 12), ("65901-02", 3, None), ("65902-01", 25, 9), ("TOTAL", 68, 23)):
        rows.append({"annee_scolaire": "2026-2027", "code_secteur": code, "niveau": "TOTAL", "effectif": total, "secret": False})
        rows.append({"annee_scolaire": "2026-2027", "code_secteur": code, "niveau": "C1", "effectif": c1, "secret": c1 is None})
    rows.append({"annee_scolaire": "2025-2026", "code_secteur": "65901-01", "niveau": "TOTAL", "effectif": 1, "secret": False})
    return pl.DataFrame(rows)


def test_publish_three_layers(tmp_path, mini, sectors):
    out = tmp_path / "data"
    manifests = publish_layers(out, "demo-65", schools=_schools(), sectors=sectors,
                               communes=read_communes(mini["communes"]), counts=_counts())
    for dataset, base in (("carte-ecoles", "ecoles"), ("secteurs-scolaires", "secteurs-scolaires"), ("communes", "communes")):
        folder = out / "demo-65" / dataset
        m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        assert m == manifests[dataset] and m["kind"] == "layer" and m["validation"]["valid"], m
        names = {r["path"] for r in m["resources"]}
        assert names == {f"{base}-wgs84.geojson", f"{base}-wgs84.gpkg", f"{base}-lambert93.gpkg",
                         f"{base}-wgs84.fgb", f"{base}-lambert93.fgb"}
        for r in m["resources"]:
            info = pyogrio.read_info(folder / r["path"])
            assert info["crs"] == r["crs"] and info["features"] == r["rows"]
        gj = json.loads((folder / f"{base}-wgs84.geojson").read_text(encoding="utf-8"))
        assert "crs" not in gj  # RFC 7946
        svg = (folder / "apercu.svg").read_text(encoding="utf-8")
        assert svg.startswith("<svg") and ("<path" in svg or "<circle" in svg)
        lon0, lat0, lon1, lat1 = m["spatial"]["bbox"]
        assert -1 < lon0 < lon1 < 1 and 43 < lat0 < lat1 < 44
    sec = gpd.read_file(out / "demo-65" / "secteurs-scolaires" / "secteurs-scolaires-lambert93.gpkg")
    row = sec.set_index("code_secteur")
    assert row.loc["65901-01", "effectif_total"] == 40 and row.loc["65901-02", "effectif_total"] == 3
    assert pd.isna(row.loc["65901-02", "effectif_c1"])  # suppressed cell stays empty
    assert manifests["secteurs-scolaires"]["school_years"] == ["2026-2027"]


def test_counts_must_be_protected():
    bad = _counts().with_columns(pl.lit(True).alias("secret"))
    with pytest.raises(PreauError):
        sector_counts(bad)
    with pytest.raises(PreauError):
        sector_counts(_counts().drop("secret"))


def test_sector_layer_without_counts_keeps_schema_columns(sectors):
    layer = sectors_layer(sectors)
    assert list(layer.columns) == ["code_secteur", "uai", "communes", "annee_scolaire", "effectif_total",
                                   "effectif_c1", "effectif_c2", "effectif_c3", "geometry"]


def test_cli_geocode_and_sectors(tmp_path, mini, monkeypatch):
    from preau.cli import app

    monkeypatch.chdir(tmp_path)
    ban = pl.read_csv(mini["ban"], separator=";", infer_schema=False)
    ban.select((pl.col("numero") + " " + pl.col("nom_voie")).alias("adresse"), "code_postal",
               pl.col("nom_commune").alias("commune")).write_csv(tmp_path / "in.csv", separator=";")
    runner = CliRunner()
    r = runner.invoke(app, ["geo", "geocode", "in.csv", "--reference", str(mini["ban"]), "--json"])
    assert r.exit_code == 0, r.output
    q = json.loads(r.stdout)
    assert q["counts"]["housenumber"] == ban.height and "Lilas" not in r.stdout
    r = runner.invoke(app, ["geo", "geocode", "in.csv", "-r", str(mini["ban"]), "-o", "resultats.csv"])
    assert r.exit_code == 2 and not (tmp_path / "resultats.csv").exists()
    r = runner.invoke(app, ["geo", "geocode", "in.csv", "-r", str(mini["ban"]), "-o", "_build/resultats.csv"])
    assert r.exit_code == 0 and (tmp_path / "_build" / "resultats.csv").exists()
    r = runner.invoke(app, ["geo", "geocode", "in.csv", "-r", "absent.csv"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = runner.invoke(app, ["geo", "sectors", "--rules", str(mini["rules_bad"]), "--addresses", str(mini["ban"]),
                            "--communes", str(mini["communes"]), "--out", "_build/secteurs", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["sectors"] == 3 and rep["match"]["street_rules"] - rep["match"]["street_rules_matched"] == 1
    assert (tmp_path / "_build" / "secteurs" / "secteurs-scolaires-wgs84.geojson").exists()


def test_layers_started_in_a_background_process(tmp_path, mini, monkeypatch):
    """The layers without counts are written by a spawned process while a large build goes on:
    same files and manifests as when written here; an error there reaches the caller."""
    from preau.geo import layers as layers_mod
    from preau.geo import start_layers

    communes = read_communes(mini["communes"])
    here = publish_layers(tmp_path / "here", "demo-65", schools=_schools(), communes=communes)
    monkeypatch.setattr(layers_mod, "BACKGROUND_FROM", 0)
    job = start_layers(tmp_path / "bg", "demo-65", schools=_schools(), communes=communes)
    try:
        assert job.future is not None  # really in another process
        there = job.result()
    finally:
        job.close()
    assert sorted(there) == sorted(here) == ["carte-ecoles", "communes"]
    for name in here:
        strip = lambda m: {k: v for k, v in m.items() if k != "generated"}  # noqa: E731
        assert strip(there[name]) == strip(here[name])
        for r in here[name]["resources"]:
            a = pyogrio.read_dataframe(tmp_path / "here" / "demo-65" / name / r["path"])
            b = pyogrio.read_dataframe(tmp_path / "bg" / "demo-65" / name / r["path"])
            assert a.equals(b)
    empty = _schools().iloc[:0]
    job = start_layers(tmp_path / "bad", "demo-65", schools=empty, communes=communes)
    try:
        with pytest.raises(PreauError) as info:
            job.result()
        assert info.value.report.problems[0].code == "geo-layer-empty"
    finally:
        job.close()


def test_large_layer_writes_its_wgs84_files_in_a_second_process(tmp_path, mini, sectors, monkeypatch):
    """A layer with many features writes its WGS84 files in a spawned process: same files, same
    manifest (resources in the same order, same bbox) as written in one process."""
    from preau.geo import layers as layers_mod

    one = publish_layers(tmp_path / "one", "demo-65", sectors=sectors, counts=_counts(), parallel=False)
    monkeypatch.setattr(layers_mod, "PARALLEL_WRITE_FROM", 0)
    spawned = []
    real = layers_mod._write_files

    import concurrent.futures as cf
    real_submit = cf.ProcessPoolExecutor.submit

    def submit(self, fn, *a, **k):
        spawned.append(fn.__name__)
        return real_submit(self, fn, *a, **k)

    monkeypatch.setattr(cf.ProcessPoolExecutor, "submit", submit)
    two = publish_layers(tmp_path / "two", "demo-65", sectors=sectors, counts=_counts())
    assert [n for n in spawned if n != "int"] == [real.__name__]  # int: the start-up task of spawn_pool
    strip = lambda m: {k: v for k, v in m.items() if k != "generated"}  # noqa: E731
    assert strip(one["secteurs-scolaires"]) == strip(two["secteurs-scolaires"])
    for r in one["secteurs-scolaires"]["resources"]:
        a = pyogrio.read_dataframe(tmp_path / "one" / "demo-65" / "secteurs-scolaires" / r["path"])
        b = pyogrio.read_dataframe(tmp_path / "two" / "demo-65" / "secteurs-scolaires" / r["path"])
        assert a.equals(b), r["path"]
    # the bbox is that of the WGS84 geometries written
    wgs = pyogrio.read_dataframe(tmp_path / "two" / "demo-65" / "secteurs-scolaires" / "secteurs-scolaires-wgs84.geojson")
    assert two["secteurs-scolaires"]["spatial"]["bbox"] == pytest.approx(list(wgs.total_bounds), abs=1e-6)


def test_geojson_writer_follows_rfc7946(tmp_path):
    from preau.geo.layers import write_geojson

    cw_with_hole = shapely.Polygon([(0, 0), (0, 1), (1, 1), (1, 0)], [[(0.2, 0.2), (0.4, 0.2), (0.4, 0.4), (0.2, 0.4)]])
    geoms = [cw_with_hole, shapely.MultiPolygon([shapely.box(2, 2, 3, 3), shapely.box(4, 4, 5.1234567891, 5)]),
             shapely.Point(0.123456789, 45.5), None]
    frame = gpd.GeoDataFrame({"code": pd.array(["a", None, "c", "d"], dtype="string"),
                              "n": pd.array([1, None, 3, 4], dtype="Int64"), "ok": [True, False, True, False],
                              "x": [0.5, float("nan"), 2.0, 3.25]}, geometry=geoms, crs="EPSG:4326")
    path = tmp_path / "t.geojson"
    write_geojson(frame, path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and "crs" not in doc and len(doc["features"]) == 4
    f0, f1, f2, f3 = doc["features"]
    assert f0["properties"] == {"code": "a", "n": 1, "ok": True, "x": 0.5}
    assert f1["properties"] == {"code": None, "n": None, "ok": False, "x": None}
    assert f3["geometry"] is None and f2["geometry"]["coordinates"] == [0.123457, 45.5]
    outer, hole = (shapely.LinearRing(r) for r in f0["geometry"]["coordinates"])
    assert outer.is_ccw and not hole.is_ccw  # RFC 7946 §3.1.6: exterior counter-clockwise, holes clockwise
    assert max(c for p in f1["geometry"]["coordinates"] for r in p for pt in r for c in pt) == 5.123457
    back = gpd.read_file(path)  # GDAL reads it as WGS84
    assert back.crs.to_epsg() == 4326 and back["code"].tolist()[0] == "a"
    assert shapely.equals_exact(shapely.normalize(back.geometry.to_numpy()[:3]),
                                shapely.normalize(np.array(geoms[:3], dtype=object)), 1e-6).all()


def test_layer_without_crs_is_written_as_lambert93(tmp_path, sectors):
    """A layer with no CRS (e.g. a shapefile without .prj) is taken as Lambert-93, as read_layer
    does, and written as the same files as the same layer declared in Lambert-93."""
    from preau.geo.layers import write_layer

    layer = sectors_layer(sectors)
    assert layer.crs.to_epsg() == 2154
    bare = layer.copy()
    bare.crs = None
    a = write_layer(layer, tmp_path / "a", "secteurs-scolaires", None, parallel=False)
    b = write_layer(bare, tmp_path / "b", "secteurs-scolaires", None, parallel=False)
    strip = lambda m: {k: v for k, v in m.items() if k != "generated"}  # noqa: E731
    assert strip(a) == strip(b) and b["validation"]["valid"]
    lon0, lat0, lon1, lat1 = b["spatial"]["bbox"]
    assert -1 < lon0 < lon1 < 1 and 43 < lat0 < lat1 < 44  # reprojected from Lambert-93, not from degrees
    for r in b["resources"]:
        assert pyogrio.read_info(tmp_path / "b" / r["path"])["crs"] == r["crs"]


def test_sector_geometry_prepared_ahead_gives_the_same_files(tmp_path, mini, sectors, monkeypatch):
    """The sector layer's geometry work made ahead (background process, while the tables are
    protected) then the counts: the same files and manifest as written in one go; the prepared
    work is really used, and ignored for a layer of other rows."""
    from preau.geo import layers as layers_mod
    from preau.geo import start_layers

    def files(root):
        folder = root / "demo-65" / "secteurs-scolaires"
        return {p.name: pyogrio.read_dataframe(p) for p in sorted(folder.iterdir()) if p.suffix in (".gpkg", ".fgb", ".geojson")}

    strip = lambda m: {k: v for k, v in m.items() if k != "generated"}  # noqa: E731
    one = publish_layers(tmp_path / "one", "demo-65", sectors=sectors, counts=_counts(), parallel=False)
    layer = sectors_layer(sectors, _counts())
    prepared = layers_mod.prepare_geometry(sectors_layer(sectors), "secteurs-scolaires")
    real_grid = layers_mod._centimetre_grid
    monkeypatch.setattr(layers_mod, "_centimetre_grid", lambda g: (_ for _ in ()).throw(AssertionError("recomputed")))
    ahead = layers_mod.write_layer(layer, tmp_path / "ahead", "secteurs-scolaires", "demo-65", prepared=prepared,
                                   school_years=one["secteurs-scolaires"]["school_years"])
    monkeypatch.setattr(layers_mod, "_centimetre_grid", real_grid)
    assert strip(ahead) == strip(one["secteurs-scolaires"])
    want = files(tmp_path / "one")
    assert sorted(want) == sorted(files(tmp_path / "ahead"))
    for name, frame in files(tmp_path / "ahead").items():
        assert frame.equals(want[name]), name
    assert (tmp_path / "ahead" / "demo-65" / "secteurs-scolaires" / "apercu.svg").read_text() == \
        (tmp_path / "one" / "demo-65" / "secteurs-scolaires" / "apercu.svg").read_text()
    # prepared for other rows: not used (the layer's own geometry is written)
    other = layers_mod.prepare_geometry(sectors_layer(sectors).iloc[::-1], "secteurs-scolaires")
    layers_mod.write_layer(layer, tmp_path / "other", "secteurs-scolaires", "demo-65", prepared=other,
                           school_years=one["secteurs-scolaires"]["school_years"])
    for name, frame in files(tmp_path / "other").items():
        assert frame.equals(want[name]), name
    # through the background process of start_layers
    monkeypatch.setattr(layers_mod, "BACKGROUND_FROM", 0)
    monkeypatch.setattr(layers_mod, "PARALLEL_WRITE_FROM", 0)
    job = start_layers(tmp_path / "bg", "demo-65", sectors=sectors)
    try:
        assert job.preparing is not None
        there = job.finish(_counts())
    finally:
        job.close()
    assert sorted(there) == ["secteurs-scolaires"] and strip(there["secteurs-scolaires"]) == strip(one["secteurs-scolaires"])
    for name, frame in files(tmp_path / "bg").items():
        assert frame.equals(want[name]), name
