"""DCAT-AP 3 metadata built from a Préau data package descriptor (``datapackage.json``).

The JSON-LD is written by hand with an inline ``@context`` (no remote context, no network) and a
deterministic node order, so that equal content gives equal bytes; Turtle is produced from it with
rdflib. Vocabularies: DCAT 3, DCT, FOAF, SPDX (checksums), LOCN/GeoSPARQL (bbox), EU authority
tables (file types, frequencies, data themes, languages, access rights), ADMS publisher types.

Mapping (DCAT-AP 3 property ← package):
- ``dct:title``/``dct:description`` (fr, en) ← dataset definition; ``dcat:keyword`` ← keywords
- ``dct:publisher`` (foaf:Agent, ``dct:type`` ADMS publisher type) ← publisher
- ``dct:temporal`` one ``dct:PeriodOfTime`` per school year (1 Sept – 31 Aug)
- ``dct:spatial`` a ``dct:Location`` with ``dcat:bbox`` (WKT) + one Location per INSEE commune code
  (per INSEE département code above ``MAX_COMMUNES`` communes)
- ``dct:conformsTo`` (dct:Standard) ← the pinned Table Schema file
- per distribution: ``dct:format``, ``dcat:mediaType``, ``dcat:byteSize``, ``spdx:checksum`` (sha256),
  ``dct:license``, ``dcat:downloadURL``/``dcat:accessURL``, ``dct:conformsTo``
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable

DEFAULT_BASE_URL = "http://localhost:8000/"

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "spdx": "http://spdx.org/rdf/terms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "adms": "http://www.w3.org/ns/adms#",
    "locn": "http://www.w3.org/ns/locn#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
}

EU = "http://publications.europa.eu/resource/authority/"
IANA = "https://www.iana.org/assignments/media-types/"
SHA256 = "http://spdx.org/rdf/terms#checksumAlgorithm_sha256"
INSEE_COMMUNE = "http://id.insee.fr/geo/commune/"
INSEE_DEPARTEMENT = "http://id.insee.fr/geo/departement/"
# Above this many communes a dataset's dct:spatial lists its départements instead (a national
# publisher's 35,000 commune URIs per dataset made the catalog's Turtle take 35 s to write)
MAX_COMMUNES = 1_000

# format -> (media type, label, EU file-type code or None, IANA-registered media type?)
FORMATS: dict[str, tuple[str, str, str | None, bool]] = {
    "csv": ("text/csv", "CSV", "CSV", True),
    "parquet": ("application/vnd.apache.parquet", "Parquet", "PARQUET", True),
    "geojson": ("application/geo+json", "GeoJSON", "GEOJSON", True),
    "gpkg": ("application/geopackage+sqlite3", "GeoPackage", "GPKG", True),
    "fgb": ("application/vnd.flatgeobuf", "FlatGeobuf", None, False),
    "json": ("application/json", "JSON", "JSON", True),
    "svg": ("image/svg+xml", "SVG", "SVG", True),
}
FREQUENCIES = {"annual": "ANNUAL", "semiannual": "ANNUAL_2", "quarterly": "QUARTERLY",
               "monthly": "MONTHLY", "irregular": "IRREG"}
PUBLISHER_TYPES = {"commune": "LocalAuthority", "epci": "LocalAuthority", "departement": "LocalAuthority",
                   "region": "RegionalAuthority", "academie": "NationalAuthority", "national": "NationalAuthority"}
INSEE_RE = re.compile(r"^(\d{5}|2[AB]\d{3})$")


def base_url(value: str | None = None) -> str:
    """Public base URL of the catalog (``PREAU_BASE_URL``), always ending with a slash."""
    url = value or os.environ.get("PREAU_BASE_URL") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def dataset_uri(name: str, access: str, base: str | None = None) -> str:
    folder = "restricted" if access == "restricted" else "datasets"
    return f"{base_url(base)}catalog/{folder}/{name}"


def publisher_uri(publisher_id: str, base: str | None = None) -> str:
    return f"{base_url(base)}catalog/publishers/{publisher_id}"


def format_info(fmt: str) -> tuple[str, str, str | None, bool]:
    return FORMATS.get(fmt.lower(), ("application/octet-stream", fmt.upper(), None, False))


def _lang(value: dict[str, str] | str | None) -> list[dict[str, str]]:
    if not value:
        return []
    if isinstance(value, str):
        return [{"@value": value, "@language": "fr"}]
    return [{"@value": value[k], "@language": k} for k in ("fr", "en") if value.get(k)]


def _date(value: str) -> dict[str, str]:
    return {"@value": value, "@type": "xsd:date"}


def school_year_period(year: str) -> tuple[str, str]:
    """``2024-2025`` -> (``2024-09-01``, ``2025-08-31``)."""
    start, end = year.split("-")
    return f"{start}-09-01", f"{end}-08-31"


def bbox_wkt(bbox: Iterable[float]) -> str:
    x0, y0, x1, y1 = (float(v) for v in bbox)
    return (f"POLYGON(({x0:.6f} {y0:.6f}, {x1:.6f} {y0:.6f}, {x1:.6f} {y1:.6f}, "
            f"{x0:.6f} {y1:.6f}, {x0:.6f} {y0:.6f}))")


def dataset_nodes(descriptor: dict[str, Any], base: str | None = None) -> list[dict[str, Any]]:
    """The DCAT-AP 3 nodes (dataset, distributions, publisher, licence, standard) of one package."""
    p = descriptor["preau"]
    name = descriptor["name"]
    ds_uri = dataset_uri(name, p["access"], base)
    pub = p["publisher"]
    pub_uri = pub.get("uri") or publisher_uri(pub["id"], base)
    lic = p["licence"]
    schema = p.get("schema") or {}
    schema_uri = f"{ds_uri}/{schema['path']}" if schema.get("path") else None

    ds: dict[str, Any] = {
        "@id": ds_uri,
        "@type": "dcat:Dataset",
        "dct:identifier": name,
        "dct:title": _lang(p["title"]),
        "dct:description": _lang(p["description"]),
        "dcat:keyword": [{"@value": k, "@language": "fr"} for k in descriptor.get("keywords", [])],
        "dct:publisher": {"@id": pub_uri},
        "dcat:theme": {"@id": EU + "data-theme/EDUC"},
        "dct:language": {"@id": EU + "language/FRA"},
        "dct:accessRights": {"@id": EU + "access-right/" + ("RESTRICTED" if p["access"] == "restricted" else "PUBLIC")},
    }
    if p.get("frequency") in FREQUENCIES:
        ds["dct:accrualPeriodicity"] = {"@id": EU + "frequency/" + FREQUENCIES[p["frequency"]]}
    if p.get("version"):
        ds["dcat:version"] = p["version"]
    temporal = []
    for year in p.get("school_years") or []:
        start, end = school_year_period(year)
        temporal.append({"@id": f"{ds_uri}#periode-{year}", "@type": "dct:PeriodOfTime",
                         "dcat:startDate": _date(start), "dcat:endDate": _date(end), "rdfs:label": year})
    if not temporal and p.get("temporal", {}).get("start"):
        t = p["temporal"]
        temporal.append({"@id": f"{ds_uri}#periode", "@type": "dct:PeriodOfTime", "dcat:startDate": _date(t["start"]),
                         "dcat:endDate": _date(t["end"])})
    if temporal:
        ds["dct:temporal"] = temporal
    spatial: list[dict[str, Any]] = []
    sp = p.get("spatial") or {}
    if sp.get("bbox"):
        spatial.append({"@id": f"{ds_uri}#emprise", "@type": "dct:Location", "dcat:bbox": {"@value": bbox_wkt(sp["bbox"]), "@type": "gsp:wktLiteral"}})
    communes = sorted(c for c in sp.get("insee", []) if INSEE_RE.match(str(c)))
    if len(communes) > MAX_COMMUNES:  # a région or the country: its départements (the communes are in the files)
        for dep in sorted({c[:3] if c.startswith("97") else c[:2] for c in communes}):
            spatial.append({"@id": INSEE_DEPARTEMENT + dep})
    else:
        for code in communes:
            spatial.append({"@id": INSEE_COMMUNE + code})
    if spatial:
        ds["dct:spatial"] = spatial
    if schema_uri:
        ds["dct:conformsTo"] = {"@id": schema_uri}
    if pub.get("email"):
        ds["dcat:contactPoint"] = {"@id": f"{pub_uri}#contact", "@type": "vcard:Organization", "vcard:fn": pub["name"]["fr"],
                                   "vcard:hasEmail": {"@id": "mailto:" + pub["email"]}}

    distributions = []
    for res in descriptor.get("resources", []):
        rp = res.get("preau", {})
        mediatype, label, eu_code, iana = format_info(res.get("format", ""))
        url = f"{ds_uri}/{res['path']}"
        dist: dict[str, Any] = {
            "@id": url,
            "@type": "dcat:Distribution",
            "dct:title": _lang(rp.get("title") or res.get("title") or res["name"]),
            "dcat:accessURL": {"@id": url},
            "dcat:downloadURL": {"@id": url},
            "dct:format": {"@id": EU + "file-type/" + eu_code} if eu_code else label,
            "dcat:byteSize": {"@value": str(res["bytes"]), "@type": "xsd:nonNegativeInteger"},
            "spdx:checksum": {
                "@id": f"{url}#sha256",
                "@type": "spdx:Checksum",
                "spdx:algorithm": {"@id": SHA256},
                "spdx:checksumValue": {"@value": res["hash"].split(":", 1)[-1], "@type": "xsd:hexBinary"},
            },
            "dct:license": {"@id": lic["url"]},
        }
        if iana:
            dist["dcat:mediaType"] = {"@id": IANA + mediatype}
        if rp.get("schema") and schema_uri:
            dist["dct:conformsTo"] = {"@id": schema_uri}
        if rp.get("school_year"):
            start, end = school_year_period(rp["school_year"])
            dist["dct:temporal"] = {"@id": f"{ds_uri}#periode-{rp['school_year']}", "@type": "dct:PeriodOfTime", "dcat:startDate": _date(start),
                                    "dcat:endDate": _date(end), "rdfs:label": rp["school_year"]}
        distributions.append(dist)
    ds["dcat:distribution"] = [{"@id": d["@id"]} for d in distributions]

    agent = {"@id": pub_uri, "@type": "foaf:Agent", "foaf:name": _lang(pub["name"]),
             "dct:identifier": pub["id"],
             "dct:type": {"@id": "http://purl.org/adms/publishertype/" + PUBLISHER_TYPES.get(pub.get("kind", ""), "LocalAuthority")}}
    if pub.get("homepage"):
        agent["foaf:homepage"] = {"@id": pub["homepage"]}
    licence = {"@id": lic["url"], "@type": "dct:LicenseDocument", "dct:title": _lang({"fr": lic["fr"], "en": lic["en"]}),
               "dct:identifier": lic["id"]}
    nodes = [ds, *distributions, agent, licence]
    if schema_uri:
        nodes.append({"@id": schema_uri, "@type": "dct:Standard", "dct:identifier": schema["name"],
                      "dct:title": _lang(schema.get("title")), "owl:versionInfo": schema.get("version", "")})
    return nodes


def document(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON-LD document with the inline context; nodes with the same ``@id`` are kept once."""
    seen: dict[str, dict[str, Any]] = {}
    graph = []
    for node in nodes:
        key = node.get("@id")
        if key and key in seen:
            continue
        if key:
            seen[key] = node
        graph.append(node)
    return {"@context": CONTEXT, "@graph": graph}


def dataset_document(descriptor: dict[str, Any], base: str | None = None) -> dict[str, Any]:
    return document(dataset_nodes(descriptor, base))


def catalog_document(descriptors: list[dict[str, Any]], title: dict[str, str], base: str | None = None,
                     description: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``dcat:Catalog`` with every given (public) package."""
    root = base_url(base)
    cat_uri = f"{root}catalog"
    nodes: list[dict[str, Any]] = []
    catalog: dict[str, Any] = {
        "@id": cat_uri, "@type": "dcat:Catalog", "dct:title": _lang(title),
        "dct:description": _lang(description or title),
        "foaf:homepage": {"@id": root},
        "dct:language": {"@id": EU + "language/FRA"},
        "dcat:dataset": [],
    }
    publishers = []
    licences = set()
    for d in sorted(descriptors, key=lambda x: x["name"]):
        dn = dataset_nodes(d, base)
        catalog["dcat:dataset"].append({"@id": dn[0]["@id"]})
        publishers.append(dn[0]["dct:publisher"]["@id"])
        licences.add(d["preau"]["licence"]["url"])
        nodes.extend(dn)
    if len(set(publishers)) == 1:
        catalog["dct:publisher"] = {"@id": publishers[0]}
    if len(licences) == 1:
        catalog["dct:license"] = {"@id": next(iter(licences))}
    return document([catalog, *nodes])


def to_turtle(doc: dict[str, Any]) -> str:
    """Serialise a JSON-LD document (inline context) to Turtle with rdflib."""
    import json

    from rdflib import Graph

    import warnings

    g = Graph()
    with warnings.catch_warnings():  # rdflib's JSON-LD parser uses its own deprecated ConjunctiveGraph
        warnings.simplefilter("ignore", DeprecationWarning)
        g.parse(data=json.dumps(doc), format="json-ld")
    for prefix, ns in CONTEXT.items():
        g.bind(prefix, ns, override=True)
    return g.serialize(format="turtle")
