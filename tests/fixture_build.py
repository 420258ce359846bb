"""A small build output for packaging / catalog tests and the publish bench.

Writes a workspace (publishers/, datasets/, a copy of the repository's schemas/) and
``_build/data/<publisher>/<dataset>/`` folders with manifest.json as the build writes them
(docs/ARCHITECTURE.md): aggregate count tables only (generated numbers, no personal data), one
restricted table and one small layer. ``scale`` multiplies the number of communes / sectors.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
NIVEAUX = ["TPS", "PS", "MS", "GS", "CP", "CE1", "CE2", "CM1", "CM2", "ULIS", "C1", "C2", "C3", "TOTAL"]
YEARS = ("2024-2025", "2025-2026")


def _uai(n: int) -> str:
    return f"{650000 + n:07d}{'ABCDEFGHJKLMNPRSTUVWXYZ'[n % 23]}"


def write_workspace(root: Path, publisher: str = "demo-65", *, restricted_tag: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "schemas").exists():
        shutil.copytree(REPO / "schemas", root / "schemas")
    (root / "publishers").mkdir(exist_ok=True)
    (root / "datasets").mkdir(exist_ok=True)
    (root / "publishers" / f"{publisher}.toml").write_text(
        f'id = "{publisher}"\n'
        'name = { fr = "Département de démonstration (65)", en = "Demo department (65)" }\n'
        'kind = "departement"\nterritory = ["65"]\nlicence = "etalab-2.0"\n'
        'email = "donnees@example.org"\n', encoding="utf-8")
    ds = root / "datasets"
    (ds / "effectifs-commune-niveau.toml").write_text(
        'id = "effectifs-commune-niveau"\n'
        'title = { fr = "Effectifs par commune de résidence et niveau", en = "Pupils by commune of residence and level" }\n'
        'description = { fr = "Nombre d\'élèves du premier degré par commune de résidence et niveau.", '
        'en = "Number of primary pupils by commune of residence and level." }\n'
        'dimensions = ["annee_scolaire", "code_insee", "niveau"]\nmeasure = "effectif"\n'
        'schema = "effectifs-commune-niveau"\nlicence = "etalab-2.0"\nfrequency = "annual"\naccess = "public"\n'
        'keywords = ["effectifs", "communes"]\n'
        '[disclosure]\nrule = "threshold"\nk = 5\n', encoding="utf-8")
    (ds / "flux-secteur-ecole-niveau.toml").write_text(
        'id = "flux-secteur-ecole-niveau"\n'
        f'title = {{ fr = "Flux secteur → école par niveau{restricted_tag}", en = "Sector → school flows by level" }}\n'
        'description = { fr = "Tableau fin réservé à la collectivité.", en = "Fine table restricted to the authority." }\n'
        'dimensions = ["annee_scolaire", "code_secteur", "uai", "niveau"]\nmeasure = "effectif"\n'
        'schema = "flux-secteur-ecole-niveau"\nlicence = "etalab-2.0"\nfrequency = "annual"\naccess = "restricted"\n'
        '[disclosure]\nrule = "threshold"\nk = 3\n', encoding="utf-8")
    shutil.copy(REPO / "datasets" / "carte-ecoles.toml", ds / "carte-ecoles.toml") if (
        REPO / "datasets" / "carte-ecoles.toml").exists() else None
    return root


def _communes(n: int) -> list[tuple[str, str]]:
    frame = pl.read_parquet(REPO / "src/preau/synth/data/communes.parquet", columns=["code_insee", "nom", "departement"])
    frame = frame.filter(pl.col("departement") == "65").sort("code_insee").head(n)
    return list(zip(frame["code_insee"].to_list(), frame["nom"].to_list()))


def _write_table(folder: Path, dataset: str, publisher: str, frame: pl.DataFrame, years: tuple[str, ...],
                 k: int, insee: list[str], schema: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_csv(folder / f"{dataset}.csv")
    frame.write_parquet(folder / f"{dataset}.parquet")
    resources = [
        {"path": f"{dataset}.csv", "format": "csv", "school_year": None, "schema": schema, "rows": frame.height,
         "title": {"fr": "Toutes les années (CSV)", "en": "All years (CSV)"}},
        {"path": f"{dataset}.parquet", "format": "parquet", "school_year": None, "schema": schema, "rows": frame.height,
         "title": {"fr": "Toutes les années (Parquet)", "en": "All years (Parquet)"}},
    ]
    for year in years:
        part = frame.filter(pl.col("annee_scolaire") == year)
        part.write_csv(folder / f"{dataset}-{year}.csv")
        resources.append({"path": f"{dataset}-{year}.csv", "format": "csv", "school_year": year, "schema": schema,
                          "rows": part.height, "title": {"fr": f"Année {year} (CSV)", "en": f"Year {year} (CSV)"}})
    hidden = int(frame["secret"].sum())
    disclosure = {"rule": "threshold", "k": k, "protection_width": k, "cells": frame.height, "cells_hidden": hidden,
                  "pupils_hidden": hidden * 2, "audit": "passed"}
    (folder / "disclosure.json").write_text(json.dumps(disclosure, indent=2), encoding="utf-8")
    (folder / "validation.json").write_text(json.dumps({"valid": True, "stats": {"errors": 0}, "tasks": []}, indent=2),
                                            encoding="utf-8")
    manifest = {"dataset": dataset, "publisher": publisher, "kind": "table", "school_years": list(years),
                "resources": resources, "disclosure": disclosure,
                "validation": {"valid": True, "report": "validation.json"},
                "spatial": {"insee": insee, "bbox": [-0.33, 42.67, 0.65, 43.61]},
                "temporal": {"start": f"{years[0][:4]}-09-01", "end": f"{years[-1][5:]}-08-31"},
                "preview": None}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def write_build(root: Path, publisher: str = "demo-65", *, scale: int = 1, years: tuple[str, ...] = YEARS,
                seed: int = 0, layer: bool = True) -> Path:
    """Write ``root/_build/data/<publisher>/…``; returns the data folder."""
    rng = random.Random(seed)
    data = root / "_build" / "data"
    communes = _communes(8 * scale)
    insee = [c for c, _ in communes]
    rows = []
    for year in years:
        for code, nom in communes + [("TOTAL", "")]:
            for niveau in NIVEAUX:
                value = rng.randint(0, 60)
                secret = value < 5
                rows.append({"annee_scolaire": year, "code_insee": code, "nom_commune": nom, "niveau": niveau,
                             "effectif": None if secret else value, "secret": secret})
    frame = pl.DataFrame(rows, schema={"annee_scolaire": pl.Utf8, "code_insee": pl.Utf8, "nom_commune": pl.Utf8,
                                       "niveau": pl.Utf8, "effectif": pl.Int64, "secret": pl.Boolean})
    _write_table(data / publisher / "effectifs-commune-niveau", "effectifs-commune-niveau", publisher, frame, years,
                 5, insee, "effectifs-commune-niveau")
    rows = []
    for year in years:
        for s in range(4 * scale):
            sector = f"{insee[s % len(insee)]}-{s:02d}"
            for u in range(2):
                for niveau in NIVEAUX[:10]:
                    value = rng.randint(0, 30)
                    secret = value < 3
                    rows.append({"annee_scolaire": year, "code_secteur": sector, "uai": _uai(s * 2 + u),
                                 "niveau": niveau, "effectif": None if secret else value, "secret": secret})
    frame = pl.DataFrame(rows, schema={"annee_scolaire": pl.Utf8, "code_secteur": pl.Utf8, "uai": pl.Utf8,
                                       "niveau": pl.Utf8, "effectif": pl.Int64, "secret": pl.Boolean})
    _write_table(data / publisher / "flux-secteur-ecole-niveau", "flux-secteur-ecole-niveau", publisher, frame,
                 years, 3, insee, "flux-secteur-ecole-niveau")
    if layer and (root / "datasets" / "carte-ecoles.toml").exists():
        folder = data / publisher / "carte-ecoles"
        folder.mkdir(parents=True, exist_ok=True)
        features = []
        for n in range(5 * scale):
            code, nom = communes[n % len(communes)]
            features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [
                round(0.0 + rng.random() / 10, 6), round(43.2 + rng.random() / 10, 6)]},
                "properties": {"uai": _uai(n), "nom": f"École {n}", "type_ecole": "primaire", "statut": "public",
                               "code_insee": code, "nom_commune": nom, "code_secteur": f"{code}-01",
                               "restauration": True, "ulis": False}})
        (folder / "carte-ecoles.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False), encoding="utf-8")
        (folder / "validation.json").write_text(json.dumps({"valid": True}), encoding="utf-8")
        manifest = {"dataset": "carte-ecoles", "publisher": publisher, "kind": "layer", "school_years": [years[-1]],
                    "resources": [{"path": "carte-ecoles.geojson", "format": "geojson", "school_year": None,
                                   "schema": "couche-ecoles", "crs": "EPSG:4326", "rows": len(features),
                                   "title": {"fr": "Écoles (GeoJSON, WGS84)", "en": "Schools (GeoJSON, WGS84)"}}],
                    "disclosure": None, "validation": {"valid": True, "report": "validation.json"},
                    "spatial": {"insee": insee, "bbox": [0.0, 43.2, 0.1, 43.3]},
                    "temporal": {"start": f"{years[-1][:4]}-09-01", "end": f"{years[-1][5:]}-08-31"}, "preview": None}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return data


def make(root: Path, publisher: str = "demo-65", **kwargs) -> tuple[Path, Path]:
    """Workspace + build in ``root``; returns (workspace, data_dir)."""
    tag = kwargs.pop("restricted_tag", "")
    write_workspace(root, publisher, restricted_tag=tag)
    return root, write_build(root, publisher, **kwargs)
