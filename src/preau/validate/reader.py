"""Read a CSV file into raw text cells, with the same record semantics as Python's ``csv`` module.

frictionless-py reads CSV with the standard ``csv`` module (excel dialect, ``"`` quotes). We need
the very same records (header = record 1, data rows from 2, ragged rows kept as they are) but fast:

* a file without quote characters is split on line ends and on the delimiter, vectorised (polars);
* lines holding quotes but an even number of them (no field spans a line end) are parsed one by one
  with the ``csv`` module;
* otherwise (a quoted field spans lines, or odd quotes) the whole file goes through the ``csv`` module.

Source problems (encoding, NUL bytes, empty file…) are returned as :class:`SourceProblem` — never raised.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from dataclasses import dataclass, field

import polars as pl

csv.field_size_limit(2**31 - 1)

MASK = "valeur masquée"
BOM_WARNING = ("the file starts with a UTF-8 byte order mark (BOM); it was ignored",
               "le fichier commence par une marque d'ordre des octets UTF-8 (BOM) ; elle a été ignorée")


@dataclass
class SourceProblem:
    type: str  # frictionless error type: encoding-error, source-error, format-error
    note: str  # English note (frictionless style)
    fr: str  # French explanation
    line: int | None = None


@dataclass
class RawTable:
    """Header labels and a frame of raw cells.

    ``frame`` has one Utf8 column per label (``c0``, ``c1``…; null = the row has no such cell), plus
    ``__row`` (record number, header = 1) and ``__n`` (number of cells in the record).
    ``extra`` maps a record number to its cells beyond the labels.
    """

    labels: list[str]
    frame: pl.DataFrame
    extra: dict[int, list[str]] = field(default_factory=dict)
    problems: list[SourceProblem] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (en, fr)
    stats: dict = field(default_factory=dict)
    has_header: bool = True
    # Columns not read into ``frame`` (no check needs them): their cells come from ``lines`` for the
    # few rows a report shows (see :class:`LineSource`).
    lazy: frozenset[int] = frozenset()
    lines: "LineSource | None" = None

    def record(self, row: int) -> list[str]:
        """All cells of one record (row number, header = 1), when ``lines`` is known (kept: a report
        asks for the same row's cells several times)."""
        assert self.lines is not None
        cache = self.__dict__.setdefault("_records", {})
        if row not in cache:
            cache[row] = self.lines.cells(row - 1)
        return cache[row]

    def records(self, rows: list[int]) -> dict[int, list[str]]:
        """All cells of many records (row numbers), when ``lines`` is known: one walk over their lines."""
        assert self.lines is not None
        rows = sorted(set(rows))
        return {row: cells for row, cells in zip(rows, self.lines.cells_many([r - 1 for r in rows]))}

    @property
    def columns(self) -> list[str]:
        return [f"c{i}" for i in range(len(self.labels))]


def _empty_frame(width: int) -> pl.DataFrame:
    cols = {f"c{i}": pl.Series(f"c{i}", [], dtype=pl.Utf8) for i in range(width)}
    cols["__row"] = pl.Series("__row", [], dtype=pl.Int64)
    cols["__n"] = pl.Series("__n", [], dtype=pl.Int64)
    return pl.DataFrame(cols)


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode(data: bytes, encoding: str = "utf-8") -> tuple[str | None, list[SourceProblem], list[tuple[str, str]]]:
    """Decode bytes; report a wrong encoding with its line, and a BOM as a warning."""
    warnings: list[tuple[str, str]] = []
    enc = (encoding or "utf-8").lower().replace("_", "-")
    if b"\x00" in data and not enc.startswith("utf-16") and not enc.startswith("utf-32"):
        line = _line_of_offset(data, data.index(b"\x00"))
        return None, [SourceProblem(
            "source-error", "the source contains NUL bytes: it is not a text (CSV) file",
            f"le fichier contient des octets nuls (ligne {line}) : ce n'est pas un fichier texte CSV "
            "(fichier binaire, tableur ou archive ?)", line=line)], warnings
    if enc in ("utf-8", "utf8", "utf-8-sig"):
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
            warnings.append(BOM_WARNING)
        enc = "utf-8"
    try:
        text = data.decode(enc)
    except LookupError:
        return None, [SourceProblem("encoding-error", f"unknown encoding: {encoding}",
                                    f"encodage inconnu : « {encoding} »")], warnings
    except UnicodeDecodeError as exc:
        line = _line_of_offset(data, exc.start)
        guess = ""
        guess_en = ""
        if enc == "utf-8":
            try:
                data.decode("cp1252")
                guess = " ; il semble être en Windows-1252 (cp1252) : réenregistrez-le en UTF-8"
                guess_en = "; it looks like Windows-1252 (cp1252): save it again as UTF-8"
            except UnicodeDecodeError:
                pass
        note = f"'{exc.encoding}' codec can't decode byte 0x{data[exc.start]:02x} in position {exc.start}: {exc.reason}"
        return None, [SourceProblem(
            "encoding-error", note + guess_en,
            f"le fichier n'est pas encodé en {encoding.upper()} (premier octet invalide à la ligne {line}, "
            f"position {exc.start}){guess}", line=line)], warnings
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        return None, [SourceProblem(
            "source-error", "the source contains NUL bytes: it is not a text (CSV) file",
            f"le fichier contient des octets nuls (ligne {line}) : ce n'est pas un fichier texte CSV "
            "(fichier binaire, tableur ou archive ?)", line=line)], warnings
    return text, [], warnings


def _records_csv_module(text: str, delimiter: str, quotechar: str) -> tuple[list[list[str]] | None, SourceProblem | None]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as exc:
        return None, SourceProblem("source-error", f"CSV parsing error at line {reader.line_num}: {exc}",
                                   f"CSV illisible à la ligne {reader.line_num} : {exc}", line=reader.line_num)
    return rows, None


def read_csv_text(text: str, *, delimiter: str = ",", quotechar: str = '"', header: bool = True) -> RawTable:
    """Split a decoded CSV text into records (see module docstring)."""
    warnings: list[tuple[str, str]] = []
    problems: list[SourceProblem] = []
    has_crlf = "\r\n" in text
    if "\r" in text:
        bare_cr = text.count("\r") - text.count("\r\n")
        bare_lf = text.count("\n") - text.count("\r\n")
        kinds = sum(1 for k in (text.count("\r\n"), bare_cr, bare_lf) if k)
        if kinds > 1:
            warnings.append(("mixed line endings (CRLF / LF / CR) in the file",
                             "fins de ligne mélangées dans le fichier (CRLF / LF / CR)"))
    else:
        bare_cr = 0
    if not text:
        frame = _empty_frame(0)
        return RawTable([], frame, problems=problems, warnings=warnings)

    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if (has_crlf or bare_cr) else text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    quoted = quotechar and quotechar in text
    full_csv = False
    quote_lines: list[int] = []
    if quoted:
        for i, line in enumerate(lines):
            if quotechar in line:
                if line.count(quotechar) % 2:
                    full_csv = True
                    break
                quote_lines.append(i)
    if full_csv:
        rows, problem = _records_csv_module(text, delimiter, quotechar)
        if problem:
            return RawTable([], _empty_frame(0), problems=[problem], warnings=warnings)
        return _from_rows(rows or [], header, warnings)

    # Fast path: one line = one record.
    parsed_quote: dict[int, list[str]] = {}
    for i in quote_lines:
        rows, problem = _records_csv_module(lines[i], delimiter, quotechar)
        if problem:
            problem.line = i + 1
            problem.fr = f"CSV illisible à la ligne {i + 1}"
            problem.note = f"CSV parsing error at line {i + 1}"
            return RawTable([], _empty_frame(0), problems=[problem], warnings=warnings)
        parsed_quote[i] = rows[0] if rows else []

    def cells_of(i: int) -> list[str]:
        if i in parsed_quote:
            return parsed_quote[i]
        return [] if lines[i] == "" else lines[i].split(delimiter)

    if header:
        labels = cells_of(0) if lines else []
        body_start = 1
    else:
        labels = []
        body_start = 0
    body = pl.Series("l", lines[body_start:], dtype=pl.Utf8)
    nrows = len(body)
    if not header:
        width = max((len(cells_of(i)) for i in range(len(lines))), default=0)
        labels = [f"field{i + 1}" for i in range(width)]
    width = len(labels)
    df = pl.DataFrame({"l": body}).with_row_index("__i")
    df = df.with_columns(
        (pl.col("__i").cast(pl.Int64) + body_start + 1).alias("__row"),
        pl.col("l").str.split(delimiter).alias("__cells"),
    )
    df = df.with_columns(
        pl.when(pl.col("l") == "").then(0).otherwise(pl.col("__cells").list.len()).cast(pl.Int64).alias("__n"))
    if parsed_quote:
        idx = [i - body_start for i in parsed_quote if i >= body_start]
        if idx:
            fix = pl.DataFrame({
                "__i": pl.Series(idx, dtype=pl.UInt32),
                "__q": pl.Series([parsed_quote[i + body_start] for i in idx], dtype=pl.List(pl.Utf8)),
            })
            df = df.join(fix, on="__i", how="left").sort("__i")
            df = df.with_columns(
                pl.when(pl.col("__q").is_not_null()).then(pl.col("__q")).otherwise(pl.col("__cells")).alias("__cells"),
                pl.when(pl.col("__q").is_not_null()).then(pl.col("__q").list.len()).otherwise(pl.col("__n"))
                .cast(pl.Int64).alias("__n"),
            ).drop("__q")
    cols = [
        pl.when(pl.col("__n") > j).then(pl.col("__cells").list.get(j, null_on_oob=True)).otherwise(None)
        .cast(pl.Utf8).alias(f"c{j}")
        for j in range(width)
    ]
    frame = df.select(*cols, pl.col("__row"), pl.col("__n"))
    extra: dict[int, list[str]] = {}
    if nrows and width >= 0:
        wide = df.filter(pl.col("__n") > width).select("__row", "__cells")
        for row, cells in wide.iter_rows():
            extra[row] = list(cells[width:])
    return RawTable(labels, frame, extra=extra, problems=problems, warnings=warnings, has_header=header)


def _from_rows(rows: list[list[str]], header: bool, warnings: list[tuple[str, str]]) -> RawTable:
    if header:
        labels = rows[0] if rows else []
        body = rows[1:]
        start = 2
    else:
        width = max((len(r) for r in rows), default=0)
        labels = [f"field{i + 1}" for i in range(width)]
        body = rows
        start = 1
    width = len(labels)
    data = {f"c{j}": pl.Series(f"c{j}", [r[j] if j < len(r) else None for r in body], dtype=pl.Utf8)
            for j in range(width)}
    data["__row"] = pl.Series("__row", range(start, start + len(body)), dtype=pl.Int64)
    data["__n"] = pl.Series("__n", [len(r) for r in body], dtype=pl.Int64)
    frame = pl.DataFrame(data)
    extra = {start + i: r[width:] for i, r in enumerate(body) if len(r) > width}
    return RawTable(labels, frame, extra=extra, warnings=warnings, has_header=header)


def _read_regular(data: bytes, delimiter: str, crlf: int) -> RawTable | None:
    """No quote at all and every line with the header's number of cells: one polars pass.

    Proof of regularity without reading lines: polars (no truncation) refuses any longer line, and
    the file's total delimiter count equals (width - 1) x lines only if no line is shorter.
    """
    end = data.find(b"\n")
    try:
        first = (data if end < 0 else data[:end]).decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return None
    labels = first.split(delimiter) if first else []
    width = len(labels)
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if width < 2 or data.count(delimiter.encode()) != (width - 1) * n_lines:
        return None
    try:
        cells = pl.read_csv(data, has_header=False, separator=delimiter, quote_char=None, infer_schema=False,
                            truncate_ragged_lines=False, raise_if_empty=False, empty_string_is_null=False,
                            eol_char="\n")
    except Exception:
        return None
    if cells.height != n_lines or cells.width != width:
        return None
    body = cells.slice(1)
    cols = [body.get_column(c).str.strip_suffix("\r").alias(f"c{j}") if (j == width - 1 and crlf)
            else body.get_column(c).alias(f"c{j}") for j, c in enumerate(body.columns)]
    frame = pl.DataFrame(cols).with_columns(
        pl.Series("__row", range(2, 2 + body.height), dtype=pl.Int64),
        pl.lit(width, dtype=pl.Int64).alias("__n"))
    return RawTable(labels, frame)


class LineSource:
    """Finds physical lines in the raw bytes without an index of every line.

    Newlines are counted per block of ``BLOCK`` bytes (one pass, in C); a line is then found from
    its block with a few ``find`` calls. Only valid on the fast path (one line = one record).
    """

    BLOCK = 1 << 13  # ~45 lines of 180 bytes: few finds to reach a line from its block

    def __init__(self, data: bytes, delimiter: str, quotechar: str, crlf: bool):
        self.data, self.delimiter, self.quotechar, self.crlf = data, delimiter, quotechar, crlf
        counts = [data.count(b"\n", k, k + self.BLOCK) for k in range(0, len(data), self.BLOCK)]
        self.before: list[int] = []  # newlines before each block
        total = 0
        for c in counts:
            self.before.append(total)
            total += c
        self.newlines = total

    def start(self, i: int) -> int:
        """Byte offset where line ``i`` (0-based) starts."""
        if i == 0:
            return 0
        import bisect
        k = bisect.bisect_right(self.before, i - 1) - 1  # block holding the i-th newline (1-based)
        pos = k * self.BLOCK
        for _ in range(i - self.before[k]):
            pos = self.data.find(b"\n", pos) + 1
        return pos

    def raw(self, i: int, start: int | None = None) -> bytes:
        s = self.start(i) if start is None else start
        e = self.data.find(b"\n", s)
        line = self.data[s:len(self.data) if e < 0 else e]
        return line.removesuffix(b"\r") if self.crlf else line

    def cells_many(self, lines: list[int]) -> list[list[str]]:
        """Cells of sorted line indexes: from one line to a near next one by a few finds."""
        out: list[list[str]] = []
        prev, pos = -1, 0
        for i in lines:
            if prev >= 0 and 0 <= i - prev <= 32:
                for _ in range(i - prev):
                    pos = self.data.find(b"\n", pos) + 1
            else:
                pos = self.start(i)
            out.append(self.cells(i, pos))
            prev = i
        return out

    def cells(self, i: int, start: int | None = None) -> list[str]:
        text = self.raw(i, start).decode("utf-8")
        if not text:
            return []
        if self.quotechar and self.quotechar in text:
            rows, _ = _records_csv_module(text, self.delimiter, self.quotechar)
            return rows[0] if rows else []
        return text.split(self.delimiter)


def _read_single(data: bytes, delimiter: str, quotechar: str, crlf: int,
                 needed: set[int] | None = None) -> RawTable | None:
    """One polars pass for the common file; ragged rows found from byte arithmetic, not a second read.

    polars (no quoting, no truncation) refuses any line longer than the header, so only short lines
    remain possible; the file's delimiter count says how many delimiters are missing in all. A short
    line is padded with "" by polars, so only rows whose last cell is "" are candidates: their byte
    offsets follow from the cells' byte lengths (minus what earlier short lines lack), and their raw
    line gives their true cell count. The few lines holding quote characters are re-read with the
    ``csv`` module. Returns None when not applicable (the slower paths then decide).

    ``needed``: column indices the checks use; the others are not read (the last column always is:
    a short line shows there as padding), their cells are read from the line when a report needs them.
    """
    end = data.find(b"\n")
    head = data if end < 0 else data[:end]
    q = quotechar.encode() if quotechar else b""
    if q and q in head:
        return None
    try:
        first = head.decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError:
        return None
    labels = first.split(delimiter) if first else []
    width = len(labels)
    if width < 2:
        return None
    read = list(range(width))
    if needed is not None:
        read = sorted({j for j in needed if 0 <= j < width} | {width - 1})
    projected = len(read) < width
    # Byte counts (newlines, per block for the line locator; delimiters, for ragged rows) run in a
    # thread beside polars' parse: bytes.count holds the GIL, but polars parses without it.
    scan: dict = {}

    def count() -> None:
        if projected:
            scan["locator"] = LineSource(data, delimiter, quotechar, bool(crlf))
            scan["newlines"] = scan["locator"].newlines
        else:
            scan["newlines"] = data.count(b"\n")
        scan["delimiters"] = data.count(delimiter.encode())

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    quoted_raw: dict[int, bytes] = {}  # line index (header = 0) -> raw line
    if q and q in data:
        counter.join()  # the quoted lines' cap needs the line count
        cap = max(1000, (scan.get("newlines", 0) + 1) // 20)
        pos = data.find(q)
        line_idx, counted = 0, 0
        while pos >= 0:
            line_idx += data.count(b"\n", counted, pos)
            start = data.rfind(b"\n", 0, pos) + 1
            stop = data.find(b"\n", pos)
            stop = len(data) if stop < 0 else stop
            raw_line = data[start:stop]
            if raw_line.count(q) % 2:
                return None  # a quoted field may span lines: exact path
            quoted_raw[line_idx] = raw_line
            if len(quoted_raw) > cap:
                return None
            counted = pos
            pos = data.find(q, stop)
    try:
        cells = pl.read_csv(data, has_header=False, separator=delimiter, quote_char=None, infer_schema=False,
                            truncate_ragged_lines=False, raise_if_empty=False, empty_string_is_null=False,
                            eol_char="\n", columns=read if projected else None)
    except Exception:  # a longer line, invalid UTF-8…: the other paths decide
        counter.join()
        return None
    counter.join()
    if "delimiters" not in scan:
        return None
    locator: LineSource | None = scan.get("locator")
    nl = scan["newlines"]
    if crlf and crlf != nl:
        return None
    n_lines = nl + (0 if data.endswith(b"\n") else 1)
    cap = max(1000, n_lines // 20)
    if cells.height != n_lines or cells.width != len(read):
        return None
    if locator is not None and cells.row(0) != tuple(labels[j] for j in read):
        return None
    if not data.endswith(b"\n") and data[data.rfind(b"\n") + 1:].count(delimiter.encode()) > width - 1:
        return None  # polars lets a last line without line end carry an extra empty cell
    body = cells.slice(1)
    nrows = body.height
    src = body.columns
    deficit = (width - 1) * n_lines - scan["delimiters"]
    short: dict[int, int] = {}  # body index -> number of cells
    if deficit < 0:
        return None
    if deficit or locator is not None:  # a projected read lets longer lines pass: always check
        cand = body.get_column(src[-1]).eq("").arg_true()
        if len(cand) > cap:
            return None
        eol = 2 if crlf else 1
        if locator is not None:
            starts = pl.Series([locator.start(i + 1) for i in cand.to_list()], dtype=pl.Int64)
        else:
            lengths = body.select(
                (pl.sum_horizontal([pl.col(c).str.len_bytes().cast(pl.Int64) for c in src]) + (width - 1 + eol))
                .alias("n")).get_column("n")
            starts = (lengths.cum_sum() - lengths + (len(head) + 1)).gather(cand)
        dl = delimiter.encode()
        missing_total = 0
        for i, s in zip(cand.to_list(), starts.to_list()):
            if locator is None:
                s -= missing_total
            if s > len(data) or data[s - 1] != 10:
                return None
            e = data.find(b"\n", s)
            line = data[s:len(data) if e < 0 else e]
            if crlf:
                line = line.removesuffix(b"\r")
            count = line.count(dl)
            if count < width - 1:
                short[i] = count + 1 if line else 0
                missing_total += width - 1 - count
        if missing_total != deficit:
            return None
    quoted: dict[int, list[str]] = {}  # body index -> cells
    for li, raw_line in quoted_raw.items():
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            return None
        rows, problem = _records_csv_module(text.removesuffix("\r") if crlf else text, delimiter, quotechar)
        if problem or rows is None or len(rows) > 1:
            return None
        quoted[li - 1] = rows[0] if rows else []
    ncells = pl.repeat(width, nrows, dtype=pl.Int64, eager=True)
    fix = {**short, **{i: len(c) for i, c in quoted.items()}}
    if fix:
        ncells = ncells.scatter(list(fix), list(fix.values()))
    frame = body.rename({c: f"c{j}" for j, c in zip(read, src)}).with_columns(
        pl.Series("__row", range(2, 2 + nrows), dtype=pl.Int64), ncells.alias("__n"))
    if short:
        # cells a short line lacks are null, not polars' "" padding. Scatter into the few rows: a
        # when/then over the whole column would rechunk polars' many parsing chunks (10x slower).
        lowest = min(short.values())
        frame = frame.with_columns([
            frame.get_column(f"c{j}").clone().scatter([i for i, n in short.items() if n <= j], None)
            for j in read if j >= lowest])
    extra: dict[int, list[str]] = {}
    if quoted:
        idx = pl.Series(list(quoted), dtype=pl.Int64)
        cols_now = {}
        for j in read:
            values = pl.Series([c[j] if j < len(c) else None for c in quoted.values()], dtype=pl.Utf8)
            current = frame.get_column(f"c{j}").gather(idx)
            if not current.equals(values, check_names=False, null_equal=True):
                cols_now[f"c{j}"] = frame.get_column(f"c{j}").clone().scatter(idx, values)
        frame = frame.with_columns([v.alias(k) for k, v in cols_now.items()])
        for i, c in quoted.items():
            if len(c) > width:
                extra[i + 2] = c[width:]
    if locator is not None:
        return RawTable(labels, frame, extra=extra, lazy=frozenset(set(range(width)) - set(read)), lines=locator)
    return RawTable(labels, frame, extra=extra)


def _read_fast(data: bytes, *, delimiter: str, quotechar: str, header: bool,
               needed: set[int] | None = None) -> RawTable | None:
    """Fastest path, for the common file: LF / CRLF line ends, quotes only on a few single lines.

    polars' multi-threaded reader (no quoting) gives the cells; a second pass reads whole lines to
    count each record's cells (polars pads short rows and drops extra cells, so ragged rows are
    recognised from the delimiter count); the few lines holding quote characters are re-read with
    the ``csv`` module and patched in. Returns None when not applicable (the exact path then runs).
    """
    if not header or len(delimiter) != 1 or not data:
        return None
    has_cr = b"\r" in data
    crlf = data.count(b"\r\n") if has_cr else 0
    if has_cr and data.count(b"\r") != crlf:
        return None
    warnings: list[tuple[str, str]] = []
    if crlf and crlf != data.count(b"\n"):
        warnings.append(("mixed line endings (CRLF / LF / CR) in the file",
                         "fins de ligne mélangées dans le fichier (CRLF / LF / CR)"))
    single = _read_single(data, delimiter, quotechar, crlf, needed)
    if single is None and needed is not None:
        single = _read_single(data, delimiter, quotechar, crlf)
    if single is not None:
        single.warnings = warnings
        return single
    if b"\x1f" in data:
        return None
    if not (quotechar and quotechar.encode() in data):
        regular = _read_regular(data, delimiter, crlf)
        if regular is not None:
            regular.warnings = warnings
            return regular
    try:
        cells = pl.read_csv(data, has_header=False, separator=delimiter, quote_char=None, infer_schema=False,
                            truncate_ragged_lines=True, raise_if_empty=False, empty_string_is_null=False,
                            eol_char="\n")
        lines = pl.read_csv(data, has_header=False, separator="\x1f", quote_char=None,
                            schema={"l": pl.Utf8}, raise_if_empty=False, empty_string_is_null=False,
                            eol_char="\n").get_column("l")
    except Exception:  # polars refused the file: let the exact path decide what is wrong
        return None
    if cells.height != lines.len() or not cells.height:
        return None
    lines = (lines.str.strip_suffix("\r") if crlf else lines).fill_null("")
    quoted: dict[int, list[str]] = {}
    if quotechar and quotechar.encode() in data:
        has_q = lines.str.contains(quotechar, literal=True)
        nq = int(has_q.sum())
        if nq > max(1000, lines.len() // 20):
            return None
        qlines = pl.DataFrame({"i": pl.Series(range(lines.len()), dtype=pl.Int64), "l": lines}).filter(has_q)
        for i, line in qlines.iter_rows():
            if line.count(quotechar) % 2:
                return None  # a quoted field may span lines: exact path
            rows, problem = _records_csv_module(line, delimiter, quotechar)
            if problem or rows is None or len(rows) > 1:
                return None
            quoted[i] = rows[0] if rows else []
    first = lines[0]
    labels = quoted[0] if 0 in quoted else (first.split(delimiter) if first else [])
    width = len(labels)
    if not width or (0 not in quoted and cells.width != width):
        return None
    body = cells.slice(1)
    if body.width < width:
        body = body.with_columns([pl.lit(None, dtype=pl.Utf8).alias(f"__pad{k}") for k in range(width - body.width)])
    lines = lines.slice(1)
    nrows = body.height
    count = lines.str.count_matches(delimiter, literal=True) + 1
    ncells = pl.select(pl.when(pl.lit(lines) == "").then(0).otherwise(pl.lit(count)).cast(pl.Int64)).to_series()
    cols = [body.get_column(c).str.strip_suffix("\r").alias(f"c{j}") if (j == width - 1 and crlf)
            else body.get_column(c).alias(f"c{j}") for j, c in enumerate(body.columns[:width])]
    frame = pl.DataFrame(cols).with_columns(
        pl.Series("__row", range(2, 2 + nrows), dtype=pl.Int64), ncells.alias("__n"))
    extra: dict[int, list[str]] = {}
    qrows = {i + 1: c for i, c in quoted.items() if i >= 1}  # record number (header = 1)
    if qrows:
        # few rows: patch them in place (row number r sits at index r - 2)
        idx = pl.Series([r - 2 for r in qrows], dtype=pl.Int64)
        cols_now = {}
        for j in range(width):
            values = pl.Series([c[j] if j < len(c) else None for c in qrows.values()], dtype=pl.Utf8)
            current = frame.get_column(f"c{j}").gather(idx)
            if not current.equals(values, check_names=False, null_equal=True):
                cols_now[f"c{j}"] = frame.get_column(f"c{j}").clone().scatter(idx, values)
        cols_now["__n"] = frame.get_column("__n").clone().scatter(
            idx, pl.Series([len(c) for c in qrows.values()], dtype=pl.Int64))
        frame = frame.with_columns([v.alias(k) for k, v in cols_now.items()])
        for row, c in qrows.items():
            if len(c) > width:
                extra[row] = c[width:]
    ncol = frame.get_column("__n")
    if nrows and int(ncol.min()) < width:
        lowest = int(ncol.min())
        frame = frame.with_columns([
            pl.when(pl.col("__n") > j).then(pl.col(f"c{j}")).otherwise(None).alias(f"c{j}")
            for j in range(lowest, width)])
    if nrows and int(ncol.max()) > width:
        wide = pl.DataFrame({"__row": frame.get_column("__row"), "l": lines, "n": ncol}).filter(pl.col("n") > width)
        for row, line, _ in wide.iter_rows():
            if row not in qrows:
                extra[row] = line.split(delimiter)[width:]
    return RawTable(labels, frame, extra=extra, warnings=warnings)


def read_csv_bytes(data: bytes, *, encoding: str = "utf-8", delimiter: str = ",", quotechar: str = '"',
                   header: bool = True, needed: set[int] | None = None) -> RawTable:
    """Raw cells of a CSV file. ``needed``: the only columns the caller reads from ``frame`` (others may
    be left out of it, see :attr:`RawTable.lazy`); None = all."""
    stats: dict = {"bytes": len(data)}

    def digest() -> None:  # hashlib releases the GIL: hashes run beside the parsing
        stats["sha256"] = hashlib.sha256(data).hexdigest()

    hasher = threading.Thread(target=digest, daemon=True)
    hasher.start()
    enc = (encoding or "utf-8").lower().replace("_", "-")
    fast = None
    if enc in ("utf-8", "utf8", "utf-8-sig") and b"\x00" not in data:
        bom = data.startswith(b"\xef\xbb\xbf")
        fast = _read_fast(data[3:] if bom else data, delimiter=delimiter, quotechar=quotechar, header=header,
                          needed=needed)
        if fast is not None and bom:
            fast.warnings.insert(0, BOM_WARNING)
    if fast is not None:
        raw = fast
    else:
        text, problems, warnings = decode(data, encoding)
        if text is None:
            raw = RawTable([], _empty_frame(0), problems=problems, warnings=warnings)
        else:
            raw = read_csv_text(text, delimiter=delimiter, quotechar=quotechar, header=header)
            raw.warnings = warnings + raw.warnings
            if not raw.problems and not raw.labels and raw.frame.height == 0:
                raw.problems.append(SourceProblem("source-error", "the source is empty", "le fichier est vide"))
    hasher.join()
    raw.stats = {"sha256": stats["sha256"], "bytes": stats["bytes"]}
    return raw


def frame_to_raw(df: pl.DataFrame) -> RawTable:
    """A polars frame (already in memory) as raw text cells: every value cast to text."""
    labels = list(df.columns)
    cols = []
    for j, name in enumerate(labels):
        s = df.get_column(name)
        if s.dtype == pl.Boolean:
            s = s.cast(pl.Utf8).str.to_lowercase()
        elif s.dtype != pl.Utf8:
            s = s.cast(pl.Utf8)
        cols.append(s.fill_null("").alias(f"c{j}"))
    frame = pl.DataFrame(cols) if cols else pl.DataFrame()
    frame = frame.with_columns(
        pl.Series("__row", range(2, 2 + df.height), dtype=pl.Int64),
        pl.lit(len(labels), dtype=pl.Int64).alias("__n"),
    )
    return RawTable(labels, frame, stats={"bytes": None})
