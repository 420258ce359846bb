"""Ingest pupil exports (ONDE CSV in Windows-1252, UTF-8 CSV, XLSX) into the canonical frame.

- the file kind, encoding (UTF-8, UTF-8 with BOM, Windows-1252) and delimiter are detected;
- header profiles (``profiles/*.toml``, data not code) map each software's headers onto the canonical
  fields of ``schemas/eleves-premier-degre``;
- values are checked with vectorised polars expressions, chunk by chunk (no Python object per row);
- only the fields the tables need are kept; names, guardians and phone numbers are never loaded;
- problems name the file, the line and the field — never the value of a personal field — and are
  grouped by kind with counts. Any error raises :class:`~preau.errors.PreauError`; nothing is written.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import os
import re
import threading
import tomllib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from preau.codes import ALL_LEVELS, UAI_ALPHABET, is_valid_school_year
from preau.ingest import scan
from preau.errors import PreauError, Problem, Report, rel
from preau.frames import distinct_positions

__all__ = ["read_export", "read_exports", "load_profiles", "Profile", "IngestResult", "FileInfo", "sniff",
           "KEPT_COLUMNS", "PERSONAL_FIELDS"]

PERSONAL_FIELDS = {"identifiant_eleve", "nom", "prenom", "date_naissance", "commune_naissance", "adresse",
                   "code_postal", "commune_residence", "responsable1_nom", "responsable1_prenom",
                   "responsable1_telephone", "responsable2_nom", "responsable2_prenom"}
# Fields read from an export: what the tables and the geocoder need; nothing else is loaded.
NEEDED = ["annee_scolaire", "identifiant_eleve", "sexe", "date_naissance", "adresse", "code_postal",
          "commune_residence", "code_insee_residence", "uai", "niveau", "classe", "cantine", "periscolaire",
          "transport"]
REQUIRED = [f for f in NEEDED if f not in ("annee_scolaire", "adresse", "code_postal", "commune_residence", "classe")]
FLAGS = ("cantine", "periscolaire", "transport")  # an empty cell is a valid "no" in most profiles
# Columns of the canonical frame returned (identifiant and birth date are dropped after the checks).
KEPT_COLUMNS = ["annee_scolaire", "sexe", "annee_naissance", "niveau", "classe", "uai", "code_insee_residence",
                "adresse", "code_postal", "commune_residence", "cantine", "periscolaire", "transport"]
CHUNK_BYTES = 16 * 1024 * 1024  # below glibc's mmap threshold: buffers reused, fewer page faults
LEVEL_SYNONYMS = {"TOUTEPETITESECTION": "TPS", "PETITESECTION": "PS", "MOYENNESECTION": "MS",
                  "GRANDESECTION": "GS", "COURSPREPARATOIRE": "CP", "CE1": "CE1", "CE2": "CE2",
                  "CM1": "CM1", "CM2": "CM2", "ULISECOLE": "ULIS", "ULIS": "ULIS"}
SEX_SYNONYMS = {"F": "F", "FEMININ": "F", "FÉMININ": "F", "FILLE": "F", "M": "M", "MASCULIN": "M",
                "GARCON": "M", "GARÇON": "M", "G": "M", "1": "M", "2": "F"}
MAX_EXAMPLES = 5
# chunks parsed and checked at once: one more than the cores, at most 4. Since the re-encoding and
# the ragged-row check run compiled without the GIL, the threads wait on it less in a third, which
# then fills the core the others leave idle. National export on 2 cores, with the two layers read
# beside it as in a cold build, five alternating pairs: 2 threads 17.8–21.9 s (mean 19.5), 3 threads
# 17.1–20.3 s (mean 18.5; 4 pairs of 5 faster), peak memory +13 MB (with iconv, 3 threads gave nothing)
INGEST_THREADS = min(4, (os.cpu_count() or 1) + 1)


@dataclass
class Profile:
    id: str
    title: dict[str, str]
    columns: dict[str, list[str]]
    date_format: str = "%d/%m/%Y"
    true_values: list[str] = field(default_factory=lambda: ["Oui", "O", "1", "true"])
    false_values: list[str] = field(default_factory=lambda: ["Non", "N", "0", "false", ""])
    encoding: str = "auto"

    def match(self, headers: list[str]) -> dict[str, str]:
        """Canonical field → header present in the file."""
        norm = {_norm_header(h): h for h in headers}
        found = {}
        for canon, aliases in self.columns.items():
            for alias in aliases:
                if _norm_header(alias) in norm:
                    found[canon] = norm[_norm_header(alias)]
                    break
        return found


def _norm_header(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("’", "'").strip().strip('"').lower())


def load_profiles(extra_dir: Path | None = None) -> dict[str, Profile]:
    """Packaged profiles, plus ``profiles/*.toml`` of a workspace (same id: the workspace wins)."""
    texts = []
    for entry in (resources.files("preau.ingest") / "profiles").iterdir():
        if entry.name.endswith(".toml"):
            texts.append((entry.name, entry.read_text(encoding="utf-8")))
    if extra_dir and extra_dir.is_dir():
        texts += [(str(p), p.read_text(encoding="utf-8")) for p in sorted(extra_dir.glob("*.toml"))]
    profiles = {}
    for name, text in texts:
        try:
            data = tomllib.loads(text)
            profiles[data["id"]] = Profile(
                id=data["id"], title=data.get("title", {"fr": data["id"], "en": data["id"]}),
                columns={k: list(v) for k, v in data["columns"].items()},
                date_format=data.get("date_format", "%d/%m/%Y"),
                true_values=data.get("true_values", ["Oui", "O", "1"]),
                false_values=data.get("false_values", ["Non", "N", "0", ""]),
                encoding=data.get("encoding", "auto"))
        except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            raise PreauError(f"profil d'en-têtes invalide : {exc}", f"invalid header profile: {exc}",
                             code="profile-invalid", file=name) from None
    return profiles


@dataclass
class FileInfo:
    kind: str  # "csv" | "xlsx"
    encoding: str | None = None
    delimiter: str | None = None
    size: int = 0


@dataclass
class IngestResult:
    frame: pl.DataFrame
    report: Report
    info: FileInfo
    profile: str
    rows: int


def _err(report: Report, code: str, fr: str, en: str, path: Path, **kw) -> None:
    report.error(code, fr, en, file=rel(path), **kw)


def sniff(path: Path, encoding: str = "auto") -> FileInfo:
    """Detect file kind, encoding and delimiter; raise a clear error for empty or binary files."""
    report = Report(subject=rel(path))
    if not path.exists():
        _err(report, "ingest-missing", "fichier introuvable", "file not found", path)
        raise PreauError(report)
    size = path.stat().st_size
    if size == 0:
        _err(report, "ingest-empty", "fichier vide (0 octet) : un export d'élèves est attendu",
             "empty file (0 bytes): a pupil export is expected", path)
        raise PreauError(report)
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if head.startswith(b"PK\x03\x04"):
        return FileInfo("xlsx", size=size)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        _err(report, "ingest-binary",
             "fichier binaire ou encodé en UTF-16 : attendu un CSV (UTF-8 ou Windows-1252) ou un classeur XLSX",
             "binary or UTF-16 file: expected a CSV (UTF-8 or Windows-1252) or an XLSX workbook", path)
        raise PreauError(report)
    enc = _detect_encoding(path, head, encoding, report)
    text_head = head.decode(enc, errors="replace")
    first = text_head.lstrip("\ufeff").split("\n", 1)[0]
    counts = {d: first.count(d) for d in (";", ",", "\t", "|")}
    delim = max(counts, key=counts.get)
    if counts[delim] == 0:
        _err(report, "ingest-delimiter",
             "aucun séparateur de colonnes trouvé dans la ligne d'en-tête (attendu « ; » ou « , »)",
             "no column separator found in the header line (expected ';' or ',')", path, line=1)
        raise PreauError(report)
    return FileInfo("csv", encoding=enc, delimiter=delim, size=size)


def _line_of_offset(path: Path, offset: int) -> int:
    with open(path, "rb") as fh:
        return fh.read(offset).count(b"\n") + 1


def _detect_encoding(path: Path, head: bytes, wanted: str, report: Report) -> str:
    """UTF-8 if the whole file decodes as UTF-8, else Windows-1252.

    A Windows-1252 export fails UTF-8 at its first accented letter (near the top). Windows-1252 is
    one byte per character: only the head is checked here, undefined bytes further on are reported
    by :func:`_csv_chunks` while reading (the file is not decoded twice)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    candidates = ["utf-8", "cp1252"] if wanted == "auto" else [wanted]
    for enc in candidates:
        if enc == "cp1252":
            try:
                head.decode(enc)
            except UnicodeDecodeError as exc:
                _encoding_error(report, path, enc, head.count(b"\n", 0, exc.start) + 1)
            return enc
        dec = codecs.getincrementaldecoder(enc)()
        offset = 0
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(8 * 1024 * 1024):
                    dec.decode(chunk)
                    offset += len(chunk)
                dec.decode(b"", final=True)
            return enc
        except UnicodeDecodeError as exc:
            bad_line = _line_of_offset(path, offset + exc.start)
            last = (enc, bad_line)
    enc, bad_line = last
    _encoding_error(report, path, enc, bad_line)


def _encoding_error(report: Report, path: Path, enc: str, bad_line: int | None):
    names = {"utf-8": "UTF-8", "cp1252": "Windows-1252"}
    _err(report, "ingest-encoding",
         f"encodage non reconnu : octet invalide en {names.get(enc, enc)} ; attendu UTF-8 ou Windows-1252",
         f"unknown encoding: invalid byte for {names.get(enc, enc)}; expected UTF-8 or Windows-1252",
         path, line=bad_line)
    raise PreauError(report)


def _csv_chunks(path: Path, info: FileInfo):
    """Yield ``(first_data_line, (utf8_header, raw_body))``, cut at line ends outside quotes
    (the body is decoded by :func:`_decode_chunk`, in a worker thread).

    The file is memory-mapped and each body copied out once; its lines are counted by numpy, which
    lets go of the GIL. Reading blocks, joining each to the last one's tail, slicing and counting
    with ``bytes`` held the GIL 15 ms per 16 MB chunk, while the worker threads waited for it (the
    ingest kept 1.6 cores busy)."""
    import mmap

    with open(path, "rb") as fh:
        raw_header = fh.readline()
        header = raw_header.decode(info.encoding).lstrip("\ufeff").encode("utf-8")
        if not header.endswith(b"\n"):
            header += b"\n"
        size = os.fstat(fh.fileno()).st_size
        if size <= len(raw_header):
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            line = 2
            start = len(raw_header)
            read_to = start  # the blocks of CHUNK_BYTES read so far, as the former block reads
            released = 0
            while start < size:
                read_to = min(read_to + CHUNK_BYTES, size)
                if read_to < size:
                    cut = mm.rfind(b"\n", start, read_to) + 1
                    while cut > start and mm.find(b'"', start, cut) >= 0 and mm[start:cut].count(b'"') % 2:
                        # inside a quoted field: cut earlier (most exports have no quote at all)
                        cut = mm.rfind(b"\n", start, cut - 1) + 1
                    if cut <= start:
                        continue  # no line end outside quotes yet: one more block
                else:
                    cut = size
                body = mm[start:cut]
                # the mapped pages read are given back (they would count as this process's
                # memory, up to the whole file: national peak 2.7 → 4.8 GB); the page cache keeps them
                done = cut // mmap.PAGESIZE * mmap.PAGESIZE
                if done > released and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                    mm.madvise(mmap.MADV_DONTNEED, released, done - released)
                    released = done
                yield line, (header, body)
                line += int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == 10))
                start = cut


def _decode_chunk(path: Path, info: FileInfo, line: int, header: bytes, body: bytes,
                  n_fields: int) -> tuple[bytes, list[int] | None]:
    """UTF-8 bytes of one chunk with its header line (cp1252 / Latin-1 exports re-encoded), and the
    line numbers (1: the header) of its lines whose field count is not ``n_fields``, found in the
    same pass (``None`` when the chunk holds quotes: a quoted field may hold a delimiter or a line
    end, which :func:`_ragged_rows` then reads as CSV; ``None`` too when Python's codec re-encodes
    it, an encoding :func:`scan.utf8_table` does not handle)."""
    quoted = b'"' in body or b'"' in header
    if info.encoding in ("utf-8", "utf-8-sig"):
        return header + body, (None if quoted else [r + 2 for r in scan.ragged_lines(body, info.delimiter, n_fields)])
    done = scan.transcode_checked(body, info.encoding, header, info.delimiter, n_fields)
    if done is not None:
        return done[0], (None if quoted else [r + 2 for r in done[1]])
    try:
        # a byte the encoding does not define (Python's codec says which), or another encoding
        return header + body.decode(info.encoding).encode("utf-8"), None
    except UnicodeDecodeError as exc:
        _encoding_error(Report(subject=rel(path)), path, info.encoding, line + body.count(b"\n", 0, exc.start))


class _Recorder:
    """The :class:`_Collector` calls of one chunk, replayed in file order (chunks are checked in threads)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def add(self, *args) -> None:
        self.calls.append(args)


class _Collector:
    """Groups problems by (code, field): one Problem each with a count and the first lines."""

    def __init__(self, path: Path):
        self.path = path
        self.groups: dict[tuple[str, str | None], dict] = {}

    def add(self, code: str, fr: str, en: str, field_: str | None, lines: list[int], count: int) -> None:
        if count == 0:
            return
        g = self.groups.setdefault((code, field_), {"fr": fr, "en": en, "lines": [], "count": 0})
        g["count"] += count
        g["lines"] = sorted(set(g["lines"] + lines))[:MAX_EXAMPLES]

    def into(self, report: Report) -> None:
        for (code, field_), g in self.groups.items():
            lines = ", ".join(map(str, g["lines"]))
            more = "…" if g["count"] > len(g["lines"]) else ""
            report.add(Problem(code, f"{g['fr']} (lignes {lines}{more})", f"{g['en']} (lines {lines}{more})",
                               file=rel(self.path), line=g["lines"][0] if g["lines"] else None, field=field_,
                               count=g["count"]))


# Columns with few distinct values per chunk (a school year, a sex, a level, a school, a commune, a
# class, yes/no): stripped, normalised and checked once per distinct value (a Categorical cast, then
# the value's position picks its results), not once per pupil: national ingest, check of a 78k-row
# chunk 74 → 57 ms; they stay Categorical (the build wants them so) unless asked as text.
BY_VALUE = ("annee_scolaire", "sexe", "niveau", "uai", "code_insee_residence", "code_postal", "commune_residence",
            "classe", "cantine", "periscolaire", "transport")


class _Distinct:
    """A column's distinct values (stripped text, null once if any) and each row's position among them."""

    def __init__(self, column: pl.Series):
        values, self.pos = distinct_positions(column)
        self.values = values.str.strip_chars()
        self._index = pl.Series(self.pos)

    def rows(self, per_value: pl.Series) -> pl.Series:
        """A Series of one entry per distinct value, spread to the rows."""
        return per_value.gather(self._index)

    def mask(self, per_value: pl.Series) -> pl.Series:
        """A boolean per distinct value (null: false), spread to the rows."""
        return pl.Series(per_value.fill_null(False).to_numpy()[self.pos])

    def first_rows(self, per_value_mask: pl.Series) -> list[int]:
        """Indexes of the distinct values flagged, in the order of their first row."""
        flagged = np.flatnonzero(per_value_mask.fill_null(False).to_numpy())
        if len(flagged) == 0:
            return []
        at = np.flatnonzero(np.isin(self.pos, flagged))
        values, first = np.unique(self.pos[at], return_index=True)
        return values[np.argsort(at[first], kind="stable")].tolist()


def _check_chunk(df: pl.DataFrame, profile: Profile, school_year: str | None, col: _Collector | _Recorder,
                 header_of: dict[str, str]) -> pl.DataFrame:
    """Vectorised checks of one chunk (canonical columns + ``_line``); returns the typed frame (the
    :data:`BY_VALUE` columns Categorical)."""
    today = dt.date.today()
    s = pl.col
    year_in_file = "annee_scolaire" in df.columns
    if not year_in_file:
        df = df.with_columns(pl.lit(school_year, pl.Utf8).alias("annee_scolaire"))
    by = {name: _Distinct(df[name]) for name in BY_VALUE if name in df.columns}
    df = df.with_columns(s(name).str.strip_chars().alias(name) for name in NEEDED
                         if name in df.columns and name not in by)

    def lines(mask: pl.Series) -> tuple[list[int], int]:
        n = int(mask.sum())
        return (df["_line"].filter(mask).head(MAX_EXAMPLES).to_list() if n else []), n

    def hdr(name: str) -> str:
        return header_of.get(name, name)

    for name in (f for f in REQUIRED if f not in FLAGS):
        if name in by:
            v = by[name].values
            m = by[name].mask(v.is_null() | (v == ""))
        else:
            m = df[name].is_null() | (df[name] == "")
        ls, n = lines(m)
        col.add("missing-value", f"valeur manquante dans « {hdr(name)} »", f"missing value in '{hdr(name)}'", name, ls, n)
    # school year (its own column, or the one declared for the file)
    year = by["annee_scolaire"]
    year_ok = pl.Series([is_valid_school_year(y) for y in year.values.to_list()], dtype=pl.Boolean)
    if year_in_file:
        ls, n = lines(year.mask(~year_ok))
        col.add("invalid-school-year", "année scolaire invalide (attendu AAAA-AAAA, ex. 2026-2027)",
                "invalid school year (expected YYYY-YYYY, e.g. 2026-2027)", "annee_scolaire", ls, n)
        if school_year:
            ls, n = lines(year.mask(year_ok & (year.values != school_year)))
            col.add("school-year-mismatch", f"année scolaire différente de celle déclarée pour ce fichier ({school_year})",
                    f"school year differs from the one declared for this file ({school_year})", "annee_scolaire", ls, n)
    # sex
    sx = by["sexe"].values
    sexe_v = sx.str.to_uppercase().replace_strict(SEX_SYNONYMS, default=None, return_dtype=pl.Utf8)
    ls, n = lines(by["sexe"].mask(sexe_v.is_null() & sx.is_not_null() & (sx != "")))
    col.add("invalid-sex", f"sexe non reconnu dans « {hdr('sexe')} » (attendu F ou M)",
            f"unrecognised sex in '{hdr('sexe')}' (expected F or M)", "sexe", ls, n)
    # level (not personal: the value is shown)
    lv = by["niveau"].values
    niveau_v = lv.str.to_uppercase().str.replace_all(r"[\s.\-_]", "").replace_strict(
        {**{x: x for x in ALL_LEVELS}, **LEVEL_SYNONYMS}, default=None, return_dtype=pl.Utf8)
    bad = niveau_v.is_null() & lv.is_not_null() & (lv != "")
    for i in by["niveau"].first_rows(bad)[:10]:
        value = lv[i]
        ls, n = lines(pl.Series(by["niveau"].pos == i))
        col.add("unknown-level", f"niveau inconnu « {value} » ; attendu : {', '.join(ALL_LEVELS)}",
                f"unknown level '{value}'; expected one of: {', '.join(ALL_LEVELS)}", "niveau", ls, n)
    # UAI with its check letter (public code: shown)
    uai_v = by["uai"].values.str.to_uppercase()
    shape_ok = uai_v.str.contains(r"^\d{7}[A-Z]$").fill_null(False)
    digits = uai_v.str.slice(0, 7).cast(pl.Int64, strict=False)
    expected = (digits % 23).replace_strict({i: c for i, c in enumerate(UAI_ALPHABET)}, default=None, return_dtype=pl.Utf8)
    bad_letter = shape_ok & (uai_v.str.slice(7, 1) != expected)
    present = uai_v.is_not_null() & (uai_v != "")
    ls, n = lines(by["uai"].mask(present & ~shape_ok))
    col.add("invalid-uai", "code UAI mal formé (attendu 7 chiffres et une lettre, ex. 0650012A)",
            "malformed UAI code (expected 7 digits and a letter, e.g. 0650012A)", "uai", ls, n)
    for i in by["uai"].first_rows(bad_letter)[:10]:
        value = uai_v[i]
        ls, n = lines(pl.Series(by["uai"].pos == i))
        col.add("uai-check-letter", f"code UAI « {value} » : lettre de contrôle fausse (attendu "
                f"{UAI_ALPHABET[int(value[:7]) % 23]})", f"UAI code '{value}': wrong check letter (expected "
                f"{UAI_ALPHABET[int(value[:7]) % 23]})", "uai", ls, n)
    # INSEE code of residence
    insee_v = by["code_insee_residence"].values.str.to_uppercase()
    ls, n = lines(by["code_insee_residence"].mask(
        insee_v.is_not_null() & (insee_v != "") & ~insee_v.str.contains(r"^(\d{5}|2[AB]\d{3})$").fill_null(False)))
    col.add("invalid-insee", "code INSEE de commune invalide (attendu 5 caractères, ex. 65440 ou 2A004)",
            "invalid INSEE commune code (expected 5 characters, e.g. 65440 or 2A004)", "code_insee_residence", ls, n)
    # birth date: parsed, never shown
    birth = df["date_naissance"].str.strptime(pl.Date, profile.date_format, strict=False)
    if birth.null_count() > df["date_naissance"].null_count():  # second chance: ISO dates
        birth = birth.fill_null(df["date_naissance"].str.strptime(pl.Date, "%Y-%m-%d", strict=False))
    given = df["date_naissance"].is_not_null() & (df["date_naissance"] != "")
    fmt = profile.date_format.replace("%d", "JJ").replace("%m", "MM").replace("%Y", "AAAA")
    ls, n = lines(given & birth.is_null())
    col.add("invalid-date", f"date de naissance illisible (format attendu {fmt})",
            f"unreadable birth date (expected format {profile.date_format})", "date_naissance", ls, n)
    ls, n = lines(birth > today)
    col.add("future-date", "date de naissance dans le futur", "birth date in the future", "date_naissance", ls, n)
    year_start = year.rows(year.values.str.slice(0, 4).cast(pl.Int32, strict=False))
    age = year_start - birth.dt.year()
    ls, n = lines((birth <= today) & ((age < 1) | (age > 16)))
    col.add("implausible-age", "âge incompatible avec l'école primaire (moins de 1 an ou plus de 16 ans à la rentrée)",
            "age incompatible with primary school (under 1 or over 16 at the start of the year)", "date_naissance", ls, n)
    # flags
    flags = {}
    for name in FLAGS:
        v = by[name].values.fill_null("")
        is_true = v.is_in(profile.true_values)
        is_false = v.is_in(profile.false_values)
        ls, n = lines(by[name].mask(~is_true & ~is_false))
        allowed = "/".join(x for x in profile.true_values[:1] + profile.false_values[:1])
        col.add("invalid-boolean", f"valeur oui/non non reconnue dans « {hdr(name)} » (attendu {allowed})",
                f"unrecognised yes/no value in '{hdr(name)}' (expected {allowed})", name, ls, n)
        flags[name] = by[name].mask(is_true)
    cat = lambda name, per_value: by[name].rows(per_value.cast(pl.Categorical)).alias(name)  # noqa: E731
    none = pl.repeat(None, df.height, dtype=pl.Categorical, eager=True)
    return pl.DataFrame({
        "_line": df["_line"], "identifiant_eleve": df["identifiant_eleve"],
        "annee_scolaire": cat("annee_scolaire", year.values),
        "sexe": cat("sexe", sexe_v), "annee_naissance": birth.dt.year().cast(pl.Int32), "niveau": cat("niveau", niveau_v),
        "classe": cat("classe", by["classe"].values) if "classe" in by else none,
        "uai": cat("uai", uai_v),
        "code_insee_residence": cat("code_insee_residence", insee_v),
        "adresse": df["adresse"] if "adresse" in df.columns else pl.repeat(None, df.height, dtype=pl.String, eager=True),
        "code_postal": cat("code_postal", by["code_postal"].values) if "code_postal" in by else none,
        "commune_residence": cat("commune_residence", by["commune_residence"].values) if "commune_residence" in by
        else none,
        **flags,
    })


def _choose_profile(headers: list[str], profiles: dict[str, Profile], wanted: str | None, path: Path) -> Profile:
    if wanted:
        if wanted not in profiles:
            raise PreauError(f"profil d'en-têtes inconnu « {wanted} » ; profils : {', '.join(sorted(profiles))}",
                             f"unknown header profile '{wanted}'; profiles: {', '.join(sorted(profiles))}",
                             code="profile-unknown", file=rel(path))
        return profiles[wanted]
    return max(profiles.values(), key=lambda p: len(p.match(headers)))


def read_export(path: str | Path, profile: str | None = None, school_year: str | None = None,
                profiles: dict[str, Profile] | None = None, categorical: bool = False) -> IngestResult:
    """Read one pupil export into the canonical frame (``KEPT_COLUMNS``); raise on any error.

    ``categorical``: the columns with few distinct values (:data:`BY_VALUE`) stay Categorical, as
    the checks made them (the build keeps them so: 4 bytes a row); else they are text."""
    path = Path(path)
    profiles = profiles or load_profiles()
    info = sniff(path, profiles[profile].encoding if profile in profiles else "auto")
    report = Report(subject=rel(path))
    col = _Collector(path)
    if info.kind == "xlsx":
        try:
            raw = pl.read_excel(path, sheet_id=1, infer_schema_length=0)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a user-file problem
            _err(report, "ingest-xlsx", f"classeur XLSX illisible : {type(exc).__name__}",
                 f"unreadable XLSX workbook: {type(exc).__name__}", path)
            raise PreauError(report) from None
        raw = raw.with_columns(pl.all().cast(pl.String))
        chunks = [(2, raw)]
        headers = raw.columns
    else:
        with open(path, "rb") as fh:
            headers_line = fh.readline().decode(info.encoding).lstrip("\ufeff").rstrip("\r\n")
        headers = [h.strip().strip('"') for h in headers_line.split(info.delimiter)]
        chunks = None
    dupes = [h for h in set(headers) if headers.count(h) > 1 and h]
    if dupes:
        _err(report, "duplicate-header", f"en-tête en double : {', '.join(dupes)}", f"duplicate header: {', '.join(dupes)}",
             path, line=1)
    prof = _choose_profile(headers, profiles, profile, path)
    found = prof.match(headers)
    missing = [f for f in REQUIRED if f not in found]
    if "annee_scolaire" not in found and not school_year:
        missing.insert(0, "annee_scolaire")
    for name in missing:
        aliases = " / ".join(f"« {a} »" for a in prof.columns.get(name, [name])[:3])
        _err(report, "missing-column", f"colonne obligatoire absente : {aliases} (profil {prof.id})",
             f"required column missing: {aliases} (profile {prof.id})".replace("«", "'").replace("»", "'"),
             path, line=1, field=name)
    if report.errors:
        raise PreauError(report)
    header_of = {canon: h for canon, h in found.items()}
    rename = {h: canon for canon, h in found.items() if canon in NEEDED}
    if chunks is None:
        chunks = _csv_chunks(path, info)

    def one(first_line: int, chunk) -> tuple[pl.DataFrame | None, _Recorder]:
        """Parse and check one chunk (in a worker thread): its frame and its problems, recorded."""
        rec = _Recorder()
        ragged = None
        if isinstance(chunk, tuple):
            chunk, ragged = _decode_chunk(path, info, first_line, *chunk, n_fields=len(headers))
            try:
                df = pl.read_csv(io.BytesIO(chunk), separator=info.delimiter, infer_schema=False, quote_char='"',
                                 columns=list(rename))
            except pl.exceptions.PolarsError as exc:
                bad = _first_bad_line(chunk, info.delimiter, len(headers))
                own = Report(subject=rel(path))  # not the shared report: another thread may fail too
                _err(own, "csv-malformed",
                     f"CSV mal formé (nombre de colonnes différent de l'en-tête ({len(headers)}) ou guillemets non fermés)",
                     f"malformed CSV (field count differs from the header ({len(headers)}) or unclosed quotes)",
                     path, line=first_line + bad - 2 if bad else None)
                raise PreauError(own) from exc
        else:
            df = chunk.select(list(rename))
        df = df.rename(rename).with_columns(pl.int_range(first_line, first_line + pl.len()).alias("_line"))
        if df.height == 0:
            return None, rec
        if ragged is None:
            ragged = _ragged_rows(chunk, info.delimiter, len(headers)) if isinstance(chunk, bytes) else []
        if ragged:
            rec.add("ragged-row", f"ligne avec un nombre de champs différent de l'en-tête ({len(headers)})",
                    f"row whose field count differs from the header ({len(headers)})", None,
                    [first_line + r - 2 for r in ragged[:MAX_EXAMPLES]], len(ragged))
        return _check_chunk(df, prof, school_year, rec, header_of), rec

    # Chunks decoded, parsed and checked by INGEST_THREADS threads (the compiled re-encoding and polars release the GIL,
    # the line scans partly hold it: one thread alone kept 1.15 cores busy), results taken in file order
    # (the first error in the file is the one raised); a few chunks in flight bound the memory.
    frames = []
    with ThreadPoolExecutor(INGEST_THREADS) as pool:
        flight: deque = deque()

        def take() -> None:
            df, rec = flight.popleft().result()
            for call in rec.calls:
                col.add(*call)
            if df is not None:
                frames.append(df)

        try:
            for first_line, chunk in chunks:
                flight.append(pool.submit(one, first_line, chunk))
                if len(flight) > INGEST_THREADS:
                    take()
            while flight:
                take()
        finally:
            for f in flight:
                f.cancel()
    if not frames:
        _err(report, "ingest-no-rows", "aucune ligne de données après l'en-tête", "no data row after the header",
             path, line=2)
        raise PreauError(report)
    frame = pl.concat(frames)
    dup = _duplicate_pupils(frame)
    if dup.height:
        col.add("duplicate-pupil", "élève en double (même identifiant la même année scolaire)",
                "duplicate pupil (same identifier in the same school year)", "identifiant_eleve",
                dup["_line"].sort().head(MAX_EXAMPLES).to_list(), dup.height)
    col.into(report)
    report.raise_if_errors()
    frame = frame.with_columns(pl.col(["cantine", "periscolaire", "transport"]).cast(pl.Boolean)).select(KEPT_COLUMNS)
    if not categorical:
        frame = frame.with_columns(pl.col(c).cast(pl.Utf8) for c in BY_VALUE if c in KEPT_COLUMNS and c not in FLAGS)
    return IngestResult(frame=frame, report=report, info=info, profile=prof.id, rows=frame.height)


def _duplicate_pupils(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose (school year, pupil identifier) is another row's too (rows without identifier aside).

    Most exports have none, and as many distinct hashes of the pair as rows prove it (equal pairs
    have equal hashes): 0.4 s for 12M rows, where the exact window count takes 4.4 s (7 CPU-s). It
    runs only when the hashes say there may be some."""
    present = pl.col("identifiant_eleve").is_not_null() & (pl.col("identifiant_eleve") != "")
    distinct, given = frame.select(pl.struct("annee_scolaire", "identifiant_eleve").hash().filter(present).n_unique(),
                                   present.sum()).row(0)
    if distinct == given:
        return frame.clear()
    return frame.filter(present).filter(pl.len().over(["annee_scolaire", "identifiant_eleve"]) > 1)


def _ragged_rows(chunk: bytes, delimiter: str, n_fields: int) -> list[int]:
    """Row numbers (1 = header) of rows with a different number of fields (fast path: no quotes)."""
    if b'"' in chunk:
        return [r for r in _csv_field_counts(chunk, delimiter, n_fields)]
    # delimiters per line from the positions of the line ends and delimiters (no Python object per
    # line), then the few lines with another count, less the blank ones (empty, or only \r)
    buf = np.frombuffer(chunk, dtype=np.uint8)
    cuts = np.concatenate([[0], np.flatnonzero(buf == 10) + 1, [len(buf)]])
    per_line = np.diff(np.searchsorted(np.flatnonzero(buf == ord(delimiter)), cuts))
    return [int(i) + 1 for i in np.flatnonzero(per_line != n_fields - 1)
            if chunk[cuts[i]:cuts[i + 1]].strip(b"\r\n")]


def _csv_field_counts(chunk: bytes, delimiter: str, n_fields: int) -> list[int]:
    import csv

    reader = csv.reader(io.StringIO(chunk.decode("utf-8")), delimiter=delimiter)
    return [reader.line_num for row in reader if row and len(row) != n_fields]


def _first_bad_line(chunk: bytes, delimiter: str, n_fields: int) -> int | None:
    try:
        bad = _csv_field_counts(chunk, delimiter, n_fields)
    except Exception:  # noqa: BLE001
        return None
    return bad[0] if bad else None


def read_exports(sources, profiles: dict[str, Profile] | None = None,
                 categorical: bool = False) -> tuple[pl.DataFrame, list[IngestResult]]:
    """Read every source of a publisher (``workspace.Source``) and concatenate; raise on any error.

    All files are read and every error of every file is reported together. ``categorical``: see
    :func:`read_export`.
    """
    profiles = profiles or load_profiles()
    report = Report()
    results = []
    for src in sources:
        try:
            results.append(read_export(src.path, src.profile, src.school_year, profiles, categorical=categorical))
        except PreauError as exc:
            report.extend(exc.report.problems)
    report.raise_if_errors()
    frame = pl.concat([r.frame for r in results]) if results else pl.DataFrame()
    return frame, results

