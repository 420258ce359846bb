"""Bench: Préau's validator vs frictionless-py on the same pupil-like file, in one run.

    .venv/bin/python bench/bench_validate.py               # 100,000 rows (default, ~1 min)
    .venv/bin/python bench/bench_validate.py --rows 1000000

Writes a CSV in the canonical ``eleves-premier-degre`` form (23 columns, personal fields filled with
random tokens — no realistic personal value), plants errors (bad dates, wrong levels / sex / postcode,
missing required names, broken booleans, duplicate primary keys, ragged rows, wrong UAI check
letters), then validates it with frictionless-py and with ``preau validate``, each as a whole
subprocess (interpreter start, imports, reading, checking, JSON report). Prints rows/s of each,
the ratio (wall and CPU time), peak memory (VmHWM) of each process, and compares the error sets (type, row, field,
note): they must be identical, apart from Préau's French code checks (``preau:check``, the wrong
UAI check letters), which frictionless does not know (counted separately).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

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

PREAU_RUNNER = r"""
import json, resource, sys
from preau.cli import main
path, out = sys.argv[1], sys.argv[2]
sys.argv = ["preau", "validate", path, "--schema", "eleves-premier-degre", "--json"]
try:
    with open(out, "w") as fh:
        sys.stdout = fh
        main()
except SystemExit:
    pass
finally:
    sys.stdout = sys.__stdout__
    ru = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM: this process's own peak (ru_maxrss may carry the parent's peak over fork + exec)
    hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print(json.dumps({"maxrss_kb": hwm, "cpu": ru.ru_utime + ru.ru_stime}), file=sys.stderr)
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


def run(cmd: list[str]) -> tuple[float, int, float]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    last = [ln for ln in res.stderr.strip().splitlines() if ln.startswith('{"maxrss_kb"')]
    if not last:
        raise SystemExit(f"runner failed:\n{res.stderr[-3000:]}")
    info = json.loads(last[-1])
    return dt, info["maxrss_kb"], info["cpu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated CSV at this path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="preau-bench-") as tmp:
        tmp = Path(tmp)
        data = args.keep or tmp / "eleves.csv"
        t0 = time.perf_counter()
        planted = make_file(data, args.rows)
        size = data.stat().st_size / 1e6
        print(f"file: {args.rows:,} rows x 23 columns, {size:.1f} MB (generated in {time.perf_counter() - t0:.1f} s)")
        print("planted: " + ", ".join(f"{k}={v}" for k, v in planted.items()))
        p_out, f_out = tmp / "preau.json", tmp / "frictionless.json"
        p_time, p_rss, p_cpu = run([PY, "-c", PREAU_RUNNER, str(data), str(p_out)])
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
        if not identical:
            a, b = Counter(map(tuple, ours_common)), Counter(map(tuple, theirs))
            print("only Préau:", list((a - b).items())[:5])
            print("only frictionless:", list((b - a).items())[:5])
            raise SystemExit(1)


if __name__ == "__main__":
    main()
