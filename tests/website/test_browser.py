"""The built site in Debian's Chromium (headless, driven by Playwright), served on 127.0.0.1.

Checks search, facets, downloads, the sector map, console errors, that no request leaves
localhost, keyboard access and WCAG 2.1 AA with axe-core (npm, injected from node_modules).
Screenshots are saved under ``_build/screenshots/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = REPO / "_build" / "screenshots"
LOCAL = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def server(built_site):
    from preau.website.serve import serve

    srv = serve(built_site, 0, background=True)
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), "Chromium missing: make test-deps installs the Debian package"
    assert AXE.is_file(), "axe-core missing: make test-deps runs npm ci"
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
                                                    viewport={"width": 1280, "height": 900})
        ctx.outside = []  # requests to a non-local host (aborted)

        def route(r):
            host = urlsplit(r.request.url).hostname
            if r.request.url.startswith(("data:", "blob:")) or host in LOCAL:
                r.continue_()
            else:
                ctx.outside.append(r.request.url)
                r.abort()

        ctx.route("**/*", route)
        yield ctx
        ctx.close()


@pytest.fixture()
def page(browser_context):
    p = browser_context.new_page()
    p.errors = []
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.on("dialog", lambda d: (p.errors.append("dialog: " + d.message), d.dismiss()))
    p.bad_responses = []
    p.on("response", lambda r: p.bad_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield p
    assert browser_context.outside == [], browser_context.outside
    assert p.errors == [], p.errors
    assert p.bad_responses == [], p.bad_responses
    p.close()


def _shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _axe(page):
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert serious == [], serious
    return result


def _visible_cards(page):
    return page.eval_on_selector_all("#dataset-list li[data-name]:not([hidden])",
                                     "els => els.map(e => e.getAttribute('data-name'))")


def _catalog(catalog_dir):
    return json.loads((catalog_dir / "catalog.json").read_text(encoding="utf-8"))


def test_home_loads_and_search_by_column_name(page, server, catalog_dir):
    page.goto(server)
    page.wait_for_selector("#search-form[data-ready=true]")
    index = _catalog(catalog_dir)
    assert sorted(_visible_cards(page)) == sorted(d["name"] for d in index["datasets"])
    _axe(page)
    _shot(page, "home-fr")
    # a column only one schema has
    column = "nombre_d_eleves_en_cm2_hors_ulis"
    expected = []
    for d in index["datasets"]:
        pkg = json.loads((catalog_dir / d["path"]).read_text())
        schema_path = (pkg["preau"].get("schema") or {}).get("path")
        if schema_path:
            fields = json.loads((catalog_dir / d["path"]).parent.joinpath(schema_path).read_text())["fields"]
            if any(f["name"] == column for f in fields):
                expected.append(d["name"])
    assert expected  # the fixture has the ministry-shaped table
    page.fill("#q", column)
    page.wait_for_function("() => document.querySelectorAll('#dataset-list li[data-name]:not([hidden])').length === %d"
                           % len(expected))
    assert sorted(_visible_cards(page)) == sorted(expected)
    assert str(len(expected)) in page.inner_text("#result-count")
    _shot(page, "home-search")
    # accents and case do not matter; a commune name finds schools too
    school_csv = next(catalog_dir.glob("datasets/*-effectifs-ecole-niveau/effectifs-ecole-niveau.csv"))
    header, first = school_csv.read_text().splitlines()[:2]
    commune = dict(zip(header.split(","), first.split(",")))["commune"]
    page.fill("#q", commune.upper())
    page.wait_for_selector("#school-results li")
    assert commune in page.inner_text("#school-results")
    assert "test-65-effectifs-ecole-niveau" in _visible_cards(page)
    page.fill("#q", "zzzz-aucun-resultat")
    page.wait_for_selector("#no-result:not([hidden])")


def test_facet_filters(page, server, catalog_dir):
    page.goto(server)
    page.wait_for_selector("#search-form[data-ready=true]")
    index = _catalog(catalog_dir)
    geo = sorted(d["name"] for d in index["datasets"]
                 if any(r["format"] == "geojson" and r["role"] == "data" for r in d["resources"]))
    assert 0 < len(geo) < len(index["datasets"])
    page.check("input[name=format][value=GeoJSON]")
    page.wait_for_function("() => document.querySelectorAll('#dataset-list li[data-name]:not([hidden])').length === %d" % len(geo))
    assert sorted(_visible_cards(page)) == geo
    # a second facet narrows further (AND between facets)
    page.check("input[name=year][value='2026-2027']")
    with_year = sorted(d["name"] for d in index["datasets"] if d["name"] in geo and "2026-2027" in d["school_years"])
    page.wait_for_function("() => document.querySelectorAll('#dataset-list li[data-name]:not([hidden])').length === %d"
                           % len(with_year))
    assert sorted(_visible_cards(page)) == with_year
    _shot(page, "home-facets")
    page.click("button[type=reset]")
    page.wait_for_function("() => document.querySelectorAll('#dataset-list li[data-name]:not([hidden])').length === %d"
                           % len(index["datasets"]))


def test_dataset_page_download_is_the_catalog_file(page, server, catalog_dir):
    name = "test-65-effectifs-commune-niveau"
    page.goto(server + f"jeux-de-donnees/{name}/")
    links = page.eval_on_selector_all("a[download]", "els => els.map(e => e.href)")
    assert links
    for url in links[:4]:
        body = page.request.get(url).body()
        rel = urlsplit(url).path.split(f"/fichiers/{name}/", 1)[1]
        assert body == (catalog_dir / "datasets" / name / rel).read_bytes()
    # the title with markup shows as text; no dialog opened (checked by the fixture)
    assert '<script>alert("xss")</script>' in page.inner_text("h1")
    ld = page.eval_on_selector('script[type="application/ld+json"]', "e => JSON.parse(e.textContent)")
    assert ld == json.loads((catalog_dir / "datasets" / name / "dcat.jsonld").read_text())
    _axe(page)
    _shot(page, "dataset")
    page.click("text=Rapport de validation complet")
    page.wait_for_selector("h1")
    _axe(page)
    _shot(page, "validation")


def test_map_shows_sector_polygons(page, server, catalog_dir):
    page.goto(server + "cartes/test-65/")
    page.wait_for_selector("#map[data-ready=true]")
    layer = next(catalog_dir.glob("datasets/*-secteurs-scolaires/secteurs-scolaires-wgs84.geojson"))
    features = json.loads(layer.read_text())["features"]
    n = page.eval_on_selector_all("#map svg path.sector", "els => els.length")
    assert n == len(features) > 0
    communes = page.eval_on_selector_all("#map svg path.commune", "els => els.length")
    assert communes > 0
    schools = page.eval_on_selector_all("#map svg path.school", "els => els.length")
    assert schools > 0
    labels = page.eval_on_selector_all(".sector-label", "els => els.map(e => e.textContent)")
    assert sorted(labels) == sorted(f["properties"]["code_secteur"] for f in features)
    _axe(page)
    _shot(page, "map")


def test_other_page_types_accessible_and_english(page, server, built_site):
    uai = sorted(p.stem for p in (built_site / "ecoles").glob("*.html"))[0]
    for path, shot in [(f"ecoles/{uai}.html", "school"), ("schemas/effectifs-ecole-niveau/", "schema"),
                       ("editeurs/test-65/", "publisher"), ("en/", "home-en"), (f"en/ecoles/{uai}.html", "school-en")]:
        page.goto(server + path)
        if path == "en/":
            page.wait_for_selector("#search-form[data-ready=true]")
            assert page.get_attribute("html", "lang") == "en"
            assert "Search" in page.inner_text("main")
        _axe(page)
        _shot(page, shot)
    # the language switch goes to the same page in the other language
    page.goto(server + f"ecoles/{uai}.html")
    page.click("a.lang-switch")
    page.wait_for_url(f"**/en/ecoles/{uai}.html")
    assert page.get_attribute("html", "lang") == "en"


def test_keyboard_skip_link_and_focus(page, server):
    page.goto(server)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'contenu'")
    # the search box is reachable by keyboard and typing filters
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    assert page.evaluate("document.activeElement.id") == "q"


@pytest.fixture(scope="module")
def fed_server(federation):
    from preau.website.serve import serve

    srv = serve(federation["site"], 0, background=True)
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def test_harvested_dataset_provenance_and_origin_facet(page, fed_server, federation):
    """Harvested copies: the origin facet filters them, the dataset page shows where they come from."""
    voisin = "voisin-demo-32-effectifs-commune-niveau"
    index = _catalog(federation["catalog"])
    from_voisin = sorted(d["name"] for d in index["datasets"] if (d.get("harvest") or {}).get("source") == "voisin")
    local = sorted(d["name"] for d in index["datasets"] if not d.get("harvest"))
    assert voisin in from_voisin and local
    page.goto(fed_server)
    page.wait_for_selector("#search-form[data-ready=true]")
    assert sorted(_visible_cards(page)) == sorted(d["name"] for d in index["datasets"])
    count = "() => document.querySelectorAll('#dataset-list li[data-name]:not([hidden])').length === %d"
    page.check("input[name=origin][value=moisson-voisin]")
    page.wait_for_function(count % len(from_voisin))
    assert sorted(_visible_cards(page)) == from_voisin
    page.check("input[name=origin][value=local]")  # OR within a facet
    page.wait_for_function(count % (len(from_voisin) + len(local)))
    assert sorted(_visible_cards(page)) == sorted(from_voisin + local)
    page.uncheck("input[name=origin][value=moisson-voisin]")
    page.wait_for_function(count % len(local))
    assert sorted(_visible_cards(page)) == local
    page.uncheck("input[name=origin][value=local]")
    page.check("input[name=origin][value=moisson-voisin]")
    page.wait_for_function(count % len(from_voisin))
    _axe(page)
    _shot(page, "home-origin-facet")
    # the dataset page's provenance block
    page.click(f"#dataset-list li[data-name='{voisin}'] h3 a")
    page.wait_for_url(f"**/jeux-de-donnees/{voisin}/")
    assert page.is_visible("#provenance")
    text = page.inner_text("#provenance")
    assert "Moissonné depuis « Catalogue voisin <b>(Gers)</b> »" in text
    assert "Territoire de test (32)" in text and "catalogue de fichiers Préau" in text
    _axe(page)
    _shot(page, "dataset-harvested")
    # the origin link opens the source's record (the neighbour's catalog, on 127.0.0.1)
    page.click("#provenance a.origin-link")
    page.wait_for_url(federation["url"] + "/datasets/demo-32-effectifs-commune-niveau/datapackage.json")
    assert json.loads(page.inner_text("body"))["name"] == "demo-32-effectifs-commune-niveau"
    page.go_back()
    page.click("a.lang-switch")
    page.wait_for_url(f"**/en/jeux-de-donnees/{voisin}/")
    assert "Harvested from" in page.inner_text("#provenance")
    _axe(page)
