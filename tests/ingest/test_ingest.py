"""Ingest: real exports from the synthetic generator, and each kind of bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from preau.codes import is_valid_uai
from preau.errors import PreauError
from preau.ingest import KEPT_COLUMNS, read_export

YEAR = "2026-2027"


def onde_lines(synth_dir: Path) -> list[str]:
    return (synth_dir / f"eleves-{YEAR}.csv").read_bytes().decode("cp1252").split("\r\n")


def write(path: Path, lines: list[str], encoding="cp1252") -> Path:
    path.write_bytes("\r\n".join(lines).encode(encoding))
    return path


def errors_of(path: Path, **kw) -> PreauError:
    with pytest.raises(PreauError) as info:
        read_export(path, **kw)
    return info.value


def test_onde_export_reads_into_canonical_frame(synth_dir):
    res = read_export(synth_dir / f"eleves-{YEAR}.csv")
    assert res.info.encoding == "cp1252" and res.info.delimiter == ";" and res.profile == "onde"
    assert res.frame.columns == KEPT_COLUMNS
    assert res.rows == len(onde_lines(synth_dir)) - 2  # header and final empty line
    assert set(res.frame["annee_scolaire"]) == {YEAR}
    assert all(is_valid_uai(u) for u in res.frame["uai"].unique())
    # personal fields that the tables do not need are never loaded
    assert not {"nom", "prenom", "identifiant_eleve", "date_naissance"} & set(res.frame.columns)


def test_utf8_bom_comma_and_xlsx_give_the_same_frame(synth_dir, tmp_path):
    base = read_export(synth_dir / f"eleves-{YEAR}.csv").frame
    df = pl.read_csv((synth_dir / f"eleves-{YEAR}.csv").read_bytes().decode("cp1252").encode(), separator=";",
                     infer_schema=False)
    utf8 = tmp_path / "export-utf8.csv"
    utf8.write_bytes(b"\xef\xbb\xbf" + df.write_csv(separator=",").encode("utf-8"))
    r = read_export(utf8)
    assert r.info.encoding == "utf-8-sig" and r.info.delimiter == ","
    assert r.frame.equals(base)
    xlsx = tmp_path / "export.xlsx"
    df.write_excel(xlsx)
    assert read_export(xlsx).frame.equals(base)


def test_other_software_profile(synth_dir, tmp_path):
    """A municipal software export (other headers, X for yes, UTF-8) maps onto the same fields."""
    df = pl.read_csv((synth_dir / f"eleves-{YEAR}.csv").read_bytes().decode("cp1252").encode(), separator=";",
                     infer_schema=False)
    mapping = {"Année scolaire": "ANNEE_SCOLAIRE", "INE": "ID_ENFANT", "Sexe": "SEXE", "Date de naissance": "NE_LE",
               "Adresse": "ADRESSE_FOYER", "Code postal": "CP_FOYER", "Commune": "VILLE_FOYER",
               "Code INSEE commune": "INSEE_FOYER", "UAI école": "UAI_ECOLE", "Niveau": "NIVEAU", "Classe": "CLASSE",
               "Restauration scolaire": "CANTINE", "Accueil périscolaire": "PERISCOLAIRE",
               "Transport scolaire": "TRANSPORT"}
    other = df.select(list(mapping)).rename(mapping).with_columns(
        pl.col(["CANTINE", "PERISCOLAIRE", "TRANSPORT"]).replace({"Oui": "X", "Non": ""}))
    path = tmp_path / "periscolaire.csv"
    other.write_csv(path)
    r = read_export(path)
    assert r.profile == "logiciel-periscolaire"
    assert r.frame.equals(read_export(synth_dir / f"eleves-{YEAR}.csv").frame)


@pytest.mark.parametrize("case", ["missing_column", "duplicate", "unknown_level", "bad_uai", "future_birth",
                                  "wrong_encoding", "empty", "zero_bytes", "binary", "ragged"])
def test_bad_inputs_give_clear_errors_without_personal_values(synth_dir, tmp_path, case):
    lines = onde_lines(synth_dir)
    header = lines[0].split(";")
    rows = [ln.split(";") for ln in lines[1:40]]
    personal = {rows[3][1], rows[3][2], rows[3][3], rows[3][5], rows[3][7], rows[4][5]}
    expect_code, expect_line = None, None
    path = tmp_path / f"{case}.csv"
    if case == "missing_column":
        i = header.index("Niveau")
        write(path, [";".join(c for j, c in enumerate(r) if j != i) for r in [header] + rows])
        expect_code, expect_line = "missing-column", 1
    elif case == "duplicate":
        rows[10] = list(rows[3])
        write(path, [";".join(r) for r in [header] + rows])
        expect_code, expect_line = "duplicate-pupil", 5
    elif case == "unknown_level":
        rows[3][header.index("Niveau")] = "CM3"
        write(path, [";".join(r) for r in [header] + rows])
        expect_code, expect_line = "unknown-level", 5
    elif case == "bad_uai":
        uai = rows[3][header.index("UAI école")]
        letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
        rows[3][header.index("UAI école")] = uai[:7] + letters[(letters.index(uai[7]) + 1) % 23]
        write(path, [";".join(r) for r in [header] + rows])
        expect_code, expect_line = "uai-check-letter", 5
    elif case == "future_birth":
        rows[3][header.index("Date de naissance")] = "01/01/2099"
        write(path, [";".join(r) for r in [header] + rows])
        expect_code, expect_line = "future-date", 5
    elif case == "wrong_encoding":
        data = "\r\n".join(";".join(r) for r in [header] + rows).encode("cp1252")
        path.write_bytes(data.replace(b";", b";\x81", 1))  # 0x81: undefined in cp1252 and invalid UTF-8
        expect_code, expect_line = "ingest-encoding", 1
    elif case == "empty":
        write(path, [";".join(header), ""])
        expect_code = "ingest-no-rows"
    elif case == "zero_bytes":
        path.write_bytes(b"")
        expect_code = "ingest-empty"
    elif case == "binary":
        path.write_bytes(bytes(range(256)) * 10)
        expect_code = "ingest-binary"
    elif case == "ragged":
        rows[6] = rows[6] + ["en trop"]
        write(path, [";".join(r) for r in [header] + rows])
        expect_code, expect_line = "ragged-row", 8
    err = errors_of(path)
    codes = [p.code for p in err.report.errors]
    assert expect_code in codes, codes
    problem = next(p for p in err.report.errors if p.code == expect_code)
    assert problem.file and problem.file.endswith(path.name)
    if expect_line:
        assert problem.line == expect_line
    for lang in ("fr", "en"):
        text = err.report.render(lang) + err.report.to_json()
        for value in personal:
            assert value not in text, f"personal value leaked in {case}"
    # and through the CLI: non-zero exit, no traceback, message in both languages
    for lang in ("fr", "en"):
        proc = subprocess.run([sys.executable, "-m", "preau", "--lang", lang, "ingest", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert path.name in proc.stderr


def test_all_errors_of_a_file_are_reported_together(synth_dir, tmp_path):
    lines = onde_lines(synth_dir)
    header = lines[0].split(";")
    rows = [ln.split(";") for ln in lines[1:200]]
    for r in rows[:120]:
        r[header.index("Niveau")] = "CM3"
    rows[150][header.index("Date de naissance")] = "31/02/2018"
    err = errors_of(write(tmp_path / "many.csv", [";".join(r) for r in [header] + rows]))
    by_code = {p.code: p for p in err.report.errors}
    assert by_code["unknown-level"].count == 120
    assert by_code["invalid-date"].line == 152


def test_build_with_a_bad_export_writes_nothing(synth_dir, tmp_path):
    """`preau build` on a workspace whose export is broken: clear error, exit 2, no output at all."""
    root = Path(__file__).resolve().parents[2]
    for sub in ("publishers", "datasets", "schemas"):
        shutil.copytree(root / sub, tmp_path / sub)
    (tmp_path / "_build").mkdir()
    shutil.copytree(synth_dir, tmp_path / "_build" / "synth")
    bad = tmp_path / "_build" / "synth" / "eleves-2025-2026.csv"
    lines = onde_lines(synth_dir)
    fields = lines[5].split(";")
    fields[lines[0].split(";").index("Niveau")] = "CP7"
    lines[5] = ";".join(fields)
    write(bad, lines)
    proc = subprocess.run([sys.executable, "-m", "preau", "build", "."], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "eleves-2025-2026.csv" in proc.stderr and "CP7" in proc.stderr
    assert not (tmp_path / "_build" / "data").exists()
    assert not list((tmp_path / "_build").glob(".data*"))


def test_chunks_read_in_threads_give_the_single_thread_result(synth_dir, tmp_path, monkeypatch):
    """Many small chunks (threads finish out of order): same frame, same problems, same first lines."""
    import preau.ingest as ingest

    lines = onde_lines(synth_dir)
    header = lines[0].split(";")
    rows = [ln.split(";") for ln in lines[1:2001] if ln]
    for i in (40, 900, 1700):  # one unknown level in three different chunks
        rows[i][header.index("Niveau")] = f"X{i}"
    rows[1200][header.index("Date de naissance")] = "31/02/2018"
    bad = write(tmp_path / "bad.csv", [";".join(r) for r in [header] + rows])
    good = write(tmp_path / "good.csv", lines[:2001])
    monkeypatch.setattr(ingest, "CHUNK_BYTES", 8192)
    results = {}
    for threads in (1, 2, 4):
        monkeypatch.setattr(ingest, "INGEST_THREADS", threads)
        frame = read_export(good).frame
        problems = [(p.code, p.line, p.count, p.to_dict()) for p in errors_of(bad).report.errors]
        results[threads] = (frame, problems)
    frame1, problems1 = results[1]
    assert frame1.height == 2000
    level = next(p for p in problems1 if p[0] == "unknown-level")
    assert level[1:3] == (42, 3) and "42, 902, 1702" in level[3]["fr"]
    assert ("invalid-date", 1202) in [(p[0], p[1]) for p in problems1]
    for threads in (2, 4):
        assert results[threads][0].equals(frame1)
        assert results[threads][1] == problems1


def test_malformed_line_in_a_later_chunk_is_located(synth_dir, tmp_path, monkeypatch):
    import preau.ingest as ingest

    lines = onde_lines(synth_dir)
    lines = lines[:2001]
    lines[1500] = lines[1500] + ';"unclosed'
    monkeypatch.setattr(ingest, "CHUNK_BYTES", 8192)
    err = errors_of(write(tmp_path / "malformed.csv", lines))
    assert [p.code for p in err.report.errors][0] in ("csv-malformed", "ragged-row")
    assert err.report.errors[0].line is not None and err.report.errors[0].line >= 1490


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "iso8859-15"])
def test_transcoding_is_that_of_python_codecs(encoding):
    """The compiled re-encoding gives Python's bytes for every byte value, and stops (the caller then
    lets Python's codec raise) on the bytes the encoding leaves undefined."""
    from preau import ingest
    from preau.ingest import scan

    for b in range(256):
        data = b"ab;" + bytes([b]) * 2 + b"\r\n"
        got = scan.transcode_checked(data, encoding, b"", ";", 2)
        try:
            want = data.decode(encoding).encode("utf-8")
        except UnicodeDecodeError:
            assert got is None
        else:
            assert got[0] == want
            if b != ord('"'):  # the line count of the numpy check (what the fast pass replaces)
                assert got[1] == [r - 2 for r in ingest._ragged_rows(b"h;h\n" + want, ";", 2)]
    every = bytes(b for b in range(256) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)) * 1000
    assert scan.transcode_checked(every, "cp1252", b"", ";", 1)[0] == every.decode("cp1252").encode("utf-8")
    assert scan.transcode_checked(b"", encoding, b"", ";", 3) == (b"", [])
    # not a one-byte encoding with ASCII below 128: left to Python's codec
    assert scan.utf8_table("utf-16") is None and scan.transcode_checked(b"ab", "utf-16", b"", ";", 1) is None


def test_undefined_byte_far_in_the_file_reported_at_its_line(synth_dir, tmp_path, monkeypatch):
    """A byte cp1252 leaves undefined, past the head that the encoding detection reads: the chunk's
    fast pass stops, Python's codec names it, and the error gives its line (no value shown)."""
    from preau import ingest

    monkeypatch.setattr(ingest, "CHUNK_BYTES", 8192)
    lines = onde_lines(synth_dir)[:400]
    data = "\r\n".join(lines).encode("cp1252")
    line_no = 300
    at = sum(len(ln.encode("cp1252")) + 2 for ln in lines[:line_no - 1])  # start of line 300
    path = tmp_path / "eleves.csv"
    path.write_bytes(data[:at] + b"\x81" + data[at:])
    err = errors_of(path)
    problem = err.report.errors[0]
    assert problem.code == "ingest-encoding" and problem.line == line_no


def test_ragged_rows_found_with_crlf_and_blank_lines():
    from preau.ingest import _ragged_rows, scan

    header, body = b"a;b;c\r\n", b"1;2;3\r\n\r\n1;2\r\n\r\r\n1;2;3;4\n1;2;3\n\n"
    assert _ragged_rows(header + body, ";", 3) == [4, 6]
    # the compiled pass finds the same lines (0-based in the body), re-encoding or not, and the
    # last line without a line end
    assert scan.ragged_lines(body, ";", 3) == [2, 4]
    assert scan.transcode_checked(body, "cp1252", header, ";", 3) == (header + body, [2, 4])
    assert scan.ragged_lines(b"1;2;3\n1;2", ";", 3) == [1] and scan.ragged_lines(b"1;2;3\n\r", ";", 3) == []
    many = b"1;2\n" * (scan.MAX_LINES + 5)
    found = scan.ragged_lines(many, ";", 3)
    assert len(found) == scan.MAX_LINES + 5 and found[:3] == [0, 1, 2]  # all counted, the first located


def test_duplicate_pupils_found_whatever_the_hashes_say():
    """The hash check only skips the exact count when every (year, identifier) pair is distinct:
    duplicates in a year, none across years, rows without identifier never duplicates."""
    from preau.ingest import _duplicate_pupils

    frame = pl.DataFrame({"annee_scolaire": ["2025-2026", "2026-2027", "2026-2027", "2026-2027", "2026-2027", "2026-2027"],
                          "identifiant_eleve": ["A1", "A1", "B2", None, "", "B2"], "_line": [2, 3, 4, 5, 6, 7]})
    assert _duplicate_pupils(frame)["_line"].to_list() == [4, 7]
    assert _duplicate_pupils(frame.head(5)).height == 0  # the same pupil two years, blank identifiers
    nulls = pl.DataFrame({"annee_scolaire": ["2026-2027"] * 3, "identifiant_eleve": [None, None, ""], "_line": [2, 3, 4]},
                         schema={"annee_scolaire": pl.String, "identifiant_eleve": pl.String, "_line": pl.Int64})
    assert _duplicate_pupils(nulls).height == 0 and _duplicate_pupils(nulls.clear()).height == 0


def test_categorical_frame_holds_the_same_values(synth_dir):
    """``categorical=True`` (the build) keeps the few-valued columns Categorical: same values as text."""
    from preau.ingest import BY_VALUE

    text = read_export(synth_dir / f"eleves-{YEAR}.csv").frame
    cat = read_export(synth_dir / f"eleves-{YEAR}.csv", categorical=True).frame
    wanted = [c for c in BY_VALUE if c in KEPT_COLUMNS and c not in ("cantine", "periscolaire", "transport")]
    assert all(cat.schema[c] == pl.Categorical for c in wanted) and all(text.schema[c] == pl.String for c in wanted)
    assert cat.with_columns(pl.col(wanted).cast(pl.String)).equals(text)


def test_values_checked_once_per_distinct_value_keep_rows_apart(tmp_path):
    """Stripped and normalised per distinct value: spaces around a level or a school code, lower
    case, synonyms; the errors still name each row."""
    from preau.ingest import _Distinct

    col = pl.Series(["CP", " cp ", None, "CM2", "CP", "", "cours préparatoire"])
    d = _Distinct(col)
    assert d.rows(d.values).to_list() == ["CP", "cp", None, "CM2", "CP", "", "cours préparatoire"]
    assert d.mask(d.values == "CP").to_list() == [True, False, False, False, True, False, False]
    assert [d.values[i] for i in d.first_rows(d.values.is_in(["CM2", "cp"]))] == ["cp", "CM2"]


@pytest.mark.parametrize("tail", [b"\r\n", b""])
def test_chunks_cover_the_file_and_cut_at_line_ends_outside_quotes(tmp_path, monkeypatch, tail):
    """_csv_chunks (memory-mapped): the bodies put end to end are the file after its header; each
    but the last ends a line outside quotes (quoted fields hold line ends and `;` here); each
    chunk's first line number counts the lines before it. With or without a final line end."""
    import preau.ingest as ingest

    rows = [f'{i};"x\r\ny;{i}";{"z" * (i % 37)}' if i % 7 == 0 else f"{i};plain;{'z' * (i % 53)}" for i in range(3000)]
    body = "\r\n".join(rows).encode("cp1252") + tail
    path = tmp_path / "q.csv"
    path.write_bytes(b"a;b;c\r\n" + body)
    monkeypatch.setattr(ingest, "CHUNK_BYTES", 4096)
    info = ingest.sniff(path, "cp1252")
    chunks = list(ingest._csv_chunks(path, info))
    assert len(chunks) > 10 and b"".join(c[1][1] for c in chunks) == body
    line = 2
    for first, (header, part) in chunks:
        assert header == b"a;b;c\r\n" and first == line
        line += part.count(b"\n")
    for _, (_, part) in chunks[:-1]:
        assert part.endswith(b"\n") and part.count(b'"') % 2 == 0
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"a;b;c\r\n")
    assert list(ingest._csv_chunks(empty, info)) == []


def test_transcoding_writes_the_prefix_first():
    from preau.ingest import scan

    data = "é;ü;œ\r\n".encode("cp1252") * 1000
    assert scan.transcode_checked(data, "cp1252", b"h;\n", ";", 3) == (b"h;\n" + data.decode("cp1252").encode("utf-8"), [])
    assert scan.transcode_checked(b"", "cp1252", b"h;\n", ";", 3) == (b"h;\n", [])
    assert scan.transcode_checked(b"ok\x81", "cp1252", b"h;\n", ";", 1) is None
