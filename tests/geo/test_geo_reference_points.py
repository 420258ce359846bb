"""Street points of a prepared BAN reference (preau.geo.reference._street_points)."""

import numpy as np
import polars as pl


def _streets_by_polars(df: pl.DataFrame) -> pl.DataFrame:
    return (df.sort(["insee", "voie", "numero"], nulls_last=True, maintain_order=True)
            .group_by(["insee", "voie"], maintain_order=True)
            .agg(pl.len().cast(pl.UInt32).alias("n"),
                 *[pl.col(c).get(pl.len() // 2).alias(c) for c in ("x", "y", "lon", "lat", "id")],
                 pl.col("voie_full").first()))


def _ban_rows(n: int, communes: int, streets: int, numbers: tuple[int, int], seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    num = pl.Series(rng.integers(*numbers, n)).set(pl.Series(rng.random(n) < 0.05), None)
    return pl.DataFrame({
        "insee": [f"{v:05d}" for v in rng.integers(0, communes, n)],
        "voie": [f"rue {v}" for v in rng.integers(0, streets, n)],
        "numero": num.cast(pl.Int32), "x": rng.random(n), "y": rng.random(n), "lon": rng.random(n), "lat": rng.random(n),
        "id": [f"id{i}" for i in range(n)], "voie_full": [f"f{v}" for v in rng.integers(0, 9, n)],
    })


def test_street_points_are_the_sorted_groups_middle_rows():
    """reference._street_points (one packed-key sort) against polars' stable sort and grouping: ties
    of numbers in file order, no number last, negative numbers; and keys too wide to pack."""
    from preau.geo.reference import _street_points

    small = _ban_rows(30_000, 40, 300, (-5, 60), 1)  # many ties and nulls
    assert _street_points(small).equals(_streets_by_polars(small))
    wide = _ban_rows(80_000, 90_000, 90_000, (-2 ** 31 + 1, 2 ** 31 - 1), 2)  # 17 + 17 + 32 bits: the polars route
    assert _street_points(wide).equals(_streets_by_polars(wide))
    assert _street_points(small.head(0)).height == 0
