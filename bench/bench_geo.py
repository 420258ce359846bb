"""Bench: Préau's offline geocoder side by side with addok on the same BAN reference, and sector
assignment (point in polygon) side by side with geopandas.sjoin.

    make bench-geo                                   # N=20,000 addresses (default, small)
    .venv/bin/python bench/bench_geo.py --n 1000000  # the 1M figure of the report

addok (PyPI addok, addok-fr, addok-france, addok-csv) runs in its own virtualenv (``.tools/addok``,
made by ``make bench-geo-deps``) against a Redis started here on a loopback port; it indexes the BAN
file of the synthetic territory, exactly the reference Préau uses. Input addresses are BAN addresses
written the way families write them (upper case, abbreviations, typos, missing numbers): no person
data, the synthetic generator makes everything. Prints one JSON report; nothing is asserted.

Measured 2026-11-23 on the shared 2-core machine (load ~7), département 65 (95,658 BAN addresses),
``--n 1000000 --addok-n 20000``: Préau 170,000 addresses/s (1M in 5.9 s) vs addok 641/s (2 worker
processes, in-process search, Redis local) → ×265; same BAN point on 99.95 % of the rows both
geocode to a house number (the 10 others are typos across words, e.g. « lA'dour »: Préau finds
the right address on all 10, addok on none), same result type on 100 %. Sector assignment, 1M random points, 285
sectors: 2.3M points/s (1.3M/s including the index build) vs geopandas.sjoin 380k/s → ×6.2,
identical assignments. Under heavier load the same run gave ×204 (81k/s vs 396/s) and ×4.9.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
from _common import peak_rss_mb, result, write_result  # noqa: E402  (bench/ is on sys.path)
ADDOK_VENV = ROOT / ".tools" / "addok"

ABBR = {"Rue": "R.", "Avenue": "Av.", "Boulevard": "Bd", "Chemin": "Ch.", "Impasse": "Imp.", "Place": "Pl.",
        "Allée": "All.", "Route": "Rte", "Lotissement": "Lot.", "Square": "Sq.", "Saint": "St"}


def noisy_addresses(ban: pl.DataFrame, n: int, seed: int = 7) -> tuple[pl.DataFrame, np.ndarray]:
    """n addresses drawn from the BAN file, written with realistic noise. Returns (input, truth ids)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, ban.height, n)
    sample = ban[idx]
    num = sample["numero"].to_numpy().astype(str)
    rep = sample["rep"].fill_null("").to_numpy().astype(str)
    street = sample["nom_voie"].to_numpy().astype(object)
    kind = rng.choice(6, n, p=[0.70, 0.12, 0.08, 0.05, 0.03, 0.02])
    out = np.empty(n, dtype=object)
    import unicodedata

    for i in range(n):
        s = street[i]
        k = kind[i]
        if k == 1:
            s = s.upper()
        elif k == 2:
            first, _, rest = s.partition(" ")
            s = f"{ABBR.get(first, first)} {rest}".replace("Saint-", "St-")
        elif k == 3:
            s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
        elif k == 5 and len(s) > 8:
            j = int(rng.integers(len(s) // 2, len(s) - 2))
            s = s[:j] + s[j + 1] + s[j] + s[j + 2:]
        number = num[i] + (f" {rep[i]}" if rep[i] else "")
        out[i] = s if k == 4 else f"{number} {s}"
    frame = pl.DataFrame({"adresse": out.astype(str), "code_postal": sample["code_postal"],
                          "commune": sample["nom_commune"]})
    return frame, sample["id"].to_numpy()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_addok(work: Path, ban: pl.DataFrame, inp: pl.DataFrame, workers: int) -> dict:
    """Index the BAN file in addok (local Redis) and time its searches. Returns numbers or the reason."""
    py = ADDOK_VENV / "bin" / "python"
    redis = shutil.which("redis-server")
    if not py.exists():
        return {"error": f"addok virtualenv missing ({py}): run `make bench-geo-deps`"}
    if not redis:
        return {"error": "redis-server not installed: run `make bench-geo-deps` (apt-get install redis-server)"}
    port = free_port()
    rdir = work / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(rdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "ADDOK_CONFIG_MODULE": str(ROOT / "bench" / "addok_conf.py"), "REDIS_HOST": "127.0.0.1",
           "REDIS_PORT": str(port), "ADDOK_WORKERS": str(workers)}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        from preau.geo.addok import ban_to_addok

        ndjson = work / "ban-addok.ndjson"
        n_streets = ban_to_addok(ban, ndjson)
        addok = str(ADDOK_VENV / "bin" / "addok")
        t0 = time.perf_counter()
        subprocess.run([addok, "batch", str(ndjson)], env=env, check=True, capture_output=True)
        subprocess.run([addok, "ngrams"], env=env, check=True, capture_output=True)
        index_s = time.perf_counter() - t0
        src, dst = work / "addok-in.csv", work / "addok-out.csv"
        inp.write_csv(src)
        r = subprocess.run([str(py), str(ROOT / "bench" / "addok_worker.py"), str(src), str(dst), str(workers)],
                           env=env, check=True, capture_output=True, text=True)
        timing = json.loads(r.stdout.strip().splitlines()[-1])
        res = pl.read_csv(dst, infer_schema=False)
        # The adapter, against a real addok HTTP server (addok-csv's /search/csv/), on a small sample.
        adapter = _adapter_check(env, addok, inp.head(200))
        return {"index_seconds": round(index_s, 1), "streets": n_streets, "seconds": timing["seconds"],
                "rows": timing["rows"], "results": res, "adapter": adapter}
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"")[-400:]
        return {"error": f"addok failed: {exc.cmd[:2]} → {tail!r}"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _adapter_check(env: dict, addok: str, sample: pl.DataFrame) -> dict:
    from preau.geo.addok import AddokClient

    port = free_port()
    server = subprocess.Popen([addok, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        res = AddokClient(f"http://127.0.0.1:{port}").geocode(sample, filter_city=False)
        return {"rows": res.height, "housenumber": int((res["result_type"] == "housenumber").sum())}
    except Exception as exc:  # report, do not crash the bench
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        server.terminate()
        server.wait(timeout=10)


def bench_assignment(sectors, n: int, seed: int = 11) -> dict:
    """Points in the sectors' bounding box: Préau's SectorIndex vs geopandas.sjoin(predicate='within')."""
    import geopandas as gpd
    import shapely

    from preau.geo import SectorIndex

    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = sectors.total_bounds
    x = rng.uniform(minx, maxx, n)
    y = rng.uniform(miny, maxy, n)
    t0 = time.perf_counter()
    index = SectorIndex.build(sectors, eager_grid=True)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = index.lookup(x, y, max_distance=0.0)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pts = gpd.GeoDataFrame(geometry=shapely.points(x, y), crs=sectors.crs)
    joined = gpd.sjoin(pts, sectors[["geometry"]], predicate="within", how="left")
    joined = joined[~joined.index.duplicated()]
    sj_s = time.perf_counter() - t0
    theirs = joined["index_right"].fillna(-1).astype(int).to_numpy()
    return {"points": n, "sectors": len(sectors), "vertices": int(shapely.get_num_coordinates(sectors.geometry.values).sum()),
            "index_build_seconds": round(build_s, 3),
            "preau_points_per_s": round(n / ours_s), "preau_points_per_s_incl_build": round(n / (ours_s + build_s)),
            "sjoin_points_per_s": round(n / sj_s),
            "ratio_vs_sjoin": round(sj_s / ours_s, 2), "agreement": round(float((ours == theirs).mean()), 5)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="addresses to geocode (report: 1,000,000)")
    ap.add_argument("--addok-n", type=int, default=20_000,
                    help="addresses for addok (its rate is per address; 1M would take ~30 min here)")
    ap.add_argument("--points", type=int, default=1_000_000, help="points for the sector assignment bench")
    ap.add_argument("--departements", default="65")
    ap.add_argument("--workers", type=int, default=2, help="addok search processes (the machine's cores)")
    ap.add_argument("--no-addok", action="store_true")
    ap.add_argument("--work", type=Path, default=ROOT / "_build" / "bench-geo")
    ap.add_argument("--out", type=Path, help="write the result records (geocoding, assignment) as JSON here")
    args = ap.parse_args(argv)

    from preau.geo import build_sectors, geocode, load_reference
    from preau.synth import generate

    work = args.work
    synth = work / "synth"
    deps = [d.strip() for d in args.departements.split(",")]
    meta = synth / "synth.json"
    if not meta.exists() or json.loads(meta.read_text())["departements"] != deps:
        generate(synth, deps, seed=2026, years=1)
    ban_files = sorted(synth.glob("adresses-*.csv"))
    ban = pl.concat([pl.read_csv(p, separator=";", infer_schema=False) for p in ban_files])
    inp, truth = noisy_addresses(ban, args.n)

    t0 = time.perf_counter()
    ref = load_reference(ban_files)
    ref_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = geocode(inp, ref)
    ours_s = time.perf_counter() - t0
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "reference": {"addresses": ref.size, "load_seconds": round(ref_s, 2)},
        "preau": {"addresses": args.n, "seconds": round(ours_s, 3), "addresses_per_s": round(args.n / ours_s),
                  "exact_point": round(float((ours["result_id"].to_numpy() == truth).mean()), 4),
                  "types": dict(ours.group_by("result_type").len().iter_rows())},
    }
    if not args.no_addok:
        n_addok = min(args.addok_n or args.n, args.n)
        a = run_addok(work / "addok", ban, inp.head(n_addok), args.workers)
        if "error" in a:
            report["addok"] = {"error": a["error"]}
        else:
            res = a.pop("results")
            rate = a["rows"] / a["seconds"]
            ids = res["result_id"].to_numpy()
            mine = ours["result_id"].head(n_addok).to_numpy()
            both_hn = (res["result_type"] == "housenumber").to_numpy() & (ours["result_type"].head(n_addok) == "housenumber").to_numpy()
            # Agreement: same BAN point, else within 1 m (street/commune results have no BAN id in addok).
            lon_a = res["longitude"].cast(pl.Float64, strict=False).to_numpy()
            lat_a = res["latitude"].cast(pl.Float64, strict=False).to_numpy()
            lon_o, lat_o = ours["lon"].head(n_addok).to_numpy(), ours["lat"].head(n_addok).to_numpy()
            close = (np.abs(lon_a - lon_o) < 1.5e-5) & (np.abs(lat_a - lat_o) < 1e-5)
            report["addok"] = {**a, "addresses_per_s": round(rate), "workers": args.workers,
                               "exact_point": round(float((ids == truth[:n_addok]).mean()), 4),
                               "types": dict(res.group_by("result_type").len().iter_rows())}
            report["comparison"] = {
                "speed_ratio_preau_vs_addok": round(report["preau"]["addresses_per_s"] / rate, 1),
                "agreement_same_point": round(float(((ids == mine) | close).mean()), 4),
                "agreement_type": round(float((res["result_type"].to_numpy() == ours["result_type"].head(n_addok).to_numpy()).mean()), 4),
                "both_housenumber": round(float(both_hn.mean()), 4),
                "agreement_same_point_when_both_housenumber": round(float((ids == mine)[both_hn].mean()), 4),
                "preau_exact_point_same_sample": round(float((mine == truth[:n_addok]).mean()), 4),
            }
    built = build_sectors(synth / "carte-scolaire.csv", ref, synth / "communes.geojson")
    report["assignment"] = bench_assignment(built.sectors, args.points)
    print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    write_result(args.out, records(report, args))
    return report


def records(report: dict, args) -> list[dict]:
    """The two scenarios of this script as result records (bench/_common.py)."""
    p, a, asg = report["preau"], report.get("addok"), report["assignment"]
    comp = report.get("comparison", {})
    anchor = None
    if a and "error" not in a:
        anchor = {"name": "addok (+ addok-fr, addok-france, Redis)", "rate": a["addresses_per_s"],
                  "unit": "adresses/s", "addresses": a["rows"], "seconds": a["seconds"], "workers": a["workers"]}
    geocoding = result(
        "geocoding", "Géocodage hors ligne (BAN) / offline geocoding",
        size={"addresses": args.n, "reference_addresses": report["reference"]["addresses"],
              "departements": args.departements},
        preau={"seconds": p["seconds"], "rate": p["addresses_per_s"], "unit": "adresses/s",
               "peak_rss_mb": peak_rss_mb()},
        anchor=anchor, ratio=comp.get("speed_ratio_preau_vs_addok"),
        ratio_meaning="débit Préau / débit addok (adresses/s)",
        details={"exact_point_preau": p["exact_point"], **comp, "addok_error": (a or {}).get("error")})
    assignment = result(
        "assignment", "Affectation aux secteurs (point dans polygone) / sector assignment",
        size={"points": asg["points"], "sectors": asg["sectors"], "vertices": asg["vertices"]},
        preau={"rate": asg["preau_points_per_s"], "unit": "points/s",
               "rate_incl_index_build": asg["preau_points_per_s_incl_build"]},
        anchor={"name": "geopandas.sjoin(predicate='within')", "rate": asg["sjoin_points_per_s"], "unit": "points/s"},
        ratio=asg["ratio_vs_sjoin"], ratio_meaning="temps sjoin / temps Préau",
        details={"agreement": asg["agreement"]})
    return [geocoding, assignment]


if __name__ == "__main__":
    main()
