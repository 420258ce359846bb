"""Geographic layers published in ``_build/data/<publisher>/<dataset>/``: schools, sectors, communes.

Each layer is written as GeoJSON (RFC 7946, WGS84, 6 decimals ≈ 0.1 m), GeoPackage and FlatGeobuf
(Lambert-93 EPSG:2154 and WGS84 EPSG:4326), with a small SVG preview (``apercu.svg``) drawn from
the geometry and a ``manifest.json`` (``kind = "layer"``) as docs/ARCHITECTURE.md describes.
Files are written to a temporary folder and moved into place: nothing is half-written.

Sector layers carry only *protected* counts (the disclosure stage's table, suppressed cells empty):
no pupil coordinate or address ever reaches these files.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import polars as pl
import shapely

from preau.errors import PreauError, Report, rel
from preau.geo.layers_io import L93, WGS84

TITLES = {
    "carte-ecoles": {"fr": "Carte des écoles", "en": "Map of schools"},
    "secteurs-scolaires": {"fr": "Secteurs scolaires", "en": "School sectors"},
    "communes": {"fr": "Communes", "en": "Communes"},
}
BASE_NAMES = {"carte-ecoles": "ecoles", "secteurs-scolaires": "secteurs-scolaires", "communes": "communes"}
SCHEMAS = {"carte-ecoles": "couche-ecoles", "secteurs-scolaires": "couche-secteurs", "communes": "couche-communes"}
CRS_LABEL = {WGS84: ("wgs84", "WGS84"), L93: ("lambert93", "Lambert-93")}
FORMAT_LABEL = {"geojson": "GeoJSON", "gpkg": "GeoPackage", "fgb": "FlatGeobuf"}
COUNT_LEVELS = {"TOTAL": "effectif_total", "C1": "effectif_c1", "C2": "effectif_c2", "C3": "effectif_c3"}
SECTOR_COLUMNS = ["code_secteur", "uai", "communes", "annee_scolaire", *COUNT_LEVELS.values()]


# ------------------------------------------------------------------------------------------ attributes
def schools_layer(ecoles: pl.DataFrame | str | Path) -> gpd.GeoDataFrame:
    """Schools as points (Lambert-93) from an annuaire-like ``ecoles.csv`` (or its frame)."""
    if not isinstance(ecoles, pl.DataFrame):
        path = Path(ecoles)
        if not path.is_file():
            raise PreauError(f"fichier des écoles introuvable : {rel(path)}", f"schools file not found: {rel(path)}",
                             code="geo-schools-missing", file=rel(path))
        ecoles = pl.read_csv(path, separator=";", infer_schema=False)
    need = ["identifiant_de_l_etablissement", "nom_etablissement"]
    missing = [c for c in need if c not in ecoles.columns]
    if missing or not ({"latitude", "longitude"} <= set(ecoles.columns)
                       or {"coordx_origine", "coordy_origine"} <= set(ecoles.columns)):
        missing = missing or ["latitude/longitude"]
        raise PreauError(f"colonnes absentes du fichier des écoles : {', '.join(missing)}",
                         f"columns missing from the schools file: {', '.join(missing)}", code="geo-schools-columns",
                         field=missing[0])
    col = lambda c: pl.col(c) if c in ecoles.columns else pl.lit(None, pl.Utf8)  # noqa: E731
    flt = lambda c: col(c).cast(pl.Utf8).str.replace(",", ".").cast(pl.Float64, strict=False)  # noqa: E731
    df = ecoles.select(
        col("identifiant_de_l_etablissement").alias("uai"),
        col("nom_etablissement").alias("nom"),
        col("type_ecole").alias("type_ecole"),
        pl.when(col("statut_public_prive").str.to_lowercase().str.starts_with("pub")).then(pl.lit("public"))
        .when(col("statut_public_prive").is_not_null()).then(pl.lit("prive")).alias("statut"),
        col("code_commune").alias("code_insee"),
        col("nom_commune").alias("nom_commune"),
        pl.when(col("code_secteur") == "").then(None).otherwise(col("code_secteur")).alias("code_secteur"),
        (col("restauration").cast(pl.Utf8).is_in(["1", "true", "True", "oui", "O"])).alias("restauration"),
        (col("ulis").cast(pl.Utf8).is_in(["1", "true", "True", "oui", "O"])).alias("ulis"),
        flt("longitude").alias("_lon"), flt("latitude").alias("_lat"),
        flt("coordx_origine").alias("_x"), flt("coordy_origine").alias("_y"),
    )
    lon, lat = df["_lon"].to_numpy(), df["_lat"].to_numpy()
    geom = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=WGS84).to_crs(L93)
    no_ll = ~np.isfinite(lon) | ~np.isfinite(lat)
    if no_ll.any():
        fallback = gpd.points_from_xy(df["_x"].to_numpy(), df["_y"].to_numpy())
        geom[no_ll] = fallback[no_ll]
    attrs = df.drop("_lon", "_lat", "_x", "_y").to_pandas()
    gdf = gpd.GeoDataFrame(attrs, geometry=geom.values, crs=L93)
    return gdf[~gdf.geometry.is_empty & gdf.geometry.x.notna()].reset_index(drop=True)


def sector_counts(counts: pl.DataFrame) -> pl.DataFrame:
    """Protected long table (``effectifs-secteur-niveau``) → one row per sector for the latest year.

    Requires the protected shape: ``code_secteur``, ``niveau``, ``effectif`` (empty when hidden) and
    ``secret``; a table with a hidden cell still holding a value is refused (it is not protected).
    """
    need = {"code_secteur", "niveau", "effectif", "secret"}
    missing = sorted(need - set(counts.columns))
    if missing:
        raise PreauError(f"table des effectifs par secteur non protégée ou incomplète : colonnes absentes {', '.join(missing)}",
                         f"sector counts table not protected or incomplete: missing columns {', '.join(missing)}",
                         code="geo-counts-columns", field=missing[0])
    secret = pl.col("secret").cast(pl.Utf8).str.to_lowercase().is_in(["true", "1", "oui"])
    leaked = counts.filter(secret & pl.col("effectif").is_not_null()).height
    if leaked:
        raise PreauError(f"{leaked} case(s) marquée(s) secrète(s) ont encore un effectif : la table n'est pas protégée",
                         f"{leaked} cell(s) flagged secret still hold a count: the table is not protected",
                         code="geo-counts-unprotected", field="effectif")
    df = counts
    year = None
    if "annee_scolaire" in df.columns:
        year = df["annee_scolaire"].drop_nulls().sort()[-1] if df["annee_scolaire"].drop_nulls().len() else None
        df = df.filter(pl.col("annee_scolaire") == year)
    df = df.filter((pl.col("code_secteur") != "TOTAL") & pl.col("niveau").is_in(list(COUNT_LEVELS)))
    wide = (df.with_columns(pl.col("niveau").replace_strict(COUNT_LEVELS).alias("col"),
                            pl.col("effectif").cast(pl.Int64, strict=False))
            .pivot(on="col", index="code_secteur", values="effectif", aggregate_function="first"))
    for c in COUNT_LEVELS.values():
        if c not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Int64).alias(c))
    return wide.select("code_secteur", *COUNT_LEVELS.values()).with_columns(pl.lit(year, pl.Utf8).alias("annee_scolaire"))


def sectors_layer(sectors: gpd.GeoDataFrame, counts: pl.DataFrame | None = None) -> gpd.GeoDataFrame:
    """Sector polygons with ``code_secteur``, ``uai``, ``communes`` and, given the protected counts table,
    ``annee_scolaire`` + ``effectif_total``/``effectif_c1``/``c2``/``c3`` (empty where suppressed)."""
    keep = [c for c in ("code_secteur", "uai", "communes") if c in sectors.columns]
    out = sectors[keep + ["geometry"]].copy()
    for c in ("uai", "communes"):
        if c not in out.columns:
            out[c] = None
    if counts is not None:
        wide = sector_counts(counts).to_pandas()
        out = out.merge(wide, on="code_secteur", how="left")
    else:  # same columns without counts, so the layer always matches its schema
        out["annee_scolaire"] = None
        for c in COUNT_LEVELS.values():
            out[c] = None
    for c in COUNT_LEVELS.values():
        out[c] = out[c].astype("Int64")
    out["annee_scolaire"] = out["annee_scolaire"].astype("string")
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=sectors.crs)
    return out[SECTOR_COLUMNS + ["geometry"]]  # the order of schemas/couche-secteurs


def communes_layer(communes: gpd.GeoDataFrame, codes: Iterable[str] | None = None) -> gpd.GeoDataFrame:
    """Commune polygons with ``code_insee``, ``nom``, ``population``, ``departement``."""
    gdf = communes
    if codes is not None:
        gdf = gdf[gdf["code_insee"].isin(set(codes))]
    cols = {"code_insee": "code_insee", "nom": "nom", "population": "population", "departement": "departement"}
    out = gpd.GeoDataFrame({k: (gdf[v].values if v in gdf.columns else None) for k, v in cols.items()},
                           geometry=gdf.geometry.values, crs=gdf.crs)
    out["population"] = out["population"].astype("Int64") if "population" in gdf.columns else None
    return out


# ------------------------------------------------------------------------------------------ SVG preview
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def svg_preview(gdf: gpd.GeoDataFrame, width: int = 480, title: str = "") -> str:
    """A small SVG drawing of a layer (Lambert-93 geometry, y axis flipped), no tiles, no network."""
    g = gdf.to_crs(L93) if gdf.crs is not None and gdf.crs.to_epsg() != 2154 else gdf
    geoms = g.geometry.to_numpy()
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    span = max(maxx - minx, maxy - miny, 1.0)
    scale = (width - 20) / span
    height = int((maxy - miny) * scale) + 20
    tol = span / width  # one pixel

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    if title:
        parts.append(f"<title>{_xml(title)}</title>")
    parts.append(f'<rect width="{width}" height="{height}" fill="#ffffff"/>')
    r = max(1.5, min(4.0, width / max(len(geoms), 1) ** 0.5 / 6))
    # one vectorised simplification for the whole layer (a drawing: topology need not be kept;
    # per-geometry topology-preserving calls took 13 s on the national sectors), and the points,
    # parts, rings and coordinates taken out in whole-layer calls too (one shapely call per school
    # took 1.8 s of the national schools layer's 3.6 s)
    kinds = shapely.get_type_id(geoms)
    drawn = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    items: list[list[str]] = [[] for _ in range(len(geoms))]
    dots = np.flatnonzero(drawn & np.isin(kinds, (0, 4)))
    if len(dots):
        pts, owner = shapely.get_parts(geoms[dots], return_index=True)
        cx = ((shapely.get_x(pts) - minx) * scale + 10).tolist()
        cy = ((maxy - shapely.get_y(pts)) * scale + 10).tolist()
        for o, a, b in zip(dots[owner].tolist(), cx, cy):
            items[o].append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="{r:.1f}" fill="#e15759" stroke="#7a1f21" stroke-width="0.5"/>')
    shapes = np.flatnonzero(drawn & ~np.isin(kinds, (0, 4)))
    if len(shapes):
        simplified = shapely.simplify(geoms[shapes], tol, preserve_topology=False)
        polys, poly_owner = shapely.get_parts(simplified, return_index=True)
        keep = shapely.get_type_id(polys) == 3
        polys, poly_owner = polys[keep], shapes[poly_owner[keep]]
        rings, ring_poly = shapely.get_rings(polys, return_index=True)  # exterior first, then the holes
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        count = np.bincount(ring_of, minlength=len(rings))
        text = [f"{a:.1f},{b:.1f}" for a, b in zip(((coords[:, 0] - minx) * scale + 10).tolist(),
                                                   ((maxy - coords[:, 1]) * scale + 10).tolist())]
        start = np.concatenate([[0], np.cumsum(count)]).tolist()
        d: dict[int, list[str]] = {}
        for k, o in enumerate(poly_owner[ring_poly].tolist()):
            if count[k] >= 3:
                d.setdefault(o, []).append("M" + " L".join(text[start[k]:start[k + 1]]) + " Z")
        for o, ds in d.items():
            items[o].append(f'<path d="{" ".join(ds)}" fill="{PALETTE[o % len(PALETTE)]}" fill-opacity="0.55" '
                            'fill-rule="evenodd" stroke="#333333" stroke-width="0.6"/>')
    for group in items:
        parts.extend(group)
    parts.append("</svg>")
    return "\n".join(parts)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------------------ writing
def _validate_attributes(gdf: gpd.GeoDataFrame, schema: dict | None, path: Path, name: str) -> dict:
    """Validate the attribute table against the layer schema with :mod:`preau.validate` (same
    frictionless-compatible ``validation.json`` as the tables); without a schema, say so."""
    if schema is None:
        report = {"valid": True, "stats": {"errors": 0, "rows": len(gdf)}, "errors": [],
                  "note": "no attribute schema found: attributes not validated"}
        path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        return report
    from preau.validate import validate_table

    attrs = pl.from_pandas(pd.DataFrame(gdf.drop(columns=gdf.geometry.name)))
    rep = validate_table(attrs, schema, name=name)
    rep.write(path)
    return {"valid": bool(rep.valid)}


def _load_schema(name: str, schemas_dir: Path | None) -> dict | None:
    for d in ([schemas_dir] if schemas_dir else []) + [Path.cwd() / "schemas", Path(__file__).resolve().parents[3] / "schemas"]:
        p = d / name / "schema.json"
        if p.is_file():
            return json.loads(p.read_text(encoding="utf-8"))
    return None


# A layer with this many features writes its WGS84 files in a second process (national sectors:
# 48k polygons, five files).
PARALLEL_WRITE_FROM = 20_000


def _json_value(v):
    """A property value as JSON: missing values (None, NA, NaN) null, numpy scalars as Python ones."""
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _geojson_geometries(geoms: np.ndarray) -> list:
    """GeoJSON text of WGS84 geometries (RFC 7946 ring orientation, 6 decimals; ``None`` stays None)."""
    geoms = shapely.transform(shapely.orient_polygons(geoms, exterior_cw=False), lambda c: np.round(c, 6))
    return list(shapely.to_geojson(geoms))


def write_geojson(frame: gpd.GeoDataFrame, path: Path, geometry_json: list | None = None) -> None:
    """An RFC 7946 GeoJSON file of a WGS84 layer: exterior rings counter-clockwise, holes clockwise,
    coordinates rounded to 6 decimals (about 10 cm), no ``crs`` member.

    GEOS writes the geometries (``shapely.to_geojson``, one vectorised call) and the properties are
    written with :mod:`json`: GDAL's GeoJSON driver took 15.9 s for the national sectors layer
    (48,655 polygons, 151 MB), this 3 s. (No geometry of a French territory crosses the antimeridian,
    the one case where GDAL would also split polygons.)"""
    geo_json = geometry_json if geometry_json is not None else _geojson_geometries(frame.geometry.to_numpy())
    names = [c for c in frame.columns if c != frame.geometry.name]
    columns = [[_json_value(v) for v in frame[c].astype(object).tolist()] for c in names]
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"type":"FeatureCollection","features":[\n')
        for i, g in enumerate(geo_json):
            props = dumps(dict(zip(names, (col[i] for col in columns))))
            f.write((",\n" if i else "") + '{"type":"Feature","properties":' + props + ',"geometry":'
                    + (g if g is not None else "null") + "}")
        f.write("\n]}\n")


def _write_files(l93: gpd.GeoDataFrame, crs: str, folder: Path, base: str,
                 prepared: "PreparedGeometry | None" = None) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """The files of one CRS (GeoJSON in WGS84 only, RFC 7946; GeoPackage; FlatGeobuf) of a
    Lambert-93 layer; returns (name, format, crs) of each and the bounds of the geometries written
    (in ``crs``). Runs here or in a worker process. ``prepared``: the WGS84 geometries and their
    GeoJSON text, made ahead."""
    if crs == WGS84 and prepared is not None:
        frame = l93.set_geometry(gpd.GeoSeries(prepared.wgs, index=l93.index, crs=WGS84))
    else:
        frame = l93.to_crs(crs) if crs != L93 else l93
    tag, _ = CRS_LABEL[crs]
    out = []
    for fmt, driver in (("geojson", "GeoJSON"), ("gpkg", "GPKG"), ("fgb", "FlatGeobuf")):
        if fmt == "geojson" and crs != WGS84:
            continue  # RFC 7946: GeoJSON is WGS84 only
        name = f"{base}-{tag}.{fmt}"
        out.append((name, fmt, crs))
        if fmt == "geojson":
            write_geojson(frame, folder / name, prepared.geojson if prepared is not None else None)
            continue
        opts = {"layer_options": {"SPATIAL_INDEX": "YES"}} if fmt == "fgb" else {}
        frame.to_file(folder / name, driver=driver, engine="pyogrio", layer=base if fmt == "gpkg" else None, **opts)
    return out, frame.total_bounds


def _centimetre_grid(geoms: np.ndarray) -> np.ndarray:
    """Coordinates rounded to the centimetre (Lambert-93); the few geometries that rounding makes
    invalid are snapped with GEOS ``set_precision`` instead (national sectors: 63 of 48,655;
    1.6 s instead of 7.9 s for ``set_precision`` on all)."""
    out = shapely.remove_repeated_points(shapely.transform(geoms, lambda c: np.round(c, 2)), 0.0)
    bad = ~shapely.is_valid(out)
    if bad.any():
        out[bad] = shapely.set_precision(geoms[bad], 0.01)
    return out


def wgs84_bounds(layer: gpd.GeoDataFrame) -> np.ndarray:
    """WGS84 bounding box ``[min lon, min lat, max lon, max lat]`` of a layer (Lambert-93 when it
    declares no CRS): its vertices reprojected, as ``to_crs(4326).total_bounds`` gives, without
    building the reprojected geometries (national communes: 0.39 s → 0.29 s)."""
    from pyproj import Transformer

    xy = shapely.get_coordinates(layer.geometry.to_numpy())
    lon, lat = Transformer.from_crs(layer.crs or L93, WGS84, always_xy=True).transform(xy[:, 0], xy[:, 1])
    return np.array([lon.min(), lat.min(), lon.max(), lat.max()])


@dataclass
class PreparedGeometry:
    """What :func:`write_layer` computes from a layer's geometries alone, made ahead of its counts
    (:func:`start_layers`: while the tables are protected)."""

    keys: list  # the layer's first column, row by row: the layer written must have the same rows
    l93: np.ndarray  # Lambert-93 geometries on the centimetre grid
    wgs: np.ndarray  # the same in WGS84
    geojson: list  # their GeoJSON text (RFC 7946)
    svg: str  # the preview


def _as_l93(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A layer without a CRS is taken as Lambert-93 (as read_layer does); another CRS is reprojected."""
    if gdf.crs is None:
        return gdf.set_crs(L93)
    return gdf.to_crs(L93) if gdf.crs.to_epsg() != 2154 else gdf


def _matching(prepared: PreparedGeometry | None, gdf: gpd.GeoDataFrame) -> PreparedGeometry | None:
    """``prepared`` when it was made for ``gdf``'s rows, else None (the geometry work is done again)."""
    if prepared is None or len(prepared.keys) != len(gdf) or prepared.keys != gdf.iloc[:, 0].tolist():
        return None
    return prepared


def prepare_geometry(gdf: gpd.GeoDataFrame, dataset: str) -> PreparedGeometry:
    """The geometry work of :func:`write_layer` for ``gdf``'s rows (national sectors: 6 s of 9)."""
    l93 = _centimetre_grid(_as_l93(gdf).geometry.to_numpy())
    wgs = gpd.GeoSeries(l93, crs=L93).to_crs(WGS84).to_numpy()
    title = TITLES.get(dataset, {"fr": dataset})["fr"]
    svg = svg_preview(gpd.GeoDataFrame(geometry=gpd.GeoSeries(l93, crs=L93)), title=title)
    return PreparedGeometry(keys=gdf.iloc[:, 0].tolist(), l93=l93, wgs=wgs, geojson=_geojson_geometries(wgs), svg=svg)


def write_layer(gdf: gpd.GeoDataFrame, out_dir: str | Path, dataset: str, publisher: str | None, *,
                school_years: list[str] | None = None, schemas_dir: Path | None = None,
                report: Report | None = None, parallel: bool = True,
                prepared: PreparedGeometry | None = None, wgs_job=None) -> dict:
    """Write one layer dataset folder (all formats, preview, validation and manifest); returns the manifest.

    The folder is ``out_dir/<publisher>/<dataset>/`` (``out_dir`` itself when ``publisher`` is None).
    ``parallel``: a large layer may write its WGS84 files in a second process. ``prepared``: its
    geometry work made ahead (:func:`prepare_geometry`), used when the rows are the same; with
    ``wgs_job`` (``(folder, base name) → future of _write_files' result``), the WGS84 files are
    written by that job (the process holding the prepared WGS84 geometries) while this one writes
    the others."""
    report = report if report is not None else Report(subject=dataset)
    if gdf is None or len(gdf) == 0:
        report.error("geo-layer-empty", f"couche « {dataset} » vide : rien à publier", f"layer '{dataset}' is empty: nothing to publish")
        raise PreauError(report)
    base = BASE_NAMES.get(dataset, dataset)
    schema_name = SCHEMAS.get(dataset, dataset)
    title = TITLES.get(dataset, {"fr": dataset, "en": dataset})
    final = Path(out_dir) / publisher / dataset if publisher else Path(out_dir)
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    resources = []
    pool = None
    prepared = _matching(prepared, gdf)
    if prepared is None:  # the geometry work is done here
        wgs_job = None
        if parallel and len(gdf) >= PARALLEL_WRITE_FROM and (os.cpu_count() or 1) >= 2:
            # the WGS84 files (reprojection included) in a spawned process, Lambert-93 here; the
            # process starts now, while the geometries are put on the centimetre grid (national
            # sectors: 1.4 s)
            from preau.processes import spawn_pool

            pool = spawn_pool(1, preload=__name__)
    try:
        l93 = _as_l93(gdf).copy()
        l93["geometry"] = prepared.l93 if prepared is not None else _centimetre_grid(l93.geometry.to_numpy())
        if pool is not None:
            wgs_job = lambda folder, name: pool.submit(_write_files, l93, WGS84, folder, name)  # noqa: E731
        if wgs_job is not None:  # the WGS84 files in the other process, Lambert-93 here
            wgs_files = wgs_job(tmp, base)
            names, _ = _write_files(l93, L93, tmp, base)
        else:
            wgs_files = None
            names, bounds = _write_files(l93, WGS84, tmp, base, prepared)
            names += _write_files(l93, L93, tmp, base)[0]
        (tmp / "apercu.svg").write_text(prepared.svg if prepared is not None else svg_preview(l93, title=title["fr"]),
                                        encoding="utf-8")
        validation = _validate_attributes(l93, _load_schema(schema_name, schemas_dir), tmp / "validation.json", base)
        if wgs_files is not None:
            wgs_names, bounds = wgs_files.result()
            names += wgs_names
        # the bounds of the WGS84 files' geometries (those of ``wgs84_bounds(l93)``)
        minx, miny, maxx, maxy = (round(float(v), 6) for v in bounds)
        order = {(c, f): i for i, (c, f) in enumerate((c, f) for c in (WGS84, L93) for f in FORMAT_LABEL)}
        for name, fmt, crs in sorted(names, key=lambda n: order[(n[2], n[1])]):
            tag, crs_name = CRS_LABEL[crs]
            resources.append({"path": name, "format": fmt, "crs": crs, "school_year": None, "schema": schema_name,
                              "rows": int(len(l93)),
                              "title": {"fr": f"{title['fr']} — {FORMAT_LABEL[fmt]} {crs_name}",
                                        "en": f"{title['en']} — {FORMAT_LABEL[fmt]} {crs_name}"}})
        insee: list[str] = []
        for col in ("code_insee", "communes"):
            if col in l93.columns:
                for v in l93[col].dropna().astype(str):
                    insee.extend(x for x in v.split(",") if x)
        years = sorted(set(school_years or []))
        manifest = {
            "dataset": dataset, "publisher": publisher, "kind": "layer", "school_years": years,
            "resources": resources, "disclosure": None,
            "validation": {"valid": validation["valid"], "report": "validation.json"},
            "spatial": {"insee": sorted(set(insee)), "bbox": [minx, miny, maxx, maxy]},
            "temporal": ({"start": f"{years[0][:4]}-09-01", "end": f"{years[-1][5:]}-08-31"} if years else None),
            "preview": "apercu.svg",
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    except Exception:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if pool is not None:
        pool.shutdown(wait=True)
    if publisher:  # the dataset folder is ours: replace it whole
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    else:  # a user's folder: move our files in, touch nothing else
        final.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            f.replace(final / f.name)
        tmp.rmdir()
    return manifest


def publish_layers(out_dir: str | Path, publisher: str, *, schools: gpd.GeoDataFrame | None = None,
                   sectors: gpd.GeoDataFrame | None = None, communes: gpd.GeoDataFrame | None = None,
                   counts: pl.DataFrame | None = None, schemas_dir: Path | None = None,
                   parallel: bool = True) -> dict[str, dict]:
    """Write the three layer datasets that are given (``carte-ecoles``, ``secteurs-scolaires``, ``communes``)
    under ``out_dir/<publisher>/``. ``counts`` is the *protected* sector table (optional)."""
    manifests = {}
    if schools is not None:
        manifests["carte-ecoles"] = write_layer(schools, out_dir, "carte-ecoles", publisher, schemas_dir=schemas_dir,
                                               parallel=parallel)
    if sectors is not None:
        manifests["secteurs-scolaires"] = _write_sectors(out_dir, publisher, sectors, counts, schemas_dir, parallel)
    if communes is not None:
        manifests["communes"] = write_layer(communes_layer(communes), out_dir, "communes", publisher,
                                            schemas_dir=schemas_dir, parallel=parallel)
    return manifests


def _write_sectors(out_dir, publisher: str, sectors: gpd.GeoDataFrame, counts: pl.DataFrame | None,
                   schemas_dir: Path | None, parallel: bool, prepared: PreparedGeometry | None = None,
                   wgs_job=None) -> dict:
    layer = sectors_layer(sectors, counts)
    years = sorted(set(layer["annee_scolaire"].dropna())) if "annee_scolaire" in layer.columns else []
    return write_layer(layer, out_dir, "secteurs-scolaires", publisher, school_years=years, schemas_dir=schemas_dir,
                       parallel=parallel, prepared=prepared, wgs_job=wgs_job)


# In the background process of start_layers: the sectors and their geometry work, waiting for counts.
_PREPARED: dict[str, tuple[gpd.GeoDataFrame, PreparedGeometry]] = {}


def _prepare_sectors(sectors: gpd.GeoDataFrame) -> PreparedGeometry | None:
    """Kept here for :func:`_write_prepared_wgs`; returned without its WGS84 part for the caller,
    which writes the Lambert-93 files meanwhile."""
    prepared = prepare_geometry(sectors_layer(sectors), "secteurs-scolaires") if len(sectors) else None
    _PREPARED["secteurs-scolaires"] = (sectors, prepared)
    if prepared is None:
        return None
    return PreparedGeometry(keys=prepared.keys, l93=prepared.l93, wgs=None, geojson=None, svg=prepared.svg)


def _write_prepared_wgs(counts: pl.DataFrame | None, folder: str, base: str) -> tuple[list, np.ndarray]:
    """The WGS84 files of the sector layer with its counts, from the geometry prepared here."""
    sectors, prepared = _PREPARED.pop("secteurs-scolaires")
    layer = sectors_layer(sectors, counts)
    prepared = _matching(prepared, layer)
    l93 = _as_l93(layer).copy()
    l93["geometry"] = prepared.l93 if prepared is not None else _centimetre_grid(l93.geometry.to_numpy())
    return _write_files(l93, WGS84, Path(folder), base, prepared)


class LayerJob:
    """Layers being written in a background process (see :func:`start_layers`); ``result()`` gives
    their manifests, ``close()`` waits for the process (call it in a ``finally``)."""

    def __init__(self, future=None, pool=None, args: tuple = (), kwargs: dict | None = None,
                 sectors: gpd.GeoDataFrame | None = None, preparing=None):
        self.future, self.pool, self.args, self.kwargs = future, pool, args, kwargs or {}
        self.sectors, self.preparing = sectors, preparing

    def result(self) -> dict[str, dict]:
        """The manifests of the layers without counts (schools, communes)."""
        if self.future is None:  # small territory: written here, now
            return publish_layers(*self.args, **self.kwargs)
        return self.future.result()

    def finish(self, counts: pl.DataFrame | None = None) -> dict[str, dict]:
        """Every layer's manifest, the sector layer (given to :func:`start_layers`) written now with
        the protected ``counts``: by the background process, which made its geometry work ahead."""
        if self.future is None:
            return publish_layers(*self.args, **self.kwargs, sectors=self.sectors, counts=counts)
        done = self.future.result()
        if self.preparing is not None:
            # here the Lambert-93 files, the preview and the manifest; there, the WGS84 files
            prepared = self.preparing.result()
            job = (lambda folder, base: self.pool.submit(_write_prepared_wgs, counts, str(folder), base)) if prepared else None
            return {**done, "secteurs-scolaires": _write_sectors(*self.args, self.sectors, counts, self.kwargs.get("schemas_dir"),
                                                                False, prepared, wgs_job=job)}
        if self.sectors is not None:
            return {**done, **publish_layers(*self.args, sectors=self.sectors, counts=counts,
                                             schemas_dir=self.kwargs.get("schemas_dir"))}
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


# Layers with this many features in all are written by a background process while the build goes
# on (national: 66k schools and 35k communes take ≈ 20 s to write, beside disclosure's one-process
# steps); below, in the build's process when asked for.
BACKGROUND_FROM = 20_000


def start_layers(out_dir: str | Path, publisher: str, *, schools: gpd.GeoDataFrame | None = None,
                 communes: gpd.GeoDataFrame | None = None, sectors: gpd.GeoDataFrame | None = None,
                 schemas_dir: Path | None = None) -> LayerJob:
    """:func:`publish_layers` of the layers that need no protected count (schools, communes), in a
    spawned process when they are large and the machine has two cores: it runs while the tables
    are protected. The same process then makes the geometry work of a large sector layer
    (:func:`prepare_geometry`), and writes it once :meth:`LayerJob.finish` gives the counts
    (national sectors: the build's layer step 9.5 → 2.2 s). The manifests and any
    :class:`PreauError` come back through :meth:`LayerJob.result` / :meth:`LayerJob.finish`."""
    kwargs = {"schools": schools, "communes": communes, "schemas_dir": schemas_dir}
    features = sum(len(g) for g in (schools, communes, sectors) if g is not None)
    if features < BACKGROUND_FROM or (os.cpu_count() or 1) < 2:
        return LayerJob(args=(out_dir, publisher), kwargs=kwargs, sectors=sectors)
    from preau.processes import spawn_pool

    pool = spawn_pool(1)  # one process: the sectors' geometry work stays in it for the last step
    future = pool.submit(publish_layers, out_dir, publisher, parallel=False, **kwargs)
    if sectors is not None and len(sectors) >= PARALLEL_WRITE_FROM:
        return LayerJob(future, pool, args=(out_dir, publisher), kwargs=kwargs, sectors=sectors,
                        preparing=pool.submit(_prepare_sectors, sectors))
    return LayerJob(future, pool, args=(out_dir, publisher), kwargs=kwargs, sectors=sectors)


def build_layers(out_dir: str | Path, publisher: str, *, ecoles: str | Path, communes: str | Path,
                 sectors: str | Path | gpd.GeoDataFrame | None = None, rules: str | Path | None = None,
                 reference=None, counts: pl.DataFrame | None = None, schemas_dir: Path | None = None,
                 report: Report | None = None) -> dict[str, dict]:
    """The pipeline's one call for the three layers of a territory.

    Sectors come from a polygon layer (``sectors``: path or frame) or are built from carte-scolaire
    ``rules`` with the BAN ``reference`` (a :class:`~preau.geo.reference.Reference`). Only communes
    that hold a school or a sector are published. ``counts``: the protected sector table (optional).
    """
    from preau.geo.sectors import build_sectors, read_communes, read_sectors

    report = report if report is not None else Report(subject=publisher)
    communes_gdf = read_communes(communes, report)
    if isinstance(sectors, gpd.GeoDataFrame):
        sectors_gdf = sectors
    elif sectors is not None:
        sectors_gdf = read_sectors(sectors, report=report)
    elif rules is not None and reference is not None:
        sectors_gdf = build_sectors(rules, reference, communes_gdf, report=report).sectors
    else:
        sectors_gdf = None
    schools = schools_layer(ecoles)
    codes = set(schools["code_insee"].dropna())
    if sectors_gdf is not None and "communes" in sectors_gdf.columns:
        for v in sectors_gdf["communes"].dropna():
            codes.update(str(v).split(","))
    return publish_layers(out_dir, publisher, schools=schools, sectors=sectors_gdf,
                          communes=communes_gdf[communes_gdf["code_insee"].isin(codes)], counts=counts,
                          schemas_dir=schemas_dir)
