"""School sectors: read polygon layers, or build them from carte-scolaire street rules.

Building (as livingdata-co/carte-scolaire does): every BAN address point of a commune is assigned to
a sector by the rules (commune + street + number range + parity; ``secteur_unique = O`` covers the
whole commune), Voronoi cells are drawn around the assigned points, dissolved by sector and clipped
to the commune. A match report gives the share of rule rows whose street was found and the share of
addresses assigned; a topology check looks for overlaps and gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import polars as pl
import shapely

from preau.errors import PreauError, Report, rel
from preau.geo.layers_io import L93, read_layer
from preau.geo.normalize import insee_key, repetition_key, street_key
from preau.geo.reference import Reference

RULE_COLUMNS = ("code_insee", "type_et_libelle", "n_de_voie_debut", "n_de_voie_fin", "parite", "code_rne",
                "secteur_unique")
FUZZY_RULE_CUTOFF = 88.0
BOUNDARY_FILTER_FROM = 64  # from this many points in a commune, only those next to another sector get a cell
_REP_RANK = {"": 0, "a": 1, "b": 2, "t": 3, "q": 4, "c": 5, "d": 6, "e": 7, "f": 8, "g": 9, "h": 10}


@dataclass
class SectorBuild:
    """Result of :func:`build_sectors`: polygons (Lambert-93), match report and problems."""

    sectors: gpd.GeoDataFrame
    match: dict
    report: Report = field(default_factory=Report)


# ----------------------------------------------------------------------------------------------- reading
def read_sectors(path: str | Path, key: str | None = None, report: Report | None = None,
                 cache_dir: str | Path | None = None) -> gpd.GeoDataFrame:
    """Read sector polygons (GeoJSON, GPKG, Shapefile, FlatGeobuf) → Lambert-93, column ``code_secteur``.

    ``key`` names the sector identifier column (default: the first of ``code_secteur``, ``secteur``,
    ``code_rne``, ``uai``, ``id``). Invalid polygons are repaired with a warning; a missing key column,
    an empty layer or an unknown CRS raise :class:`PreauError`. ``cache_dir``: see :func:`read_layer`.
    """
    report = report if report is not None else Report(subject=rel(path))
    gdf = read_layer(path, report, what="couche des secteurs", cache_dir=cache_dir)
    # "code_secte": the name a Shapefile (10-character field names) gives "code_secteur".
    candidates = [key] if key else ["code_secteur", "code_secte", "secteur", "code_rne", "uai", "id"]
    found = next((c for c in candidates if c and c in gdf.columns), None)
    if found is None:
        cols = ", ".join(c for c in gdf.columns if c != "geometry")
        report.error("geo-sector-key", f"colonne d'identifiant de secteur absente (attendu : {' ou '.join(candidates)} ; "
                     f"colonnes présentes : {cols})", f"sector identifier column missing (expected: "
                     f"{' or '.join(candidates)}; columns present: {cols})", file=rel(path), field=candidates[0])
        raise PreauError(report)
    gdf = gdf.rename(columns={found: "code_secteur"}) if found != "code_secteur" else gdf
    gdf["code_secteur"] = gdf["code_secteur"].astype(str)
    # Several features per sector (multi-part exports): dissolve them.
    if gdf["code_secteur"].duplicated().any():
        gdf = gdf.dissolve(by="code_secteur", as_index=False)
    return gdf


def read_communes(path: str | Path, report: Report | None = None, cache_dir: str | Path | None = None) -> gpd.GeoDataFrame:
    """Commune polygons (``code_insee`` column) in Lambert-93. ``cache_dir``: see :func:`read_layer`."""
    report = report if report is not None else Report(subject=rel(path))
    gdf = read_layer(path, report, what="couche des communes", cache_dir=cache_dir)
    col = next((c for c in ("code_insee", "insee", "code_commune", "INSEE_COM", "code") if c in gdf.columns), None)
    if col is None:
        report.error("geo-commune-key", "colonne « code_insee » absente de la couche des communes",
                     "column 'code_insee' missing from the communes layer", file=rel(path), field="code_insee")
        raise PreauError(report)
    gdf = gdf.rename(columns={col: "code_insee"}) if col != "code_insee" else gdf
    gdf["code_insee"] = gdf["code_insee"].astype(str).str.zfill(5)
    return gdf


def read_text_csv(path: Path) -> pl.DataFrame:
    """A user CSV as text columns: UTF-8 (± BOM) or Windows-1252, ``;`` or ``,`` (from the header)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    first = text.split("\n", 1)[0]
    sep = ";" if first.count(";") >= first.count(",") else ","
    return pl.read_csv(text.encode("utf-8"), separator=sep, infer_schema=False, truncate_ragged_lines=True)


def read_rules(path: str | Path, report: Report | None = None) -> pl.DataFrame:
    """Read a carte-scolaire rules CSV (``;`` or ``,``, UTF-8 or Windows-1252) into normalised columns.

    Output: ``line`` (file line), ``insee``, ``voie`` (street key, empty for secteur unique),
    ``debut``/``fin`` (sort values number×100 + index rank), ``parite`` (P/I/PI), ``code_rne``,
    ``unique`` (bool), ``code_secteur`` (the column when present, else ``code_rne``).
    """
    path = Path(path)
    report = report if report is not None else Report(subject=rel(path))
    if not path.is_file():
        report.error("geo-rules-missing", f"fichier de carte scolaire introuvable : {rel(path)}",
                     f"school-map rules file not found: {rel(path)}", file=rel(path))
        raise PreauError(report)
    try:
        df = read_text_csv(path)
    except Exception as exc:
        report.error("geo-rules-unreadable", f"fichier de carte scolaire illisible ({type(exc).__name__})",
                     f"unreadable school-map rules file ({type(exc).__name__})", file=rel(path))
        raise PreauError(report) from None
    df = df.rename({c: c.strip().lower() for c in df.columns})
    missing = [c for c in RULE_COLUMNS if c not in df.columns]
    if missing:
        report.error("geo-rules-columns", f"colonnes absentes du fichier de carte scolaire : {', '.join(missing)}",
                     f"columns missing from the school-map rules file: {', '.join(missing)}", file=rel(path), line=1,
                     field=missing[0])
        raise PreauError(report)
    if df.height == 0:
        report.error("geo-rules-empty", "le fichier de carte scolaire ne contient aucune règle",
                     "the school-map rules file holds no rule", file=rel(path))
        raise PreauError(report)
    for c in ("indice_de_repetition_debut", "indice_de_repetition_fin", "code_secteur"):
        if c not in df.columns:
            df = df.with_columns(pl.lit("").alias(c))
    num = lambda c, d: pl.col(c).str.strip_chars().cast(pl.Int64, strict=False).fill_null(d)  # noqa: E731
    rank = lambda c: repetition_key(pl.col(c)).replace_strict(_REP_RANK, default=0, return_dtype=pl.Int64)  # noqa: E731
    out = df.with_columns(pl.int_range(2, pl.len() + 2).alias("line")).select(
        "line",
        insee_key(pl.col("code_insee")).alias("insee"),
        street_key(pl.col("type_et_libelle")).alias("voie"),
        (num("n_de_voie_debut", 1) * 100 + rank("indice_de_repetition_debut")).alias("debut"),
        (num("n_de_voie_fin", 9999) * 100
         + pl.when(repetition_key(pl.col("indice_de_repetition_fin")) == "").then(99)
         .otherwise(rank("indice_de_repetition_fin"))).alias("fin"),
        pl.col("parite").fill_null("PI").str.strip_chars().str.to_uppercase().alias("parite"),
        pl.col("code_rne").fill_null("").str.strip_chars().str.to_uppercase().alias("code_rne"),
        pl.col("secteur_unique").fill_null("N").str.strip_chars().str.to_uppercase().is_in(["O", "OUI", "Y", "1"]).alias("unique"),
        pl.col("code_secteur").fill_null("").str.strip_chars().alias("code_secteur"),
    )
    out = out.with_columns(
        pl.when(pl.col("code_secteur") != "").then(pl.col("code_secteur")).otherwise(pl.col("code_rne")).alias("code_secteur"),
        pl.when(pl.col("parite").is_in(["P", "I", "PI"])).then(pl.col("parite")).otherwise(pl.lit("PI")).alias("parite"))
    bad_insee = out.filter(pl.col("insee") == "")
    if bad_insee.height:
        report.warning("geo-rules-insee", f"{bad_insee.height} règle(s) sans code INSEE valide ignorée(s) "
                       f"(lignes {_lines(bad_insee)})", f"{bad_insee.height} rule(s) without a valid INSEE code skipped "
                       f"(lines {_lines(bad_insee)})", file=rel(path), field="code_insee")
    no_sector = out.filter(pl.col("code_secteur") == "")
    if no_sector.height:
        report.warning("geo-rules-school", f"{no_sector.height} règle(s) sans école (code_rne) ni secteur ignorée(s) "
                       f"(lignes {_lines(no_sector)})", f"{no_sector.height} rule(s) without school (code_rne) or sector "
                       f"skipped (lines {_lines(no_sector)})", file=rel(path), field="code_rne")
    return out.filter((pl.col("insee") != "") & (pl.col("code_secteur") != ""))


def _lines(df: pl.DataFrame, limit: int = 10) -> str:
    lines = df["line"].head(limit).to_list()
    more = "…" if df.height > limit else ""
    return ", ".join(map(str, lines)) + more


# ----------------------------------------------------------------------------------------------- building
def match_rules(rules: pl.DataFrame, reference: Reference, report: Report, source: str | None = None
                ) -> tuple[pl.DataFrame, dict]:
    """Assign reference addresses to sectors by rule. Returns (insee, x, y, code_secteur) and match stats."""
    from rapidfuzz import fuzz, process

    street_rules = rules.filter(~pl.col("unique") & (pl.col("voie") != ""))
    known = reference.streets.select("insee", "voie").with_columns(pl.col("voie").alias("voie_ref"))
    sr = street_rules.join(known, on=["insee", "voie"], how="left")
    todo = sr.filter(pl.col("voie_ref").is_null()).select("insee", "voie").unique()
    fixes = []
    if todo.height:
        by_commune = dict(reference.streets.join(todo.select("insee").unique(), on="insee", how="semi")
                          .group_by("insee").agg("voie").iter_rows())
        for insee, voie in todo.iter_rows():
            best = process.extractOne(voie, by_commune.get(insee, []), scorer=fuzz.token_sort_ratio,
                                      score_cutoff=FUZZY_RULE_CUTOFF)
            if best:
                fixes.append((insee, voie, best[0]))
    fx = pl.DataFrame(fixes, schema={"insee": pl.Utf8, "voie": pl.Utf8, "voie_fix": pl.Utf8}, orient="row")
    sr = sr.join(fx, on=["insee", "voie"], how="left").with_columns(pl.coalesce("voie_ref", "voie_fix").alias("voie_ref"))
    unmatched = sr.filter(pl.col("voie_ref").is_null())
    if unmatched.height:
        report.warning("geo-rules-street-not-found",
                       f"{unmatched.height} règle(s) nomment une voie absente de la référence BAN de la commune "
                       f"(lignes {_lines(unmatched)})",
                       f"{unmatched.height} rule(s) name a street absent from the commune's BAN reference "
                       f"(lines {_lines(unmatched)})", file=source, field="type_et_libelle")
    addr = reference.addresses.with_columns(
        (pl.col("numero").cast(pl.Int64) * 100 + pl.col("rep").replace_strict(_REP_RANK, default=0, return_dtype=pl.Int64)).alias("v"))
    hits = (addr.join(sr.filter(pl.col("voie_ref").is_not_null()).select("insee", pl.col("voie_ref").alias("voie"), "debut", "fin",
                                                                         "parite", "code_secteur", "line"),
                      on=["insee", "voie"], how="inner")
            .filter(pl.col("v").is_between(pl.col("debut"), pl.col("fin"))
                    & ((pl.col("parite") == "PI") | ((pl.col("parite") == "P") & (pl.col("par") == 0))
                       | ((pl.col("parite") == "I") & (pl.col("par") == 1)))))
    # An address named by several rules: the narrowest range wins (then the first line).
    hits = hits.with_columns((pl.col("fin") - pl.col("debut")).alias("_w")).sort(["_w", "line"])
    conflicts = hits.group_by("id").agg(pl.col("code_secteur").n_unique().alias("n")).filter(pl.col("n") > 1).height
    if conflicts:
        report.warning("geo-rules-conflict", f"{conflicts} adresse(s) couvertes par des règles de secteurs différents : "
                       "la plage la plus étroite l'emporte", f"{conflicts} address(es) covered by rules of different "
                       "sectors: the narrowest range wins", file=source)
    assigned = hits.unique("id", keep="first").select("id", "code_secteur")
    uniques = rules.filter(pl.col("unique")).unique("insee", keep="first").select("insee", pl.col("code_secteur").alias("cs_u"))
    communes_with_rules = rules.select("insee").unique()
    pts = (reference.addresses.join(communes_with_rules, on="insee", how="semi")
           .join(assigned, on="id", how="left").join(uniques, on="insee", how="left")
           .with_columns(pl.coalesce("code_secteur", "cs_u").alias("code_secteur")))
    n_addr = pts.height
    n_assigned = pts.filter(pl.col("code_secteur").is_not_null()).height
    stats = {
        "rules": rules.height,
        "street_rules": street_rules.height,
        "street_rules_matched": street_rules.height - unmatched.height,
        "street_rules_fuzzy": sr.filter(pl.col("voie_fix").is_not_null()).height,
        "street_match_rate": round((street_rules.height - unmatched.height) / street_rules.height, 4) if street_rules.height else 1.0,
        "secteur_unique_communes": uniques.height,
        "addresses": n_addr,
        "addresses_assigned": n_assigned,
        "address_match_rate": round(n_assigned / n_addr, 4) if n_addr else 0.0,
        "address_conflicts": conflicts,
        "unmatched_rule_lines": unmatched["line"].to_list(),
    }
    return pts.filter(pl.col("code_secteur").is_not_null()).select("insee", "x", "y", "code_secteur"), stats


def _commune_cells(geom, xs: np.ndarray, ys: np.ndarray, codes: np.ndarray) -> dict[str, object]:
    """Voronoi cells of one commune's assigned points, dissolved by sector and clipped to the commune."""
    uniq = np.unique(codes)
    if len(uniq) == 1:
        return {uniq[0]: geom}
    # Same location, several sectors: keep the first (coordinates rounded to the centimetre).
    key = np.round(xs, 2) + 1j * np.round(ys, 2)
    _, first = np.unique(key, return_index=True)
    first.sort()
    xs, ys, codes = xs[first], ys[first], codes[first]
    return _voronoi_cells(geom, xs, ys, codes)


def _boundary_points(xs: np.ndarray, ys: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Mask of the points whose Voronoi cell can touch another sector's: those with a Delaunay
    neighbour of another sector (and any point the triangulation did not connect).

    The other points change nothing to the sectors' union of cells: a point whose Delaunay neighbours
    all share its sector gives, when removed, its cell to those neighbours only, and every edge
    between two sectors (a Delaunay edge joining points of two sectors) stays. GEOS builds the same
    triangulation for its Voronoi diagram, degenerate (co-circular) cases included, so the dissolved
    cells are those of all points (to floating-point noise: at most 0.03 m² per sector measured on
    the synthetic Paris, Nord, Bouches-du-Rhône and Gironde), from about a fifth of the points.
    Falls back to every point when the triangulation does not connect the points given (fewer than
    two edges, a vertex moved) or would lose a sector.
    """
    n = len(xs)
    every = np.ones(n, dtype=bool)
    edges = shapely.get_coordinates(shapely.delaunay_triangles(shapely.linestrings(np.column_stack([xs, ys])),
                                                               only_edges=True))
    if len(edges) < 2:
        return every
    key = xs + 1j * ys
    order = np.argsort(key)
    sorted_key = key[order]
    ends = edges[:, 0] + 1j * edges[:, 1]
    pos = np.minimum(np.searchsorted(sorted_key, ends), n - 1)
    if not (sorted_key[pos] == ends).all():  # GEOS moved a vertex: not the points given
        return every
    ends = order[pos].reshape(-1, 2)
    sector = np.unique(codes, return_inverse=True)[1].ravel()
    keep = np.ones(n, dtype=bool)
    keep[ends.ravel()] = False  # connected points: kept only when on a mixed edge
    keep[ends[sector[ends[:, 0]] != sector[ends[:, 1]]].ravel()] = True
    if len(np.unique(sector[keep])) < sector.max() + 1:
        return every
    return keep


def _voronoi_cells(geom, xs: np.ndarray, ys: np.ndarray, codes: np.ndarray) -> dict[str, object]:
    """GEOS Voronoi cells of every point, dissolved by sector and clipped to the commune."""
    if len(codes) and (codes == codes[0]).all():
        return {codes[0]: geom}
    if len(xs) >= BOUNDARY_FILTER_FROM:  # only the points next to another sector shape the result
        keep = _boundary_points(xs, ys, codes)
        xs, ys, codes = xs[keep], ys[keep], codes[keep]
    # GEOS reads the input's vertices: one line through the points is the same input as a MultiPoint
    # (same cells, same order) without one Point object per address.
    pts = shapely.linestrings(np.column_stack([xs, ys])) if len(xs) > 1 else shapely.multipoints(np.column_stack([xs, ys]))
    env = shapely.envelope(shapely.buffer(geom, 100.0))
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=env, ordered=True))
    # Cells grouped by sector with one sort (not one string comparison over all cells per sector).
    names, inverse = np.unique(codes, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    out = {}
    for idx in np.split(order, bounds):
        code = names[inverse[idx[0]]]
        sel = cells[idx]
        try:
            merged = shapely.coverage_union_all(sel)
        except Exception:  # not a clean coverage (precision): plain union
            merged = shapely.union_all(sel)
        clipped = shapely.intersection(merged, geom)
        if not shapely.is_empty(clipped):
            out[code] = clipped
    return out


def resolve_overlaps(geoms: np.ndarray, rank: np.ndarray | None = None,
                     targets: np.ndarray | None = None) -> tuple[np.ndarray, int, float]:
    """Commune polygons without mutual overlaps: an overlapping strip goes to the commune listed
    first (lowest ``rank``, default the position in ``geoms``). Only the polygons of ``targets``
    (indices; default all) are cut, each by the union of the *given* polygons listed before it that
    overlap it, so a part of a territory gives the same polygons as the whole when it holds its
    neighbours (:func:`preau.geo.locate.locate_pupils` cuts each département in its worker).
    Returns (polygons, pairs of overlapping polygons cut, area removed in m²)."""
    from preau.geo.layers_io import _polygonal

    out = geoms.copy()
    rank = np.arange(len(geoms)) if rank is None else np.asarray(rank)
    targets = np.arange(len(geoms)) if targets is None else np.asarray(targets)
    if not len(targets):
        return out, 0, 0.0
    a, b = shapely.STRtree(geoms).query(geoms[targets], predicate="overlaps")
    later, earlier = targets[a], b
    keep = rank[earlier] < rank[later]
    later, earlier = later[keep], earlier[keep]
    if not len(later):
        return out, 0, 0.0
    order = np.lexsort((rank[earlier], rank[later]))
    later, earlier = later[order], earlier[order]
    total = 0.0
    for run in np.split(np.arange(len(later)), np.flatnonzero(np.diff(later)) + 1):
        j = int(later[run[0]])
        fixed = shapely.make_valid(shapely.difference(geoms[j], shapely.union_all(geoms[earlier[run]])))
        out[j] = _polygonal(fixed)
        total += float(shapely.area(geoms[j]) - shapely.area(out[j]))
    return out, int(len(later)), total


def overlap_warning(report: Report, pairs: int, area: float, tolerance: float = 1.0) -> None:
    """The warning of :func:`resolve_overlaps`' work, when it removed more than ``tolerance`` m²."""
    if area > tolerance:
        report.warning("geo-communes-overlap", f"{pairs} chevauchement(s) entre polygones de communes "
                       f"({area:.0f} m²) : chaque bande attribuée à une seule commune avant de construire les secteurs",
                       f"{pairs} overlap(s) between commune polygons ({area:.0f} m²): each strip given to one "
                       "commune before building sectors")


def _clean_coverage(communes: gpd.GeoDataFrame, report: Report, tolerance: float = 1.0) -> np.ndarray:
    """Commune polygons without mutual overlaps (simplified boundaries often overlap a little): an
    overlapping strip goes to the commune listed first. Says how much was resolved."""
    geoms, pairs, area = resolve_overlaps(communes.geometry.to_numpy())
    overlap_warning(report, pairs, area, tolerance)
    return geoms


def build_sectors(rules: pl.DataFrame | str | Path, reference: Reference, communes: gpd.GeoDataFrame | str | Path,
                  report: Report | None = None, clean_communes: bool = True) -> SectorBuild:
    """Build sector polygons (Lambert-93) from carte-scolaire rules, BAN addresses and commune polygons.

    ``rules`` is a path or the frame of :func:`read_rules`; ``communes`` a path or the frame of
    :func:`read_communes` (``clean_communes=False``: their overlaps are already resolved). The result carries ``code_secteur``, ``uai`` (comma list of the rules'
    schools), ``communes`` (comma list of INSEE codes), ``adresses`` (BAN address points assigned).
    """
    report = report if report is not None else Report(subject="secteurs")
    source = None
    if not isinstance(rules, pl.DataFrame):
        source = rel(rules)
        rules = read_rules(rules, report)
    if not isinstance(communes, gpd.GeoDataFrame):
        communes = read_communes(communes, report)
    pts, stats = match_rules(rules, reference, report, source)
    geoms = dict(zip(communes["code_insee"], _clean_coverage(communes, report) if clean_communes
                     else communes.geometry.to_numpy()))
    no_polygon = sorted(set(rules["insee"].unique()) - set(geoms))
    if no_polygon:
        report.warning("geo-rules-commune-unknown", f"{len(no_polygon)} commune(s) des règles absente(s) de la couche "
                       "des communes : sans polygone", f"{len(no_polygon)} commune(s) of the rules missing from the "
                       "communes layer: no polygon", file=source, field="code_insee")
    pieces: list[tuple[str, str, object]] = []
    uniques = rules.filter(pl.col("unique")).unique("insee", keep="first")
    with_points = set(pts["insee"].unique())
    for insee, code in uniques.select("insee", "code_secteur").iter_rows():
        if insee in geoms and insee not in with_points:
            pieces.append((code, insee, geoms[insee]))
    # A commune whose points all fall in one sector is that sector (most communes): no point, no cell.
    per = pts.group_by("insee").agg(pl.col("code_secteur").n_unique().alias("n"), pl.col("code_secteur").first())
    for insee, code in per.filter(pl.col("n") == 1).select("insee", "code_secteur").iter_rows():
        if insee in geoms:
            pieces.append((code, insee, geoms[insee]))
    # Sector codes as integers (cheap numpy grouping); same location, several sectors: the first point
    # is kept (coordinates rounded to the centimetre), as in :func:`_commune_cells`.
    multi = (pts.join(per.filter(pl.col("n") > 1).select("insee"), on="insee", how="semi")
             .with_columns(pl.col("code_secteur").cast(pl.Categorical).to_physical().alias("_c"))
             .unique(["insee", pl.col("x").round(2), pl.col("y").round(2)], keep="first", maintain_order=True))
    names = dict(multi.select("_c", "code_secteur").unique().iter_rows())
    multi = multi.sort("insee", maintain_order=True)  # communes as contiguous runs of numpy arrays
    ins, mx, my, mc = (multi[c].to_numpy() for c in ("insee", "x", "y", "_c"))
    for run in np.split(np.arange(len(ins)), np.flatnonzero(ins[1:] != ins[:-1]) + 1) if len(ins) else []:
        insee = ins[run[0]]
        if insee not in geoms:
            continue
        cells = _voronoi_cells(geoms[insee], mx[run], my[run], mc[run])
        pieces.extend((names[code], insee, geom) for code, geom in cells.items())
    no_sector = sorted(set(rules["insee"].unique()) & set(geoms) - {p[1] for p in pieces})
    if no_sector:
        report.warning("geo-rules-commune-empty", f"{len(no_sector)} commune(s) sans aucune adresse affectée : "
                       "aucun secteur", f"{len(no_sector)} commune(s) with no assigned address: no sector", file=source)
    if not pieces:
        report.error("geo-sectors-empty", "aucun secteur n'a pu être construit (aucune règle ne correspond aux "
                     "adresses de référence)", "no sector could be built (no rule matches the reference addresses)",
                     file=source)
        raise PreauError(report)
    schools = rules.group_by("code_secteur").agg(pl.col("code_rne").filter(pl.col("code_rne") != "").unique().sort())
    schools = {k: ",".join(v) for k, v in schools.iter_rows()}
    counts = dict(pts.group_by("code_secteur").len().iter_rows())
    by_code: dict[str, list] = {}
    for code, insee, geom in pieces:
        by_code.setdefault(code, []).append((insee, geom))
    records = []
    for code in sorted(by_code):
        items = by_code[code]
        geom = items[0][1] if len(items) == 1 else shapely.union_all([g for _, g in items])
        records.append({"code_secteur": code, "uai": schools.get(code, ""),
                        "communes": ",".join(sorted({i for i, _ in items})), "adresses": int(counts.get(code, 0)),
                        "geometry": shapely.make_valid(geom) if not shapely.is_valid(geom) else geom})
    sectors = gpd.GeoDataFrame(records, geometry="geometry", crs=L93)
    return SectorBuild(sectors=sectors, match=stats, report=report)


# ----------------------------------------------------------------------------------------------- topology
def check_topology(sectors: gpd.GeoDataFrame, communes: gpd.GeoDataFrame | None = None, *,
                   overlap_tolerance: float = 1.0, gap_tolerance: float = 0.001,
                   report: Report | None = None) -> dict:
    """Overlaps between sectors (m², beyond ``overlap_tolerance`` m² per pair) and gaps inside communes
    (uncovered share of a commune's area beyond ``gap_tolerance``). Problems are added as warnings."""
    report = report if report is not None else Report(subject="secteurs")
    geoms = sectors.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    areas = shapely.area(shapely.intersection(geoms[a], geoms[b])) if len(a) else np.array([])
    bad = areas > overlap_tolerance
    codes = sectors["code_secteur"].to_numpy()
    overlaps = [{"a": str(codes[i]), "b": str(codes[j]), "area_m2": round(float(s), 1)}
                for i, j, s in zip(a[bad], b[bad], areas[bad])]
    if overlaps:
        report.warning("geo-topology-overlap", f"{len(overlaps)} paire(s) de secteurs se chevauchent "
                       f"({sum(o['area_m2'] for o in overlaps):.0f} m² au total)",
                       f"{len(overlaps)} pair(s) of sectors overlap ({sum(o['area_m2'] for o in overlaps):.0f} m² in total)")
    gaps = []
    if communes is not None and len(communes):
        ctree = shapely.STRtree(geoms)
        for insee, cgeom in zip(communes["code_insee"], communes.geometry.to_numpy()):
            idx = ctree.query(cgeom, predicate="intersects")
            if len(idx) == 0:
                continue  # commune without any sector: not a gap, reported by the match report
            covered = shapely.area(shapely.intersection(cgeom, shapely.union_all(geoms[idx])))
            total = shapely.area(cgeom)
            if covered < overlap_tolerance:
                continue  # only touched by a neighbour's sector: a commune without sector, not a gap
            share = 1.0 - covered / total if total else 0.0
            if share > gap_tolerance:
                gaps.append({"code_insee": str(insee), "gap_share": round(float(share), 4),
                             "gap_m2": round(float(total - covered), 1)})
        if gaps:
            report.warning("geo-topology-gap", f"{len(gaps)} commune(s) partiellement non couverte(s) par les secteurs "
                           f"(au-delà de {gap_tolerance:.1%} de leur surface)", f"{len(gaps)} commune(s) partly not "
                           f"covered by sectors (beyond {gap_tolerance:.1%} of their area)")
    return {"sectors": len(sectors), "overlaps": overlaps, "gaps": gaps, "ok": not overlaps and not gaps}
