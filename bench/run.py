"""Benchmark runner: every scenario of issue #8, side by side with its anchor, in one run.

    .venv/bin/python bench/run.py            # full sizes (make bench): writes bench/results.{json,md}
    .venv/bin/python bench/run.py --quick    # small sizes, < 5 min (make bench-quick, run by CI):
                                             # writes _build/bench-quick/results.{json,md}
    .venv/bin/python bench/run.py --only validation,site

Each scenario is a script of ``bench/`` run as its own process (so its memory is its own) with
``--out FILE``; the script writes result records made by ``bench/_common.py``. The runner gathers
them with the machine description and renders a Markdown table. A scenario that fails (or whose
service is missing) is recorded as failed with the end of its output, and the runner exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# name → (script, full-size arguments, quick arguments); services (CKAN, addok) come from make test-deps
SCENARIOS: dict[str, tuple[str, list[str], list[str]]] = {
    "synth": ("bench_synth.py", ["--departements", "all", "--years", "1", "--pupils", "12000000",
                                 "--synth-out", "bench/_work/national-synth", "--keep"], ["--departements", "65", "--years", "1"]),
    # the national build reuses the synth scenario's France (generated if missing); stopped after 15 min
    # (then built again with the references the first build prepared, BAN and layers: --warm)
    "national": ("bench_national.py", ["--synth", "bench/_work/national-synth", "--budget", "900", "--warm"],
                 ["--quick", "--warm"]),
    "validation": ("bench_validate.py", ["--rows", "1000000"], ["--rows", "100000"]),
    "geo": ("bench_geo.py", ["--n", "1000000", "--addok-n", "20000", "--points", "2000000"],
            ["--n", "20000", "--addok-n", "2000", "--points", "200000"]),
    "disclosure": ("bench_disclosure.py", ["--scale", "1"], ["--scale", "0.02"]),
    "publish": ("bench_publish.py", ["--scale", "20", "--repeat", "3"], ["--scale", "4", "--repeat", "1"]),
    "harvest": ("bench_harvest.py", ["--n", "1000"], ["--n", "100"]),
    "harvest-local": ("bench_harvest_local.py", ["--n", "1000"], ["--n", "200"]),
    "site": ("bench_site.py", ["--schools", "48000"], ["--schools", "2000"]),
}


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        pass
    os_name = ""
    try:
        os_name = next(l.split("=", 1)[1].strip('"') for l in Path("/etc/os-release").read_text().splitlines()
                       if l.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem / 1024 ** 2, 1), "os": os_name,
            "python": platform.python_version(), "load_average_at_start": round(os.getloadavg()[0], 2)}


def run_scenario(name: str, quick: bool, out_dir: Path, timeout: int) -> list[dict]:
    script, full, small = SCENARIOS[name]
    out = out_dir / "records" / f"{name}.json"
    out.unlink(missing_ok=True)
    log = out_dir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [PY, str(ROOT / "bench" / script), *(small if quick else full), "--out", str(out)]
    print(f"[bench] {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        with open(log, "w", encoding="utf-8") as fh:
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT)
        rc = done.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    wall = round(time.perf_counter() - t0, 1)
    if rc == 0 and out.is_file():
        recs = json.loads(out.read_text(encoding="utf-8"))
        recs = recs if isinstance(recs, list) else [recs]
        for r in recs:
            r["status"], r["script_seconds"] = "ok", wall
        print(f"[bench] {name}: ok in {wall} s", flush=True)
        return recs
    tail = log.read_text(encoding="utf-8", errors="replace")[-1500:] if log.exists() else ""
    print(f"[bench] {name}: FAILED ({rc}) after {wall} s; log {log}\n{tail}", flush=True)
    return [{"scenario": name, "status": "failed", "error": f"exit {rc}", "log_tail": tail, "script_seconds": wall}]


def fmt_num(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if v >= 100:
            return f"{v:,.0f}".replace(",", " ")
        return f"{v:.2f}".rstrip("0").rstrip(".") if v < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}".replace(",", " ")
    return str(v)


def figure(side: dict | None) -> str:
    if not side:
        return "—"
    parts = []
    if side.get("seconds") is not None:
        parts.append(f"{fmt_num(float(side['seconds']))} s")
    if side.get("rate") is not None:
        parts.append(f"{fmt_num(float(side['rate']))} {side.get('unit', '/s')}")
    if side.get("peak_rss_mb") is not None:
        parts.append(f"pic {fmt_num(float(side['peak_rss_mb']))} Mo")
    if side.get("stopped_in"):
        parts.append(f"**arrêté pendant « {side['stopped_in']} »** (budget du banc)")
    for key, label in (("bytes_uploaded", "octets envoyés"), ("write_calls", "écritures"),
                       ("cells_hidden", "cellules masquées"), ("pupils_hidden", "élèves masqués")):
        if side.get(key) is not None:
            parts.append(f"{fmt_num(side[key])} {label}")
    return ", ".join(parts) or "—"


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_md(doc: dict) -> str:
    m = doc["machine"]
    lines = [f"# Préau — mesures ({'rapides' if doc['quick'] else 'complètes'})", "",
             f"- Date : {doc['date']}",
             f"- Machine : {m['cpus']} cœurs ({m['cpu_model']}), {m['memory_gib']} Gio, {m['os']}, Python {m['python']}; "
             f"charge au départ {m['load_average_at_start']}",
             f"- Commande : `{doc['command']}` ({fmt_num(doc['seconds'])} s au total)",
             "- Chaque ligne : Préau et son ancre mesurés dans le même passage, sur les mêmes données. "
             "Machine partagée : les temps absolus varient, le rapport est la mesure.", "",
             "| Scénario | Taille | Préau | Ancre | Rapport | Objectif |", "|---|---|---|---|---|---|"]
    for r in doc["scenarios"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['scenario']} | — | **échec** ({r.get('error')}) | — | — | — |")
            continue
        size = ", ".join(f"{k} {fmt_num(v)}" for k, v in r.get("size", {}).items() if not isinstance(v, (dict, list)))
        anchor = r.get("anchor")
        anchor_txt = f"{anchor['name']} : {figure(anchor)}" if anchor else "pas d'ancre"
        ratio = f"×{fmt_num(r['ratio'])}" if r.get("ratio") is not None else "—"
        goal = r.get("goal") or "—"
        if r.get("goal_met") is not None:
            goal += " : " + ("atteint" if r["goal_met"] else "**non atteint**")
            if doc["quick"]:
                goal += " (petite taille : l'objectif vaut pour la taille réelle)"
        lines.append("| " + " | ".join(cell(c) for c in (r["title"], size, figure(r.get("preau")), anchor_txt, ratio, goal))
                     + " |")
    lines += ["", "Rapport : « temps de l'ancre / temps de Préau » (ou débit Préau / débit de l'ancre) ; "
              "> 1 = Préau plus rapide. Détails de chaque scénario (étapes, mémoire, pertes d'information) "
              "dans `results.json`."]
    stages = next((r for r in doc["scenarios"] if r.get("scenario") == "national" and r.get("status") == "ok"), None)
    if stages and stages.get("details", {}).get("stages"):
        lines += ["", "## Scénario `national` : temps et mémoire par étape", "",
                  "| Étape | Temps (s) | CPU (s, processus + travailleurs) | Cœurs occupés | Pic RSS (Mo) |",
                  "|---|---|---|---|---|"]
        for st in stages["details"]["stages"]:
            name = st["stage"] + (" — arrêtée (budget), non terminée" if st.get("stopped") else "")
            cpu = fmt_num(float(st["cpu_seconds"])) if st.get("cpu_seconds") is not None else "—"
            busy = f"{st['cores_busy']:.2f}" if st.get("cores_busy") is not None else "—"
            lines.append(f"| {name} | {fmt_num(float(st['seconds']))} | {cpu} | {busy} | "
                         f"{fmt_num(float(st.get('peak_rss_mb') or 0))} |")
        warm = stages["details"].get("warm")
        if warm:
            lines += ["", f"Reconstruction à chaud (même espace de travail, références préparées — BAN, couches des "
                      f"secteurs et des communes — relues depuis `_build/cache`, {fmt_num(float(warm['cache_mb']))} Mo ; "
                      f"mêmes sorties : "
                      f"{'oui' if warm['same_outputs'] else '**non**'}) / warm re-build : "
                      f"**{fmt_num(float(warm['seconds']))} s**, pic {fmt_num(float(warm['peak_rss_mb']))} Mo. "
                      "L'objectif est jugé sur la première construction, à froid.", "",
                      "| Étape (à chaud) | Temps (s) | CPU (s) | Pic RSS (Mo) |", "|---|---|---|---|"]
            for st in warm["stages"]:
                cpu = fmt_num(float(st["cpu_seconds"])) if st.get("cpu_seconds") is not None else "—"
                lines.append(f"| {st['stage']} | {fmt_num(float(st['seconds']))} | {cpu} | "
                             f"{fmt_num(float(st.get('peak_rss_mb') or 0))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI); results in _build/bench-quick/")
    ap.add_argument("--only", default="", help="comma-separated scenarios (default: all): " + ",".join(SCENARIOS))
    ap.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    ap.add_argument("--out-dir", type=Path, help="where results.json / results.md go")
    ap.add_argument("--timeout", type=int, default=None, help="per-scenario time limit, seconds")
    ap.add_argument("--render", action="store_true", help="only re-render results.md from results.json")
    args = ap.parse_args(argv)
    out_dir = args.out_dir or (ROOT / "_build" / "bench-quick" if args.quick else ROOT / "bench")
    if args.render:
        doc = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
        (out_dir / "results.md").write_text(render_md(doc), encoding="utf-8")
        return 0
    names = [n for n in (args.only.split(",") if args.only else SCENARIOS) if n]
    skip = [n for n in args.skip.split(",") if n]
    unknown = [n for n in names + skip if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    names = [n for n in names if n not in skip]
    work = out_dir if args.quick or args.out_dir else ROOT / "bench" / "_work" / "run"
    timeout = args.timeout or (600 if args.quick else 3600)
    doc = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick,
           "command": "make bench-quick" if args.quick else "make bench", "machine": machine(), "scenarios": []}
    t0 = time.perf_counter()
    for name in names:
        doc["scenarios"] += run_scenario(name, args.quick, work, timeout)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.only and (out_dir / "results.json").is_file():  # a partial run updates the other scenarios' rows
        old = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
        kept = [r for r in old.get("scenarios", []) if _FAMILY.get(r["scenario"], r["scenario"]) not in names]
        doc["scenarios"] = sorted(kept + doc["scenarios"], key=lambda r: _order(r["scenario"]))
        doc["partial_runs"] = old.get("partial_runs", []) + [{"date": doc["date"], "only": names}]
    (out_dir / "results.json").write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out_dir / "results.md").write_text(render_md(doc), encoding="utf-8")
    failed = [r["scenario"] for r in doc["scenarios"] if r.get("status") != "ok"]
    print(f"[bench] {len(doc['scenarios']) - len(failed)} ok, {len(failed)} failed in {doc['seconds']} s → "
          f"{(out_dir / 'results.md').relative_to(ROOT) if out_dir.is_relative_to(ROOT) else out_dir}")
    return 1 if failed else 0


# records named after their script's scenario (geo → geocoding, assignment; publish → publish, republish…)
_FAMILY = {"geocoding": "geo", "assignment": "geo", "republish": "publish", "reharvest": "harvest"}


def _order(scenario: str) -> int:
    fam = _FAMILY.get(scenario, scenario)
    return list(SCENARIOS).index(fam) if fam in SCENARIOS else len(SCENARIOS)


if __name__ == "__main__":
    sys.exit(main())
