"""Bench (scenario ``synth``): ``preau synth`` — the synthetic territory generator at scale.

Runs ``preau synth --departements D --years N`` in a child process (as a user would) and measures in
one run: wall and CPU time, pupils generated per second (pupil rows of every school year / wall
seconds), peak memory (largest single process, and the whole process tree sampled every 0.2 s: the
generator may use worker processes), output size. No anchor exists (no other generator of this data).

    .venv/bin/python bench/bench_synth.py                                   # département 65, 1 year
    .venv/bin/python bench/bench_synth.py --departements all --years 1      # France (≈ 5.7M pupils)
    .venv/bin/python bench/bench_synth.py --departements all --years 1 --pupils 12000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import ROOT, WORK, result, write_result  # noqa: E402  (bench/ is on sys.path)

GOAL = 200_000  # pupils per second, wall


def _tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (from /proc), in kB."""
    parent, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            parent[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--departements", default="65", help="codes separated by commas, or « all » (default 65)")
    ap.add_argument("--years", type=int, default=1, help="school years (default 1)")
    ap.add_argument("--pupils", type=int, default=None, help="pupils in the last school year (default: natural size, "
                    "≈ 5.7M for the whole country; the national build bench uses 12000000)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--synth-out", type=Path, help="output folder (default bench/_work/synth-<départements>)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files (default: removed after)")
    ap.add_argument("--out", type=Path, help="write the result record as JSON here")
    args = ap.parse_args()
    tag = "all" if args.departements == "all" else args.departements.replace(",", "-")[:40]
    out_dir = args.synth_out or WORK / f"synth-{tag}"
    cmd = [str(Path(sys.executable).with_name("preau")), "synth", "--departements", args.departements,
           "--years", str(args.years), "--seed", str(args.seed)] + (
        ["--pupils", str(args.pupils)] if args.pupils else []) + ["--out", str(out_dir)]
    print(f"[synth] {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak_tree = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak_tree[0] = max(peak_tree[0], _tree_rss_kb(proc.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(stdout.decode("utf-8", "replace"), file=sys.stderr)
        sys.exit(f"preau synth failed (exit {proc.returncode})")
    meta = json.loads((out_dir / "synth.json").read_text(encoding="utf-8"))
    counts = meta["counts"]
    pupils = sum(v for k, v in counts.items() if k.startswith("eleves "))
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rate = pupils / seconds
    peak_one = round(after.ru_maxrss / 1024, 1)  # largest single descendant process
    load = os.getloadavg()[0]
    print(f"départements: {len(meta['departements'])}, school years: {len(meta['school_years'])}, "
          f"pupils: {pupils:,}, addresses: {counts.get('adresses', 0):,}, schools: {counts.get('ecoles', 0):,}")
    print(f"wall {seconds:.1f} s, cpu {cpu:.1f} s, {rate:,.0f} pupils/s (goal >= {GOAL:,}: "
          f"{'met' if rate >= GOAL else 'NOT met'}), peak RSS {peak_one:.0f} MB (one process), "
          f"{peak_tree[0] / 1024:.0f} MB (process tree), output {size / 1e9:.2f} GB in {len(files)} files")
    print(f"machine load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs")
    write_result(args.out, result(
        "synth", "Territoire fictif (preau synth) / synthetic territory generator",
        size={"departements": len(meta["departements"]), "school_years": len(meta["school_years"]),
              "pupils": pupils, "addresses": counts.get("adresses", 0), "schools": counts.get("ecoles", 0),
              "sectors": counts.get("secteurs", 0)},
        preau={"seconds": round(seconds, 2), "rate": round(rate), "unit": "élèves/s", "cpu_seconds": round(cpu, 2),
               "peak_rss_mb": peak_one, "peak_rss_tree_mb": round(peak_tree[0] / 1024, 1)},
        anchor=None, goal="≥ 200 000 élèves/s", goal_met=rate >= GOAL,
        details={"command": "preau " + " ".join(cmd[1:-2]), "pupils_per_cpu_second": round(pupils / max(cpu, 1e-9)),
                 "output_bytes": size, "output_files": len(files),
                 "load_average": round(load, 1), "cpus": os.cpu_count()}))
    if not args.keep and args.synth_out is None:
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
