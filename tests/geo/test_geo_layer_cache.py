"""Layers read once and kept between builds (read_layer / read_sectors(..., cache_dir=...)).
Generated geometries only."""

import json

import geopandas as gpd
import pytest
import shapely

from preau.errors import PreauError, Report
from preau.geo import layers_io
from preau.geo.sectors import read_sectors


def _layer(tmp_path, name="secteurs.geojson", crs=True):
    """Two sectors in Lambert-93 metres, the second one a bow-tie (invalid, repaired on reading)."""
    bow = shapely.Polygon([(451000, 6250000), (452000, 6251000), (452000, 6250000), (451000, 6251000)])
    gdf = gpd.GeoDataFrame({"code_secteur": ["65901-01", "65901-02"]},
                           geometry=[shapely.box(450000, 6250000, 451000, 6251000), bow],
                           crs="EPSG:2154" if crs else None)
    path = tmp_path / name
    gdf.to_file(path, driver="GeoJSON")
    if not crs:  # no "crs" member at all
        doc = json.loads(path.read_text())
        doc.pop("crs", None)
        path.write_text(json.dumps(doc))
    return path


def test_layer_read_back_with_its_warnings(tmp_path, monkeypatch):
    path = _layer(tmp_path, crs=False)
    cache = tmp_path / "cache"
    plain = Report()
    want = read_sectors(path, report=plain)
    codes = {p.code for p in plain.problems}
    assert {"geo-layer-invalid-geometry"} <= codes
    first, second = Report(), Report()
    a = read_sectors(path, report=first, cache_dir=cache)
    calls = []
    real = layers_io._read_layer
    monkeypatch.setattr(layers_io, "_read_layer", lambda *x: calls.append(x) or real(*x))
    b = read_sectors(path, report=second, cache_dir=cache)
    assert calls == []  # read back, not read again
    for got in (a, b):
        assert got.crs == want.crs and got.equals(want)
    assert first.problems == plain.problems == second.problems
    assert len(list(cache.glob("layer-*"))) == 1


def test_changed_layer_is_read_again(tmp_path):
    path = _layer(tmp_path)
    cache = tmp_path / "cache"
    read_sectors(path, cache_dir=cache)
    before = sorted(p.name for p in cache.iterdir())
    gdf = gpd.read_file(path).head(1)
    gdf.to_file(path, driver="GeoJSON")
    got = read_sectors(path, cache_dir=cache)
    assert list(got["code_secteur"]) == ["65901-01"]
    after = sorted(p.name for p in cache.iterdir())
    assert len(after) == 1 and after != before


def test_damaged_entry_and_errors(tmp_path):
    path = _layer(tmp_path)
    cache = tmp_path / "cache"
    want = read_sectors(path, cache_dir=cache)
    (entry,) = cache.iterdir()
    (entry / "layer.parquet").write_bytes(b"PAR1 damaged")
    assert read_sectors(path, cache_dir=cache).equals(want)
    bad = tmp_path / "vide.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    report = Report()
    with pytest.raises(PreauError):
        read_sectors(bad, report=report, cache_dir=cache)
    assert any(p.code == "geo-layer-empty" for p in report.problems)  # in the caller's report, as without cache
    assert len(list(cache.iterdir())) == 1  # nothing kept for the bad layer
