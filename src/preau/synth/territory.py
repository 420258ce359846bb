"""Synthetic territory: streets and addresses inside real communes, schools, sectors.

Everything is deterministic for a given seed. Geometry is computed in a metric projection
(Lambert-93 for the metropole, local UTM projections overseas) and written in WGS84 too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import geopandas as gpd
import numpy as np
import pandas as pd
import polars as pl
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

from preau.codes import uai_check_letter
from preau.synth import names as N

# Metric CRS per overseas département (metropole: Lambert-93).
METRIC_CRS = {"971": 5490, "972": 5490, "973": 2972, "974": 2975, "976": 4471}
# BAN-like address density: ≈ 1 address per 2 inhabitants in villages, fewer (flats) in towns:
# 1 per 2 × (population / 2000) ** 0.25 inhabitants, at most 1 per 15 (Paris ≈ 190k, France ≈ 22M).
ADDRESS_SHARE_EXPONENT = 0.25
ADDRESSES_PER_STREET = 22


def metric_crs(dep: str) -> int:
    return METRIC_CRS.get(dep, 2154)


@lru_cache(maxsize=1)
def _all_communes() -> gpd.GeoDataFrame:
    path = resources.files("preau.synth") / "data" / "communes.parquet"
    with resources.as_file(path) as p:
        return gpd.read_parquet(p)


def load_communes(departements: list[str] | None) -> gpd.GeoDataFrame:
    """Real commune boundaries (IGN ADMIN EXPRESS COG 2020, see data/PROVENANCE.md)."""
    gdf = _all_communes()
    if departements:
        gdf = gdf[gdf["departement"].isin(departements)]
    return gdf.reset_index(drop=True)


def load_departements() -> pd.DataFrame:
    path = resources.files("preau.synth") / "data" / "departements.csv"
    with resources.as_file(path) as p:
        return pd.read_csv(p, sep=";", dtype=str).set_index("code_departement")


def afnor(text: str) -> str:
    """BAN ``nom_afnor``: upper case, no accents, apostrophes and hyphens as spaces."""
    text = text.replace("’", " ").replace("'", " ").replace("-", " ").replace("œ", "oe").replace("Œ", "OE")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(text.upper().split())


@dataclass
class Territory:
    """One département's synthetic geography (metric CRS ``crs``)."""

    dep: str
    crs: int
    communes: gpd.GeoDataFrame  # code_insee, nom, population, departement, region, codes_postaux, geometry
    streets: pd.DataFrame  # street_id, code_insee, nom_voie, fantoir
    addresses: pd.DataFrame  # ban_id, street_id, code_insee, numero, rep, x, y, code_secteur
    schools: pd.DataFrame  # uai, nom, type_ecole, statut, code_insee, code_secteur, ban_id, x, y, flags
    sectors: gpd.GeoDataFrame  # code_secteur, uai, communes, geometry (truth polygons)
    rules: pd.DataFrame  # carte-scolaire rows


def _rank_in_group(g: np.ndarray) -> np.ndarray:
    """0, 1, 2… within runs of equal values of ``g`` (equal values must be adjacent)."""
    n = len(g)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    return np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))


def _zfill(values: np.ndarray, width: int) -> pl.Series:
    return pl.Series(values, dtype=pl.Int64).cast(pl.String).str.zfill(width)


def _sample_in_polygons(rng, geoms: np.ndarray, centers: np.ndarray, sigma: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``n[i]`` points near ``centers[i]`` (gaussian, ``sigma[i]`` metres) inside ``geoms[i]``, for all
    polygons at once; returned grouped by polygon (polygon order)."""
    need = n.astype(np.int64).copy()
    sig = sigma.astype(float).copy()
    coms, pts = [], []
    for _ in range(30):
        act = np.flatnonzero(need > 0)
        if len(act) == 0:
            break
        com = np.repeat(act, need[act] * 3 + 8)
        p = centers[com] + rng.normal(0.0, 1.0, size=(len(com), 2)) * sig[com, None]
        ok = shapely.contains_xy(geoms[com], p[:, 0], p[:, 1])
        com, p = com[ok], p[ok]
        take = _rank_in_group(com) < need[com]
        coms.append(com[take])
        pts.append(p[take])
        need -= np.bincount(com[take], minlength=len(need))
        sig[act] *= 1.3
    for c in np.flatnonzero(need > 0):  # very thin polygons: uniform sampling of the bounds
        minx, miny, maxx, maxy = geoms[c].bounds
        got = np.empty((0, 2))
        while len(got) < need[c]:
            q = np.column_stack([rng.uniform(minx, maxx, 4 * need[c]), rng.uniform(miny, maxy, 4 * need[c])])
            got = np.vstack([got, q[shapely.contains_xy(geoms[c], q[:, 0], q[:, 1])]])
        coms.append(np.full(need[c], c))
        pts.append(got[:need[c]])
    com = np.concatenate(coms)
    return np.concatenate(pts)[np.argsort(com, kind="stable")]


def _street_name_table() -> tuple[np.ndarray, np.ndarray]:
    """Every « type + name » street label with its probability (type weight × Zipf rank weight)."""
    tw = {}
    for t, w in N.STREET_TYPES:
        tw[t] = tw.get(t, 0.0) + w
    types = [t for t in tw if tw[t] > 0]
    w_t = np.array([tw[t] for t in types])
    w_t = w_t / w_t.sum()
    w_n = N.zipf_weights(len(N.STREET_NAMES), 0.5)
    labels = pd.Series((w_t[:, None] * w_n[None, :]).ravel(),
                       index=[f"{t} {s}" for t in types for s in N.STREET_NAMES])
    labels = labels.groupby(level=0, sort=False).sum()
    return labels.index.to_numpy(dtype=object), (labels / labels.sum()).to_numpy()


_NAMES, _NAME_P = _street_name_table()


def _more_names(rng, names: list[str], n: int) -> list[str]:
    """Complete a (large) commune's street names to ``n``: more draws, then numbered names."""
    seen = set(names)
    result = list(names)
    while len(result) < n and len(seen) <= len(_NAMES) * 0.8:
        for i in rng.choice(len(_NAMES), (n - len(result)) * 2 + 4, p=_NAME_P):
            if _NAMES[i] not in seen:
                seen.add(_NAMES[i])
                result.append(_NAMES[i])
                if len(result) == n:
                    break
    i = 1
    while len(result) < n:  # huge commune: number the rest
        name = f"Rue {N.STREET_NAMES[i % len(N.STREET_NAMES)]} {i // len(N.STREET_NAMES) + 2}"
        if name not in seen:
            seen.add(name)
            result.append(name)
        i += 1
    return result


def _street_names(rng, n_streets: np.ndarray) -> np.ndarray:
    """``n_streets[c]`` distinct street names for each commune ``c``, all communes at once."""
    m = n_streets * 2 + 4
    com = np.repeat(np.arange(len(n_streets)), m)
    draw = rng.choice(len(_NAMES), len(com), p=_NAME_P)
    _, first = np.unique(com.astype(np.int64) * len(_NAMES) + draw, return_index=True)
    first.sort()  # first draw of each (commune, name), in draw order
    ucom = com[first]
    keep = _rank_in_group(ucom) < n_streets[ucom]
    names = _NAMES[draw[first[keep]]]
    got = np.bincount(ucom[keep], minlength=len(n_streets))
    short = np.flatnonzero(got < n_streets)
    if len(short) == 0:
        return names
    parts = np.split(names, np.cumsum(got)[:-1])
    for c in short:
        parts[c] = np.asarray(_more_names(rng, list(parts[c]), int(n_streets[c])), dtype=object)
    return np.concatenate(parts)


def build_streets(rng, communes_m: gpd.GeoDataFrame, density: float = 1.0):
    """Streets (straight segments from the village centre outwards) with numbered address points.

    Odd numbers on the left side, even on the right, 12–35 m apart; a few ``bis``/``ter``. All communes
    of a département at once (array functions of shapely 2 and numpy, no Python loop per commune).
    """
    geoms = communes_m.geometry.to_numpy()
    shapely.prepare(geoms)
    codes = communes_m["code_insee"].to_numpy().astype(str)
    n_com = len(codes)
    pop = communes_m["population"].to_numpy().astype(float)
    per_address = np.clip(2.0 * np.maximum(pop / 2000, 1.0) ** ADDRESS_SHARE_EXPONENT, 2.0, 15.0)
    n_addr = np.maximum(8, np.round(pop / per_address * density)).astype(np.int64)
    n_streets = np.maximum(1, np.round(n_addr / ADDRESSES_PER_STREET)).astype(np.int64)
    centers = shapely.get_coordinates(shapely.point_on_surface(geoms))
    sigma = np.maximum(150.0, np.sqrt(n_addr) * 18.0)
    starts = _sample_in_polygons(rng, geoms, centers, sigma, n_streets)
    n_st = int(n_streets.sum())
    scom = np.repeat(np.arange(n_com), n_streets)
    angles = rng.uniform(0, 2 * np.pi, n_st)
    per_street = rng.poisson(np.maximum(1.0, n_addr / n_streets - 2)[scom]) + 2
    spacing = rng.uniform(12, 35, n_st)
    names = _street_names(rng, n_streets)
    sid = np.repeat(np.arange(n_st), per_street)
    j = _rank_in_group(sid)
    side = j % 2  # 0 odd (left), 1 even (right)
    pos = (j // 2) * spacing[sid] + rng.uniform(-2, 2, len(j))
    d = np.column_stack([np.cos(angles), np.sin(angles)])[sid]
    perp = np.column_stack([-d[:, 1], d[:, 0]]) * np.where(side == 0, 8.0, -8.0)[:, None]
    xy = starts[sid] + d * pos[:, None] + perp
    numero = (j // 2) * 2 + np.where(side == 0, 1, 2)
    acom = scom[sid]
    inside = shapely.contains_xy(geoms[acom], xy[:, 0], xy[:, 1])
    empty = np.flatnonzero(np.bincount(acom[inside], minlength=n_com) == 0)
    if len(empty):  # keep at least the first street's first point (tiny or odd polygons)
        first_addr = np.searchsorted(acom, empty)
        xy[first_addr] = starts[np.searchsorted(scom, empty)]
        inside[first_addr] = True
    kept = np.zeros(n_st, dtype=bool)
    kept[sid[inside]] = True
    new_id = np.cumsum(kept) - 1
    kept_idx = np.flatnonzero(kept)
    kcom = scom[kept_idx]
    fantoir = (pl.Series(codes[kcom]) + "_" + _zfill(_rank_in_group(kcom) + 1, 4)).to_numpy()
    streets = pd.DataFrame({"street_id": np.arange(len(kept_idx), dtype=np.int64), "code_insee": codes[kcom],
                            "nom_voie": names[kept_idx], "fantoir": fantoir})
    a_sid, a_num, a_xy, a_com = new_id[sid[inside]], numero[inside], xy[inside], acom[inside]
    # bis / ter: a second entry at the same number, 5 m further along
    dup = rng.random(len(a_sid)) < 0.03
    dup[dup] = shapely.contains_xy(geoms[a_com[dup]], a_xy[dup, 0] + 5.0, a_xy[dup, 1] + 3.0)  # inside too
    rep_code = np.r_[np.zeros(len(a_sid), dtype=np.int8), np.where(rng.random(dup.sum()) < 0.85, 1, 2).astype(np.int8)]
    a_sid, a_num, a_com = np.r_[a_sid, a_sid[dup]], np.r_[a_num, a_num[dup]], np.r_[a_com, a_com[dup]]
    a_xy = np.vstack([a_xy, a_xy[dup] + [5.0, 3.0]])
    order = np.lexsort((rep_code, a_num, a_sid))
    a_sid, a_num, a_com, a_xy, rep_code = a_sid[order], a_num[order], a_com[order], a_xy[order], rep_code[order]
    rep = np.array(["", "bis", "ter"], dtype=object)[rep_code]
    ban_id = (pl.Series(fantoir[a_sid]) + "_" + _zfill(a_num, 5)
              + pl.Series(np.array(["", "_bis", "_ter"], dtype=object)[rep_code], dtype=pl.String)).to_numpy()
    addr = pd.DataFrame({"street_id": a_sid.astype(np.int64), "code_insee": pd.Categorical.from_codes(a_com, codes),
                         "numero": a_num.astype(np.int32), "x": a_xy[:, 0], "y": a_xy[:, 1], "rep": rep,
                         "ban_id": ban_id, "com_idx": a_com.astype(np.int64)})
    return streets, addr


def _closest(seeds: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Index of the nearest seed of each point: brute force for a few seeds, else a k-d tree."""
    if len(seeds) > 32:
        return cKDTree(seeds).query(xy)[1]
    d = (xy[:, 0, None] - seeds[None, :, 0]) ** 2 + (xy[:, 1, None] - seeds[None, :, 1]) ** 2
    return d.argmin(1)


def _kmeans(rng, xy: np.ndarray, k: int, iters: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """k-means seeds (fitted on a sample of at most max(20 000, 40 k) points) and every point's label."""
    seeds = xy[rng.choice(len(xy), k, replace=False)].copy()
    size = max(20_000, 40 * k)
    fit = xy if len(xy) <= size else xy[rng.choice(len(xy), size, replace=False)]
    for _ in range(iters):
        lab = _closest(seeds, fit)
        cnt = np.bincount(lab, minlength=k)
        nz = cnt > 0
        seeds[nz, 0] = np.bincount(lab, fit[:, 0], k)[nz] / cnt[nz]
        seeds[nz, 1] = np.bincount(lab, fit[:, 1], k)[nz] / cnt[nz]
    return seeds, _closest(seeds, xy)


CHILDREN_PER_INHABITANT = 0.0105  # one birth cohort (≈ 700k births / 66M inhabitants)

RULE_COLUMNS = ["code_insee", "libelle_commune", "type_et_libelle", "n_de_voie_debut", "indice_de_repetition_debut",
                "n_de_voie_fin", "indice_de_repetition_fin", "parite", "code_rne", "secteur_unique", "code_secteur"]


def _street_sectors(rng, addr_idx: np.ndarray, street: np.ndarray, lab: np.ndarray, num: np.ndarray):
    """Streets of multi-sector communes: whole street to its main k-means sector, or split between the
    two main sectors (by side: odd/even, or by number range) when ≥ 30 % of it is elsewhere.

    Returns each address's sector and the rules (street, first, last, parity, sector)."""
    df = pl.DataFrame({"s": street, "lab": lab, "num": num})
    cnt = (df.group_by("s", "lab").agg(pl.len().alias("n"))
           .sort(["s", "n", "lab"], descending=[False, True, False]))
    st = cnt.group_by("s", maintain_order=True).agg(
        pl.col("lab").first().alias("major"), pl.col("lab").slice(1, 1).first().alias("other"),
        pl.col("n").first().alias("maxn"), pl.col("n").sum().alias("m"))
    med = df.group_by("s").agg(pl.col("num").median().floor().cast(pl.Int64).alias("t"))
    st = st.join(med, on="s", maintain_order="left")
    st = st.with_columns(((1 - pl.col("maxn") / pl.col("m") >= 0.3) & (pl.col("m") >= 6)).alias("split"))
    split = st["split"].to_numpy()
    by_side = np.zeros(len(st), dtype=bool)
    by_side[split] = rng.random(int(split.sum())) < 0.25
    st = st.with_columns(pl.Series("by_side", by_side))
    low = (df.join(st.select("s", "t"), on="s").filter(pl.col("num") <= pl.col("t"))
           .group_by("s", "lab").agg(pl.len().alias("n")).sort(["s", "n", "lab"], descending=[False, True, False])
           .group_by("s", maintain_order=True).agg(pl.col("lab").first().alias("low_lab")))
    st = st.join(low, on="s", how="left", maintain_order="left").with_columns(
        pl.when(pl.col("low_lab") == pl.col("major")).then(pl.col("major")).otherwise(pl.col("other")).alias("low"),
        pl.when(pl.col("low_lab") == pl.col("major")).then(pl.col("other")).otherwise(pl.col("major")).alias("high"))
    a = df.join(st, on="s", how="left", maintain_order="left")
    sector = a.select(
        pl.when(~pl.col("split")).then(pl.col("major"))
        .when(pl.col("by_side")).then(pl.when(pl.col("num") % 2 == 1).then(pl.col("major")).otherwise(pl.col("other")))
        .when(pl.col("num") <= pl.col("t")).then(pl.col("low")).otherwise(pl.col("high"))).to_series().to_numpy()
    whole = st.filter(~pl.col("split")).select("s", pl.lit(1).alias("a"), pl.lit(9999).alias("b"),
                                               pl.lit("PI").alias("parite"), pl.col("major").alias("sec"), pl.lit(0).alias("o"))
    side = st.filter(pl.col("split") & pl.col("by_side"))
    side = pl.concat([side.select("s", pl.lit(1).alias("a"), pl.lit(9999).alias("b"), pl.lit("I").alias("parite"),
                                  pl.col("major").alias("sec"), pl.lit(0).alias("o")),
                      side.select("s", pl.lit(2).alias("a"), pl.lit(9998).alias("b"), pl.lit("P").alias("parite"),
                                  pl.col("other").alias("sec"), pl.lit(1).alias("o"))])
    rng_ = st.filter(pl.col("split") & ~pl.col("by_side"))
    rng_ = pl.concat([rng_.select("s", pl.lit(1).cast(pl.Int64).alias("a"), pl.col("t").alias("b"), pl.lit("PI").alias("parite"),
                                  pl.col("low").alias("sec"), pl.lit(0).alias("o")),
                      rng_.select("s", (pl.col("t") + 1).alias("a"), pl.lit(9999).cast(pl.Int64).alias("b"),
                                  pl.lit("PI").alias("parite"), pl.col("high").alias("sec"), pl.lit(1).alias("o"))])
    cast = {"s": pl.Int64, "a": pl.Int64, "b": pl.Int64, "parite": pl.String, "sec": pl.Int64, "o": pl.Int32}
    rules = pl.concat([x.cast(cast) for x in (whole, side, rng_)]).sort(["s", "o"])
    return sector.astype(np.int64), rules


def _de(name: str) -> str:
    """French elision: « de Tarbes », « d'Adast », « du Mas » is left as « de Le… » → « du … »."""
    if name[:1].upper() in "AEIOUYHÉÈÊÂÎÔ":
        return f"d'{name}"
    if name.startswith("Le "):
        return "du " + name[3:]
    if name.startswith("Les "):
        return "des " + name[4:]
    return f"de {name}"


SCHOOL_LABELS = {("maternelle", "Public"): "École maternelle publique",
                 ("elementaire", "Public"): "École élémentaire publique",
                 ("primaire", "Public"): "École primaire publique", ("primaire", "Privé"): "École primaire privée"}


def build_schools_and_sectors(rng, dep: str, dep_info: pd.Series, communes_m: gpd.GeoDataFrame,
                              streets: pd.DataFrame, addr: pd.DataFrame, uai_numbers: np.ndarray):
    """Sectors (street rules) and schools. Returns schools, rules, and sets ``addr.code_secteur``.

    A commune with enough pupils gets k sectors (k-means of its addresses, one per ≈ 190 pupils), each with
    a primary school or a maternelle + élémentaire pair; a commune without a school is attached whole to
    the nearest sector (regroupement); larger communes also get private schools (no sector).
    """
    codes = communes_m["code_insee"].to_numpy().astype(str)
    cnames = communes_m["nom"].to_numpy().astype(str)
    pop = communes_m["population"].to_numpy().astype(float)
    n_com = len(codes)
    pupils = pop * CHILDREN_PER_INHABITANT * 9  # 9 levels
    acom = addr["com_idx"].to_numpy()
    xy = addr[["x", "y"]].to_numpy()
    n_by = np.bincount(acom, minlength=n_com)
    a_start = np.r_[0, np.cumsum(n_by)[:-1]]
    schooled = (pupils >= 14) & (n_by > 0)
    k = np.where(schooled, np.maximum(1, np.minimum(np.round(pupils / 190), np.maximum(n_by // 40, 1))), 0)
    k = k.astype(np.int64)
    sec_off = np.r_[0, np.cumsum(k)[:-1]]
    n_sec = int(k.sum())
    sec_com = np.repeat(np.arange(n_com), k)
    sec_code = (pl.Series(codes[sec_com]) + "-" + _zfill(_rank_in_group(sec_com) + 1, 2)).to_numpy()
    seed_xy = np.zeros((n_sec, 2))
    gsec = np.full(len(addr), -1, dtype=np.int64)
    own = schooled[acom]
    gsec[own] = sec_off[acom[own]]
    one = np.flatnonzero(k == 1)
    cnt = np.maximum(n_by, 1)
    seed_xy[sec_off[one]] = np.column_stack([np.bincount(acom, xy[:, 0], n_com)[one] / cnt[one],
                                             np.bincount(acom, xy[:, 1], n_com)[one] / cnt[one]])
    multi = np.flatnonzero(k > 1)
    for c in multi:
        sl = slice(a_start[c], a_start[c] + n_by[c])
        seeds, lab = _kmeans(rng, xy[sl], int(k[c]))
        seed_xy[sec_off[c]:sec_off[c] + k[c]] = seeds
        gsec[sl] = sec_off[c] + lab
    street_rules = pl.DataFrame(schema={"s": pl.Int64, "a": pl.Int64, "b": pl.Int64, "parite": pl.String,
                                        "sec": pl.Int64, "o": pl.Int32})
    in_multi = np.flatnonzero(k[acom] > 1)
    if len(in_multi):
        gsec[in_multi], street_rules = _street_sectors(rng, in_multi, addr["street_id"].to_numpy()[in_multi],
                                                       gsec[in_multi], addr["numero"].to_numpy()[in_multi])
    # sectors left without any address (k-means cluster without a street): no sector, no school
    alive = np.bincount(gsec[own], minlength=n_sec) > 0
    # schools of each sector: at the address nearest to the sector's centre
    own_idx = np.flatnonzero(own)
    og = gsec[own_idx]
    n_in = np.bincount(og, minlength=n_sec)
    mx = np.bincount(og, xy[own_idx, 0], n_sec) / np.maximum(n_in, 1)
    my = np.bincount(og, xy[own_idx, 1], n_sec) / np.maximum(n_in, 1)
    dist = (xy[own_idx, 0] - mx[og]) ** 2 + (xy[own_idx, 1] - my[og]) ** 2
    by_sec = own_idx[np.lexsort((own_idx, og))]  # each sector's addresses in address order
    sec_start = np.cumsum(n_in) - n_in
    best = np.lexsort((own_idx, dist, og))
    first = np.ones(len(og), dtype=bool)
    first[1:] = og[best][1:] != og[best][:-1]
    site = np.full(n_sec, -1, dtype=np.int64)
    site[og[best][first]] = own_idx[best][first]
    pos = np.empty(len(addr), dtype=np.int64)
    pos[by_sec] = np.arange(len(by_sec)) - np.repeat(sec_start, n_in)
    live = np.flatnonzero(alive)
    nxt = np.full(n_sec, -1, dtype=np.int64)  # the élémentaire stands on another address of the sector
    nxt[live] = by_sec[sec_start[live] + (pos[site[live]] + 1) % n_in[live]]
    big = (pupils[sec_com] / np.maximum(k[sec_com], 1) > 140) & (rng.random(n_sec) < 0.5) & alive
    s_sec = np.concatenate([np.flatnonzero(alive & ~big), np.flatnonzero(big), np.flatnonzero(big)])
    s_kind = np.concatenate([np.full((alive & ~big).sum(), "primaire"), np.full(big.sum(), "maternelle"),
                             np.full(big.sum(), "elementaire")]).astype(object)
    s_site = np.concatenate([site[alive & ~big], site[big], nxt[big]])
    o = np.lexsort((s_kind == "elementaire", s_sec))
    s_sec, s_kind, s_site = s_sec[o], s_kind[o], s_site[o]
    pub = pd.DataFrame({"kind": s_kind, "statut": "Public", "com": sec_com[s_sec], "code_secteur": sec_code[s_sec],
                        "site": s_site})
    # private schools (no sector), in larger communes
    rich = np.flatnonzero((pop >= 4000) & (n_by > 0))
    n_priv = np.maximum(1, np.round(pop[rich] / 14000)).astype(np.int64)
    p_com = np.repeat(rich, n_priv)
    p_site = a_start[p_com] + rng.integers(0, n_by[p_com]) if len(p_com) else np.zeros(0, dtype=np.int64)
    priv = pd.DataFrame({"kind": "primaire", "statut": "Privé", "com": p_com, "code_secteur": "", "site": p_site})
    schools = _schools(rng, dep, pd.concat([pub, priv], ignore_index=True), addr, codes, cnames, pop, pupils,
                       uai_numbers)
    for col, value in dep_info.items():
        schools[col] = value
    schools["code_departement"] = dep
    # communes without a school: whole commune attached to the nearest sector of a schooled commune
    orphans = np.flatnonzero(~schooled & (n_by > 0))
    if len(orphans) and len(live):
        rep = shapely.get_coordinates(shapely.point_on_surface(communes_m.geometry.to_numpy()[orphans]))
        target = live[cKDTree(seed_xy[live]).query(rep)[1]]
        tmap = np.full(n_com, -1, dtype=np.int64)
        tmap[orphans] = target
        att = np.flatnonzero(~own)
        gsec[att] = tmap[acom[att]]
    addr["code_secteur"] = np.where(gsec >= 0, sec_code[np.maximum(gsec, 0)], "")
    rules = _rules(schools, addr, street_rules, streets, codes, cnames, k, sec_code)
    return schools, rules


def _schools(rng, dep, s: pd.DataFrame, addr, codes, cnames, pop, pupils, uai_numbers) -> pd.DataFrame:
    n = len(s)
    head = {"2A": "620", "2B": "720"}.get(dep, ("0" + dep) if len(dep) == 2 else dep)
    digits = [f"{head}{number:04d}" for number in uai_numbers[:n]]
    public = s["statut"].to_numpy() == "Public"
    com = s["com"].to_numpy()
    pick_pub = rng.integers(0, len(N.PUBLIC_SCHOOL_NAMES), n)
    pick_priv = rng.integers(0, len(N.PRIVATE_SCHOOL_NAMES), n)
    patronyme = np.where(public, np.where(pupils[com] > 60, np.asarray(N.PUBLIC_SCHOOL_NAMES, dtype=object)[pick_pub], ""),
                         np.asarray(N.PRIVATE_SCHOOL_NAMES, dtype=object)[pick_priv])
    label = np.array([SCHOOL_LABELS[(kd, st)] for kd, st in zip(s["kind"], s["statut"])], dtype=object)
    de = {c: _de(cnames[c]) for c in np.unique(com)}
    nom = [f"{lb} {p}" if p else f"{lb} {de[c]}" for lb, p, c in zip(label, patronyme, com)]
    big_town = pop[com] > 10000
    a = addr.iloc[s["site"].to_numpy()]
    kind = s["kind"].to_numpy()
    return pd.DataFrame({
        "uai": [d + uai_check_letter(d) for d in digits], "denomination": label, "patronyme": patronyme, "nom": nom,
        "type_ecole": kind, "statut": s["statut"].to_numpy(), "code_insee": codes[com], "nom_commune": cnames[com],
        "code_secteur": s["code_secteur"].to_numpy(), "ban_id": a["ban_id"].to_numpy(),
        "street_id": a["street_id"].to_numpy(), "numero": a["numero"].to_numpy(), "rep_indice": a["rep"].to_numpy(),
        "x": a["x"].to_numpy(), "y": a["y"].to_numpy(),
        "restauration": rng.random(n) < 0.92,
        "ulis": (kind != "maternelle") & (pop[com] > 3000) & (rng.random(n) < 0.25),
        "rep": (public & big_town & (rng.random(n) < 0.12)).astype(int),
        "rep_plus": (public & big_town & (rng.random(n) < 0.04)).astype(int),
    })


def _rules(schools, addr, street_rules: pl.DataFrame, streets, codes, cnames, k, sec_code) -> pl.DataFrame:
    """carte-scolaire rows: « secteur unique » for single-sector and attached communes, street rules
    elsewhere; one row per public school of the sector."""
    pub = schools[schools["statut"] == "Public"]
    uai = pl.DataFrame({"code_secteur": pub["code_secteur"].to_numpy().astype(str),
                        "code_rne": pub["uai"].to_numpy().astype(str)})
    com_sector = (pl.DataFrame({"c": addr["com_idx"].to_numpy(), "code_secteur": addr["code_secteur"].to_numpy().astype(str)})
                  .unique("c", keep="first", maintain_order=True))
    single = com_sector.filter(pl.Series(k[com_sector["c"].to_numpy()] <= 1))
    c = single["c"].to_numpy()
    unique_rows = pl.DataFrame({
        "code_insee": codes[c], "libelle_commune": cnames[c], "type_et_libelle": None, "n_de_voie_debut": None,
        "indice_de_repetition_debut": None, "n_de_voie_fin": None, "indice_de_repetition_fin": None, "parite": None,
        "secteur_unique": "O", "code_secteur": single["code_secteur"]}, schema_overrides={
        c: pl.String for c in RULE_COLUMNS})
    s = street_rules["s"].to_numpy()
    sc = streets["code_insee"].to_numpy().astype(str)[s]
    street_rows = pl.DataFrame({
        "code_insee": sc, "libelle_commune": None,
        "type_et_libelle": streets["nom_voie"].to_numpy().astype(str)[s],
        "n_de_voie_debut": street_rules["a"].cast(pl.String), "indice_de_repetition_debut": None,
        "n_de_voie_fin": street_rules["b"].cast(pl.String), "indice_de_repetition_fin": None,
        "parite": street_rules["parite"], "secteur_unique": "N",
        "code_secteur": sec_code[street_rules["sec"].to_numpy()] if len(s) else np.zeros(0, dtype=str)},
        schema_overrides={c: pl.String for c in RULE_COLUMNS})
    name_of = pl.DataFrame({"code_insee": codes, "_nom": cnames})
    street_rows = street_rows.join(name_of, on="code_insee", how="left", maintain_order="left").with_columns(
        pl.col("_nom").alias("libelle_commune")).drop("_nom")
    rows = pl.concat([unique_rows.select([c for c in RULE_COLUMNS if c != "code_rne"]),
                      street_rows.select([c for c in RULE_COLUMNS if c != "code_rne"])])
    rows = rows.join(uai, on="code_secteur", how="inner", maintain_order="left")
    return rows.select(RULE_COLUMNS)


def _cells(xy: np.ndarray, envelope) -> np.ndarray:
    """Voronoi cell of each point (same order), ``extend_to`` the envelope; duplicate points share a cell."""
    o = np.lexsort((xy[:, 1], xy[:, 0]))
    same = np.r_[False, (np.diff(xy[o], axis=0) == 0).all(1)]
    if same.any():  # duplicate points: one cell for each distinct point
        group = np.cumsum(~same) - 1
        inv = np.empty(len(xy), dtype=np.int64)
        inv[o] = group
        return _cells(xy[o[~same]], envelope)[inv]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=envelope, ordered=True))
    if len(cells) != len(xy):  # should not happen: match cells to points by location
        hit = shapely.STRtree(cells).query(shapely.points(xy), predicate="intersects")
        order = np.zeros(len(xy), dtype=np.int64)
        order[hit[0]] = hit[1]
        cells = cells[order]
    return cells


def _union(parts: np.ndarray):
    """Union of polygons forming a coverage (fast), or the general union when they are not exactly noded."""
    try:
        union = shapely.coverage_union_all(parts)
    except shapely.errors.GEOSException:
        return shapely.union_all(parts)
    if shapely.is_valid(union) and abs(shapely.area(union) - shapely.area(parts).sum()) <= 1e-6 * shapely.area(union):
        return union
    return shapely.union_all(parts)


def _commune_sectors(xy: np.ndarray, lab: np.ndarray, geom) -> tuple[np.ndarray, np.ndarray]:
    """Sector pieces of one commune split between sectors: Voronoi cells of its addresses merged by
    sector (a coverage: fast union) and clipped by the commune."""
    cells = _cells(xy, shapely.buffer(shapely.envelope(geom), 1000))
    o = np.argsort(lab, kind="stable")
    bounds = np.flatnonzero(np.r_[True, lab[o][1:] != lab[o][:-1], True])
    unions = np.array([_union(cells[o[i:j]]) for i, j in zip(bounds[:-1], bounds[1:])], dtype=object)
    return lab[o][bounds[:-1]], shapely.intersection(unions, geom)


def sector_polygons(communes_m: gpd.GeoDataFrame, addr: pd.DataFrame, schools: pd.DataFrame, crs: int):
    """Truth sector polygons: Voronoi cells of address points dissolved by sector, clipped per commune."""
    geoms = communes_m.geometry.to_numpy()
    codes = communes_m["code_insee"].to_numpy().astype(str)
    acom = addr["com_idx"].to_numpy()
    addr = addr[addr["code_secteur"].to_numpy() != ""]  # (a territory without any school has no sector)
    lab_all, sec_codes = pd.factorize(addr["code_secteur"].to_numpy())
    sec_codes = np.asarray(sec_codes, dtype=object)
    xy_all = addr[["x", "y"]].to_numpy()
    n_by = np.bincount(acom, minlength=len(codes))
    a_start = np.r_[0, np.cumsum(n_by)[:-1]]
    present = np.flatnonzero(n_by > 0)
    lo = np.minimum.reduceat(lab_all, a_start[present])
    hi = np.maximum.reduceat(lab_all, a_start[present])
    piece_sec, piece_com, piece_geom, piece_whole = [lo[lo == hi]], [present[lo == hi]], [geoms[present[lo == hi]]], [
        np.ones((lo == hi).sum(), dtype=bool)]
    for c in present[lo != hi]:
        sl = slice(a_start[c], a_start[c] + n_by[c])
        labels, pieces = _commune_sectors(np.round(xy_all[sl], 2), lab_all[sl], geoms[c])
        piece_sec.append(labels)
        piece_com.append(np.full(len(pieces), c))
        piece_geom.append(pieces)
        piece_whole.append(np.zeros(len(pieces), dtype=bool))
    p_sec, p_com = np.concatenate(piece_sec), np.concatenate(piece_com)
    p_geom, p_whole = np.concatenate(piece_geom), np.concatenate(piece_whole)
    o = np.lexsort((p_com, sec_codes[p_sec].astype(str)))
    p_sec, p_com, p_geom, p_whole = p_sec[o], p_com[o], p_geom[o], p_whole[o]
    bounds = np.flatnonzero(np.r_[True, p_sec[1:] != p_sec[:-1], True])
    out_geom, out_code, out_com = [], [], []
    for i, j in zip(bounds[:-1], bounds[1:]):
        out_code.append(sec_codes[p_sec[i]])
        out_com.append(",".join(sorted(set(codes[p_com[i:j]]))))
        if j - i == 1:
            out_geom.append(p_geom[i])
        elif p_whole[i:j].all():  # whole communes: a coverage (shared edges), checked
            out_geom.append(_union(p_geom[i:j]))
        else:
            out_geom.append(shapely.union_all(p_geom[i:j]))
    uai = schools[schools.statut == "Public"].groupby("code_secteur")["uai"].apply(lambda s: ",".join(sorted(s)))
    out = gpd.GeoDataFrame({"code_secteur": out_code, "communes": out_com},
                           geometry=shapely.make_valid(np.asarray(out_geom, dtype=object)), crs=crs)
    out["uai"] = out["code_secteur"].map(uai)
    return out[["code_secteur", "uai", "communes", "geometry"]]


def build_territory(rng, dep: str, communes: gpd.GeoDataFrame, dep_info: pd.Series, density: float = 1.0,
                    with_polygons: bool = True) -> Territory:
    crs = metric_crs(dep)
    cm = communes.to_crs(crs).reset_index(drop=True)
    cm["geometry"] = shapely.make_valid(cm.geometry.values)
    streets, addr = build_streets(rng, cm, density)
    uai_numbers = rng.permutation(9000)[:5000] + 1000
    schools, rules = build_schools_and_sectors(rng, dep, dep_info, cm, streets, addr, uai_numbers)
    sectors = sector_polygons(cm, addr, schools, crs) if with_polygons else None
    return Territory(dep=dep, crs=crs, communes=cm, streets=streets, addresses=addr, schools=schools,
                     sectors=sectors, rules=rules)


def to_wgs84(crs: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = Transformer.from_crs(crs, 4326, always_xy=True)
    return t.transform(x, y)
