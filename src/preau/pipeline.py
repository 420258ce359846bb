"""Orchestration of ``preau build`` and ``preau demo`` (sits above every stage).

``build``: for each publisher of a workspace — ingest its exports, geocode and assign residence
sectors offline, aggregate every declared table, protect them all together (disclosure control with
the LP audit, earlier published versions taken as known), write the files with their manifest,
validate each table against its schema (an invalid table stops the build), and write the geo layers.
Personal columns live only in memory, inside this function.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from preau.errors import PreauError, Problem, Report, rel
from preau.workspace import Dataset, Publisher, Workspace, load_workspace

Progress = Callable[[str], None]


@dataclass
class DatasetOutput:
    dataset: str
    publisher: str
    folder: Path
    manifest: dict


@dataclass
class BuildResult:
    out_dir: Path
    outputs: list[DatasetOutput] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    report: Report = field(default_factory=Report)
    pupils: int = 0
    geocoding: dict = field(default_factory=dict)


def _ref_paths(pub: Publisher, ws: Workspace, key: str) -> list[Path]:
    value = pub.raw.get("references", {}).get(key)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [ws.root / v for v in values]


def _need_ref(pub: Publisher, ws: Workspace, key: str, fr: str, en: str) -> list[Path]:
    paths = _ref_paths(pub, ws, key)
    missing = [p for p in paths if not p.exists()]
    if not paths or missing:
        raise PreauError(Problem("publisher-reference", f"référentiel « {key} » ({fr}) absent : "
                                 f"{', '.join(rel(p) for p in missing) or 'non déclaré'}",
                                 f"reference '{key}' ({en}) missing: {', '.join(rel(p) for p in missing) or 'not declared'}",
                                 file=rel(pub.file), field=f"references.{key}"))
    return paths


def _timed(result: BuildResult, name: str, t0: float) -> float:
    now = time.perf_counter()
    result.timings[name] = result.timings.get(name, 0.0) + now - t0
    return now


def _write_table(folder: Path, name: str, frame: pl.DataFrame, years: list[str]) -> list[dict]:
    """CSV (all years + one per year) and Parquet of a table; returns manifest resources."""
    folder.mkdir(parents=True, exist_ok=True)
    resources = []
    csv = folder / f"{name}.csv"
    frame.write_csv(csv)
    resources.append({"path": csv.name, "format": "csv", "school_year": None, "rows": frame.height})
    pq = folder / f"{name}.parquet"
    frame.write_parquet(pq, compression="zstd", statistics=False)
    resources.append({"path": pq.name, "format": "parquet", "school_year": None, "rows": frame.height})
    for y in years:
        part = frame.filter(pl.col("annee_scolaire") == y)
        p = folder / f"{name}-{y}.csv"
        part.write_csv(p)
        resources.append({"path": p.name, "format": "csv", "school_year": y, "rows": part.height})
    return resources


def _published_versions(catalog_dir: Path, pub: Publisher, built, restricted: bool) -> pl.DataFrame | None:
    """The table as published by an earlier build (local catalog), if any.

    Its published cells are taken as known to the attacker, as the same cells as today's: that holds
    only if the data of those school years has not changed since. A published count that differs
    from today's true count stops the build with a clear message (never the values)."""
    sub = "restricted" if restricted else "datasets"
    path = catalog_dir / sub / f"{pub.id}-{built.dataset}" / f"{built.dataset}.csv"
    if not path.exists():
        return None
    try:
        schema = {d: pl.String for d in built.dims} | {"effectif": pl.Int64, "secret": pl.Boolean}
        old = pl.read_csv(path, schema_overrides=schema).select(built.dims + ["effectif", "secret"])
    except (pl.exceptions.PolarsError, OSError):
        return None
    both = old.filter(~pl.col("secret")).join(built.frame.select(built.dims + [pl.col("effectif").alias("_now")]),
                                               on=built.dims, how="inner")
    changed = both.filter(pl.col("effectif") != pl.col("_now"))
    if changed.height:
        years = ", ".join(sorted(changed["annee_scolaire"].unique().to_list())) if "annee_scolaire" in built.dims else "?"
        raise PreauError(Problem(
            "published-version-changed",
            f"« {built.dataset} » : {changed.height} effectif(s) déjà publié(s) ({years}) diffèrent des données "
            "d'aujourd'hui ; republier une année corrigée à côté de l'ancienne permettrait de déduire les "
            "cellules masquées par différence. Si la correction est voulue, retirez l'ancienne version du "
            "catalogue local (dossier indiqué) et republiez ; sinon vérifiez les exports de ces années.",
            f"'{built.dataset}': {changed.height} count(s) already published ({years}) differ from today's data; "
            "publishing a corrected year beside the old one would let hidden cells be derived by difference. "
            "If the correction is intended, remove the old version from the local catalog (folder shown) and "
            "publish again; otherwise check the exports of those years.",
            file=rel(path.parent)))
    return old


def build_publisher(ws: Workspace, pub: Publisher, out_dir: Path, result: BuildResult,
                    catalog_dir: Path, progress: Progress, cache_dir: Path | None = None) -> None:
    from preau import geo
    from preau.disclosure import Policy, protect
    from preau.disclosure.files import write_folder
    from preau.ingest import read_exports
    from preau.tables import (build_table, count_pupils, departement_levels, derive, from_pieces, ministry_table,
                              school_level_counts, spans_departements, to_pieces, unlocated_sector,
                              unlocated_sector_expr)
    from preau.validate import validate_table

    t = time.perf_counter()
    if not pub.sources:
        raise PreauError(Problem("publisher-sources", "aucun export élèves déclaré ([[sources]])",
                                 "no pupil export declared ([[sources]])", file=rel(pub.file), field="sources"))
    # the commune layer is read beside the ingest (GDAL releases the GIL: national, 1.3 s taken off
    # the build's path); a problem in it is raised once the exports are read
    communes_path = _need_ref(pub, ws, "communes", "communes", "communes")[0]
    reader = ThreadPoolExecutor(1)
    # the warnings of each step (a layer's repaired polygons, BAN rows without coordinates, rule
    # streets not found…) are the build's: BuildResult.report, shown by `preau build`
    layer_reports = [Report(subject=rel(communes_path))]
    communes_read = reader.submit(geo.read_communes, communes_path, report=layer_reports[0],
                                  cache_dir=cache_dir / "layers" if cache_dir else None)
    # so is the sector layer, after it: the ingest leaves a third of a core idle, and the layer's
    # reading, reprojection and checks (national cold build: 216 MB of GeoJSON, 8 s) no longer take
    # the geocoding's two cores (two back-to-back pairs: ingest + geo 77.3 → 74.8 s, 78.5 → 75.1 s;
    # a spawned process instead of this thread did no better). A bad layer is raised after the ingest.
    sectors_path = _ref_paths(pub, ws, "sectors")
    if sectors_path and sectors_path[0].is_file():
        layer_reports.append(Report(subject=rel(sectors_path[0])))
        sectors_read = reader.submit(geo.read_sectors, sectors_path[0], report=layer_reports[-1],
                                     cache_dir=cache_dir / "layers" if cache_dir else None)
    else:
        sectors_read = None
    reader.shutdown(wait=False)
    progress(f"{pub.id} : lecture des exports")
    # only the frame is kept: the per-file results hold the same columns, and keeping them would
    # keep the addresses and the birth years alive after they are dropped below (national build:
    # 2 GB held until the end)
    # Every text column but the address comes Categorical from the ingest (a 4-byte code per row
    # instead of a 16-byte string view; the geocoding hands each département's share to its task as
    # text, derive() makes the rest so after the geocoding): national pupil frame settled 2.2 → 1.0
    # GiB as read, held through the geo stage, whose peak is the build's. The tables read both kinds.
    try:
        pupils = read_exports(pub.sources, categorical=True)[0]
    except BaseException:
        if sectors_read is not None:
            sectors_read.cancel()  # not read for nothing when it has not started yet
        raise
    result.pupils += pupils.height
    t = _timed(result, "ingest", t)
    # --- geography: offline geocoding and residence sectors (addresses stay in memory) ---
    progress(f"{pub.id} : géocodage hors ligne et secteurs")
    # One département at a time (BAN file by BAN file): bounded memory (preau.geo.locate).
    communes = communes_read.result()
    addresses = _need_ref(pub, ws, "addresses", "adresses BAN", "BAN addresses")
    geo_report = Report(subject=pub.id)
    codes, result.geocoding[pub.id], sectors = geo.locate_pupils(
        pupils, addresses, communes=communes,
        sectors=(sectors_read.result() if sectors_read is not None
                 else sectors_path[0] if sectors_path else None),
        sector_rules=None if sectors_path else _need_ref(pub, ws, "sector_rules", "carte scolaire", "school map rules")[0],
        workers=_geo_workers(len(addresses)), cache_dir=cache_dir, report=geo_report)
    for r in layer_reports + [geo_report]:  # errors were raised: these are warnings
        result.report.extend(p for p in r.problems if p not in result.report.problems)
    # pupils whose address was not placed: one code per département of residence when the publisher
    # spans several (département subtotals, see preau.tables.departement_levels), else 00000-00
    unlocated = (unlocated_sector_expr(pl.col("code_insee_residence").cast(pl.Utf8)) if spans_departements(pupils)
                 else pl.lit(unlocated_sector(None)))
    # their code computed for them only, then scattered (national: 0.37M of 12M rows; 2.35 → 0.21 s,
    # where a fill_null evaluated the expression on every row)
    missing = np.flatnonzero(codes.is_null().to_numpy())
    if len(missing):
        # with_columns: a literal code (one-département publisher) is broadcast to every row
        fill = pupils[missing].with_columns(unlocated.cast(pl.Utf8).alias("_code")).get_column("_code")
        codes = codes.scatter(missing, fill.cast(pl.Categorical))  # Categorical, as derive() keeps text
    pupils = (pupils.drop(["adresse", "code_postal", "commune_residence"])  # addresses first: less memory held
              .with_columns(codes.alias("code_secteur_residence")))
    del codes
    pupils = derive(pupils)
    schools_path = _need_ref(pub, ws, "schools", "annuaire des écoles", "school directory")[0]
    t = _timed(result, "geo", t)
    layer_job = None
    try:
        # --- tables ---
        progress(f"{pub.id} : tableaux")
        schools = pl.read_csv(schools_path, separator=";", infer_schema=False)
        years = sorted(pupils["annee_scolaire"].unique().to_list())
        geo_levels = departement_levels(pupils)  # {} for a one-département publisher
        datasets = [d for d in ws.datasets.values() if d.get("kind", "table") == "table"]
        counted = count_pupils(pupils, datasets)  # the tables without services sum this frame
        anchor = school_level_counts(pupils, geo_levels, counted=counted)
        built = {}
        for ds in datasets:
            if ds.get("shape") == "ministere":
                built[ds.id] = ("ministere", ministry_table(pupils, schools, counted=counted))
            else:
                built[ds.id] = ("long", build_table(ds, pupils, geo_levels, counted=counted))
        del pupils, counted
        t = _timed(result, "tables", t)
        # --- disclosure: public tables together (the exact school table is known), then restricted ---
        progress(f"{pub.id} : secret statistique et audit")
        # the layers without counts (schools, communes) are written meanwhile, and the sector layer's
        # geometry work is made (background process on national territories; see
        # preau.geo.start_layers): started now, it takes the core the disclosure model leaves idle
        layer_job = geo.start_layers(out_dir, pub.id, schools=geo.schools_layer(schools_path),
                                     communes=geo.communes_layer(communes), sectors=sectors,
                                     schemas_dir=ws.root / "schemas")
        protected: dict[str, tuple[pl.DataFrame, dict]] = {}
        for access in ("public", "restricted"):
            group = [b for ds in datasets if ds.access == access and built[ds.id][0] == "long" for b in [built[ds.id][1]]]
            if not group:
                continue
            pieces, owners, published = [], [], []
            for b in group:
                for p in b.pieces:
                    pieces.append(p)
                    owners.append(b.dataset)
                old = _published_versions(catalog_dir, pub, b, access == "restricted")
                if old is not None:
                    published += to_pieces(b.dataset + "@publie", b.dims, old, b.policy, b.geo)
            known = [anchor]
            if access == "restricted":  # the restricted reader also sees every public table
                for ds in datasets:
                    if ds.access == "public" and ds.id in protected and built[ds.id][0] == "long":
                        b = built[ds.id][1]
                        known += to_pieces(ds.id + "@public", b.dims, protected[ds.id][0], Policy(rule="none", k=1), b.geo)
            out = protect(known[:1] + pieces, published=known[1:] + published)
            # the audit group as the attacker sees it, for `preau audit` (re-proved from files alone)
            write_folder([o.table for o in out], out_dir / pub.id / "_audit" / access, published=known[1:] + published)
            out = out[1:]
            for b in group:
                mine = [o for o, owner in zip(out, owners) if owner == b.dataset]
                frame = from_pieces(b.dims, [o.frame for o in mine])
                if "code_insee" in b.dims:  # the commune name beside its code (`TOTAL` on the margin row)
                    names = pl.DataFrame({"code_insee": communes["code_insee"].astype(str).tolist(),
                                          "nom_commune": communes["nom"].astype(str).tolist()})
                    frame = frame.join(names, on="code_insee", how="left", maintain_order="left").with_columns(
                        pl.when(pl.col("code_insee") == "TOTAL").then(pl.lit("TOTAL"))
                        .when(pl.col("code_insee").is_in(list(set(b.geo.get("code_insee", {}).values()))))
                        .then(pl.lit("Département ") + pl.col("code_insee"))
                        .otherwise(pl.col("nom_commune")).alias("nom_commune"))
                    order = b.dims[:b.dims.index("code_insee") + 1] + ["nom_commune"] + b.dims[b.dims.index("code_insee") + 1:]
                    frame = frame.select(order + ["effectif", "secret"])
                cells = frame.height
                hidden = int(frame["secret"].sum())
                true = b.frame.join(frame.select(b.dims + ["secret"]), on=b.dims)
                info = {"rule": b.policy.rule, "k": b.policy.k, "protection_width": b.policy.width, "cells": cells,
                        "cells_hidden": hidden, "pupils_hidden": int(true.filter(pl.col("secret"))["effectif"].sum()),
                        "primary": int(true.filter(pl.col("secret") & (pl.col("effectif") >= 1)
                                                   & (pl.col("effectif") < b.policy.k)).height), "audit": "passed",
                        "linked_with": sorted({o for o in owners if o != b.dataset}) + ["effectifs-ecole-niveau"],
                        "earlier_versions": any(p.name.startswith(b.dataset + "@") for p in published)}
                if b.extra.get("zero_cells_added"):  # zero cells listed so that the protection may hide them
                    info["zero_cells_added"] = b.extra["zero_cells_added"]
                protected[b.dataset] = (frame, info)
        t = _timed(result, "disclosure", t)
        # --- files, manifests and validation ---
        progress(f"{pub.id} : écriture et validation")
        pub_dir = out_dir / pub.id
        invalid = Report(subject=pub.id)
        spatial = _spatial(communes, pub)  # the same for every table of the publisher
        for ds in datasets:
            folder = pub_dir / ds.id
            kind, obj = built[ds.id]
            if kind == "ministere":
                frame, disclosure = obj, {"rule": "none", "k": None, "cells": obj.height, "cells_hidden": 0,
                                          "pupils_hidden": 0, "audit": "not-needed",
                                          "reason": ds.disclosure.get("reason")}
            else:
                frame, disclosure = protected[ds.id]
                if ds.disclosure.get("reason"):
                    disclosure["reason"] = ds.disclosure["reason"]
            resources = _write_table(folder, ds.id, frame, years)
            for r in resources:
                r["schema"] = ds["schema"]
            (folder / "disclosure.json").write_text(json.dumps(disclosure, ensure_ascii=False, indent=2), encoding="utf-8")
            vreport = validate_table(folder / f"{ds.id}.csv", ws.schemas[ds["schema"]])
            vreport.write(folder / "validation.json")
            if not vreport.valid:
                invalid.error("table-invalid", f"le tableau « {ds.id} » ne respecte pas son schéma ; voir le rapport",
                              f"table '{ds.id}' does not match its schema; see the report",
                              file=rel(folder / "validation.json"))
            manifest = {
                "dataset": ds.id, "publisher": pub.id, "kind": "table", "school_years": years, "resources": resources,
                "disclosure": disclosure, "validation": {"valid": vreport.valid, "report": "validation.json"},
                "spatial": spatial, "temporal": {"start": f"{years[0][:4]}-09-01",
                                                                 "end": f"{years[-1][5:]}-08-31"},
                "preview": None,
            }
            (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
            result.outputs.append(DatasetOutput(ds.id, pub.id, folder, manifest))
        if invalid.errors:  # keep the reports readable after the staging folder is removed
            keep = out_dir.parent / "rapports-invalides"
            if keep.exists():
                shutil.rmtree(keep)
            for ds in datasets:
                report_path = pub_dir / ds.id / "validation.json"
                if report_path.exists():
                    (keep / ds.id).mkdir(parents=True, exist_ok=True)
                    shutil.copy(report_path, keep / ds.id / "validation.json")
            for p in invalid.problems:
                p.file = p.file.replace(str(out_dir.name), "rapports-invalides").replace(f"/{pub.id}/", "/") if p.file else p.file
        invalid.raise_if_errors()
        t = _timed(result, "files+validation", t)
        # --- geo layers (only protected counts) ---
        progress(f"{pub.id} : couches géographiques")
        sector_counts = protected.get("effectifs-secteur-niveau", (None, None))[0]
        layers = layer_job.finish(sector_counts)
        for name, manifest in sorted(layers.items()):
            result.outputs.append(DatasetOutput(name, pub.id, pub_dir / name, manifest))
        _timed(result, "layers", t)
    finally:
        if layer_job is not None:
            layer_job.close()


# A publisher with many départements (BAN files) geocodes them in parallel: two processes (the
# machines Préau targets have few cores; each process holds one département at a time). Below
# GEO_PARALLEL_FROM files the processes' start-up costs more than it saves (measured: 2 départements,
# 2.4 s alone, 2.5 s with two processes).
GEO_PARALLEL_FROM = 8


def _geo_workers(n_files: int) -> int:
    return min(2, os.cpu_count() or 1) if n_files >= GEO_PARALLEL_FROM else 1


def _spatial(communes, pub: Publisher) -> dict:
    from preau.geo import wgs84_bounds

    codes = sorted(communes["code_insee"].astype(str).tolist()) if "code_insee" in communes.columns else []
    try:
        bbox = [round(float(v), 5) for v in wgs84_bounds(communes)]
    except Exception:  # noqa: BLE001
        bbox = None
    return {"insee": codes, "bbox": bbox, "territory": pub.raw.get("territory", [])}


def build(workspace: str | Path = ".", out: str | Path = "_build", *, publishers: list[str] | None = None,
          progress: Progress | None = None, cache: bool = True) -> BuildResult:
    """``preau build``: every publisher of the workspace → ``<out>/data/<publisher>/<dataset>/``.

    ``cache``: the prepared BAN references and the sector and commune layers read (public data
    only) are kept in ``<out>/cache`` and read back by the next build with the same files."""
    ws, _ = load_workspace(workspace)
    out = Path(out)
    data_dir = out / "data"
    unknown = [p for p in (publishers or []) if p not in ws.publishers]
    if unknown:
        raise PreauError(Problem("publisher-unknown", f"éditeur inconnu : {', '.join(unknown)}",
                                 f"unknown publisher: {', '.join(unknown)}", field="--publisher"))
    # everything is built in a staging folder and swapped in at the end: nothing half-written
    staging = out / ".data-en-cours"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    if data_dir.exists():  # publishers not rebuilt this time are kept
        for child in data_dir.iterdir():
            if child.is_dir():
                shutil.copytree(child, staging / child.name)
    result = BuildResult(out_dir=data_dir)
    progress = progress or (lambda msg: None)
    selected = [ws.publishers[p] for p in (publishers or sorted(ws.publishers))]
    try:
        for pub in selected:
            if (staging / pub.id).exists():
                shutil.rmtree(staging / pub.id)
            build_publisher(ws, pub, staging, result, out / "catalog", progress,
                            cache_dir=out / "cache" if cache else None)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if data_dir.exists():
        shutil.rmtree(data_dir)
    staging.rename(data_dir)
    for o in result.outputs:
        o.folder = data_dir / o.folder.relative_to(staging)
    return result



@dataclass
class DemoResult:
    build: BuildResult
    synth: object
    publish: object
    site: object
    timings: dict[str, float]
    out: Path
    harvest: object = None  # HarvestReport of the demo federation (neighbour catalog → local catalog)


def demo(workspace: str | Path = ".", out: str | Path = "_build", *, seed: int = 2026,
         progress: Progress | None = None) -> DemoResult:
    """``preau demo``: synthetic territory → build → local catalog → static site, in ``out``."""
    from preau.catalog.publish import publish
    from preau.synth import generate
    from preau.website import build_site

    progress = progress or (lambda msg: None)
    out = Path(out)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    # the demo regenerates its data: an earlier demo's catalog is not an earlier version of it
    for stale in ("catalog", "packages", "data"):
        if (out / stale).exists():
            shutil.rmtree(out / stale)
    progress("territoire fictif (synth)")
    # where the demo publisher (publishers/demo-65.toml) reads its exports, whatever ``out`` is
    synth = generate(Path(workspace) / "_build" / "synth", ["65"], seed=seed)
    timings["synth"] = time.perf_counter() - t
    t = time.perf_counter()
    result = build(workspace, out, progress=progress)
    timings["build"] = time.perf_counter() - t
    t = time.perf_counter()
    progress("catalogue local (paquets de données, DCAT-AP)")
    pub = publish(workspace, target="local", data_dir=out / "data", packages_dir=out / "packages",
                  catalog_dir=out / "catalog")
    timings["publish"] = time.perf_counter() - t
    t = time.perf_counter()
    progress("fédération : catalogue voisin moissonné dans le catalogue local")
    fed = demo_federation(workspace, out)
    timings["harvest"] = time.perf_counter() - t
    t = time.perf_counter()
    progress("site statique")
    site = build_site(out / "catalog", out / "site", workspace=Path(workspace))
    timings["site"] = time.perf_counter() - t
    return DemoResult(result, synth, pub, site, timings, out, fed)


def demo_federation(workspace: str | Path, out: Path):
    """A neighbour's small Préau file catalog (generated aggregates, Gers) in ``<out>/voisin/``,
    harvested with source ``voisin`` of ``catalog/sources.toml`` into ``<out>/catalog`` (no CKAN)."""
    from dataclasses import replace

    from preau.catalog.harvest import Source, harvest, load_sources
    from preau.website.sample import write_sample_catalog

    neighbour = write_sample_catalog(out / "voisin", publisher="demo-32", departements=("32",), communes=6,
                                     layers=False, restricted=False).resolve()
    file = Path(workspace) / "catalog" / "sources.toml"
    found = [s for s in load_sources(file) if s.name == "voisin"] if file.is_file() else []
    src = replace(found[0], path=neighbour) if found else Source(
        name="voisin", kind="preau", path=neighbour, organization="demo-32", resources="mirror",
        title="Catalogue Préau voisin (démonstration, Gers)")
    return harvest([src], into=f"local:{out / 'catalog'}")
