import polars as pl
import pytest

from preau.errors import PreauError
from preau.geo import geocode, load_reference, quality


def _ban(mini):
    return pl.read_csv(mini["ban"], separator=";", infer_schema=False)


def test_clean_addresses_geocode_to_the_exact_point(mini, mini_ref):
    ban = _ban(mini)
    inp = ban.select((pl.col("numero") + " " + pl.col("rep") + " " + pl.col("nom_voie")).alias("adresse"),
                     "code_postal", pl.col("nom_commune").alias("commune"))
    res = geocode(inp, mini_ref)
    assert res.height == ban.height
    assert (res["result_id"] == ban["id"]).all()
    assert (res["result_type"] == "housenumber").all()
    assert (res["result_code_insee"] == ban["code_insee"]).all()
    # by INSEE code alone too
    res2 = geocode(inp.drop("code_postal", "commune").with_columns(ban["code_insee"]), mini_ref)
    assert (res2["result_id"] == ban["id"]).all()


@pytest.mark.parametrize("adresse, expected", [
    ("12 av. St-Jean", "housenumber"),           # abbreviations
    ("12 AVENUE SAINT JAEN", "housenumber"),     # typo → fuzzy street
    ("14 bis Bd de la République", "housenumber"),
    ("14 quater Bd de la République", "housenumber"),  # index missing → the plain number
    ("141 rue des Lilas", "street"),             # far beyond the last number
    ("41 rue des Lilas", "interpolation"),       # one past the end, same parity neighbour
    ("Rue des Lilas", "street"),                 # no number
    ("999 Rue Qui N'Existe Pas", "municipality"),
    ("", "municipality"),
])
def test_noisy_variants_get_the_right_type(mini_ref, adresse, expected):
    res = geocode(pl.DataFrame({"adresse": [adresse], "code_postal": ["65900"], "commune": ["St Exemple"]}), mini_ref)
    assert res["result_type"][0] == expected
    assert res["result_code_insee"][0] == "65902"
    assert 0.0 < res["result_score"][0] <= 1.0


def test_interpolation_between_neighbours(mini, mini_ref):
    """A number removed from the reference lands between its same-parity neighbours."""
    ban = _ban(mini)
    keep = ~((ban["numero"] == "11") & (ban["nom_voie"] == "Rue des Lilas") & (ban["code_insee"] == "65901"))
    ref = load_reference_frame(ban.filter(keep), mini)
    res = geocode(pl.DataFrame({"adresse": ["11 rue des lilas"], "code_insee": ["65901"]}), ref)
    assert res["result_type"][0] == "interpolation"
    row = ban.filter(~keep)
    assert abs(res["x"][0] - float(row["x"][0])) < 1.0 and abs(res["y"][0] - float(row["y"][0])) < 1.0


def load_reference_frame(df, mini):
    path = mini["ban"].with_name("ban-sans-11.csv")
    df.write_csv(path, separator=";")
    return load_reference(path)


def test_unknown_commune_is_not_found(mini_ref):
    res = geocode(pl.DataFrame({"adresse": ["3 rue des Lilas"], "code_postal": ["01000"], "commune": ["Ailleurs"]}), mini_ref)
    assert res["result_type"][0] == "not_found" and res["result_score"][0] == 0.0


def test_commune_fuzzy_and_duplicates_keep_order(mini_ref):
    df = pl.DataFrame({"adresse": ["3 rue des Lilas", "4 rue des Lilas", "3 rue des Lilas"],
                       "code_postal": ["65900"] * 3, "commune": ["Bourg Fictf", "Saint-Exemple", "Bourg Fictf"]})
    res = geocode(df, mini_ref)
    assert res["result_code_insee"].to_list() == ["65901", "65902", "65901"]
    assert res["result_id"][0] == res["result_id"][2]


def test_quality_report_counts_only(mini_ref):
    df = pl.DataFrame({"adresse": ["3 rue des Lilas", "Rue des Lilas", "1 nowhere"], "code_insee": ["65901", "65901", "01000"]})
    q = quality(geocode(df, mini_ref))
    assert q["counts"]["housenumber"] == 1 and q["counts"]["street"] == 1 and q["unmatched"] == 1
    assert abs(sum(q["shares"].values()) - 1.0) < 1e-3
    assert "Lilas" not in str(q)


def test_ban_missing_columns_is_a_clear_error(mini, tmp_path):
    ban = _ban(mini)
    p = tmp_path / "ban.csv"
    ban.drop("nom_voie", "x", "y", "lon", "lat").write_csv(p, separator=";")
    with pytest.raises(PreauError) as err:
        load_reference(p)
    text = err.value.render("fr")
    assert "nom_voie" in text and "lon/lat" in text and "ban.csv:1" in text


def test_ban_optional_columns_missing_repaired_with_warning(mini, tmp_path):
    ban = _ban(mini)
    p = tmp_path / "ban.csv"
    ban.drop("id", "rep", "code_postal", "x", "y").write_csv(p, separator=";")
    ref = load_reference(p)
    codes = {w.field for w in ref.report.warnings}
    assert {"id", "rep", "code_postal"} <= codes
    assert ref.size > 0 and ref.addresses["x"].is_not_null().all()  # x/y recomputed from lon/lat
    res = geocode(pl.DataFrame({"adresse": ["3 rue des Lilas"], "code_insee": ["65901"]}), ref)
    assert res["result_type"][0] == "housenumber"


def test_ban_missing_file_and_bad_input_columns(mini_ref, tmp_path):
    with pytest.raises(PreauError):
        load_reference(tmp_path / "absent.csv")
    with pytest.raises(PreauError):
        geocode(pl.DataFrame({"rue": ["x"]}), mini_ref)


def test_gzipped_ban_file_reads_the_same(mini, mini_ref, tmp_path):
    import gzip

    gz = tmp_path / "adresses-65.csv.gz"
    gz.write_bytes(gzip.compress(mini["ban"].read_bytes()))
    ref = load_reference(gz)
    assert ref.size == mini_ref.size and ref.report.ok


def test_ban_file_with_bytes_not_utf8_is_read_lossily(mini, mini_ref, tmp_path):
    """A BAN file is read as strict UTF-8 first; one with bytes that are not UTF-8 (an export
    re-saved in Windows-1252) is read again with those bytes replaced: every address is still
    there, the accented names lose only their accents' letters."""
    text = mini["ban"].read_text(encoding="utf-8")
    assert any(ord(ch) > 127 for ch in text)  # accents to break
    p = tmp_path / "adresses-65.csv"
    p.write_bytes(text.encode("cp1252", errors="replace"))
    ref = load_reference(p)
    assert ref.size == mini_ref.size
    assert ref.addresses["insee"].to_list() == mini_ref.addresses["insee"].to_list()
    assert ref.addresses["id"].to_list() == mini_ref.addresses["id"].to_list()


def test_ban_file_with_quotes_keeps_a_quoted_separator(mini, mini_ref, tmp_path):
    """A file without any double quote is parsed without quote handling; one with a quoted field
    holding the separator keeps that field whole (the quotes are then honoured)."""
    from preau.geo.reference import _has_quote

    plain = tmp_path / "plain" / "adresses-65.csv"  # the fixture's file without its quoted empty fields
    plain.parent.mkdir()
    plain.write_text(mini["ban"].read_text(encoding="utf-8").replace('""', ""), encoding="utf-8")
    assert _has_quote(mini["ban"]) and not _has_quote(plain)
    again = load_reference(plain)
    for name in ("addresses", "streets"):
        assert getattr(again, name).equals(getattr(mini_ref, name))
    lines = mini["ban"].read_text(encoding="utf-8").split("\n")
    header = lines[0].split(";")
    row = lines[1].split(";")
    at = header.index("nom_voie")
    row[at] = '"' + row[at] + ' ; bis"'
    lines[1] = ";".join(row)
    p = tmp_path / "adresses-65.csv"
    p.write_text("\n".join(lines), encoding="utf-8")
    assert _has_quote(p)
    ref = load_reference(p)
    assert ref.size == mini_ref.size and ref.report.ok
    assert ref.addresses["voie"][0].endswith(" bis")  # the quoted name, whole
    assert ref.addresses.drop("voie").row(0) == mini_ref.addresses.drop("voie").row(0)  # and the row's other fields


def test_former_commune_name_of_a_commune_nouvelle(mini, tmp_path):
    ban = pl.read_csv(mini["ban"], separator=";", infer_schema=False).with_columns(
        pl.when(pl.col("code_insee") == "65901").then(pl.lit("Vieux-Hameau")).otherwise(pl.lit(""))
        .alias("nom_ancienne_commune"))
    p = tmp_path / "ban.csv"
    ban.write_csv(p, separator=";")
    res = geocode(pl.DataFrame({"adresse": ["3 rue des Lilas"], "code_postal": ["65900"], "commune": ["VIEUX HAMEAU"]}),
                  load_reference(p))
    assert res["result_code_insee"][0] == "65901" and res["result_type"][0] == "housenumber"


def test_duplicate_addresses_keep_the_first_row(mini, tmp_path):
    """Two BAN rows for one address (same commune, street, number, index): the first one in the
    file is kept, with a warning counting the duplicates."""
    ban = pl.read_csv(mini["ban"], separator=";", infer_schema=False)
    first = ban.filter(pl.col("numero").cast(pl.Int32, strict=False).is_not_null()).head(1)
    twin = first.with_columns(pl.lit("dup-1").alias("id"), (pl.col("x").cast(pl.Float64) + 500).cast(pl.Utf8).alias("x"))
    p = tmp_path / "ban-doublon.csv"
    pl.concat([ban, twin]).write_csv(p, separator=";")
    ref = load_reference(p)
    assert ref.size == load_reference(mini["ban"]).size
    assert "dup-1" not in ref.addresses["id"].to_list() and first["id"][0] in ref.addresses["id"].to_list()
    dup = [w for w in ref.report.warnings if w.code == "geo-reference-duplicates"]
    assert len(dup) == 1 and dup[0].fr.startswith("1 adresse(s)")
    # the twin written first wins
    p2 = tmp_path / "ban-doublon-avant.csv"
    pl.concat([twin, ban]).write_csv(p2, separator=";")
    assert "dup-1" in load_reference(p2).addresses["id"].to_list()


@pytest.mark.parametrize("threads_from", [0, 10**12])
def test_fuzzy_streets_choose_as_token_sort_ratio_and_ratio_would(monkeypatch, threads_from):
    """The score matrices (words sorted once, float32) give the choices and scores of rapidfuzz's
    token_sort_ratio and ratio computed pair by pair in float64 (first best, token score on ties)."""
    import random
    from types import SimpleNamespace

    from rapidfuzz import fuzz

    import importlib

    gc = importlib.import_module("preau.geo.geocode")
    monkeypatch.setattr(gc, "FUZZY_THREADS_FROM", threads_from)
    rnd = random.Random(7)
    words = ["rue", "avenue", "chemin", "des", "de", "la", "lilas", "jean", "saint", "moulin", "pres", "gare",
             "ecoles", "victor", "hugo", "pasteur", "republique", "tilleuls", "peupliers", "fontaine"]

    def street() -> str:
        return " ".join(rnd.choice(words) for _ in range(rnd.randint(2, 4)))

    def typo(s: str) -> str:
        i = rnd.randrange(len(s))
        op = rnd.randrange(4)
        return (s[:i] + s[i + 1:] if op == 0 else s[:i] + rnd.choice("aeiourst") + s[i:] if op == 1
                else " ".join(reversed(s.split())) if op == 2 else s[:i] + rnd.choice("aeiourst") + s[i + 1:])

    refs, asked = [], []
    for insee in ("65001", "65002", "65003"):
        names = sorted({street() for _ in range(60)})
        refs += [(insee, n, n.replace(" ", "")) for n in names]
        for _ in range(40):
            q = typo(rnd.choice(names))
            asked.append((insee, q, q.replace(" ", "") if rnd.random() < 0.8 else None))
    ref = SimpleNamespace(streets=pl.DataFrame(refs, schema=["insee", "voie", "voie_full"], orient="row"))
    pairs = pl.DataFrame(asked, schema=["insee", "voie", "voie_full"], orient="row").unique()
    got = {(r[0], r[1], r[2]): (r[3], r[4]) for r in gc._fuzzy_streets(pairs, ref).iter_rows()}
    expected = {}
    for insee, q, qf in pairs.iter_rows():
        cand = [r for r in refs if r[0] == insee]
        sa = [fuzz.token_sort_ratio(q, c[1], score_cutoff=gc.FUZZY_STREET_CUTOFF) for c in cand]
        sb = [fuzz.ratio(qf or "", c[2], score_cutoff=gc.FUZZY_STREET_CUTOFF) for c in cand]
        ia, ib = max(range(len(cand)), key=lambda i: (sa[i], -i)), max(range(len(cand)), key=lambda i: (sb[i], -i))
        best, score = (ia, sa[ia]) if sa[ia] >= sb[ib] or not qf else (ib, sb[ib])
        if score >= gc.FUZZY_STREET_CUTOFF:
            expected[(insee, q, qf)] = (cand[best][1], min(score / 100.0, 0.99))
    assert len(expected) > 50  # most typos are within the cutoff, some are not
    assert got == expected


def test_sorted_tokens_expr_is_sorted_tokens_of_each_value():
    """The street keys' words sorted by polars (every street at once) are those of the Python helper
    the queries use: the same order (code points), empty words and values handled alike."""
    import importlib

    gc = importlib.import_module("preau.geo.geocode")
    values = ["rue victor hugo", "", "lilas", "chemin  des   pres ", " zz a b", "eglise élise ecole", "10 rue 9 b"]
    got = pl.select(gc._sorted_tokens_expr(pl.Series(values))).to_series().to_list()
    assert got == [gc._sorted_tokens(v) for v in values]
    assert got[0] == "hugo rue victor"


def test_fuzzy_commune_tie_is_decided_the_same_way_whatever_the_row_order():
    """Two communes of one postcode whose names score the same against the input: the first name
    in a fixed order wins, however the reference's frames happen to be ordered."""
    from types import SimpleNamespace

    from preau.geo.geocode import _resolve_communes

    postcodes = pl.DataFrame({"insee": ["65002", "65001", "65003"], "cp": ["65900", "65900", "65900"],
                              "ck": ["bourg alphe", "bourg alpha", "autre ville"]})
    keys = pl.DataFrame({"ik_in": ["", ""], "cp_in": ["65900", ""], "ck_in": ["bourg alph", "bourg alph"]})
    seen = set()
    for seed in range(12):
        ref = SimpleNamespace(communes=postcodes.select("insee").sample(fraction=1.0, shuffle=True, seed=seed),
                              postcodes=postcodes.sample(fraction=1.0, shuffle=True, seed=seed))
        out = _resolve_communes(keys, ref).sort("cp_in")
        seen.add(tuple(out["insee"].to_list()))
    assert seen == {("65001", "65001")}  # "bourg alpha" sorts before "bourg alphe"


def _by_input_with_joins(res: pl.DataFrame, u: pl.DataFrame, n: int) -> pl.DataFrame:
    """The former ending of geocode_distinct: a join of the street, a unique on k, a join in order."""
    res = res.join(u.select("k", pl.col("voie_ref").alias("result_voie")), on="k", how="left")
    res = res.unique("k", keep="first", maintain_order=True)
    res = pl.DataFrame({"k": pl.Series(range(n), dtype=pl.UInt32)}).join(
        res, on="k", how="left", maintain_order="left").with_columns(
        pl.col("result_type").fill_null("not_found"), pl.col("result_score").fill_null(0.0).round(3).clip(0.0, 1.0))
    return res.drop("k")


def test_results_gathered_by_input_as_the_joins_gave_them():
    import numpy as np

    from preau.geo.geocode import _OUT, _by_input

    rng = np.random.default_rng(7)
    n = 500
    # results for some inputs only, some inputs twice (the first one counts), in no order
    ks = np.concatenate([rng.permutation(n)[:300], rng.integers(0, n, 40)]).astype(np.uint32)
    res = pl.DataFrame({"k": ks, "result_type": rng.choice(["housenumber", "street"], len(ks)),
                        "result_score": rng.random(len(ks)) * 1.2, "result_code_insee": pl.Series(rng.choice(["65440", ""], len(ks))).replace("", None),
                        "result_id": [f"id{i}" for i in range(len(ks))], "x": rng.random(len(ks)),
                        "y": rng.random(len(ks)), "lon": rng.random(len(ks)), "lat": rng.random(len(ks))})
    u = pl.DataFrame({"k": rng.permutation(n).astype(np.uint32)}).with_columns(
        pl.format("voie-{}", pl.col("k")).alias("voie_ref"))
    expected = _by_input_with_joins(res, u, n)
    got = _by_input(res, u, n)
    assert got.columns == _OUT + ["result_voie"]
    assert got.equals(expected.select(got.columns))
    assert (got["result_type"] == "not_found").sum() == n - len(set(ks.tolist()))
    assert _by_input(res, None, n).equals(expected.select(_OUT))
