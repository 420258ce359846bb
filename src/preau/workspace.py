"""A workspace: ``publishers/``, ``datasets/`` and ``schemas/`` folders a publisher edits.

Loading checks the configuration and reports each mistake as ``file:line: message`` (French, or
English with ``--lang en``) in a :class:`~preau.errors.Report`; it never raises a traceback for a
user mistake. The repository root is the reference workspace.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preau.errors import PreauError, Report, rel

LICENCES = {
    "etalab-2.0": {"fr": "Licence Ouverte 2.0", "en": "Open Licence 2.0 (Etalab)",
                   "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"},
    "odbl-1.0": {"fr": "Open Database License 1.0", "en": "Open Database License 1.0",
                 "url": "https://opendatacommons.org/licenses/odbl/1-0/"},
    "cc-by-4.0": {"fr": "Creative Commons Attribution 4.0", "en": "Creative Commons Attribution 4.0",
                  "url": "https://creativecommons.org/licenses/by/4.0/"},
}
FREQUENCIES = ("annual", "semiannual", "quarterly", "monthly", "irregular")
ACCESS = ("public", "restricted")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,98}[a-z0-9]$")


@dataclass
class Source:
    path: Path
    profile: str | None
    school_year: str | None


@dataclass
class Publisher:
    id: str
    file: Path
    raw: dict[str, Any]
    sources: list[Source] = field(default_factory=list)

    @property
    def name(self) -> dict[str, str]:
        return self.raw["name"]


@dataclass
class Dataset:
    id: str
    file: Path
    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @property
    def access(self) -> str:
        return self.raw.get("access", "public")

    @property
    def disclosure(self) -> dict[str, Any]:
        return self.raw.get("disclosure", {})


@dataclass
class Workspace:
    root: Path
    publishers: dict[str, Publisher]
    datasets: dict[str, Dataset]
    schemas: dict[str, Path]  # schema name -> schemas/<name>/schema.json

    def schema(self, name: str) -> dict[str, Any]:
        return json.loads(self.schemas[name].read_text(encoding="utf-8"))


def _line_of(text: str, key: str) -> int | None:
    """Line (1-based) where ``key`` is set or its table opens, for error messages."""
    last = key.split(".")[-1]
    pattern = re.compile(rf"^\s*(\[+\s*)?[\"']?{re.escape(last)}[\"']?\s*(=|\])", re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def read_toml(path: Path, report: Report) -> tuple[dict[str, Any] | None, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        report.error("config-encoding", "le fichier n'est pas en UTF-8", "the file is not UTF-8", file=rel(path))
        return None, ""
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        report.error("config-syntax", f"syntaxe TOML invalide : {exc}", f"invalid TOML syntax: {exc}",
                     file=rel(path), line=int(m.group(1)) if m else None)
        return None, text


class _Checker:
    """Small helper: checks keys of one TOML document, reporting ``file:line``."""

    def __init__(self, path: Path, text: str, data: dict[str, Any], report: Report):
        self.path, self.text, self.data, self.report = path, text, data, report

    def err(self, key: str, fr: str, en: str) -> None:
        self.report.error("config-invalid", fr, en, file=rel(self.path), line=_line_of(self.text, key), field=key)

    def get(self, key: str) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def required(self, key: str, kind: type | tuple[type, ...] = str) -> Any:
        value = self.get(key)
        if value is None:
            self.report.error("config-missing-key", f"clé obligatoire manquante : « {key} »",
                              f"missing required key: '{key}'", file=rel(self.path), field=key,
                              line=_line_of(self.text, key.rsplit(".", 1)[0]) if "." in key else None)
            return None
        return self.typed(key, kind)

    def typed(self, key: str, kind: type | tuple[type, ...]) -> Any:
        value = self.get(key)
        if value is not None and not isinstance(value, kind):
            names = " ou ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            names_en = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            self.err(key, f"« {key} » doit être de type {names}", f"'{key}' must be of type {names_en}")
            return None
        return value

    def bilingual(self, key: str, required: bool = True) -> None:
        value = self.required(key, dict) if required else self.typed(key, dict)
        if isinstance(value, dict) and not isinstance(value.get("fr"), str):
            self.err(key, f"« {key} » doit avoir un texte français (clé « fr »)",
                     f"'{key}' must have a French text (key 'fr')")

    def choice(self, key: str, choices: tuple[str, ...] | list[str] | set[str], required: bool = False) -> Any:
        value = self.required(key) if required else self.typed(key, str)
        if value is not None and value not in choices:
            listed = ", ".join(sorted(choices))
            self.err(key, f"« {key} » vaut « {value} » ; attendu : {listed}",
                     f"'{key}' is '{value}'; expected one of: {listed}")
            return None
        return value


def _load_publisher(path: Path, root: Path, report: Report) -> Publisher | None:
    data, text = read_toml(path, report)
    if data is None:
        return None
    c = _Checker(path, text, data, report)
    pid = c.required("id")
    if pid and not SLUG_RE.match(pid):
        c.err("id", "« id » : lettres minuscules, chiffres et tirets (3 à 100 caractères)",
              "'id': lowercase letters, digits and hyphens (3 to 100 characters)")
    c.bilingual("name")
    c.choice("kind", ("commune", "epci", "departement", "region", "academie", "national"), required=True)
    c.required("territory", list)
    c.choice("licence", LICENCES.keys())
    sources = []
    for i, src in enumerate(c.typed("sources", list) or []):
        if not isinstance(src, dict) or not isinstance(src.get("path"), str):
            c.err("sources", f"source n°{i + 1} : clé « path » (chemin du fichier) manquante",
                  f"source #{i + 1}: missing key 'path' (file path)")
            continue
        sources.append(Source(path=(root / src["path"]), profile=src.get("profile"),
                              school_year=src.get("school_year")))
    if pid is None:
        return None
    return Publisher(id=pid, file=path, raw=data, sources=sources)


def _load_dataset(path: Path, schemas: dict[str, Path], report: Report) -> Dataset | None:
    data, text = read_toml(path, report)
    if data is None:
        return None
    c = _Checker(path, text, data, report)
    did = c.required("id")
    if did and not SLUG_RE.match(did):
        c.err("id", "« id » : lettres minuscules, chiffres et tirets", "'id': lowercase letters, digits and hyphens")
    c.bilingual("title")
    c.bilingual("description")
    layer = c.choice("kind", ("table", "layer")) == "layer"  # geo layers: no dimensions, no disclosure
    if not layer:
        c.required("dimensions", list)
    c.choice("licence", LICENCES.keys(), required=True)
    c.choice("frequency", FREQUENCIES)
    c.choice("access", ACCESS)
    schema = c.required("schema")
    if schema and schema not in schemas:
        c.err("schema", f"schéma inconnu « {schema} » (absent de schemas/)",
              f"unknown schema '{schema}' (not in schemas/)")
    if not layer and c.required("disclosure", dict) is not None:
        rule = c.choice("disclosure.rule", ("threshold", "none"), required=True)
        if rule == "threshold":
            k = c.required("disclosure.k", int)
            if isinstance(k, int) and k < 2:
                c.err("disclosure.k", "« disclosure.k » doit être au moins 2", "'disclosure.k' must be at least 2")
        elif rule == "none":
            c.bilingual("disclosure.reason")
        zeros = c.typed("disclosure.hideable_zeros", dict)
        if zeros is not None:
            dims = data.get("dimensions") or []
            for key in ("rows", "columns"):
                if zeros.get(key) not in dims:
                    c.err(f"disclosure.hideable_zeros.{key}",
                          f"« disclosure.hideable_zeros.{key} » doit être une des dimensions du jeu ({', '.join(map(str, dims))})",
                          f"'disclosure.hideable_zeros.{key}' must be one of the dataset's dimensions ({', '.join(map(str, dims))})")
    if did is None:
        return None
    return Dataset(id=did, file=path, raw=data)


def load_workspace(root: str | Path = ".", strict: bool = True) -> tuple[Workspace, Report]:
    """Load and check a workspace. With ``strict``, raise :class:`PreauError` on any error."""
    root = Path(root)
    report = Report(subject=rel(root))
    if not root.is_dir():
        report.error("workspace-missing", f"dossier introuvable : {rel(root)}", f"folder not found: {rel(root)}")
        raise PreauError(report)
    for sub in ("publishers", "datasets", "schemas"):
        if not (root / sub).is_dir():
            report.error("workspace-missing", f"dossier « {sub}/ » absent de l'espace de travail",
                         f"folder '{sub}/' missing from the workspace", file=rel(root / sub))
    if report.errors:
        raise PreauError(report)
    schemas = {p.parent.name: p for p in sorted((root / "schemas").glob("*/schema.json"))}
    for name, path in schemas.items():
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            line = getattr(exc, "lineno", None)
            report.error("schema-syntax", f"JSON invalide : {exc}", f"invalid JSON: {exc}", file=rel(path), line=line)
    publishers: dict[str, Publisher] = {}
    for path in sorted((root / "publishers").glob("*.toml")):
        pub = _load_publisher(path, root, report)
        if pub:
            if pub.id in publishers:
                report.error("config-duplicate", f"identifiant « {pub.id} » déjà utilisé par {rel(publishers[pub.id].file)}",
                             f"id '{pub.id}' already used by {rel(publishers[pub.id].file)}", file=rel(path), field="id")
            publishers[pub.id] = pub
    datasets: dict[str, Dataset] = {}
    for path in sorted((root / "datasets").glob("*.toml")):
        ds = _load_dataset(path, schemas, report)
        if ds:
            if ds.id in datasets:
                report.error("config-duplicate", f"identifiant « {ds.id} » déjà utilisé par {rel(datasets[ds.id].file)}",
                             f"id '{ds.id}' already used by {rel(datasets[ds.id].file)}", file=rel(path), field="id")
            datasets[ds.id] = ds
    if not publishers:
        report.error("workspace-empty", "aucun éditeur déclaré dans publishers/", "no publisher declared in publishers/",
                     file=rel(root / "publishers"))
    ws = Workspace(root=root, publishers=publishers, datasets=datasets, schemas=schemas)
    if strict:
        report.raise_if_errors()
    return ws, report


def reference_root() -> Path:
    """The reference workspace shipped with Préau (the repository root, or its copy in the wheel)."""
    here = Path(__file__).resolve()
    repo = here.parents[2]
    if (repo / "datasets").is_dir() and (repo / "schemas").is_dir():
        return repo
    return here.parent / "_workspace"


PUBLISHER_TEMPLATE = '''# Éditeur : la collectivité qui publie. Modifiez ce fichier sans écrire de Python.
id = "{id}"
name = {{ fr = "{name}", en = "{name}" }}
kind = "{kind}"                 # commune, epci, departement, region, academie, national
territory = [{territory}]       # codes INSEE de communes ou codes de départements
licence = "etalab-2.0"
email = ""

# Un export élèves par année scolaire (ONDE : CSV Windows-1252 « ; »).
# [[sources]]
# path = "exports/eleves-2026-2027.csv"
# profile = "onde"
# school_year = "2026-2027"

# Référentiels publics : annuaire des écoles (annuaire de l'éducation), adresses BAN du
# département, carte scolaire (règles rue / numéros / parité) et contours des communes.
[references]
schools = "referentiels/ecoles.csv"
addresses = ["referentiels/adresses.csv"]
sector_rules = "referentiels/carte-scolaire.csv"
communes = "referentiels/communes.geojson"
'''


def init_workspace(target: str | Path, publisher_id: str, name: str, kind: str = "commune",
                   territory: list[str] | None = None) -> Path:
    """Scaffold a workspace for a new publisher: its TOML, the reference datasets and schemas."""
    import shutil

    target = Path(target)
    report = Report(subject=rel(target))
    if not SLUG_RE.match(publisher_id):
        report.error("init-id", "identifiant : lettres minuscules, chiffres et tirets (3 à 100 caractères)",
                     "id: lowercase letters, digits and hyphens (3 to 100 characters)", field="--id")
    if target.exists() and any(target.iterdir()):
        report.error("init-exists", "le dossier existe déjà et n'est pas vide", "the folder exists and is not empty",
                     file=rel(target))
    report.raise_if_errors()
    src = reference_root()
    (target / "publishers").mkdir(parents=True)
    for sub in ("datasets", "schemas"):
        shutil.copytree(src / sub, target / sub)
    for sub in ("exports", "referentiels", "site"):
        (target / sub).mkdir()
    codes = ", ".join(f'"{c}"' for c in (territory or []))
    (target / "publishers" / f"{publisher_id}.toml").write_text(
        PUBLISHER_TEMPLATE.format(id=publisher_id, name=name.replace('"', "'"), kind=kind, territory=codes),
        encoding="utf-8")
    (target / ".gitignore").write_text("_build/\nexports/\n", encoding="utf-8")
    return target
