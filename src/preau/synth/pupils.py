"""Synthetic pupils: cohorts by birth year, living at real synthetic addresses, moving up each year.

Vectorised with numpy/polars: no Python object per pupil.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
from scipy.spatial import cKDTree

from preau.codes import LEVELS, UAI_ALPHABET
from preau.synth import names as N
from preau.synth.territory import CHILDREN_PER_INHABITANT, Territory

ABBREV = {"Rue": "R.", "Avenue": "Av", "Boulevard": "Bd", "Chemin": "Ch.", "Impasse": "Imp.", "Place": "Pl.",
          "Allée": "All.", "Route": "Rte", "Lotissement": "Lot.", "Square": "Sq.", "Passage": "Pass.",
          "Faubourg": "Fg"}
VARIANTS = ("exacte", "majuscules", "abreviation", "sans_accents", "sans_numero", "faute_de_frappe")
VARIANT_P = (0.70, 0.12, 0.08, 0.05, 0.03, 0.02)


def _ine(serial: np.ndarray) -> pl.Series:
    """INE-like pupil identifiers: 10 digits + a letter, unique for unique serials."""
    num = (serial.astype(np.int64) * 7919 + 1234567) % 10**10
    letters = np.array(list(UAI_ALPHABET), dtype=object)[num % 23]
    return (pl.Series(num).cast(pl.String).str.zfill(10) + pl.Series(letters, dtype=pl.String))


def make_children(rng, terr: Territory, years: list[int], scale: float, serial0: int) -> pd.DataFrame:
    """Every child who may attend a primary school during ``years`` (birth years y-11 … y-2)."""
    birth_years = np.arange(years[0] - 11, years[-1] - 1)
    n_by = np.bincount(terr.addresses["com_idx"].to_numpy(), minlength=len(terr.communes))
    start = np.r_[0, np.cumsum(n_by)[:-1]]  # addresses are grouped by commune, in commune order
    com = np.flatnonzero(n_by > 0)
    lam = terr.communes["population"].to_numpy()[com] * CHILDREN_PER_INHABITANT * scale
    counts = rng.poisson(np.repeat(lam, len(birth_years)))
    com_idx = com[np.repeat(np.repeat(np.arange(len(com)), len(birth_years)), counts)]
    by = np.repeat(np.tile(birth_years, len(com)), counts)
    n = len(by)
    addr_idx = start[com_idx] + (rng.random(n) * n_by[com_idx]).astype(np.int64)
    sex = np.where(rng.random(n) < 0.49, "F", "M")
    first_year, last_year = years[0], years[-1]
    arrive = np.where(rng.random(n) < 0.93, first_year, rng.integers(first_year, last_year + 1, n))
    leave = np.where(rng.random(n) < 0.93, last_year, rng.integers(first_year, last_year + 1, n))
    leave = np.maximum(leave, arrive)
    behind = rng.random(n) < 0.045
    repeat_year = by + 6 + rng.integers(0, 5, n)  # the year (start) a behind pupil repeats a level
    ahead = (rng.random(n) < 0.012) & ~behind
    return pd.DataFrame({
        "serial": np.arange(serial0, serial0 + n), "birth_year": by, "addr_idx": addr_idx, "sexe": sex,
        "arrive": arrive, "leave": leave, "behind": behind, "repeat_year": repeat_year, "ahead": ahead,
        "tps": rng.random(n) < 0.12, "ulis": rng.random(n) < 0.012, "private_pref": rng.random(n) < 0.10,
        "derog": rng.random(n) < 0.03, "cantine_p": rng.beta(2, 0.8, n), "peri_p": rng.beta(0.8, 1.2, n),
        "variant": rng.choice(len(VARIANTS), n, p=VARIANT_P),
    })


def _pick_s(rng, items: list[str], n: int, s: float = 0.8) -> pl.Series:
    """Zipf-weighted draws as a polars string column (categorical gather: no Python string per row)."""
    idx = rng.choice(len(items), n, p=N.zipf_weights(len(items), s))
    return pl.Series(items, dtype=pl.String).gather(idx)


def identities(rng, kids: pd.DataFrame, big_communes: np.ndarray) -> pl.DataFrame:
    """Fictitious identity of each child (same row order as ``kids``), drawn once per child so it stays
    the same from one school year to the next: INE, names, sex, birth date and place, guardians and
    phone. ``big_communes``: commune names of the département, most populous first (birth places)."""
    n = len(kids)
    when = lambda mask, a, b: pl.select(pl.when(pl.Series(mask)).then(a).otherwise(b)).to_series()  # noqa: E731
    surname = _pick_s(rng, N.SURNAMES, n, 0.6)
    girls = kids["sexe"].to_numpy() == "F"
    first = when(girls, _pick_s(rng, N.GIRLS, n), _pick_s(rng, N.BOYS, n))
    r1_first = when(rng.random(n) < 0.7, _pick_s(rng, N.ADULT_WOMEN, n), _pick_s(rng, N.ADULT_MEN, n))
    has_r2 = rng.random(n) < 0.8
    none = pl.repeat(None, n, dtype=pl.String, eager=True)
    r2_first = when(has_r2, _pick_s(rng, N.ADULT_MEN, n), none)
    r2_name = when(has_r2, when(rng.random(n) < 0.75, surname, _pick_s(rng, N.SURNAMES, n)), none)
    r1_name = when(rng.random(n) < 0.8, surname, _pick_s(rng, N.SURNAMES, n))
    x = rng.integers(0, 2**40, n)
    pairs = [pl.Series((x >> (8 * j)) % 100).cast(pl.String).str.zfill(2) for j in range(4)]
    phone = pl.select(pl.concat_str([pl.lit("0"), pl.Series(6 + x % 2).cast(pl.String), pl.lit(" "), pairs[0],
                                     pl.lit(" "), pairs[1], pl.lit(" "), pairs[2], pl.lit(" "), pairs[3]])).to_series()
    doy = rng.integers(0, 365, n)
    birth = pl.select((pl.date(pl.Series(kids["birth_year"].to_numpy()), 1, 1) + pl.duration(days=pl.Series(doy)))
                      .dt.strftime("%d/%m/%Y")).to_series()
    near = pl.Series(list(big_communes), dtype=pl.String).gather(
        np.minimum(rng.geometric(0.25, n) - 1, len(big_communes) - 1))
    birth_place = when(rng.random(n) < 0.75, near, _pick_s(rng, N.BIRTH_PLACES_OUTSIDE, n))
    return pl.DataFrame({"ine": pl.Series(_ine(kids["serial"].to_numpy()), dtype=pl.String), "nom": surname,
                         "prenom": first, "sexe": pl.Series(np.where(girls, "F", "M")), "naissance": birth,
                         "lieu_naissance": birth_place, "r1_nom": r1_name, "r1_prenom": r1_first, "r1_tel": phone,
                         "r2_nom": r2_name, "r2_prenom": r2_first})


def _school_maps(terr: Territory):
    s = terr.schools
    pub = s[s.statut == "Public"]
    mat = pub[pub.type_ecole.isin(["maternelle", "primaire"])].drop_duplicates("code_secteur").set_index("code_secteur")
    ele = pub[pub.type_ecole.isin(["elementaire", "primaire"])].drop_duplicates("code_secteur").set_index("code_secteur")
    return pub, mat, ele


def _nearest(points: np.ndarray, targets: np.ndarray, k: int = 1) -> np.ndarray:
    """Index of the k-th nearest target (1 = nearest) for each point (k-d tree)."""
    tree = cKDTree(targets)
    if k == 1 or targets.shape[0] < k:
        return tree.query(points)[1]
    return tree.query(points, k=k)[1][:, k - 1]


def assign_schools(rng, terr: Territory, kids: pd.DataFrame) -> pd.DataFrame:
    """Fixed per child: public school of the sector for each stage, or a derogation, private or ULIS school."""
    addr = terr.addresses
    pub, mat, ele = _school_maps(terr)
    sector = addr["code_secteur"].to_numpy()[kids.addr_idx.to_numpy()]
    xy = addr[["x", "y"]].to_numpy()[kids.addr_idx.to_numpy()]
    kids["code_secteur"] = sector
    kids["school_mat"] = mat["uai"].reindex(sector).to_numpy()
    kids["school_ele"] = ele["uai"].reindex(sector).to_numpy()
    for stage, table in (("mat", mat), ("ele", ele)):
        col = f"school_{stage}"
        txy = table[["x", "y"]].to_numpy()
        # derogation: the second nearest school of the same stage
        d = kids["derog"].to_numpy() & (len(table) > 1)
        if d.any():
            kids.loc[d, col] = table["uai"].to_numpy()[_nearest(xy[d], txy, 2)]
        missing = kids[col].isna().to_numpy()
        if missing.any():
            kids.loc[missing, col] = table["uai"].to_numpy()[_nearest(xy[missing], txy)]
    priv = terr.schools[terr.schools.statut == "Privé"]
    kids["school_priv"] = None
    if len(priv):
        pxy = priv[["x", "y"]].to_numpy()
        near = _nearest(xy, pxy)
        dist = np.sqrt(((xy - pxy[near]) ** 2).sum(1))
        use = kids["private_pref"].to_numpy() & (dist < 15000)
        kids.loc[use, "school_priv"] = priv["uai"].to_numpy()[near[use]]
    ulis = pub[pub.ulis]
    kids["school_ulis"] = None
    if len(ulis):
        kids["school_ulis"] = ulis["uai"].to_numpy()[_nearest(xy, ulis[["x", "y"]].to_numpy())]
    else:
        kids["ulis"] = False
    return kids


def year_rows(rng, terr: Territory, kids: pd.DataFrame, year: int) -> pd.DataFrame:
    """The pupils enrolled in the school year starting ``year`` (levels and schools)."""
    idx = year - kids.birth_year.to_numpy() - 2 + kids.ahead.to_numpy().astype(int)
    idx = idx - (kids.behind.to_numpy() & (year >= kids.repeat_year.to_numpy())).astype(int)
    present = (kids.arrive.to_numpy() <= year) & (kids.leave.to_numpy() >= year)
    enrolled = present & (idx <= 8) & ((idx >= 1) | ((idx == 0) & kids.tps.to_numpy()))
    k = kids[enrolled].copy()
    k["level_idx"] = idx[enrolled]
    elementary = k.level_idx.to_numpy() >= 4
    is_ulis = k.ulis.to_numpy() & elementary & k.school_ulis.notna().to_numpy()
    k["niveau"] = np.where(is_ulis, "ULIS", np.array(LEVELS)[k.level_idx.to_numpy()])
    school = np.where(elementary, k.school_ele.to_numpy(), k.school_mat.to_numpy())
    priv = k.school_priv.notna().to_numpy()
    school = np.where(priv, k.school_priv.to_numpy(), school)
    school = np.where(is_ulis & ~priv, k.school_ulis.to_numpy(), school)
    k["uai"] = school
    k["annee"] = year
    return k


def class_labels(df: pl.DataFrame) -> pl.DataFrame:
    """Class names per school and level: ≤ 26 pupils a class; small schools mix levels of a cycle."""
    df = df.with_columns(pl.len().over("uai").alias("school_size"))
    cycle = (pl.when(pl.col("niveau").is_in(["TPS", "PS", "MS", "GS"])).then(pl.lit("TPS-GS"))
             .when(pl.col("niveau").is_in(["CP", "CE1", "CE2"])).then(pl.lit("CP-CE2"))
             .when(pl.col("niveau") == "ULIS").then(pl.lit("ULIS"))
             .otherwise(pl.lit("CM1-CM2")))
    group = pl.when(pl.col("school_size") < 90).then(cycle).otherwise(pl.col("niveau"))
    df = df.with_columns(group.alias("_group"))
    df = df.with_columns(pl.int_range(pl.len()).over(["uai", "_group"]).alias("_rank"),
                         pl.len().over(["uai", "_group"]).alias("_n"))
    n_classes = ((pl.col("_n") + 25) // 26).clip(lower_bound=1)
    letter = (pl.col("_rank") % n_classes).replace_strict({i: chr(65 + i) for i in range(26)},
                                                          default="Z", return_dtype=pl.String)
    return df.with_columns((pl.col("_group") + pl.lit(" ") + letter).alias("classe")).drop(
        ["_group", "_rank", "_n", "school_size"])
