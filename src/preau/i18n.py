"""French first, English available: the language switch shared by the CLI, reports and pages."""

from __future__ import annotations

import os
from dataclasses import dataclass

LANGS = ("fr", "en")


def current_lang(lang: str | None = None) -> str:
    """The language to use: the explicit one, else ``PREAU_LANG``, else French."""
    value = (lang or os.environ.get("PREAU_LANG") or "fr").lower()[:2]
    return value if value in LANGS else "fr"


@dataclass(frozen=True)
class Text:
    """A user-facing text in French and English."""

    fr: str
    en: str

    def __call__(self, lang: str | None = None, **kwargs: object) -> str:
        template = self.en if current_lang(lang) == "en" else self.fr
        return template.format(**kwargs) if kwargs else template

    def as_dict(self, **kwargs: object) -> dict[str, str]:
        return {"fr": self("fr", **kwargs), "en": self("en", **kwargs)}


def pick(value: object, lang: str | None = None) -> str:
    """Pick a language from a ``{"fr": …, "en": …}`` mapping (falls back to French)."""
    if isinstance(value, dict):
        lang = current_lang(lang)
        return str(value.get(lang) or value.get("fr") or next(iter(value.values()), ""))
    return "" if value is None else str(value)
