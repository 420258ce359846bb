"""The publish report: what was (or, with ``--dry-run``, would be) created, updated or left unchanged."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from preau.errors import Report
from preau.i18n import current_lang

ACTIONS = ("create", "update", "unchanged", "delete")
KINDS = ("organization", "dataset", "resource", "datastore", "file")

_KIND = {
    "fr": {"organization": "organisation(s)", "dataset": "jeu(x) de données", "resource": "ressource(s)",
           "datastore": "table(s) DataStore", "file": "fichier(s) d'index"},
    "en": {"organization": "organization(s)", "dataset": "dataset(s)", "resource": "resource(s)",
           "datastore": "DataStore table(s)", "file": "index file(s)"},
}
_ACTION = {
    "fr": {"create": "créé(s)", "update": "mis à jour", "unchanged": "inchangé(s)", "delete": "supprimé(s)"},
    "en": {"create": "created", "update": "updated", "unchanged": "unchanged", "delete": "deleted"},
}
_ACTION_DRY = {
    "fr": {"create": "à créer", "update": "à mettre à jour", "unchanged": "inchangé(s)", "delete": "à supprimer"},
    "en": {"create": "to create", "update": "to update", "unchanged": "unchanged", "delete": "to delete"},
}


@dataclass
class Change:
    kind: str  # organization | dataset | resource | datastore | file
    name: str  # dataset name, or "<dataset>/<file>"
    action: str  # create | update | unchanged | delete
    detail: str = ""  # e.g. "upload", "metadata: title, notes", "rows: 252"
    bytes: int = 0  # bytes uploaded (CKAN) or written (local)


@dataclass
class PublishReport:
    target: str  # "local" | "ckan"
    destination: str  # catalog folder, or CKAN URL (never a token)
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)
    retries: int = 0  # HTTP attempts retried (429 / 5xx / timeouts)
    problems: Report = field(default_factory=Report)

    def add(self, kind: str, name: str, action: str, detail: str = "", nbytes: int = 0) -> Change:
        change = Change(kind, name, action, detail, nbytes)
        self.changes.append(change)
        return change

    def count(self, action: str, kind: str | None = None) -> int:
        return sum(1 for c in self.changes if c.action == action and (kind is None or c.kind == kind))

    @property
    def created(self) -> int:
        return self.count("create")

    @property
    def updated(self) -> int:
        return self.count("update")

    @property
    def unchanged(self) -> int:
        return self.count("unchanged")

    @property
    def deleted(self) -> int:
        return self.count("delete")

    @property
    def bytes_uploaded(self) -> int:
        return sum(c.bytes for c in self.changes)

    @property
    def writes(self) -> int:
        return self.created + self.updated + self.deleted

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter] = {}
        for c in self.changes:
            table.setdefault(c.kind, Counter())[c.action] += 1
        return {k: {a: table[k][a] for a in ACTIONS} for k in KINDS if k in table}

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "bytes_uploaded": self.bytes_uploaded,
            "retries": self.retries,
            "counts": self.counts(),
            "changes": [asdict(c) for c in self.changes],
            "problems": self.problems.to_dict()["problems"],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    def render(self, lang: str | None = None, details: bool = True) -> str:
        lang = current_lang(lang)
        words = (_ACTION_DRY if self.dry_run else _ACTION)[lang]
        lines = []
        if lang == "fr":
            where = "catalogue local" if self.target == "local" else "CKAN"
            head = f"Publication vers le {where} {self.destination}" if self.target == "local" else \
                f"Publication vers CKAN {self.destination}"
            if self.dry_run:
                head += " (simulation : rien n'est écrit)"
        else:
            head = (f"Publishing to the local catalog {self.destination}" if self.target == "local"
                    else f"Publishing to CKAN {self.destination}")
            if self.dry_run:
                head += " (dry run: nothing is written)"
        lines.append(head)
        if details:
            for c in self.changes:
                if c.action == "unchanged":
                    continue
                extra = f" — {c.detail}" if c.detail else ""
                lines.append(f"  {words[c.action]:<16} {c.kind:<12} {c.name}{extra}")
        for kind, acts in self.counts().items():
            parts = ", ".join(f"{n} {words[a]}" for a, n in acts.items() if n)
            lines.append(f"{_KIND[lang][kind]} : {parts}" if lang == "fr" else f"{_KIND[lang][kind]}: {parts}")
        size = _size(self.bytes_uploaded, lang)
        if self.target == "ckan":
            verb = ("octets à envoyer" if self.dry_run else "octets envoyés") if lang == "fr" else \
                ("bytes to upload" if self.dry_run else "bytes uploaded")
        else:
            verb = ("octets à écrire" if self.dry_run else "octets écrits") if lang == "fr" else \
                ("bytes to write" if self.dry_run else "bytes written")
        lines.append(f"{verb} : {self.bytes_uploaded} ({size})" if lang == "fr" else f"{verb}: {self.bytes_uploaded} ({size})")
        if self.retries:
            lines.append(f"nouvelles tentatives HTTP : {self.retries}" if lang == "fr" else f"HTTP retries: {self.retries}")
        for p in self.problems.problems:
            lines.append("  " + p.render(lang))
        return "\n".join(lines)


def _size(n: int, lang: str = "fr") -> str:
    units = ("o", "Kio", "Mio", "Gio") if lang == "fr" else ("B", "KiB", "MiB", "GiB")
    value = float(n)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == units[0] else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} {units[0]}"
