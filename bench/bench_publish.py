"""Bench: publishing a demo-sized catalog to the local CKAN, Préau vs ``ckanapi load datasets``.

Side by side, in one run, on the same files: a first publish and a no-change re-publish, each timed,
with the bytes uploaded. Préau compares sha256 with the resource ``hash`` and uploads nothing when
nothing changed; ``ckanapi load datasets --upload-resources`` (the ckanapi CLI) re-uploads every file
(ckan#3607). Préau also loads the all-years tables into the DataStore, which ckanapi does not.

Usage (CKAN from ``make ckan-up``)::

    .venv/bin/python bench/bench_publish.py [--scale 20] [--instance main]
    .venv/bin/python bench/bench_publish.py --workspace . --data _build/data   # the real demo build

Prints a table and writes JSON into ``bench/_work/`` (git-ignored). The tokens are read from
``catalog/.local/<instance>/ckan.env`` and never printed (ckanapi needs its key on its command
line: run this on the local test CKAN only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
sys.path.insert(0, str(ROOT / "tests"))
from _common import peak_rss_mb, read_ckan_env, result, write_result  # noqa: E402  (bench/ is on sys.path)


class CountingServer:
    """Serves the package files over loopback HTTP (ckanapi uploads from URLs) and counts bytes served."""

    def __init__(self, root: Path):
        self.bytes = 0
        counter = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def copyfile(self, source, outputfile):
                data = source.read()
                counter.bytes += len(data)
                outputfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def ckanapi_jsonl(packages, publisher: str, base_url: str, out: Path, served: Path) -> tuple[Path, Path]:
    """Organization + dataset JSON lines for ``ckanapi load``: same metadata and files as Préau."""
    from preau.catalog.ckan import desired_dataset, desired_resource

    org = packages[0].meta["publisher"]
    orgs = out / "organizations.jsonl"
    orgs.write_text(json.dumps({"name": publisher, "title": org["name"]["fr"]}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    lines = []
    for pkg in packages:
        want = desired_dataset(pkg)
        name = want["name"].replace(pkg.publisher, publisher, 1)
        resources = []
        for f in pkg.files:
            res = desired_resource(pkg, f)
            res.update({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{f.path}")), "url_type": "upload",
                        "url": f"{base_url}/{pkg.folder.relative_to(served).as_posix()}/{f.path}"})
            resources.append(res)
        lines.append(json.dumps({
            "name": name, "title": want["title"], "notes": want["notes"], "owner_org": publisher,
            "private": want["private"], "license_id": want["license_id"], "version": want["version"],
            "tags": [{"name": t} for t in want["tags"]],
            "extras": [{"key": k, "value": v} for k, v in sorted(want["extras"].items())],
            "resources": resources}, ensure_ascii=False))
    datasets = out / "datasets.jsonl"
    datasets.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return orgs, datasets


def run_ckanapi(kind: str, jsonl: Path, url: str, token: str, upload: bool) -> float:
    exe = Path(sys.executable).parent / "ckanapi"
    cmd = [str(exe), "load", kind, "-I", str(jsonl), "-r", url, "-a", token, "-p", "1", "-q"]
    if upload:
        cmd.insert(3, "--upload-resources")
    t0 = time.perf_counter()
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # workers run `ckanapi`
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    elapsed = time.perf_counter() - t0
    text = (proc.stdout + proc.stderr).replace(token, "***")
    if proc.returncode != 0 or '"NotAuthorized"' in text or "ValidationError" in text:
        sys.exit(f"ckanapi load {kind} failed (exit {proc.returncode}):\n{text[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instance", default="main")
    ap.add_argument("--scale", type=int, default=20, help="fixture size (communes = 8 × scale, max 469)")
    ap.add_argument("--workspace", type=Path, help="use an existing workspace + build instead of the fixture")
    ap.add_argument("--data", type=Path, help="build folder (_build/data) of --workspace")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions (medians are reported)")
    ap.add_argument("--out", type=Path, help="write the result records (first publish, no-change) as JSON here")
    args = ap.parse_args()

    from preau.catalog.ckan import publish_ckan
    from preau.package import build_packages

    import fixture_build

    env = read_ckan_env(args.instance)
    url, token = env["PREAU_CKAN_URL"], env["PREAU_CKAN_TOKEN"]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    run = WORK / f"publish-{stamp}"
    run.mkdir(parents=True, exist_ok=True)
    tag = os.urandom(3).hex()
    if args.workspace:
        ws, data = args.workspace, args.data or args.workspace / "_build" / "data"
        source = "workspace " + str(ws)
    else:
        ws, data = fixture_build.make(run / "ws", f"bench-{tag}-p", scale=args.scale,
                                      years=("2024-2025", "2025-2026", "2026-2027"))
        source = f"fixture scale {args.scale}"
    packages = build_packages(ws, data, run / "packages").packages
    files = sum(len(p.files) for p in packages)
    size = sum(f.bytes for p in packages for f in p.files)
    rows = sum(f.rows or 0 for p in packages for f in p.files if f.datastore)
    print(f"catalog: {len(packages)} datasets, {files} files, {size} bytes, {rows} DataStore rows ({source})")

    results = []

    def bench_preau() -> None:
        for label in ("first publish", "no-change re-publish"):
            t0 = time.perf_counter()
            report = publish_ckan(packages, url, token)
            elapsed = time.perf_counter() - t0
            results.append({"tool": "preau", "run": label, "seconds": round(elapsed, 3), "rep": rep,
                            "bytes_uploaded": report.bytes_uploaded, "writes": report.writes})

    def bench_ckanapi() -> None:
        # ckanapi load datasets --upload-resources, same files, another organization
        server = CountingServer(run / "packages")
        try:
            orgs, datasets = ckanapi_jsonl(packages, f"bench-{tag}-c{rep}", server.url, run, run / "packages")
            run_ckanapi("organizations", orgs, url, token, upload=False)
            for label in ("first publish", "no-change re-publish"):
                before = server.bytes
                elapsed = run_ckanapi("datasets", datasets, url, token, upload=True)
                results.append({"tool": "ckanapi load", "run": label, "seconds": round(elapsed, 3), "rep": rep,
                                "bytes_uploaded": server.bytes - before, "writes": None})
        finally:
            server.close()

    # the machine is shared and noisy: repeat, alternate which tool goes first, report medians
    repeat = 1 if args.workspace else args.repeat  # a real workspace has one publisher: one first publish
    for rep in range(repeat):
        if rep:  # a fresh publisher (organization) for each repetition: a real first publish each time
            ws2, data2 = fixture_build.make(run / f"ws{rep}", f"bench-{tag}-p{rep}", scale=args.scale,
                                            years=("2024-2025", "2025-2026", "2026-2027"))
            packages = build_packages(ws2, data2, run / "packages" / f"r{rep}").packages
        order = (bench_preau, bench_ckanapi) if rep % 2 == 0 else (bench_ckanapi, bench_preau)
        for step in order:
            step()
    raw = results
    results = []
    for tool in ("preau", "ckanapi load"):
        for label in ("first publish", "no-change re-publish"):
            runs = [r for r in raw if r["tool"] == tool and r["run"] == label]
            results.append({"tool": tool, "run": label,
                            "seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                            "bytes_uploaded": int(statistics.median(r["bytes_uploaded"] for r in runs)),
                            "all_seconds": [r["seconds"] for r in runs]})
    by = {(r["tool"], r["run"]): r for r in results}
    print(f"\n{'tool':<14}{'run':<24}{'seconds':>10}{'bytes uploaded':>16}")
    for r in results:
        print(f"{r['tool']:<14}{r['run']:<24}{r['seconds']:>10.2f}{r['bytes_uploaded']:>16}")
    ratios = {}
    for label in ("first publish", "no-change re-publish"):
        p, c = by[("preau", label)], by[("ckanapi load", label)]
        ratios[label] = {"time_ckanapi_over_preau": round(c["seconds"] / p["seconds"], 2) if p["seconds"] else None,
                         "bytes_ckanapi": c["bytes_uploaded"], "bytes_preau": p["bytes_uploaded"]}
        print(f"ratio ckanapi/preau, {label}: time ×{ratios[label]['time_ckanapi_over_preau']}, "
              f"bytes {c['bytes_uploaded']} vs {p['bytes_uploaded']}")
    out = WORK / f"bench_publish-{stamp}.json"
    out.write_text(json.dumps({"when": stamp, "ckan": url, "source": source, "datasets": len(packages),
                               "files": files, "bytes": size, "datastore_rows": rows, "results": results,
                               "raw": raw, "repeat": repeat,
                               "ratios": ratios}, indent=2), encoding="utf-8")
    print(f"\nJSON: {out.relative_to(ROOT)}")
    size_info = {"datasets": len(packages), "files": files, "bytes": size, "datastore_rows": rows, "source": source,
                 "repeat": repeat}
    recs = []
    for label, scen, title in (("first publish", "publish", "Publication CKAN (première) / first CKAN publish"),
                               ("no-change re-publish", "republish",
                                "Republication sans changement / no-change re-publish")):
        p, c = by[("preau", label)], by[("ckanapi load", label)]
        recs.append(result(
            scen, title, size=size_info,
            preau={"seconds": p["seconds"], "bytes_uploaded": p["bytes_uploaded"], "peak_rss_mb": peak_rss_mb()},
            anchor={"name": "ckanapi load datasets --upload-resources", "seconds": c["seconds"],
                    "bytes_uploaded": c["bytes_uploaded"]},
            ratio=ratios[label]["time_ckanapi_over_preau"], ratio_meaning="temps ckanapi / temps Préau",
            details={"all_seconds_preau": p["all_seconds"], "all_seconds_ckanapi": c["all_seconds"],
                     "datastore_loaded_by_preau_only": True}))
    write_result(args.out, recs)
    for folder in run.glob("ws*"):
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
