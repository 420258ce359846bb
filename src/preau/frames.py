"""Polars helpers shared by the stages (no stage of its own)."""

from __future__ import annotations

import numpy as np
import polars as pl


def distinct_positions(column: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """(the distinct values of ``column`` as text, null once if any; the position of each row's value
    among them, ``uint32``): what is computed once per distinct value goes back to the rows by a
    gather. A text column is cast to Categorical (its physical codes then index a small table); a
    Categorical column's own codes are used. Values are in no particular order."""
    cat = column if column.dtype == pl.Categorical else column.cast(pl.Utf8).cast(pl.Categorical)
    uniq = cat.unique()
    ids = uniq.to_physical()
    size = int(ids.max() or 0) + 2  # the last slot: null
    table = np.zeros(size, dtype=np.uint32)  # every row's code is one of uniq's
    table[ids.fill_null(size - 1).to_numpy()] = np.arange(len(uniq), dtype=np.uint32)
    return uniq.cast(pl.Utf8), table[cat.to_physical().fill_null(size - 1).to_numpy()]


def gather_positions(positions: np.ndarray) -> pl.Series:
    """Row positions for a polars ``gather``, null where negative (the gathered row is then null)."""
    positions = np.asarray(positions, dtype=np.int64)
    return pl.Series(positions).set(pl.Series(positions < 0), None)


def first_seen_rows(df: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, np.ndarray]:
    """The distinct rows of the ``keys`` columns, in first-seen order (nulls equal), and each row's
    position among them (``uint32``): one grouping, where a ``unique`` and a join on the keys cost
    two (national disclosure model, 3.3M cell keys: 1.45 → 0.65 s)."""
    groups = df.select(keys).with_row_index("__row").group_by(keys, maintain_order=True).agg("__row")
    pos = np.zeros(df.height, dtype=np.uint32)
    rows = groups.select(pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("__k"), "__row").explode("__row")
    pos[rows["__row"].to_numpy()] = rows["__k"].to_numpy()
    return groups.drop("__row"), pos


def first_distinct(df: pl.DataFrame, keys: list[str]) -> pl.Series:
    """``pl.struct(keys).is_first_distinct()`` (nulls equal), with a 64-bit hash of each row's keys
    first: a row whose hash no other row has is the first of its values, and the exact test runs only
    on the rows whose hash repeats (an identical row has the same hash, so it is among them, in
    order). Synthetic Nord BAN, 840k addresses: 0.095 → 0.054 s."""
    dup = df.select(keys).hash_rows(seed=0x5EED).is_duplicated()
    if not dup.any():
        return ~dup
    at = dup.arg_true()
    return (~dup).scatter(at, df[at].select(pl.struct(keys).is_first_distinct()).to_series())
