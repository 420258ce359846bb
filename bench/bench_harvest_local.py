"""Bench: harvesting a Préau file catalog of N generated datasets into the local file catalog
(``preau harvest --into local:…``, what the static site shows), first run and no-change run, side by
side with a plain mirror of the same source folder (``shutil.copytree``: what a cron'd copy does at
every run, without provenance, sync rules or index).

Each generated dataset: one aggregate CSV (generated numbers), its ``datapackage.json`` and its
entry in ``catalog.json`` (sha256 announced). Files are mirrored (``resources = "mirror"``).
Figures: seconds and files written per run (a no-change harvest writes none).

Usage::

    .venv/bin/python bench/bench_harvest_local.py [--n 200] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from _common import WORK, peak_rss_mb, result, write_result  # noqa: E402  (bench/ is on sys.path)

from preau.catalog.harvest import Source, harvest


def make_source(folder: Path, n: int) -> None:
    datasets = []
    for i in range(n):
        name = f"gen-{i:05d}"
        body = "annee_scolaire,code_insee,niveau,effectif,secret\n" + "".join(
            f"2026-2027,65{j:03d},CP,{(i * 7 + j) % 90 + 5},false\n" for j in range(40))
        pkg_dir = folder / "datasets" / name
        pkg_dir.mkdir(parents=True, exist_ok=True)
        (pkg_dir / f"{name}.csv").write_text(body, encoding="utf-8")
        digest = hashlib.sha256(body.encode()).hexdigest()
        res = {"name": f"{name}.csv", "path": f"{name}.csv", "format": "csv", "bytes": len(body.encode()),
               "hash": f"sha256:{digest}", "preau": {"role": "data"}}
        (pkg_dir / "datapackage.json").write_text(json.dumps({
            "name": name, "resources": [res],
            "preau": {"access": "public", "kind": "table", "title": {"fr": f"Jeu {i}", "en": f"Dataset {i}"},
                      "publisher": {"id": "gen", "name": "Éditeur généré"}}}), encoding="utf-8")
        datasets.append({"name": name, "publisher": "gen", "title": {"fr": f"Jeu {i}", "en": f"Dataset {i}"},
                         "path": f"datasets/{name}/datapackage.json",
                         "resources": [{**res, "path": f"datasets/{name}/{name}.csv"}]})
    (folder / "catalog.json").write_text(json.dumps({
        "generated": "2026-11-23T00:00:00+00:00", "publishers": [{"id": "gen", "name": "Éditeur généré"}],
        "datasets": datasets}), encoding="utf-8")


def files_written(folder: Path, since_ns: int) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime_ns >= since_ns)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="datasets in the source")
    ap.add_argument("--out", type=Path, help="write the result record as JSON here")
    args = ap.parse_args()
    work = WORK / "harvest-local"
    if work.exists():
        shutil.rmtree(work)
    source = work / "source"
    make_source(source, args.n)
    src = Source(name="gen", kind="preau", path=source, organization="gen", resources="mirror")
    catalog = work / "catalog"
    runs = {}
    for label in ("first", "no_change"):
        mark = time.time_ns()
        t = time.perf_counter()
        report = harvest([src], into=f"local:{catalog}")
        seconds = time.perf_counter() - t
        health = report.source("gen")
        runs[label] = {"seconds": round(seconds, 3), "files_written": files_written(catalog, mark),
                       "counts": {k: v for k, v in health.counts.items() if v}}
    anchor = {}
    for label in ("first", "no_change"):
        dest = work / f"mirror-{label}"
        t = time.perf_counter()
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest)
        # copytree keeps the source mtimes: every file of the fresh copy was written
        anchor[label] = {"seconds": round(time.perf_counter() - t, 3),
                         "files_written": sum(1 for p in dest.rglob("*") if p.is_file())}
    record = result(
        "harvest-local", f"Moisson d'un catalogue Préau de {args.n} jeux dans le catalogue local (site)",
        size={"datasets": args.n},
        preau={"seconds": runs["first"]["seconds"], "no_change_seconds": runs["no_change"]["seconds"],
               "files_written": runs["first"]["files_written"],
               "no_change_files_written": runs["no_change"]["files_written"], "peak_rss_mb": peak_rss_mb(),
               "counts": runs},
        anchor={"name": "shutil.copytree of the source folder (plain mirror, every run)",
                "seconds": anchor["first"]["seconds"], "no_change_seconds": anchor["no_change"]["seconds"],
                "files_written": anchor["first"]["files_written"],
                "no_change_files_written": anchor["no_change"]["files_written"]},
        ratio=anchor["no_change"]["seconds"] / max(runs["no_change"]["seconds"], 1e-9),
        ratio_meaning="no-change run: anchor seconds / Préau seconds",
        goal="no-change run writes 0 files", goal_met=runs["no_change"]["files_written"] == 0)
    print(json.dumps(record, ensure_ascii=False, indent=2))
    write_result(args.out, record)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
