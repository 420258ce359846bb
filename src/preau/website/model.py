"""Read the local file catalog (``_build/catalog/``) into plain dicts the templates render.

Only what ``catalog.json`` lists is read (public datasets under ``datasets/`` and active harvested
copies under ``harvested/``); ``restricted/`` is never opened, and an entry whose package says
``access = restricted`` is dropped too (defence in depth), as is a harvested copy not ``active``.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from preau.errors import PreauError, Report, rel

SCHOOL_DATASET = "effectifs-ecole-niveau"
LEVELS = [("tps", "TPS"), ("ps", "PS"), ("ms", "MS"), ("gs", "GS"), ("cp", "CP"), ("ce1", "CE1"),
          ("ce2", "CE2"), ("cm1", "CM1"), ("cm2", "CM2")]
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
READ_DIRS = ("datasets", "harvested")  # public folders of the catalog (never restricted/)


def fold(text: str) -> str:
    """Lower case without accents (the search JS folds the query the same way)."""
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c))


def _read_json(path: Path, report: Report) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.error("site-missing-file", "fichier absent", "missing file", file=rel(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.error("site-bad-json", f"JSON invalide : {exc}", f"invalid JSON: {exc}", file=rel(path),
                     line=getattr(exc, "lineno", None))
    return None


def _web(url: Any) -> bool:
    return isinstance(url, str) and url.startswith(("http://", "https://"))


def _email(text: Any) -> bool:
    return isinstance(text, str) and re.fullmatch(r"[^@\s<>\"']+@[^@\s<>\"']+\.[A-Za-z]{2,}", text) is not None


def department(code_insee: str) -> str:
    return code_insee[:3] if code_insee.startswith("97") else code_insee[:2]


@dataclass
class Catalog:
    root: Path
    index: dict[str, Any]
    datasets: list[dict[str, Any]] = field(default_factory=list)  # enriched entries, public only
    publishers: dict[str, dict[str, Any]] = field(default_factory=dict)
    schools: dict[str, dict[str, Any]] = field(default_factory=dict)  # uai -> school
    communes: dict[str, str] = field(default_factory=dict)  # code_insee -> name
    departments: dict[str, str] = field(default_factory=dict)  # code -> name
    report: Report = field(default_factory=Report)


def _safe_rel(path: Any) -> bool:
    if not isinstance(path, str) or not path:
        return False
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in path


def load_catalog(catalog_dir: Path) -> Catalog:
    """Load ``catalog.json`` and each public dataset's ``datapackage.json``."""
    report = Report(subject=rel(catalog_dir))
    index_path = catalog_dir / "catalog.json"
    if not index_path.is_file():
        report.error("site-no-catalog",
                     f"catalogue introuvable : {rel(index_path)} (lancez d'abord « preau publish » ou « preau demo »)",
                     f"catalog not found: {rel(index_path)} (run 'preau publish' or 'preau demo' first)",
                     file=rel(index_path))
        raise PreauError(report)
    index = _read_json(index_path, report)
    if not isinstance(index, dict) or not isinstance(index.get("datasets"), list):
        report.error("site-bad-catalog", "catalog.json : liste « datasets » attendue",
                     "catalog.json: a 'datasets' list is expected", file=rel(index_path), field="datasets")
        raise PreauError(report)
    cat = Catalog(root=catalog_dir, index=index, report=report)
    for p in index.get("publishers") or []:
        if isinstance(p, dict) and isinstance(p.get("id"), str) and SAFE_NAME.match(p["id"]):
            cat.publishers[p["id"]] = dict(p)
    for i, entry in enumerate(index["datasets"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not SAFE_NAME.match(name) or not _safe_rel(entry.get("path")):
            report.warning("site-bad-entry", f"catalog.json : entrée n°{i + 1} ignorée (nom ou chemin invalide)",
                           f"catalog.json: entry #{i + 1} skipped (invalid name or path)", file=rel(index_path),
                           field="datasets")
            continue
        pkg_path = catalog_dir / entry["path"]
        top = PurePosixPath(entry["path"]).parts[0]
        if top not in READ_DIRS:
            continue  # only the public folders are ever read
        descriptor = _read_json(pkg_path, report)
        if not isinstance(descriptor, dict):
            continue
        meta = descriptor.get("preau") or {}
        if (meta.get("access") or entry.get("access") or "public") != "public":
            continue
        harvest = meta.get("harvest") if top == "harvested" else None
        if top == "harvested" and (not isinstance(harvest, dict) or harvest.get("status") != "active"):
            continue  # archived copies (gone from their source) are not shown
        ds = dict(entry)
        ds["origin"] = "harvested" if harvest else "local"
        ds["harvest"] = harvest
        ds["provenance"] = meta.get("provenance") if harvest else None
        ds["folder"] = pkg_path.parent
        ds["descriptor"] = descriptor
        ds["meta"] = meta
        ds.setdefault("dataset", meta.get("dataset") or name)
        ds.setdefault("kind", meta.get("kind") or "table")
        for key in ("title", "description", "licence", "frequency", "school_years", "temporal", "spatial",
                    "schema", "disclosure", "validation"):
            if ds.get(key) is None and meta.get(key) is not None:
                ds[key] = meta[key]
        ds["publisher_meta"] = meta.get("publisher") if isinstance(meta.get("publisher"), dict) else {}
        if harvest:  # another catalog's text: links only to http(s), no contact that is not an address
            ds["publisher_meta"] = {k: v for k, v in ds["publisher_meta"].items()
                                    if k not in ("homepage", "email")
                                    or (k == "homepage" and _web(v)) or (k == "email" and _email(v))}
            if isinstance(ds.get("licence"), dict) and ds["licence"].get("url") and not _web(ds["licence"]["url"]):
                ds["licence"] = {k: v for k, v in ds["licence"].items() if k != "url"}
        pub_id = ds.get("publisher") or ds["publisher_meta"].get("id")
        if not isinstance(pub_id, str) or not SAFE_NAME.match(pub_id):
            continue
        ds["publisher"] = pub_id
        pub = cat.publishers.setdefault(pub_id, {"id": pub_id, "name": ds["publisher_meta"].get("name") or pub_id})
        for k in ("email", "homepage", "kind"):
            if ds["publisher_meta"].get(k) and not pub.get(k):
                pub[k] = ds["publisher_meta"][k]
        ds["resources_full"] = [r for r in descriptor.get("resources", []) if isinstance(r, dict)
                                and _safe_rel(r.get("path")) and (ds["folder"] / r["path"]).is_file()]
        # linked files of a harvested copy (kept at their source): shown as external links
        ds["resources_remote"] = [r for r in descriptor.get("resources", []) if harvest and isinstance(r, dict)
                                  and isinstance(r.get("path"), str) and r["path"].startswith(("http://", "https://"))]
        cat.datasets.append(ds)
    cat.datasets.sort(key=lambda d: d["name"])
    for pub in cat.publishers.values():
        pub["datasets"] = [d["name"] for d in cat.datasets if d["publisher"] == pub["id"]]
    _load_places(cat)
    _load_schools(cat)
    return cat


def data_csv(ds: dict[str, Any]) -> dict[str, Any] | None:
    """The all-years CSV resource of a table dataset (else its first CSV)."""
    csvs = [r for r in ds["resources_full"] if (r.get("format") or "").lower() == "csv"
            and (r.get("preau") or {}).get("role", "data") == "data"]
    for r in csvs:
        if not (r.get("preau") or {}).get("school_year"):
            return r
    return csvs[0] if csvs else None


def layer_file(ds: dict[str, Any]) -> dict[str, Any] | None:
    """The WGS84 GeoJSON resource of a layer dataset."""
    for r in ds["resources_full"]:
        if (r.get("format") or "").lower() == "geojson" and (r.get("preau") or {}).get("crs", "EPSG:4326") == "EPSG:4326":
            return r
    return None


def _load_places(cat: Catalog) -> None:
    for ds in cat.datasets:
        if ds["dataset"] == "communes" and ds["kind"] == "layer":
            res = layer_file(ds)
            if res is None:
                continue
            data = _read_json(ds["folder"] / res["path"], cat.report) or {}
            for f in data.get("features", []):
                p = f.get("properties") or {}
                if p.get("code_insee") and p.get("nom"):
                    cat.communes[str(p["code_insee"])] = str(p["nom"])


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return None


def _load_schools(cat: Catalog) -> None:
    """One record per UAI from the ministry-shaped ``effectifs-ecole-niveau`` tables."""
    sectors: dict[str, str] = {}
    for ds in cat.datasets:
        if ds["dataset"] == "carte-ecoles" and ds["kind"] == "layer":
            res = layer_file(ds)
            data = _read_json(ds["folder"] / res["path"], cat.report) if res else None
            for f in (data or {}).get("features", []):
                p = f.get("properties") or {}
                if p.get("uai") and p.get("code_secteur"):
                    sectors[str(p["uai"])] = str(p["code_secteur"])
    for ds in cat.datasets:
        if ds["dataset"] != SCHOOL_DATASET:
            continue
        res = data_csv(ds)
        if res is None:
            continue
        with open(ds["folder"] / res["path"], encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                uai = (row.get("numero_de_l_ecole") or row.get("uai") or "").strip()
                if not SAFE_NAME.match(uai):
                    continue
                year = row.get("annee_scolaire") or ""
                if not year and row.get("rentree_scolaire"):
                    start = _int(row["rentree_scolaire"])
                    year = f"{start}-{start + 1}" if start else ""
                school = cat.schools.get(uai)
                if school is None:
                    school = cat.schools[uai] = {"uai": uai, "years": {}, "dataset": ds["name"],
                                                 "publisher": ds["publisher"]}
                    if ds.get("harvest"):
                        school["harvested_from"] = ds["harvest"].get("source_title") or ds["harvest"].get("source")
                name = " ".join(x for x in (row.get("denomination_principale"), row.get("patronyme")) if x)
                school.update({"name": name or uai, "commune": row.get("commune") or "",
                               "code_insee": row.get("code_insee") or "", "secteur": row.get("secteur") or "",
                               "code_secteur": sectors.get(uai, "")})
                school["years"][year] = {
                    "total": _int(row.get("nombre_total_d_eleves")),
                    "classes": _int(row.get("nombre_total_de_classes")),
                    "ulis": _int(row.get("nombre_d_eleves_en_ulis")),
                    "levels": [_int(row.get(f"nombre_d_eleves_en_{k}_hors_ulis")) for k, _ in LEVELS],
                }
                if row.get("code_insee") and row.get("commune"):
                    cat.communes.setdefault(row["code_insee"], row["commune"])
                if row.get("code_departement") and row.get("departement"):
                    cat.departments.setdefault(row["code_departement"].lstrip("0") or "0", row["departement"])
