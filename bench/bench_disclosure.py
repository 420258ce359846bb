"""Secondary suppression + audit on a national-size school × level hierarchy, side by side with
the hypercube baseline on the same table.

    .venv/bin/python bench/bench_disclosure.py               # small run (scale 0.02)
    .venv/bin/python bench/bench_disclosure.py --scale 1     # national: ~48k schools, ~35k communes
    .venv/bin/python bench/bench_disclosure.py --out result.json   # + the result record (bench/_common.py)

Each method runs in its own process (honest peak RSS): protection (for Préau: primary, local
pass, audit-driven repair, its own audit with witnesses), then an independent audit of the
published form only (the proof, as ``preau audit`` runs it). Reports wall and CPU time (the machine
is shared: CPU time is the steadier figure), peak memory, information loss, audit verdict.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import result, write_result  # noqa: E402

SCHOOLS, COMMUNES = 48_000, 35_000


def run(method: str, scale: float, seed: int, queue) -> None:
    from preau.disclosure import ProtectionStats, protect, verify
    from preau.disclosure.generate import school_level_tables

    school, _ = school_level_tables(int(SCHOOLS * scale), int(COMMUNES * scale), seed=seed)
    if method != "modular":
        # the baseline leaves many cells unprotected: bound the exact LPs spent naming them (a cell
        # not proven protected still fails the audit; "unprotected" then counts proven + unproven)
        from preau.disclosure import attack

        attack.MAX_CELL_LPS = 300
        attack.MAX_EXACT_ROUNDS = 2
    t0 = time.perf_counter()
    c0 = time.process_time()
    stats = ProtectionStats(method)
    try:
        out = protect([school], method=method, stats=stats)
        error = None
    except Exception as exc:  # noqa: BLE001 - the bench reports, never hides
        out, error = None, str(exc)[:200]
    t_protect = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = verify(out) if out else None
    t_audit = time.perf_counter() - t1
    cpu = time.process_time() - c0
    f = school.frame
    pupils = int(f.filter((f["uai"] == "TOTAL") & (f["niveau"] == "TOTAL"))["effectif"][0])
    queue.put({
        "method": method, "cells": f.height, "pupils": pupils,
        "primary": stats.primary, "cells_hidden": stats.hidden, "pupils_hidden": stats.pupils_hidden,
        "protect_s": round(t_protect, 2), "audit_s": round(t_audit, 2),
        "total_s": round(t_protect + t_audit, 2), "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "passes_audit": bool(report and report.ok),
        "unprotected": None if report is None else report.to_dict()["unprotected"],
        "audit_blocks": None if report is None else report.blocks,
        "largest_block": None if report is None else report.largest_block,
        "timings": {k: round(x, 2) for k, x in stats.timings.items()},
        "repair_rounds": stats.repair_rounds, "repair_lps": stats.repair_lps, "error": error,
    })


def record(rows: list[dict], scale: float, seed: int) -> dict:
    """The bench result record: Préau (modular) against the hypercube baseline, same table, same run."""
    by = {r["method"]: r for r in rows}
    p, b = by.get("modular"), by.get("hypercube")

    def side(r: dict | None) -> dict | None:
        if r is None:
            return None
        return {"seconds": r["total_s"], "protect_seconds": r["protect_s"], "audit_seconds": r["audit_s"],
                "cpu_seconds": r["cpu_s"], "peak_rss_mb": r["peak_rss_mb"], "cells_hidden": r["cells_hidden"],
                "pupils_hidden": r["pupils_hidden"], "passes_audit": r["passes_audit"],
                "unprotected": r["unprotected"]}

    anchor = side(b)
    if anchor is not None:
        anchor = {"name": "hypercube (baseline implemented in preau.disclosure.hypercube)", **anchor}
    ratio = b["total_s"] / p["total_s"] if p and b and p["total_s"] else None
    details = {m: {"cells_hidden": r["cells_hidden"], "pupils_hidden": r["pupils_hidden"],
                   "passes_audit": r["passes_audit"], "unprotected": r["unprotected"],
                   "peak_rss_mb": r["peak_rss_mb"], "timings": r["timings"]} for m, r in by.items()}
    if p and b:
        details["loss_ratio"] = {"cells": round(p["cells_hidden"] / max(b["cells_hidden"], 1), 4),
                                 "pupils": round(p["pupils_hidden"] / max(b["pupils_hidden"], 1), 4)}
    first = rows[0]
    return result(
        "disclosure",
        "Secret secondaire + audit LP, tableau école × niveau (échelle {} du national), Préau contre "
        "l'hypercube".format(scale),
        size={"scale": scale, "seed": seed, "schools": int(SCHOOLS * scale), "communes": int(COMMUNES * scale),
              "cells": first["cells"], "pupils": first["pupils"], "primary": first["primary"]},
        preau=side(p) or {}, anchor=anchor, ratio=ratio, ratio_meaning="temps hypercube / temps Préau",
        goal="≤ 60 s, moins de cellules ET d'élèves masqués que l'hypercube, audit réussi",
        goal_met=bool(p and b and p["passes_audit"] and p["cells_hidden"] < b["cells_hidden"]
                      and p["pupils_hidden"] < b["pupils_hidden"] and p["total_s"] <= 60),
        details=details)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=0.02, help="fraction of the national size (1 = national)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="modular,hypercube")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=None, help="write the result record (JSON, bench/_common.py) here")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for method in args.methods.split(","):
        q = ctx.Queue()
        p = ctx.Process(target=run, args=(method, args.scale, args.seed, q))
        p.start()
        rows.append(q.get())
        p.join()
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    write_result(args.out, record(rows, args.scale, args.seed))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    keys = ["cells", "pupils", "primary", "cells_hidden", "pupils_hidden", "protect_s", "audit_s", "total_s", "cpu_s",
            "peak_rss_mb", "passes_audit", "unprotected", "audit_blocks", "largest_block", "repair_rounds",
            "repair_lps"]
    print(f"scale {args.scale} ({int(SCHOOLS * args.scale)} schools, {int(COMMUNES * args.scale)} communes), "
          f"seed {args.seed}")
    print(f"{'':16}" + "".join(f"{r['method']:>16}" for r in rows))
    for k in keys:
        print(f"{k:16}" + "".join(f"{str(r[k]):>16}" for r in rows))
    if len(rows) == 2 and rows[1]["cells_hidden"]:
        a, b = rows
        print(f"loss ratio {a['method']}/{b['method']}: cells {a['cells_hidden'] / b['cells_hidden']:.3f}, "
              f"pupils {a['pupils_hidden'] / max(b['pupils_hidden'], 1):.3f}; "
              f"time ratio {a['total_s'] / max(b['total_s'], 1e-9):.2f}")
    for r in rows:
        print(r["method"], "timings", r["timings"], r["error"] or "")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
