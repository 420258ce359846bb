"""The embedded default catalog: plain files under ``_build/catalog/`` (read by ``preau.website``).

Layout (docs/ARCHITECTURE.md)::

    catalog.json                     Préau index of the public datasets (+ their publishers)
    catalog.jsonld / catalog.ttl     DCAT-AP 3 feed (public datasets only)
    datasets/<name>/…                data package: datapackage.json, dcat.jsonld, data files, schema…
    restricted/<name>/…              restricted datasets: never in catalog.json, the feed or the site

Idempotent: a file whose sha256 matches is not rewritten; ``generated`` in catalog.json only changes
when the content does; folders of datasets no longer published (or that became restricted) are removed.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from preau.catalog.report import PublishReport
from preau.errors import rel
from preau.package import DCAT_FILE, DESCRIPTOR, Package
from preau.package import dcat
from preau.package.files import dumps_json, sha256_bytes, sha256_file, write_if_changed, copy_if_changed

INDEX = "catalog.json"
FEED_JSONLD = "catalog.jsonld"
FEED_TTL = "catalog.ttl"
PUBLIC_DIR = "datasets"
RESTRICTED_DIR = "restricted"
CATALOG_TITLE = {"fr": "Catalogue Préau — données scolaires du premier degré",
                 "en": "Préau catalog — primary school data"}
CATALOG_DESCRIPTION = {"fr": "Effectifs scolaires agrégés et protégés par le secret statistique, couches géographiques.",
                       "en": "Aggregated school counts protected by statistical disclosure control, map layers."}


def _files_of(pkg: Package) -> list[str]:
    return [*(f.path for f in pkg.files), DESCRIPTOR, DCAT_FILE]


def _same(path: Path, digest: str, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == digest


def _sync_package(pkg: Package, dest: Path, report: PublishReport, dry_run: bool) -> None:
    existed = (dest / DESCRIPTOR).is_file()
    changed = False
    wanted = _files_of(pkg)
    for name in wanted:
        src = pkg.folder / name
        digest, size = sha256_file(src), src.stat().st_size
        if _same(dest / name, digest, size):
            report.add("resource", f"{pkg.name}/{name}", "unchanged")
            continue
        action = "update" if (dest / name).exists() else "create"
        changed = True
        if not dry_run and name != DESCRIPTOR:
            copy_if_changed(src, dest / name, digest)
        report.add("resource", f"{pkg.name}/{name}", action, nbytes=size)
    stale = sorted(p for p in dest.iterdir() if p.name not in set(wanted)) if dest.is_dir() else []
    for p in stale:
        changed = True
        report.add("resource", f"{pkg.name}/{p.name}", "delete")
        if not dry_run:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    if not dry_run and changed:
        # the descriptor last: a folder with a datapackage.json is complete
        copy_if_changed(pkg.folder / DESCRIPTOR, dest / DESCRIPTOR)
    report.add("dataset", pkg.name, "unchanged" if not changed else ("update" if existed else "create"),
               detail="restricted" if not pkg.public else "")


def _entry(pkg: Package) -> dict[str, Any]:
    m = pkg.meta
    folder = f"{PUBLIC_DIR}/{pkg.name}"
    return {
        "name": pkg.name,
        "publisher": pkg.publisher,
        "dataset": pkg.dataset,
        "kind": m.get("kind"),
        "title": m["title"],
        "description": m["description"],
        "keywords": pkg.descriptor.get("keywords", []),
        "licence": m["licence"],
        "frequency": m.get("frequency"),
        "school_years": m.get("school_years", []),
        "temporal": m.get("temporal"),
        "spatial": m.get("spatial"),
        "schema": m.get("schema"),
        "disclosure": m.get("disclosure"),
        "validation": m.get("validation"),
        "path": f"{folder}/{DESCRIPTOR}",
        "dcat": f"{folder}/{DCAT_FILE}",
        "preview": f"{folder}/{m['preview']}" if m.get("preview") else None,
        "resources": [
            {"name": f.name, "path": f"{folder}/{f.path}", "format": f.format, "mediatype": f.mediatype,
             "bytes": f.bytes, "hash": f"sha256:{f.sha256}", "role": f.role, "school_year": f.school_year,
             "rows": f.rows, "title": f.title}
            for f in pkg.files
        ],
    }


def _index(public: list[Package], generated: str, base: str) -> dict[str, Any]:
    publishers: dict[str, dict[str, Any]] = {}
    for pkg in public:
        p = pkg.meta["publisher"]
        publishers.setdefault(p["id"], {"id": p["id"], "name": p["name"], "kind": p.get("kind"),
                                        "uri": dcat.publisher_uri(p["id"], base), "datasets": []})
        publishers[p["id"]]["datasets"].append(pkg.name)
    return {
        "generated": generated,
        "title": CATALOG_TITLE,
        "base_url": base,
        "dcat": {"jsonld": FEED_JSONLD, "turtle": FEED_TTL},
        "publishers": [publishers[k] for k in sorted(publishers)],
        "datasets": [_entry(p) for p in sorted(public, key=lambda p: p.name)],
    }


def _index_bytes(index_path: Path, index: dict[str, Any]) -> bytes:
    """catalog.json bytes, keeping the previous ``generated`` stamp when nothing else changed."""
    if index_path.is_file():
        try:
            old = json.loads(index_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
        if isinstance(old, dict) and {**old, "generated": None} == {**index, "generated": None}:
            index = {**index, "generated": old.get("generated")}
    return dumps_json(index)


def write_local_catalog(packages: Iterable[Package], catalog_dir: str | Path, *, base_url: str | None = None,
                        dry_run: bool = False) -> PublishReport:
    """Publish built packages into the local file catalog ``catalog_dir`` (see module docstring)."""
    catalog_dir = Path(catalog_dir)
    base = dcat.base_url(base_url)
    packages = sorted(packages, key=lambda p: p.name)
    report = PublishReport(target="local", destination=rel(catalog_dir), dry_run=dry_run)
    public = [p for p in packages if p.public]
    restricted = [p for p in packages if not p.public]
    for group, sub in ((public, PUBLIC_DIR), (restricted, RESTRICTED_DIR)):
        root = catalog_dir / sub
        for pkg in group:
            _sync_package(pkg, root / pkg.name, report, dry_run)
        # datasets no longer published here (removed, or moved between public and restricted)
        names = {p.name for p in group}
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if folder.is_dir() and folder.name not in names:
                    report.add("dataset", folder.name, "delete", detail=sub)
                    if not dry_run:
                        shutil.rmtree(folder)

    generated = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    outputs = {
        INDEX: _index_bytes(catalog_dir / INDEX, _index(public, generated, base)),
    }
    feed = dcat.catalog_document([p.descriptor for p in public], CATALOG_TITLE, base, CATALOG_DESCRIPTION)
    outputs[FEED_JSONLD] = dumps_json(feed)
    outputs[FEED_TTL] = dcat.to_turtle(feed).encode("utf-8")
    for name, data in outputs.items():
        path = catalog_dir / name
        if path.is_file() and path.stat().st_size == len(data) and sha256_file(path) == sha256_bytes(data):
            report.add("file", name, "unchanged")
            continue
        report.add("file", name, "update" if path.exists() else "create", nbytes=len(data))
        if not dry_run:
            write_if_changed(path, data)
    return report
