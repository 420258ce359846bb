"""Fixtures of the site tests: a synthetic catalog made by the real pipeline stages, the built site."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

XSS = '<script>alert("xss")</script>'


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """Workspace + local catalog (12 communes of the 65, 3 school years, layers, one restricted table)."""
    from preau.website.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("site-sample")
    write_sample_catalog(root, title_suffix=XSS)
    return root


@pytest.fixture(scope="session")
def catalog_dir(sample_root) -> Path:
    return sample_root / "_build" / "catalog"


@pytest.fixture(scope="session")
def built_site(sample_root, catalog_dir, tmp_path_factory) -> Path:
    from preau.website import build_site

    out = tmp_path_factory.mktemp("site") / "site"
    build_site(catalog_dir, out, workspace=sample_root)
    return out


@pytest.fixture()
def fresh_copy(sample_root, tmp_path) -> Path:
    """A private copy of the workspace + catalog, for tests that modify it."""
    dest = tmp_path / "ws"
    shutil.copytree(sample_root, dest, ignore=shutil.ignore_patterns("site"))
    return dest


FEED = """@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
<https://commune.example.org/id/cantine> a dcat:Dataset ; dct:identifier "cantine" ;
    dct:title "Inscrits à la cantine"@fr ; dct:description "Effectifs agrégés de la cantine"@fr ;
    dct:modified "2026-10-01T09:30:00Z" ; dcat:keyword "cantine" ;
    dct:license <javascript:alert(1)> ;
    dct:publisher [ a foaf:Agent ; foaf:name "Commune de Test" ] ;
    dcat:landingPage <https://commune.example.org/jeux/cantine> ;
    dcat:distribution [ a dcat:Distribution ; dct:title "cantine.csv" ;
        dcat:downloadURL <https://commune.example.org/fichiers/cantine.csv> ;
        dct:format <http://publications.europa.eu/resource/authority/file-type/CSV> ] .
"""
SOURCE_TITLE = 'Catalogue voisin <b>(Gers)</b>'  # markup: must show as text


@pytest.fixture(scope="session")
def federation(sample_root, tmp_path_factory):
    """The sample catalog + copies harvested from a neighbour's Préau catalog served over HTTP on
    127.0.0.1 (data files linked, metadata copied) and from a DCAT-AP file feed; the built site."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from preau.catalog.harvest import Source, harvest
    from preau.website import build_site
    from preau.website.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("federation")
    ws = root / "ws"
    shutil.copytree(sample_root, ws, ignore=shutil.ignore_patterns("site"))
    neighbour = write_sample_catalog(root / "voisin", publisher="demo-32", departements=("32",), communes=4,
                                     layers=False, restricted=False)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(neighbour)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    feed = root / "feed.ttl"
    feed.write_text(FEED, encoding="utf-8")
    sources = [Source(name="voisin", kind="preau", url=url, organization="demo-32", title=SOURCE_TITLE,
                      resources="link", timeout=20, retries=1),
               Source(name="flux", kind="dcat", path=feed, organization="commune-test", resources="link")]
    catalog = ws / "_build" / "catalog"
    report = harvest(sources, into=f"local:{catalog}")
    assert report.ok and report.source("voisin").counts["created"] == 2, report.render("en")
    site = root / "site"
    build_site(catalog, site, workspace=ws)
    yield {"root": root, "ws": ws, "catalog": catalog, "site": site, "url": url, "neighbour": neighbour,
           "sources": sources}
    server.shutdown()
    server.server_close()
