"""Problems in data are reported as data: typed problems collected in a report.

A :class:`Problem` names where (file, line, field) and what was expected, in French and English.
It never carries the value of a personal field. Library code raises :class:`PreauError` (a report
with at least one error) for user mistakes; the CLI turns it into a message and an exit code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from preau.i18n import current_lang

Severity = Literal["error", "warning", "info"]


@dataclass
class Problem:
    code: str  # stable, machine-readable type, e.g. "config-missing-key", "ingest-encoding"
    fr: str
    en: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    severity: Severity = "error"
    count: int = 1  # how many occurrences this problem stands for (grouped reports)

    def message(self, lang: str | None = None) -> str:
        return self.en if current_lang(lang) == "en" else self.fr

    def location(self) -> str:
        parts = []
        if self.file:
            parts.append(str(self.file) + (f":{self.line}" if self.line else ""))
        elif self.line:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(f"[{self.field}]")
        return " ".join(parts)

    def render(self, lang: str | None = None) -> str:
        loc = self.location()
        text = self.message(lang)
        more = ""
        if self.count > 1:
            more = f" (×{self.count})"
        return f"{loc}: {text}{more}" if loc else f"{text}{more}"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Report:
    """An ordered collection of problems, serialisable with ``--json``."""

    problems: list[Problem] = field(default_factory=list)
    subject: str | None = None

    def add(self, problem: Problem) -> Problem:
        self.problems.append(problem)
        return problem

    def error(self, code: str, fr: str, en: str, **where) -> Problem:
        return self.add(Problem(code, fr, en, **where))

    def warning(self, code: str, fr: str, en: str, **where) -> Problem:
        return self.add(Problem(code, fr, en, severity="warning", **where))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_if_errors(self) -> None:
        if self.errors:
            raise PreauError(self)

    def render(self, lang: str | None = None) -> str:
        return "\n".join(p.render(lang) for p in self.problems)

    def to_dict(self) -> dict:
        return {
            "subject": self.subject,
            "valid": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


class PreauError(Exception):
    """A user-facing failure: carries a report; the CLI prints it and exits non-zero."""

    exit_code = 2

    def __init__(self, report: Report | Problem | str, en: str | None = None, code: str = "error", **where):
        if isinstance(report, str):
            report = Problem(code, report, en or report, **where)
        if isinstance(report, Problem):
            report = Report([report])
        self.report = report
        super().__init__(report.render("en"))

    def render(self, lang: str | None = None) -> str:
        return self.report.render(lang)

    def __reduce__(self):  # picklable with its report (raised in a worker process, shown by the parent)
        return (PreauError, (self.report,))


def rel(path: str | Path) -> str:
    """A path as shown to users: relative to the working directory when possible."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
