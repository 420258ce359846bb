"""Geography: offline BAN geocoder, school sectors (read or built from rules), assignment, layers.

Pipeline entry point (the whole geo stage, one département at a time)::

    codes, quality, sectors = locate_pupils(pupils, ban_paths, sector_rules="carte-scolaire.csv",
                                            communes="communes.geojson")   # or sectors="secteurs.geojson"

Building blocks::

    ref = load_reference([".../adresses-65.csv"])                       # BAN reference
    sectors = read_sectors("secteurs.geojson")                          # or build_sectors(rules, ref, communes).sectors
    res = assign_sectors(pupils, ref, sectors,
                         columns={"adresse": "adresse", "code_postal": "code_postal",
                                  "commune": "commune_residence", "code_insee": "code_insee_residence"})
    # res: code_secteur_residence, result_type, result_score, result_code_insee (same row order; no coordinates)
    publish_layers("_build/data", "demo-65", schools=schools_layer("ecoles.csv"), sectors=sectors,
                   communes=read_communes("communes.geojson"), counts=protected_sector_table)
"""

from preau.geo.assign import SectorIndex, assign_points, assign_sectors
from preau.geo.geocode import geocode, quality
from preau.geo.locate import Located, locate_pupils
from preau.geo.layers import (LayerJob, build_layers, communes_layer, publish_layers, schools_layer, sector_counts,
                              sectors_layer, start_layers, svg_preview, wgs84_bounds, write_layer)
from preau.geo.reference import Reference, load_reference
from preau.geo.sectors import SectorBuild, build_sectors, check_topology, read_communes, read_rules, read_sectors

__all__ = [
    "LayerJob", "Located", "locate_pupils", "Reference", "SectorBuild", "build_layers", "SectorIndex", "assign_points", "assign_sectors", "build_sectors", "check_topology",
    "communes_layer", "geocode", "load_reference", "publish_layers", "quality", "read_communes", "read_rules",
    "read_sectors", "schools_layer", "sector_counts", "sectors_layer", "start_layers", "svg_preview", "wgs84_bounds",
    "write_layer",
]
