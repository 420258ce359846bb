"""Bench: harvesting a CKAN source of N generated datasets into the central CKAN, Préau vs
``ckanapi search | ckanapi load`` (the dump/load anchor; ckanext-harvest is not installed here).

Side by side, in one run, on the same source (instance ``peer``, from ``make ckan-up``) and the
same central catalog (instance ``main``): a first run and a no-change run, each timed, with the
number of write calls (create/update API calls) and of central datasets whose ``metadata_modified``
changed (CKAN 2.12 leaves it alone when an update changes nothing, so the calls are the real cost).

Usage::

    .venv/bin/python bench/bench_harvest.py [--n 1000]

Prints a table and writes JSON into ``bench/_work/`` (git-ignored). Tokens are read from
``catalog/.local/<instance>/ckan.env`` and never printed (the ckanapi CLI takes its key on its
command line: run this on the local test CKANs only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ckanapi import RemoteCKAN

from preau.catalog.harvest import Source, harvest

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
CKANAPI = str(Path(sys.executable).with_name("ckanapi"))
# ckanapi load starts its workers as `ckanapi` from PATH
from _common import peak_rss_mb, read_ckan_env, result, write_result  # noqa: E402  (bench/ is on sys.path)

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def modified(ckan: RemoteCKAN, fq: str) -> dict[str, str]:
    out, start = {}, 0
    while True:
        page = ckan.action.package_search(fq=fq, include_private=True, rows=1000, start=start, fl="name,metadata_modified")
        for d in page["results"]:
            out[d["name"]] = d["metadata_modified"]
        start += len(page["results"])
        if not page["results"] or start >= page["count"]:
            return out


def writes(before: dict[str, str], after: dict[str, str]) -> int:
    return sum(1 for k, v in after.items() if before.get(k) != v)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="datasets in the source (the issue's figure: 1000)")
    ap.add_argument("--out", type=Path, help="write the result records (first run, no-change run) as JSON here")
    args = ap.parse_args()
    peer_env, main_env = read_ckan_env("peer"), read_ckan_env("main")
    peer = RemoteCKAN(peer_env["PREAU_CKAN_URL"], apikey=peer_env["PREAU_CKAN_TOKEN"])
    central = RemoteCKAN(main_env["PREAU_CKAN_URL"], apikey=main_env["PREAU_CKAN_TOKEN"])
    tag = uuid.uuid4().hex[:6]
    src_org = peer.action.organization_create(name=f"bench-src-{tag}")

    def make(i: int) -> None:
        RemoteCKAN(peer_env["PREAU_CKAN_URL"], apikey=peer_env["PREAU_CKAN_TOKEN"]).action.package_create(
            name=f"bench-{tag}-{i:05d}", title=f"Jeu généré {i}", owner_org=src_org["id"],
            notes=f"Effectifs générés n° {i}", tags=[{"name": "bench"}], license_id="cc-by",
            resources=[{"name": "effectifs.csv", "url": f"http://example.invalid/{tag}/{i}.csv", "format": "CSV"}])

    t = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(make, range(args.n)))
    print(f"source: {args.n} datasets created on peer in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    results = {}
    # ---- Préau harvest
    src = Source(name=f"b{tag}", kind="ckan", url=peer_env["PREAU_CKAN_URL"], organization=f"bench-h-{tag}",
                 page_size=500, filters={"organization": src_org["name"]})
    fq = f'extras_harvest_source:"b{tag}"'
    for run in ("first", "no-change"):
        before = modified(central, fq)
        t = time.perf_counter()
        report = harvest([src], main_env["PREAU_CKAN_URL"], main_env["PREAU_CKAN_TOKEN"])
        secs = time.perf_counter() - t
        after = modified(central, fq)
        results[("preau", run)] = {"seconds": round(secs, 2), "writes": writes(before, after),
                                   "api_writes": report.writes, "counts": report.sources[0].counts}

    # ---- anchor: ckanapi search (source) | ckanapi load (central), same datasets
    dump = WORK / f"harvest-{tag}.jsonl"
    WORK.mkdir(parents=True, exist_ok=True)
    # ckanapi keeps owner_org ids: load the source organization first (setup, not timed)
    orgs = WORK / f"harvest-{tag}-orgs.jsonl"
    orgs.write_text(json.dumps(peer.action.organization_show(id=src_org["id"])) + "\n", encoding="utf-8")
    done = subprocess.run([CKANAPI, "load", "organizations", "-I", str(orgs), "-r", main_env["PREAU_CKAN_URL"],
                           "-a", main_env["PREAU_CKAN_TOKEN"]], capture_output=True, text=True, env=ENV)
    if done.returncode or "rror" in done.stdout:
        sys.exit("ckanapi load organizations failed: " + done.stdout[-400:].replace(main_env["PREAU_CKAN_TOKEN"], "***"))
    fq_anchor = f"organization:{src_org['name']}"
    for run in ("first", "no-change"):
        before = modified(central, fq_anchor)
        t = time.perf_counter()
        with open(dump, "wb") as fh:
            subprocess.run([CKANAPI, "search", "datasets", f"fq={fq_anchor}", "include_private=false",
                            "-r", peer_env["PREAU_CKAN_URL"]], stdout=fh, check=True, env=ENV)
        done = subprocess.run([CKANAPI, "load", "datasets", "-I", str(dump), "-p", "2",
                               "-r", main_env["PREAU_CKAN_URL"], "-a", main_env["PREAU_CKAN_TOKEN"]],
                              capture_output=True, text=True, env=ENV)
        if done.returncode or "rror" in done.stdout:  # never show the command line: it holds the token
            sys.exit("ckanapi load failed: " + (done.stdout + done.stderr).replace(main_env["PREAU_CKAN_TOKEN"], "***")[-800:])
        secs = time.perf_counter() - t
        after = modified(central, fq_anchor)
        calls = sum(1 for line in (done.stdout + done.stderr).splitlines() if " create " in line or " update " in line)
        results[("ckanapi", run)] = {"seconds": round(secs, 2), "writes": writes(before, after), "api_writes": calls}

    print(f"\nHarvest of a CKAN source with {args.n} datasets into the central CKAN (same machine, one run)")
    print(f"{'tool':<34}{'run':<11}{'time (s)':>9}{'write calls':>13}{'metadata_modified changed':>27}")
    for (tool, run), r in results.items():
        name = "preau harvest" if tool == "preau" else "ckanapi search | ckanapi load"
        print(f"{name:<34}{run:<11}{r['seconds']:>9.1f}{r['api_writes']:>13}{r['writes']:>27}")
    p1, c1 = results[("preau", "first")], results[("ckanapi", "first")]
    p2, c2 = results[("preau", "no-change")], results[("ckanapi", "no-change")]
    print(f"ratio preau/ckanapi: first run {p1['seconds'] / c1['seconds']:.2f}x, "
          f"no-change run {p2['seconds'] / c2['seconds']:.2f}x")
    out = WORK / f"bench_harvest-{tag}.json"
    out.write_text(json.dumps({"n": args.n, "results": {f"{k[0]}:{k[1]}": v for k, v in results.items()}},
                              indent=2), encoding="utf-8")
    print(f"written {out.relative_to(ROOT)}")
    recs = []
    for run, scen, title in (("first", "harvest", "Moissonnage CKAN → CKAN (premier passage) / first harvest"),
                             ("no-change", "reharvest", "Moissonnage sans changement / no-change harvest")):
        p, c = results[("preau", run)], results[("ckanapi", run)]
        recs.append(result(
            scen, title, size={"datasets": args.n},
            preau={"seconds": p["seconds"], "write_calls": p["api_writes"], "datasets_modified": p["writes"],
                   "peak_rss_mb": peak_rss_mb()},
            anchor={"name": "ckanapi search | ckanapi load (ckanext-harvest not installed)", "seconds": c["seconds"],
                    "write_calls": c["api_writes"], "datasets_modified": c["writes"]},
            ratio=c["seconds"] / p["seconds"] if p["seconds"] else None,
            ratio_meaning="temps ckanapi / temps Préau", details={"counts": p.get("counts")}))
    write_result(args.out, recs)


if __name__ == "__main__":
    main()
