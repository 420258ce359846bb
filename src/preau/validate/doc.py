"""Generate each schema's ``README.md`` (field table) from its ``schema.json``.

``preau schema doc`` rewrites the READMEs that carry the generated marker (or have none yet);
``preau schema doc --check`` lists the stale ones (a test keeps them up to date). READMEs written by
hand (no marker) are left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from preau.errors import PreauError, Problem, Report, rel
from preau.validate.schema import check_schema, schemas_dir

MARKER = "<!-- Généré par « preau schema doc » à partir de schema.json : ne pas modifier à la main. -->"
CHECK_FR = {"uai": "UAI (lettre clé vérifiée)", "insee": "code INSEE", "annee_scolaire": "année scolaire AAAA-AAAA",
            "niveau": "code de niveau"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _constraints(field: dict) -> str:
    cons = field.get("constraints", {}) or {}
    parts = []
    if cons.get("required"):
        parts.append("obligatoire")
    if cons.get("unique"):
        parts.append("unique")
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
        if key in cons:
            parts.append(f"{label} {cons[key]}")
    if "minLength" in cons:
        parts.append(f"longueur ≥ {cons['minLength']}")
    if "maxLength" in cons:
        parts.append(f"longueur ≤ {cons['maxLength']}")
    if "enum" in cons:
        parts.append("valeurs : " + ", ".join(f"`{v}`" for v in cons["enum"]))
    if "pattern" in cons:
        parts.append(f"motif `{cons['pattern']}`")
    check = field.get("preau:check")
    if check:
        name = check.get("name") if isinstance(check, dict) else check
        text = "contrôle " + CHECK_FR.get(name, str(name))
        if isinstance(check, dict) and (check.get("except") or check.get("except_pattern")):
            text += " (sauf " + ", ".join([f"`{v}`" for v in check.get("except", [])]
                                          + ([f"motif `{check['except_pattern']}`"] if check.get("except_pattern") else [])) + ")"
        parts.append(text)
    if field.get("format") not in (None, "default"):
        parts.append(f"format {field['format']}")
    return "<br>".join(_cell(p) for p in parts)


def render_readme(schema: dict) -> str:
    """The README text of a schema (French)."""
    name = schema.get("name", "")
    lines = [MARKER, "", f"# {schema.get('title', name)} (`{name}`)", "", schema.get("description", ""), ""]
    lic = ", ".join(f"[{l.get('title', l.get('name'))}]({l.get('path', '')})" for l in schema.get("licenses", []))
    pk = schema.get("primaryKey") or []
    pk = [pk] if isinstance(pk, str) else pk
    lines += [
        f"- Version : **{schema.get('version', '?')}** (voir [`CHANGELOG.md`](CHANGELOG.md)), créé le {schema.get('created', '?')}",
        f"- Licence : {lic or '—'}",
        f"- Clé primaire : {', '.join(f'`{k}`' for k in pk) or '—'}",
        "- Exemple valide : [`exemple-valide.csv`](exemple-valide.csv) (UTF-8, séparateur virgule)",
    ]
    if schema.get("homepage"):
        lines.append(f"- Page : {schema['homepage']}")
    personal = [f["name"] for f in schema.get("fields", []) if f.get("preau:personal")]
    if personal:
        lines += ["", "**Données personnelles** : les champs marqués 🔒 ne sont jamais affichés par Préau (les "
                  "rapports de validation écrivent « valeur masquée ») et ne sont jamais publiés."]
    lines += ["", "## Champs", "", "| # | nom | type | titre | description | contraintes | exemple |",
              "|---|---|---|---|---|---|---|"]
    for i, f in enumerate(schema.get("fields", []), start=1):
        lock = " 🔒" if f.get("preau:personal") else ""
        ex = f.get("example", "")
        ex = json.dumps(ex, ensure_ascii=False) if isinstance(ex, bool) else ex
        lines.append(f"| {i} | `{f['name']}`{lock} | {f.get('type', 'any')} | {_cell(f.get('title', ''))} | "
                     f"{_cell(f.get('description', ''))} | {_constraints(f)} | {_cell('`' + str(ex) + '`' if ex != '' else '')} |")
    for fk in schema.get("foreignKeys", []) or []:
        lines.append("")
        lines.append(f"Clé étrangère : {fk.get('fields')} → {fk.get('reference')}")
    lines += ["", "## Valider un fichier", "", "```sh",
              f"preau validate mon-fichier.csv --schema {name}",
              f"frictionless validate --schema schemas/{name}/schema.json mon-fichier.csv", "```", "",
              "Préau applique en plus les contrôles français déclarés par la propriété `preau:check` (lettre clé "
              "UAI, codes INSEE, années scolaires, niveaux), que frictionless ignore.", ""]
    return "\n".join(lines)


def generated_readmes(root: str | Path | None = None) -> dict[Path, str]:
    """{README path: expected text} for every schema whose README is generated (or missing)."""
    root = Path(root) if root else schemas_dir()
    out: dict[Path, str] = {}
    report = Report(subject=rel(root))
    for path in sorted(root.glob("*/schema.json")):
        readme = path.parent / "README.md"
        if readme.exists() and MARKER not in readme.read_text(encoding="utf-8"):
            continue  # hand-written README
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            report.error("schema-syntax", f"JSON invalide : {exc}", f"invalid JSON: {exc}", file=rel(path))
            continue
        for p in check_schema(schema):
            report.error("schema-invalid", p.fr, p.note, file=rel(path))
        out[readme] = render_readme(schema)
    report.raise_if_errors()
    return out


def write_schema_docs(root: str | Path | None = None, check: bool = False) -> list[Path]:
    """Write the generated READMEs; with ``check``, return the stale ones without writing."""
    stale = []
    for readme, text in generated_readmes(root).items():
        current = readme.read_text(encoding="utf-8") if readme.exists() else None
        if current != text:
            stale.append(readme)
            if not check:
                tmp = readme.with_name("README.md.tmp")
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(readme)
    if check and stale:
        raise PreauError(Report([Problem(
            "schema-doc-stale", "README non à jour : lancez « preau schema doc »",
            "README out of date: run 'preau schema doc'", file=rel(p)) for p in stale]))
    return stale
