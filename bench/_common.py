"""Shared helpers of the benchmark scripts: the result record, peak memory, the local CKAN's env file.

Every scenario script accepts ``--out PATH`` and writes there one JSON *result record* made by
:func:`result`; ``bench/run.py`` runs the scenarios, gathers their records into
``bench/results.json`` and renders ``bench/results.md``.

Record shape (all figures measured in the same run)::

    {"scenario": "validation", "title": "...", "size": {...},
     "preau": {"seconds": 2.1, "rate": 476000, "unit": "lignes/s", "peak_rss_mb": 410, ...},
     "anchor": {"name": "frictionless-py 5.18", "seconds": 35.5, ...} | null,
     "ratio": 16.9, "ratio_meaning": "anchor seconds / Préau seconds",
     "goal": "≥ 20×", "goal_met": false, "details": {...}}
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"


def result(scenario: str, title: str, *, size: dict, preau: dict, anchor: dict | None = None,
           ratio: float | None = None, ratio_meaning: str = "", goal: str = "",
           goal_met: bool | None = None, details: dict | None = None) -> dict:
    """One scenario's record (see the module docstring)."""
    return {"scenario": scenario, "title": title, "size": size, "preau": preau, "anchor": anchor,
            "ratio": None if ratio is None else round(float(ratio), 2), "ratio_meaning": ratio_meaning,
            "goal": goal, "goal_met": goal_met, "details": details or {}}


def write_result(path: str | os.PathLike | None, record: dict) -> None:
    """Write ``record`` as JSON to ``path`` (no-op when ``path`` is None)."""
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def read_ckan_env(instance: str) -> dict[str, str]:
    """``catalog/.local/<instance>/ckan.env`` (written by ``make ckan-up``) as a dict; exits if missing."""
    path = ROOT / "catalog" / ".local" / instance / "ckan.env"
    if not path.is_file():
        sys.exit(f"{path} missing: run `make ckan-up` first")
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip()
    return env
