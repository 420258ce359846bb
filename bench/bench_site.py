"""Bench: static site build for a national-size synthetic catalog (~48k school pages).

Generates the catalog with the real stages (tables → packages → local catalog; no map layers),
then measures in one run:
  1. full build (every page rendered and written): time, pages/s (goal ≥ 1,000 pages/s);
  2. no-op rebuild (nothing changed): time, files written (expected 0);
  3. incremental rebuild after one dataset changed (its description): time, files written;
wall time and CPU time (this process + the forked workers rendering school pages; the machine is
shared, so wall time depends on the load, printed at the end);
and prints the ratio full / incremental. The catalog inputs are generated in bench/_work/ (ignored).

    .venv/bin/python bench/bench_site.py --schools 48000      # national size (make bench-site)
    .venv/bin/python bench/bench_site.py --schools 2000       # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from preau.website import build_site
from preau.website.sample import write_sample_catalog

from _common import peak_rss_mb, result, write_result  # noqa: E402  (bench/ is on sys.path)

WORK = Path(__file__).resolve().parent / "_work" / "site"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schools", type=int, default=48000, help="number of schools (one page each, per language)")
    ap.add_argument("--keep", action="store_true", help="reuse the generated catalog if present")
    ap.add_argument("--out", type=Path, help="write the result record as JSON here")
    args = ap.parse_args()
    root = WORK / f"n{args.schools}"
    catalog = root / "_build" / "catalog"
    t0 = time.perf_counter()
    if not (args.keep and (catalog / "catalog.json").is_file()):
        shutil.rmtree(root, ignore_errors=True)
        write_sample_catalog(root, publisher="national", departements=(), communes=None, layers=False,
                             total_schools=args.schools, restricted=False)
    gen = time.perf_counter() - t0
    # a new output folder (deleting ~100k files just before would slow the next file creations)
    for old in (root / "_build").glob("site-*"):
        shutil.rmtree(old, ignore_errors=True)
    out = root / "_build" / f"site-{int(time.time())}"

    cpu: dict[str, float] = {}

    def cpu_now() -> float:  # this process + the workers it forked (school pages)
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def timed(label):
        c0 = cpu_now()
        r = build_site(catalog, out, workspace=root)
        cpu[label] = cpu_now() - c0
        return r

    full = timed("full build")
    noop = timed("no-op rebuild")
    index = json.loads((catalog / "catalog.json").read_text(encoding="utf-8"))
    name = next(d["name"] for d in index["datasets"] if d["dataset"] == "effectifs-commune-niveau")
    pkg_path = catalog / "datasets" / name / "datapackage.json"
    pkg = json.loads(pkg_path.read_text(encoding="utf-8"))
    pkg["preau"]["description"]["fr"] += " (modifié)"
    pkg_path.write_text(json.dumps(pkg, ensure_ascii=False), encoding="utf-8")
    for d in index["datasets"]:
        if d["name"] == name:
            d["description"]["fr"] += " (modifié)"
    (catalog / "catalog.json").write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")
    incr = timed("one dataset changed")

    schools = sum(1 for _ in (out / "ecoles").glob("*.html"))
    load = os.getloadavg()[0]
    print(f"catalog generated in {gen:.1f} s: {len(index['datasets'])} datasets, {schools} schools")
    print(f"{'run':<24}{'wall (s)':>10}{'cpu (s)':>10}{'pages':>9}{'pages/s wall':>14}{'pages/s cpu':>13}{'written':>10}")
    for label, r in (("full build", full), ("no-op rebuild", noop), ("one dataset changed", incr)):
        print(f"{label:<24}{r.seconds:>10.2f}{cpu[label]:>10.2f}{r.pages:>9}{r.pages_per_second:>14.0f}"
              f"{r.pages / cpu[label]:>13.0f}{len(r.written):>10}")
    print(f"machine load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs")
    print(f"full build pages/s: {full.pages_per_second:.0f} (goal >= 1000: {'met' if full.pages_per_second >= 1000 else 'NOT met'})")
    print(f"incremental vs full: {full.seconds / incr.seconds:.1f}x faster, "
          f"{len(incr.written)} of {len(full.written)} files rewritten")
    write_result(args.out, result(
        "site", "Site statique (pages/s) / static site build",
        size={"schools": args.schools, "datasets": len(index["datasets"]), "pages": full.pages},
        preau={"seconds": round(full.seconds, 2), "rate": round(full.pages_per_second), "unit": "pages/s",
               "cpu_seconds": round(cpu["full build"], 2), "peak_rss_mb": peak_rss_mb()},
        anchor=None, goal="≥ 1 000 pages/s", goal_met=full.pages_per_second >= 1000,
        details={"noop_seconds": round(noop.seconds, 2), "noop_written": len(noop.written),
                 "incremental_seconds": round(incr.seconds, 2), "incremental_written": len(incr.written),
                 "full_over_incremental": round(full.seconds / incr.seconds, 1), "load_average": round(load, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
