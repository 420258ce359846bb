"""A synthetic local catalog for the site's tests and bench, made by the real pipeline stages.

Writes a workspace (the repository's ``schemas/`` and ``datasets/`` + one publisher), build folders
``_build/data/<publisher>/<dataset>/`` as the build writes them (aggregate counts only: generated
numbers, school names made of place words, never a person's name), the geo layers through
:mod:`preau.geo.layers`, then packages them (:func:`preau.package.build_packages`) and publishes the
local catalog (:func:`preau.catalog.local.write_local_catalog`). Real commune names and outlines.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import polars as pl

from preau.codes import make_uai

REPO = Path(__file__).resolve().parents[3]
DATA = Path(__file__).resolve().parents[1] / "synth" / "data" / "communes.parquet"
YEARS = ("2024-2025", "2025-2026", "2026-2027")
PLACES = ["DES TILLEULS", "DU CENTRE", "DE LA GARE", "DES PINS", "DU BOURG", "DES VIGNES", "DU LAC",
          "DES PRES", "DU MOULIN", "DES CHENES", "DE LA RIVIERE", "DU PARC", "DES ECUREUILS", "DU PLATEAU"]
LEVELS = ["tps", "ps", "ms", "gs", "cp", "ce1", "ce2", "cm1", "cm2"]
PUBLISHER_TOML = (
    'id = "{pid}"\n'
    'name = {{ fr = "Territoire de test ({deps})", en = "Test territory ({deps})" }}\n'
    'kind = "departement"\nterritory = [{terr}]\nlicence = "etalab-2.0"\n'
    'homepage = "https://example.org/preau-test"\nemail = "donnees@example.org"\n')
TITLES = {"effectifs-commune-niveau": "effectifs-commune-niveau"}


def _communes(departements: tuple[str, ...] | None, limit: int | None) -> pl.DataFrame:
    frame = pl.read_parquet(DATA)
    if departements:
        frame = frame.filter(pl.col("departement").is_in(list(departements)))
    frame = frame.sort("code_insee")
    if not limit or limit >= frame.height:
        return frame
    # a compact territory: the communes nearest to the most populated one (so the map reads well)
    import shapely

    centres = shapely.centroid(shapely.from_wkb(frame["geometry"].to_numpy()))
    x, y = shapely.get_x(centres), shapely.get_y(centres)
    big = int(frame["population"].fill_null(0).arg_max())
    dist = (x - x[big]) ** 2 + (y - y[big]) ** 2
    order = sorted(range(frame.height), key=lambda i: dist[i])[:limit]
    return frame[sorted(order)]


def write_workspace(root: Path, publisher: str, departements: tuple[str, ...], title_suffix: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("schemas", "datasets"):
        if not (root / sub).exists():
            shutil.copytree(REPO / sub, root / sub)
    restricted = root / "datasets" / "flux-secteur-ecole-niveau.toml"
    if not restricted.exists():  # the sample keeps a restricted dataset (example definition in docs/)
        shutil.copy(REPO / "docs" / "examples" / "flux-secteur-ecole-niveau.toml", restricted)
    if title_suffix:  # e.g. markup in a title, to check the site escapes it
        path = root / "datasets" / "effectifs-commune-niveau.toml"
        text = path.read_text(encoding="utf-8")
        lines = [line.replace('title = { fr = "', 'title = { fr = "' + title_suffix.replace('"', '\\"') + ' ', 1)
                 if line.startswith("title") else line for line in text.splitlines()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "publishers").mkdir(exist_ok=True)
    (root / "publishers" / f"{publisher}.toml").write_text(PUBLISHER_TOML.format(
        pid=publisher, deps=", ".join(departements) or "France", terr=", ".join(f'"{d}"' for d in departements)),
        encoding="utf-8")


def _manifest(folder: Path, dataset: str, publisher: str, resources: list[dict], years: tuple[str, ...],
              disclosure: dict | None, insee: list[str], kind: str = "table") -> None:
    manifest = {"dataset": dataset, "publisher": publisher, "kind": kind, "school_years": list(years),
                "resources": resources, "disclosure": disclosure,
                "validation": {"valid": True, "report": "validation.json"},
                "spatial": {"insee": insee, "bbox": None},
                "temporal": {"start": f"{years[0][:4]}-09-01", "end": f"{years[-1][5:]}-08-31"}, "preview": None}
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")


def _table(folder: Path, dataset: str, publisher: str, frame: pl.DataFrame, years: tuple[str, ...],
           disclosure: dict | None, insee: list[str], per_year: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_csv(folder / f"{dataset}.csv")
    resources = [{"path": f"{dataset}.csv", "format": "csv", "school_year": None, "schema": dataset,
                  "rows": frame.height}]
    if per_year:
        for year in years:
            part = frame.filter(pl.col("annee_scolaire") == year)
            part.write_csv(folder / f"{dataset}-{year}.csv")
            resources.append({"path": f"{dataset}-{year}.csv", "format": "csv", "school_year": year,
                              "schema": dataset, "rows": part.height})
    (folder / "validation.json").write_text(json.dumps(
        {"valid": True, "stats": {"errors": 0, "tasks": 1},
         "tasks": [{"name": dataset, "valid": True, "stats": {"rows": frame.height}, "errors": []}]}),
        encoding="utf-8")
    if disclosure:
        (folder / "disclosure.json").write_text(json.dumps(disclosure), encoding="utf-8")
    _manifest(folder, dataset, publisher, resources, years, disclosure, insee)


def write_build(root: Path, publisher: str, communes: pl.DataFrame, *, schools_per_commune: int = 2,
                total_schools: int | None = None,
                years: tuple[str, ...] = YEARS, seed: int = 7, layers: bool = True, restricted: bool = True) -> Path:
    rng = random.Random(seed)
    data = root / "_build" / "data" / publisher
    insee = communes["code_insee"].to_list()
    names = communes["nom"].to_list()
    deps = communes["departement"].to_list()
    regs = communes["region"].to_list()
    cps = communes["codes_postaux"].to_list()
    # --- schools (ministry-shaped wide table) ---------------------------------------------------
    schools = []
    n = 0
    per_dep: dict[str, int] = {}
    for i, code in enumerate(insee):
        if total_schools:
            count = total_schools // len(insee) + (1 if i < total_schools % len(insee) else 0)
        else:
            count = schools_per_commune if i % 3 else schools_per_commune + 1
        for j in range(count):
            n += 1
            dep = deps[i]
            prefix = {"2A": 620, "2B": 720}.get(dep, int(dep) if dep.isdigit() else 0)
            per_dep[dep] = per_dep.get(dep, 0) + 1
            number = prefix * 10000 + per_dep[dep]
            schools.append({"uai": make_uai(number), "i": i, "sector": f"{code}-{j % 2 + 1:02d}",
                            "public": (n % 5) != 0, "name": f"ECOLE PRIMAIRE {PLACES[n % len(PLACES)]}",
                            "base": rng.randint(40, 260)})
    rows = []
    for y, year in enumerate(years):
        for s in schools:
            i = s["i"]
            levels = {lv: max(0, int(s["base"] / 9 + rng.randint(-4, 4) + y)) for lv in LEVELS}
            ulis = rng.choice([0, 0, 0, 8, 12])
            pre = sum(levels[lv] for lv in LEVELS[:4])
            ele = sum(levels[lv] for lv in LEVELS[4:])
            row = {"rentree_scolaire": int(year[:4]), "annee_scolaire": year, "code_region": regs[i] or "",
                   "region_academique": "REGION", "code_academie": "00", "academie": "ACADEMIE",
                   "code_departement": f"0{deps[i]}" if len(deps[i]) == 2 else deps[i],
                   "departement": f"DEPARTEMENT {deps[i]}", "code_insee": insee[i], "commune": names[i],
                   "code_postal": (cps[i] or "").split(",")[0][:5], "numero_de_l_ecole": s["uai"],
                   "denomination_principale": s["name"].split(" ", 2)[0] + " " + s["name"].split(" ", 2)[1],
                   "patronyme": s["name"].split(" ", 2)[2], "secteur": "public" if s["public"] else "privé",
                   "rep": 0, "rep_plus": 0, "nombre_total_de_classes": max(1, (pre + ele + ulis) // 24),
                   "nombre_total_d_eleves": pre + ele + ulis, "nombre_d_eleves_en_pre_elementaire_hors_ulis": pre,
                   "nombre_d_eleves_en_elementaire_hors_ulis": ele, "nombre_d_eleves_en_ulis": ulis}
            row.update({f"nombre_d_eleves_en_{lv}_hors_ulis": levels[lv] for lv in LEVELS})
            rows.append(row)
    frame = pl.DataFrame(rows)
    _table(data / "effectifs-ecole-niveau", "effectifs-ecole-niveau", publisher, frame, years,
           None, insee)
    # --- protected long table by commune (k = 5) ------------------------------------------------
    rows = []
    hidden = pupils = 0
    for year in years:
        for code, nom in list(zip(insee, names)) + [("TOTAL", "")]:
            for niveau in ("PS", "MS", "GS", "CP", "CE1", "CE2", "CM1", "CM2", "TOTAL"):
                value = rng.randint(0, 60)
                secret = value < 5
                hidden += secret
                pupils += value if secret else 0
                rows.append({"annee_scolaire": year, "code_insee": code, "nom_commune": nom, "niveau": niveau,
                             "effectif": None if secret else value, "secret": secret})
    frame = pl.DataFrame(rows, schema={"annee_scolaire": pl.Utf8, "code_insee": pl.Utf8, "nom_commune": pl.Utf8,
                                       "niveau": pl.Utf8, "effectif": pl.Int64, "secret": pl.Boolean})
    disclosure = {"rule": "threshold", "k": 5, "protection_width": 5, "cells": frame.height,
                  "cells_hidden": hidden, "pupils_hidden": pupils, "audit": "passed"}
    _table(data / "effectifs-commune-niveau", "effectifs-commune-niveau", publisher, frame, years, disclosure, insee)
    if restricted:
        rows = [{"annee_scolaire": year, "code_secteur": s["sector"], "uai": s["uai"], "niveau": "CP",
                 "effectif": None, "secret": True} for year in years for s in schools[:20]]
        frame = pl.DataFrame(rows, schema={"annee_scolaire": pl.Utf8, "code_secteur": pl.Utf8, "uai": pl.Utf8,
                                           "niveau": pl.Utf8, "effectif": pl.Int64, "secret": pl.Boolean})
        _table(data / "flux-secteur-ecole-niveau", "flux-secteur-ecole-niveau", publisher, frame, years,
               {"rule": "threshold", "k": 3, "cells": frame.height, "cells_hidden": frame.height,
                "pupils_hidden": 0, "audit": "passed"}, insee)
    if layers:
        _layers(root, publisher, communes, schools)
    return root / "_build" / "data"


def _layers(root: Path, publisher: str, communes: pl.DataFrame, schools: list[dict]) -> None:
    import geopandas as gpd
    import shapely
    from shapely.geometry import box

    from preau.geo.layers import publish_layers

    geoms = shapely.from_wkb(communes["geometry"].to_numpy())
    cgdf = gpd.GeoDataFrame({"code_insee": communes["code_insee"].to_list(), "nom": communes["nom"].to_list(),
                             "population": communes["population"].to_list(),
                             "departement": communes["departement"].to_list()}, geometry=geoms, crs="EPSG:4326")
    sectors, points = [], []
    by_commune: dict[int, list[dict]] = {}
    for s in schools:
        by_commune.setdefault(s["i"], []).append(s)
    for i, geom in enumerate(geoms):
        minx, miny, maxx, maxy = geom.bounds
        mid = (minx + maxx) / 2
        halves = [geom.intersection(box(minx - 1, miny - 1, mid, maxy + 1)),
                  geom.intersection(box(mid, miny - 1, maxx + 1, maxy + 1))]
        code = communes["code_insee"][i]
        for k, half in enumerate(halves):
            if half.is_empty:
                continue
            sec = f"{code}-{k + 1:02d}"
            public = [s["uai"] for s in by_commune.get(i, []) if s["sector"] == sec and s["public"]]
            sectors.append({"code_secteur": sec, "uai": ",".join(public) or None, "communes": code,
                            "geometry": shapely.MultiPolygon([half]) if half.geom_type == "Polygon" else half})
        for s in by_commune.get(i, []):
            k = int(s["sector"][-2:]) - 1
            half = halves[k] if not halves[k].is_empty else geom
            pt = half.representative_point()
            points.append({"uai": s["uai"], "nom": s["name"], "type_ecole": "primaire",
                           "statut": "public" if s["public"] else "prive", "code_insee": code,
                           "nom_commune": communes["nom"][i], "code_secteur": s["sector"] if s["public"] else None,
                           "restauration": True, "ulis": False, "geometry": pt})
    sgdf = gpd.GeoDataFrame(sectors, geometry="geometry", crs="EPSG:4326").to_crs("EPSG:2154")
    egdf = gpd.GeoDataFrame(points, geometry="geometry", crs="EPSG:4326").to_crs("EPSG:2154")
    publish_layers(root / "_build" / "data", publisher, schools=egdf, sectors=sgdf, communes=cgdf.to_crs("EPSG:2154"),
                   schemas_dir=root / "schemas")


def write_sample_catalog(root: Path, *, publisher: str = "test-65", departements: tuple[str, ...] = ("65",),
                         communes: int | None = 12, schools_per_commune: int = 2, layers: bool = True,
                         restricted: bool = True, years: tuple[str, ...] = YEARS, seed: int = 7,
                         title_suffix: str = "", total_schools: int | None = None) -> Path:
    """Workspace + build + packages + local catalog under ``root``; returns ``root/_build/catalog``."""
    from preau.catalog.local import write_local_catalog
    from preau.package import build_packages

    write_workspace(root, publisher, departements, title_suffix)
    frame = _communes(departements, communes)
    write_build(root, publisher, frame, schools_per_commune=schools_per_commune, total_schools=total_schools,
                years=years, seed=seed,
                layers=layers, restricted=restricted)
    result = build_packages(root, root / "_build" / "data", root / "_build" / "packages")
    catalog = root / "_build" / "catalog"
    write_local_catalog(result.packages, catalog)
    return catalog
