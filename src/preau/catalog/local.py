"""The embedded default catalog: plain files under ``_build/catalog/`` (read by ``preau.website``).

Layout (docs/ARCHITECTURE.md)::

    catalog.json                     Préau index of the public datasets (+ their publishers)
    catalog.jsonld / catalog.ttl     DCAT-AP 3 feed (public datasets only)
    datasets/<name>/…                data package: datapackage.json, dcat.jsonld, data files, schema…
    restricted/<name>/…              restricted datasets: never in catalog.json, the feed or the site
    harvested/<name>/…               copies harvested from other catalogs (preau.catalog.harvest_local);
                                     the active ones are listed in catalog.json with their provenance

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
from preau.package.files import (copy_if_changed, dumps_json, same_file, sha256_bytes, sha256_file, sha256_many,
                                 write_if_changed)

INDEX = "catalog.json"
FEED_JSONLD = "catalog.jsonld"
FEED_TTL = "catalog.ttl"
PUBLIC_DIR = "datasets"
RESTRICTED_DIR = "restricted"
HARVESTED_DIR = "harvested"
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
    # a catalog file linked to its package's file is that file (copy_if_changed(link=True)); the
    # others are hashed only when there is a catalog file to compare them with
    linked = {name for name in wanted if same_file(pkg.folder / name, dest / name)}
    digests = sha256_many(pkg.folder / name for name in wanted if name not in linked and (dest / name).is_file())
    for name in wanted:
        src = pkg.folder / name
        size = src.stat().st_size
        exists = (dest / name).is_file()
        digest = (digests.get(src) or sha256_file(src)) if exists and name not in linked else None
        if name in linked or (exists and _same(dest / name, digest, size)):
            report.add("resource", f"{pkg.name}/{name}", "unchanged")
            continue
        action = "update" if (dest / name).exists() else "create"
        changed = True
        if not dry_run and name != DESCRIPTOR:
            copy_if_changed(src, dest / name, digest, link=True)
        report.add("resource", f"{pkg.name}/{name}", action, nbytes=size)
    stale = sorted(p for p in dest.iterdir() if p.name not in set(wanted)) if dest.is_dir() else []
    for p in stale:
        changed = True
        report.add("resource", f"{pkg.name}/{p.name}", "delete")
        if not dry_run:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    if not dry_run and changed:
        # the descriptor last: a folder with a datapackage.json is complete
        copy_if_changed(pkg.folder / DESCRIPTOR, dest / DESCRIPTOR, link=True)
    report.add("dataset", pkg.name, "unchanged" if not changed else ("update" if existed else "create"),
               detail="restricted" if not pkg.public else "")


def _described(m: dict[str, Any]) -> dict[str, Any]:
    """The descriptive fields an index entry copies from a package's ``preau`` metadata (own or harvested)."""
    return {"frequency": m.get("frequency"), "school_years": m.get("school_years", []), "temporal": m.get("temporal"),
            "spatial": m.get("spatial"), "schema": m.get("schema"), "disclosure": m.get("disclosure"),
            "validation": m.get("validation")}


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
        **_described(m),
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


def harvested_packages(catalog_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, descriptor) of every harvested copy under ``<catalog>/harvested/`` (archived ones too)."""
    root = Path(catalog_dir) / HARVESTED_DIR
    out = []
    if not root.is_dir():
        return out
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith(".") or not (folder / DESCRIPTOR).is_file():
            continue
        try:
            desc = json.loads((folder / DESCRIPTOR).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue
        if isinstance(desc, dict) and isinstance((desc.get("preau") or {}).get("harvest"), dict):
            out.append((folder, desc))
    return out


def _harvested_entry(folder: Path, desc: dict[str, Any]) -> dict[str, Any]:
    m = desc.get("preau") or {}
    block = m["harvest"]
    base = f"{HARVESTED_DIR}/{folder.name}"
    resources = []
    for r in desc.get("resources") or []:
        if not isinstance(r, dict) or not isinstance(r.get("path"), str):
            continue
        meta = r.get("preau") if isinstance(r.get("preau"), dict) else {}
        remote = r["path"].startswith(("http://", "https://"))
        resources.append({"name": r.get("name"), "path": r["path"] if remote else f"{base}/{r['path']}",
                          "format": r.get("format"), "mediatype": r.get("mediatype"), "bytes": r.get("bytes"),
                          "hash": r.get("hash"), "role": meta.get("role", "data"),
                          "school_year": meta.get("school_year"), "rows": meta.get("rows"),
                          "title": meta.get("title") or r.get("title")})
    title = m.get("title") or {"fr": desc.get("title") or folder.name, "en": desc.get("title") or folder.name}
    return {
        "name": folder.name,
        "publisher": block.get("organization") or block.get("source"),
        "dataset": m.get("dataset") or block.get("original_name"),
        "kind": m.get("kind") or "dataset",
        "title": title,
        "description": m.get("description") or {"fr": desc.get("description") or "", "en": desc.get("description") or ""},
        "keywords": desc.get("keywords", []),
        "licence": m.get("licence"),
        **_described(m),
        "path": f"{base}/{DESCRIPTOR}",
        "dcat": None,
        "preview": f"{base}/{m['preview']}" if m.get("preview") and not str(m["preview"]).startswith("http") else None,
        "resources": resources,
        "origin": "harvested",
        "harvest": {k: v for k, v in block.items() if k != "hash"},
        "provenance": m.get("provenance"),
    }


def harvested_index(catalog_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """catalog.json entries of the active harvested copies, and their publishers.

    A copy is filed under its source's target ``organization`` (as in the central CKAN); the
    publisher's name is the original publisher's when every copy of that organization agrees on it,
    else the source's title.
    """
    entries, names = [], {}
    for folder, desc in harvested_packages(catalog_dir):
        block = desc["preau"]["harvest"]
        if block.get("status") != "active":
            continue
        entry = _harvested_entry(folder, desc)
        entries.append(entry)
        pub = block.get("publisher") if isinstance(block.get("publisher"), dict) else {}
        names.setdefault(entry["publisher"], []).append(
            (json.dumps(pub.get("name"), sort_keys=True) if pub.get("name") else None, block.get("source_title"),
             block.get("source")))
    publishers = []
    for pid, items in sorted(names.items()):
        distinct = {n for n, _, _ in items}
        name = json.loads(items[0][0]) if len(distinct) == 1 and items[0][0] else (items[0][1] or pid)
        publishers.append({"id": pid, "name": name, "kind": None, "uri": None,
                           "datasets": sorted(e["name"] for e in entries if e["publisher"] == pid),
                           "harvested": sorted({s for _, _, s in items})})
    return sorted(entries, key=lambda e: e["name"]), publishers


def merge_harvested(index: dict[str, Any], entries: list[dict[str, Any]],
                    publishers: list[dict[str, Any]]) -> dict[str, Any]:
    """``index`` (catalog.json) with its harvested entries replaced by ``entries`` / ``publishers``."""
    gone = {d.get("name") for d in index.get("datasets") or [] if isinstance(d, dict) and d.get("harvest")}
    local = [d for d in index.get("datasets") or [] if not (isinstance(d, dict) and d.get("harvest"))]
    pubs: dict[str, dict[str, Any]] = {}
    for p in index.get("publishers") or []:
        if not isinstance(p, dict) or not p.get("id"):
            continue
        kept = [n for n in p.get("datasets") or [] if n not in gone]
        if kept or not p.get("harvested"):
            pubs[p["id"]] = {**{k: v for k, v in p.items() if k != "harvested"}, "datasets": kept}
    for p in publishers:
        if p["id"] in pubs:  # a local publisher also harvested elsewhere: one page
            pubs[p["id"]]["datasets"] = sorted(set(pubs[p["id"]]["datasets"]) | set(p["datasets"]))
            pubs[p["id"]]["harvested"] = p["harvested"]
        else:
            pubs[p["id"]] = dict(p)
    out = {**index, "publishers": [pubs[k] for k in sorted(pubs)],
           "datasets": sorted(local + entries, key=lambda d: str(d.get("name")))}
    return out


def refresh_index(catalog_dir: str | Path, *, base_url: str | None = None) -> bool:
    """Rewrite ``catalog.json`` with the current harvested copies (local entries kept as they are).

    Creates a catalog.json without local datasets when none exists. True when the file changed.
    """
    catalog_dir = Path(catalog_dir)
    path = catalog_dir / INDEX
    index = None
    if path.is_file():
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            index = None
    if not isinstance(index, dict):
        generated = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        index = _index([], generated, dcat.base_url(base_url))
    new = merge_harvested(index, *harvested_index(catalog_dir))
    if path.is_file() and {**new, "generated": None} == {**index, "generated": None}:
        return False  # same content: not even serialised
    new["generated"] = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return write_if_changed(path, _index_bytes(path, new))


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
    index = merge_harvested(_index(public, generated, base), *harvested_index(catalog_dir))
    outputs = {
        INDEX: _index_bytes(catalog_dir / INDEX, index),
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
