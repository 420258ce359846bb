import numpy as np
import polars as pl

from preau.geo.normalize import commune_key, insee_key, postcode_key, split_address, street_key


def _split(values):
    df = pl.DataFrame({"a": values}).select(split_address(pl.col("a")).alias("s")).unnest("s")
    return df.select("numero", "rep", "voie").rows()


def test_street_key_accents_abbreviations_articles():
    keys = pl.DataFrame({"v": ["Avenue Saint-Jean", "AV. ST JEAN", "av st-jean", "Bd de la République",
                               "BOULEVARD REPUBLIQUE", "Place de l'Église", "pl. eglise", "Chem. des Prés",
                               "Rte de Lourdes", "Fg St-Martin", "Sq. des Érables", "Imp. du Moulin", "All. des Tilleuls"]}
                      ).select(street_key(pl.col("v")))["v"].to_list()
    assert keys[0] == keys[1] == keys[2] == "avenue saint jean"
    assert keys[3] == keys[4] == "boulevard republique"
    assert keys[5] == keys[6] == "place eglise"
    assert keys[7] == "chemin pres"
    assert keys[8] == "route lourdes"
    assert keys[9] == "faubourg saint martin"
    assert keys[10] == "square erables"
    assert keys[11] == "impasse moulin"
    assert keys[12] == "allee tilleuls"


def test_split_address_numbers_and_repetition():
    rows = _split(["12 bis rue des Lilas", "12B rue des Lilas", "12 ter, rue des Lilas", "7 quater av. St-Jean",
                   "3-5 r. du Moulin", "rue des Lilas", "12 r des Lilas", "12 bd Gambetta", None])
    assert rows[0] == (12, "b", "rue lilas")
    assert rows[1] == (12, "b", "rue lilas")
    assert rows[2] == (12, "t", "rue lilas")
    assert rows[3] == (7, "q", "avenue saint jean")
    assert rows[4] == (3, "", "rue moulin")
    assert rows[5] == (None, "", "rue lilas")
    assert rows[6] == (12, "", "rue lilas")  # "r" is the street type, not a repetition index
    assert rows[7] == (12, "", "boulevard gambetta")
    assert rows[8] == (None, "", "")


def test_codes_and_commune_names():
    df = pl.DataFrame({"cp": ["6500", "65000", "x", None], "insee": ["1053", "2A004", "abc", None],
                       "c": ["St-Lary-Soulan", "SAINT LARY SOULAN CEDEX 3", "Saint-Lary", None]})
    out = df.select(postcode_key(pl.col("cp")), insee_key(pl.col("insee")), commune_key(pl.col("c")))
    assert out["cp"].to_list() == ["06500", "65000", "", ""]
    assert out["insee"].to_list() == ["01053", "2A004", "", ""]
    assert out["c"].to_list()[:2] == ["saint lary soulan", "saint lary soulan"]


def test_full_key_survives_typos_across_words():
    df = pl.DataFrame({"a": ["18 Rue desP rés", "18 Rue des Prés"]}).select(split_address(pl.col("a")).alias("s")).unnest("s")
    assert df["voie_full"][0] == df["voie_full"][1] == "ruedespres"


def test_distinct_rows_numbers_each_row_by_its_first_seen_value():
    from preau.geo.normalize import distinct_rows, on_distinct, street_key

    rng = np.random.default_rng(5)
    names = np.array(["Rue A", "rue a", None, "Av. du Port", "12 bis"], dtype=object)
    df = pl.DataFrame({"v": names[rng.integers(0, 5, 2_000)].tolist(), "c": rng.integers(0, 3, 2_000).tolist()})
    values, pos = distinct_rows(df, ["v", "c"])
    rows = list(zip(df["v"].to_list(), df["c"].to_list()))
    first_seen = list(dict.fromkeys(rows))  # None equal to None, as in a join with nulls_equal
    assert list(zip(values["v"].to_list(), values["c"].to_list())) == first_seen
    assert [first_seen[i] for i in pos.tolist()] == rows
    # on_distinct gives what a row-by-row run gives
    keyed = on_distinct(df, {"k": ("v", street_key)})
    assert keyed["k"].to_list() == df.select(street_key(pl.col("v"))).to_series().to_list()
    empty, none = distinct_rows(df.head(0), ["v"])
    assert empty.height == 0 and len(none) == 0


def test_distinct_rows_of_sorted_runs_is_that_of_the_plain_grouping():
    """Rows in runs of equal keys (a BAN file sorted by commune and street) take the run route of
    distinct_rows: same values, same order, same positions as grouping every row (nulls too, a
    null on the first row included)."""
    from preau.frames import first_seen_rows
    from preau.geo import normalize

    rng = np.random.default_rng(7)
    names = np.array([None, "Rue A", "rue a", "Av. du Port", "12 bis"], dtype=object)
    # runs of random lengths, values repeating across runs; the first run is null
    lengths = rng.integers(1, 30, 300)
    v = np.repeat(names[np.r_[0, rng.integers(0, 5, 299)]], lengths).tolist()
    c = np.repeat(rng.integers(0, 2, 300), lengths).tolist()
    df = pl.DataFrame({"v": v, "c": c})
    for keys in (["v"], ["v", "c"], ["c"]):
        values, pos = normalize.distinct_rows(df, keys)
        runs = 1 + sum(any(a != b for a, b in zip(r, s)) for r, s in zip(df.select(keys).rows()[1:], df.select(keys).rows()))
        assert runs <= df.height // 2  # the run route was taken
        plain, plain_pos = first_seen_rows(df, keys)
        assert values.equals(plain)
        assert (pos == plain_pos).all()
        rows = df.select(keys).rows()
        assert [values.row(i) for i in pos.tolist()] == rows


def _fuzz(n: int, seed: int) -> list[str | None]:
    import random

    rnd = random.Random(seed)
    alpha = list("0123456789 abqtzBIS-/,'.éÉàœß\t\n_") + ["bis", "ter", "quater", " à ", "rue", "  ", "\u00a0", "’", "Ω"]
    return ["".join(rnd.choice(alpha) for _ in range(rnd.randint(0, 14))) for _ in range(n)] + [None, "", " "]


def test_base_is_every_run_of_other_characters_made_one_space():
    """_base's punctuation pattern (the runs that change only) against the plain definition, in Python."""
    import re

    from preau.geo.normalize import _ACCENTS, _base

    values = _fuzz(20_000, 3)
    got = pl.DataFrame({"a": values}, schema={"a": pl.Utf8}).select(_base(pl.col("a")))["a"].to_list()

    def plain(v):
        v = (v or "").lower()
        for k, r in _ACCENTS.items():
            v = v.replace(k, r)
        return re.sub(r"[^a-z0-9]+", " ", v).strip()

    assert got == [plain(v) for v in values]


def test_split_number_is_the_struct_of_its_fields():
    """split_number builds its struct from one regex pass; the same as a struct of its fields."""
    from preau.geo.normalize import _NUMBER_RE, REPETITION, _base, split_number

    values = _fuzz(20_000, 5) + ["12", "12b", "12 b rue", "123456 rue", "12-14 rue x", "12 à 14 rue", "12bis", "12 bisou"]
    e = pl.col("a")
    parts = _base(e.str.replace(r"^\s*(\d{1,5})\s*(?:[-/]|à|a)\s*\d{1,5}\b", "${1}")).str.extract_groups(_NUMBER_RE)
    plain = pl.struct(numero=parts.struct.field("num").cast(pl.Int32, strict=False),
                      rep=parts.struct.field("rep").fill_null("").replace(REPETITION).str.slice(0, 1),
                      rest=parts.struct.field("rest").fill_null(""))
    df = pl.DataFrame({"a": values}, schema={"a": pl.Utf8})
    assert df.select(split_number(e).alias("s")).unnest("s").equals(df.select(plain.alias("s")).unnest("s"))
