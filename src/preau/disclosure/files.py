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

In a build (``_build/data/<publisher>/<dataset>/``) the same description sits in each dataset's
``disclosure.json`` under the key ``"tables"`` (paths relative to that folder); ``preau audit``
collects every one of them under the folder and audits them **together** (linked tables).
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
    return {"name": table.name, "path": path, "measure": table.measure,
            "policy": {"rule": pol.rule, "k": pol.k, "protection_width": pol.width},
            "dimensions": dims}


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
    return CountTable(name, frame, dims, measure, policy)


def _specs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / SPEC).is_file():
        return [path / SPEC]
    root = path / "_build" / "data" if (path / "_build" / "data").is_dir() else path
    found = []
    for p in sorted(root.rglob("disclosure.json")):
        try:
            if "tables" in json.loads(p.read_text(encoding="utf-8")):
                found.append(p)
        except (OSError, ValueError):
            continue
    for p in sorted(root.rglob(SPEC)):
        found.append(p)
    return found


def load_folder(path: str | Path) -> tuple[list[CountTable], list[CountTable]]:
    """Tables and earlier published versions described under ``path`` (see module doc)."""
    path = Path(path)
    if not path.exists():
        raise PreauError(Problem("audit-missing", "dossier introuvable", "folder not found", file=rel(path)))
    specs = _specs(path)
    if not specs:
        raise PreauError(Problem(
            "audit-nothing", f"aucun tableau à auditer (ni {SPEC}, ni disclosure.json avec « tables »)",
            f"no table to audit (neither {SPEC} nor disclosure.json with 'tables')", file=rel(path)))
    tables, published = [], []
    for spec_file in specs:
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise PreauError(Problem("audit-spec", "JSON illisible", "unreadable JSON", file=rel(spec_file)))
        base = spec_file.parent
        tables += [_load_table(e, base, spec_file) for e in spec.get("tables", [])]
        published += [_load_table(e, base, spec_file) for e in spec.get("published", [])]
    return tables, published


def audit_folder(path: str | Path) -> AuditReport:
    """``preau audit``: audit every table found under ``path`` together (see module doc)."""
    tables, published = load_folder(path)
    return audit(tables, published)
