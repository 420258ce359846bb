"""Synthetic territory: streets and addresses inside real communes, schools, sectors.

Everything is deterministic for a given seed. Geometry is computed in a metric projection
(Lambert-93 for the metropole, local UTM projections overseas) and written in WGS84 too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from importlib import resources

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from preau.codes import uai_check_letter
from preau.synth import names as N

# Metric CRS per overseas département (metropole: Lambert-93).
METRIC_CRS = {"971": 5490, "972": 5490, "973": 2972, "974": 2975, "976": 4471}
ADDRESSES_PER_INHABITANT = 1 / 2.4
ADDRESSES_PER_STREET = 22


def metric_crs(dep: str) -> int:
    return METRIC_CRS.get(dep, 2154)


def load_communes(departements: list[str] | None) -> gpd.GeoDataFrame:
    """Real commune boundaries (IGN ADMIN EXPRESS COG 2020, see data/PROVENANCE.md)."""
    path = resources.files("preau.synth") / "data" / "communes.parquet"
    with resources.as_file(path) as p:
        gdf = gpd.read_parquet(p)
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


def _sample_in_polygon(rng, poly, center, sigma, n):
    """``n`` points near ``center`` (gaussian, sigma metres) falling inside ``poly``."""
    out = np.empty((0, 2))
    for _ in range(30):
        need = n - len(out)
        if need <= 0:
            break
        pts = center + rng.normal(0.0, sigma, size=(need * 3 + 8, 2))
        inside = shapely.contains_xy(poly, pts[:, 0], pts[:, 1])
        out = np.vstack([out, pts[inside][:need]])
        sigma *= 1.3
    if len(out) < n:  # very thin polygons: fall back to uniform sampling of the bounds
        minx, miny, maxx, maxy = poly.bounds
        while len(out) < n:
            pts = np.column_stack([rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)])
            out = np.vstack([out, pts[shapely.contains_xy(poly, pts[:, 0], pts[:, 1])]])
        out = out[:n]
    return out


def _street_names(rng, n: int) -> list[str]:
    types = np.array([t for t, _ in N.STREET_TYPES])
    tw = np.array([w for _, w in N.STREET_TYPES])
    tw = tw / tw.sum()
    nw = N.zipf_weights(len(N.STREET_NAMES), 0.5)
    seen: set[str] = set()
    result = []
    while len(result) < n:
        k = (n - len(result)) * 2 + 4
        for t, s in zip(rng.choice(types, k, p=tw), rng.choice(N.STREET_NAMES, k, p=nw)):
            name = f"{t} {s}"
            if name not in seen:
                seen.add(name)
                result.append(name)
                if len(result) == n:
                    break
        if len(seen) > len(types) * len(N.STREET_NAMES) * 0.8:  # huge commune: number the rest
            i = 1
            while len(result) < n:
                name = f"Rue {N.STREET_NAMES[i % len(N.STREET_NAMES)]} {i // len(N.STREET_NAMES) + 2}"
                if name not in seen:
                    seen.add(name)
                    result.append(name)
                i += 1
    return result


def build_streets(rng, communes_m: gpd.GeoDataFrame, density: float = 1.0):
    """Streets (straight segments from the village centre outwards) with numbered address points.

    Odd numbers on the left side, even on the right, 12–35 m apart; a few ``bis``/``ter``.
    """
    street_rows, addr_chunks = [], []
    street_id = 0
    for row in communes_m.itertuples(index=False):
        poly = row.geometry
        shapely.prepare(poly)
        n_addr = max(8, int(round(row.population * ADDRESSES_PER_INHABITANT * density)))
        n_streets = max(1, int(round(n_addr / ADDRESSES_PER_STREET)))
        c = poly.representative_point()
        center = np.array([c.x, c.y])
        sigma = max(150.0, np.sqrt(n_addr) * 18.0)
        starts = _sample_in_polygon(rng, poly, center, sigma, n_streets)
        angles = rng.uniform(0, 2 * np.pi, n_streets)
        per_street = rng.poisson(max(1.0, n_addr / n_streets - 2), n_streets) + 2
        spacing = rng.uniform(12, 35, n_streets)
        names = _street_names(rng, n_streets)
        sid = np.repeat(np.arange(n_streets), per_street)
        j = np.concatenate([np.arange(k) for k in per_street])
        side = j % 2  # 0 odd (left), 1 even (right)
        pos = (j // 2) * spacing[sid] + rng.uniform(-2, 2, len(j))
        d = np.column_stack([np.cos(angles), np.sin(angles)])[sid]
        perp = np.column_stack([-d[:, 1], d[:, 0]]) * np.where(side == 0, 8.0, -8.0)[:, None]
        xy = starts[sid] + d * pos[:, None] + perp
        numero = (j // 2) * 2 + np.where(side == 0, 1, 2)
        inside = shapely.contains_xy(poly, xy[:, 0], xy[:, 1])
        if not inside.any():  # keep at least the first street's first point (tiny or odd polygons)
            xy[0] = starts[0]
            inside[0] = True
        kept_streets = np.unique(sid[inside])
        local = {s: street_id + i for i, s in enumerate(kept_streets)}
        for s in kept_streets:
            fantoir = f"{row.code_insee}_{(local[s] - street_id + 1):04d}"
            street_rows.append((local[s], row.code_insee, names[s], fantoir))
        addr_chunks.append(pd.DataFrame({
            "street_id": np.array([local[s] for s in sid[inside]], dtype=np.int64),
            "code_insee": row.code_insee,
            "numero": numero[inside].astype(np.int32),
            "x": xy[inside, 0], "y": xy[inside, 1],
        }))
        street_id += len(kept_streets)
    streets = pd.DataFrame(street_rows, columns=["street_id", "code_insee", "nom_voie", "fantoir"])
    addr = pd.concat(addr_chunks, ignore_index=True)
    addr["rep"] = ""
    # bis / ter: a second entry at the same number, 5 m further along
    dup = rng.random(len(addr)) < 0.03
    bis = addr[dup].copy()
    bis["rep"] = np.where(rng.random(len(bis)) < 0.85, "bis", "ter")
    bis["x"] += 5.0
    bis["y"] += 3.0
    addr = pd.concat([addr, bis], ignore_index=True)
    addr = addr.merge(streets[["street_id", "fantoir"]], on="street_id")
    addr = addr.sort_values(["street_id", "numero", "rep"]).reset_index(drop=True)
    addr["ban_id"] = (addr["fantoir"] + "_" + addr["numero"].map("{:05d}".format)
                      + np.where(addr["rep"] == "", "", "_" + addr["rep"]))
    return streets, addr.drop(columns=["fantoir"])


def _kmeans(rng, xy: np.ndarray, k: int, iters: int = 12) -> np.ndarray:
    seeds = xy[rng.choice(len(xy), k, replace=False)]
    for _ in range(iters):
        lab = np.argmin(((xy[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
        for i in range(k):
            if (lab == i).any():
                seeds[i] = xy[lab == i].mean(0)
    return seeds


def _nearest(seeds: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return np.argmin(((xy[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)


CHILDREN_PER_INHABITANT = 0.0105  # one birth cohort (≈ 700k births / 66M inhabitants)


def build_schools_and_sectors(rng, dep: str, dep_info: pd.Series, communes_m: gpd.GeoDataFrame,
                              streets: pd.DataFrame, addr: pd.DataFrame, uai_numbers: np.ndarray):
    """Sectors (street rules) and schools. Returns schools, rules, and sets ``addr.code_secteur``."""
    addr["code_secteur"] = ""
    street_names = streets.set_index("street_id")["nom_voie"]
    commune_names = communes_m.set_index("code_insee")["nom"]
    cohort = communes_m.set_index("code_insee")["population"] * CHILDREN_PER_INHABITANT
    school_rows, rule_rows = [], []
    sector_seed: dict[str, np.ndarray] = {}
    uai_iter = iter(uai_numbers)

    def new_uai() -> str:
        number = next(uai_iter)
        head = {"2A": "620", "2B": "720"}.get(dep, ("0" + dep) if len(dep) == 2 else dep)
        digits = f"{head}{number:04d}"
        return digits + uai_check_letter(digits)

    by_commune = {c: g for c, g in addr.groupby("code_insee", sort=False)}
    schooled = []  # communes with at least one public school
    for com in communes_m.itertuples(index=False):
        pupils = cohort[com.code_insee] * 9  # 9 levels
        if pupils < 14 or com.code_insee not in by_commune:
            continue
        schooled.append(com.code_insee)
        g = by_commune[com.code_insee]
        xy = g[["x", "y"]].to_numpy()
        k = max(1, min(int(round(pupils / 190)), len(g) // 40 or 1))
        seeds = _kmeans(rng, xy, k) if k > 1 else xy.mean(0, keepdims=True)
        lab = _nearest(seeds, xy)
        codes = [f"{com.code_insee}-{i + 1:02d}" for i in range(k)]
        for i, code in enumerate(codes):
            sector_seed[code] = seeds[i]
        if k == 1:
            addr.loc[g.index, "code_secteur"] = codes[0]
        else:
            sec = np.empty(len(g), dtype=object)
            sid = g["street_id"].to_numpy()
            num = g["numero"].to_numpy()
            for s in np.unique(sid):
                m = sid == s
                labs = lab[m]
                counts = np.bincount(labs, minlength=k)
                major = int(counts.argmax())
                minor_share = 1 - counts.max() / m.sum()
                name = street_names[s]
                if minor_share >= 0.3 and m.sum() >= 6:
                    other = int(np.argsort(counts)[-2])
                    if rng.random() < 0.25:  # split by side: odd numbers to one sector, even to the other
                        odd = num[m] % 2 == 1
                        sec_m = np.where(odd, codes[major], codes[other])
                        rule_rows += [(com.code_insee, name, 1, 9999, "I", codes[major]),
                                      (com.code_insee, name, 2, 9998, "P", codes[other])]
                    else:  # split by number range at the switch point
                        nums = num[m]
                        t = int(np.median(nums))
                        low_lab = np.bincount(labs[nums <= t], minlength=k).argmax()
                        low, high = (major, other) if low_lab == major else (other, major)
                        sec_m = np.where(nums <= t, codes[low], codes[high])
                        rule_rows += [(com.code_insee, name, 1, t, "PI", codes[low]),
                                      (com.code_insee, name, t + 1, 9999, "PI", codes[high])]
                    sec[m] = sec_m
                else:
                    sec[m] = codes[major]
                    rule_rows.append((com.code_insee, name, 1, 9999, "PI", codes[major]))
            addr.loc[g.index, "code_secteur"] = sec
        # schools of each sector
        for i, code in enumerate(codes):
            in_sec = g.index[addr.loc[g.index, "code_secteur"].to_numpy() == code]
            if len(in_sec) == 0:  # k-means cluster left without any street: no sector, no school
                sector_seed.pop(code, None)
                continue
            pts = addr.loc[in_sec, ["x", "y"]].to_numpy()
            site = in_sec[np.argmin(((pts - pts.mean(0)) ** 2).sum(1))]
            big = pupils / k > 140 and rng.random() < 0.5
            kinds = ["maternelle", "elementaire"] if big else ["primaire"]
            for j, kind in enumerate(kinds):
                if j and len(in_sec) > 1:  # the élémentaire stands on another address of the sector
                    site = in_sec[(list(in_sec).index(site) + 1) % len(in_sec)]
                school_rows.append(_school(rng, new_uai(), kind, "Public", com, code, site, addr, pupils, dep))
    schooled_set = set(schooled)
    # communes without a school: whole commune attached to the nearest sector of a schooled commune
    seed_codes = list(sector_seed)
    seed_xy = np.array([sector_seed[c] for c in seed_codes])
    for com in communes_m.itertuples(index=False):
        if com.code_insee in schooled_set or com.code_insee not in by_commune:
            continue
        c = com.geometry.representative_point()
        code = seed_codes[int(np.argmin(((seed_xy - [c.x, c.y]) ** 2).sum(1)))]
        addr.loc[by_commune[com.code_insee].index, "code_secteur"] = code
    # private schools (no sector), in larger communes
    for com in communes_m.itertuples(index=False):
        if com.population < 4000 or com.code_insee not in by_commune:
            continue
        g = by_commune[com.code_insee]
        for _ in range(max(1, int(round(com.population / 14000)))):
            site = g.index[rng.integers(len(g))]
            school_rows.append(_school(rng, new_uai(), "primaire", "Privé", com, "", site, addr,
                                       cohort[com.code_insee] * 9, dep))
    schools = pd.DataFrame(school_rows)
    for col, value in dep_info.items():
        schools[col] = value
    schools["code_departement"] = dep
    # rules: secteur unique rows for single-sector and attached communes
    uai_by_sector = schools[schools.statut == "Public"].groupby("code_secteur")["uai"].apply(list)
    multi = {r[0] for r in rule_rows}
    rows = []
    for code_insee, sectors in addr.groupby("code_insee")["code_secteur"].unique().items():
        if code_insee in multi:
            continue
        (code,) = sectors
        for uai in uai_by_sector[code]:
            rows.append((code_insee, commune_names[code_insee], "", "", "", "", "", "", uai, "O", code))
    for code_insee, name, a, b, parity, code in rule_rows:
        for uai in uai_by_sector[code]:
            rows.append((code_insee, commune_names[code_insee], name, a, "", b, "", parity, uai, "N", code))
    rules = pd.DataFrame(rows, columns=["code_insee", "libelle_commune", "type_et_libelle", "n_de_voie_debut",
                                        "indice_de_repetition_debut", "n_de_voie_fin", "indice_de_repetition_fin",
                                        "parite", "code_rne", "secteur_unique", "code_secteur"])
    return schools, rules


def _de(name: str) -> str:
    """French elision: « de Tarbes », « d'Adast », « du Mas » is left as « de Le… » → « du … »."""
    if name[:1].upper() in "AEIOUYHÉÈÊÂÎÔ":
        return f"d'{name}"
    if name.startswith("Le "):
        return "du " + name[3:]
    if name.startswith("Les "):
        return "des " + name[4:]
    return f"de {name}"


def _school(rng, uai, kind, statut, com, code_secteur, site, addr, pupils, dep):
    a = addr.loc[site]
    if statut == "Public":
        label = {"maternelle": "École maternelle publique", "elementaire": "École élémentaire publique",
                 "primaire": "École primaire publique"}[kind]
        patronyme = N.PUBLIC_SCHOOL_NAMES[rng.integers(len(N.PUBLIC_SCHOOL_NAMES))] if pupils > 60 else ""
    else:
        label = "École primaire privée"
        patronyme = N.PRIVATE_SCHOOL_NAMES[rng.integers(len(N.PRIVATE_SCHOOL_NAMES))]
    big_town = com.population > 10000
    return {
        "uai": uai, "denomination": label, "patronyme": patronyme,
        "nom": f"{label} {patronyme}".strip() if patronyme else f"{label} {_de(com.nom)}",
        "type_ecole": kind, "statut": statut, "code_insee": com.code_insee, "nom_commune": com.nom,
        "code_secteur": code_secteur, "ban_id": a.ban_id, "street_id": a.street_id, "numero": a.numero,
        "rep_indice": a.rep, "x": a.x, "y": a.y,
        "restauration": bool(rng.random() < 0.92),
        "ulis": bool(kind != "maternelle" and com.population > 3000 and rng.random() < 0.25),
        "rep": int(statut == "Public" and big_town and rng.random() < 0.12),
        "rep_plus": int(statut == "Public" and big_town and rng.random() < 0.04),
    }


def sector_polygons(communes_m: gpd.GeoDataFrame, addr: pd.DataFrame, schools: pd.DataFrame, crs: int):
    """Truth sector polygons: Voronoi cells of address points dissolved by sector, clipped per commune."""
    pieces = []
    for com in communes_m.itertuples(index=False):
        g = addr[addr.code_insee == com.code_insee]
        if g.empty:
            continue
        codes = g["code_secteur"].unique()
        if len(codes) == 1:
            pieces.append((codes[0], com.code_insee, com.geometry))
            continue
        xy = g[["x", "y"]].to_numpy()
        pts = shapely.points(xy)
        cells = shapely.get_parts(shapely.voronoi_polygons(
            shapely.multipoints(pts), extend_to=com.geometry.envelope.buffer(1000), ordered=True))
        lab = g["code_secteur"].to_numpy()
        for code in codes:
            union = shapely.union_all(cells[lab == code])
            pieces.append((code, com.code_insee, shapely.intersection(union, com.geometry)))
    df = gpd.GeoDataFrame(pieces, columns=["code_secteur", "code_insee", "geometry"], crs=crs)
    uai = schools[schools.statut == "Public"].groupby("code_secteur")["uai"].apply(lambda s: ",".join(sorted(s)))
    out = df.dissolve("code_secteur", aggfunc={"code_insee": lambda s: ",".join(sorted(set(s)))}).reset_index()
    out = out.rename(columns={"code_insee": "communes"})
    out["uai"] = out["code_secteur"].map(uai)
    out["geometry"] = shapely.make_valid(out.geometry.values)
    return out[["code_secteur", "uai", "communes", "geometry"]]


def build_territory(rng, dep: str, communes: gpd.GeoDataFrame, dep_info: pd.Series, density: float = 1.0,
                    with_polygons: bool = True) -> Territory:
    crs = metric_crs(dep)
    cm = communes.to_crs(crs)
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
