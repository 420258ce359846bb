"""Harvested datasets on the static site: provenance block, origin facet, harvested publishers.

The ``federation`` fixture (conftest) harvests a neighbour's Préau catalog served over HTTP and a
DCAT-AP feed into the sample catalog with ``harvest(..., into="local:…")``, then builds the site.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

from preau.catalog.harvest import harvest
from preau.catalog.local import harvested_packages
from preau.website import build_site

import test_site_build as site_checks
from conftest import SOURCE_TITLE

VOISIN = "voisin-demo-32-effectifs-commune-niveau"


class _Section(HTMLParser):
    """Text, links and <time> values inside the element with id=``target``."""

    def __init__(self, target: str):
        super().__init__()
        self.target, self.depth, self.found = target, 0, False
        self.text: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.times: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.depth:
            self.depth += 1
            if tag == "a":
                self._href = a.get("href")
            if tag == "time":
                self.times.append(a.get("datetime"))
        elif a.get("id") == self.target:
            self.depth, self.found = 1, True

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.text.append(data)
            if self._href is not None:
                self.links.append((self._href, data))
                self._href = None

    @property
    def content(self) -> str:
        return " ".join(" ".join(self.text).split())


def _section(page: Path, target: str = "provenance") -> _Section:
    parser = _Section(target)
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _copy(catalog: Path, name: str) -> dict:
    return dict((f.name, d) for f, d in harvested_packages(catalog))[name]


def test_dataset_page_shows_provenance_fr_and_en(federation):
    site, url = federation["site"], federation["url"]
    block = _copy(federation["catalog"], VOISIN)["preau"]["harvest"]
    fr = _section(site / "jeux-de-donnees" / VOISIN / "index.html")
    assert fr.found
    text = fr.content
    assert f"Moissonné depuis « {SOURCE_TITLE} »" in text  # the markup shows as text
    assert "Éditeur d'origine Territoire de test (32)" in text
    assert "catalogue de fichiers Préau" in text and "liens vers la source" in text
    origin = f"{url}/datasets/demo-32-effectifs-commune-niveau/datapackage.json"
    assert (origin, "Voir la fiche à la source") in fr.links
    assert (url, SOURCE_TITLE) in fr.links
    assert fr.times == [block["harvested"], block["source_modified"]]
    h, d = block["harvested"], block["harvested"][:10].split("-")
    assert f"{d[2]}/{d[1]}/{d[0]} à {h[11:16]} UTC" in text
    en = _section(site / "en" / "jeux-de-donnees" / VOISIN / "index.html")
    assert f"Harvested from “{SOURCE_TITLE}”" in en.content
    assert "Original publisher Test territory (32)" in en.content and "Préau file catalog" in en.content
    assert (origin, "See the record at its source") in en.links
    html = (site / "jeux-de-donnees" / VOISIN / "index.html").read_text(encoding="utf-8")
    assert "<b>(Gers)</b>" not in html
    # linked data files point to the source; columns come from the copied schema
    assert f'href="{url}/datasets/demo-32-effectifs-commune-niveau/effectifs-commune-niveau.csv" rel="external"' in html
    assert "<code>code_insee</code>" in html
    # the catalog's own datasets have no provenance block
    assert not _section(site / "jeux-de-donnees" / "test-65-effectifs-commune-niveau" / "index.html").found


def test_dcat_copy_page(federation):
    site = federation["site"]
    name = next(f.name for f, _ in harvested_packages(federation["catalog"]) if f.name.startswith("flux-"))
    sec = _section(site / "jeux-de-donnees" / name / "index.html")
    assert "Éditeur d'origine Commune de Test" in sec.content and "flux DCAT-AP" in sec.content
    assert ("https://commune.example.org/jeux/cantine", "Voir la fiche à la source") in sec.links
    assert "01/10/2026 à 09:30 UTC" in sec.content
    html = (site / "jeux-de-donnees" / name / "index.html").read_text(encoding="utf-8")
    assert 'href="https://commune.example.org/fichiers/cantine.csv" rel="external"' in html
    # another catalog's text never becomes a non-web link (its licence URL was javascript:)
    copy = _copy(federation["catalog"], name)
    assert copy["preau"]["licence"]["url"] == "javascript:alert(1)"
    assert not [p for p in site.rglob("*.html") if "javascript:" in p.read_text(encoding="utf-8")]
    # embedded DCAT: provenance and the record it derives from
    ld = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S).group(1))
    assert ld["prov:wasDerivedFrom"] == {"@id": "https://commune.example.org/jeux/cantine"}
    assert ld["dct:publisher"]["foaf:name"] == "Commune de Test"
    assert any("Moissonné depuis" in x["@value"] for x in ld["dct:provenance"]["rdfs:label"])


def test_origin_facet_search_index_and_publishers(federation):
    site, catalog = federation["site"], federation["catalog"]
    index = json.loads((catalog / "catalog.json").read_text(encoding="utf-8"))
    local = [d["name"] for d in index["datasets"] if not d.get("harvest")]
    facet = _section(site / "index.html", "f-origin-1")  # the inputs themselves carry ids
    assert facet.found
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'data-facet="origin"' in home
    assert f'value="local">\n          <label for="f-origin-1">Ce catalogue <span class="count">({len(local)})' in home
    assert f'value="moisson-voisin">' in home and "Moissonné : Catalogue voisin &lt;b&gt;(Gers)&lt;/b&gt; <span class=\"count\">(2)" in home
    assert 'value="moisson-flux">' in home
    assert 'value="demo-32"' in home and 'value="commune-test"' in home  # publisher facet
    docs = {d["name"]: d for d in json.loads((site / "recherche.json").read_text(encoding="utf-8"))["datasets"]}
    assert {n for n, d in docs.items() if d["origin"] == "local"} == set(local)
    assert {n for n, d in docs.items() if d["origin"] == "moisson-voisin"} == {
        VOISIN, "voisin-demo-32-effectifs-ecole-niveau"}
    assert "Origin" in (site / "en" / "index.html").read_text(encoding="utf-8")
    # publisher pages of harvested publishers
    page = (site / "editeurs" / "demo-32" / "index.html").read_text(encoding="utf-8")
    assert "Territoire de test (32)" in page and f"jeux-de-donnees/{VOISIN}/" in page
    assert "Jeux de données moissonnés depuis : Catalogue voisin &lt;b&gt;(Gers)&lt;/b&gt;" in page
    assert "Commune de Test" in (site / "editeurs" / "commune-test" / "index.html").read_text(encoding="utf-8")
    listing = (site / "editeurs" / "index.html").read_text(encoding="utf-8")
    assert "editeurs/demo-32/" in listing or 'href="demo-32/"' in listing


def test_csp_and_links_of_the_federated_site(federation):
    site_checks.test_csp_and_no_inline_script_or_handler(federation["site"])
    site_checks.test_no_broken_internal_links(federation["site"])


def test_archived_copy_leaves_the_site(federation, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(federation["ws"], ws)
    site = tmp_path / "site"
    shutil.copytree(federation["site"], site)
    catalog = ws / "_build" / "catalog"
    feed = tmp_path / "vide.ttl"
    feed.write_text("@prefix dcat: <http://www.w3.org/ns/dcat#> .\n", encoding="utf-8")
    src = federation["sources"][1]
    src = type(src)(**{**src.__dict__, "path": feed})
    report = harvest([src], into=f"local:{catalog}")
    assert report.source("flux").counts["archived"] == 1
    name = next(f.name for f, _ in harvested_packages(catalog) if f.name.startswith("flux-"))
    assert (catalog / "harvested" / name).is_dir()  # kept (archived) …
    result = build_site(catalog, site, workspace=ws)
    assert f"jeux-de-donnees/{name}/index.html" in result.removed  # … but no longer published
    assert not (site / "editeurs" / "commune-test").exists()
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'value="moisson-flux"' not in home and 'value="moisson-voisin"' in home


def test_demo_federation_harvests_the_neighbour(sample_root, tmp_path):
    """What `preau demo` does after publishing: a generated neighbour catalog, harvested locally."""
    from preau.pipeline import demo_federation

    out = tmp_path / "_build"
    shutil.copytree(sample_root / "_build" / "catalog", out / "catalog")
    report = demo_federation(tmp_path, out)  # no catalog/sources.toml here: the built-in source
    assert report.source("voisin").counts["created"] == 2
    again = demo_federation(tmp_path, out)
    assert again.writes == 0 and again.source("voisin").counts["unchanged"] == 2
    names = {d["name"] for d in json.loads((out / "catalog" / "catalog.json").read_text())["datasets"]}
    assert {"voisin-demo-32-effectifs-commune-niveau", "voisin-demo-32-effectifs-ecole-niveau"} <= names
    # mirrored files: the neighbour's schools get their pages, which say where they come from
    site = out / "site"
    build_site(out / "catalog", site, workspace=sample_root)
    gers = sorted(site.glob("ecoles/032*.html"))
    assert gers and len(gers) == len(list(site.glob("ecoles/*.html"))) - len(list(site.glob("ecoles/065*.html")))
    page = gers[0].read_text(encoding="utf-8")
    assert "Moissonné depuis « Catalogue Préau voisin (démonstration, Gers) »" in page
    assert 'jeux-de-donnees/voisin-demo-32-effectifs-ecole-niveau/#provenance"' in page
    assert "Moissonné depuis" not in sorted(site.glob("ecoles/065*.html"))[0].read_text(encoding="utf-8")
    site_checks.test_no_broken_internal_links(site)
