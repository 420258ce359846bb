"""Small generated BAN-format territories for unit tests (street names only; no person data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from pyproj import Transformer

STREETS = ["Rue des Lilas", "Avenue Saint-Jean", "Boulevard de la République", "Chemin des Prés",
           "Impasse du Moulin", "Place de l'Église", "Allée des Tilleuls", "Route de Lourdes",
           "Rue du Faubourg Saint-Martin", "Square des Érables"]
COLUMNS = ["id", "id_fantoir", "numero", "rep", "nom_voie", "code_postal", "code_insee", "nom_commune",
           "code_insee_ancienne_commune", "nom_ancienne_commune", "x", "y", "lon", "lat", "type_position",
           "alias", "nom_ld", "libelle_acheminement", "nom_afnor", "source_position", "source_nom_voie",
           "certification_commune", "cad_parcelles"]
COMMUNES = [("65901", "Bourg-Fictif", "65900", 450_000.0), ("65902", "Saint-Exemple", "65900", 452_000.0)]
SIZE = 2_000.0  # commune squares, metres


def territory(n_numbers: int = 40) -> tuple[pl.DataFrame, dict]:
    """BAN rows and a communes GeoJSON dict: two square communes side by side, parallel streets."""
    to_wgs = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)
    rows = []
    features = []
    for insee, name, cp, x0 in COMMUNES:
        y0 = 6_250_000.0
        for s, street in enumerate(STREETS):
            y = y0 + 100 + s * 180
            for n in range(1, n_numbers + 1):
                x = x0 + 50 + (n - 1) // 2 * 45
                yy = y + (6 if n % 2 else -6)
                for rep in ([""] + (["bis"] if n % 7 == 0 else [])):
                    rows.append({"numero": n, "rep": rep, "nom_voie": street, "code_postal": cp, "code_insee": insee,
                                 "nom_commune": name, "x": x + (3 if rep else 0), "y": yy})
        ring = [[x0, y0], [x0 + SIZE, y0], [x0 + SIZE, y0 + SIZE], [x0, y0 + SIZE], [x0, y0]]
        lon, lat = to_wgs.transform([p[0] for p in ring], [p[1] for p in ring])
        features.append({"type": "Feature", "properties": {"code_insee": insee, "nom": name, "population": 1000,
                                                            "departement": "65", "region": "76", "codes_postaux": cp},
                         "geometry": {"type": "Polygon", "coordinates": [[[a, b] for a, b in zip(lon, lat)]]}})
    df = pl.DataFrame(rows)
    lon, lat = to_wgs.transform(df["x"].to_numpy(), df["y"].to_numpy())
    df = df.with_columns(
        (pl.col("code_insee") + "_" + pl.int_range(0, pl.len()).cast(pl.Utf8).str.zfill(5)).alias("id"),
        pl.Series("lon", np.round(lon, 6)), pl.Series("lat", np.round(lat, 6)),
        pl.col("x").round(2), pl.col("y").round(2))
    for c in COLUMNS:
        if c not in df.columns:
            df = df.with_columns(pl.lit("").alias(c))
    df = df.select(COLUMNS).with_columns(pl.all().cast(pl.Utf8))
    return df, {"type": "FeatureCollection", "features": features}


def write_territory(folder: Path, n_numbers: int = 40) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ban, communes = territory(n_numbers)
    paths = {"ban": folder / "adresses-65.csv", "communes": folder / "communes.geojson"}
    ban.write_csv(paths["ban"], separator=";")
    paths["communes"].write_text(json.dumps(communes), encoding="utf-8")
    return paths


RULE_COLUMNS = ["code_insee", "libelle_commune", "type_et_libelle", "n_de_voie_debut", "indice_de_repetition_debut",
                "n_de_voie_fin", "indice_de_repetition_fin", "parite", "code_rne", "secteur_unique", "code_secteur"]
SCHOOLS = {"65901-01": "0650901B", "65901-02": "0650902C", "65902-01": "0650903D"}


def truth_sector(insee: str, street: str, numero: int) -> str:
    """The sector the fixture rules give an address."""
    if insee == "65902":
        return "65902-01"
    s = STREETS.index(street)
    if s == 0:
        return "65901-01" if numero % 2 else "65901-02"
    if s == 3:
        return "65901-01" if numero <= 20 else "65901-02"
    return "65901-01" if s < 5 else "65901-02"


def rules_rows(extra_unknown_street: bool = False) -> list[dict]:
    rows = []
    def rule(street, d, f, par, code, unique="N", insee="65901", commune="Bourg-Fictif"):
        rows.append({"code_insee": insee, "libelle_commune": commune, "type_et_libelle": street,
                     "n_de_voie_debut": str(d) if d else "", "indice_de_repetition_debut": "",
                     "n_de_voie_fin": str(f) if f else "", "indice_de_repetition_fin": "", "parite": par,
                     "code_rne": SCHOOLS[code], "secteur_unique": unique, "code_secteur": code})
    rule(STREETS[0].upper(), 1, 9999, "I", "65901-01")
    rule(STREETS[0], 2, 9999, "P", "65901-02")
    rule("Chem. des Pres", 1, 20, "PI", "65901-01")
    rule("Chem. des Pres", 21, 9999, "PI", "65901-02")
    for s, street in enumerate(STREETS):
        if s in (0, 3):
            continue
        rule(street, 1, 9999, "PI", "65901-01" if s < 5 else "65901-02")
    if extra_unknown_street:
        rule("Rue Qui N'Existe Pas", 1, 9999, "PI", "65901-01")
    rule("", None, None, "PI", "65902-01", unique="O", insee="65902", commune="Saint-Exemple")
    return rows


def write_rules(path: Path, extra_unknown_street: bool = False) -> Path:
    pl.DataFrame(rules_rows(extra_unknown_street)).select(RULE_COLUMNS).write_csv(path, separator=";")
    return path
