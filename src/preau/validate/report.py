"""Validation reports: frictionless-compatible JSON, grouped human text (fr/en) and an HTML fragment.

The JSON layout is frictionless-py 5's (``valid``, ``stats``, ``warnings``, ``errors``,
``tasks[].errors[]`` with ``type``, ``title``, ``description``, ``message``, ``tags``, ``note``,
``cells``, ``rowNumber``, ``cell``, ``fieldName``, ``fieldNumber``…), complete: never cut.
Values of fields flagged ``"preau:personal": true`` are replaced by « valeur masquée » everywhere
(``cell``, ``cells``, ``message``, notes); in a ragged row of such a table every value is masked,
since its cells can no longer be matched with their fields.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import escape

from preau.i18n import current_lang

MASK = "valeur masquée"
MASK_EN = "masked value"

# frictionless-py 5 error metadata (title, description, template, tags)
META: dict[str, tuple[str, str, str, list[str]]] = {
    "type-error": ("Type Error", "The value does not match the schema type and format for this field.",
                   'Type error in the cell "{cell}" in row "{rowNumber}" and field "{fieldName}" at position "{fieldNumber}": {note}',
                   ["#table", "#row", "#cell"]),
    "constraint-error": ("Constraint Error", "A field value does not conform to a constraint.",
                         'The cell "{cell}" in row at position "{rowNumber}" and field "{fieldName}" at position "{fieldNumber}" does not conform to a constraint: {note}',
                         ["#table", "#row", "#cell"]),
    "unique-error": ("Unique Error", "This field is a unique field but it contains a value that has been used in another row.",
                     'Row at position "{rowNumber}" has unique constraint violation in field "{fieldName}" at position "{fieldNumber}": {note}',
                     ["#table", "#row", "#cell"]),
    "extra-cell": ("Extra Cell", "This row has more values compared to the header row (the first row in the data source). A key concept is that all the rows in tabular data must have the same number of columns.",
                   'Row at position "{rowNumber}" has an extra value in field at position "{fieldNumber}"',
                   ["#table", "#row", "#cell"]),
    "missing-cell": ("Missing Cell", "This row has less values compared to the header row (the first row in the data source). A key concept is that all the rows in tabular data must have the same number of columns.",
                     'Row at position "{rowNumber}" has a missing cell in field "{fieldName}" at position "{fieldNumber}"',
                     ["#table", "#row", "#cell"]),
    "blank-row": ("Blank Row", "This row is empty. A row should contain at least one value.",
                  'Row at position "{rowNumber}" is completely blank', ["#table", "#row"]),
    "primary-key": ("PrimaryKey Error", "Values in the primary key fields should be unique for every row",
                    'Row at position "{rowNumber}" violates the primary key: {note}', ["#table", "#row"]),
    "foreign-key": ("ForeignKey Error", "Values in the foreign key fields should exist in the reference table",
                    'Row at position "{rowNumber}" violates the foreign key: {note}', ["#table", "#row"]),
    "extra-label": ("Extra Label", "The header of the data source contains label that does not exist in the provided schema.",
                    'There is an extra label "{label}" in header at position "{fieldNumber}"', ["#table", "#header", "#label"]),
    "missing-label": ("Missing Label", "Based on the schema there should be a label that is missing in the data's header.",
                      'There is a missing label in the header\'s field "{fieldName}" at position "{fieldNumber}"',
                      ["#table", "#header", "#label"]),
    "blank-label": ("Blank Label", "A label in the header row is missing a value. Label should be provided and not be blank.",
                    'Label in the header in field at position "{fieldNumber}" is blank', ["#table", "#header", "#label"]),
    "duplicate-label": ("Duplicate Label", "Two columns in the header row have the same value. Column names should be unique.",
                        'Label "{label}" in the header at position "{fieldNumber}" is duplicated to a label: {note}',
                        ["#table", "#header", "#label"]),
    "incorrect-label": ("Incorrect Label", "One of the data source header does not match the field name defined in the schema.",
                        'Label "{label}" in field {fieldName} at position "{fieldNumber}" does not match the field name in the schema',
                        ["#table", "#header", "#label"]),
    "blank-header": ("Blank Header", "This header is empty. A header should contain at least one value.",
                     "Header is completely blank", ["#table", "#header"]),
    "source-error": ("Source Error", "Data reading error because of not supported or inconsistent contents.",
                     "The data source has not supported or has inconsistent contents: {note}", []),
    "encoding-error": ("Encoding Error", "Data reading error because of an encoding problem.",
                       "The data source could not be successfully decoded: {note}", []),
    "scheme-error": ("Scheme Error", "Data reading error because of incorrect scheme.",
                     "The data source could not be successfully loaded: {note}", []),
    "format-error": ("Format Error", "Data reading error because of incorrect format.",
                     "The data source could not be successfully parsed: {note}", []),
    "schema-error": ("Schema Error", "Provided schema is not valid.", "Schema is not valid: {note}", []),
    "package-error": ("Package Error", "A validation cannot be processed.", "The data package has an error: {note}", []),
    "resource-error": ("Resource Error", "A validation cannot be processed.", "The data resource has an error: {note}", []),
}

TYPE_LABELS = {
    "fr": {
        "type-error": "Valeur d'un type inattendu", "constraint-error": "Contrainte non respectée",
        "unique-error": "Valeur en double (champ unique)", "extra-cell": "Cellule en trop",
        "missing-cell": "Cellule manquante", "blank-row": "Ligne vide", "primary-key": "Clé primaire en double ou vide",
        "foreign-key": "Clé étrangère introuvable", "extra-label": "Colonne en trop dans l'en-tête",
        "missing-label": "Colonne absente de l'en-tête", "blank-label": "Nom de colonne vide",
        "duplicate-label": "Nom de colonne en double", "incorrect-label": "Nom de colonne inattendu",
        "blank-header": "En-tête vide", "source-error": "Fichier illisible", "encoding-error": "Encodage incorrect",
        "scheme-error": "Fichier introuvable", "format-error": "Format non reconnu", "schema-error": "Schéma invalide",
        "package-error": "Paquet de données invalide", "resource-error": "Ressource invalide",
    },
    "en": {
        "type-error": "Value of an unexpected type", "constraint-error": "Constraint not met",
        "unique-error": "Duplicate value (unique field)", "extra-cell": "Extra cell", "missing-cell": "Missing cell",
        "blank-row": "Blank row", "primary-key": "Duplicate or empty primary key", "foreign-key": "Foreign key not found",
        "extra-label": "Extra column in the header", "missing-label": "Column missing from the header",
        "blank-label": "Blank column name", "duplicate-label": "Duplicate column name",
        "incorrect-label": "Unexpected column name", "blank-header": "Blank header", "source-error": "Unreadable file",
        "encoding-error": "Wrong encoding", "scheme-error": "File not found", "format-error": "Unknown format",
        "schema-error": "Invalid schema", "package-error": "Invalid data package", "resource-error": "Invalid resource",
    },
}

TYPE_NAMES = {
    "fr": {"string": "texte", "integer": "nombre entier", "number": "nombre", "boolean": "booléen (true/false)",
           "date": "date AAAA-MM-JJ", "datetime": "date et heure ISO 8601", "time": "heure", "year": "année (4 chiffres)",
           "yearmonth": "année-mois AAAA-MM", "duration": "durée ISO 8601", "geopoint": "point géographique",
           "geojson": "objet GeoJSON", "object": "objet JSON", "array": "liste JSON", "list": "liste", "any": "valeur"},
    "en": {"string": "text", "integer": "integer", "number": "number", "boolean": "boolean (true/false)",
           "date": "date YYYY-MM-DD", "datetime": "ISO 8601 date-time", "time": "time", "year": "year (4 digits)",
           "yearmonth": "year-month YYYY-MM", "duration": "ISO 8601 duration", "geopoint": "geographic point",
           "geojson": "GeoJSON object", "object": "JSON object", "array": "JSON array", "list": "list", "any": "value"},
}

_CONSTRAINT_RE = re.compile(r'^constraint "(?P<name>[^"]+)" is "(?P<value>.*)"$', re.S)
_TYPE_RE = re.compile(r'^type is "(?P<type>[^/"]+)/(?P<format>[^"]*)"$')
_SAME_RE = re.compile(r"the same as in the row at position (\d+)")


def explain(error: dict, lang: str, personal: bool = False) -> str:
    """One error explained in plain words (French or English), without personal values."""
    en = lang == "en"
    t = error["type"]
    note = error.get("note", "") or ""
    cell = error.get("cell")
    shown = (MASK_EN if en else MASK) if personal and cell else cell
    if t == "type-error":
        m = _TYPE_RE.match(note)
        ty = m.group("type") if m else "?"
        fmt = m.group("format") if m else "default"
        tname = TYPE_NAMES["en" if en else "fr"].get(ty, ty)
        if fmt and fmt != "default":
            tname += f" ({fmt})"
        return (f'"{shown}" is not of the expected type: {tname}' if en
                else f"« {shown} » n'est pas du type attendu : {tname}")
    if t == "constraint-error":
        m = _CONSTRAINT_RE.match(note)
        name, value = (m.group("name"), m.group("value")) if m else ("?", "")
        if name == "required":
            return "required value is missing" if en else "valeur obligatoire absente"
        if name == "preau:check":
            from preau.validate.checks import DESCRIPTIONS

            desc = DESCRIPTIONS.get(value)
            what = desc("en" if en else "fr") if desc else value
            return (f'"{shown}" is not valid: expected {what}' if en else f"« {shown} » n'est pas valide : attendu {what}")
        words = {
            "pattern": ("does not match the pattern {v}", "ne respecte pas le motif {v}"),
            "enum": ("is not one of the allowed values {v}", "n'est pas une des valeurs permises {v}"),
            "minimum": ("is below the minimum {v}", "est inférieur au minimum {v}"),
            "maximum": ("is above the maximum {v}", "est supérieur au maximum {v}"),
            "exclusiveMinimum": ("must be greater than {v}", "doit être strictement supérieur à {v}"),
            "exclusiveMaximum": ("must be less than {v}", "doit être strictement inférieur à {v}"),
            "minLength": ("is shorter than {v} characters", "compte moins de {v} caractères"),
            "maxLength": ("is longer than {v} characters", "compte plus de {v} caractères"),
        }.get(name, (f"breaks the constraint {name} = {{v}}", f"ne respecte pas la contrainte {name} = {{v}}"))
        text = words[0 if en else 1].format(v=value)
        return (f'"{shown}" {text}' if en else f"« {shown} » {text}")
    if t == "unique-error":
        m = _SAME_RE.search(note)
        r = m.group(1) if m else "?"
        return (f"same value as row {r} (the field must be unique)" if en
                else f"même valeur qu'à la ligne {r} (le champ doit être unique)")
    if t == "primary-key":
        if "None" in note:
            return "every field of the primary key is empty" if en else "tous les champs de la clé primaire sont vides"
        m = _SAME_RE.search(note)
        r = m.group(1) if m else "?"
        return f"same primary key as row {r}" if en else f"même clé primaire qu'à la ligne {r}"
    if t == "foreign-key":
        fields = ", ".join(error.get("fieldNames", []))
        ref = error.get("referenceName") or ("this table" if en else "cette table")
        vals = ", ".join(error.get("fieldCells", []))
        return (f'values "{vals}" of ({fields}) not found in "{ref}"' if en
                else f"valeurs « {vals} » de ({fields}) absentes de « {ref} »")
    if t == "missing-cell":
        return ("the row has fewer values than the header" if en else "la ligne compte moins de valeurs que l'en-tête")
    if t == "extra-cell":
        return ("the row has more values than the header" if en else "la ligne compte plus de valeurs que l'en-tête")
    if t == "blank-row":
        return "the row is empty" if en else "la ligne est vide"
    if t == "extra-label":
        return (f'column "{error.get("label")}" is not in the schema' if en
                else f"la colonne « {error.get('label')} » n'est pas dans le schéma")
    if t == "missing-label":
        return (f'column "{error.get("fieldName")}" is missing' if en
                else f"la colonne « {error.get('fieldName')} » est absente")
    if t == "blank-label":
        return (f'expected "{error.get("fieldName")}", the column name is blank' if en
                else f"nom de colonne vide, « {error.get('fieldName')} » attendu")
    if t == "duplicate-label":
        return (f'column "{error.get("label")}" appears twice ({note})' if en
                else f"la colonne « {error.get('label')} » apparaît deux fois ({note.replace('at position', 'position')})")
    if t == "incorrect-label":
        return (f'column "{error.get("label")}" found where "{error.get("fieldName")}" was expected' if en
                else f"colonne « {error.get('label')} » trouvée là où « {error.get('fieldName')} » est attendue")
    if t == "blank-header":
        return "the header row is empty" if en else "la ligne d'en-tête est vide"
    fr = error.get("preau:noteFr")
    return note if en or not fr else fr


def location(error: dict, lang: str) -> str:
    en = lang == "en"
    parts = []
    if error.get("rowNumber"):
        parts.append(("row " if en else "ligne ") + str(error["rowNumber"]))
    elif "rowNumbers" in error:
        parts.append("header" if en else "en-tête")
    elif error.get("preau:line"):
        parts.append(("line " if en else "ligne ") + str(error["preau:line"]))
    if error.get("fieldName"):
        parts.append(("field " if en else "champ ") + f"« {error['fieldName']} »" if not en else f'field "{error["fieldName"]}"')
    if error.get("fieldNumber") and error.get("type") in ("extra-cell", "extra-label"):
        parts.append(("column " if en else "colonne ") + str(error["fieldNumber"]))
    return ", ".join(parts)


@dataclass
class Task:
    name: str
    place: str
    labels: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (en, fr)
    stats: dict = field(default_factory=dict)
    personal: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        stats = {"errors": len(self.errors), "warnings": len(self.warnings), "seconds": round(self.seconds, 3)}
        stats.update({k: v for k, v in self.stats.items() if v is not None})
        return {"name": self.name, "type": "table", "valid": self.valid, "place": self.place,
                "labels": list(self.labels), "stats": stats, "warnings": [w[0] for w in self.warnings],
                "errors": self.errors}


def _dumps(obj: Any, indent: int) -> str:
    """JSON with ``indent``, except the items of ``errors`` lists: one compact line each (json's C
    encoder); the pieces are joined once (a report of many errors is tens of MB)."""
    encode = json.JSONEncoder(ensure_ascii=False).encode
    parts: list[str] = []

    def put(o: Any, level: int, compact_items: bool = False) -> None:
        pad, end = "\n" + " " * (indent * (level + 1)), "\n" + " " * (indent * level)
        if isinstance(o, dict) and o:
            parts.append("{")
            for i, (k, v) in enumerate(o.items()):
                parts.append(("," if i else "") + pad + encode(str(k)) + ": ")
                put(v, level + 1, k == "errors")
            parts.append(end + "}")
        elif isinstance(o, list) and o:
            parts.append("[")
            if compact_items:
                parts.append(pad + ("," + pad).join(map(encode, o)))
            else:
                for i, v in enumerate(o):
                    parts.append(("," if i else "") + pad)
                    put(v, level + 1)
            parts.append(end + "]")
        else:
            parts.append(encode(o))

    put(obj, 0)
    return "".join(parts)


@dataclass
class ValidationReport:
    """The outcome of :func:`preau.validate.validate_table` / :func:`validate_package`."""

    tasks: list[Task] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # package-level errors
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def valid(self) -> bool:
        return not self.errors and all(t.valid for t in self.tasks)

    @property
    def error_count(self) -> int:
        return len(self.errors) + sum(len(t.errors) for t in self.tasks)

    def flat_errors(self) -> list[dict]:
        return list(self.errors) + [e for t in self.tasks for e in t.errors]

    def counts(self) -> Counter:
        return Counter(e["type"] for e in self.flat_errors())

    def to_frictionless_dict(self) -> dict:
        return {
            "valid": self.valid,
            "stats": {"tasks": len(self.tasks), "errors": self.error_count,
                      "warnings": len(self.warnings) + sum(len(t.warnings) for t in self.tasks),
                      "seconds": round(self.seconds, 3)},
            "warnings": list(self.warnings),
            "errors": list(self.errors),
            "tasks": [t.to_dict() for t in self.tasks],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The frictionless-compatible report as JSON: indented, each error on one line (json's fast C
        encoder writes them; an indented dump is pure Python, ~10x slower on a report of many errors)."""
        d = self.to_frictionless_dict()
        return json.dumps(d, ensure_ascii=False) if indent is None else _dumps(d, indent)

    def write(self, path: str | Path) -> Path:
        """Write the JSON report atomically (nothing half-written)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    # ---- human renderings -------------------------------------------------------------
    def _groups(self, task: Task | None) -> list[tuple[str, list[dict]]]:
        errs = self.errors if task is None else task.errors
        order: dict[str, list[dict]] = {}
        for e in errs:
            order.setdefault(e["type"], []).append(e)
        return list(order.items())

    def render(self, lang: str | None = None, examples: int = 5) -> str:
        """Plain text, grouped by error type with counts and the first examples (French by default)."""
        lang = current_lang(lang)
        en = lang == "en"
        lines: list[str] = []
        n = self.error_count
        if self.valid:
            lines.append("Valid: no error found." if en else "Valide : aucune erreur.")
        else:
            lines.append(f"Invalid: {n} error(s)." if en else f"Invalide : {n} erreur(s).")
        for label, task in [(None, None)] + [(t.place, t) for t in self.tasks]:
            groups = self._groups(task)
            if task is not None:
                rows = task.stats.get("rows")
                head = f"{task.place}"
                if rows is not None:
                    head += f" — {rows} row(s)" if en else f" — {rows} ligne(s)"
                head += (": valid" if en else " : valide") if task.valid else (
                    f": {len(task.errors)} error(s)" if en else f" : {len(task.errors)} erreur(s)")
                lines.append("")
                lines.append(head)
                for w in task.warnings:
                    lines.append(("  warning: " if en else "  avertissement : ") + (w[0] if en else w[1]))
            for etype, errs in groups:
                title = TYPE_LABELS["en" if en else "fr"].get(etype, etype)
                lines.append(f"  {title} [{etype}] : {len(errs)}" if not en else f"  {title} [{etype}]: {len(errs)}")
                for e in errs[:examples]:
                    personal = bool(task and e.get("fieldName") in task.personal)
                    loc = location(e, lang)
                    text = explain(e, lang, personal)
                    lines.append(f"    - {loc} : {text}" if (loc and not en) else (f"    - {loc}: {text}" if loc else f"    - {text}"))
                if len(errs) > examples:
                    more = len(errs) - examples
                    lines.append(f"    … and {more} more" if en else f"    … et {more} autre(s)")
        return "\n".join(lines)

    def to_html(self, lang: str | None = None, examples: int = 10) -> str:
        """A self-contained HTML fragment (escaped, no script) for the site."""
        lang = current_lang(lang)
        en = lang == "en"
        out: list[str] = [f'<section class="preau-validation" lang="{lang}">']
        status = ("Valid" if en else "Valide") if self.valid else (
            f"Invalid: {self.error_count} error(s)" if en else f"Invalide : {self.error_count} erreur(s)")
        cls = "valid" if self.valid else "invalid"
        out.append(f'<p class="preau-validation-status {cls}"><strong>{escape(status)}</strong></p>')
        for task in [None] + list(self.tasks):
            groups = self._groups(task)
            if task is not None:
                rows = task.stats.get("rows")
                out.append(f"<h3>{escape(task.place)}</h3>")
                if rows is not None:
                    out.append(f"<p>{escape(str(rows))} {'row(s)' if en else 'ligne(s)'}</p>")
                for w in task.warnings:
                    out.append(f'<p class="preau-warning">{escape(w[0] if en else w[1])}</p>')
            if not groups:
                continue
            out.append("<table><thead><tr>"
                       + "".join(f"<th>{escape(h)}</th>" for h in (
                           ("Error", "Count", "First examples") if en else ("Erreur", "Nombre", "Premiers exemples")))
                       + "</tr></thead><tbody>")
            for etype, errs in groups:
                title = TYPE_LABELS["en" if en else "fr"].get(etype, etype)
                items = []
                for e in errs[:examples]:
                    personal = bool(task and e.get("fieldName") in task.personal)
                    loc = location(e, lang)
                    items.append(f"<li>{escape(loc)}{' : ' if (loc and not en) else (': ' if loc else '')}"
                                 f"{escape(explain(e, lang, personal))}</li>")
                if len(errs) > examples:
                    more = len(errs) - examples
                    items.append(f"<li>{escape(f'… and {more} more' if en else f'… et {more} autre(s)')}</li>")
                out.append(f'<tr><td>{escape(title)} <code>{escape(etype)}</code></td><td>{len(errs)}</td>'
                           f'<td><ul>{"".join(items)}</ul></td></tr>')
            out.append("</tbody></table>")
        out.append("</section>")
        return "\n".join(out)


def make_error(etype: str, **props: Any) -> dict:
    """A frictionless-shaped error dict with its title, description, message and tags."""
    title, description, template, tags = META.get(etype, (etype, etype, "{note}", []))
    props.setdefault("note", "")
    fmt = {k: ("" if v is None else v) for k, v in props.items()}
    try:
        message = template.format(**fmt)
    except (KeyError, IndexError):
        message = props.get("note", "")
    err = {"type": etype, "title": title, "description": description, "message": message, "tags": list(tags)}
    err.update(props)
    return err
