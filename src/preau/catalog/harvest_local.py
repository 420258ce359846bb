"""Harvest into the local file catalog: ``preau harvest --into local:_build/catalog``.

The same sources, readers, filters and sync rules as the CKAN harvest (:mod:`preau.catalog.harvest`),
but the copies go to ``<catalog>/harvested/<source>-<original name>/`` so that the static site
(:mod:`preau.website`, which reads only the local catalog) shows them with their provenance:

- ``datapackage.json``: a Préau source's own descriptor (columns, disclosure, validation … kept), or
  one derived from a CKAN / DCAT record, with a ``preau.harvest`` block (source name, kind, title and
  URL, original id and URL, original publisher, target organization, the source's ``modified``, the
  time of the copy, the hash of what was derived, ``status`` active|archived, ``archived_at``) and a
  ``preau.provenance`` text (fr/en);
- the files: data files mirrored (``resources = "mirror"``, sha256 checked against the source's
  hash) or linked (``"link"``: the resource ``path`` is the source's URL; a source read from a folder
  without ``base_url`` has no URL, so its files are always copied); small metadata files (schema,
  validation and disclosure reports, preview) are always copied so the site can show them.

``catalog.json`` lists the active copies beside the local datasets (``"origin": "harvested"`` and
the ``harvest`` block; see :func:`preau.catalog.local.merge_harvested`); ``preau publish`` keeps them.
A copy is rewritten only when the hash of what we derive from the source changed (a no-change run
writes no file), archived when gone from its source (kept, out of ``catalog.json`` hence out of the
site), restored if it comes back, and deleted once archived for longer than ``grace_days``. Each copy
is written in a staging folder and swapped in: nothing half-written.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable
from urllib.parse import urljoin

import requests

from preau.catalog.harvest import (Fetched, HarvestReport, Record, RecordError, Source, SourceHealth,
                                   _http_get, _iso, _keep, _parse_iso, _slug, publisher_name, read_source)
from preau.catalog.local import DESCRIPTOR, HARVESTED_DIR, PUBLIC_DIR, harvested_packages, refresh_index
from preau.errors import Problem, rel
from preau.package.files import dumps_json, sha256_bytes, sha256_file, write_if_changed

LAYOUT = "preau-harvest-local/1"  # in the digest: a new copy layout rewrites every copy once
METADATA_ROLES = ("schema", "validation", "disclosure", "preview")  # always copied (small)
SAFE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _safe_rel(path: Any) -> bool:
    if not isinstance(path, str) or not path or "\\" in path:
        return False
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts and p.name not in ("", ".", DESCRIPTOR)


def _is_url(text: str | None) -> bool:
    return bool(text) and str(text).startswith(("http://", "https://"))


def _read(location: str, src: Source, sleep, session: requests.Session) -> bytes:
    if _is_url(location):
        return _http_get(location, src, sleep, session).content
    return Path(location).read_bytes()


def _file_name(name: str, index: int, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(str(name)).name).strip(".-") or f"fichier-{index}"
    out, n = base, 1
    while out in taken or out == DESCRIPTOR:
        n += 1
        stem, dot, ext = base.rpartition(".")
        out = f"{stem}-{n}.{ext}" if dot else f"{base}-{n}"
    taken.add(out)
    return out


def _provenance(block: dict[str, Any]) -> dict[str, str]:
    origin = block.get("original_url") or block.get("original_id")
    pub = publisher_name(block.get("publisher"), "fr")
    pub_en = publisher_name(block.get("publisher"), "en")
    return {
        "fr": (f"Moissonné depuis « {block['source_title']} » ({block['source_kind']}), fiche d'origine {origin}"
               + (f", éditeur d'origine {pub}" if pub else "")
               + f", modifiée à la source le {block.get('source_modified') or 'inconnu'}, "
               f"copiée le {block['harvested']}."),
        "en": (f"Harvested from '{block['source_title']}' ({block['source_kind']}), original record {origin}"
               + (f", original publisher {pub_en}" if pub_en else "")
               + f", modified at the source on {block.get('source_modified') or 'unknown'}, "
               f"copied on {block['harvested']}."),
    }


class _Copy:
    """Writes one harvested dataset into a staging folder, then swaps it in."""

    def __init__(self, src: Source, rec: Record, name: str, root: Path, old: Path | None,
                 session: requests.Session, sleep: Callable[[float], None]):
        self.src, self.rec, self.name, self.root, self.old = src, rec, name, root, old
        self.session, self.sleep = session, sleep
        self.stage = root / f".{name}.new"
        self.files = 0  # files fetched from the source (not reused from the previous copy)

    def _store(self, relpath: str, location: str, expected: str | None) -> tuple[int, str]:
        """Copy one file into the staging folder (reusing the previous copy when its sha256 matches)."""
        dest = self.stage / relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        expected = (expected or "").removeprefix("sha256:") or None
        prev = self.old / relpath if self.old is not None else None
        if expected and prev is not None and prev.is_file() and sha256_file(prev) == expected:
            shutil.copyfile(prev, dest)
            return dest.stat().st_size, expected
        data = _read(location, self.src, self.sleep, self.session)
        digest = sha256_bytes(data)
        if expected and digest != expected:
            raise RecordError(f"fichier {relpath} : empreinte sha256 différente de celle annoncée par la source",
                              f"file {relpath}: sha256 differs from the one the source announces")
        dest.write_bytes(data)
        self.files += 1
        return len(data), digest

    def _mirror(self, location: str | None, role: str) -> bool:
        if self.src.resources == "mirror" or role in METADATA_ROLES:
            return True
        return not _is_url(location)  # a file without a URL can only be copied

    def from_package(self, raw: bytes, package: str) -> dict[str, Any]:
        """A Préau source's own descriptor, its files copied or linked."""
        try:
            desc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RecordError("datapackage.json illisible", "unreadable datapackage.json") from None
        if not isinstance(desc, dict) or not isinstance(desc.get("resources"), list):
            raise RecordError("datapackage.json : liste « resources » attendue",
                              "datapackage.json: a 'resources' list is expected")
        if ((desc.get("preau") or {}).get("access") or "public") != "public":
            raise RecordError("jeu non public à la source", "dataset not public at the source")
        base = package.rsplit("/", 1)[0] + "/" if _is_url(package) else None
        folder = Path(package).parent if base is None else None
        resources = []
        for r in desc["resources"]:
            if not isinstance(r, dict) or not _safe_rel(r.get("path")):
                raise RecordError("ressource sans chemin relatif sûr", "resource without a safe relative path")
            r = dict(r)
            location = urljoin(base, r["path"]) if base else str(folder / r["path"])
            if not base and self.src.base_url and self.rec.original_url:
                url = urljoin(self.rec.original_url, r["path"])
            else:
                url = location if base else None
            role = (r.get("preau") or {}).get("role", "data") if isinstance(r.get("preau"), dict) else "data"
            if self._mirror(url, role):
                size, digest = self._store(r["path"], location, r.get("hash"))
                r["bytes"], r["hash"] = size, f"sha256:{digest}"
            else:
                r["path"] = url
            resources.append(r)
        desc["resources"] = resources
        return desc

    def from_record(self) -> dict[str, Any]:
        """A descriptor derived from a CKAN / DCAT record (or a Préau entry without its package)."""
        rec, taken = self.rec, set()
        resources = []
        for i, res in enumerate(rec.resources, 1):
            fmt = str(res.get("format") or "").lower()
            item: dict[str, Any] = {"name": _slug(res.get("name") or f"fichier-{i}", 80) or f"fichier-{i}",
                                    "title": res.get("name") or res["url"].rsplit("/", 1)[-1], "format": fmt}
            if res.get("description"):
                item["description"] = res["description"]
            if self._mirror(res["url"], "data"):
                path = _file_name(res.get("name") or res["url"].rsplit("/", 1)[-1], i, taken)
                size, digest = self._store(path, res["url"], res.get("hash"))
                item.update({"path": path, "bytes": size, "hash": f"sha256:{digest}"})
            else:
                item["path"] = res["url"]
                if res.get("hash"):
                    item["hash"] = res["hash"] if ":" in res["hash"] else f"sha256:{res['hash']}"
            resources.append(item)
        licence = {k: v for k, v in (("id", rec.license_id), ("url", rec.license_url)) if v}
        desc: dict[str, Any] = {"profile": "data-package", "name": self.name, "title": rec.title,
                                "description": rec.notes, "keywords": rec.tags, "resources": resources,
                                "preau": {"kind": "dataset", "access": "public",
                                          "title": {"fr": rec.title, "en": rec.title},
                                          "description": {"fr": rec.notes, "en": rec.notes},
                                          "licence": licence or None,
                                          "publisher": rec.publisher or {}}}
        if licence:
            desc["licenses"] = [{"name": rec.license_id or "", **({"path": rec.license_url} if rec.license_url else {})}]
        return desc

    def write(self, block: dict[str, Any]) -> None:
        if self.stage.exists():
            shutil.rmtree(self.stage)
        self.stage.mkdir(parents=True)
        try:
            desc = None
            if self.rec.package:
                try:
                    raw = _read(self.rec.package, self.src, self.sleep, self.session)
                except (OSError, requests.RequestException):
                    raw = None  # a catalog.json entry without its package: derived from the entry
                if raw is not None:
                    desc = self.from_package(raw, self.rec.package)
            if desc is None:
                desc = self.from_record()
            desc["name"] = self.name
            meta = desc.setdefault("preau", {})
            meta["access"] = "public"
            meta["harvest"] = block
            meta["provenance"] = _provenance(block)
            (self.stage / DESCRIPTOR).write_bytes(dumps_json(desc))
            dest = self.root / self.name
            trash = self.root / f".{self.name}.old"
            if trash.exists():
                shutil.rmtree(trash)
            if dest.exists():
                dest.rename(trash)
            self.stage.rename(dest)
            shutil.rmtree(trash, ignore_errors=True)
        finally:
            if self.stage.exists():
                shutil.rmtree(self.stage, ignore_errors=True)


def harvest_source_local(src: Source, catalog_dir: str | Path, *, dry_run: bool = False,
                         now: Callable[[], datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
                         fetch: Callable[..., Fetched] | None = None) -> SourceHealth:
    """Harvest one source into the local file catalog ``catalog_dir``; never raises for source trouble.

    Does not touch ``catalog.json`` (:func:`harvest_local` refreshes it once after every source).
    """
    now = now or _now
    catalog_dir = Path(catalog_dir)
    t0 = time.perf_counter()
    health = SourceHealth(src.name, src.kind, src.location if src.url else rel(src.location))
    session = requests.Session()

    def problem(code, fr, en, where=None, severity="error"):
        health.problems.append(Problem(code, fr, en, file=src.name, field=where, severity=severity))

    if src.path is not None and src.kind == "preau" and Path(src.path).resolve() == catalog_dir.resolve():
        health.status = "failed"
        problem("harvest-source-is-target", "la source est le catalogue cible lui-même : rien n'est copié",
                "the source is the target catalog itself: nothing is copied", "path")
        health.seconds = time.perf_counter() - t0
        return health
    fetched = read_source(src, health, problem, fetch=fetch, sleep=sleep, t0=t0)
    if fetched is None:
        return health

    root = catalog_dir / HARVESTED_DIR
    existing: dict[str, tuple[Path, dict]] = {}
    taken: set[str] = set()  # names used by local datasets and by other sources' copies
    for folder, desc in harvested_packages(catalog_dir):
        block = desc["preau"]["harvest"]
        if block.get("source") == src.name and block.get("original_id"):
            existing[str(block["original_id"])] = (folder, desc)
        else:
            taken.add(folder.name)
    if (catalog_dir / PUBLIC_DIR).is_dir():
        taken |= {p.name for p in (catalog_dir / PUBLIC_DIR).iterdir() if p.is_dir()}

    current = now()
    harvested = _iso(current)
    seen = {m[3] for m in fetched.malformed if m[3]}  # a malformed record is not "gone"
    for rec in fetched.records:
        if not _keep(src, rec):
            health.counts["filtered"] += 1
            continue
        seen.add(rec.original_id)
        have = existing.get(rec.original_id)
        digest = hashlib.sha256((LAYOUT + rec.content_hash() + src.resources + src.organization
                                 + (src.title or "") + (src.base_url or "")).encode()).hexdigest()
        old = have[1]["preau"]["harvest"] if have else {}
        if have and old.get("hash") == digest and old.get("status") == "active":
            health.counts["unchanged"] += 1
            health.datasets[have[0].name] = "unchanged"
            continue
        name = have[0].name if have else _slug(f"{src.name}-{rec.name}")
        if not have and (not SAFE.match(name) or name in taken):
            health.counts["failed"] += 1
            problem("harvest-name-taken", f"nom « {name} » déjà pris dans le catalogue local : fiche ignorée",
                    f"name '{name}' already taken in the local catalog: record skipped", rec.original_id)
            continue
        action = "created" if have is None else ("restored" if old.get("status") == "archived" else "updated")
        block = {"source": src.name, "source_kind": src.kind, "source_title": src.title or src.name,
                 "source_url": src.url or src.base_url or "",
                 "original_id": rec.original_id, "original_name": rec.name, "original_url": rec.original_url or "",
                 "publisher": rec.publisher, "organization": src.organization,
                 "source_modified": rec.modified or "", "harvested": harvested, "hash": digest,
                 "status": "active", "archived_at": None, "resources": src.resources}
        try:
            if not dry_run:
                writer = _Copy(src, rec, name, root, have[0] if have else None, session, sleep)
                writer.write(block)
            health.writes += 1
        except (RecordError, requests.RequestException, OSError) as exc:
            health.counts["failed"] += 1
            fr, en = (exc.fr, exc.en) if isinstance(exc, RecordError) else (type(exc).__name__,) * 2
            problem("harvest-record-write", f"copie impossible : {fr}", f"copy failed: {en}", rec.original_id)
            continue
        health.counts[action] += 1
        health.datasets[name] = action

    grace = timedelta(days=src.grace_days)
    for original_id, (folder, desc) in sorted(existing.items()):
        if original_id in seen:
            continue
        block = desc["preau"]["harvest"]
        if block.get("status") != "archived":
            if not dry_run:
                desc = copy.deepcopy(desc)
                desc["preau"]["harvest"].update({"status": "archived", "archived_at": harvested})
                write_if_changed(folder / DESCRIPTOR, dumps_json(desc))
            health.writes += 1
            health.counts["archived"] += 1
            health.datasets[folder.name] = "archived"
            continue
        since = _parse_iso(block.get("archived_at")) or current
        if current - since >= grace:
            if not dry_run:
                shutil.rmtree(folder)
            health.writes += 1
            health.counts["deleted"] += 1
            health.datasets[folder.name] = "deleted"
        else:
            health.datasets[folder.name] = "archived (waiting)"
    if health.counts["failed"]:
        health.status = "partial"
    health.seconds = time.perf_counter() - t0
    return health


def harvest_local(sources: list[Source], catalog_dir: str | Path, *, dry_run: bool = False,
                  now: Callable[[], datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
                  base_url: str | None = None) -> HarvestReport:
    """Harvest ``sources`` into the local file catalog ``catalog_dir``, then refresh its ``catalog.json``
    (rewritten only when its content changed). What ``harvest(..., into="local:PATH")`` calls."""
    catalog_dir = Path(catalog_dir)
    report = HarvestReport(dry_run=dry_run, started=_iso((now or _now)()), target=f"local:{rel(catalog_dir)}")
    for src in sources:
        report.sources.append(harvest_source_local(src, catalog_dir, dry_run=dry_run, now=now, sleep=sleep))
    if not dry_run:
        refresh_index(catalog_dir, base_url=base_url)
    return report
