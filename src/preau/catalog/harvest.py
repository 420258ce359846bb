"""Federation: harvest other publishers' catalogs into one central CKAN, with provenance, in sync.

Sources (``catalog/sources.toml``, see :func:`load_sources`) are of three kinds:

- ``ckan``: another CKAN (``url``), read anonymously with ``package_search`` page by page;
- ``dcat``: a DCAT-AP feed (``url`` or ``path``; Turtle, JSON-LD or RDF/XML), following
  ``hydra:next``/``hydra:nextPage`` pages;
- ``preau``: a Préau file catalog (``path`` to a folder, or ``url``, holding ``catalog.json``).

Each source record becomes one dataset of the source's target organization in the central CKAN,
named ``<source>-<original name>``, with provenance extras (``harvest_source``,
``harvest_original_id``, ``harvest_original_url``, ``harvest_source_modified``, ``harvest_time``,
``harvest_hash`` …) and a human-readable ``provenance`` (published as ``dct:provenance`` in the
central DCAT feed). Resources are linked (``resources = "link"``) or mirrored (``"mirror"``:
downloaded and uploaded, only when their sha256 changed).

Sync rules: a dataset is written only when the hash of what we derive from the source changed
(so a run with no change writes nothing and CKAN's ``metadata_modified`` stays put); a dataset
gone from its source is archived (private, ``harvest_status = archived``: kept, hidden from
search), restored if it comes back, and deleted (purged) once archived for longer than the
source's grace period (so is a dataset that no longer passes the source's filter); a malformed record is reported and skipped, the rest of the source goes on;
a source that cannot be read is reported as failed and nothing of it is archived. Every HTTP call
has a timeout and bounded retries, so a slow source never hangs a run. Time is injectable (``now``).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urljoin

import requests

from preau.catalog.ckan import CkanClient, CkanError
from preau.catalog.publish import ckan_settings
from preau.errors import PreauError, Problem
from preau.i18n import current_lang

KINDS = ("ckan", "dcat", "preau")
RESOURCE_MODES = ("link", "mirror")
EXTRA_PREFIX = "harvest_"
USER_AGENT = "preau-harvest"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass
class Source:
    name: str
    kind: str
    organization: str
    url: str | None = None
    path: Path | None = None
    base_url: str | None = None  # where a preau folder is published (to link its files)
    title: str | None = None
    schedule: str = "daily"
    resources: str = "link"
    grace_days: float = 7.0
    timeout: float = 30.0
    retries: int = 3
    page_size: int = 100
    max_pages: int = 1000
    filters: dict[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        return self.url or str(self.path)


def _config_error(file: Path, fr: str, en: str, field_: str | None = None, line: int | None = None):
    return PreauError(Problem("harvest-config", fr, en, file=str(file), line=line, field=field_))


def load_sources(path: str | Path) -> list[Source]:
    """Read ``sources.toml``: ``[[source]]`` tables (see catalog/sources.toml for every key)."""
    path = Path(path)
    if not path.is_file():
        raise _config_error(path, "fichier de sources introuvable", "sources file not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise _config_error(path, f"TOML invalide : {exc}", f"invalid TOML: {exc}",
                            line=int(m.group(1)) if m else None) from None
    items = raw.get("source", [])
    if not isinstance(items, list) or not items:
        raise _config_error(path, "aucune table [[source]]", "no [[source]] table", "source")
    out: list[Source] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        where = f"source[{i}]"
        name = item.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,40}", name):
            raise _config_error(path, f"{where}.name : identifiant attendu (a-z, 0-9, -, _ ; 41 caractères au plus)",
                                f"{where}.name: an identifier is expected (a-z, 0-9, -, _; at most 41 characters)",
                                f"{where}.name")
        where = f"source {name}"
        if name in seen:
            raise _config_error(path, f"{where} : nom en double", f"{where}: duplicate name", "name")
        seen.add(name)
        kind = item.get("kind")
        if kind not in KINDS:
            raise _config_error(path, f"{where} : kind doit valoir ckan, dcat ou preau",
                                f"{where}: kind must be ckan, dcat or preau", "kind")
        url, p = item.get("url"), item.get("path")
        if bool(url) == bool(p) or (kind == "ckan" and not url):
            raise _config_error(path, f"{where} : donner url ou path (un seul ; url pour ckan)",
                                f"{where}: give url or path (exactly one; url for ckan)", "url")
        if url and not str(url).startswith(("http://", "https://")):
            raise _config_error(path, f"{where} : url doit commencer par http:// ou https://",
                                f"{where}: url must start with http:// or https://", "url")
        org = item.get("organization")
        if not isinstance(org, str) or not re.fullmatch(r"[a-z0-9_-]{2,100}", org):
            raise _config_error(path, f"{where} : organization (nom CKAN de l'organisation cible) attendu",
                                f"{where}: organization (CKAN name of the target organization) expected",
                                "organization")
        mode = item.get("resources", "link")
        if mode not in RESOURCE_MODES:
            raise _config_error(path, f"{where} : resources doit valoir link ou mirror",
                                f"{where}: resources must be link or mirror", "resources")
        try:
            src = Source(
                name=name, kind=kind, organization=org, url=str(url).rstrip("/") if url else None,
                path=(path.parent / p).resolve() if p else None, base_url=item.get("base_url"),
                title=item.get("title"), schedule=str(item.get("schedule", "daily")), resources=mode,
                grace_days=float(item.get("grace_days", 7)), timeout=float(item.get("timeout", 30)),
                retries=int(item.get("retries", 3)), page_size=int(item.get("page_size", 100)),
                max_pages=int(item.get("max_pages", 1000)), filters=dict(item.get("filter", {})))
        except (TypeError, ValueError):
            raise _config_error(path, f"{where} : grace_days, timeout, retries, page_size : nombres attendus",
                                f"{where}: grace_days, timeout, retries, page_size: numbers expected") from None
        if src.grace_days < 0 or src.timeout <= 0 or src.page_size < 1:
            raise _config_error(path, f"{where} : valeurs numériques hors limites",
                                f"{where}: numeric values out of range")
        out.append(src)
    return out


# --------------------------------------------------------------------------------------------
# Records read from sources
# --------------------------------------------------------------------------------------------
class RecordError(Exception):
    def __init__(self, fr: str, en: str):
        super().__init__(en)
        self.fr, self.en = fr, en


@dataclass
class Record:
    original_id: str
    name: str
    title: str
    original_url: str | None = None
    modified: str | None = None
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    license_id: str | None = None
    license_url: str | None = None
    conforms_to: list[str] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)  # name, url, format, description, hash, key
    publisher: dict[str, Any] | None = None  # the original publisher: {"id", "name"} (name: text or {fr, en})
    package: str | None = None  # a Préau source's datapackage.json (URL or local path), copied by local harvests

    def content_hash(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if v is not None}
        return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Fetched:
    records: list[Record] = field(default_factory=list)
    malformed: list[tuple[str, str, str, str | None]] = field(default_factory=list)  # where, fr, en, id
    pages: int = 0
    skipped: int = 0  # records the source itself harvested elsewhere (never re-harvested: no loops)


def _slug(text: str, limit: int = 100) -> str:
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^a-z0-9_-]+", "-", text).strip("-_")
    return text[:limit].strip("-_")


def _tag(text: str) -> str | None:
    t = re.sub(r"[^\w .-]+", " ", str(text), flags=re.UNICODE).strip()[:100]
    return t if len(t) >= 2 else None


def _http_get(url: str, src: Source, sleep: Callable[[float], None], session: requests.Session) -> requests.Response:
    """GET with a timeout and bounded retries (timeouts, connection errors, 429, 5xx)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            resp = session.get(url, timeout=src.timeout, headers={"User-Agent": USER_AGENT})
            if resp.status_code not in (429, 500, 502, 503, 504):
                resp.raise_for_status()
                return resp
            failure = f"HTTP {resp.status_code}"
        except (requests.Timeout, requests.ConnectionError) as exc:
            failure = type(exc).__name__
        if attempt > src.retries:
            raise requests.RequestException(failure)
        sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))


# ---- CKAN sources ----
def _record_from_ckan(src: Source, pkg: dict) -> Record:
    if not isinstance(pkg, dict) or not pkg.get("id") or not pkg.get("name"):
        raise RecordError("jeu sans id ou sans name", "dataset without id or name")
    extras = {e.get("key"): e.get("value") for e in pkg.get("extras") or [] if isinstance(e, dict)}
    resources = []
    for r in pkg.get("resources") or []:
        if not r.get("url"):
            raise RecordError(f"ressource {r.get('id')} sans url", f"resource {r.get('id')} without url")
        resources.append({"key": r.get("id") or r["url"], "name": r.get("name") or "", "url": r["url"],
                          "format": r.get("format") or "", "description": r.get("description") or "",
                          "hash": r.get("hash") or "", "source_modified": r.get("last_modified") or r.get("metadata_modified") or ""})
    conforms = [str(v) for k, v in extras.items() if k in ("conforms_to", "preau_schema", "schema") and v]
    return Record(original_id=pkg["id"], name=pkg["name"], title=pkg.get("title") or pkg["name"],
                  original_url=f"{src.url}/dataset/{pkg['name']}", modified=pkg.get("metadata_modified"),
                  notes=pkg.get("notes") or "", tags=sorted(t["name"] for t in pkg.get("tags") or []),
                  license_id=pkg.get("license_id"), license_url=pkg.get("license_url"),
                  conforms_to=conforms, resources=resources, publisher=_ckan_publisher(pkg))


def _ckan_publisher(pkg: dict) -> dict[str, Any] | None:
    org = pkg.get("organization")
    if isinstance(org, dict) and org.get("name"):
        return {"id": str(org["name"]), "name": str(org.get("title") or org["name"])}
    return None


def fetch_ckan(src: Source, sleep: Callable[[float], None] = time.sleep) -> Fetched:
    client = CkanClient(src.url, None, timeout=src.timeout, retries=src.retries, sleep=sleep)
    client.session.headers["User-Agent"] = USER_AGENT
    out, start = Fetched(), 0
    fq = src.filters.get("fq")
    if src.filters.get("organization"):
        fq = f'{fq + " " if fq else ""}organization:"{src.filters["organization"]}"'
    while out.pages < src.max_pages:
        page = client.action("package_search", {"q": "*:*", "rows": src.page_size, "start": start,
                                                 "sort": "metadata_created asc, name asc",
                                                 **({"fq": fq} if fq else {})})
        out.pages += 1
        results = page.get("results") or []
        for pkg in results:
            try:
                out.records.append(_record_from_ckan(src, pkg))
            except RecordError as exc:
                out.malformed.append((str(pkg.get("name") or pkg.get("id") or "?"), exc.fr, exc.en, pkg.get("id")))
        start += len(results)
        if not results or start >= int(page.get("count") or 0):
            break
    return out


# ---- DCAT feeds ----
def fetch_dcat(src: Source, sleep: Callable[[float], None] = time.sleep,
               session: requests.Session | None = None) -> Fetched:
    from rdflib import Graph, Literal, Namespace, URIRef
    from rdflib.namespace import DCAT, DCTERMS, RDF

    hydra = Namespace("http://www.w3.org/ns/hydra/core#")
    session = session or requests.Session()
    out = Fetched()
    location: str | None = src.url or str(src.path)
    seen_pages: set[str] = set()
    while location and location not in seen_pages and out.pages < src.max_pages:
        seen_pages.add(location)
        g = Graph()
        if src.url:
            resp = _http_get(location, src, sleep, session)
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
            fmt = _rdf_format(ctype, location)
            g.parse(data=resp.content, format=fmt, publicID=location)
        else:
            g.parse(location, format=_rdf_format("", location))
        out.pages += 1

        def text(node, prop, prefer="fr"):
            vals = [o for o in g.objects(node, prop)]
            for o in vals:
                if isinstance(o, Literal) and o.language == prefer:
                    return str(o)
            return str(vals[0]) if vals else None

        for ds in sorted(set(g.subjects(RDF.type, DCAT.Dataset)), key=str):
            ident = text(ds, DCTERMS.identifier) or (str(ds) if isinstance(ds, URIRef) else None)
            where = ident or str(ds)
            try:
                if not ident:
                    raise RecordError("jeu sans dct:identifier ni URI", "dataset without dct:identifier or URI")
                title = text(ds, DCTERMS.title)
                if not title:
                    raise RecordError("dct:title manquant", "dct:title missing")
                resources = []
                for dist in sorted(g.objects(ds, DCAT.distribution), key=str):
                    url = g.value(dist, DCAT.downloadURL) or g.value(dist, DCAT.accessURL)
                    if url is None:
                        raise RecordError("distribution sans dcat:downloadURL ni dcat:accessURL",
                                          "distribution without dcat:downloadURL or dcat:accessURL")
                    fmt = g.value(dist, DCTERMS.format) or g.value(dist, DCAT.mediaType)
                    fmt = str(fmt).rstrip("/").rsplit("/", 1)[-1] if fmt is not None else ""
                    resources.append({"key": str(dist) if isinstance(dist, URIRef) else str(url),
                                      "name": text(dist, DCTERMS.title) or str(url).rsplit("/", 1)[-1],
                                      "url": str(url), "format": fmt,
                                      "description": text(dist, DCTERMS.description) or "", "hash": "",
                                      "source_modified": text(dist, DCTERMS.modified) or ""})
                lic = g.value(ds, DCTERMS.license) or next(
                    (g.value(d, DCTERMS.license) for d in g.objects(ds, DCAT.distribution)
                     if g.value(d, DCTERMS.license) is not None), None)
                tail = re.split(r"[/#]", ident.rstrip("/"))[-1]
                name = f"{_slug(tail, 60) or 'jeu'}-{hashlib.sha1(ident.encode()).hexdigest()[:6]}"
                landing = g.value(ds, DCAT.landingPage)
                out.records.append(Record(
                    original_id=ident, name=name, title=title,
                    original_url=str(landing) if landing is not None else (str(ds) if isinstance(ds, URIRef) else None),
                    modified=text(ds, DCTERMS.modified) or text(ds, DCTERMS.issued),
                    notes=text(ds, DCTERMS.description) or "",
                    tags=sorted({str(k) for k in g.objects(ds, DCAT.keyword)}),
                    license_url=str(lic) if lic is not None else None,
                    conforms_to=sorted(str(c) for c in g.objects(ds, DCTERMS.conformsTo)),
                    resources=resources, publisher=_dcat_publisher(g, ds, text)))
            except RecordError as exc:
                out.malformed.append((where, exc.fr, exc.en, ident))
        nxt = None
        for pred in (hydra.next, hydra.nextPage):
            for o in g.objects(None, pred):
                nxt = str(o)
        location = urljoin(location, nxt) if (nxt and src.url) else (nxt if nxt and Path(nxt).exists() else None)
    return out


def _dcat_publisher(g, ds, text) -> dict[str, Any] | None:
    from rdflib.namespace import DCTERMS, FOAF

    node = g.value(ds, DCTERMS.publisher)
    name = text(node, FOAF.name) if node is not None else None
    return {"id": _slug(name, 60) or "editeur", "name": name} if name else None


def _rdf_format(ctype: str, location: str) -> str:
    if "turtle" in ctype or location.endswith(".ttl"):
        return "turtle"
    if "json" in ctype or location.endswith((".jsonld", ".json")):
        return "json-ld"
    if "xml" in ctype or location.endswith((".rdf", ".xml")):
        return "xml"
    return "turtle"


# ---- Préau file catalogs ----
def fetch_preau(src: Source, sleep: Callable[[float], None] = time.sleep,
                session: requests.Session | None = None) -> Fetched:
    out = Fetched()
    if src.url:
        base = src.url.rstrip("/") + "/"
        resp = _http_get(base + "catalog.json", src, sleep, session or requests.Session())
        raw = resp.content
    else:
        base = (src.base_url.rstrip("/") + "/") if src.base_url else None
        raw = (src.path / "catalog.json").read_bytes()
    out.pages = 1
    try:
        index = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"catalog.json: {exc}") from None
    if not isinstance(index, dict) or not isinstance(index.get("datasets"), list):
        raise ValueError("catalog.json: a 'datasets' list is expected")
    publishers = {p["id"]: p for p in index.get("publishers") or [] if isinstance(p, dict) and p.get("id")}
    for i, entry in enumerate(index["datasets"], 1):
        where = f"catalog.json datasets[{i}]"
        if isinstance(entry, dict) and entry.get("harvest"):
            out.skipped += 1  # a copy this catalog harvested itself: harvest it from its own source
            continue
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                raise RecordError("name manquant", "name missing")
            where = entry["name"]
            title = entry.get("title")
            title = (title.get("fr") or title.get("en")) if isinstance(title, dict) else title
            if not isinstance(title, str) or not title.strip():
                raise RecordError("title manquant", "title missing")
            desc = entry.get("description")
            desc = (desc.get("fr") or desc.get("en") or "") if isinstance(desc, dict) else (desc or "")
            lic = entry.get("licence")
            resources = []
            for r in entry.get("resources") or []:
                if not isinstance(r, dict) or not r.get("path"):
                    raise RecordError("ressource sans path", "resource without path")
                if not _relative(r["path"]):
                    raise RecordError("ressource : chemin relatif au catalogue attendu",
                                      "resource: a path relative to the catalog is expected")
                url = urljoin(base, r["path"]) if base else str((src.path / r["path"]).resolve())
                resources.append({"key": r["path"], "name": r.get("name") or r["path"].rsplit("/", 1)[-1],
                                  "url": url, "format": str(r.get("format") or "").upper(),
                                  "description": "", "hash": str(r.get("hash") or "").removeprefix("sha256:"),
                                  "source_modified": ""})
            schema = entry.get("schema")
            if isinstance(schema, dict):  # {"name", "version", "path", ...}
                conforms = [str(schema[k]) for k in ("url", "name", "path") if schema.get(k)]
                if schema.get("name") and schema.get("version"):
                    conforms.append(f"{schema['name']}@{schema['version']}")
            else:
                conforms = [str(schema)] if schema else []
            pub_id = entry.get("publisher") if isinstance(entry.get("publisher"), str) else None
            pub = {"id": pub_id, "name": (publishers.get(pub_id) or {}).get("name") or pub_id} if pub_id else None
            package = None
            if isinstance(entry.get("path"), str) and _relative(entry["path"]):
                package = urljoin(src.url.rstrip("/") + "/", entry["path"]) if src.url else str(src.path / entry["path"])
            out.records.append(Record(
                original_id=entry["name"], name=entry["name"], title=title, notes=str(desc),
                original_url=urljoin(base, entry.get("path") or "") if base else None,
                modified=entry.get("modified") or index.get("generated"),
                tags=sorted(str(k) for k in entry.get("keywords") or []),
                license_id=(lic.get("id") if isinstance(lic, dict) else lic) or None,
                license_url=lic.get("url") if isinstance(lic, dict) else None,
                conforms_to=conforms, resources=resources, publisher=pub, package=package))
        except RecordError as exc:
            out.malformed.append((where, exc.fr, exc.en, entry.get("name") if isinstance(entry, dict) else None))
    return out


def _relative(path: str) -> bool:
    """A path inside the catalog (no scheme, not absolute, no ``..``): a source never points us elsewhere."""
    return (isinstance(path, str) and bool(path) and "\\" not in path and ":" not in path
            and not path.startswith("/") and ".." not in path.split("/"))


FETCHERS = {"ckan": fetch_ckan, "dcat": fetch_dcat, "preau": fetch_preau}


def publisher_name(publisher: dict[str, Any] | None, lang: str = "fr") -> str:
    """The display name of an original publisher ({"id", "name"}; name as text or {fr, en})."""
    if not publisher:
        return ""
    name = publisher.get("name")
    if isinstance(name, dict):
        name = name.get(lang) or name.get("fr") or name.get("en")
    return str(name or publisher.get("id") or "")


def _keep(src: Source, rec: Record) -> bool:
    want = src.filters.get("conforms_to")
    if want and not any(str(want) in c for c in rec.conforms_to):
        return False
    tags = src.filters.get("tags")
    if tags and not set(tags) & set(rec.tags):
        return False
    return True


# --------------------------------------------------------------------------------------------
# Health report
# --------------------------------------------------------------------------------------------
COUNTERS = ("created", "updated", "unchanged", "restored", "archived", "deleted", "filtered", "failed")
LABELS = {"created": ("créés", "created"), "updated": ("mis à jour", "updated"),
          "unchanged": ("inchangés", "unchanged"), "restored": ("restaurés", "restored"),
          "archived": ("archivés", "archived"), "deleted": ("supprimés", "deleted"),
          "filtered": ("filtrés", "filtered out"), "failed": ("en échec", "failed")}


@dataclass
class SourceHealth:
    name: str
    kind: str
    location: str
    status: str = "ok"  # ok | partial (some records failed) | failed (source unreadable)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    problems: list[Problem] = field(default_factory=list)
    pages: int = 0
    records: int = 0
    writes: int = 0
    seconds: float = 0.0
    datasets: dict[str, str] = field(default_factory=dict)  # central name -> action

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "location": self.location, "status": self.status,
                "counts": self.counts, "pages": self.pages, "records": self.records, "writes": self.writes,
                "seconds": round(self.seconds, 3), "datasets": self.datasets,
                "problems": [p.to_dict() for p in self.problems]}


@dataclass
class HarvestReport:
    sources: list[SourceHealth] = field(default_factory=list)
    dry_run: bool = False
    started: str = ""
    target: str = ""  # the central CKAN's URL, or local:<catalog folder>

    def source(self, name: str) -> SourceHealth:
        return next(s for s in self.sources if s.name == name)

    @property
    def writes(self) -> int:
        return sum(s.writes for s in self.sources)

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.sources)

    def to_dict(self) -> dict:
        return {"started": self.started, "target": self.target, "dry_run": self.dry_run, "writes": self.writes,
                "sources": [s.to_dict() for s in self.sources]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    def render(self, lang: str | None = None) -> str:
        en = current_lang(lang) == "en"
        status = {"ok": ("OK", "OK"), "partial": ("partiel", "partial"), "failed": ("ÉCHEC", "FAILED")}
        lines = [("Dry run — nothing written" if en else "Simulation — rien n'est écrit")] if self.dry_run else []
        if self.target:
            lines.append(f"Target: {self.target}" if en else f"Cible : {self.target}")
        for s in self.sources:
            counts = ", ".join(f"{s.counts[c]} {LABELS[c][1 if en else 0]}" for c in COUNTERS if s.counts[c])
            lines.append(f"{s.name} ({s.kind}, {s.location}) : {status[s.status][1 if en else 0]} — "
                         f"{counts or ('nothing' if en else 'rien')} ; {s.records} "
                         f"{'records' if en else 'fiches'}, {s.pages} page(s), {s.writes} "
                         f"{'writes' if en else 'écritures'}, {s.seconds:.1f} s")
            for p in s.problems:
                lines.append("  - " + p.render(lang))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Central catalog
# --------------------------------------------------------------------------------------------
def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _extras(pkg: dict) -> dict[str, str]:
    return {e["key"]: e["value"] for e in pkg.get("extras") or []}


def central_datasets(client: CkanClient, source: str) -> dict[str, dict]:
    """Central datasets harvested from ``source`` (archived ones included): original id -> dataset."""
    found: dict[str, dict] = {}
    start = 0
    while True:
        page = client.action("package_search", {
            "q": "*:*", "fq": f'extras_harvest_source:"{source}"', "include_private": True,
            "rows": 1000, "start": start, "sort": "name asc"})
        for pkg in page.get("results") or []:
            ex = _extras(pkg)
            if ex.get("harvest_source") == source and ex.get("harvest_original_id"):
                found[ex["harvest_original_id"]] = pkg
        start += len(page.get("results") or [])
        if not page.get("results") or start >= int(page.get("count") or 0):
            return found


def _want(src: Source, rec: Record, org_id: str, harvested: str, digest: str) -> dict:
    prov_fr = (f"Moissonné depuis « {src.title or src.name} » ({src.kind} : {src.location}), fiche "
               f"d'origine {rec.original_url or rec.original_id}, modifiée à la source le "
               f"{rec.modified or 'inconnu'}, moissonnée le {harvested}.")
    extras = {
        "harvest_source": src.name, "harvest_source_kind": src.kind,
        "harvest_source_url": src.location, "harvest_source_title": src.title or src.name,
        "harvest_original_id": rec.original_id, "harvest_original_url": rec.original_url or "",
        "harvest_source_modified": rec.modified or "", "harvest_time": harvested,
        "harvest_hash": digest, "harvest_status": "active", "harvest_resources": src.resources,
        "provenance": prov_fr,
    }
    if rec.license_url:
        extras["harvest_license_url"] = rec.license_url
    if rec.conforms_to:
        extras["harvest_conforms_to"] = " ".join(rec.conforms_to)
    if rec.publisher:
        extras["harvest_publisher"] = publisher_name(rec.publisher)
    tags = sorted({t for t in (_tag(x) for x in rec.tags) if t})
    return {
        "name": _slug(f"{src.name}-{rec.name}"), "title": rec.title, "notes": rec.notes,
        "owner_org": org_id, "private": False, "url": rec.original_url or "",
        "license_id": rec.license_id or "", "tags": [{"name": t} for t in tags],
        "extras": [{"key": k, "value": v} for k, v in sorted(extras.items()) if v != ""],
    }


class _Central:
    def __init__(self, client: CkanClient, dry_run: bool):
        self.client, self.dry_run = client, dry_run

    def write(self, health: SourceHealth, action: str, data: dict, **kw) -> Any:
        health.writes += 1
        if self.dry_run:
            return None
        return self.client.action(action, data, **kw)


def _mirror(central: _Central, health: SourceHealth, src: Source, rec: Record, pkg: dict,
            session: requests.Session, sleep) -> None:
    """Upload resources whose content changed (sha256 compared with the central ``hash``)."""
    have = {r.get("harvest_key"): r for r in pkg.get("resources") or []}
    for res in rec.resources:
        with tempfile.TemporaryDirectory(prefix="preau-harvest-") as tmp:
            dest = Path(tmp) / (_slug(res["name"], 80) or "fichier")
            if res["url"].startswith(("http://", "https://")):
                dest.write_bytes(_http_get(res["url"], src, sleep, session).content)
            else:
                dest.write_bytes(Path(res["url"]).read_bytes())
            digest = hashlib.sha256(dest.read_bytes()).hexdigest()
            old = have.get(res["key"])
            if old is not None and old.get("hash") == digest:
                continue
            data = {"name": res["name"], "format": res["format"], "description": res["description"],
                    "hash": digest, "harvest_key": res["key"], "harvest_original_url": res["url"]}
            if old is None:
                central.write(health, "resource_create", {**data, "package_id": pkg["id"]}, upload=dest)
            else:
                central.write(health, "resource_update", {**data, "id": old["id"]}, upload=dest)


def _resources_payload(src: Source, rec: Record, existing: dict | None) -> list[dict]:
    have = {r.get("harvest_key"): r for r in (existing or {}).get("resources") or []}
    if src.resources == "mirror":  # keep the mirrored files; _mirror uploads what changed
        keys = {r["key"] for r in rec.resources}
        return [r for k, r in have.items() if k in keys]
    out = []
    for res in rec.resources:
        item = {"name": res["name"], "url": res["url"], "format": res["format"],
                "description": res["description"], "harvest_key": res["key"]}
        if res.get("hash"):
            item["hash"] = res["hash"]
        if res["key"] in have:
            item["id"] = have[res["key"]]["id"]
        out.append(item)
    return out


def read_source(src: "Source", health: "SourceHealth", problem, *, fetch=None, sleep=time.sleep, t0: float = 0.0):
    """Read a source with its fetcher into ``health`` (pages, records, filtered, malformed records
    reported and counted as failed). ``None`` when the source cannot be read: the source has failed
    and nothing of it is archived (shared by the CKAN and the local-catalog harvests)."""
    try:
        fetched = (fetch or FETCHERS[src.kind])(src, sleep=sleep)
    except Exception as exc:  # noqa: BLE001 - any failure to read the source fails this source only
        health.status = "failed"
        reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        problem("harvest-source-unreadable", f"source illisible ({reason[:300]}) : rien n'est archivé",
                f"source unreadable ({reason[:300]}): nothing is archived")
        health.seconds = time.perf_counter() - t0
        return None
    health.pages = fetched.pages
    health.records = len(fetched.records) + len(fetched.malformed)
    health.counts["filtered"] += fetched.skipped
    for where, fr, en, _ in fetched.malformed:
        health.counts["failed"] += 1
        problem("harvest-record-malformed", f"fiche ignorée : {fr}", f"record skipped: {en}", where)
    return fetched



def harvest_source(src: Source, client: CkanClient, *, dry_run: bool = False,
                   now: Callable[[], datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
                   fetch: Callable[..., Fetched] | None = None) -> SourceHealth:
    """Harvest one source into the central CKAN behind ``client``; never raises for source trouble."""
    now = now or (lambda: datetime.now(timezone.utc))
    t0 = time.perf_counter()
    health = SourceHealth(src.name, src.kind, src.location)
    central = _Central(client, dry_run)
    session = requests.Session()

    def problem(code, fr, en, where=None, severity="error"):
        health.problems.append(Problem(code, fr, en, file=src.name, field=where, severity=severity))

    fetched = read_source(src, health, problem, fetch=fetch, sleep=sleep, t0=t0)
    if fetched is None:
        return health

    try:
        org = client.get("organization_show", {"id": src.organization})
        if org is None:
            org = central.write(health, "organization_create",
                                {"name": src.organization, "title": src.title or src.organization}) \
                or {"id": src.organization}
        existing = central_datasets(client, src.name)
    except CkanError as exc:
        health.status = "failed"
        problem("harvest-central", f"catalogue central : {exc.kind} {exc.status or ''} {exc.message[:200]}",
                f"central catalog: {exc.kind} {exc.status or ''} {exc.message[:200]}")
        health.seconds = time.perf_counter() - t0
        return health

    current = now()
    harvested = _iso(current)
    seen = {m[3] for m in fetched.malformed if m[3]}  # a malformed record is not "gone"
    for rec in fetched.records:
        if not _keep(src, rec):  # out of the filter's scope: not kept, so archived if harvested before
            health.counts["filtered"] += 1
            continue
        seen.add(rec.original_id)
        have = existing.get(rec.original_id)
        digest = hashlib.sha256((rec.content_hash() + src.resources + src.organization).encode()).hexdigest()
        hx = _extras(have) if have else {}
        try:
            if have and hx.get("harvest_hash") == digest and hx.get("harvest_status") == "active" \
                    and not have.get("private"):
                health.counts["unchanged"] += 1
                health.datasets[have["name"]] = "unchanged"
                continue
            want = _want(src, rec, org["id"], harvested, digest)
            want["resources"] = _resources_payload(src, rec, have)
            if have is None:
                action = "created"
                pkg = central.write(health, "package_create", want)
            else:
                action = "restored" if hx.get("harvest_status") == "archived" else "updated"
                want["id"] = have["id"]
                want["name"] = have["name"]
                pkg = central.write(health, "package_update", want)
            if src.resources == "mirror" and pkg is not None:
                _mirror(central, health, src, rec, pkg, session, sleep)
            health.counts[action] += 1
            health.datasets[want["name"]] = action
        except (CkanError, requests.RequestException, OSError) as exc:
            health.counts["failed"] += 1
            msg = exc.message[:300] if isinstance(exc, CkanError) else type(exc).__name__
            problem("harvest-record-write", f"écriture refusée par le catalogue central : {msg}",
                    f"write refused by the central catalog: {msg}", rec.original_id)

    grace = timedelta(days=src.grace_days)
    for original_id, pkg in sorted(existing.items()):
        if original_id in seen:
            continue
        ex = _extras(pkg)
        try:
            if ex.get("harvest_status") != "archived":
                extras = {**ex, "harvest_status": "archived", "harvest_archived_at": harvested}
                central.write(health, "package_patch", {
                    "id": pkg["id"], "private": True,
                    "extras": [{"key": k, "value": v} for k, v in sorted(extras.items())]})
                health.counts["archived"] += 1
                health.datasets[pkg["name"]] = "archived"
            else:
                since = _parse_iso(ex.get("harvest_archived_at")) or current
                if current - since >= grace:
                    try:
                        central.write(health, "dataset_purge", {"id": pkg["id"]})
                    except CkanError as exc:
                        if exc.kind != "auth":
                            raise
                        central.write(health, "package_delete", {"id": pkg["id"]})
                    health.counts["deleted"] += 1
                    health.datasets[pkg["name"]] = "deleted"
                else:
                    health.datasets[pkg["name"]] = "archived (waiting)"
        except CkanError as exc:
            health.counts["failed"] += 1
            problem("harvest-record-write", f"archivage/suppression refusé : {exc.message[:300]}",
                    f"archive/delete refused: {exc.message[:300]}", original_id)
    if health.counts["failed"]:
        health.status = "partial"
    health.seconds = time.perf_counter() - t0
    return health


def harvest(sources: str | Path | list[Source], url: str | None = None, token: str | None = None, *,
            env: Mapping[str, str] | None = None, only: str | None = None, dry_run: bool = False, now: Callable[[], datetime] | None = None,
            sleep: Callable[[float], None] = time.sleep, timeout: float = 60.0, into: str | None = None) -> HarvestReport:
    """Harvest every source of ``sources`` (a sources.toml path or a list) into the CKAN at ``url``.

    ``into``: ``None`` or ``"ckan"`` = the central CKAN; ``"local:PATH"`` = the local file catalog
    at PATH (e.g. ``local:_build/catalog``, what the static site shows; see
    :mod:`preau.catalog.harvest_local`; no CKAN needed, ``url``/``token`` unused).

    ``url`` / ``token`` default to ``PREAU_CKAN_URL`` / ``PREAU_CKAN_TOKEN`` from ``env`` (or the
    process environment). The token is never printed or put in a message.

    ``only``: the name of one source. Raises :class:`PreauError` for configuration mistakes
    (sources file, unknown source, missing central URL or token, central catalog unreachable or
    token refused); trouble with one source or record is reported in the returned report.
    """
    srcs = load_sources(sources) if isinstance(sources, (str, Path)) else list(sources)
    if only:
        srcs = [s for s in srcs if s.name == only]
        if not srcs:
            raise PreauError(Problem("harvest-source-unknown", f"source inconnue « {only} »",
                                     f"unknown source '{only}'", field="--source"))
    if into not in (None, "", "ckan"):
        if not into.startswith("local:") or not into[len("local:"):].strip():
            raise PreauError(Problem("harvest-target", f"cible inconnue « {into} » (ckan ou local:DOSSIER)",
                                     f"unknown target '{into}' (ckan or local:FOLDER)", field="--into"))
        from preau.catalog.harvest_local import harvest_local

        return harvest_local(srcs, Path(into[len("local:"):].strip()), dry_run=dry_run, now=now, sleep=sleep)
    if url is None or token is None:
        env_url, env_token = ckan_settings(env)
        url, token = url or env_url, token or env_token
    if not url or not url.startswith(("http://", "https://")):
        raise PreauError(Problem("ckan-config", "PREAU_CKAN_URL doit donner l'adresse du CKAN central (http://…)",
                                 "PREAU_CKAN_URL must give the central CKAN's address (http://…)",
                                 field="PREAU_CKAN_URL"))
    if not token:
        raise PreauError(Problem("ckan-config", "PREAU_CKAN_TOKEN (jeton d'API du CKAN central) n'est pas défini",
                                 "PREAU_CKAN_TOKEN (the central CKAN's API token) is not set",
                                 field="PREAU_CKAN_TOKEN"))
    client = CkanClient(url, token, timeout=timeout, retries=3, sleep=sleep)
    client.session.headers["User-Agent"] = USER_AGENT
    try:
        client.action("status_show")
        # an unknown token makes CKAN answer as to an anonymous visitor: ask for something only
        # a logged-in user may read (activity plugin; skipped when the action does not exist)
        try:
            client.action("dashboard_activity_list", {"limit": 1})
        except CkanError as exc:
            if exc.kind == "auth":
                raise
    except CkanError as exc:
        if exc.kind == "auth":
            fr, en = "jeton refusé par le CKAN central (expiré ou faux)", "token refused by the central CKAN (expired or wrong)"
        else:
            fr = f"CKAN central injoignable ou invalide à {url} ({exc.kind} {exc.status or ''})"
            en = f"central CKAN unreachable or invalid at {url} ({exc.kind} {exc.status or ''})"
        raise PreauError(Problem("harvest-central", fr, en, field="PREAU_CKAN_URL")) from None
    report = HarvestReport(dry_run=dry_run, started=_iso((now or (lambda: datetime.now(timezone.utc)))()), target=url)
    for src in srcs:
        report.sources.append(harvest_source(src, client, dry_run=dry_run, now=now, sleep=sleep))
    return report
