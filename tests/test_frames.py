"""Polars helpers shared by the stages (preau.frames)."""

import numpy as np
import polars as pl

from preau.frames import first_distinct


def test_first_distinct_is_is_first_distinct_with_repeats_and_nulls():
    rng = np.random.default_rng(4)
    n = 50_000
    df = pl.DataFrame({
        "a": rng.integers(0, 30, n).astype(str).tolist(),
        "b": pl.Series(rng.integers(0, 40, n)).set(pl.Series(rng.random(n) < 0.05), None),
        "c": [None if v < 0.1 else ("x" if v < 0.5 else "y") for v in rng.random(n)],
    })
    want = df.select(pl.struct(["a", "b", "c"]).is_first_distinct()).to_series()
    got = first_distinct(df, ["a", "b", "c"])
    assert got.dtype == pl.Boolean and got.to_list() == want.to_list()
    assert 0 < int(got.sum()) < n  # repeats (the exact path) and first rows both occur
    unique = df.with_row_index("i").select("i", "a")
    assert first_distinct(unique, ["i", "a"]).all()  # no repeat: the hash alone decides
    assert first_distinct(df.head(0), ["a"]).len() == 0

