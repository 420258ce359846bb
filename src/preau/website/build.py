"""Build the static site from the local file catalog (``_build/catalog/`` → ``_build/site/``).

Pages: home with client-side search and facets, one page per dataset (+ its validation report),
schema pages, publisher pages, one page per school (UAI) with an inline SVG chart, and one sector
map page per publisher (Leaflet, copied from ``node_modules``: nothing from a CDN). French at ``/``,
English at ``/en/`` (the other way round with ``lang_default="en"``).

Incremental: ``.preau-site.json`` in the output keeps, for every written file, the hash of its inputs
(templates + page data, or the source file's sha256). A rebuild renders and writes only the files
whose inputs changed, and removes the files no longer produced.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import jinja2
from markupsafe import Markup, escape

from preau.errors import PreauError, Report, rel
from preau.i18n import pick
from preau.website.model import LEVELS, SAFE_NAME, Catalog, data_csv, department, fold, layer_file, load_catalog
from preau.website.strings import STRINGS
from preau.website.svg import bar_chart

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = ".preau-site.json"
MANIFEST_VERSION = 2
PREVIEW_ROWS = 10
PARALLEL_FROM = 2000  # schools: below, one process renders everything
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'")
DIRS = {"dataset": "jeux-de-donnees", "schema": "schemas", "publisher": "editeurs", "school": "ecoles",
        "map": "cartes", "files": "fichiers"}
THEMES = {"education": ("Éducation", "Education"), "geographie": ("Géographie", "Geography")}
FORMATS = {"csv": "CSV", "parquet": "Parquet", "geojson": "GeoJSON", "gpkg": "GeoPackage", "fgb": "FlatGeobuf",
           "json": "JSON", "svg": "SVG"}
SECTOR_PALETTE = ["#8fb8de", "#f2b880", "#a8d5a2", "#e6a3b5", "#c9b3e0", "#f0dc82", "#9fd8d3", "#d9c1a3"]


@dataclass
class SiteResult:
    """What a build did; ``written`` lists the files (re)written, relative to ``out_dir``."""

    out_dir: Path
    pages: int = 0  # HTML pages the site holds
    files: int = 0  # every file the site holds (pages, data, assets)
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    report: Report = field(default_factory=Report)

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "pages": self.pages, "files": self.files,
                "written": len(self.written), "removed": len(self.removed), "seconds": round(self.seconds, 3),
                "pages_per_second": round(self.pages_per_second, 1), "report": self.report.to_dict()}


# ------------------------------------------------------------------------------------------ helpers
def human_size(n: int | None, lang: str) -> str:
    if n is None:
        return ""
    units = ("o", "ko", "Mo", "Go") if lang == "fr" else ("B", "kB", "MB", "GB")
    value = float(n)
    for unit in units:
        if value < 1000 or unit == units[-1]:
            text = f"{value:.0f} {unit}" if unit == units[0] else f"{value:.1f} {unit}"
            return text.replace(".", ",") if lang == "fr" else text
        value /= 1000
    return str(n)


def _number(n: Any, lang: str) -> str:
    if not isinstance(n, int):
        return "" if n is None else str(n)
    text = f"{n:,}"
    return text.replace(",", "\u202f") if lang == "fr" else text


_MD_CODE = re.compile(r"`([^`]+)`")
_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


def mini_markdown(text: str) -> Markup:
    """Headings, lists and paragraphs of a CHANGELOG/README, escaped (no raw HTML passes)."""
    out: list[str] = []
    in_list = False
    for line in text.splitlines():
        stripped = line.strip()
        inline = lambda s: _MD_LINK.sub(r'<a href="\2">\1</a>', _MD_CODE.sub(r"<code>\1</code>", str(escape(s))))  # noqa: E731
        if stripped.startswith(("- ", "* ")):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{inline(stripped[2:])}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if not stripped:
            continue
        m = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if m:
            level = min(6, len(m.group(1)) + 2)
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        else:
            out.append(f"<p>{inline(stripped)}</p>")
    if in_list:
        out.append("</ul>")
    return Markup("\n".join(out))


def _constraints(f: dict[str, Any], t: dict[str, str]) -> list[str]:
    c = f.get("constraints") or {}
    out = []
    if c.get("required"):
        out.append(t["required"])
    if c.get("unique"):
        out.append(t["unique"])
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "longueur ≥" if t is STRINGS["fr"] else "length ≥"),
                       ("maxLength", "longueur ≤" if t is STRINGS["fr"] else "length ≤")):
        if key in c:
            out.append(f"{label} {c[key]}")
    if "pattern" in c:
        out.append(f"motif {c['pattern']}" if t is STRINGS["fr"] else f"pattern {c['pattern']}")
    if "enum" in c:
        out.append(("valeurs : " if t is STRINGS["fr"] else "values: ") + ", ".join(map(str, c["enum"])))
    if f.get("format") and f.get("format") != "default":
        out.append(f"format {f['format']}")
    return out


def _when(text: str | None) -> dict[str, str] | None:
    """An ISO date or time as shown: fr ``23/11/2026 à 08:00 UTC``, en ``2026-11-23 08:00 UTC``."""
    if not text:
        return None
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]00:?00)?)?", str(text))
    if not m:
        return {"fr": str(text), "en": str(text)}
    y, mo, d, hh, mm, z = m.groups()
    zone = " UTC" if z else ""
    return {"fr": f"{d}/{mo}/{y}" + (f" à {hh}:{mm}{zone}" if hh else ""),
            "en": f"{y}-{mo}-{d}" + (f" {hh}:{mm}{zone}" if hh else "")}


def _inside(path: Any) -> bool:
    """A relative path that stays inside the dataset's folder."""
    p = PurePosixPath(str(path))
    return not p.is_absolute() and ".." not in p.parts and "\\" not in str(path)


def _http(url: Any) -> str | None:
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def provenance(ds: dict[str, Any]) -> dict[str, Any] | None:
    """What the dataset page's "Moissonné depuis … / Harvested from …" block shows (None if local)."""
    h = ds.get("harvest")
    if not isinstance(h, dict):
        return None
    pub = h.get("publisher") if isinstance(h.get("publisher"), dict) else {}
    return {"source": h.get("source") or "", "source_title": h.get("source_title") or h.get("source") or "",
            "kind": h.get("source_kind") or "", "source_url": _http(h.get("source_url")),
            "original_id": h.get("original_id") or "", "original_url": _http(h.get("original_url")),
            "publisher": pub.get("name") or pub.get("id") or None,
            "harvested": h.get("harvested") or "", "harvested_text": _when(h.get("harvested")),
            "modified": h.get("source_modified") or "", "modified_text": _when(h.get("source_modified")),
            "mirrored": h.get("resources") == "mirror", "text": ds.get("provenance")}


def _hash(*parts: Any) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, ensure_ascii=False,
                                                          default=str).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _find_node_modules(workspace: Path | None) -> Path | None:
    candidates = []
    if workspace is not None:
        candidates.append(workspace / "node_modules")
    candidates += [Path.cwd() / "node_modules", PACKAGE_DIR.parents[2] / "node_modules"]
    for c in candidates:
        if (c / "leaflet" / "dist" / "leaflet.js").is_file():
            return c
    return None


# ------------------------------------------------------------------------------------------ builder
@dataclass
class _Page:
    path: str  # language-independent, e.g. "jeux-de-donnees/x/index.html"
    template: str
    ctx: dict[str, Any] | None
    title: dict[str, str] | str
    key: Any = None  # the page's inputs when they are smaller than its context (hashed instead)
    make: Any = None  # builds ctx lazily (with ``key``)


class _Builder:
    def __init__(self, cat: Catalog, out_dir: Path, workspace: Path | None, lang_default: str,
                 site_url: str, ckan_url: str):
        self.cat, self.out, self.ws = cat, out_dir, workspace
        self.langs = [lang_default] + [x for x in ("fr", "en") if x != lang_default]
        self.site_url = site_url.rstrip("/") + "/"
        self.ckan_url = ckan_url.rstrip("/")
        self.report = cat.report
        loaders: list[jinja2.BaseLoader] = []
        override = workspace / "site" if workspace is not None else None
        if override is not None and override.is_dir():
            loaders.append(jinja2.FileSystemLoader(str(override)))
        loaders.append(jinja2.FileSystemLoader(str(PACKAGE_DIR / "templates")))
        self.env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
        self.env.filters["size"] = human_size
        self.env.filters["number"] = _number
        self.env.globals["pick"] = pick
        self.env.globals["CSP"] = CSP
        # every template source (package + overrides): a template change re-renders every page
        sources = []
        for name in sorted(self.env.list_templates(extensions=["html"])):
            src, _, _ = self.env.loader.get_source(self.env, name)
            sources.append((name, src))
        self.templates_hash = _hash(MANIFEST_VERSION, sources, CSP, self.langs)
        old = {}
        try:
            old = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            old = {}
        self.old: dict[str, str] = old.get("files", {}) if old.get("version") == MANIFEST_VERSION else {}
        self.new: dict[str, str] = {}
        self.written: list[str] = []
        self.pages = 0
        self.node_modules = _find_node_modules(workspace)
        self._tpl_cache: dict[str, jinja2.Template] = {}
        self._dirs: set[Path] = set()
        self.workers: int | None = None
        self.schemas: dict[str, dict[str, Any]] = {}

    # --- low-level output ---------------------------------------------------------------------
    def _needs(self, relpath: str, key: str) -> bool:
        self.new[relpath] = key
        return self.old.get(relpath) != key or not (self.out / relpath).is_file()

    def write_bytes(self, relpath: str, data: bytes, key: str | None = None) -> None:
        key = key or hashlib.sha1(data).hexdigest()
        if self._needs(relpath, key):
            path = self.out / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self.written.append(relpath)

    def copy_file(self, src: Path, relpath: str, digest: str | None = None) -> None:
        st = src.stat()
        key = digest or f"stat:{st.st_size}:{st.st_mtime_ns}"
        if self._needs(relpath, key):
            dest = self.out / relpath
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
            self.written.append(relpath)

    def render(self, page: _Page) -> None:
        key = _hash(self.templates_hash, page.template, page.ctx if page.key is None else page.key)
        for i, lang in enumerate(self.langs):
            prefix = "" if i == 0 else f"{lang}/"
            relpath = prefix + page.path
            self.pages += 1
            if not self._needs(relpath, key):
                continue
            depth = relpath.count("/")
            root = "../" * depth
            home = root + prefix
            other = self.langs[1 - i]
            other_home = root + ("" if i == 1 else f"{other}/")
            page_dir = page.path[: -len("index.html")] if page.path.endswith("index.html") else page.path
            tpl = self._tpl_cache.get(page.template)
            if tpl is None:
                tpl = self._tpl_cache[page.template] = self.env.get_template(page.template)
            t = STRINGS[lang]
            if page.make is not None:  # context built only when the page is written
                page.ctx, page.make = page.make(), None
            html = tpl.render(page.ctx, lang=lang, t=t, root=root or "./", home=home or "./",
                              other_lang=other, other_url=(other_home or "./") + page_dir,
                              page_dir=page_dir, page_title=pick(page.title, lang) if isinstance(page.title, dict)
                              else t.get(page.title, page.title), dirs=DIRS)
            path = self.out / relpath
            parent = path.parent
            if parent not in self._dirs:
                parent.mkdir(parents=True, exist_ok=True)
                self._dirs.add(parent)
            with open(path, "wb") as fh:
                fh.write(html.encode("utf-8"))
            self.written.append(relpath)

    # --- content --------------------------------------------------------------------------------
    def dataset_schema(self, ds: dict[str, Any]) -> dict[str, Any] | None:
        meta = ds.get("schema") or {}
        path = meta.get("path") if isinstance(meta, dict) else None
        if not path:
            for r in ds["resources_full"]:
                if isinstance(r.get("schema"), str):
                    path = r["schema"]
                    break
        if (path and _inside(path) and SAFE_NAME.match(PurePosixPath(path).name)
                and (ds["folder"] / path).is_file()):
            try:
                return json.loads((ds["folder"] / path).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
        return None

    def load_schemas(self) -> None:
        """Schemas of the workspace (``schemas/*/schema.json``) + the pinned copies the catalog holds."""
        restricted: set[str] = set()
        if self.ws is not None and (self.ws / "datasets").is_dir():
            for p in sorted((self.ws / "datasets").glob("*.toml")):
                try:
                    raw = tomllib.loads(p.read_text(encoding="utf-8"))
                except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                    continue
                if raw.get("access") == "restricted" and isinstance(raw.get("schema"), str):
                    restricted.add(raw["schema"])
        public_schemas = {(d.get("schema") or {}).get("name") for d in self.cat.datasets if isinstance(d.get("schema"), dict)}
        restricted -= public_schemas
        if self.ws is not None and (self.ws / "schemas").is_dir():
            for p in sorted((self.ws / "schemas").glob("*/schema.json")):
                try:
                    schema = json.loads(p.read_text(encoding="utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self.report.warning("site-bad-schema", "schéma illisible : ignoré", "unreadable schema: skipped",
                                        file=rel(p))
                    continue
                if any(f.get("preau:personal") for f in schema.get("fields", [])):
                    continue  # input schemas describing personal fields are not published
                name = p.parent.name
                if SAFE_NAME.match(name) and name not in restricted:
                    self.schemas[name] = {"name": name, "schema": schema, "folder": p.parent, "datasets": []}
        for ds in self.cat.datasets:
            meta = ds.get("schema") if isinstance(ds.get("schema"), dict) else None
            name = (meta or {}).get("name")
            if not name or not SAFE_NAME.match(name):
                continue
            if name not in self.schemas:
                schema = self.dataset_schema(ds)
                if schema is None:
                    continue
                self.schemas[name] = {"name": name, "schema": schema, "folder": None, "datasets": []}
            self.schemas[name]["datasets"].append(ds["name"])

    def schema_fields(self, schema: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for lang in ("fr", "en"):
            t = STRINGS[lang]
            out[lang] = [{"name": f.get("name", ""), "type": f.get("type", "any"),
                          "title": pick(f.get("title", ""), lang), "description": pick(f.get("description", ""), lang),
                          "constraints": _constraints(f, t), "example": "" if f.get("example") is None else str(f["example"])}
                         for f in schema.get("fields", []) if isinstance(f, dict)]
        return out

    def preview_rows(self, ds: dict[str, Any]) -> dict[str, Any] | None:
        res = data_csv(ds)
        if res is None:
            return None
        rows: list[list[str]] = []
        with open(ds["folder"] / res["path"], encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            for row in reader:
                rows.append(row)
                if len(rows) >= PREVIEW_ROWS:
                    break
        return {"file": res["path"], "header": header or [], "rows": rows} if header else None

    def validation_report(self, ds: dict[str, Any]) -> dict[str, Any] | None:
        v = ds.get("validation") or {}
        report_path = v.get("report")
        if not report_path:
            return None
        name = PurePosixPath(report_path).name
        path = ds["folder"] / name
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        tasks = []
        raw_tasks = data.get("tasks") if isinstance(data.get("tasks"), list) else []
        if not raw_tasks and isinstance(data.get("errors"), list):
            raw_tasks = [{"name": ds["name"], "valid": data.get("valid"), "errors": data["errors"],
                          "stats": data.get("stats")}]
        for task in raw_tasks:
            errors = []
            for e in task.get("errors") or []:
                if not isinstance(e, dict):
                    continue
                errors.append({"type": e.get("type") or e.get("code") or "", "row": e.get("rowNumber") or "",
                               "field": e.get("fieldName") or ", ".join(e.get("fieldNames") or []),
                               "message": e.get("message") or e.get("note") or e.get("title") or "",
                               "count": e.get("count") or 1})
            tasks.append({"name": str(task.get("name") or (task.get("resource") or {}).get("name") or task.get("place") or ""),
                          "valid": task.get("valid"), "stats": task.get("stats") or {}, "errors": errors})
        return {"valid": data.get("valid", v.get("valid")), "stats": data.get("stats") or {}, "tasks": tasks,
                "file": name}

    def dataset_context(self, ds: dict[str, Any]) -> dict[str, Any]:
        name = ds["name"]
        files_dir = f"{DIRS['files']}/{name}/"
        downloads, by_year = [], {}
        for r in ds["resources_full"]:
            meta = r.get("preau") or {}
            role = meta.get("role", "data")
            fmt = (r.get("format") or PurePosixPath(r["path"]).suffix.lstrip(".")).lower()
            item = {"path": files_dir + r["path"], "file": PurePosixPath(r["path"]).name, "format": FORMATS.get(fmt, fmt.upper()),
                    "bytes": r.get("bytes"), "hash": str(r.get("hash") or "").split(":", 1)[-1],
                    "title": meta.get("title") or {"fr": r.get("title") or r["path"], "en": r.get("title") or r["path"]},
                    "rows": meta.get("rows"), "year": meta.get("school_year"), "role": role, "crs": meta.get("crs")}
            downloads.append(item)
            if role == "data":
                by_year.setdefault(meta.get("school_year") or "", []).append(item)
        for r in ds.get("resources_remote") or []:
            meta = r.get("preau") if isinstance(r.get("preau"), dict) else {}
            role = meta.get("role", "data")
            fname = PurePosixPath(r["path"].split("?", 1)[0]).name or r["path"]
            fmt = (r.get("format") or PurePosixPath(fname).suffix.lstrip(".")).lower()
            item = {"path": None, "url": r["path"], "file": fname, "format": FORMATS.get(fmt, fmt.upper()),
                    "bytes": r.get("bytes"), "hash": str(r.get("hash") or "").split(":", 1)[-1],
                    "title": meta.get("title") or {"fr": r.get("title") or fname, "en": r.get("title") or fname},
                    "rows": meta.get("rows"), "year": meta.get("school_year"), "role": role, "crs": meta.get("crs")}
            downloads.append(item)
            if role == "data":
                by_year.setdefault(meta.get("school_year") or "", []).append(item)
        versions = [{"year": y, "files": by_year[y]} for y in sorted(by_year, reverse=True) if y]
        schema = self.dataset_schema(ds)
        smeta = ds.get("schema") if isinstance(ds.get("schema"), dict) else {}
        disclosure = ds.get("disclosure") if isinstance(ds.get("disclosure"), dict) else None
        spatial = ds.get("spatial") or {}
        insee = [c for c in spatial.get("insee") or [] if isinstance(c, str)]
        csv_res = data_csv(ds)
        dcat_doc = None
        if (ds["folder"] / "dcat.jsonld").is_file():
            try:
                dcat_doc = json.loads((ds["folder"] / "dcat.jsonld").read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                dcat_doc = None
        preview_img = None
        prev = ds.get("meta", {}).get("preview")
        if prev and any(r["path"] == prev for r in ds["resources_full"]):
            preview_img = files_dir + prev
        pub = self.cat.publishers.get(ds["publisher"], {})
        has_map = ds["kind"] == "layer" and ds["publisher"] in self.maps
        return {
            "name": name, "dataset": ds["dataset"], "kind": ds["kind"], "title": ds.get("title") or name,
            "description": ds.get("description") or "", "keywords": ds.get("keywords") or [],
            "publisher": {"id": ds["publisher"], "name": pub.get("name") or ds["publisher"]},
            "licence": ds.get("licence") or {}, "frequency": ds.get("frequency"),
            "school_years": ds.get("school_years") or [], "temporal": ds.get("temporal") or {},
            "communes": len(set(insee)), "departments": sorted({department(c) for c in insee}),
            "downloads": downloads, "versions": versions,
            "schema": ({"name": smeta.get("name"), "version": smeta.get("version") or (schema or {}).get("version"),
                        "fields": self.schema_fields(schema), "published": smeta.get("name") in self.schemas}
                       if schema else None),
            "validation": ds.get("validation") or {},
            "disclosure": disclosure,
            "preview": self.preview_rows(ds) if ds["kind"] != "layer" else None,
            "preview_img": preview_img,
            "dcat": dcat_doc if dcat_doc is not None else self.harvest_jsonld(ds, pub),
            "datapackage": files_dir + "datapackage.json",
            "dcat_file": files_dir + "dcat.jsonld" if dcat_doc is not None else None,
            "api": {"action": f"{self.ckan_url}/api/3/action/package_show?id={name}", "ckan": self.ckan_url,
                    "csv_url": (self.site_url + files_dir + csv_res["path"]) if csv_res else None,
                    "datastore": f"{self.ckan_url}/api/3/action/datastore_search?resource_id=<id>&limit=5"},
            "has_map": has_map, "map_publisher": ds["publisher"],
            "harvest": provenance(ds),
        }

    def harvest_jsonld(self, ds: dict[str, Any], pub: dict[str, Any]) -> dict[str, Any] | None:
        """DCAT JSON-LD of a harvested copy: its provenance and the record it derives from."""
        prov = provenance(ds)
        if prov is None:
            return None
        text = ds.get("provenance") if isinstance(ds.get("provenance"), dict) else {}
        doc: dict[str, Any] = {
            "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                         "foaf": "http://xmlns.com/foaf/0.1/", "prov": "http://www.w3.org/ns/prov#",
                         "rdfs": "http://www.w3.org/2000/01/rdf-schema#"},
            "@id": f"{self.site_url}{DIRS['dataset']}/{ds['name']}/", "@type": "dcat:Dataset",
            "dct:identifier": ds["name"], "dct:title": pick(ds.get("title") or ds["name"], "fr"),
            "dct:publisher": {"@type": "foaf:Agent", "foaf:name": pick(pub.get("name") or ds["publisher"], "fr")},
            "dct:provenance": {"@type": "dct:ProvenanceStatement",
                               "rdfs:label": [{"@value": v, "@language": k} for k, v in sorted(text.items())
                                              if isinstance(v, str)]},
        }
        if prov["original_url"]:
            doc["prov:wasDerivedFrom"] = {"@id": prov["original_url"]}
        if prov["modified"]:
            doc["dct:modified"] = prov["modified"]
        return doc

    # --- page sets ------------------------------------------------------------------------------
    def find_maps(self) -> None:
        self.maps: dict[str, dict[str, Any]] = {}
        for ds in self.cat.datasets:
            if ds["kind"] != "layer":
                continue
            role = {"secteurs-scolaires": "sectors", "carte-ecoles": "schools", "communes": "communes"}.get(ds["dataset"])
            res = layer_file(ds)
            if role is None or res is None:
                continue
            m = self.maps.setdefault(ds["publisher"], {"layers": {}, "datasets": []})
            m["layers"][role] = f"{DIRS['files']}/{ds['name']}/{res['path']}"
            m["datasets"].append(ds["name"])
            if role == "sectors":
                m["sectors_ds"] = ds
        self.maps = {k: v for k, v in self.maps.items() if "sectors" in v["layers"]}

    def build(self) -> None:
        self.find_maps()
        self.load_schemas()
        self.copy_assets()
        cat = self.cat
        # files of every public dataset (exact bytes of the catalog)
        for ds in cat.datasets:
            for r in ds["resources_full"]:
                digest = str(r.get("hash") or "")
                self.copy_file(ds["folder"] / r["path"], f"{DIRS['files']}/{ds['name']}/{r['path']}",
                               digest if digest.startswith("sha256:") else None)
            for extra in ("datapackage.json", "dcat.jsonld"):
                if (ds["folder"] / extra).is_file():
                    self.copy_file(ds["folder"] / extra, f"{DIRS['files']}/{ds['name']}/{extra}")
        for extra in ("catalog.jsonld", "catalog.ttl"):
            if (cat.root / extra).is_file():
                self.copy_file(cat.root / extra, f"{DIRS['files']}/{extra}")
        self.build_search_index()
        cards = [self.card(ds) for ds in cat.datasets]
        facets = self.facets(cards)
        self.render(_Page("index.html", "home.html", {"datasets": cards, "facets": facets,
                                                       "has_feed": (cat.root / "catalog.jsonld").is_file()},
                          "site_name"))
        for ds in cat.datasets:
            ctx = self.dataset_context(ds)
            self.render(_Page(f"{DIRS['dataset']}/{ds['name']}/index.html", "dataset.html", ctx, ctx["title"]))
            report = self.validation_report(ds)
            if report is not None:
                self.render(_Page(f"{DIRS['dataset']}/{ds['name']}/validation/index.html", "validation.html",
                                  {"name": ds["name"], "title": ctx["title"], "report": report,
                                   "json": f"{DIRS['files']}/{ds['name']}/{report['file']}"},
                                  {k: f"{STRINGS[k]['full_report']} — {pick(ctx['title'], k)}" for k in ("fr", "en")}))
        self.build_schemas()
        self.build_publishers(cards)
        self.build_maps()
        self.build_schools()

    def card(self, ds: dict[str, Any]) -> dict[str, Any]:
        insee = [c for c in (ds.get("spatial") or {}).get("insee") or [] if isinstance(c, str)]
        formats = sorted({FORMATS.get((r.get("format") or "").lower(), (r.get("format") or "").upper())
                          for r in ds["resources_full"] if (r.get("preau") or {}).get("role", "data") == "data"})
        themes = ds.get("themes") or ds["meta"].get("themes") or (["geographie"] if ds["kind"] == "layer" else ["education"])
        pub = self.cat.publishers.get(ds["publisher"], {})
        formats = sorted(set(formats) | {FORMATS.get((r.get("format") or "").lower(), (r.get("format") or "").upper())
                                         for r in ds.get("resources_remote") or []
                                         if (r.get("preau") or {}).get("role", "data") == "data" and r.get("format")})
        h = ds.get("harvest") if isinstance(ds.get("harvest"), dict) else None
        return {"name": ds["name"], "title": ds.get("title") or ds["name"], "description": ds.get("description") or "",
                "publisher": ds["publisher"], "publisher_name": pub.get("name") or ds["publisher"],
                "themes": [t for t in themes if isinstance(t, str)], "territories": sorted({department(c) for c in insee}),
                "years": list(ds.get("school_years") or []), "formats": formats, "kind": ds["kind"],
                "origin": f"moisson-{h.get('source')}" if h else "local",
                "harvested_from": (h.get("source_title") or h.get("source")) if h else None}

    def facets(self, cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def count(key: str) -> dict[str, int]:
            out: dict[str, int] = {}
            for c in cards:
                values = c[key] if isinstance(c[key], list) else [c[key]]
                for v in values:
                    out[v] = out.get(v, 0) + 1
            return out
        pubs = count("publisher")
        themes = count("themes")
        terr = count("territories")
        years = count("years")
        fmts = count("formats")
        origins = count("origin")
        deps = self.cat.departments
        titles = {c["origin"]: c["harvested_from"] for c in cards if c["harvested_from"]}
        origin_values = [{"value": v, "n": n, "label": {"fr": STRINGS["fr"]["origin_local"], "en": STRINGS["en"]["origin_local"]}
                          if v == "local" else {lang: STRINGS[lang]["origin_harvested"].format(source=titles.get(v, v))
                                                for lang in ("fr", "en")}}
                         for v, n in sorted(origins.items(), key=lambda x: (x[0] != "local", x[0]))]
        return [
            {"key": "publisher", "label": "facet_publisher",
             "values": [{"value": p, "label": self.cat.publishers.get(p, {}).get("name") or p, "n": n} for p, n in sorted(pubs.items())]},
            {"key": "theme", "label": "facet_theme",
             "values": [{"value": v, "label": {"fr": THEMES.get(v, (v, v))[0], "en": THEMES.get(v, (v, v))[1]}, "n": n}
                        for v, n in sorted(themes.items())]},
            {"key": "territory", "label": "facet_territory",
             "values": [{"value": v, "label": {lang: (STRINGS[lang]["department"].format(code=v)
                                                      + (f" — {deps[v.lstrip('0')]}" if deps.get(v.lstrip("0")) else ""))
                                               for lang in ("fr", "en")}, "n": n} for v, n in sorted(terr.items())]},
            {"key": "year", "label": "facet_year",
             "values": [{"value": v, "label": v, "n": n} for v, n in sorted(years.items(), reverse=True)]},
            {"key": "format", "label": "facet_format",
             "values": [{"value": v, "label": v, "n": n} for v, n in sorted(fmts.items())]},
            # origin: this catalog or a harvested source (shown once the catalog holds harvested copies)
            {"key": "origin", "label": "facet_origin", "values": origin_values if titles else []},
        ]

    def build_search_index(self) -> None:
        cat = self.cat
        schools_by_ds: dict[str, list[str]] = {}
        for s in cat.schools.values():
            schools_by_ds.setdefault(s["dataset"], []).append(f"{s['uai']} {s['name']}")
        docs = []
        for ds in cat.datasets:
            c = self.card(ds)
            schema = self.dataset_schema(ds) or {}
            columns = []
            for f in schema.get("fields", []):
                if isinstance(f, dict):
                    columns += [str(f.get("name", "")), pick(f.get("title", ""), "fr"), pick(f.get("title", ""), "en")]
            insee = sorted({x for x in (ds.get("spatial") or {}).get("insee") or [] if isinstance(x, str)})
            communes = [f"{code} {cat.communes.get(code, '')}" for code in insee]
            schools = schools_by_ds.get(ds["name"], [])
            text = " ".join([pick(c["title"], "fr"), pick(c["title"], "en"), pick(c["description"], "fr"),
                             pick(c["description"], "en"), ds["name"], " ".join(map(str, ds.get("keywords") or [])),
                             " ".join(columns), " ".join(communes), " ".join(schools[:5000]), c["publisher_name"]
                             if isinstance(c["publisher_name"], str) else " ".join(c["publisher_name"].values()),
                             c["harvested_from"] or ""])
            docs.append({"name": ds["name"], "text": fold(text), "publisher": c["publisher"], "theme": c["themes"],
                         "territory": c["territories"], "year": c["years"], "format": c["formats"],
                         "origin": c["origin"]})
        self.write_bytes("recherche.json", json.dumps({"datasets": docs}, ensure_ascii=False,
                                                      separators=(",", ":")).encode("utf-8"))
        schools = [[s["uai"], s["name"], s["commune"], fold(f"{s['uai']} {s['name']} {s['commune']} {s['code_insee']}")]
                   for s in sorted(cat.schools.values(), key=lambda s: s["uai"])]
        self.write_bytes("ecoles.json", json.dumps({"schools": schools}, ensure_ascii=False,
                                                   separators=(",", ":")).encode("utf-8"))

    def build_schemas(self) -> None:
        items = []
        for name, s in sorted(self.schemas.items()):
            schema = s["schema"]
            folder = s["folder"]
            changelog = readme = None
            example = None
            if folder is not None:
                if (folder / "CHANGELOG.md").is_file():
                    changelog = str(mini_markdown((folder / "CHANGELOG.md").read_text(encoding="utf-8")))
                ex = folder / "exemple-valide.csv"
                if ex.is_file():
                    self.copy_file(ex, f"{DIRS['schema']}/{name}/exemple-valide.csv")
                    with open(ex, encoding="utf-8", newline="") as fh:
                        rows = list(csv.reader(fh))[: PREVIEW_ROWS + 1]
                    example = {"header": rows[0] if rows else [], "rows": rows[1:], "file": "exemple-valide.csv"}
            if isinstance(schema.get("changelog"), list) and changelog is None:
                changelog = str(mini_markdown("\n".join(
                    f"## {c.get('version', '')} {c.get('date', '')}\n- {c.get('changes') or c.get('description') or ''}"
                    for c in schema["changelog"] if isinstance(c, dict))))
            self.write_bytes(f"{DIRS['schema']}/{name}/schema.json",
                             (json.dumps(schema, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
            pk = schema.get("primaryKey")
            ctx = {"name": name, "title": schema.get("title") or name, "description": schema.get("description") or "",
                   "version": schema.get("version") or "", "created": schema.get("created") or "",
                   "homepage": schema.get("homepage") or "", "fields": self.schema_fields(schema),
                   "primary_key": pk if isinstance(pk, list) else ([pk] if pk else []),
                   "missing_values": schema.get("missingValues") or [],
                   "licenses": [pick(x.get("title") or x.get("name"), "fr") for x in schema.get("licenses") or [] if isinstance(x, dict)],
                   "changelog": Markup(changelog) if changelog else None, "example": example,
                   "datasets": [{"name": d, "title": next((x.get("title") for x in self.cat.datasets if x["name"] == d), d)}
                                for d in s["datasets"]],
                   "geometry": schema.get("preau:geometry")}
            items.append({"name": name, "title": ctx["title"], "version": ctx["version"],
                          "description": ctx["description"]})
            self.render(_Page(f"{DIRS['schema']}/{name}/index.html", "schema.html", ctx, ctx["title"]
                              if isinstance(ctx["title"], dict) else {"fr": ctx["title"], "en": ctx["title"]}))
        self.render(_Page(f"{DIRS['schema']}/index.html", "schemas.html", {"schemas": items}, "nav_schemas"))

    def build_publishers(self, cards: list[dict[str, Any]]) -> None:
        items = []
        for pid, pub in sorted(self.cat.publishers.items()):
            mine = [c for c in cards if c["publisher"] == pid]
            if not mine:
                continue
            schools = sorted((s for s in self.cat.schools.values() if s["publisher"] == pid), key=lambda s: s["uai"])
            ctx = {"id": pid, "name": pub.get("name") or pid, "email": pub.get("email"), "homepage": pub.get("homepage"),
                   "kind": pub.get("kind"), "datasets": mine, "has_map": pid in self.maps, "n_schools": len(schools),
                   "harvested_from": sorted({c["harvested_from"] for c in mine if c["harvested_from"]}),
                   "schools": [{"uai": s["uai"], "name": s["name"], "commune": s["commune"]} for s in schools[:2000]]}
            items.append({"id": pid, "name": ctx["name"], "n": len(mine)})
            self.render(_Page(f"{DIRS['publisher']}/{pid}/index.html", "publisher.html", ctx,
                              ctx["name"] if isinstance(ctx["name"], dict) else {"fr": ctx["name"], "en": ctx["name"]}))
        self.render(_Page(f"{DIRS['publisher']}/index.html", "publishers.html", {"publishers": items}, "nav_publishers"))

    def build_maps(self) -> None:
        for pid, m in sorted(self.maps.items()):
            ds = m["sectors_ds"]
            res = layer_file(ds)
            sectors = []
            try:
                data = json.loads((ds["folder"] / res["path"]).read_text(encoding="utf-8"))
                for f in data.get("features", []):
                    p = f.get("properties") or {}
                    uais = [u.strip() for u in str(p.get("uai") or "").split(",") if u.strip()]
                    codes = [c.strip() for c in str(p.get("communes") or "").split(",") if c.strip()]
                    sectors.append({"code": str(p.get("code_secteur") or ""),
                                    "communes": ", ".join(f"{self.cat.communes[c]} ({c})" if c in self.cat.communes
                                                          else c for c in codes),
                                    "schools": [{"uai": u, "page": u in self.cat.schools} for u in uais]})
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                self.report.warning("site-bad-layer", "couche des secteurs illisible", "unreadable sector layer",
                                    file=rel(ds["folder"] / res["path"]))
            pub = self.cat.publishers.get(pid, {})
            name = pub.get("name") or pid
            config = {"layers": m["layers"], "palette": SECTOR_PALETTE, "labels": len(sectors) <= 400}
            ctx = {"id": pid, "name": name, "config": config, "sectors": sorted(sectors, key=lambda s: s["code"])[:3000],
                   "n_sectors": len(sectors), "datasets": m["datasets"], "palette": SECTOR_PALETTE,
                   "has_lib": self.node_modules is not None}
            self.render(_Page(f"{DIRS['map']}/{pid}/index.html", "map.html", ctx,
                              {lang: STRINGS[lang]["map_of"].format(name=pick(name, lang)) for lang in ("fr", "en")}))

    def build_schools(self) -> None:
        items = list(self.cat.schools.items())
        workers = self.workers or (min(4, os.cpu_count() or 1) if len(items) >= PARALLEL_FROM else 1)
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            global _CHUNKS, _BUILDER
            size = max(1, len(items) // (workers * 8))
            _CHUNKS = [items[i:i + size] for i in range(0, len(items), size)]
            _BUILDER = self
            try:
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    for new, written, pages in pool.imap_unordered(_school_chunk, range(len(_CHUNKS))):
                        self.new.update(new)
                        self.written.extend(written)
                        self.pages += pages
            finally:
                _CHUNKS, _BUILDER = [], None
            return
        self.school_pages(items)

    def school_pages(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        titles = {lang: STRINGS[lang] for lang in ("fr", "en")}
        level_names = [label for _, label in LEVELS] + ["ULIS"]
        has_map = self.maps.keys()
        for uai, s in items:
            self.render(_Page(f"{DIRS['school']}/{uai}.html", "school.html", None,
                              {"fr": f"{s['name']} ({uai})", "en": f"{s['name']} ({uai})"},
                              key=(s, s["publisher"] in has_map),
                              make=functools.partial(self.school_context, uai, s, titles, level_names)))

    def school_context(self, uai: str, s: dict[str, Any], titles: dict[str, dict[str, str]],
                       level_names: list[str]) -> dict[str, Any]:
        years = sorted(s["years"])
        points = [(y, s["years"][y]["total"]) for y in years]
        charts = {}
        for lang in ("fr", "en"):
            values = ", ".join(f"{y} : {_number(v, lang) if v is not None else '–'}" if lang == "fr" else
                               f"{y}: {_number(v, lang) if v is not None else '–'}" for y, v in points)
            charts[lang] = bar_chart([(y[2:4] + "-" + y[7:9] if len(y) == 9 else y, v) for y, v in points],
                                     titles[lang]["pupils_over_years"],
                                     titles[lang]["chart_alt"].format(name=s["name"], values=values), uid=f"chart-{uai}")
        rows = [{"year": y, "total": s["years"][y]["total"], "classes": s["years"][y]["classes"],
                 "levels": s["years"][y]["levels"] + [s["years"][y]["ulis"]]} for y in years]
        ctx = {"uai": uai, "name": s["name"], "commune": s["commune"], "code_insee": s["code_insee"],
               "secteur": s["secteur"], "code_secteur": s["code_secteur"], "charts": charts, "rows": rows,
               "levels": level_names, "dataset": s["dataset"], "publisher": s["publisher"],
               "has_map": s["publisher"] in self.maps, "harvested_from": s.get("harvested_from")}
        return ctx

    def copy_assets(self) -> None:
        static = PACKAGE_DIR / "static"
        override = self.ws / "site" / "static" if self.ws is not None else None
        names = {p.name: p for p in sorted(static.iterdir()) if p.is_file()}
        if override is not None and override.is_dir():
            names.update({p.name: p for p in sorted(override.iterdir()) if p.is_file()})
        for name, src in names.items():
            self.copy_file(src, f"static/{name}", "sha1:" + hashlib.sha1(src.read_bytes()).hexdigest())
        if self.node_modules is not None:
            dist = self.node_modules / "leaflet" / "dist"
            for src in [dist / "leaflet.js", dist / "leaflet.css", *sorted((dist / "images").glob("*.png"))]:
                relname = src.relative_to(dist).as_posix()
                self.copy_file(src, f"static/leaflet/{relname}",
                               "sha1:" + hashlib.sha1(src.read_bytes()).hexdigest())
            lic = self.node_modules / "leaflet" / "LICENSE"
            if lic.is_file():
                self.copy_file(lic, "static/leaflet/LICENSE")
        elif self.maps:
            self.report.warning("site-no-map-library",
                                "Leaflet absent (node_modules) : lancez « npm ci » ; les cartes n'affichent que la liste des secteurs",
                                "Leaflet missing (node_modules): run 'npm ci'; maps only show the list of sectors")

    def finish(self) -> list[str]:
        removed = []
        for relpath in sorted(set(self.old) - set(self.new)):
            path = self.out / relpath
            if path.is_file():
                path.unlink()
                removed.append(relpath)
                parent = path.parent
                while parent != self.out and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
        data = json.dumps({"version": MANIFEST_VERSION, "files": self.new}, sort_keys=True).encode("utf-8")
        tmp = self.out / f"{MANIFEST}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.out / MANIFEST)
        return removed


_CHUNKS: list[list[tuple[str, dict[str, Any]]]] = []
_BUILDER: "_Builder | None" = None


def _school_chunk(index: int) -> tuple[dict[str, str], list[str], int]:
    """In a forked worker: render one chunk of school pages; return manifest entries, files, pages."""
    b = _BUILDER
    b.new, b.written, b.pages = {}, [], 0
    b.school_pages(_CHUNKS[index])
    return b.new, b.written, b.pages


def build_site(catalog_dir: Path, out_dir: Path, *, workspace: Path | None = None, lang_default: str = "fr",
               site_url: str | None = None, ckan_url: str | None = None, workers: int | None = None) -> SiteResult:
    """Build the static site of ``catalog_dir`` (a local file catalog) into ``out_dir``.

    ``workspace`` (optional) gives ``schemas/`` (schema pages with changelog and example) and the
    ``site/`` folder whose templates override the packaged ones. Only what changed since the last
    build is written. ``workers``: processes rendering the school pages (default: up to 4 from
    ``PARALLEL_FROM`` schools on, else 1). Raises :class:`PreauError` when the catalog is missing or unreadable.
    """
    start = time.perf_counter()
    catalog_dir, out_dir = Path(catalog_dir), Path(out_dir)
    workspace = Path(workspace) if workspace is not None else None
    if lang_default not in ("fr", "en"):
        raise PreauError("langue par défaut : fr ou en", "default language: fr or en", code="site-lang",
                         field="lang_default")
    cat = load_catalog(catalog_dir)
    site_url = site_url or os.environ.get("PREAU_SITE_URL") or cat.index.get("site_url") or "http://127.0.0.1:8000/"
    ckan_url = ckan_url or os.environ.get("PREAU_CKAN_URL") or cat.index.get("ckan_url") or "http://127.0.0.1:5000"
    out_dir.mkdir(parents=True, exist_ok=True)
    b = _Builder(cat, out_dir, workspace, lang_default, site_url, ckan_url)
    b.workers = workers
    b.build()
    removed = b.finish()
    result = SiteResult(out_dir=out_dir, pages=b.pages, files=len(b.new), written=b.written, removed=removed,
                        seconds=time.perf_counter() - start, report=cat.report)
    return result


def iter_html(out_dir: Path) -> Iterator[Path]:
    yield from sorted(Path(out_dir).rglob("*.html"))
