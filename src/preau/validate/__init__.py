"""Table Schema validation: vectorised (polars), frictionless-compatible, complete, French first.

Library API (the pipeline and the CLI call these)::

    validate_table(path_or_frame, schema, *, lang=None) -> ValidationReport
    validate_package(datapackage_path, *, lang=None) -> ValidationReport
    report.to_frictionless_dict() / .to_json() / .write(path) / .render(lang) / .to_html(lang)

``schema`` is a dict, a path to a ``schema.json`` (or its folder), or a name in ``schemas/``.
Bad data → an invalid report (never an exception); a missing file or schema → :class:`PreauError`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import polars as pl

from preau.errors import PreauError, rel
from preau.validate.engine import (TableFindings, check_cells, check_foreign_keys, check_unique_and_pk,
                                   order_errors, reference_keys)
from preau.validate.reader import MASK, RawTable, frame_to_raw, read_csv_bytes
from preau.validate.report import Task, ValidationReport, make_error
from preau.validate.schema import read_schema, resolve_schema_path

__all__ = ["validate_table", "validate_package", "validate_path", "ValidationReport", "resolve_schema_path"]


def _personal_fields(schema: dict) -> set[str]:
    return {f.get("name") for f in schema.get("fields", []) if isinstance(f, dict) and f.get("preau:personal") is True}


def _needed_columns(schema: Any) -> set[int] | None:
    """Indices of the columns a check reads (typed, constrained, checked or keyed fields); None = all.

    The other columns (text without constraint) can hold no error: their cells are only shown in
    reports and are read from the line then.
    """
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        return None
    keyed: set[str] = set()
    for key in ("primaryKey",):
        pk = schema.get(key) or []
        keyed.update([pk] if isinstance(pk, str) else [k for k in pk if isinstance(k, str)])
    for fk in schema.get("foreignKeys") or []:
        if not isinstance(fk, dict):
            return None
        for part in (fk.get("fields"), (fk.get("reference") or {}).get("fields")):
            keyed.update([part] if isinstance(part, str) else [k for k in (part or []) if isinstance(k, str)])
    needed: set[int] = set()
    for j, f in enumerate(schema["fields"]):
        if not isinstance(f, dict):
            return None
        plain = (f.get("type", "any") == "any" or (f.get("type") == "string" and f.get("format", "default")
                                                    in ("default", None)))
        if not plain or f.get("constraints") or "preau:check" in f or f.get("name") in keyed:
            needed.add(j)
    return needed


def _read_source(source: Any, *, encoding: str, delimiter: str, header: bool,
                 needed: set[int] | None = None) -> tuple[RawTable, str, str]:
    """(raw table, task name, place). Missing / unreadable files raise PreauError."""
    if isinstance(source, pl.DataFrame):
        return frame_to_raw(source), "frame", "<frame>"
    path = Path(source)
    if not path.exists():
        raise PreauError(f"fichier introuvable : {rel(path)}", f"file not found: {rel(path)}",
                         code="validate-missing-file", file=rel(path))
    if path.is_dir():
        raise PreauError(f"{rel(path)} est un dossier, pas un fichier CSV", f"{rel(path)} is a folder, not a CSV file",
                         code="validate-missing-file", file=rel(path))
    if path.suffix.lower() == ".parquet":
        try:
            df = pl.read_parquet(path)
        except Exception as exc:  # a corrupt parquet file is data, reported as such
            raw = RawTable([], pl.DataFrame({"__row": pl.Series([], dtype=pl.Int64), "__n": pl.Series([], dtype=pl.Int64)}))
            from preau.validate.reader import SourceProblem
            raw.problems.append(SourceProblem("format-error", f"cannot read parquet: {exc}",
                                              f"fichier Parquet illisible : {exc}"))
            return raw, path.stem, rel(path)
        raw = frame_to_raw(df)
        raw.stats = {"bytes": path.stat().st_size}
        return raw, path.stem, rel(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PreauError(f"fichier illisible : {rel(path)} ({exc.strerror})",
                         f"cannot read file: {rel(path)} ({exc.strerror})", code="validate-io", file=rel(path)) from None
    raw = read_csv_bytes(data, encoding=encoding, delimiter=delimiter, header=header, needed=needed)
    return raw, path.stem, rel(path)


class _Resource:
    """One table being validated: raw cells, schema, findings (kept for foreign keys)."""

    def __init__(self, raw: RawTable, schema: dict | None, schema_problems: list, name: str, place: str):
        self.raw, self.schema, self.schema_problems = raw, schema, schema_problems
        self.name, self.place = name, place
        self.findings: TableFindings | None = None
        self.started = time.perf_counter()
        self.task = Task(name=name, place=place, labels=list(raw.labels), warnings=list(raw.warnings),
                         personal=_personal_fields(schema or {}))
        match = (schema or {}).get("fieldsMatch")
        if match not in (None, "exact"):
            self.task.warnings.append((
                f'"fieldsMatch": "{match}" is not supported: columns are matched by position ("exact")',
                f"« fieldsMatch » : « {match} » n'est pas pris en charge : colonnes comparées par position (« exact »)"))

    @property
    def usable(self) -> bool:
        return self.schema is not None and not self.schema_problems and not self.raw.problems

    def run_cells(self) -> None:
        if self.usable and self.findings is None:
            self.findings = check_cells(self.raw, self.schema)
            check_unique_and_pk(self.findings, self.raw.frame.get_column("__row"), self.schema)

    def run_foreign_keys(self, lookup: Callable[[str, list[str]], pl.DataFrame | None]) -> None:
        if self.findings is not None and self.schema.get("foreignKeys"):
            check_foreign_keys(self.findings, self.raw.frame.get_column("__row"), self.schema, lookup, self.name)

    def self_lookup(self, ref_name: str, fields: list[str]) -> pl.DataFrame | None:
        if ref_name in ("", self.name) and self.findings is not None:
            return reference_keys(self.findings, fields)
        self.task.warnings.append((
            f'foreign key to resource "{ref_name}" not checked: validate the data package to check it',
            f"clé étrangère vers la ressource « {ref_name} » non vérifiée : validez le paquet de données (datapackage.json)"))
        return None

    def finish(self) -> Task:
        task = self.task
        stats = dict(self.raw.stats)
        stats["fields"] = len((self.schema or {}).get("fields", []) or []) if isinstance(self.schema, dict) else 0
        stats["rows"] = self.raw.frame.height
        task.stats = stats
        for p in self.schema_problems:
            e = make_error("schema-error", note=p.note)
            e["preau:noteFr"] = p.fr + (f" ({p.file}" + (f":{p.line}" if p.line else "") + ")" if p.file else "")
            task.errors.append(e)
        for p in self.raw.problems:
            e = make_error(p.type, note=p.note)
            e["preau:noteFr"] = p.fr
            if p.line:
                e["preau:line"] = p.line
            task.errors.append(e)
        if self.findings is not None:
            task.errors.extend(self._row_errors())
        task.seconds = time.perf_counter() - self.started
        return task

    def _row_errors(self) -> list[dict]:
        f = self.findings
        assert f is not None
        out: list[dict] = []
        for h in f.header_errors:
            out.append(make_error(h.pop("type"), **h))
        chunks = [c for c in f.chunks if c.height]
        if not chunks:
            return out
        allc = order_errors(pl.concat(chunks, how="diagonal_relaxed"), f, self.schema)
        width = len(f.expected)
        personal_idx = {j for j, spec in enumerate(f.expected) if spec.get("preau:personal") is True}
        names = [spec["name"] for spec in f.expected]
        # rows are consecutive record numbers: gather the few rows shown by index (a filter would
        # scan, and copy, every column of every row)
        full = self.raw.frame
        first = int(full.get_column("__row")[0]) if full.height else 0
        idx = allc.get_column("__row").unique() - first
        frame = full.select(pl.all().gather(idx.filter((idx >= 0) & (idx < full.height))))
        cells_of: dict[int, tuple[list[str], bool]] = {}
        raw_of: dict[int, tuple[list[str], int]] = {}  # row -> (its cells, unmasked; cells within the labels)
        lazy = self.raw.lazy
        cols = [f"c{j}" for j in range(width) if j not in lazy]
        shown = frame.select(["__row", "__n", *cols])
        # the whole records (extra cells included) of the shown rows, from their lines, in one walk
        records = self.raw.records(shown.get_column("__row").to_list()) if lazy else {}
        personal = sorted(j for j in personal_idx if j < width)
        for rec in shown.iter_rows():
            row, n = rec[0], rec[1]
            if lazy:
                cells = records[row]
            else:
                cells = [("" if v is None else v) for v in rec[2:2 + min(n, width)]]
                cells += self.raw.extra.get(row, [])
            raw_of[row] = (cells, min(n, width))
            ragged = n != width
            if personal:
                if ragged:
                    cells = [MASK if c else c for c in cells]
                else:
                    cells = list(cells)
                    for j in personal:
                        if cells[j]:
                            cells[j] = MASK
            cells_of[row] = (cells, ragged)

        def raw_cell(row: int, j: int) -> str | None:
            if row not in raw_of:
                return self._raw_cell(row, j)
            cells, n = raw_of[row]
            return cells[j] if 0 <= j < n else None

        has_fk = "__fk" in allc.columns
        fk_cols = ["__fk", "__ref", "__reff"] if has_fk else []
        for rec in allc.select(["__row", "type", "note", "fieldName", "fieldNumber", *fk_cols]).iter_rows():
            row, etype, enote, fname, fnumber = rec[:5]
            cells, ragged = cells_of.get(row, ([], False))
            props: dict[str, Any] = {"note": enote, "cells": cells, "rowNumber": row}
            if etype in ("type-error", "constraint-error", "unique-error", "missing-cell", "extra-cell"):
                j = fnumber - 1
                if etype == "missing-cell":
                    cell = ""
                elif etype == "extra-cell":
                    extra = self.raw.extra.get(row, [])
                    k = j - width
                    cell = extra[k] if 0 <= k < len(extra) else ""
                    if personal_idx and cell:
                        cell = MASK
                else:
                    raw_value = raw_cell(row, j)
                    cell = "None" if raw_value is None else raw_value
                    if (j in personal_idx or (ragged and personal_idx)) and cell not in ("", "None"):
                        cell = MASK
                props.update({"cell": cell, "fieldName": fname, "fieldNumber": fnumber})
            elif etype == "foreign-key" and has_fk:
                fk, ref, reff = rec[5:8]
                fk_fields = fk.split(",")
                idx = [names.index(k) for k in fk_fields]
                values = []
                for j in idx:
                    v = raw_cell(row, j)
                    values.append(MASK if (j in personal_idx and v) else ("" if v is None else v))
                note = enote
                if any(j in personal_idx for j in idx):
                    note = (f'for "{", ".join(fk_fields)}": values "{", ".join(values)}" not found in the lookup '
                            f'table "{ref}" as "{reff.replace(",", ", ")}"')
                props.update({"note": note, "fieldNames": fk_fields, "fieldCells": values,
                              "referenceName": ref, "referenceFieldNames": reff.split(",")})
            out.append(make_error(etype, **props))
        return out

    def _raw_cell(self, row: int, j: int) -> str | None:
        cache = getattr(self, "_cell_cache", None)
        if cache is None:
            cache = {}
            self._cell_cache = cache
        key = (row, j)
        if key not in cache:
            frame = self.raw.frame
            start = int(frame.get_column("__row")[0]) if frame.height else 0
            idx = row - start
            # rows are consecutive record numbers, so the index is direct
            if j in self.raw.lazy:
                n = int(frame.get_column("__n")[idx]) if 0 <= idx < frame.height else 0
                cache[key] = self.raw.record(row)[j] if j < n else None
            else:
                cache[key] = frame.get_column(f"c{j}")[idx] if 0 <= idx < frame.height else None
        return cache[key]


def _load_resource(source: Any, schema: Any, *, encoding: str = "utf-8", delimiter: str = ",",
                   header: bool = True, name: str | None = None, all_columns: bool = True) -> _Resource:
    desc, problems, _ = read_schema(schema)
    needed = None if (all_columns or problems) else _needed_columns(desc)
    raw, default_name, place = _read_source(source, encoding=encoding, delimiter=delimiter, header=header,
                                            needed=needed)
    return _Resource(raw, desc if isinstance(desc, dict) else None, problems, name or default_name, place)


def validate_table(source: str | Path | pl.DataFrame, schema: str | Path | dict, *, lang: str | None = None,
                   name: str | None = None, encoding: str = "utf-8", delimiter: str = ",",
                   header: bool = True) -> ValidationReport:
    """Validate one table (CSV path, Parquet path or polars frame) against a Table Schema.

    ``lang`` only matters for later renderings (``report.render(lang)``); the JSON is language-neutral.
    Foreign keys to the table itself are checked; foreign keys to other resources need
    :func:`validate_package` (a warning says so).
    """
    started = time.perf_counter()
    res = _load_resource(source, schema, encoding=encoding, delimiter=delimiter, header=header, name=name,
                         all_columns=False)
    res.run_cells()
    res.run_foreign_keys(res.self_lookup)
    report = ValidationReport(tasks=[res.finish()])
    report.seconds = time.perf_counter() - started
    return report


def validate_package(datapackage_path: str | Path, *, lang: str | None = None) -> ValidationReport:
    """Validate every tabular resource of a Frictionless Data Package, foreign keys across resources included."""
    started = time.perf_counter()
    path = Path(datapackage_path)
    if path.is_dir():
        path = path / "datapackage.json"
    if not path.exists():
        raise PreauError(f"paquet de données introuvable : {rel(path)}", f"data package not found: {rel(path)}",
                         code="validate-missing-file", file=rel(path))
    report = ValidationReport()
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        e = make_error("package-error", note=f"datapackage.json is not valid JSON: {exc}")
        e["preau:noteFr"] = f"{rel(path)} n'est pas un JSON valide : {exc}"
        report.errors.append(e)
        report.seconds = time.perf_counter() - started
        return report
    base = path.parent
    resources: dict[str, _Resource] = {}
    if not isinstance(desc, dict) or not isinstance(desc.get("resources"), list):
        e = make_error("package-error", note='"resources" is required and must be an array')
        e["preau:noteFr"] = "la propriété « resources » (liste des ressources) est obligatoire"
        report.errors.append(e)
        report.seconds = time.perf_counter() - started
        return report
    for i, r in enumerate(desc["resources"]):
        if not isinstance(r, dict):
            continue
        rname = r.get("name") or f"resource{i + 1}"
        rpath = r.get("path")
        schema = r.get("schema")
        fmt = (r.get("format") or (Path(rpath).suffix[1:] if isinstance(rpath, str) else "")).lower()
        if schema is None or not isinstance(rpath, str) or fmt not in ("csv", "tsv", "parquet", ""):
            continue  # not a table Préau validates (GeoJSON, GPKG… are checked by their own stage)
        if isinstance(schema, str) and not Path(schema).is_absolute() and (base / schema).exists():
            schema = base / schema
        dialect = r.get("dialect") or {}
        delimiter = dialect.get("delimiter", "\t" if fmt == "tsv" else ",")
        src = base / rpath
        if not src.exists():
            e = make_error("scheme-error", note=f'[Errno 2] No such file or directory: "{rpath}"')
            e["preau:noteFr"] = f"fichier de la ressource « {rname} » introuvable : {rpath}"
            report.tasks.append(Task(name=rname, place=rpath, errors=[e]))
            continue
        try:
            res = _load_resource(src, schema, encoding=r.get("encoding", "utf-8"), delimiter=delimiter,
                                 header=dialect.get("header", True), name=rname)
        except PreauError as exc:
            e = make_error("schema-error", note=exc.report.render("en"))
            e["preau:noteFr"] = exc.report.render("fr")
            report.tasks.append(Task(name=rname, place=rpath, errors=[e]))
            continue
        res.place = rpath
        res.task.place = rpath
        resources[rname] = res
    for res in resources.values():
        res.run_cells()

    def make_lookup(res: _Resource) -> Callable[[str, list[str]], pl.DataFrame | None]:
        def lookup(ref_name: str, fields: list[str]) -> pl.DataFrame | None:
            if ref_name in ("", res.name):
                return res.self_lookup(ref_name, fields)
            other = resources.get(ref_name)
            if other is None or other.findings is None:
                res.task.warnings.append((
                    f'foreign key to resource "{ref_name}" not checked: the resource is missing or unreadable',
                    f"clé étrangère vers « {ref_name} » non vérifiée : ressource absente ou illisible"))
                return None
            return reference_keys(other.findings, fields)
        return lookup

    for res in resources.values():
        res.run_foreign_keys(make_lookup(res))
        report.tasks.append(res.finish())
    report.seconds = time.perf_counter() - started
    return report


def validate_path(target: str | Path, schema: str | Path | dict | None = None, *,
                  lang: str | None = None) -> ValidationReport:
    """CLI entry: a ``datapackage.json`` (no schema) or a table with its schema."""
    target = Path(target)
    if schema is None:
        if target.name.endswith(".json") or target.is_dir():
            return validate_package(target, lang=lang)
        raise PreauError("indiquez le schéma : preau validate FICHIER --schema SCHÉMA (chemin ou nom dans schemas/)",
                         "give the schema: preau validate FILE --schema SCHEMA (a path or a name in schemas/)",
                         code="validate-usage")
    return validate_table(target, schema, lang=lang)
