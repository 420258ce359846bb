"""The geo stage of ``preau build`` in one call, one département at a time (bounded memory).

BAN files come one per département (``adresses-<dep>.csv[.gz]``), sectors never cross a commune and
pupils carry their residence INSEE code: each département's reference is loaded, its sectors built
(or the given sector layer used), its pupils geocoded and assigned, then everything is freed before
the next one. Peak memory is that of the largest département, not of the whole territory.

Routing of a pupil to a département: the département of its residence INSEE code; when that code is
unusable, the département of its postcode (Corsica: 200xx–201xx → 2A, 202xx–206xx → 2B); else, or
when no BAN file covers that département, the pupil stays unlocated (``not_found``, no sector).
BAN files whose name does not tell their département (``adresses-XX``) are all loaded together as
one group (the former, unpartitioned behaviour), with every pupil not routed elsewhere.

Addresses and coordinates live only inside this module's functions; the result holds sector codes,
result types and scores.
"""

from __future__ import annotations

import re
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

import geopandas as gpd
import numpy as np
import polars as pl
import shapely

from preau.codes import insee_departement, insee_departement_expr
from preau.errors import PreauError, Report
from preau.frames import distinct_positions, gather_positions
from preau.geo.assign import SectorIndex, assign_sectors
from preau.geo.geocode import RESULT_TYPES, geocode, quality
from preau.geo.layers_io import L93
from preau.geo.normalize import insee_key, postcode_key
from preau.geo.reference import load_reference, reference_cached
from preau.geo.sectors import (build_sectors, overlap_warning, read_communes, read_rules, read_sectors,
                               resolve_overlaps)
from preau.processes import spawn_pool, threads_per_worker

PUPIL_COLUMNS = {"adresse": "adresse", "code_postal": "code_postal", "commune": "commune_residence",
                 "code_insee": "code_insee_residence"}
_DEP_IN_NAME = re.compile(r"(?:^|[-_])(97\d|2[AB]|\d{2})(?:\.csv)?(?:\.gz)?$", re.IGNORECASE)
ALL = "*"  # group of BAN files without a département in their name
_RESULT_ENUM = pl.Enum(RESULT_TYPES)


class Located(NamedTuple):
    """What :func:`locate_pupils` returns: ``codes, quality, sectors = locate_pupils(...)``."""

    codes: pl.Series  # code_secteur_residence per pupil, Categorical (same order; null = unlocated)
    quality: dict  # counts / shares per result type, unmatched, mean score, per-département figures
    sectors: gpd.GeoDataFrame  # sectors used (built or read), Lambert-93


def departement_of_file(path: str | Path) -> str | None:
    """``adresses-65.csv`` → ``"65"``, ``adresses-2A.csv.gz`` → ``"2A"``, ``ban.csv`` → ``None``."""
    name = Path(path).name
    stem = re.sub(r"(\.csv)?(\.gz)?$", "", name, flags=re.IGNORECASE)
    m = _DEP_IN_NAME.search(stem)
    return m.group(1).upper() if m else None


def departement_expr(insee: pl.Expr, postcode: pl.Expr) -> pl.Expr:
    """Département code of a pupil row: from the normalised INSEE code, else from the postcode."""
    ik = insee_key(insee)
    cp = postcode_key(postcode)
    from_insee = insee_departement_expr(ik)
    corsica = pl.when(cp.str.slice(0, 3).cast(pl.Int32, strict=False) < 202).then(pl.lit("2A")).otherwise(pl.lit("2B"))
    from_cp = (pl.when(cp == "").then(pl.lit(None, pl.Utf8))
               .when(cp.str.starts_with("97")).then(cp.str.slice(0, 3))
               .when(cp.str.starts_with("20")).then(corsica)
               .otherwise(cp.str.slice(0, 2)))
    return pl.when(ik != "").then(from_insee).otherwise(from_cp)


def _codes_of(frame: pl.DataFrame, name: str | None) -> tuple[np.ndarray, pl.Series]:
    """(position of each row's value among ``values``, ``values``); a missing column is all ``""``."""
    if name is None or name not in frame.columns:
        return np.zeros(frame.height, dtype=np.uint32), pl.Series([""], dtype=pl.Utf8)
    values, codes = distinct_positions(frame.get_column(name))
    return codes, values


def _rows_by_departement(pupils: pl.DataFrame, cols: Mapping[str, str]) -> dict[str, pl.Series]:
    """Row numbers (in order) of the pupils of each département (:func:`departement_expr`), the codes
    being normalised once per distinct INSEE code and postcode, not once per pupil (national build,
    12M pupils: 3.3 → 0.3 s)."""
    ins, ins_values = _codes_of(pupils, cols.get("code_insee"))
    cps, cp_values = _codes_of(pupils, cols.get("code_postal"))
    from_insee = pl.select(departement_expr(ins_values, pl.lit("", pl.Utf8))).to_series()  # null: unusable code
    from_cp = pl.select(departement_expr(pl.lit("", pl.Utf8), cp_values)).to_series()
    labels = pl.concat([from_insee, from_cp]).drop_nulls().unique().sort().to_list()
    index = {v: i for i, v in enumerate(labels)}
    to_code = lambda s: np.array([index.get(v, len(labels)) for v in s.to_list()], dtype=np.int16)  # noqa: E731
    dep = to_code(from_insee)[ins]
    # the INSEE code decides when it is usable, else the postcode (len(labels): neither)
    use_cp = pl.select(insee_key(ins_values) == "").to_series().to_numpy()[ins]
    dep[use_cp] = to_code(from_cp)[cps[use_cp]]
    order = np.argsort(dep, kind="stable").astype(np.uint32)
    bounds = np.searchsorted(dep[order], np.arange(len(labels) + 1))
    return {lab: pl.Series("row", order[bounds[i]:bounds[i + 1]])
            for i, lab in enumerate(labels) if bounds[i + 1] > bounds[i]}


def _groups(reference_paths: Iterable[str | Path]) -> dict[str, list[Path]]:
    paths = [Path(p) for p in reference_paths]
    deps = [departement_of_file(p) for p in paths]
    if not paths or any(d is None for d in deps):
        return {ALL: paths}
    groups: dict[str, list[Path]] = {}
    for d, p in zip(deps, paths):
        groups.setdefault(d, []).append(p)
    return dict(sorted(groups.items()))


def _merge_sectors(parts: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    """Sectors built per département, merged: a sector spanning two départements (a commune without
    school joined to a neighbouring département's sector) gets one polygon and joined lists."""
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return gpd.GeoDataFrame({"code_secteur": [], "uai": [], "communes": [], "adresses": []},
                                geometry=gpd.GeoSeries([], crs=L93), crs=L93)
    allp = gpd.GeoDataFrame(pl.concat([pl.from_pandas(p.drop(columns="geometry")) for p in parts],
                                      how="diagonal_relaxed").to_pandas(),
                            geometry=np.concatenate([p.geometry.to_numpy() for p in parts]), crs=L93)
    if not allp["code_secteur"].duplicated().any():
        return allp.sort_values("code_secteur").reset_index(drop=True)
    records = []
    join = lambda values: ",".join(sorted({v for s in values for v in str(s or "").split(",") if v}))  # noqa: E731
    for code, g in allp.groupby("code_secteur", sort=True):
        geom = g.geometry.iloc[0] if len(g) == 1 else shapely.union_all(g.geometry.to_numpy())
        rec = {"code_secteur": code, "geometry": geom if shapely.is_valid(geom) else shapely.make_valid(geom)}
        for col in g.columns:
            if col in ("code_secteur", "geometry"):
                continue
            rec[col] = (int(g[col].sum()) if col == "adresses" else join(g[col]) if col in ("uai", "communes")
                        else g[col].iloc[0])
        records.append(rec)
    return gpd.GeoDataFrame(records, geometry="geometry", crs=L93)


def _merge_match(stats: list[dict]) -> dict:
    keys = ("rules", "street_rules", "street_rules_matched", "street_rules_fuzzy", "secteur_unique_communes",
            "addresses", "addresses_assigned", "address_conflicts")
    out = {k: int(sum(s.get(k, 0) for s in stats)) for k in keys}
    out["street_match_rate"] = round(out["street_rules_matched"] / out["street_rules"], 4) if out["street_rules"] else 1.0
    out["address_match_rate"] = round(out["addresses_assigned"] / out["addresses"], 4) if out["addresses"] else 0.0
    out["unmatched_rule_lines"] = int(sum(len(s.get("unmatched_rule_lines", [])) for s in stats))
    return out


def _locate_group(task: dict) -> dict:
    """One département (or the group of unnamed BAN files): reference, sectors, geocoding, assignment.

    Runs in this process or in a worker process (spawned): takes and returns only picklable values;
    a :class:`PreauError` comes back as its report."""
    report = Report(subject="geo")
    out = {"key": task["key"], "rows": task["rows"], "res": None, "sectors": None, "match": None, "addresses": 0}
    try:
        ref = load_reference(task["paths"], cache_dir=Path(task["cache"]) / "ban" if task.get("cache") else None)
        report.extend(ref.report.problems)
        out["addresses"] = ref.size
        index = None
        if task["layer"] is not None:
            # Every point of this group (addresses, interpolations, street and commune points) lies
            # within its reference's extent: sectors beyond it (plus a margin over the nearest-sector
            # distance) can never be hit, and are not indexed.
            xy = pl.concat([f.select("x", "y") for f in (ref.addresses, ref.streets, ref.communes)])
            layer = task["layer"]
            if xy.height and len(layer):
                m = 1000.0
                box = shapely.box(xy["x"].min() - m, xy["y"].min() - m, xy["x"].max() + m, xy["y"].max() + m)
                layer = layer[shapely.intersects(layer.geometry.to_numpy(), box)]
            index = SectorIndex.build(layer) if len(layer) else None
        elif task["rules"] is not None and task["rules"].height:
            communes, own = task["communes"], task["own"]
            geoms, out["overlaps"], out["overlap_area"] = resolve_overlaps(communes.geometry.to_numpy(),
                                                                           task["rank"], np.flatnonzero(own))
            communes = communes[own].set_geometry(gpd.GeoSeries(geoms[own], index=communes.index[own], crs=communes.crs))
            try:
                sb = build_sectors(task["rules"], ref, communes, report=report, clean_communes=False)
            except PreauError:
                if any(p.code != "geo-sectors-empty" for p in report.errors):
                    raise
                # No sector in this département (warned): its pupils get no sector, only geocoding.
                report.problems[:] = [p for p in report.problems if p.code != "geo-sectors-empty"]
            else:
                out["sectors"], out["match"] = sb.sectors, sb.match
                index = SectorIndex.build(sb.sectors)
        sub = _as_text(task["pupils"])
        if sub.height:
            if index is None:
                res = geocode(sub, ref, task["columns"]).select(
                    pl.lit(None, pl.Utf8).alias("code_secteur_residence"), "result_type", "result_score")
            else:
                res = assign_sectors(sub, ref, index, task["columns"]).select(
                    "code_secteur_residence", "result_type", "result_score")
            # sent back coded (Categorical sector codes, an Enum of the result types): the results'
            # concatenation and gather below, then their reading back, cost less in this process
            # (national warm geo stage, three alternating pairs: 8.8 / 8.8 / 8.0 → 7.4 / 7.4 / 7.6
            # CPU-s here, the workers within their noise), and the codes stay Categorical (the
            # build's frame holds them so: no cast of 12M strings back and forth after the pool)
            out["res"] = res.with_columns(pl.col("code_secteur_residence").cast(pl.Categorical),
                                          pl.col("result_type").cast(_RESULT_ENUM))
    except PreauError as exc:
        out["error"] = exc.report
    out["problems"] = report.problems
    return out


def _largest_first(groups: dict[str, list[Path]]) -> list[str]:
    """Group keys by decreasing size of their BAN files: with the largest départements first, two
    workers finish together (in code order, one was left alone with the Val-d'Oise at the end)."""
    size = {k: sum(p.stat().st_size for p in ps if p.is_file()) for k, ps in groups.items()}
    return sorted(groups, key=lambda k: -size[k])


def _prepare_reference(paths: list[Path], cache: str) -> None:
    """Worker job: one group's BAN reference prepared into the cache (its task then reads it back)."""
    if reference_cached(paths, Path(cache) / "ban"):
        return  # a warm build: nothing to prepare
    try:
        load_reference(paths, cache_dir=Path(cache) / "ban")
    except PreauError:
        pass  # not kept: the group's own task reads the files again and reports the problem


class _Preparing:
    """While the sector layer is read (every task needs its part of it), the workers prepare the
    largest groups' BAN references into the cache instead of waiting; their tasks then read them
    back (national build: the layer takes 8 s, the workers sat idle after their start)."""

    def __init__(self, pool, workers: int, groups: dict[str, list[Path]], cache_dir):
        self.pool, self.workers, self.groups, self.cache = pool, workers, groups, str(cache_dir)
        self.keys, self.next, self.busy, self.ready = _largest_first(groups), 0, {}, []
        self._fill(2 * workers)  # queued ahead: the caller splits the pupils meanwhile

    def _fill(self, size: int) -> None:
        while len(self.busy) < size and self.next < len(self.keys):
            key = self.keys[self.next]
            self.busy[self.pool.submit(_prepare_reference, self.groups[key], self.cache)] = key
            self.next += 1

    def until(self, reading) -> list[str]:
        """Prepare until ``reading`` is done; returns the order of the tasks: prepared groups first,
        the others by decreasing size, those still being prepared last (so their task finds the
        reference ready instead of computing it a second time)."""
        while True:
            for f in [f for f in self.busy if f.done()]:
                f.result()  # a bug is raised here; a bad file is left to its task
                self.ready.append(self.busy.pop(f))
            if reading.done() or not (self.busy or self.next < len(self.keys)):
                break
            self._fill(self.workers)
            wait([reading, *self.busy], return_when=FIRST_COMPLETED)
        return self.ready + self.keys[self.next:] + list(self.busy.values())


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its Categorical columns as text (the build keeps them Categorical, to hold less
    memory; the geocoder reads text). Made by the task itself, in its worker: a share pickled with
    its codes and categories is half the bytes of its text (Nord, 0.47M pupils: 41 → 22 MB, pickled
    and read back in 0.21 → 0.08 s, then 0.03 s to cast)."""
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.Utf8))


def _layer_parts(layer: gpd.GeoDataFrame) -> dict[str, np.ndarray] | None:
    """Row numbers of the sectors touching each département (by their ``communes`` list), computed in
    one pass over the layer; ``None`` when the layer has no such list (every task gets the whole layer)."""
    if "communes" not in layer.columns:
        return None
    rows: dict[str, set[int]] = {}
    for i, cs in enumerate(layer["communes"].fillna("").astype(str)):
        for c in cs.split(","):
            c = c.strip()
            if c:
                rows.setdefault(insee_departement(c), set()).add(i)
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in rows.items()}


def _layer_part(layer: gpd.GeoDataFrame, key: str, parts: dict[str, np.ndarray] | None) -> gpd.GeoDataFrame:
    """The sectors of a given layer touching one département (all of them without a ``communes`` list)."""
    if key == ALL or parts is None:
        return layer
    return layer.iloc[parts.get(key, np.array([], dtype=np.int64))]


def locate_pupils(pupils: pl.DataFrame, reference_paths: Iterable[str | Path], *,
                  sector_rules: str | Path | pl.DataFrame | None = None,
                  sectors: str | Path | gpd.GeoDataFrame | None = None,
                  communes: str | Path | gpd.GeoDataFrame | None = None,
                  columns: Mapping[str, str] | None = None, report: Report | None = None,
                  workers: int = 1, cache_dir: str | Path | None = None) -> Located:
    """Geocode every pupil's residence address and give it its residence sector, one département at a time.

    ``reference_paths``: BAN CSV files (one per département, ``adresses-<dep>.csv[.gz]``). Either
    ``sectors`` (a polygon layer, path or GeoDataFrame) or ``sector_rules`` (carte-scolaire CSV or the
    frame of :func:`read_rules`) with ``communes`` (path or GeoDataFrame) must be given. ``columns``
    maps the geocoder roles to the pupil frame's columns (default: the canonical pupil frame).
    ``workers`` > 1: départements handled by that many spawned processes (same results; memory is
    then that of ``workers`` départements at once). ``cache_dir``: where each département's prepared
    BAN reference (``ban/``) and the layers read (``layers/``) are kept and read back by the next
    build with the same files (see :mod:`preau.geo.cache`).
    Returns :class:`Located` ``(codes, quality, sectors)``: the residence sector per pupil in the
    same order (null when unknown), the geocoding quality (counts only, never an address) and the
    sectors. Raises :class:`preau.errors.PreauError` on a bad reference, rules or layer file.
    """
    cols = {**PUPIL_COLUMNS, **(columns or {})}
    report = report if report is not None else Report(subject="geo")
    groups = _groups(reference_paths)
    with ExitStack() as stack:
        # the worker processes start (and import the geo stack) while this process prepares the tasks
        pool = (stack.enter_context(spawn_pool(workers, preload=__name__, reuse_memory=True,
                                                      polars_threads=threads_per_worker(workers)))
                if workers > 1 and len(groups) > 1 else None)
        return _locate(pupils, groups, sectors, sector_rules, communes, cols, report, pool, workers, cache_dir)


def _locate(pupils, groups, sectors, sector_rules, communes, cols, report, pool, workers, cache_dir) -> Located:
    layer = rules = None
    reading = None
    if sectors is not None and not isinstance(sectors, gpd.GeoDataFrame):
        # the layer is read (GDAL and GEOS release the GIL) while the pupils are split by
        # département below (polars too) and the workers prepare references: national build, 8 s
        reader = ThreadPoolExecutor(1)
        reading = reader.submit(read_sectors, sectors, report=report,
                                cache_dir=Path(cache_dir) / "layers" if cache_dir else None)
        reader.shutdown(wait=False)
    # while the layer is read, the workers prepare BAN references (every task needs its layer part)
    preparing = (_Preparing(pool, workers, groups, cache_dir)
                 if pool is not None and reading is not None and cache_dir is not None else None)
    n = pupils.height
    keep = [c for c in cols.values() if c in pupils.columns]
    everyone = pl.int_range(0, n, dtype=pl.UInt32, eager=True)
    by_dep = _rows_by_departement(pupils, cols)
    order = (preparing.until(reading) if preparing is not None
             else _largest_first(groups) if pool is not None else list(groups))
    if sectors is not None:
        layer = reading.result() if reading is not None else sectors
        if layer.crs is not None and layer.crs.to_epsg() != 2154:
            layer = layer.to_crs(L93)
        parts = _layer_parts(layer)
    else:
        if sector_rules is None or communes is None:
            raise ValueError("locate_pupils: give sectors, or sector_rules and communes")
        rules = sector_rules if isinstance(sector_rules, pl.DataFrame) else read_rules(sector_rules, report)
        communes = (communes if isinstance(communes, gpd.GeoDataFrame)
                    else read_communes(communes, report, cache_dir=Path(cache_dir) / "layers" if cache_dir else None))
        rules = rules.with_columns(insee_departement_expr(pl.col("insee")).alias("_dep"))
        commune_dep = communes["code_insee"].astype(str).map(insee_departement).to_numpy()
        # Overlaps between communes are resolved in each département's task, as a single build over
        # the whole territory would (the strip goes to the commune listed first): the task gets its
        # communes and the neighbours whose bounds meet them, with their rank in the whole list.
        commune_geoms = communes.geometry.to_numpy()
        commune_tree = shapely.STRtree(commune_geoms)

    def tasks():
        for key in order:
            paths = groups[key]
            rows = everyone if key == ALL else by_dep.get(key, pl.Series("row", [], dtype=pl.UInt32))
            task = {"key": key, "paths": paths, "cache": cache_dir, "rows": rows, "columns": cols, "layer": None, "rules": None,
                    "communes": None, "pupils": pupils.select(keep) if key == ALL else pupils.select(keep)[rows]}
            if layer is not None:
                task["layer"] = _layer_part(layer, key, parts)
            elif key == ALL:
                task["rules"], task["communes"] = rules.drop("_dep"), communes
                task["rank"], task["own"] = np.arange(len(communes)), np.ones(len(communes), dtype=bool)
            else:
                task["rules"] = rules.filter(pl.col("_dep") == key).drop("_dep")
                own = np.flatnonzero(commune_dep == key)
                near = np.union1d(own, commune_tree.query(commune_geoms[own])[1])
                task["communes"], task["rank"], task["own"] = communes.iloc[near], near, np.isin(near, own)
            yield task

    done: dict[str, dict] = {}
    if pool is not None:
        # at most ``workers`` départements in flight, so memory stays bounded
        pending, todo = set(), tasks()
        for task in todo:
            pending.add(pool.submit(_locate_group, task))
            if len(pending) >= workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    r = f.result()
                    done[r["key"]] = r
        for f in pending:
            r = f.result()
            done[r["key"]] = r
        pool.shutdown()  # the workers' memory is given back before the results are joined
    else:
        for task in tasks():
            r = _locate_group(task)
            done[r["key"]] = r
            del task
    frames, built, stats, per_dep = [], [], [], {}
    if layer is None:
        overlap_warning(report, sum(r.get("overlaps", 0) for r in done.values()),
                        sum(r.get("overlap_area", 0.0) for r in done.values()))
    for key in groups:  # in département order, whatever finished first
        r = done[key]
        report.extend(r["problems"])
        if "error" in r:
            report.extend(p for p in r["error"].problems if p not in r["problems"])
            raise PreauError(report)
        if r["sectors"] is not None:
            built.append(r["sectors"])
            stats.append(r["match"])
        if r["res"] is not None:
            frames.append(r["res"].with_columns(r["rows"].alias("row")))
            per_dep[key] = {"pupils": r["res"].height, "addresses": r["addresses"],
                            "unmatched": int((r["res"]["result_type"] == "not_found").sum())}
    del done
    located = pl.concat(frames) if frames else pl.DataFrame(
        schema={"code_secteur_residence": pl.Utf8, "result_type": pl.Utf8, "result_score": pl.Float64, "row": pl.UInt32})
    # a pupil is in one task at most: its result is gathered by position, null where it has none
    # (a left join on the 12M row numbers took 1.7 s nationally)
    at = np.full(n, -1, dtype=np.int64)
    at[located.get_column("row").to_numpy()] = np.arange(located.height)
    full = (located.drop("row").select(pl.all().gather(gather_positions(at)))
            .with_columns(pl.col("result_type").fill_null("not_found"), pl.col("result_score").fill_null(0.0)))
    q = quality(full)
    q["departements"] = per_dep
    q["not_routed"] = int(n - located.height)  # no usable INSEE code / postcode, or département without BAN file
    if layer is None:
        if not built:
            report.error("geo-sectors-empty", "aucun secteur n'a pu être construit (aucune règle ne correspond aux "
                         "adresses de référence)", "no sector could be built (no rule matches the reference addresses)")
            raise PreauError(report)
        layer = _merge_sectors(built)
        q["sector_build"] = _merge_match(stats)
    return Located(codes=full["code_secteur_residence"].cast(pl.Categorical).alias("code_secteur_residence"),
                   quality=q, sectors=layer)
