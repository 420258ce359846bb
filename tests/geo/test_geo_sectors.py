import json

import geopandas as gpd
import numpy as np
import polars as pl
import pytest
import shapely

from geo_fixtures import truth_sector
from preau.errors import PreauError, Report
from preau.geo import sectors as sectors_mod
from preau.geo import (SectorIndex, assign_points, assign_sectors, build_sectors, check_topology, read_communes,
                       read_rules, read_sectors)


@pytest.fixture(scope="module")
def built(mini, mini_ref):
    return build_sectors(mini["rules"], mini_ref, mini["communes"])


def test_rules_to_polygons_assign_every_address(mini, mini_ref, built):
    assert set(built.sectors["code_secteur"]) == {"65901-01", "65901-02", "65902-01"}
    assert built.match["street_match_rate"] == 1.0 and built.match["address_match_rate"] == 1.0
    ban = pl.read_csv(mini["ban"], separator=";", infer_schema=False)
    codes = assign_points(ban["x"].cast(float).to_numpy(), ban["y"].cast(float).to_numpy(), built.sectors)
    truth = [truth_sector(i, s, int(n)) for i, s, n in ban.select("code_insee", "nom_voie", "numero").iter_rows()]
    assert list(codes) == truth


def test_sectors_partition_communes(mini, built):
    communes = read_communes(mini["communes"])
    topo = check_topology(built.sectors, communes)
    assert topo["ok"], topo
    assert abs(built.sectors.area.sum() - communes.area.sum()) < 1.0


def test_secteur_unique_covers_the_whole_commune(mini, built):
    communes = read_communes(mini["communes"])
    whole = communes.loc[communes.code_insee == "65902"].geometry.iloc[0]
    sec = built.sectors.loc[built.sectors.code_secteur == "65902-01"].geometry.iloc[0]
    assert abs(sec.area - whole.area) < 1.0


def test_unknown_street_reported_in_match_report(mini, mini_ref):
    b = build_sectors(mini["rules_bad"], mini_ref, mini["communes"])
    assert b.match["street_rules_matched"] == b.match["street_rules"] - 1
    assert b.match["unmatched_rule_lines"] == [pl.read_csv(mini["rules_bad"], separator=";").height + 1 - 1]
    assert any(p.code == "geo-rules-street-not-found" for p in b.report.warnings)


def test_rules_missing_columns(tmp_path):
    p = tmp_path / "rules.csv"
    p.write_text("code_insee;type_et_libelle\n65901;Rue des Lilas\n", encoding="utf-8")
    with pytest.raises(PreauError) as err:
        read_rules(p)
    assert "parite" in err.value.render("fr")


def test_topology_detects_overlap_and_gap(built, mini):
    communes = read_communes(mini["communes"])
    s = built.sectors.copy()
    g = s.geometry.to_numpy()
    g[0] = shapely.buffer(g[0], 30.0)  # overlaps neighbours and spills out
    g[2] = shapely.buffer(g[2], -40.0)  # leaves a gap
    s["geometry"] = g
    topo = check_topology(s, communes)
    assert topo["overlaps"] and topo["gaps"] and not topo["ok"]


def test_assign_sectors_returns_no_coordinates(mini, mini_ref, built):
    ban = pl.read_csv(mini["ban"], separator=";", infer_schema=False)
    inp = ban.select((pl.col("numero") + " " + pl.col("rep") + " " + pl.col("nom_voie")).alias("adresse"),
                     "code_postal", pl.col("nom_commune").alias("commune_residence"))
    res = assign_sectors(inp, mini_ref, built.sectors, columns={"commune": "commune_residence"})
    assert res.columns == ["code_secteur_residence", "result_type", "result_score", "result_code_insee"]
    truth = [truth_sector(i, s, int(n)) for i, s, n in ban.select("code_insee", "nom_voie", "numero").iter_rows()]
    assert res["code_secteur_residence"].to_list() == truth
    # commune-level result: a single-sector commune still gets its sector, a split one does not
    res2 = assign_sectors(pl.DataFrame({"adresse": ["", ""], "code_insee": ["65902", "65901"]}), mini_ref, built.sectors)
    assert res2["code_secteur_residence"].to_list() == ["65902-01", None]


def test_index_gap_points_go_to_nearest_within_distance(built):
    idx = SectorIndex.build(built.sectors)
    minx, miny, maxx, maxy = built.sectors.total_bounds
    codes = idx.codes_for(np.array([minx - 10.0, minx - 500.0]), np.array([miny + 100.0, miny + 100.0]))
    assert codes[0] is not None and codes[1] is None


# ------------------------------------------------------------------ bad geodata
def _write(gdf, path, **kw):
    gdf.to_file(path, engine="pyogrio", **kw)
    return path


def test_read_sectors_repairs_self_intersection(tmp_path):
    bowtie = shapely.Polygon([(450000, 6250000), (451000, 6251000), (451000, 6250000), (450000, 6251000)])
    ok = shapely.box(452000, 6250000, 453000, 6251000)
    gdf = gpd.GeoDataFrame({"code_secteur": ["A", "B"]}, geometry=[bowtie, ok], crs="EPSG:2154")
    rep = Report()
    out = read_sectors(_write(gdf, tmp_path / "s.gpkg"), report=rep)
    assert out.geometry.is_valid.all() and len(out) == 2
    w = [p for p in rep.warnings if p.code == "geo-layer-invalid-geometry"]
    assert w and "make_valid" in w[0].fr and "Self-intersection" in w[0].en


def test_layer_without_crs_and_with_wrong_crs(tmp_path):
    box = shapely.box(450000, 6250000, 451000, 6251000)
    # Lambert-93 coordinates declared as WGS84
    wrong = gpd.GeoDataFrame({"code_secteur": ["A"]}, geometry=[box], crs="EPSG:4326")
    p = tmp_path / "wrong.geojson"
    p.write_text(wrong.to_json(), encoding="utf-8")
    rep = Report()
    out = read_sectors(p, report=rep)
    assert any(x.code == "geo-layer-wrong-crs" for x in rep.warnings)
    assert abs(out.geometry.iloc[0].area - 1e6) < 1.0
    # no CRS at all (shapefile without .prj)
    none = gpd.GeoDataFrame({"code_secteur": ["A"]}, geometry=[box])
    shp = _write(none, tmp_path / "none.shp")
    rep2 = Report()
    out2 = read_sectors(shp, report=rep2)
    assert any(x.code == "geo-layer-no-crs" for x in rep2.warnings) and out2.crs.to_epsg() == 2154


def test_empty_layer_and_missing_key(tmp_path):
    p = tmp_path / "empty.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": []}), encoding="utf-8")
    with pytest.raises(PreauError) as err:
        read_sectors(p)
    assert "aucune géométrie" in err.value.render("fr")
    gdf = gpd.GeoDataFrame({"nom": ["x"]}, geometry=[shapely.box(0, 45, 1, 46)], crs="EPSG:4326")
    with pytest.raises(PreauError) as err:
        read_sectors(_write(gdf, tmp_path / "nokey.geojson"))
    assert "code_secteur" in err.value.render("fr")
    with pytest.raises(PreauError):
        read_sectors(tmp_path / "absent.gpkg")
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(PreauError):
        read_sectors(bad)


@pytest.mark.parametrize("max_cells", [5_000, 200_000])  # coarse: few inner regions; fine: many
def test_grid_lookup_agrees_with_exact_polygon_tests(built, max_cells):
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = built.sectors.total_bounds
    x = rng.uniform(minx - 200, maxx + 200, 60_000)
    y = rng.uniform(miny - 200, maxy + 200, 60_000)
    gridded = SectorIndex.build(built.sectors, max_cells=max_cells)
    exact = SectorIndex.build(built.sectors, max_cells=0)
    a = gridded.lookup(x, y, max_distance=0.0)
    assert gridded.grid is not None and exact.grid is None
    b = exact.lookup(x, y, max_distance=0.0)
    assert (a == b).all() and (a >= 0).mean() > 0.5 and (a < 0).any()
    # points on the grid lines and corners (the cell number of a point there depends on rounding)
    x0, y0, cell, nx, ny, *_ = gridded.grid
    i = rng.integers(0, nx, 5_000)
    j = rng.integers(0, ny, 5_000)
    gx, gy = x0 + i * cell, y0 + j * cell
    lx = np.concatenate([gx, gx + rng.uniform(0, cell, 5_000), gx])  # vertical lines, horizontal, corners
    ly = np.concatenate([gy + rng.uniform(0, cell, 5_000), gy, gy])
    assert (gridded.lookup(lx, ly, max_distance=0.0) == exact.lookup(lx, ly, max_distance=0.0)).all()


def test_grid_cells_follow_the_points_looked_up(built, monkeypatch):
    from preau.geo import assign

    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = built.sectors.total_bounds
    x = rng.uniform(minx, maxx, 60_000)
    y = rng.uniform(miny, maxy, 60_000)
    monkeypatch.setattr(assign, "GRID_MIN_CELLS", 1_000)
    small = SectorIndex.build(built.sectors, max_cells=4_000_000)
    a = small.lookup(x, y, max_distance=0.0)
    nx, ny = small.grid[3], small.grid[4]
    # about GRID_CELLS_PER_POINT cells per point asked (the cells are square: a few more)
    assert nx * ny < 4 * assign.GRID_CELLS_PER_POINT * len(x)
    capped = SectorIndex.build(built.sectors, max_cells=20_000)
    b = capped.lookup(x, y, max_distance=0.0)
    assert capped.grid[3] * capped.grid[4] < 40_000  # max_cells stays the cap
    exact = SectorIndex.build(built.sectors, max_cells=0)
    assert (a == exact.lookup(x, y, max_distance=0.0)).all() and (b == a).all()


@pytest.mark.parametrize("layout", ["random", "grid"])  # grid: co-circular points, the degenerate case
def test_boundary_filter_keeps_the_dissolved_cells(layout, monkeypatch):
    rng = np.random.default_rng(7)
    if layout == "random":
        xy = rng.uniform(0, 2000, size=(4000, 2))
    else:
        g = np.arange(0, 2000, 25.0)
        xy = np.array([(a, b) for a in g for b in g])
    # three sectors: nearest of three seeds (streets are not straight lines: a wavy border)
    seeds = np.array([[300.0, 400.0], [1500.0, 600.0], [900.0, 1700.0]])
    d = ((xy[:, None, :] - seeds[None]) ** 2).sum(-1) + 4e4 * np.sin(xy[:, :1] / 90.0)
    codes = np.array(["A", "B", "C"])[d.argmin(1)]
    commune = shapely.box(-10, -10, 2010, 2010)
    keep = sectors_mod._boundary_points(xy[:, 0], xy[:, 1], codes)
    assert 0 < keep.sum() < 0.5 * len(xy)  # most points are inside their sector
    filtered = sectors_mod._voronoi_cells(commune, xy[:, 0], xy[:, 1], codes)
    monkeypatch.setattr(sectors_mod, "BOUNDARY_FILTER_FROM", 10**9)
    full = sectors_mod._voronoi_cells(commune, xy[:, 0], xy[:, 1], codes)
    assert set(filtered) == set(full) == {"A", "B", "C"}
    for code in full:
        assert shapely.area(shapely.symmetric_difference(filtered[code], full[code])) < 1e-3
    assert abs(sum(shapely.area(g) for g in filtered.values()) - commune.area) < 1e-3


def test_boundary_filter_on_collinear_points(monkeypatch):
    xs = np.arange(100.0)
    codes = np.where(xs < 50, "A", "B")
    assert np.flatnonzero(sectors_mod._boundary_points(xs, 2 * xs, codes)).tolist() == [49, 50]
    commune = shapely.box(-10, -10, 110, 210)
    filtered = sectors_mod._voronoi_cells(commune, xs, 2 * xs, codes)
    monkeypatch.setattr(sectors_mod, "BOUNDARY_FILTER_FROM", 10**9)
    full = sectors_mod._voronoi_cells(commune, xs, 2 * xs, codes)
    for code in ("A", "B"):
        assert shapely.area(shapely.symmetric_difference(filtered[code], full[code])) < 1e-6


def test_overlaps_go_to_the_commune_listed_first_and_parts_agree_with_the_whole():
    """Overlapping strips go to the first polygon; cutting only some polygons (given with their
    neighbours and their rank in the whole list) gives the same polygons as cutting all."""
    boxes = [shapely.box(x, y, x + 100, y + 100) for y in (0, 95, 190) for x in (0, 95, 190)]  # 5 m strips
    geoms = np.array(boxes, dtype=object)
    whole, pairs, area = sectors_mod.resolve_overlaps(geoms)
    assert pairs == 20 and area > 0  # 12 side pairs and 8 diagonal ones (the corner squares)
    assert shapely.area(shapely.union_all(whole)) == pytest.approx(shapely.area(shapely.union_all(geoms)))
    assert sum(shapely.area(g) for g in whole) == pytest.approx(shapely.area(shapely.union_all(geoms)))
    assert shapely.equals(whole[0], geoms[0])  # listed first: keeps everything
    centre = shapely.box(95, 95, 100, 100)  # in 0, 1, 3 and 4: goes to 0
    assert shapely.area(shapely.intersection(whole[4], centre)) == 0
    # the middle row only, with the polygons whose bounds meet it, in their whole-list order
    near = np.arange(9)
    mine = np.array([3, 4, 5])
    part, _, _ = sectors_mod.resolve_overlaps(geoms[near], near, mine)
    for i in mine:
        assert shapely.equals_exact(part[i], whole[i], 1e-9)
    # ranks, not positions, say which is first: polygon 1 and its neighbours, shuffled
    sub = np.array([4, 1, 0, 5, 2, 3])
    part, _, _ = sectors_mod.resolve_overlaps(geoms[sub], sub, np.array([1]))
    assert shapely.equals_exact(part[1], whole[1], 1e-9) and not shapely.equals(part[1], geoms[1])


def _subdivide_one_by_one(geom, max_vertices, out, depth=0):
    """The per-geometry recursion the vectorised subdivision replaced (reference for the test)."""
    if shapely.is_empty(geom):
        return
    if shapely.get_num_coordinates(geom) <= max_vertices or depth > 24:
        out.extend(p for p in shapely.get_parts(geom) if shapely.get_type_id(p) == 3)
        return
    minx, miny, maxx, maxy = shapely.bounds(geom)
    if maxx - minx >= maxy - miny:
        halves = ((minx, miny, (minx + maxx) / 2, maxy), ((minx + maxx) / 2, miny, maxx, maxy))
    else:
        halves = ((minx, miny, maxx, (miny + maxy) / 2), (minx, (miny + maxy) / 2, maxx, maxy))
    for box in halves:
        _subdivide_one_by_one(shapely.clip_by_rect(geom, *box), max_vertices, out, depth + 1)


@pytest.mark.parametrize("vectorised", [True, False])  # False: the element-by-element fallback
def test_subdivision_gives_the_pieces_of_the_recursive_cut(built, vectorised, monkeypatch):
    from preau.geo import assign

    if not vectorised:
        monkeypatch.setattr(assign, "_CLIP_UFUNC", None)
    geoms = np.concatenate([built.sectors.geometry.to_numpy(), [shapely.Polygon(), None]])
    pieces, owner = assign._subdivide(geoms, 16)
    assert (np.diff(owner) >= 0).all() and (shapely.get_num_coordinates(pieces) <= 16 + 8).all()
    want = []
    for i, g in enumerate(geoms):
        if g is None:
            continue
        ref: list = []
        _subdivide_one_by_one(g, 16, ref)
        want += [(i, w) for w in shapely.to_wkb(shapely.normalize(np.array(ref, dtype=object)))]
    got = list(zip(owner.tolist(), shapely.to_wkb(shapely.normalize(pieces))))
    assert len(want) > 2 * len(built.sectors) and sorted(got) == sorted(want)
