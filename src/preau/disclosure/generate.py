"""Generated count tables for tests and benchmarks (random counts; no personal data).

:func:`school_level_tables` draws a school × level table with a realistic size distribution
(many small rural schools, maternelle / élémentaire / primaire, rare TPS, ULIS in ~10 % of
schools), schools grouped in communes, margins for cycles, communes and the whole territory —
and the matching commune × level table (the same commune totals: linked tables).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from preau.codes import ALL_LEVELS, CYCLE
from preau.disclosure.hierarchy import ROOT, CountTable, Hierarchy, Policy

NODES = list(ALL_LEVELS) + ["C1", "C2", "C3", ROOT]


def _level_matrix(leaf: np.ndarray) -> np.ndarray:
    """Leaf counts (n × 10 levels) → counts for the 14 niveau nodes."""
    idx = {lvl: i for i, lvl in enumerate(ALL_LEVELS)}
    cols = [leaf[:, idx[lvl]] for lvl in ALL_LEVELS]
    for cyc in ("C1", "C2", "C3"):
        cols.append(sum(leaf[:, idx[lvl]] for lvl in ALL_LEVELS if CYCLE[lvl] == cyc))
    cols.append(leaf.sum(axis=1))
    return np.stack(cols, axis=1)


def school_leaves(n_schools: int, n_communes: int, seed: int = 0,
                  counts_seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(leaf counts n_schools × 10 levels, commune index of each school). ``counts_seed`` draws
    other counts for the same schools and communes (another school year)."""
    rng = np.random.default_rng(seed)
    n_communes = max(1, min(n_communes, n_schools))
    # every commune has a school; the others go to communes by a heavy-tailed "population"
    pop = rng.pareto(1.1, n_communes) + 1.0
    extra = rng.choice(n_communes, n_schools - n_communes, p=pop / pop.sum())
    commune = np.concatenate([np.arange(n_communes), extra])
    rng.shuffle(commune)
    urban = np.minimum(pop[commune] / 20.0, 1.0)
    per_level = np.exp(rng.normal(np.log(6 + 18 * urban), 0.5))
    kind = rng.choice(3, n_schools, p=[0.3, 0.35, 0.35])  # maternelle, élémentaire, primaire
    leaf = np.zeros((n_schools, len(ALL_LEVELS)), dtype=np.int64)
    has_ulis = rng.random(n_schools) < 0.1
    has_tps = rng.random(n_schools) < 0.3
    if counts_seed is not None:
        rng = np.random.default_rng([seed, counts_seed])
    for j, lvl in enumerate(ALL_LEVELS):
        if lvl == "ULIS":
            has = (kind > 0) & has_ulis
            leaf[:, j] = np.where(has, rng.poisson(11, n_schools), 0)
            continue
        mat = lvl in ("TPS", "PS", "MS", "GS")
        offered = (kind != 1) if mat else (kind != 0)
        lam = per_level * (0.25 if lvl == "TPS" else 1.0)
        if lvl == "TPS":
            offered &= has_tps
        leaf[:, j] = np.where(offered, rng.poisson(lam), 0)
    return leaf, commune


def school_level_tables(n_schools: int = 2000, n_communes: int = 1500, seed: int = 0, k: int = 5,
                        with_communes_in_school_table: bool = True, counts_seed: int | None = None
                        ) -> tuple[CountTable, CountTable]:
    """(school × level table with commune and national margins, commune × level table)."""
    leaf, commune = school_leaves(n_schools, n_communes, seed, counts_seed)
    n_communes = int(commune.max()) + 1
    uai = [f"E{i:07d}" for i in range(n_schools)]
    com = [f"{10000 + c:05d}" for c in range(n_communes)]
    s_counts = _level_matrix(leaf)
    c_leaf = np.zeros((n_communes, leaf.shape[1]), dtype=np.int64)
    np.add.at(c_leaf, commune, leaf)
    c_counts = _level_matrix(c_leaf)
    t_counts = _level_matrix(leaf.sum(axis=0, keepdims=True))

    def long(names: list[str], counts: np.ndarray, col: str) -> pl.DataFrame:
        return pl.DataFrame({
            col: np.repeat(np.array(names, dtype=object), len(NODES)).tolist(),
            "niveau": NODES * len(names),
            "effectif": counts.reshape(-1),
        })

    parts = [long(uai, s_counts, "uai")]
    if with_communes_in_school_table:
        parts.append(long(com, c_counts, "uai"))
    parts.append(long([ROOT], t_counts, "uai"))
    school = pl.concat(parts)
    h_school = Hierarchy.nested({u: com[c] for u, c in zip(uai, commune)}, group_concept="code_insee")
    if not with_communes_in_school_table:
        h_school = Hierarchy.flat(uai)
    niveau = Hierarchy.niveau()
    communes = pl.concat([long(com, c_counts, "code_insee"), long([ROOT], t_counts, "code_insee")])
    return (CountTable("ecole-niveau", school, {"uai": h_school, "niveau": niveau}, policy=Policy("threshold", k)),
            CountTable("commune-niveau", communes, {"code_insee": Hierarchy.flat(com), "niveau": niveau},
                       policy=Policy("threshold", k)))
