"""The prepared BAN reference kept between builds (load_reference(..., cache_dir=...)).
Generated territory only (tests/geo/geo_fixtures.py)."""

import os

import polars as pl
import pytest

from preau.errors import PreauError
from preau.geo import geocode, load_reference
from preau.geo import reference as reference_mod

FRAMES = ("addresses", "streets", "communes", "postcodes")


def _same(a, b):
    for n in FRAMES:
        fa, fb = getattr(a, n), getattr(b, n)
        assert fa.schema == fb.schema, n
        assert fa.sort(fa.columns).equals(fb.sort(fb.columns)), n  # group-by order is not fixed
    assert a.sources == b.sources and a.report.problems == b.report.problems


def _entries(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_second_load_reads_the_prepared_reference(mini, tmp_path, monkeypatch):
    src = tmp_path / "adresses-65.csv"
    # without x/y nor id: the reference warns (recomputed coordinates, generated ids) — the warnings
    # come back from the cache too
    pl.read_csv(mini["ban"], separator=";", infer_schema=False).drop("id", "x", "y").write_csv(src, separator=";")
    cache = tmp_path / "cache"
    fresh = load_reference(src)
    assert fresh.report.warnings
    first = load_reference(src, cache_dir=cache)
    _same(first, fresh)
    assert len(_entries(cache)) == 1
    # the second load must not parse the CSV again
    calls = []
    real = reference_mod._load_reference
    monkeypatch.setattr(reference_mod, "_load_reference", lambda paths: calls.append(paths) or real(paths))
    again = load_reference(src, cache_dir=cache)
    assert calls == []
    _same(again, fresh)
    q = pl.DataFrame({"adresse": ["3 rue des Lilas", "12 avenue des Pyrénées"], "code_insee": ["65901", "65901"]})
    assert geocode(q, again).equals(geocode(q, fresh))


def test_changed_file_is_prepared_again_and_replaces_its_entry(mini, tmp_path):
    src = tmp_path / "adresses-65.csv"
    ban = pl.read_csv(mini["ban"], separator=";", infer_schema=False)
    ban.write_csv(src, separator=";")
    cache = tmp_path / "cache"
    load_reference(src, cache_dir=cache)
    before = _entries(cache)
    ban.head(ban.height // 2).write_csv(src, separator=";")  # a new BAN release: fewer addresses
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ref = load_reference(src, cache_dir=cache)
    _same(ref, load_reference(src))
    after = _entries(cache)
    assert len(after) == 1 and after != before  # the former entry of this file is gone


def test_damaged_entry_is_prepared_again(mini, tmp_path):
    cache = tmp_path / "cache"
    ref = load_reference(mini["ban"], cache_dir=cache)
    (entry,) = cache.iterdir()
    (entry / "streets.parquet").write_bytes(b"not parquet")
    _same(load_reference(mini["ban"], cache_dir=cache), ref)
    _same(load_reference(mini["ban"], cache_dir=cache), ref)  # and written back whole


def test_errors_are_not_cached(mini, tmp_path):
    src = tmp_path / "ban.csv"
    pl.read_csv(mini["ban"], separator=";", infer_schema=False).drop("nom_voie").write_csv(src, separator=";")
    cache = tmp_path / "cache"
    for _ in range(2):
        with pytest.raises(PreauError):
            load_reference(src, cache_dir=cache)
    assert _entries(cache) == []


def test_decimal_commas_and_unreadable_coordinates(tmp_path):
    """Coordinates written with a decimal comma read as with a point; an x that is no number is
    derived from lon/lat (as an empty one), the other rows keep theirs."""
    head = "id;numero;rep;nom_voie;code_insee;code_postal;nom_commune;x;y;lon;lat\n"
    rows = ["65440_0001_00001;1;;Rue A;65440;65000;Tarbes;{x};6240000.5;0.07;43.23",
            "65440_0001_00002;2;;Rue A;65440;65000;Tarbes;460010.25;6240010.5;0.07;43.23"]
    point = tmp_path / "point.csv"
    point.write_text(head + "\n".join(r.format(x="460000.5") for r in rows) + "\n", encoding="utf-8")
    comma = tmp_path / "comma.csv"
    comma.write_text(head + "\n".join(r.format(x="460000,5").replace("460010.25", "460010,25") for r in rows) + "\n",
                     encoding="utf-8")
    a, b = load_reference(point), load_reference(comma)
    assert a.addresses.select("x", "y").equals(b.addresses.select("x", "y"))
    assert a.addresses["x"].to_list() == [460000.5, 460010.25]
    bad = tmp_path / "bad.csv"
    bad.write_text(head + "\n".join(r.format(x="n/a") for r in rows) + "\n", encoding="utf-8")
    c = load_reference(bad)
    x = c.addresses["x"].to_list()
    assert len(x) == 2 and x[1] == 460010.25 and 400_000 < x[0] < 520_000 and x[0] != 460000.5


def test_coordinates_with_spaces_read_as_numbers(tmp_path):
    """Coordinates read as numbers by the CSV reader, or as text when one is not a number (a
    trailing space): the same values either way; an x that is no number still leaves its row's
    others as they are."""
    head = "id;numero;rep;nom_voie;code_insee;code_postal;nom_commune;x;y;lon;lat\n"
    rows = ["65440_0001_00001;1;;Rue A;65440;65000;Tarbes;{x};6240000.5;0.07;43.23",
            "65440_0001_00002;2;;Rue A;65440;65000;Tarbes;460010.25;6240010.5;0.07;43.23"]
    files = {}
    for name, x in (("plain", "460000.5"), ("leading", " 460000.5"), ("trailing", "460000.5 ")):
        files[name] = tmp_path / f"{name}.csv"
        files[name].write_text(head + "\n".join(r.format(x=x) for r in rows) + "\n", encoding="utf-8")
    refs = {name: load_reference(p) for name, p in files.items()}
    for name in ("leading", "trailing"):
        assert refs[name].addresses.select("x", "y", "lon", "lat").equals(refs["plain"].addresses.select("x", "y", "lon", "lat"))
        assert not refs[name].report.problems
    assert refs["plain"].addresses["x"].to_list() == [460000.5, 460010.25]
