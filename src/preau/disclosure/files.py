"""Protected tables on disk and the ``preau audit`` entry point.

A folder is audited from its files only (what the attacker has): long-form CSVs (``effectif``
empty where hidden, ``secret`` flag) plus a JSON description of the tables' dimensions and
policies, ``disclosure-tables.json``::

    {"tables": [{"name": "ecole-niveau", "path": "ecole-niveau.csv", "measure": "effectif",
                 "policy": {"rule": "threshold", "k": 5, "protection_width": 5},
                 "dimensions": {"uai": {"parent": {"0650001A": "65440", ...},
                                        "concepts": {"65440": "code_insee", ...}},
                                "niveau": {"levels": "niveau"}}}],
     "published": [ ... same shape: earlier published versions, known to the attacker ... ]}

Each ``disclosure-tables.json`` is one audit group: its tables are audited **together** (linked
tables, shared cells). A build writes one group per publisher and access level — the exact pieces
it protected, with :func:`write_folder` — e.g. ``_build/data/<publisher>/_audit/public/``;
``preau audit WORKSPACE`` finds every group under ``_build/data/`` (or under the folder given) and
audits each one.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from preau.disclosure.attack import AuditReport, audit
from preau.disclosure.hierarchy import CountTable, Hierarchy, Policy
from preau.errors import PreauError, Problem, rel

SPEC = "disclosure-tables.json"


def table_spec(table: CountTable, path: str) -> dict:
    """JSON description of a table (for ``disclosure-tables.json`` / ``disclosure.json``)."""
    dims = {}
    for d, h in table.dimensions.items():
        dims[d] = {"levels": "niveau"} if h == Hierarchy.niveau() else h.to_dict()
    pol = table.policy
    spec = {"name": table.name, "path": path, "measure": table.measure,
            "policy": {"rule": pol.rule, "k": pol.k, "protection_width": pol.width},
            "dimensions": dims}
    if table.cut:
        spec["cut"] = list(table.cut)
    return spec


def write_folder(tables: list[CountTable], folder: str | Path, published: list[CountTable] = ()) -> Path:
    """Write published-form tables (hidden cells null) as CSVs + ``disclosure-tables.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec: dict = {"tables": [], "published": []}
    for key, group in (("tables", tables), ("published", published)):
        for t in group:
            name = f"{t.name}.csv" if key == "tables" else f"publie-{t.name}.csv"
            t.frame.write_csv(folder / name)
            spec[key].append(table_spec(t, name))
    (folder / SPEC).write_text(json.dumps(spec, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder / SPEC


def _load_table(entry: dict, base: Path, spec_file: Path) -> CountTable:
    try:
        name = entry["name"]
        path = base / entry["path"]
        dims = {d: Hierarchy.from_dict(h) for d, h in entry["dimensions"].items()}
    except (KeyError, TypeError, AttributeError):
        raise PreauError(Problem("audit-spec", "description de tableau incomplète (name, path, dimensions attendus)",
                                 "incomplete table description (expected name, path, dimensions)",
                                 file=rel(spec_file)))
    measure = entry.get("measure", "effectif")
    pol = entry.get("policy", {}) or {}
    policy = Policy(pol.get("rule", "threshold"), int(pol.get("k") or 5), pol.get("protection_width"))
    if not path.is_file():
        raise PreauError(Problem("audit-missing", "fichier de tableau introuvable", "table file not found",
                                 file=rel(path)))
    schema = {d: pl.Utf8 for d in dims}
    schema[measure] = pl.Int64
    try:
        frame = pl.read_csv(path, schema_overrides=schema, infer_schema_length=0)
        frame = frame.with_columns(pl.col(measure).cast(pl.Int64))
    except Exception:  # noqa: BLE001 - any parse failure is a user-facing problem
        raise PreauError(Problem("audit-csv", "CSV illisible ou colonnes attendues absentes",
                                 "unreadable CSV or expected columns missing", file=rel(path), field=measure))
    cut = tuple(str(d) for d in entry.get("cut", []) if d in dims)
    return CountTable(name, frame, dims, measure, policy, cut=cut)


def _specs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / SPEC).is_file():
        return [path / SPEC]
    root = path / "_build" / "data" if (path / "_build" / "data").is_dir() else path
    return sorted(root.rglob(SPEC))


def load_spec(spec_file: Path) -> tuple[list[CountTable], list[CountTable]]:
    """Tables and earlier published versions of one audit group."""
    try:
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        entries, older = spec.get("tables", []), spec.get("published", [])
    except (OSError, ValueError, AttributeError):
        raise PreauError(Problem("audit-spec", "JSON illisible", "unreadable JSON", file=rel(spec_file)))
    base = spec_file.parent
    return ([_load_table(e, base, spec_file) for e in entries],
            [_load_table(e, base, spec_file) for e in older])


def load_folder(path: str | Path) -> list[tuple[Path, list[CountTable], list[CountTable]]]:
    """Every audit group under ``path``: (spec file, tables, earlier published versions)."""
    path = Path(path)
    if not path.exists():
        raise PreauError(Problem("audit-missing", "dossier introuvable", "folder not found", file=rel(path)))
    specs = _specs(path)
    if not specs:
        raise PreauError(Problem(
            "audit-nothing", f"aucun tableau à auditer (aucun {SPEC})",
            f"no table to audit (no {SPEC})", file=rel(path)))
    return [(p, *load_spec(p)) for p in specs]


def audit_folder(path: str | Path) -> AuditReport:
    """``preau audit``: audit each group found under ``path`` (its tables together)."""
    total = AuditReport(cells_hidden=0)
    for spec_file, tables, published in load_folder(path):
        r = audit(tables, published)
        try:
            group = spec_file.parent.relative_to(Path(path)).as_posix()
        except ValueError:
            group = "."
        for u in r.unprotected:
            u.table = u.table if group in ("", ".") else f"{group}/{u.table}"
        total.cells_hidden += r.cells_hidden
        total.unprotected += r.unprotected
        total.n_unprotected = (total.n_unprotected or 0) + (r.n_unprotected or len(r.unprotected))
        total.blocks += r.blocks
        total.largest_block = max(total.largest_block, r.largest_block)
        total.lps += r.lps
        total.seconds += r.seconds
    return total
