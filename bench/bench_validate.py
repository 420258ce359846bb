"""Bench: Préau's validator vs frictionless-py on the same pupil-like file, in one run.

    .venv/bin/python bench/bench_validate.py               # 100,000 rows (default, ~1 min)
    .venv/bin/python bench/bench_validate.py --rows 1000000 --out result.json

Writes a CSV in the canonical ``eleves-premier-degre`` form (23 columns, personal fields filled with
random tokens — no realistic personal value), plants errors (bad dates, wrong levels / sex / postcode,
missing required names, broken booleans, duplicate primary keys, ragged rows, wrong UAI check
letters), then validates it with frictionless-py and with ``preau validate``, each as a whole
subprocess (interpreter start, imports, reading, checking, JSON report, exit). Préau runs as the
``preau validate FILE --schema eleves-premier-degre --json`` console command (its ``main()``), its
JSON report written to a file. Prints rows/s of each, the ratio (wall and CPU time), peak memory
(VmHWM) of each process, and compares the error sets (type, row, field, note): they must be
identical, apart from Préau's French code checks (``preau:check``, the wrong UAI check letters),
which frictionless does not know (counted separately). ``--out PATH`` writes the result record
(``bench/_common.py``).

Both tools start from compiled bytecode: ``uv sync --compile-bytecode`` compiles the installed
packages (frictionless, polars…); Préau's own sources (an editable install) are compiled here first,
as an installed wheel would be (this matters where ``PYTHONDONTWRITEBYTECODE`` is set).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, result, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "eleves-premier-degre" / "schema.json"
PY = sys.executable

# Each runner prints {"maxrss_kb": …} on its last stderr line and writes error keys to a file.
FRICTIONLESS_RUNNER = r"""
import json, resource, sys
from pathlib import Path
from frictionless import Dialect, Resource, Schema, formats
path, schema, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
control = formats.CsvControl(delimiter=",", quote_char='"', double_quote=True, skip_initial_space=False)
res = Resource(path=path.name, basepath=str(path.parent), schema=Schema.from_descriptor(json.loads(Path(schema).read_text())), encoding="utf-8",
               format="csv", dialect=Dialect(header_rows=[1], controls=[control]))
report = res.validate(limit_errors=0)
errors = [e for t in report.tasks for e in t.errors]
keys = [[e.type, getattr(e, "row_number", None), getattr(e, "field_name", None), e.note] for e in errors]
Path(out).write_text(json.dumps({"valid": report.valid, "keys": keys}))
ru = resource.getrusage(resource.RUSAGE_SELF)
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"maxrss_kb": hwm, "cpu": ru.ru_utime + ru.ru_stime}), file=sys.stderr)
"""

# The console command itself (``preau = preau.cli:main``), stdout to the report file; its peak memory
# is read at its very end, also when it leaves through ``os._exit`` (no memory freeing at exit).
PREAU_RUNNER = r"""
import json, os, resource, sys
from preau.cli import main

def peak():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM: this process's own peak (ru_maxrss may carry the parent's peak over fork + exec)
    hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print(json.dumps({"maxrss_kb": hwm, "cpu": ru.ru_utime + ru.ru_stime}), file=sys.stderr, flush=True)

real_exit = os._exit
def _exit(code):
    peak()
    real_exit(code)
os._exit = _exit
sys.argv = ["preau", "validate", sys.argv[1], "--schema", "eleves-premier-degre", "--json"]
try:
    main()
except SystemExit:
    peak()
"""

UAI_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ"
LEVELS = np.array(["TPS", "PS", "MS", "GS", "CP", "CE1", "CE2", "CM1", "CM2", "ULIS"])


def tokens(rng: np.random.Generator, n: int, width: int = 8) -> np.ndarray:
    """Random upper-case tokens (not names): 'QZKW…'."""
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    codes = rng.integers(0, 26, size=(n, width))
    return np.array(["".join(r) for r in letters[codes]]) if n < 50_000 else _fast_tokens(rng, n, width)


def _fast_tokens(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    arr = rng.integers(65, 91, size=(n, width), dtype=np.uint8)
    return arr.view(f"S{width}").ravel().astype(str)


def make_file(path: Path, rows: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    n = rows
    school_num = rng.integers(650000, 650400, n)
    uai = np.char.add(np.char.zfill(school_num.astype(str), 7), np.array(list(UAI_ALPHABET))[school_num % 23])
    birth = np.datetime64("2014-01-01") + rng.integers(0, 365 * 8, n).astype("timedelta64[D]")
    df = pl.DataFrame({
        "annee_scolaire": np.full(n, "2025-2026"),
        "identifiant_eleve": np.char.add(np.char.zfill(np.arange(n).astype(str), 10), "A"),
        "nom": _fast_tokens(rng, n, 8), "prenom": _fast_tokens(rng, n, 6),
        "sexe": np.where(rng.random(n) < 0.5, "F", "M"),
        "date_naissance": birth.astype(str), "commune_naissance": _fast_tokens(rng, n, 7),
        "adresse": np.char.add(rng.integers(1, 200, n).astype(str), np.char.add(" RUE ", _fast_tokens(rng, n, 6))),
        "code_postal": np.char.zfill(rng.integers(1000, 96000, n).astype(str), 5),
        "commune_residence": _fast_tokens(rng, n, 7),
        "code_insee_residence": np.char.zfill(rng.integers(1000, 96000, n).astype(str), 5),
        "uai": uai, "nom_ecole": np.char.add("ECOLE ", _fast_tokens(rng, n, 4)),
        "niveau": LEVELS[rng.integers(0, 10, n)], "classe": np.char.add("CL-", rng.integers(1, 9, n).astype(str)),
        "responsable1_nom": _fast_tokens(rng, n, 8), "responsable1_prenom": _fast_tokens(rng, n, 6),
        "responsable1_telephone": np.char.add("06", np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8)),
        "responsable2_nom": _fast_tokens(rng, n, 8), "responsable2_prenom": _fast_tokens(rng, n, 6),
        "cantine": np.where(rng.random(n) < 0.7, "true", "false"),
        "periscolaire": np.where(rng.random(n) < 0.4, "true", "false"),
        "transport": np.where(rng.random(n) < 0.1, "true", "false"),
    })
    k = max(1, n // 20_000)  # planted errors per kind: 50 per kind at 1M rows
    planted = Counter()

    def plant(col: str, value, kind: str, count: int = k) -> None:
        nonlocal df
        idx = rng.choice(n, count, replace=False)
        s = df.get_column(col).to_numpy().copy()
        s[idx] = value
        df = df.with_columns(pl.Series(col, s))
        planted[kind] += count

    plant("date_naissance", "2016-02-30", "type-error date_naissance")
    plant("date_naissance", "31/12/2015", "type-error date_naissance")
    plant("niveau", "CM3", "enum niveau")
    plant("sexe", "X", "enum sexe")
    plant("code_postal", "6500", "pattern code_postal")
    plant("nom", "", "required nom")
    plant("cantine", "oui", "type-error cantine")
    plant("code_insee_residence", "6A123", "pattern code_insee_residence")
    # duplicate primary keys: copy identifiers of other rows
    ids = df.get_column("identifiant_eleve").to_numpy().copy()
    src = rng.choice(n, k, replace=False)
    dst = rng.choice(n, k, replace=False)
    ids[dst] = ids[src]
    df = df.with_columns(pl.Series("identifiant_eleve", ids))
    planted["primary-key (about)"] += k
    # wrong UAI check letters: only Préau sees them (preau:check)
    u = df.get_column("uai").to_numpy().copy()
    bad = rng.choice(n, k, replace=False)
    u[bad] = np.array([x[:7] + ("A" if x[7] != "A" else "B") for x in u[bad]])
    df = df.with_columns(pl.Series("uai", u))
    planted["uai check letter (Préau only)"] += k
    text = df.write_csv()
    # a few ragged rows
    lines = text.split("\n")
    for i in rng.choice(np.arange(1, n), min(k, 20), replace=False):
        lines[i] = lines[i].rsplit(",", 2)[0]
        planted["ragged row (2 missing cells)"] += 1
    path.write_text("\n".join(lines), encoding="utf-8")
    return dict(planted)


def run(cmd: list[str], stdout: Path | None = None) -> tuple[float, int, float]:
    """(wall seconds, peak memory in kB, CPU seconds) of one process; CPU time from the kernel's
    accounting of the finished child (start-up and exit included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(stdout, "w", encoding="utf-8") if stdout else open(os.devnull, "w") as fh:
        res = subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = [ln for ln in res.stderr.strip().splitlines() if ln.startswith('{"maxrss_kb"')]
    if not last:
        raise SystemExit(f"runner failed:\n{res.stderr[-3000:]}")
    info = json.loads(last[-1])
    return dt, info["maxrss_kb"], cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated CSV at this path")
    ap.add_argument("--out", default=None, help="write the result record (JSON, bench/_common.py) here")
    args = ap.parse_args()
    # Préau's sources as an installed package has them: compiled (see the module docstring)
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "src" / "preau")], check=True,
                   stdout=subprocess.DEVNULL)
    import frictionless
    load_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="preau-bench-") as tmp:
        tmp = Path(tmp)
        data = args.keep or tmp / "eleves.csv"
        t0 = time.perf_counter()
        planted = make_file(data, args.rows)
        size = data.stat().st_size / 1e6
        print(f"file: {args.rows:,} rows x 23 columns, {size:.1f} MB (generated in {time.perf_counter() - t0:.1f} s)")
        print("planted: " + ", ".join(f"{k}={v}" for k, v in planted.items()))
        p_out, f_out = tmp / "preau.json", tmp / "frictionless.json"
        p_time, p_rss, p_cpu = run([PY, "-c", PREAU_RUNNER, str(data)], stdout=p_out)
        f_time, f_rss, f_cpu = run([PY, "-c", FRICTIONLESS_RUNNER, str(data), str(SCHEMA), str(f_out)])
        report = json.loads(p_out.read_text())
        ours = [[e["type"], e.get("rowNumber"), e.get("fieldName"), e.get("note")]
                for t in report["tasks"] for e in t["errors"]]
        theirs = json.loads(f_out.read_text())["keys"]
        preau_only = [e for e in ours if e[3] and 'constraint "preau:check"' in e[3]]
        ours_common = [e for e in ours if not (e[3] and 'constraint "preau:check"' in e[3])]
        identical = ours_common == theirs
        print()
        print(f"{'tool':<16}{'seconds':>9}{'rows/s':>12}{'CPU s':>8}{'peak MB':>10}{'errors':>9}")
        print(f"{'frictionless':<16}{f_time:>9.2f}{args.rows / f_time:>12,.0f}{f_cpu:>8.2f}{f_rss / 1024:>10.0f}"
              f"{len(theirs):>9}")
        print(f"{'preau validate':<16}{p_time:>9.2f}{args.rows / p_time:>12,.0f}{p_cpu:>8.2f}{p_rss / 1024:>10.0f}"
              f"{len(ours):>9}")
        print(f"ratio (frictionless / preau), whole process: wall time {f_time / p_time:.1f}x, "
              f"CPU time {f_cpu / p_cpu:.1f}x (CPU time is steadier on a shared machine)")
        print(f"findings identical (type, row, field, note; same order): {identical} "
              f"({len(ours_common)} common errors; {len(preau_only)} Préau-only French code check errors)")
        print("error types: " + ", ".join(f"{k}={v}" for k, v in sorted(Counter(e[0] for e in theirs).items())))
        ratio = f_time / p_time
        write_result(args.out, result(
            "validation",
            "Validation d'un fichier élèves ({} lignes × 23 colonnes, erreurs semées) : `preau validate` contre "
            "frictionless-py, processus entiers".format(f"{args.rows:,}".replace(",", "\u202f")),
            size={"rows": args.rows, "columns": 23, "megabytes": round(size, 1),
                  "planted_errors": sum(planted.values())},
            preau={"seconds": round(p_time, 3), "rate": round(args.rows / p_time), "unit": "lignes/s",
                   "cpu_seconds": round(p_cpu, 3), "peak_rss_mb": round(p_rss / 1024, 1),
                   "errors": len(ours)},
            anchor={"name": f"frictionless-py {frictionless.__version__}", "seconds": round(f_time, 3),
                    "rate": round(args.rows / f_time), "unit": "lignes/s", "cpu_seconds": round(f_cpu, 3),
                    "peak_rss_mb": round(f_rss / 1024, 1), "errors": len(theirs)},
            ratio=ratio, ratio_meaning="temps frictionless / temps Préau", goal="≥ 20×", goal_met=ratio >= 20,
            details={"identical_findings": identical, "common_errors": len(ours_common),
                     "preau_only_code_check_errors": len(preau_only),
                     "cpu_ratio": round(f_cpu / p_cpu, 2),
                     "error_types": dict(sorted(Counter(e[0] for e in theirs).items())),
                     "planted": planted, "polars": pl.__version__,
                     "load_average": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
                     "bench_peak_rss_mb": peak_rss_mb()}))
        if not identical:
            a, b = Counter(map(tuple, ours_common)), Counter(map(tuple, theirs))
            print("only Préau:", list((a - b).items())[:5])
            print("only frictionless:", list((b - a).items())[:5])
            raise SystemExit(1)


if __name__ == "__main__":
    main()
