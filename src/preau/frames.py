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
