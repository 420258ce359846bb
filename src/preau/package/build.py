"""Build Frictionless Data Packages + DCAT-AP 3 metadata from the build output.

Input: ``<data_dir>/<publisher>/<dataset>/manifest.json`` (contract in docs/ARCHITECTURE.md) and the
files it lists. Output: ``<out_dir>/<publisher>-<dataset>/`` holding the data files, the Table Schema
pinned by version (``schema-<name>-<version>.json``), ``validation.json``, ``disclosure.json``,
``datapackage.json`` (with a ``preau`` extension: fr + en texts, publisher, access, coverage,
disclosure note) and ``dcat.jsonld``. Unchanged files are not rewritten (sha256 compared), so a
second run writes nothing. All manifests are checked before anything is written.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from preau.errors import PreauError, Report, rel
from preau.package import dcat
from preau.package.files import copy_if_changed, dumps_json, sha256_bytes, sha256_file, sha256_many, write_if_changed
from preau.workspace import LICENCES, Workspace, load_workspace

DESCRIPTOR = "datapackage.json"
DCAT_FILE = "dcat.jsonld"
NAME_RE = re.compile(r"[^a-z0-9._-]+")
YEAR_RE = re.compile(r"^\d{4}-\d{4}$")
TABLE_FORMATS = {"csv"}
DEFAULT_KEYWORDS = ["éducation", "école", "premier degré"]


@dataclass
class PackageFile:
    """One file of a package (a resource of ``datapackage.json``)."""

    name: str
    path: str
    format: str
    mediatype: str
    bytes: int
    sha256: str
    role: str  # data | schema | validation | disclosure | preview
    school_year: str | None = None
    rows: int | None = None
    title: dict[str, str] = field(default_factory=dict)
    schema: str | None = None  # pinned schema file (relative path) for tabular data
    datastore: bool = False  # the all-years table loaded into a CKAN DataStore

    @classmethod
    def from_resource(cls, res: dict[str, Any]) -> "PackageFile":
        p = res.get("preau", {})
        return cls(name=res["name"], path=res["path"], format=res.get("format", ""),
                   mediatype=res.get("mediatype", ""), bytes=int(res["bytes"]),
                   sha256=res["hash"].split(":", 1)[-1], role=p.get("role", "data"),
                   school_year=p.get("school_year"), rows=p.get("rows"), title=p.get("title") or {},
                   schema=p.get("schema"), datastore=bool(p.get("datastore")))


@dataclass
class Package:
    """A built package: its folder, descriptor and DCAT document."""

    folder: Path
    descriptor: dict[str, Any]

    @property
    def name(self) -> str:
        return self.descriptor["name"]

    @property
    def meta(self) -> dict[str, Any]:
        return self.descriptor["preau"]

    @property
    def publisher(self) -> str:
        return self.meta["publisher"]["id"]

    @property
    def dataset(self) -> str:
        return self.meta["dataset"]

    @property
    def access(self) -> str:
        return self.meta["access"]

    @property
    def public(self) -> bool:
        return self.access != "restricted"

    @property
    def files(self) -> list[PackageFile]:
        return [PackageFile.from_resource(r) for r in self.descriptor["resources"]]

    def table_schema(self, path: str) -> dict[str, Any]:
        return json.loads((self.folder / path).read_text(encoding="utf-8"))

    @classmethod
    def load(cls, folder: str | Path) -> "Package":
        folder = Path(folder)
        return cls(folder=folder, descriptor=json.loads((folder / DESCRIPTOR).read_text(encoding="utf-8")))


@dataclass
class PackageResult:
    out_dir: Path
    packages: list[Package]
    report: Report
    written: int = 0  # files written (new or changed)
    unchanged: int = 0  # files left untouched
    removed: int = 0  # stale files removed

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "packages": [p.name for p in self.packages],
                "written": self.written, "unchanged": self.unchanged, "removed": self.removed,
                "report": self.report.to_dict()}


def resource_name(path: str) -> str:
    """A Frictionless resource name (``^[a-z0-9._-]+$``) from a file path."""
    return NAME_RE.sub("-", path.lower()).strip("-")


def _safe_rel(path: Any) -> bool:
    if not isinstance(path, str) or not path:
        return False
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in path


@dataclass
class _Planned:
    """A package checked and ready to write."""

    name: str
    folder: Path
    descriptor: dict[str, Any]
    copies: list[tuple[Path, str, str]]  # (source, relative destination, sha256)
    generated: dict[str, bytes]  # relative destination -> content


def _disclosure_note(disclosure: dict[str, Any] | None, definition: dict[str, Any]) -> dict[str, str]:
    if not disclosure or disclosure.get("rule") in (None, "none"):
        reason = (definition.get("disclosure") or {}).get("reason") or {}
        fr = "Aucun secret statistique appliqué" + (f" : {reason['fr']}" if reason.get("fr") else ".")
        en = "No statistical disclosure control applied" + (f": {reason['en']}" if reason.get("en") else ".")
        return {"fr": fr, "en": en}
    k = disclosure.get("k")
    hidden, cells, pupils = disclosure.get("cells_hidden"), disclosure.get("cells"), disclosure.get("pupils_hidden")
    audit = disclosure.get("audit")
    fr = (f"Secret statistique : toute case de moins de {k} élèves est masquée (effectif vide, secret = true), "
          f"ainsi que des cases complémentaires pour empêcher de la retrouver par différence.")
    en = (f"Statistical disclosure control: every cell with fewer than {k} pupils is hidden (empty count, "
          f"secret = true), plus complementary cells so that it cannot be recovered by subtraction.")
    if hidden is not None and cells is not None:
        fr += f" {hidden} case(s) masquée(s) sur {cells}"
        en += f" {hidden} cell(s) hidden out of {cells}"
        if pupils is not None:
            fr += f" ({pupils} élève(s))"
            en += f" ({pupils} pupil(s))"
        fr += "."
        en += "."
    if audit:
        fr += " Audit : " + ("réussi." if audit == "passed" else f"{audit}.")
        en += f" Audit: {audit}."
    return {"fr": fr, "en": en}


def _personal_fields(schema: dict[str, Any]) -> list[str]:
    return [f["name"] for f in schema.get("fields", []) if f.get("preau:personal")]


def _plan_one(manifest_path: Path, ws: Workspace, out_dir: Path, report: Report, base: str | None) -> _Planned | None:
    where = rel(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.error("package-manifest", f"manifest illisible (JSON attendu) : {exc}",
                     f"unreadable manifest (JSON expected): {exc}", file=where, line=getattr(exc, "lineno", None))
        return None
    ok = True
    for key, kind in (("dataset", str), ("publisher", str), ("resources", list)):
        if not isinstance(manifest.get(key), kind):
            report.error("package-manifest", f"clé « {key} » manquante ou invalide",
                         f"missing or invalid key '{key}'", file=where, field=key)
            ok = False
    if not ok:
        return None
    folder = manifest_path.parent
    did, pid = manifest["dataset"], manifest["publisher"]
    definition = ws.datasets.get(did)
    publisher = ws.publishers.get(pid)
    if definition is None:
        report.error("package-unknown-dataset", f"jeu de données « {did} » absent de datasets/",
                     f"dataset '{did}' not declared in datasets/", file=where, field="dataset")
    if publisher is None:
        report.error("package-unknown-publisher", f"éditeur « {pid} » absent de publishers/",
                     f"publisher '{pid}' not declared in publishers/", file=where, field="publisher")
    if definition is None or publisher is None:
        return None
    kind = manifest.get("kind") or definition.get("kind", "table")
    validation = manifest.get("validation") or {}
    if validation.get("valid") is False:
        report.error("package-invalid-data",
                     "la validation des données a échoué : jeu non empaqueté (voir le rapport de validation)",
                     "data validation failed: dataset not packaged (see the validation report)",
                     file=where, field="validation")
        return None

    name = f"{pid}-{did}"
    access = definition.access
    lic_id = definition.get("licence") or publisher.raw.get("licence") or "etalab-2.0"
    lic = LICENCES.get(lic_id, LICENCES["etalab-2.0"])
    copies: list[tuple[Path, str, str]] = []
    generated: dict[str, bytes] = {}
    resources: list[dict[str, Any]] = []

    # --- schema, pinned by version ---------------------------------------------------------------
    schema_name = definition.get("schema")
    for r in manifest["resources"]:
        if isinstance(r, dict) and r.get("schema"):
            schema_name = r["schema"]
            break
    schema_meta: dict[str, Any] | None = None
    schema_rel: str | None = None
    if schema_name:
        if schema_name not in ws.schemas:
            report.error("package-unknown-schema", f"schéma « {schema_name} » absent de schemas/",
                         f"schema '{schema_name}' not in schemas/", file=where, field="schema")
            return None
        schema_path = ws.schemas[schema_name]
        schema_bytes = schema_path.read_bytes()
        schema = json.loads(schema_bytes)
        personal = _personal_fields(schema)
        if personal:
            report.error("package-personal-schema",
                         f"le schéma « {schema_name} » décrit des champs personnels : il ne peut pas être publié",
                         f"schema '{schema_name}' describes personal fields: it cannot be published",
                         file=rel(schema_path))
            return None
        version = str(schema.get("version") or "")
        if not version:
            version = "sha-" + sha256_bytes(schema_bytes)[:12]
            report.warning("package-schema-version", f"schéma sans « version » : épinglé par empreinte ({version})",
                           f"schema without 'version': pinned by hash ({version})", file=rel(schema_path))
        schema_rel = f"schema-{schema_name}-{version}.json"
        copies.append((schema_path, schema_rel, sha256_bytes(schema_bytes)))
        schema_meta = {"name": schema_name, "version": version, "path": schema_rel,
                       "title": {"fr": schema.get("title", schema_name), "en": schema.get("title", schema_name)}}

    # --- data files ------------------------------------------------------------------------------
    seen: set[str] = set()
    all_years_parquet: tuple[Path, dict[str, Any]] | None = None
    parquet_years: set[str] = set()
    # the resources' files hashed ahead, two at a time (the loop below checks each and reports)
    digests = sha256_many(folder / r["path"] for r in manifest["resources"]
                          if isinstance(r, dict) and _safe_rel(r.get("path")) and (folder / r["path"]).is_file())
    for i, r in enumerate(manifest["resources"]):
        if not isinstance(r, dict) or not _safe_rel(r.get("path")):
            report.error("package-manifest", f"ressource n°{i + 1} : « path » relatif attendu",
                         f"resource #{i + 1}: relative 'path' expected", file=where, field="resources")
            ok = False
            continue
        src = folder / r["path"]
        if not src.is_file():
            report.error("package-missing-file", f"fichier listé mais absent : {r['path']}",
                         f"file listed but missing: {r['path']}", file=where, field="resources")
            ok = False
            continue
        fmt = (r.get("format") or src.suffix.lstrip(".")).lower()
        year = r.get("school_year")
        if year is not None and not YEAR_RE.match(str(year)):
            report.error("package-manifest", f"ressource {r['path']} : année scolaire AAAA-AAAA attendue",
                         f"resource {r['path']}: school year YYYY-YYYY expected", file=where, field="school_year")
            ok = False
            continue
        dest = PurePosixPath(r["path"]).name
        if dest in seen:
            report.error("package-manifest", f"deux ressources portent le même nom de fichier : {dest}",
                         f"two resources have the same file name: {dest}", file=where, field="resources")
            ok = False
            continue
        seen.add(dest)
        digest = digests.get(src) or sha256_file(src)
        copies.append((src, dest, digest))
        res = _resource(dest, fmt, src.stat().st_size, digest, "data", year, r.get("rows"), r.get("title"),
                        schema_rel if kind != "layer" else None, kind)
        if r.get("crs"):
            res["preau"]["crs"] = r["crs"]
        if kind == "layer" and schema_rel:
            res["preau"]["attributes_schema"] = schema_rel
        resources.append(res)
        if fmt == "parquet":
            if year:
                parquet_years.add(year)
            else:
                all_years_parquet = (src, r)
    if not ok:
        return None

    school_years = sorted(manifest.get("school_years") or {r["preau"]["school_year"] for r in resources
                                                            if r["preau"].get("school_year")})
    # --- Parquet per school year, derived from the all-years Parquet when the build has none ------
    if kind != "layer" and all_years_parquet is not None:
        import polars as pl

        src, r = all_years_parquet
        frame = None
        for year in school_years:
            if year in parquet_years:
                continue
            if frame is None:
                frame = pl.read_parquet(src)
                if "annee_scolaire" not in frame.columns:
                    break
            part = frame.filter(pl.col("annee_scolaire") == year)
            import io

            buf = io.BytesIO()
            part.write_parquet(buf, statistics=True)
            data = buf.getvalue()
            dest = f"{PurePosixPath(r['path']).stem}-{year}.parquet"
            if dest in seen:
                continue
            seen.add(dest)
            generated[dest] = data
            title = r.get("title") or {}
            resources.append(_resource(dest, "parquet", len(data), sha256_bytes(data), "data", year, part.height,
                                       {k: f"{v} ({year})" for k, v in title.items()} or None, schema_rel, kind))

    # the all-years CSV table is the one loaded into a CKAN DataStore
    for res in resources:
        if res["format"] == "csv" and not res["preau"].get("school_year") and kind != "layer":
            res["preau"]["datastore"] = True
            break

    # --- validation report, disclosure note, preview -------------------------------------------
    report_rel = validation.get("report")
    if report_rel and _safe_rel(report_rel) and (folder / report_rel).is_file():
        src = folder / report_rel
        digest = sha256_file(src)
        copies.append((src, "validation.json", digest))
        resources.append(_resource("validation.json", "json", src.stat().st_size, digest, "validation"))
    disclosure = manifest.get("disclosure")
    note = _disclosure_note(disclosure, definition.raw)
    if (folder / "disclosure.json").is_file():
        src = folder / "disclosure.json"
        digest = sha256_file(src)
        copies.append((src, "disclosure.json", digest))
        resources.append(_resource("disclosure.json", "json", src.stat().st_size, digest, "disclosure"))
    elif disclosure is not None:
        data = dumps_json({**disclosure, "note": note})
        generated["disclosure.json"] = data
        resources.append(_resource("disclosure.json", "json", len(data), sha256_bytes(data), "disclosure"))
    preview = manifest.get("preview")
    if preview and _safe_rel(preview) and (folder / preview).is_file():
        src = folder / preview
        digest = sha256_file(src)
        dest = PurePosixPath(preview).name
        copies.append((src, dest, digest))
        resources.append(_resource(dest, src.suffix.lstrip(".").lower(), src.stat().st_size, digest, "preview"))
    if schema_rel:
        size = next(len(p.read_bytes()) for p, d, _ in copies if d == schema_rel)
        digest = next(h for _, d, h in copies if d == schema_rel)
        resources.append(_resource(schema_rel, "json", size, digest, "schema"))

    # --- descriptor ------------------------------------------------------------------------------
    title = definition["title"]
    description = definition["description"]
    keywords = list(dict.fromkeys([*(definition.get("keywords") or []), *DEFAULT_KEYWORDS]))
    spatial = manifest.get("spatial") or {}
    temporal = manifest.get("temporal") or {}
    if not temporal and school_years:
        temporal = {"start": dcat.school_year_period(school_years[0])[0],
                    "end": dcat.school_year_period(school_years[-1])[1]}
    pub_raw = publisher.raw
    pub_meta = {"id": pid, "name": pub_raw["name"], "kind": pub_raw.get("kind"),
                **{k: pub_raw[k] for k in ("email", "homepage", "uri") if isinstance(pub_raw.get(k), str)}}
    descriptor: dict[str, Any] = {
        "profile": "data-package",
        "name": name,
        "id": dcat.dataset_uri(name, access, base),
        "title": title["fr"],
        "description": description["fr"] + "\n\n" + note["fr"],
        "version": school_years[-1] if school_years else "1",
        "licenses": [{"name": lic_id, "path": lic["url"], "title": lic["fr"]}],
        "keywords": keywords,
        "contributors": [{"title": pub_raw["name"]["fr"], "role": "publisher"}],
        "resources": resources,
        "preau": {
            "publisher": pub_meta,
            "dataset": did,
            "kind": kind,
            "access": access,
            "title": title,
            "description": description,
            "licence": {"id": lic_id, "url": lic["url"], "fr": lic["fr"], "en": lic["en"]},
            "frequency": definition.get("frequency"),
            "school_years": school_years,
            "temporal": temporal,
            "spatial": {"insee": sorted(set(spatial.get("insee") or [])), "bbox": spatial.get("bbox")},
            "schema": schema_meta,
            "disclosure": {**(disclosure or {"rule": "none"}), "note": note},
            "validation": {"valid": validation.get("valid"),
                           "report": "validation.json" if any(r["path"] == "validation.json" for r in resources) else None},
            "preview": PurePosixPath(preview).name if preview and any(
                r["path"] == PurePosixPath(preview).name for r in resources) else None,
            "dcat": DCAT_FILE,
        },
    }
    generated[DCAT_FILE] = dumps_json(dcat.dataset_document(descriptor, base))
    generated[DESCRIPTOR] = dumps_json(descriptor)
    return _Planned(name=name, folder=out_dir / name, descriptor=descriptor, copies=copies, generated=generated)


def _resource(path: str, fmt: str, size: int, digest: str, role: str, year: str | None = None,
              rows: int | None = None, title: dict[str, str] | None = None, schema_rel: str | None = None,
              kind: str = "table") -> dict[str, Any]:
    mediatype, label, _, _ = dcat.format_info(fmt)
    res: dict[str, Any] = {"name": resource_name(path), "path": path, "format": fmt, "mediatype": mediatype,
                           "bytes": size, "hash": f"sha256:{digest}"}
    if role == "data" and fmt in TABLE_FORMATS and schema_rel:
        res.update({"profile": "tabular-data-resource", "encoding": "utf-8", "schema": schema_rel})
    elif role == "data" and fmt in ("json", "geojson"):
        res["encoding"] = "utf-8"
    else:
        # not read by frictionless-py (Parquet, GeoPackage, FlatGeobuf, SVG): size and hash are checked
        res["type"] = "file"
    if not title:
        title = _default_title(path, role, year, label)
    meta: dict[str, Any] = {"role": role, "title": title}
    if year:
        meta["school_year"] = year
    if rows is not None:
        meta["rows"] = rows
    if role == "data" and schema_rel:
        meta["schema"] = schema_rel
    res["title"] = title["fr"]
    res["preau"] = meta
    return res


def _default_title(path: str, role: str, year: str | None, label: str) -> dict[str, str]:
    if role == "validation":
        return {"fr": "Rapport de validation (Table Schema)", "en": "Validation report (Table Schema)"}
    if role == "disclosure":
        return {"fr": "Note sur le secret statistique", "en": "Statistical disclosure note"}
    if role == "schema":
        return {"fr": f"Schéma des données ({path})", "en": f"Data schema ({path})"}
    if role == "preview":
        return {"fr": "Aperçu", "en": "Preview"}
    if year:
        return {"fr": f"Année scolaire {year} ({label})", "en": f"School year {year} ({label})"}
    return {"fr": f"Toutes les années scolaires ({label})", "en": f"All school years ({label})"}


def _write(plan: _Planned, result: PackageResult) -> Package:
    plan.folder.mkdir(parents=True, exist_ok=True)
    keep = {DESCRIPTOR, DCAT_FILE}
    for src, dest, digest in plan.copies:
        keep.add(dest)
        if copy_if_changed(src, plan.folder / dest, digest):
            result.written += 1
        else:
            result.unchanged += 1
    # descriptor last: a package folder with a complete datapackage.json is complete
    for dest in sorted(plan.generated, key=lambda d: d == DESCRIPTOR):
        keep.add(dest)
        if write_if_changed(plan.folder / dest, plan.generated[dest]):
            result.written += 1
        else:
            result.unchanged += 1
    for stale in plan.folder.iterdir():
        if stale.name not in keep:
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
            result.removed += 1
    return Package(folder=plan.folder, descriptor=plan.descriptor)


def find_manifests(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("*/*/manifest.json"))


def build_packages(workspace: Workspace | str | Path, data_dir: Path, out_dir: Path, *, lang: str | None = None,
                   base_url: str | None = None) -> PackageResult:
    """Package every ``<data_dir>/<publisher>/<dataset>/manifest.json`` into ``<out_dir>/<name>/``.

    Raises :class:`PreauError` (nothing written) when a manifest, a listed file, the dataset or
    publisher definition or the schema is missing or wrong. ``base_url`` (default ``PREAU_BASE_URL``)
    is the public URL the catalog is served from, used for DCAT identifiers.
    """
    ws = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)[0]
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    report = Report(subject=rel(data_dir))
    if not data_dir.is_dir():
        report.error("package-no-build", f"dossier de construction introuvable : {rel(data_dir)} (lancez d'abord « preau build »)",
                     f"build folder not found: {rel(data_dir)} (run 'preau build' first)", file=rel(data_dir))
        raise PreauError(report)
    manifests = find_manifests(data_dir)
    if not manifests:
        report.error("package-no-build", f"aucun manifest.json dans {rel(data_dir)} (lancez d'abord « preau build »)",
                     f"no manifest.json in {rel(data_dir)} (run 'preau build' first)", file=rel(data_dir))
        raise PreauError(report)
    plans = [p for p in (_plan_one(m, ws, out_dir, report, base_url) for m in manifests) if p is not None]
    names = [p.name for p in plans]
    for dup in {n for n in names if names.count(n) > 1}:
        report.error("package-duplicate", f"paquet « {dup} » produit deux fois", f"package '{dup}' produced twice")
    report.raise_if_errors()
    result = PackageResult(out_dir=out_dir, packages=[], report=report)
    for plan in plans:
        result.packages.append(_write(plan, result))
    # packages no longer produced by the build
    if out_dir.is_dir():
        current = set(names)
        for folder in sorted(out_dir.iterdir()):
            if folder.is_dir() and folder.name not in current and (folder / DESCRIPTOR).is_file():
                shutil.rmtree(folder)
                result.removed += 1
    return result


def load_packages(out_dir: str | Path) -> list[Package]:
    """Packages already built in ``out_dir`` (one folder with a datapackage.json each)."""
    out_dir = Path(out_dir)
    return [Package.load(d) for d in sorted(out_dir.iterdir()) if (d / DESCRIPTOR).is_file()] if out_dir.is_dir() else []
