"""Load and check a Table Schema (https://specs.frictionlessdata.io/table-schema/).

A malformed schema never raises a traceback: :func:`load_schema` returns the descriptor (or None) and a
list of :class:`SchemaProblem` (English note in the frictionless style, French text, JSON line when
known). Préau's own extensions live in ``preau:``-prefixed properties, which frictionless ignores:

* ``"preau:personal": true`` on a field: personal data, its values are never printed;
* ``"preau:check": "uai" | "insee" | "annee_scolaire" | "niveau"`` (or
  ``{"name": "uai", "except": ["TOTAL"]}``): a French code check (see :mod:`preau.validate.checks`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preau.errors import PreauError, rel

TYPES = ("string", "integer", "number", "boolean", "date", "datetime", "time", "year", "yearmonth",
         "duration", "geopoint", "geojson", "object", "array", "list", "any")
CONSTRAINTS = {
    "string": ("required", "minLength", "maxLength", "pattern", "enum"),
    "integer": ("required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"),
    "number": ("required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"),
    "boolean": ("required", "enum"),
    "date": ("required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"),
    "datetime": ("required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"),
    "time": ("required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"),
    "year": ("required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"),
    "yearmonth": ("required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"),
    "duration": ("required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"),
    "geopoint": ("required", "enum"),
    "geojson": ("required", "enum"),
    "object": ("required", "minLength", "maxLength", "enum"),
    "array": ("required", "minLength", "maxLength", "enum"),
    "list": ("required", "minLength", "maxLength", "enum"),
    "any": ("required", "enum"),
}
ALL_CONSTRAINTS = ("required", "unique", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
                   "exclusiveMaximum", "pattern", "enum")
PREAU_CHECKS = ("uai", "insee", "annee_scolaire", "niveau")


@dataclass
class SchemaProblem:
    note: str
    fr: str
    line: int | None = None
    file: str | None = None


def _json_line(text: str, needle: str) -> int | None:
    idx = text.find(needle)
    return text.count("\n", 0, idx) + 1 if idx >= 0 else None


def schemas_dir() -> Path:
    """The repository's ``schemas/`` folder (or ``$PREAU_SCHEMAS``)."""
    import os

    env = os.environ.get("PREAU_SCHEMAS")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "schemas").is_dir() and (parent / "pyproject.toml").exists():
            return parent / "schemas"
    return Path.cwd() / "schemas"


def resolve_schema_path(spec: str | Path) -> Path:
    """A schema given as a path (file or folder) or as a name in ``schemas/``."""
    p = Path(spec)
    if p.is_dir() and (p / "schema.json").exists():
        return p / "schema.json"
    if p.exists():
        return p
    named = schemas_dir() / str(spec) / "schema.json"
    if named.exists():
        return named
    names = sorted(d.name for d in schemas_dir().glob("*/") if (d / "schema.json").exists())
    raise PreauError(
        f"schéma introuvable : « {spec} » (ni un fichier, ni un nom de schemas/ : {', '.join(names)})",
        f"schema not found: '{spec}' (neither a file nor a name in schemas/: {', '.join(names)})",
        code="validate-schema-missing")


def read_schema(spec: str | Path | dict) -> tuple[dict | None, list[SchemaProblem], str]:
    """Return (descriptor, problems, source name). IO errors (missing file) raise PreauError."""
    if isinstance(spec, dict):
        desc = spec
        return desc, check_schema(desc, ""), "<schema>"
    path = resolve_schema_path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [SchemaProblem("schema is not valid UTF-8", "le schéma n'est pas encodé en UTF-8",
                                    file=rel(path))], rel(path)
    except OSError as exc:
        raise PreauError(f"schéma illisible : {rel(path)} ({exc.strerror})",
                         f"cannot read schema: {rel(path)} ({exc.strerror})", code="validate-schema-io") from None
    try:
        desc = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [SchemaProblem(f"schema is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                                    f"le schéma n'est pas un JSON valide : {exc.msg} (ligne {exc.lineno}, colonne {exc.colno})",
                                    line=exc.lineno, file=rel(path))], rel(path)
    problems = check_schema(desc, text)
    for p in problems:
        p.file = rel(path)
    return desc, problems, rel(path)


def check_schema(desc: Any, text: str = "") -> list[SchemaProblem]:
    """Structural checks of a Table Schema (what frictionless' schema profile requires, plus ours)."""
    out: list[SchemaProblem] = []

    def err(note: str, fr: str, needle: str | None = None) -> None:
        out.append(SchemaProblem(note, fr, line=_json_line(text, needle) if (needle and text) else None))

    if not isinstance(desc, dict):
        err("schema descriptor must be a JSON object", "le schéma doit être un objet JSON")
        return out
    fields = desc.get("fields")
    if not isinstance(fields, list):
        err('"fields" is required and must be an array', "la propriété « fields » (liste des champs) est obligatoire",
            '"fields"')
        return out
    names: list[str] = []
    for i, f in enumerate(fields, start=1):
        if not isinstance(f, dict):
            err(f"field {i} must be an object", f"le champ n°{i} doit être un objet JSON")
            continue
        name = f.get("name")
        if not isinstance(name, str) or not name:
            err(f'field {i}: "name" is required (a non-empty string)',
                f"champ n°{i} : la propriété « name » (nom non vide) est obligatoire")
            continue
        needle = f'"{name}"'
        if name in names:
            err(f'field "{name}" is declared twice', f"le champ « {name} » est déclaré deux fois", needle)
        names.append(name)
        ftype = f.get("type", "any")
        if ftype not in TYPES:
            err(f'field "{name}": type "{ftype}" is not supported', f"champ « {name} » : type « {ftype} » inconnu "
                f"(attendu : {', '.join(TYPES)})", needle)
            continue
        cons = f.get("constraints", {})
        if not isinstance(cons, dict):
            err(f'field "{name}": "constraints" must be an object',
                f"champ « {name} » : « constraints » doit être un objet JSON", needle)
            continue
        for key, value in cons.items():
            if key not in ALL_CONSTRAINTS:
                err(f'field "{name}": unknown constraint "{key}"', f"champ « {name} » : contrainte inconnue « {key} »",
                    needle)
            elif key in ("required", "unique") and not isinstance(value, bool):
                err(f'field "{name}": constraint "{key}" must be a boolean',
                    f"champ « {name} » : la contrainte « {key} » doit valoir true ou false", needle)
            elif key in ("minLength", "maxLength") and (not isinstance(value, int) or isinstance(value, bool)):
                err(f'field "{name}": constraint "{key}" must be an integer',
                    f"champ « {name} » : la contrainte « {key} » doit être un entier", needle)
            elif key == "pattern":
                if not isinstance(value, str):
                    err(f'field "{name}": constraint "pattern" must be a string',
                        f"champ « {name} » : la contrainte « pattern » doit être une expression régulière (texte)", needle)
                else:
                    try:
                        re.compile(value)
                    except re.error as exc:
                        err(f'field "{name}": constraint "pattern" is not a valid regular expression: {exc}',
                            f"champ « {name} » : « pattern » n'est pas une expression régulière valide : {exc}", needle)
            elif key == "enum" and (not isinstance(value, list) or not value):
                err(f'field "{name}": constraint "enum" must be a non-empty array',
                    f"champ « {name} » : « enum » doit être une liste non vide", needle)
            elif key in CONSTRAINTS.get("integer", ()) and key.endswith(("imum",)) and isinstance(value, (dict, list, bool)):
                err(f'field "{name}": constraint "{key}" must be a value',
                    f"champ « {name} » : la contrainte « {key} » doit être une valeur", needle)
        check = f.get("preau:check")
        if check is not None:
            cname = check.get("name") if isinstance(check, dict) else check
            if cname not in PREAU_CHECKS:
                err(f'field "{name}": unknown "preau:check" "{cname}"',
                    f"champ « {name} » : contrôle « preau:check » inconnu « {cname} » (attendu : {', '.join(PREAU_CHECKS)})",
                    needle)
        if "preau:personal" in f and not isinstance(f["preau:personal"], bool):
            err(f'field "{name}": "preau:personal" must be a boolean',
                f"champ « {name} » : « preau:personal » doit valoir true ou false", needle)
    mv = desc.get("missingValues", [""])
    if not isinstance(mv, list) or not all(isinstance(v, str) for v in mv):
        err('"missingValues" must be an array of strings', "« missingValues » doit être une liste de textes",
            '"missingValues"')
    pk = desc.get("primaryKey")
    if pk is not None:
        pk_list = [pk] if isinstance(pk, str) else pk
        if not isinstance(pk_list, list):
            err('"primaryKey" must be a string or an array', "« primaryKey » doit être un nom de champ ou une liste",
                '"primaryKey"')
        else:
            for k in pk_list:
                if k not in names:
                    err(f'primary key field "{k}" is not a field of the schema',
                        f"la clé primaire cite le champ « {k} », absent du schéma", '"primaryKey"')
    fks = desc.get("foreignKeys", [])
    if not isinstance(fks, list):
        err('"foreignKeys" must be an array', "« foreignKeys » doit être une liste", '"foreignKeys"')
    else:
        for fk in fks:
            if not isinstance(fk, dict) or not isinstance(fk.get("reference"), dict):
                err('foreign key must have "fields" and "reference"',
                    "une clé étrangère doit avoir « fields » et « reference »", '"foreignKeys"')
                continue
            fk_fields = fk.get("fields")
            fk_fields = [fk_fields] if isinstance(fk_fields, str) else fk_fields
            ref_fields = fk["reference"].get("fields")
            ref_fields = [ref_fields] if isinstance(ref_fields, str) else ref_fields
            if not isinstance(fk_fields, list) or not isinstance(ref_fields, list) or len(fk_fields) != len(ref_fields):
                err("foreign key fields and reference fields must have the same length",
                    "clé étrangère : « fields » et « reference.fields » doivent avoir la même longueur", '"foreignKeys"')
                continue
            for k in fk_fields:
                if k not in names:
                    err(f'foreign key field "{k}" is not a field of the schema',
                        f"la clé étrangère cite le champ « {k} », absent du schéma", '"foreignKeys"')
    return out
