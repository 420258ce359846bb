"""Assignment of geocoded points to residence sectors (point in polygon at national scale).

Sector polygons are cut into small pieces (at most ``max_vertices`` vertices each, like PostGIS
``ST_Subdivide``) so each point-in-polygon test is cheap, then an STRtree answers ``intersects``
queries for all points at once. Points in no sector (gaps on streets in municipal layers) take the
nearest sector within ``max_distance`` metres.

Pupil coordinates live only in the arrays passed to these functions: nothing here writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import geopandas as gpd
import numpy as np
import polars as pl
import shapely
from scipy import ndimage

from preau.frames import gather_positions
from preau.geo.geocode import geocode_distinct
from preau.geo.reference import Reference

DEFAULT_MAX_DISTANCE = 50.0  # metres
GRID_MIN_POINTS = 50_000
# The grid built on a lookup has GRID_CELLS_PER_POINT cells per point looked up (at least
# GRID_MIN_CELLS, at most the index's ``max_cells``): its build costs by the cell, whatever the
# points (4M cells: 35 ms for a small département). The 100 national départements' lookups (9.5M
# geocoded inputs, then their street points), back to back: 4M cells each 13.6 s; 3 per point
# 11.4 s, 5 per point 11.4–12.0 s, 8 per point 12.2 s, 20 per point 12.2–13.5 s; the same sectors.
GRID_CELLS_PER_POINT = 5
GRID_MIN_CELLS = 50_000
UNDECIDED = -3  # grid cell whose centre has not been tested yet


_CLIP_UFUNC = getattr(getattr(shapely, "lib", None), "clip_by_rect", None)


def _clip_halves(geoms: np.ndarray, boxes: tuple) -> np.ndarray:
    """``clip_by_rect`` of each geometry by its own box, all at once.

    ``shapely.clip_by_rect`` takes one box for all; its ufunc (``shapely.lib.clip_by_rect``, the
    same GEOS call) broadcasts the bounds too. Element by element when that is not available (another
    shapely version) or when GEOS fails on one geometry."""
    if _CLIP_UFUNC is not None:
        try:
            return _CLIP_UFUNC(geoms, *(np.asarray(b, dtype=np.float64) for b in boxes))
        except (TypeError, ValueError, shapely.errors.GEOSException):
            pass
    out = np.empty(len(geoms), dtype=object)
    for i, g in enumerate(geoms):
        box = tuple(float(b[i]) for b in boxes)
        try:
            out[i] = shapely.clip_by_rect(g, *box)
        except shapely.errors.GEOSException:
            # clip_by_rect can build a degenerate ring on near-collinear vertices: exact intersection
            out[i] = shapely.intersection(shapely.make_valid(g), shapely.box(*box))
    return out


def _subdivide(geoms: np.ndarray, max_vertices: int, max_depth: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Polygons cut in halves (along their longer side, recursively) until each piece has at most
    ``max_vertices`` vertices, like PostGIS ``ST_Subdivide``. Returns the polygon pieces and the
    index of the geometry each comes from, grouped by that index in order.

    All the geometries of one depth are cut by one vectorised GEOS call (breadth first): the
    per-geometry recursion spent most of its time in Python, not in GEOS (national layer, 48k
    sectors)."""
    pieces, owners = [], []
    cur = np.asarray(geoms, dtype=object)
    owner = np.arange(len(cur), dtype=np.int64)
    depth = 0
    while len(cur):
        keep = ~shapely.is_empty(cur)
        cur, owner = cur[keep], owner[keep]
        done = shapely.get_num_coordinates(cur) <= max_vertices
        if depth > max_depth:
            done[:] = True
        if done.any():
            parts, idx = shapely.get_parts(cur[done], return_index=True)
            poly = shapely.get_type_id(parts) == 3
            pieces.append(parts[poly])
            owners.append(owner[done][idx[poly]])
        cur, owner = cur[~done], owner[~done]
        if not len(cur):
            break
        minx, miny, maxx, maxy = shapely.bounds(cur).T
        wide = maxx - minx >= maxy - miny
        midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
        first = _clip_halves(cur, (minx, miny, np.where(wide, midx, maxx), np.where(wide, maxy, midy)))
        second = _clip_halves(cur, (np.where(wide, midx, minx), np.where(wide, miny, midy), maxx, maxy))
        cur = np.column_stack([first, second]).ravel()
        owner = np.repeat(owner, 2)
        depth += 1
    if not pieces:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    pieces, owners = np.concatenate(pieces), np.concatenate(owners)
    order = np.argsort(owners, kind="stable")
    return pieces[order], owners[order]


def _grid(geoms: np.ndarray, max_cells: int) -> tuple | None:
    """A regular grid over the sectors: each cell is a sector index (wholly inside it), -1 (touches no
    sector), -2 (a border crosses it: points there get an exact test) or -3 (not decided yet).

    Border cells are found without any polygon test: boundaries are densified to half a cell and every
    cell holding a vertex, plus its 4 neighbours, is a border cell; any other cell lies wholly inside one
    sector or outside all, so its centre decides. That test is run lazily, for the cells points fall
    in (:meth:`SectorIndex.lookup`): a département's pupils fill a few thousand cells, not the grid."""
    if len(geoms) == 0 or max_cells <= 0:
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    w, h = max(maxx - minx, 1.0), max(maxy - miny, 1.0)
    cell = max(float(np.sqrt(w * h / max_cells)), 10.0)
    nx, ny = int(np.ceil(w / cell)) + 1, int(np.ceil(h / cell)) + 1
    coords = shapely.get_coordinates(shapely.segmentize(shapely.boundary(geoms), cell / 2))
    ix = np.clip(np.floor((coords[:, 0] - minx) / cell).astype(np.int64), 0, nx - 1)
    iy = np.clip(np.floor((coords[:, 1] - miny) / cell).astype(np.int64), 0, ny - 1)
    hit = np.zeros((ny + 2, nx + 2), dtype=bool)
    hit[iy + 1, ix + 1] = True
    border = np.zeros_like(hit)
    # Consecutive vertices are at most half a cell apart, so a segment between them crosses at most
    # a 4-neighbour of its end cells: mark each vertex cell and its 4 neighbours.
    for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
        border[1 + dy:ny + 1 + dy, 1 + dx:nx + 1 + dx] |= hit[1:ny + 1, 1:nx + 1]
    border = border[1:ny + 1, 1:nx + 1]
    # No boundary crosses two 4-adjacent cells that are not border cells (nor the edge they share):
    # every cell of a connected region of such cells lies in the same sector, or outside all, so
    # one centre per region decides (national lookup: a few hundred tests per département instead
    # of one per cell holding points).
    region, _ = ndimage.label(~border)
    state = np.where(border.ravel(), -2, UNDECIDED).astype(np.int64)
    return (minx, miny, cell, nx, ny, state, region.ravel())


@dataclass
class SectorIndex:
    """A spatial index over sector polygons (Lambert-93) answering point → sector code."""

    codes: np.ndarray  # sector code per polygon
    piece_owner: np.ndarray  # polygon index per piece
    tree: shapely.STRtree
    whole_tree: shapely.STRtree
    commune_single: dict[str, str]  # commune INSEE → its only sector (for commune-level results)
    _streets: dict = None  # id(reference) → {(insee, street key): sector when the whole street is in one}
    grid: tuple | None = None  # (x0, y0, cell, nx, ny, state, region): state = polygon index, -1 empty, -2 border; region = label of the connected region of non-border cells (0 on borders)
    _grid_args: tuple | None = None  # the grid is built on the first large lookup (it pays off from ~50k points)
    _names: pl.Series | None = None  # the codes as a polars Series (for code_series)

    @classmethod
    def build(cls, sectors: gpd.GeoDataFrame, max_vertices: int = 64, max_cells: int = 4_000_000,
              eager_grid: bool = False) -> "SectorIndex":
        # max_cells (the cap; a lookup builds GRID_CELLS_PER_POINT per point): finer cells leave
        # fewer points in border cells (exact tests). Measured on the
        # synthetic Nord (469k pupils, 1,513 sectors): 250k cells of 275 m, 20 % border cells,
        # lookup 1.71 s; 4M cells of 69 m, 6.6 %, 1.26 s (Paris, 10 m floor: 2.69 → 2.29 s); same
        # sectors, build time unchanged, grid state 32 MB
        if sectors.crs is not None and sectors.crs.to_epsg() != 2154:
            sectors = sectors.to_crs("EPSG:2154")
        geoms = sectors.geometry.to_numpy()
        pieces, owner = _subdivide(geoms, max_vertices)
        shapely.prepare(pieces)
        single: dict[str, str] = {}
        if "communes" in sectors.columns:
            seen: dict[str, set] = {}
            for code, communes in zip(sectors["code_secteur"], sectors["communes"]):
                for c in str(communes or "").split(","):
                    if c:
                        seen.setdefault(c, set()).add(str(code))
            single = {c: next(iter(s)) for c, s in seen.items() if len(s) == 1}
        whole = shapely.STRtree(geoms)
        if eager_grid:
            return cls(codes=sectors["code_secteur"].astype(str).to_numpy(), piece_owner=np.asarray(owner, dtype=np.int64),
                       tree=shapely.STRtree(pieces), whole_tree=whole, commune_single=single,
                       grid=None, _grid_args=(geoms, max_cells))._with_grid()
        return cls(codes=sectors["code_secteur"].astype(str).to_numpy(), piece_owner=np.asarray(owner, dtype=np.int64),
                   tree=shapely.STRtree(pieces), whole_tree=whole, commune_single=single,
                   _grid_args=(geoms, max_cells))

    def lookup(self, x: np.ndarray, y: np.ndarray, max_distance: float = DEFAULT_MAX_DISTANCE) -> np.ndarray:
        """Index of the sector polygon holding each point (-1 when none within ``max_distance``)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        result = np.full(len(x), -1, dtype=np.int64)
        ok = np.isfinite(x) & np.isfinite(y)
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            return result
        # Pupils share points (siblings, one building, one BAN address): each distinct point is
        # looked up once (synthetic Paris: 166k distinct points for 394k pupils, Nord 348k for 469k).
        # (as complex numbers: a 1-D sort, 8× faster than np.unique(axis=0) on 469k points)
        pts, inverse = np.unique(x[idx] + 1j * y[idx], return_inverse=True)
        result[idx] = self._lookup(pts.real.copy(), pts.imag.copy(), max_distance, len(idx))[inverse.ravel()]
        return result

    def _lookup(self, x: np.ndarray, y: np.ndarray, max_distance: float, points: int) -> np.ndarray:
        """:meth:`lookup` of finite points (distinct; ``points``: how many were asked, repeats included)."""
        result = np.full(len(x), -1, dtype=np.int64)
        if self.grid is None and self._grid_args is not None and len(x) >= GRID_MIN_POINTS:
            self._with_grid(points)
        if self.grid is not None:
            # Grid cells wholly inside one sector answer at once; only border cells need a polygon test.
            x0, y0, cell, nx, ny, state, region = self.grid
            ix = np.floor((x - x0) / cell).astype(np.int64)
            iy = np.floor((y - y0) / cell).astype(np.int64)
            inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
            cells = iy[inside] * nx + ix[inside]
            todo = np.unique(cells[state[cells] == UNDECIDED])
            if len(todo):  # the centre of one cell of each region no border crosses decides for it
                _, first, back = np.unique(region[todo], return_index=True, return_inverse=True)
                jj, ii = np.divmod(todo[first], nx)
                state[todo] = self._exact_in_cells(x0 + (ii + 0.5) * cell, y0 + (jj + 0.5) * cell,
                                                   todo[first])[back.ravel()]
            result[inside] = state[cells]
            exact = np.flatnonzero(result == -2)
        else:
            exact = np.arange(len(x))
        if len(exact):
            result[exact] = (self._exact_in_cells(x[exact], y[exact], iy[exact] * nx + ix[exact])
                             if self.grid is not None else self._exact(x[exact], y[exact]))
        miss = np.flatnonzero(result < 0)
        if len(miss) and max_distance > 0:
            mp = shapely.points(x[miss], y[miss])
            s2, poly = self.whole_tree.query_nearest(mp, max_distance=max_distance, all_matches=False)
            result[miss[s2]] = poly
        return result

    def _with_grid(self, points: int | None = None) -> "SectorIndex":
        """The grid, of ``max_cells`` cells, or of :data:`GRID_CELLS_PER_POINT` per point for a
        lookup of ``points`` points."""
        geoms, max_cells = self._grid_args
        self._grid_args = None
        if points is not None:
            max_cells = min(max_cells, max(GRID_MIN_CELLS, GRID_CELLS_PER_POINT * points))
        self.grid = _grid(geoms, max_cells)
        return self

    def _exact_in_cells(self, x: np.ndarray, y: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """:meth:`_exact` for points of known grid cells, without one GEOS point per point: the pieces
        whose bounds meet each cell are found once per cell (one box per distinct cell), then every
        (point, candidate piece) pair is tested by coordinates (``intersects_xy`` on the prepared
        pieces). A point on a shared border keeps the piece of lowest index."""
        out = np.full(len(x), -1, dtype=np.int64)
        x0, y0, cell = self.grid[:3]
        nx = self.grid[3]
        ucells, inv = np.unique(cells, return_inverse=True)
        inv = inv.ravel()
        jj, ii = np.divmod(ucells, nx)
        pad = 1e-3  # a point is within a millimetre of its cell whatever the rounding of its cell number
        boxes = shapely.box(x0 + ii * cell - pad, y0 + jj * cell - pad, x0 + (ii + 1) * cell + pad,
                            y0 + (jj + 1) * cell + pad)
        ci, pj = self.tree.query(boxes)
        order = np.lexsort((pj, ci))  # per cell, candidate pieces in index order
        ci, pj = ci[order], pj[order]
        count = np.bincount(ci, minlength=len(ucells))
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        per_point = count[inv]
        rep = np.repeat(np.arange(len(x)), per_point)
        offset = np.arange(len(rep)) - np.repeat(np.cumsum(per_point) - per_point, per_point)
        cand = pj[start[inv][rep] + offset]
        hit = shapely.intersects_xy(self.tree.geometries[cand], x[rep], y[rep])
        first_pt, first_pos = np.unique(rep[hit], return_index=True)
        out[first_pt] = self.piece_owner[cand[hit][first_pos]]
        return out

    def _exact(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Polygon index per point by exact tests on the subdivided pieces (-1 outside every sector)."""
        out = np.full(len(x), -1, dtype=np.int64)
        src, piece = self.tree.query(shapely.points(x, y), predicate="intersects")
        # A point on a shared border hits two pieces: keep the one of lowest index, as the grid
        # does (the tree returns them in its own order)
        order = np.lexsort((piece, src))
        src, piece = src[order], piece[order]
        first_src, first_pos = np.unique(src, return_index=True)
        out[first_src] = self.piece_owner[piece[first_pos]]
        return out

    def street_sectors(self, reference: Reference, streets: pl.DataFrame | None = None) -> pl.DataFrame:
        """(insee, voie) → sector, for streets whose reference addresses all fall in one sector.

        ``streets`` (columns ``insee``, ``voie``) limits the work to the streets asked for (the
        geocoder's street-level results: a few hundred, instead of every address of the reference)."""
        if streets is not None:
            return self._street_codes(reference.addresses.join(streets.select("insee", "voie").unique(),
                                                               on=["insee", "voie"], how="semi"))
        if self._streets is None:
            self._streets = {}
        key = id(reference)
        if key not in self._streets:
            self._streets[key] = self._street_codes(reference.addresses)
        return self._streets[key]

    def _street_codes(self, a: pl.DataFrame) -> pl.DataFrame:
        codes = self.code_series(self.lookup(a["x"].to_numpy(), a["y"].to_numpy(), 0.0))
        df = a.select("insee", "voie").with_columns(codes)
        return (df.group_by("insee", "voie")
                .agg(pl.col("code").n_unique().alias("n"), pl.col("code").first())
                .filter((pl.col("n") == 1) & pl.col("code").is_not_null())
                .select("insee", pl.col("voie").alias("result_voie"), pl.col("code").alias("street_code")))

    def code_series(self, found: np.ndarray, name: str = "code") -> pl.Series:
        """Sector codes of polygon indexes (null where negative), gathered by polars from the few
        distinct codes (no Python string per point: 12M points 1.6 → 0.3 s)."""
        if self._names is None:
            self._names = pl.Series(name, self.codes.tolist(), dtype=pl.Utf8)
        return self._names.gather(gather_positions(found)).alias(name)

    def codes_for(self, x: np.ndarray, y: np.ndarray, max_distance: float = DEFAULT_MAX_DISTANCE) -> np.ndarray:
        """Sector code per point (``None`` when outside every sector)."""
        found = self.lookup(x, y, max_distance)
        out = np.full(len(found), None, dtype=object)
        out[found >= 0] = self.codes[found[found >= 0]]
        return out


def assign_points(x: np.ndarray, y: np.ndarray, sectors: gpd.GeoDataFrame | SectorIndex,
                  max_distance: float = DEFAULT_MAX_DISTANCE) -> np.ndarray:
    """Sector code (object array, ``None`` outside) for Lambert-93 points."""
    index = sectors if isinstance(sectors, SectorIndex) else SectorIndex.build(sectors)
    return index.codes_for(x, y, max_distance)


def assign_sectors(addresses: pl.DataFrame, reference: Reference, sectors: gpd.GeoDataFrame | SectorIndex,
                   columns: Mapping[str, str] | None = None, max_distance: float = DEFAULT_MAX_DISTANCE,
                   min_score: float = 0.5) -> pl.DataFrame:
    """Geocode addresses and assign each to its residence sector, in one call, coordinates kept in memory.

    ``addresses``: a polars frame with the columns named by ``columns`` (roles ``adresse``,
    ``code_postal``, ``commune``, ``code_insee``; see :func:`preau.geo.geocode.geocode`).
    Returns a frame with the same number of rows, in the same order, holding only
    ``code_secteur_residence`` (null when unknown), ``result_type``, ``result_score``,
    ``result_code_insee`` — never coordinates. Street-level results get the street's sector when the
    whole street lies in one sector; commune-level results (``municipality``) and weak matches (score
    below ``min_score``) get a sector only when their commune has a single sector.
    """
    index = sectors if isinstance(sectors, SectorIndex) else SectorIndex.build(sectors)
    # everything below is computed once per distinct input address (siblings, one building), then
    # gathered to the rows (synthetic Nord: 190,503 distinct inputs for 212,574 pupils)
    geo, at = geocode_distinct(addresses, reference, columns, with_street=True)
    kind = geo["result_type"]
    precise = kind.is_in(["housenumber", "interpolation"]) & (geo["result_score"] >= min_score)
    found = index.lookup(geo["x"].to_numpy(), geo["y"].to_numpy(), max_distance)
    found[~precise.to_numpy()] = -1
    # A street without number: its sector when the whole street lies in one sector, else unknown.
    asked = geo.filter(pl.col("result_type") == "street").select(pl.col("result_code_insee").alias("insee"),
                                                                   pl.col("result_voie").alias("voie"))
    street = (geo.select(pl.col("result_code_insee").alias("insee"), "result_voie", "result_type")
              .join(index.street_sectors(reference, asked), on=["insee", "result_voie"], how="left", maintain_order="left")
              .select(pl.when(pl.col("result_type") == "street").then(pl.col("street_code")))
              .to_series())
    single = geo["result_code_insee"].replace_strict(index.commune_single, default=None, return_dtype=pl.Utf8)
    out = index.code_series(found, "code_secteur_residence")
    out = pl.select(pl.coalesce(out, street, single).alias("code_secteur_residence")).to_series()
    result = pl.DataFrame([out, geo["result_type"], geo["result_score"], geo["result_code_insee"]])[at]
    del geo, found  # coordinates never leave this function
    return result
