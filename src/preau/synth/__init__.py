"""Synthetic territory generator: the only source of pupil data for tests, demos and benchmarks.

``generate(out_dir, departements=["65"], seed=…)`` writes, for real commune boundaries, streets and
BAN-format addresses, schools with valid UAI codes, school sectors (polygons and carte-scolaire
rules) and several school years of ONDE-like pupil exports (Windows-1252, ``;``). Deterministic for a
given seed. Names are drawn from French frequency lists: every person is fictitious.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import polars as pl

from preau.codes import school_year
from preau.errors import PreauError
from preau.synth import names as N
from preau.synth.pupils import ABBREV, VARIANTS, _ine, assign_schools, class_labels, make_children, year_rows
from preau.synth.territory import build_territory, load_communes, load_departements, to_wgs84

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


def _pick(rng, items: list[str], n: int, s: float = 0.8) -> np.ndarray:
    return np.asarray(items, dtype=object)[rng.choice(len(items), n, p=N.zipf_weights(len(items), s))]


def _address_text(rng, rows: pd.DataFrame, streets: pd.Series, variant: np.ndarray) -> np.ndarray:
    """The address line as a family declared it: mostly clean, some upper case, abbreviated, typos."""
    nom = streets.to_numpy()
    numero = rows["numero"].astype(str).to_numpy()
    rep = rows["rep"].to_numpy()
    num = np.where(rep == "", numero, np.char.add(np.char.add(numero.astype(str), " "), rep.astype(str)))
    out = np.empty(len(rows), dtype=object)
    for i, v in enumerate(variant):  # per pupil only for the ~30 % of noisy variants
        street = nom[i]
        kind = VARIANTS[v]
        if kind == "majuscules":
            street = street.upper()
        elif kind == "abreviation":
            head, _, tail = street.partition(" ")
            street = f"{ABBREV.get(head, head)} {tail}"
        elif kind == "sans_accents":
            import unicodedata
            street = unicodedata.normalize("NFKD", street).encode("ascii", "ignore").decode()
        elif kind == "faute_de_frappe" and len(street) > 8:
            j = int(rng.integers(len(street) // 2, len(street) - 2))
            street = street[:j] + street[j + 1] + street[j] + street[j + 2:]
        if "'" in street and rng.random() < 0.3:
            street = street.replace("'", "’")
        out[i] = street if kind == "sans_numero" else f"{num[i]} {street}"
    return out


def _write_cp1252(df: pl.DataFrame, path: Path, append: bool = False) -> None:
    """Write (or append) a CSV in Windows-1252 with ``;``, in chunks: bounded memory."""
    with open(path, "ab" if append else "wb") as fh:
        df = df.with_columns(pl.col(pl.String).replace("", None))  # empty cells unquoted, as exports do
        for start in range(0, max(df.height, 1), 200_000):
            buf = io.BytesIO()
            df.slice(start, 200_000).write_csv(buf, separator=";", include_header=start == 0 and not append,
                                               line_terminator="\r\n")
            fh.write(buf.getvalue().decode("utf-8").encode("cp1252", errors="replace"))


def _pupil_export(rng, terr, kids: pd.DataFrame, year: int, communes_m, dep_communes: pd.DataFrame) -> pl.DataFrame:
    k = year_rows(rng, terr, kids, year)
    n = len(k)
    addr = terr.addresses.iloc[k.addr_idx.to_numpy()]
    streets = terr.streets.set_index("street_id")["nom_voie"].reindex(addr.street_id.to_numpy())
    cinfo = dep_communes.set_index("code_insee")
    school = terr.schools.set_index("uai")
    # names are fixed per child: draw with a generator seeded by the child serial
    crng = np.random.default_rng(k.serial.to_numpy() % (2**32))
    surname = _pick(crng, N.SURNAMES, n, 0.6)
    girls = k.sexe.to_numpy() == "F"
    first = np.where(girls, _pick(crng, N.GIRLS, n), _pick(crng, N.BOYS, n))
    r1_first = np.where(crng.random(n) < 0.7, _pick(crng, N.ADULT_WOMEN, n), _pick(crng, N.ADULT_MEN, n))
    has_r2 = crng.random(n) < 0.8
    r2_first = np.where(has_r2, _pick(crng, N.ADULT_MEN, n), "")
    r2_name = np.where(has_r2, np.where(crng.random(n) < 0.75, surname, _pick(crng, N.SURNAMES, n)), "")
    r1_name = np.where(crng.random(n) < 0.8, surname, _pick(crng, N.SURNAMES, n))
    phone = ["0" + str(6 + (x % 2)) + " " + " ".join(f"{(x >> (8 * j)) % 100:02d}" for j in range(4))
             for x in crng.integers(0, 2**40, n)]
    doy = crng.integers(0, 365, n)
    birth = pd.DatetimeIndex(pd.to_datetime(k.birth_year.astype(str).to_numpy() + "-01-01") + pd.to_timedelta(doy, unit="D"))
    big = dep_communes.sort_values("population", ascending=False)
    birth_place = np.where(crng.random(n) < 0.75,
                           big["nom"].to_numpy()[np.minimum(crng.geometric(0.25, n) - 1, len(big) - 1)],
                           _pick(crng, N.BIRTH_PLACES_OUTSIDE, n))
    home_commune = addr.code_insee.to_numpy()
    school_commune = school["code_insee"].reindex(k.uai.to_numpy()).to_numpy()
    rng_year = np.random.default_rng([int(year), int(k.serial.sum() % 2**32)])
    cantine = rng_year.random(n) < k.cantine_p.to_numpy()
    peri = rng_year.random(n) < k.peri_p.to_numpy()
    transport = np.where(home_commune != school_commune, rng_year.random(n) < 0.6, rng_year.random(n) < 0.03)
    yes_no = lambda a: np.where(a, "Oui", "Non")  # noqa: E731
    postcode = cinfo["codes_postaux"].reindex(home_commune).fillna("").str.split(",").str[0].to_numpy()
    df = pl.DataFrame({
        "Année scolaire": np.full(n, school_year(year)), "INE": k.ine.to_numpy(),
        "Nom élève": surname.astype(str), "Prénom élève": first.astype(str), "Sexe": k.sexe.to_numpy(),
        "Date de naissance": birth.strftime("%d/%m/%Y").to_numpy(), "Commune de naissance": birth_place.astype(str),
        "Adresse": _address_text(rng, addr, streets, k.variant.to_numpy()).astype(str),
        "Code postal": postcode.astype(str), "Commune": cinfo["nom"].reindex(home_commune).to_numpy().astype(str),
        "Code INSEE commune": home_commune.astype(str), "UAI école": k.uai.to_numpy().astype(str),
        "Nom de l'école": school["nom"].reindex(k.uai.to_numpy()).to_numpy().astype(str),
        "Niveau": k.niveau.to_numpy().astype(str),
        "Nom responsable légal 1": r1_name.astype(str), "Prénom responsable légal 1": r1_first.astype(str),
        "Téléphone responsable légal 1": np.asarray(phone, dtype=str), "Nom responsable légal 2": r2_name.astype(str),
        "Prénom responsable légal 2": r2_first.astype(str), "Restauration scolaire": yes_no(cantine),
        "Accueil périscolaire": yes_no(peri), "Transport scolaire": yes_no(transport),
        "_ban_id": addr.ban_id.to_numpy().astype(str), "_secteur": k.code_secteur.to_numpy().astype(str),
        "_variant": np.asarray(VARIANTS, dtype=object)[k.variant.to_numpy()].astype(str),
    })
    df = class_labels(df.rename({"UAI école": "uai", "Niveau": "niveau"})).rename({"uai": "UAI école", "niveau": "Niveau"})
    return df.rename({"classe": "Classe"}).select(list(ONDE_HEADERS) + ["_ban_id", "_secteur", "_variant"])


def generate(out_dir: str | Path = "_build/synth", departements: list[str] | None = None, *, seed: int = 2026,
             years: int = 3, last_year: int = 2026, scale: float = 1.0, pupils: int | None = None,
             address_density: float = 1.0, xlsx: bool = False, sector_polygons: bool = True,
             progress: Callable[[str, int, int], None] | None = None) -> SynthResult:
    """Generate a synthetic territory into ``out_dir`` (replaced). See the module docstring.

    ``departements``: codes (default ``["65"]``), or ``["all"]``. ``pupils``: target number of pupils
    in the last school year (scales the birth rate); ``scale`` multiplies it directly.
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
    communes = all_communes[all_communes["departement"].isin(departements)]
    if pupils:
        # ≈ 9.3 enrolled pupils per cohort-child of a birth year (TPS share, behind/ahead): calibrate
        scale = pupils / (communes["population"].sum() * 0.0105 * 8.96)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "verite").mkdir(parents=True)
    year_list = list(range(last_year - years + 1, last_year + 1))
    result = SynthResult(out, departements, [school_year(y) for y in year_list])
    dep_info = load_departements()
    rng_root = np.random.default_rng(seed)
    serial = 0
    schools_all, rules_all, sectors_all = [], [], []
    xlsx_parts: dict[int, list[pl.DataFrame]] = {y: [] for y in year_list}
    parts_dir = out / "verite" / ".parts"
    parts_dir.mkdir()
    communes_out = communes.drop(columns=[]).copy()
    communes_out.to_file(out / "communes.geojson", driver="GeoJSON")
    result.add("communes", out / "communes.geojson")
    for i, dep in enumerate(departements):
        if progress:
            progress(dep, i, len(departements))
        rng = np.random.default_rng([seed, i])
        dep_communes = communes[communes["departement"] == dep]
        terr = build_territory(rng, dep, dep_communes, dep_info.loc[dep], address_density, sector_polygons)
        _write_ban(terr, dep_communes, out / f"adresses-{dep}.csv")
        result.add("adresses", out / f"adresses-{dep}.csv")
        kids = make_children(rng, terr, year_list, scale, serial)
        serial += len(kids)
        kids["ine"] = _ine(kids.serial.to_numpy())
        kids = assign_schools(rng, terr, kids)
        for y in year_list:  # streamed: each département's pupils are written, then dropped
            df = _pupil_export(rng, terr, kids, y, terr.communes, dep_communes)
            df.select(pl.col("INE").alias("identifiant_eleve"), pl.col("Année scolaire").alias("annee_scolaire"),
                      pl.col("_ban_id").alias("ban_id"), pl.col("_secteur").alias("code_secteur_residence"),
                      pl.col("UAI école").alias("uai"), pl.col("Niveau").alias("niveau"),
                      pl.col("_variant").alias("variante_adresse")).write_parquet(
                parts_dir / f"eleves-{school_year(y)}-{i:04d}.parquet")
            df = df.drop(["_ban_id", "_secteur", "_variant"])
            _write_cp1252(df, out / f"eleves-{school_year(y)}.csv", append=i > 0)
            key = f"eleves {school_year(y)}"
            result.counts[key] = result.counts.get(key, 0) + df.height
            if xlsx:
                xlsx_parts[y].append(df)
            del df
        schools_all.append(_schools_table(terr))
        rules_all.append(terr.rules)
        if terr.sectors is not None:
            sectors_all.append(terr.sectors.to_crs(4326))
        result.counts["adresses"] = result.counts.get("adresses", 0) + len(terr.addresses)
        del kids, terr
    schools = pd.concat(schools_all, ignore_index=True)
    schools.to_csv(out / "ecoles.csv", sep=";", index=False)
    result.add("ecoles", out / "ecoles.csv")
    pd.concat(rules_all, ignore_index=True).to_csv(out / "carte-scolaire.csv", sep=";", index=False)
    result.add("carte-scolaire", out / "carte-scolaire.csv")
    if sectors_all:
        pd.concat(sectors_all, ignore_index=True).pipe(gpd.GeoDataFrame, crs=4326).to_file(
            out / "secteurs.geojson", driver="GeoJSON")
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
        "seed": seed, "departements": departements, "school_years": result.school_years,
        "counts": result.counts, "generator": "preau.synth",
        "licence": "Données entièrement fictives ; limites communales IGN ADMIN EXPRESS COG 2020 (Licence Ouverte 2.0)",
    }, ensure_ascii=False, indent=2), encoding="utf-8")
    return result


def _write_ban(terr, dep_communes: pd.DataFrame, path: Path) -> None:
    a = terr.addresses
    streets = terr.streets.set_index("street_id")
    lon, lat = to_wgs84(terr.crs, a.x.to_numpy(), a.y.to_numpy())
    cinfo = dep_communes.set_index("code_insee")
    from preau.synth.territory import afnor

    nom_voie = streets["nom_voie"].reindex(a.street_id).to_numpy()
    afnor_by_street = {s: afnor(v) for s, v in streets["nom_voie"].items()}
    df = pd.DataFrame({
        "id": a.ban_id, "id_fantoir": streets["fantoir"].reindex(a.street_id).to_numpy(), "numero": a.numero,
        "rep": a.rep, "nom_voie": nom_voie,
        "code_postal": cinfo["codes_postaux"].reindex(a.code_insee).fillna("").str.split(",").str[0].to_numpy(),
        "code_insee": a.code_insee, "nom_commune": cinfo["nom"].reindex(a.code_insee).to_numpy(),
        "code_insee_ancienne_commune": "", "nom_ancienne_commune": "",
        "x": a.x.round(2), "y": a.y.round(2), "lon": np.round(lon, 6), "lat": np.round(lat, 6),
        "type_position": "entrée", "alias": "", "nom_ld": "",
        "libelle_acheminement": cinfo["nom"].reindex(a.code_insee).str.upper().to_numpy(),
        "nom_afnor": [afnor_by_street[s] for s in a.street_id], "source_position": "preau-synth",
        "source_nom_voie": "preau-synth", "certification_commune": 0, "cad_parcelles": "",
    })
    df[BAN_COLUMNS].to_csv(path, sep=";", index=False)


def _schools_table(terr) -> pd.DataFrame:
    s = terr.schools
    lon, lat = to_wgs84(terr.crs, s.x.to_numpy(), s.y.to_numpy())
    streets = terr.streets.set_index("street_id")["nom_voie"]
    cinfo = terr.communes.set_index("code_insee")
    num = s["numero"].astype(str) + np.where(s["rep_indice"] == "", "", " " + s["rep_indice"])
    return pd.DataFrame({
        "identifiant_de_l_etablissement": s.uai, "nom_etablissement": s.nom, "denomination_principale": s.denomination,
        "patronyme": s.patronyme, "type_etablissement": "Ecole", "type_ecole": s.type_ecole,
        "statut_public_prive": s.statut, "adresse_1": num + " " + streets.reindex(s.street_id).to_numpy(),
        "code_postal": cinfo["codes_postaux"].reindex(s.code_insee).fillna("").str.split(",").str[0].to_numpy(),
        "code_commune": s.code_insee, "nom_commune": s.nom_commune, "latitude": np.round(lat, 6),
        "longitude": np.round(lon, 6), "coordx_origine": s.x.round(1), "coordy_origine": s.y.round(1),
        "epsg_origine": f"EPSG:{terr.crs}", "code_secteur": s.code_secteur, "ban_id": s.ban_id,
        "rpi": s.code_secteur.map(lambda c: bool(c) and (terr.addresses.code_secteur == c).any()
                                  and terr.addresses.loc[terr.addresses.code_secteur == c, "code_insee"].nunique() > 1),
        "restauration": s.restauration, "ulis": s.ulis, "rep": s.rep, "rep_plus": s.rep_plus,
        "code_departement": terr.dep, "departement": s["departement"], "code_academie": s["code_academie"],
        "libelle_academie": s["academie"], "code_region": s["code_region"], "region": s["region"],
    })
