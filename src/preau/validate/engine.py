"""Compile a Table Schema into vectorised checks and run them on raw cells.

Findings are frictionless-py's, error for error: same types, row numbers, field names and numbers,
and the same order (row by row; within a row: cells left to right — type, then constraints in
frictionless' order —, extra cells, missing cells, then unique, primary key, foreign keys). A blank
row replaces its cell errors by one ``blank-row`` error, as frictionless does.

Préau adds its French code checks (``preau:check``) as ``constraint-error`` with the note
``constraint "preau:check" is "<name>"``; frictionless ignores that property.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field as dc_field
from typing import Any, Callable

import polars as pl

from preau.validate import checks as code_checks
from preau.validate.reader import RawTable
from preau.validate.schema import CONSTRAINTS
from preau.validate.types import DTYPES, fast_path, python_reader, read_constraint

_JOIN_NULLS = {"nulls_equal": True}

SEQ_EXTRA = 100_000
SEQ_MISSING = 200_000
SEQ_UNIQUE = 300_000
SEQ_PK = 400_000
SEQ_FK = 500_000


@dataclass
class FieldResult:
    name: str
    number: int  # 1-based position
    spec: dict
    # typed value (null: missing value, missing cell or type error); a function computing it when
    # only keys need it (unique, primary / foreign keys): most columns never do
    value_of: pl.Series | Callable[[], pl.Series]
    missing: pl.Series  # bool: the cell reads as None (missing value or missing cell)

    @property
    def value(self) -> pl.Series:
        if callable(self.value_of):
            self.value_of = self.value_of()
        return self.value_of


@dataclass
class TableFindings:
    header_errors: list[dict]
    chunks: list[pl.DataFrame]  # __row, __seq, type, fieldName, fieldNumber, note
    fields: list[FieldResult] = dc_field(default_factory=list)
    expected: list[dict] = dc_field(default_factory=list)


def expected_fields(labels: list[str], fields: list[dict]) -> list[dict]:
    """frictionless (fieldsMatch "exact"): label i pairs with field i; extra labels get ``any`` fields."""
    out: list[dict] = []
    used: set[str] = set()
    for i, label in enumerate(labels):
        if i < len(fields):
            f = fields[i]
        else:
            name = label
            k = 2
            while name in used:
                name = f"{label}{k}"
                k += 1
            f = {"name": name, "type": "any"}
        used.add(f["name"])
        out.append(f)
    return out


def header_errors(labels: list[str], fields: list[dict]) -> list[dict]:
    errs: list[dict] = []
    if not labels:
        return [{"type": "blank-header", "note": "", "labels": [], "rowNumbers": [1]}]
    base = {"labels": list(labels), "rowNumbers": [1]}
    for number, label in enumerate(labels, start=1):
        if number > len(fields):
            errs.append({"type": "extra-label", "note": "", **base, "label": label, "fieldName": "",
                         "fieldNumber": number})
    for offset, f in enumerate(fields[len(labels):]):
        errs.append({"type": "missing-label", "note": "", **base, "label": "", "fieldName": f["name"],
                     "fieldNumber": len(labels) + 1 + offset})
    for number, (f, label) in enumerate(zip(fields, labels), start=1):
        lab: str | None = label
        if not label:
            errs.append({"type": "blank-label", "note": "", **base, "label": "", "fieldName": f["name"],
                         "fieldNumber": number})
        if label:
            dups = [i for i, seen in enumerate(labels[: number - 1], start=1) if seen == label]
            if dups:
                lab = None
                errs.append({"type": "duplicate-label", "note": 'at position "%s"' % ", ".join(map(str, dups)),
                             **base, "label": label, "fieldName": f["name"], "fieldNumber": number})
        if lab and lab != f["name"]:
            errs.append({"type": "incorrect-label", "note": "", **base, "label": lab, "fieldName": f["name"],
                         "fieldNumber": number})
    return errs


def _const(value: Any, n: int, dtype: Any) -> pl.Series:
    return pl.repeat(value, n, dtype=dtype, eager=True)


def _mask(s: pl.Series) -> pl.Series:
    return s.fill_null(False)


def _is_missing(s: pl.Series, missing_values: list[str]) -> pl.Series:
    """Cells that read as None: missing cell (null) or a missing value ("" by default: one comparison,
    cheaper than a set lookup)."""
    if len(missing_values) == 1 and s.dtype == pl.Utf8:
        return _mask(s.is_null() | (s == missing_values[0]))
    return _mask(s.is_null() | s.is_in(missing_values))


def _chunk(rows: pl.Series, seq: int | pl.Series, etype: str, fname: str, fnumber: int, note: str) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame({
        "__row": rows.cast(pl.Int64),
        "__seq": pl.Series([seq] * n, dtype=pl.Int64) if isinstance(seq, int) else seq.cast(pl.Int64),
        "type": pl.Series([etype] * n, dtype=pl.Utf8),
        "fieldName": pl.Series([fname] * n, dtype=pl.Utf8),
        "fieldNumber": pl.Series([fnumber] * n, dtype=pl.Int64),
        "note": pl.Series([note] * n, dtype=pl.Utf8),
    })


def _python_regex_match(pattern: str, s: pl.Series) -> pl.Series:
    rx = re.compile("^{0}$".format(pattern))
    uniq = s.drop_nulls().unique()
    ok = [bool(rx.match(v)) for v in uniq.to_list()]
    if not len(uniq):
        return _const(None, len(s), pl.Boolean)
    return s.replace_strict(uniq, pl.Series(ok, dtype=pl.Boolean), default=None, return_dtype=pl.Boolean)


def _rust_regex_ok(pattern: str) -> bool:
    try:
        pl.Series([""], dtype=pl.Utf8).str.contains("^(?:^" + pattern + "$)")
    except Exception:
        return False
    return True


def pattern_match(pattern: str, s: pl.Series) -> pl.Series:
    """``re.match("^{p}$", cell)`` (Python semantics), vectorised with the Rust engine when it agrees."""
    try:
        res = s.str.contains("^(?:^" + pattern + "$)")
    except Exception:
        return _python_regex_match(pattern, s)
    # Python's "$" also matches before a final newline: recheck those few cells in Python.
    tricky = _mask(s.str.ends_with("\n"))
    if tricky.any():
        py = _python_regex_match(pattern, s.filter(tricky))
        res = res.scatter(tricky.arg_true(), py)
    return res


def type_field(raw: pl.Series, spec: dict, missing_values: list[str]) -> tuple[pl.Series, pl.Series, pl.Series]:
    """(typed value, type error mask, missing mask) of one column of raw cells."""
    ftype = spec.get("type", "any")
    missing = _is_missing(raw, missing_values)
    present = ~missing
    if ftype == "any" or (ftype == "string" and spec.get("format", "default") in ("default", None)):
        if not missing.any():
            value = raw  # no copy of a text column that has no missing value
        else:
            value = pl.select(pl.when(pl.lit(present)).then(pl.lit(raw)).otherwise(None)).to_series()
        return value, _const(False, len(raw), pl.Boolean), missing
    if ftype == "boolean":
        trues = spec.get("trueValues", ["true", "True", "TRUE", "1"])
        falses = spec.get("falseValues", ["false", "False", "FALSE", "0"])
        is_t = _mask(raw.is_in(trues))
        is_f = _mask(raw.is_in(falses))
        value = pl.select(pl.when(pl.lit(is_t)).then(True).when(pl.lit(is_f)).then(False).otherwise(None)).to_series()
        return value, present & ~is_t & ~is_f, missing
    dtype = DTYPES.get(ftype, pl.Utf8)
    fast = fast_path(spec, raw)
    if fast is not None:
        fmask, fval = fast
        fmask = fmask & present
        need = present & ~fmask
    else:
        fmask = _const(False, len(raw), pl.Boolean)
        fval = _const(None, len(raw), dtype)
        need = present
    value = pl.select(pl.when(pl.lit(fmask)).then(pl.lit(fval.cast(dtype, strict=False))).otherwise(None)).to_series()
    type_err = _const(False, len(raw), pl.Boolean)
    if need.any():
        reader = python_reader(spec)
        uniq = raw.filter(need).unique()
        oks, vals = [], []
        for u in uniq.to_list():
            ok, v = reader(u)
            oks.append(ok)
            vals.append(v if ok else None)
        if dtype == pl.Int64 and any(v is not None and not (-(2**63) <= v < 2**63) for v in vals):
            dtype = pl.Int128  # Python ints are unbounded; frictionless compares them exactly
            value = value.cast(dtype)
        ok_s = raw.replace_strict(uniq, pl.Series(oks, dtype=pl.Boolean), default=None, return_dtype=pl.Boolean)
        val_s = raw.replace_strict(uniq, pl.Series(vals, dtype=dtype), default=None, return_dtype=dtype)
        type_err = need & ~_mask(ok_s)
        value = pl.select(pl.when(pl.lit(need)).then(pl.lit(val_s)).otherwise(pl.lit(value))).to_series()
    return value, type_err, missing


def _constraint_violation(name: str, cval: Any, spec: dict, value: pl.Series, missing: pl.Series,
                          pre_pattern: pl.Series | None = None) -> pl.Series | None:
    ftype = spec.get("type", "any")
    if name == "required":
        return missing if cval is True else None
    if name in ("minLength", "maxLength"):
        if ftype not in ("string",):
            return None
        ln = value.str.len_chars()
        return _mask(ln < cval) if name == "minLength" else _mask(ln > cval)
    if name == "pattern":
        if ftype != "string":
            return None
        if pre_pattern is not None:  # computed on the raw text in the table's one query
            return _mask(~pre_pattern) & ~missing
        return _mask(~pattern_match(cval, value))  # Rust regex on every cell (Python only on distinct values)
    if name == "enum":
        items = [read_constraint(spec, v) for v in cval]
        items = [v for v in items if v is not None]
        dtype = value.dtype
        inlist = value.is_in(pl.Series(items, dtype=dtype).implode()) if items else _const(False, len(value), pl.Boolean)
        return _mask(value.is_not_null() & ~inlist.fill_null(False))
    if name in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = read_constraint(spec, cval)
        if bound is None:
            return _mask(value.is_not_null())  # frictionless compares with None: a type error → violation
        b = pl.lit(bound, dtype=value.dtype)
        v = pl.lit(value)
        ok = {"minimum": v >= b, "maximum": v <= b, "exclusiveMinimum": v > b, "exclusiveMaximum": v < b}[name]
        res = pl.select(ok).to_series()
        if value.dtype == pl.Float64:
            res = res & ~value.is_nan().fill_null(False)
        return _mask(value.is_not_null() & ~res.fill_null(False))
    return None


# Columns with few distinct values (codes, levels, dates, booleans…) are checked once per distinct
# value, then mapped back to the rows of the failing values only. "auto" decides from a sample;
# "always" / "never" force a path (tests run both against frictionless).
DISTINCT_MODE = "auto"
DISTINCT_SAMPLE = 20_000


def _plain_text(spec: dict) -> bool:
    return spec.get("type", "any") == "any" or (spec.get("type") == "string"
                                                and spec.get("format", "default") in ("default", None))


def _value_checked(spec: dict) -> bool:
    """True when a cell's text can fail something beyond "required" (type, constraint, code check)."""
    cons = {k for k in (spec.get("constraints") or {}) if k not in ("required", "unique")}
    return not _plain_text(spec) or bool(cons) or "preau:check" in spec


def _few_distinct(col: pl.Series) -> bool:
    if DISTINCT_MODE != "auto":
        return DISTINCT_MODE == "always"
    n = len(col)
    if n < 4 * 1024:
        return False  # small tables: one pass is as cheap
    sample = col.gather_every(max(1, n // DISTINCT_SAMPLE))
    return sample.n_unique() * 3 <= len(sample)


def _rows_with(col: pl.Series, bad: pl.Series) -> pl.Series:
    """Mask of the cells of ``col`` whose value is in ``bad`` (null included)."""
    has_null = bad.null_count() > 0
    bad = bad.drop_nulls()
    if len(bad) == 1:
        mask = _mask(col == bad[0])
    else:
        mask = _mask(col.is_in(bad.implode())) if len(bad) else _const(False, len(col), pl.Boolean)
    return mask | col.is_null() if has_null else mask


def value_errors(col: pl.Series, spec: dict, missing_values: list[str], pre: pl.DataFrame | None = None,
                 j: int = -1) -> tuple[list[tuple[int, str, str, pl.Series]], pl.Series, pl.Series]:
    """Errors that depend on a cell's text only: ``[(seq offset, type, note, mask over col)]``, the typed
    value and the missing mask. ``col`` holds a column's cells, or its distinct values."""
    errs: list[tuple[int, str, str, pl.Series]] = []
    value, type_err, missing = type_field(col, spec, missing_values)
    pre_cols = set(pre.columns) if pre is not None else set()
    if type_err.any():
        note = 'type is "%s/%s"' % (spec.get("type", "any"), spec.get("format", "default") or "default")
        errs.append((0, "type-error", note, type_err))
    ok_cell = ~type_err
    cons = spec.get("constraints", {}) or {}
    for k, cname in enumerate(CONSTRAINTS.get(spec.get("type", "any"), ())):
        if cname not in cons:
            continue
        pre_pattern = None
        if cname == "pattern" and f"pat{j}" in pre_cols and not pre.get_column(f"nl{j}")[0]:
            pre_pattern = pre.get_column(f"pat{j}")  # (a cell ending in a newline needs Python's "$")
        viol = _constraint_violation(cname, cons[cname], spec, value, missing, pre_pattern)
        if viol is None:
            continue
        viol = viol & ok_cell
        if viol.any():
            errs.append((1 + k, "constraint-error", 'constraint "%s" is "%s"' % (cname, cons[cname]), viol))
    check = spec.get("preau:check")
    if check is not None and code_checks.check_label(check) in code_checks.CHECKS:
        ok = pre.get_column(f"chk{j}") if f"chk{j}" in pre_cols else code_checks.run_check(check, col)
        viol = ok_cell & ~missing & ~_mask(ok)
        if viol.any():
            errs.append((20, "constraint-error", 'constraint "preau:check" is "%s"' % code_checks.check_label(check),
                         viol))
    return errs, value, missing


def check_cells(raw: RawTable, schema: dict) -> TableFindings:
    fields_desc = [f for f in schema.get("fields", []) if isinstance(f, dict)]
    missing_values = schema.get("missingValues", [""])
    labels = raw.labels
    frame = raw.frame
    rows = frame.get_column("__row")
    ncells = frame.get_column("__n")
    exp = expected_fields(labels, fields_desc)
    findings = TableFindings(header_errors=header_errors(labels, fields_desc), chunks=[], expected=exp)
    if not len(rows):
        for j, spec in enumerate(exp):
            findings.fields.append(FieldResult(spec["name"], j + 1, spec, pl.Series([], dtype=DTYPES.get(
                spec.get("type", "any"), pl.Utf8)), pl.Series([], dtype=pl.Boolean)))
        return findings
    blank = _const(True, len(rows), pl.Boolean)
    chunks = findings.chunks
    lazy_missing: list[int] = []
    min_n = int(ncells.min())
    # Columns with few distinct values: their distinct values, all columns in one polars query.
    checked = [j for j, spec in enumerate(exp) if j not in raw.lazy and _value_checked(spec)]
    few = [j for j in checked if _few_distinct(frame.get_column(f"c{j}"))]
    distinct: dict[int, pl.Series] = {}
    if few:
        uq = frame.select([pl.col(f"c{j}").unique().implode() for j in few])
        distinct = {j: uq.get_column(f"c{j}")[0] for j in few}
    # Regex patterns and French code checks of the other columns in ONE polars query (run in parallel).
    pre_exprs: list[pl.Expr] = []
    same_regex: list[int] = []
    for j in checked:
        if j in distinct:
            continue
        spec = exp[j]
        c = pl.col(f"c{j}")
        pattern = (spec.get("constraints") or {}).get("pattern")
        with_pattern = spec.get("type") == "string" and isinstance(pattern, str) and _rust_regex_ok(pattern)
        if with_pattern:
            pre_exprs += [c.str.contains("^(?:^" + pattern + "$)").alias(f"pat{j}"),
                          c.str.ends_with("\n").any().alias(f"nl{j}")]
        check = spec.get("preau:check")
        if check is not None and code_checks.check_label(check) in code_checks.CHECKS:
            if with_pattern and code_checks.same_as_pattern(check, pattern):
                same_regex.append(j)  # the check is the pattern: one regex pass, not two
            else:
                pre_exprs.append(code_checks.check_expr(check, c).alias(f"chk{j}"))
    pre = frame.select(pre_exprs) if pre_exprs else pl.DataFrame()
    if same_regex:
        pre = pre.with_columns([pl.col(f"pat{j}").fill_null(False).alias(f"chk{j}") for j in same_regex])

    def one_field(j: int, spec: dict) -> tuple[list[pl.DataFrame], FieldResult, pl.Series | None]:
        """Errors of one column (type, constraints, code check, missing cells)."""
        out: list[pl.DataFrame] = []
        fname, fnum = spec["name"], j + 1
        short = _mask(ncells <= j) if j >= min_n else None
        if short is not None and short.any():
            missing_cells = _chunk(rows.filter(short), SEQ_MISSING + j, "missing-cell", fname, fnum, "")
        else:
            missing_cells = None
        if j in raw.lazy:
            # Not read (plain text, no check can fail): only missing cells and blank rows concern it.
            if missing_cells is not None:
                out.append(missing_cells)
            lazy_short = short if short is not None else _const(False, len(rows), pl.Boolean)
            return out, FieldResult(fname, fnum, spec, _const(None, len(rows), pl.Utf8), lazy_short), None
        col = frame.get_column(f"c{j}")
        base = j * 32
        value: pl.Series | Callable[[], pl.Series]
        if j in distinct:
            # checked once per distinct value; rows are found for the failing values only
            uniq = distinct[j]
            errs, _, _ = value_errors(uniq, spec, missing_values)
            errs = [(off, etype, note, _rows_with(col, uniq.filter(m))) for off, etype, note, m in errs]
            missing = _is_missing(col, missing_values)
            value = (lambda col=col, spec=spec: type_field(col, spec, missing_values)[0])
        elif j in checked:
            errs, value, missing = value_errors(col, spec, missing_values, pre, j)
        else:  # plain text: only missing values matter; the value is made only if a key needs it
            missing = _is_missing(col, missing_values)
            order = CONSTRAINTS.get(spec.get("type", "any"), ())
            required = "required" in order and (spec.get("constraints") or {}).get("required") is True
            errs = ([(1 + order.index("required"), "constraint-error", 'constraint "required" is "True"', missing)]
                    if required and missing.any() else [])
            value = (lambda col=col, spec=spec: type_field(col, spec, missing_values)[0])
        for off, etype, note, mask in errs:
            out.append(_chunk(rows.filter(mask), base + off, etype, fname, fnum, note))
        # Missing cells (the row is shorter than the header)
        if missing_cells is not None:
            out.append(missing_cells)
        return out, FieldResult(fname, fnum, spec, value, missing), missing

    for j, spec in enumerate(exp):
        out, fres, missing = one_field(j, spec)
        chunks.extend(out)
        findings.fields.append(fres)
        if missing is None:
            lazy_missing.append(j)
        else:
            blank = blank & missing
    # Extra cells (the row is longer than the header)
    width = len(exp)
    if raw.extra:
        er, es, en = [], [], []
        for r, cells in raw.extra.items():
            for k in range(len(cells)):
                er.append(r)
                es.append(SEQ_EXTRA + k)
                en.append(width + 1 + k)
        chunks.append(pl.DataFrame({
            "__row": pl.Series(er, dtype=pl.Int64), "__seq": pl.Series(es, dtype=pl.Int64),
            "type": pl.Series(["extra-cell"] * len(er), dtype=pl.Utf8), "fieldName": pl.Series([""] * len(er), dtype=pl.Utf8),
            "fieldNumber": pl.Series(en, dtype=pl.Int64), "note": pl.Series([""] * len(er), dtype=pl.Utf8)}))
    if lazy_missing and blank.any():
        # Rows blank in every column read: check the columns not read from their lines (few rows).
        cand = rows.filter(blank).to_list()
        mv = set(missing_values)
        still = []
        for r in cand:
            cells = raw.record(r)
            still.append(all(j >= len(cells) or cells[j] in mv for j in lazy_missing))
        blank = blank.scatter(blank.arg_true(), pl.Series(still, dtype=pl.Boolean))
    # Blank rows: the row's errors are replaced by one blank-row error.
    if width and blank.any():
        blank_rows = rows.filter(blank)
        chunks[:] = [c.filter(~pl.col("__row").is_in(blank_rows.implode())) for c in chunks]
        chunks.append(_chunk(blank_rows, -1, "blank-row", "", 0, ""))
    elif width == 0 and len(rows):
        chunks[:] = [c.filter(pl.lit(False)) for c in chunks]
        chunks.append(_chunk(rows, -1, "blank-row", "", 0, ""))
    return findings


_HASHABLE = (pl.Utf8, pl.Int64, pl.Int32, pl.Int128, pl.Date, pl.Boolean)


def _maybe_duplicated(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Rows of ``df`` whose key may occur twice: a cheap superset (equal hashes), exact checks follow.

    polars' ``is_duplicated`` builds a hash table over every row; sorting the 64-bit hashes and
    keeping those seen twice is several times faster and leaves only the few candidate rows.
    """
    if df.height < 10_000 or not all(df.schema[k] in _HASHABLE for k in keys):
        return df
    h = (df.get_column(keys[0]).hash() if len(keys) == 1
         else df.select(pl.struct(keys).hash().alias("h")).get_column("h"))
    hs = h.sort()
    twice = hs.filter(hs == hs.shift(1))
    return df.filter(h.is_in(twice.implode()))


def check_unique_and_pk(findings: TableFindings, rows: pl.Series, schema: dict) -> None:
    chunks = findings.chunks
    by_name = {f.name: f for f in findings.fields}
    for i, f in enumerate(findings.fields):
        cons = f.spec.get("constraints", {}) or {}
        if not cons.get("unique"):
            continue
        df = pl.DataFrame({"__row": rows, "v": f.value}).filter(pl.col("v").is_not_null())
        if df.get_column("v").dtype == pl.Float64:
            df = df.filter(~pl.col("v").is_nan())
        df = _maybe_duplicated(df, ["v"])
        df = df.filter(pl.col("v").is_duplicated())  # usually tiny: the costly window runs on it only
        df = df.with_columns(pl.col("__row").shift(1).over("v").alias("prev")).filter(pl.col("prev").is_not_null())
        if df.height:
            c = pl.DataFrame({
                "__row": df.get_column("__row"), "__seq": pl.Series([SEQ_UNIQUE + i] * df.height, dtype=pl.Int64),
                "type": pl.Series(["unique-error"] * df.height, dtype=pl.Utf8),
                "fieldName": pl.Series([f.name] * df.height, dtype=pl.Utf8),
                "fieldNumber": pl.Series([f.number] * df.height, dtype=pl.Int64),
                "note": ("the same as in the row at position " + df.get_column("prev").cast(pl.Utf8)).alias("note"),
            })
            chunks.append(c)
    pk = schema.get("primaryKey") or []
    pk = [pk] if isinstance(pk, str) else list(pk)
    if pk and all(k in by_name for k in pk):
        cols = {f"k{i}": by_name[k].value for i, k in enumerate(pk)}
        df = pl.DataFrame({"__row": rows, **cols})
        keys = list(cols)
        all_null = pl.all_horizontal([pl.col(k).is_null() for k in keys])
        nulls = df.filter(all_null).get_column("__row")
        if len(nulls):
            chunks.append(_chunk(nulls, SEQ_PK, "primary-key", "", 0,
                                 'cells composing the primary keys are all "None"'))
        rest = _maybe_duplicated(df.filter(~all_null) if len(nulls) else df, keys)
        rest = rest.filter(pl.struct(keys).is_duplicated())
        dup = (rest.with_columns(pl.col("__row").shift(1).over(keys).alias("prev"))
               .filter(pl.col("prev").is_not_null()))
        if dup.height:
            chunks.append(pl.DataFrame({
                "__row": dup.get_column("__row"), "__seq": pl.Series([SEQ_PK] * dup.height, dtype=pl.Int64),
                "type": pl.Series(["primary-key"] * dup.height, dtype=pl.Utf8),
                "fieldName": pl.Series([""] * dup.height, dtype=pl.Utf8),
                "fieldNumber": pl.Series([0] * dup.height, dtype=pl.Int64),
                "note": ("the same as in the row at position " + dup.get_column("prev").cast(pl.Utf8)).alias("note"),
            }))


def reference_keys(findings: TableFindings, ref_fields: list[str]) -> pl.DataFrame | None:
    """The set of key tuples a table offers as a foreign-key reference (rows all-None skipped)."""
    by_name = {f.name: f for f in findings.fields}
    if not all(k in by_name for k in ref_fields):
        return None
    df = pl.DataFrame({f"k{i}": by_name[k].value for i, k in enumerate(ref_fields)})
    keys = list(df.columns)
    return df.filter(~pl.all_horizontal([pl.col(k).is_null() for k in keys])).unique()


def check_foreign_keys(findings: TableFindings, rows: pl.Series, schema: dict, lookup: Any, name: str) -> None:
    """``lookup(resource_name, fields) -> DataFrame | None`` gives the reference key set."""
    by_name = {f.name: f for f in findings.fields}
    for i, fk in enumerate(schema.get("foreignKeys") or []):
        target = fk.get("fields")
        target = [target] if isinstance(target, str) else list(target)
        ref = fk["reference"]
        ref_name = ref.get("resource", "")
        ref_fields = ref.get("fields")
        ref_fields = [ref_fields] if isinstance(ref_fields, str) else list(ref_fields)
        if not all(k in by_name for k in target):
            continue
        refset = lookup(ref_name, ref_fields)
        if refset is None:
            continue
        df = pl.DataFrame({"__row": rows, **{f"k{j}": by_name[k].value for j, k in enumerate(target)}})
        keys = [f"k{j}" for j in range(len(target))]
        df = df.filter(~pl.all_horizontal([pl.col(k).is_null() for k in keys]))
        compatible = True
        casts = []
        for k in keys:
            a, b = df.get_column(k).dtype, refset.get_column(k).dtype
            if a != b:
                if a.is_numeric() and b.is_numeric():
                    casts.append(k)
                elif refset.height:
                    compatible = False
        if casts:
            df = df.with_columns([pl.col(k).cast(pl.Float64) for k in casts])
            refset = refset.with_columns([pl.col(k).cast(pl.Float64) for k in casts])
        if compatible:
            bad = df.join(refset, on=keys, how="anti", **_JOIN_NULLS).sort("__row")
        else:
            bad = df
        if not bad.height:
            continue
        values = bad.select([pl.col(k).cast(pl.Utf8).fill_null("None") for k in keys])
        joined = values.select(pl.concat_str(keys, separator=", ").alias("v")).get_column("v")
        note = ('for "' + ", ".join(target) + '": values "' + joined + '" not found in the lookup table "'
                + ref_name + '" as "' + ", ".join(ref_fields) + '"')
        ch = pl.DataFrame({
            "__row": bad.get_column("__row"), "__seq": pl.Series([SEQ_FK + i] * bad.height, dtype=pl.Int64),
            "type": pl.Series(["foreign-key"] * bad.height, dtype=pl.Utf8),
            "fieldName": pl.Series([""] * bad.height, dtype=pl.Utf8),
            "fieldNumber": pl.Series([0] * bad.height, dtype=pl.Int64),
            "note": note.alias("note"),
        })
        ch = ch.with_columns(pl.lit(",".join(target)).alias("__fk"), pl.lit(ref_name).alias("__ref"),
                             pl.lit(",".join(ref_fields)).alias("__reff"))
        findings.chunks.append(ch)


def order_errors(allc: pl.DataFrame, findings: TableFindings, schema: dict) -> pl.DataFrame:
    """Sort row errors in frictionless' exact order.

    frictionless reads a row's cells lazily: the unique check reads the unique fields first, the
    primary key check its fields, the foreign key check its fields; the first of these checks that
    fails reads the whole row (remaining fields left to right, extra / missing cells, blank row)
    before appending its own error. So a row's order depends on which check failed first.
    """
    names = [spec["name"] for spec in findings.expected]
    steps: list[tuple[str, int]] = []
    for j, spec in enumerate(findings.expected):
        if (spec.get("constraints") or {}).get("unique"):
            steps += [("field", j), ("event", SEQ_UNIQUE + j)]
    pk = schema.get("primaryKey") or []
    pk = [pk] if isinstance(pk, str) else list(pk)
    if pk and all(k in names for k in pk):
        steps += [("field", names.index(k)) for k in pk] + [("event", SEQ_PK)]
    for i, fk in enumerate(schema.get("foreignKeys") or []):
        target = fk.get("fields")
        target = [target] if isinstance(target, str) else list(target or [])
        if target and all(k in names for k in target):
            steps += [("field", names.index(k)) for k in target] + [("event", SEQ_FK + i)]
    final = len(steps)
    field_step: dict[int, int] = {}
    event_step: dict[int, int] = {}
    for s, (kind, arg) in enumerate(steps):
        if kind == "field":
            field_step.setdefault(arg, s)
        else:
            event_step[arg] = s
    K = 10**7
    seq = pl.col("__seq")
    ev = allc.filter(seq >= SEQ_UNIQUE)
    if ev.height and event_step:
        t = (ev.with_columns(seq.replace_strict(list(event_step), list(event_step.values()), default=final)
                             .alias("__t")).group_by("__row").agg(pl.col("__t").min()))
        allc = allc.join(t, on="__row", how="left")
    else:
        allc = allc.with_columns(pl.lit(None, dtype=pl.Int64).alias("__t"))
    allc = allc.with_columns(pl.col("__t").fill_null(final).cast(pl.Int64))
    tcol = pl.col("__t")
    fstep = (pl.when(seq < SEQ_EXTRA).then(seq // 32).otherwise(-1)
             .replace_strict(list(field_step), list(field_step.values()), default=None) if field_step
             else pl.lit(None, dtype=pl.Int64))
    estep = (seq.replace_strict(list(event_step), list(event_step.values()), default=final) if event_step
             else pl.lit(final, dtype=pl.Int64))
    key = (pl.when(seq >= SEQ_UNIQUE).then(estep.cast(pl.Int64) * K + (K - 1))
           .when((seq >= 0) & (seq < SEQ_EXTRA) & fstep.is_not_null() & (fstep.cast(pl.Int64) < tcol))
           .then(fstep.cast(pl.Int64) * K + seq)
           .otherwise(tcol * K + 1000 + seq))
    return allc.with_columns(key.alias("__key")).sort(["__row", "__key"], maintain_order=True)
