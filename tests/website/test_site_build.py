"""Static site: pages, escaping, CSP, restricted datasets, incremental rebuild, overrides, links."""

from __future__ import annotations

import json
import re
import shutil
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from preau.errors import PreauError
from preau.website import build_site
from preau.website.build import MANIFEST

from conftest import XSS


def _names(catalog_dir: Path) -> list[str]:
    return [d["name"] for d in json.loads((catalog_dir / "catalog.json").read_text())["datasets"]]


def test_pages_exist_in_both_languages(built_site, catalog_dir):
    for name in _names(catalog_dir):
        assert (built_site / "jeux-de-donnees" / name / "index.html").is_file()
        assert (built_site / "en" / "jeux-de-donnees" / name / "index.html").is_file()
    assert (built_site / "schemas" / "effectifs-commune-niveau" / "index.html").is_file()
    assert (built_site / "editeurs" / "test-65" / "index.html").is_file()
    assert (built_site / "cartes" / "test-65" / "index.html").is_file()
    fr = (built_site / "index.html").read_text()
    en = (built_site / "en" / "index.html").read_text()
    assert '<html lang="fr"' in fr and '<html lang="en"' in en
    assert "Rechercher" in fr and "Search" in en


def test_one_page_per_school_with_chart(built_site, catalog_dir):
    csv_path = catalog_dir / "datasets" / "test-65-effectifs-ecole-niveau" / "effectifs-ecole-niveau.csv"
    import polars as pl

    frame = pl.read_csv(csv_path, infer_schema=False)
    uais = set(frame["numero_de_l_ecole"].to_list())
    pages = {p.stem for p in (built_site / "ecoles").glob("*.html")}
    assert pages == uais
    uai = sorted(uais)[0]
    html = (built_site / "ecoles" / f"{uai}.html").read_text()
    assert '<svg class="chart"' in html and 'role="img"' in html
    rows = frame.filter(pl.col("numero_de_l_ecole") == uai).sort("annee_scolaire")
    # each year's total is drawn as a bar label and listed in the table
    assert html.count('<rect x=') == rows.height
    for total in rows["nombre_total_d_eleves"].to_list():
        assert f">{total}</text>" in html


def test_dataset_page_content(built_site, catalog_dir):
    name = "test-65-effectifs-commune-niveau"
    html = (built_site / "jeux-de-donnees" / name / "index.html").read_text()
    pkg = json.loads((catalog_dir / "datasets" / name / "datapackage.json").read_text())
    for res in pkg["resources"]:
        assert f'fichiers/{name}/{res["path"]}' in html
        assert res["hash"].split(":")[1] in html
    disclosure = pkg["preau"]["disclosure"]
    assert "Secret statistique" in html and str(disclosure["cells_hidden"]) in html.replace("\u202f", "")
    assert "api/3/action/package_show?id=" + name in html
    assert "RemoteCKAN" in html and "pd.read_csv" in html and "curl -s" in html
    assert 'href="../../schemas/effectifs-commune-niveau/"' in html
    assert "validation/" in html
    m = re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S)
    doc = json.loads(m.group(1))
    assert doc == json.loads((catalog_dir / "datasets" / name / "dcat.jsonld").read_text())
    # preview: the first rows of the all-years CSV
    first = (catalog_dir / "datasets" / name / "effectifs-commune-niveau.csv").read_text().splitlines()[1].split(",")
    assert all(f"<td>{c}</td>" in html for c in first)


def test_title_markup_is_escaped(built_site):
    for page in [built_site / "index.html", built_site / "jeux-de-donnees" / "test-65-effectifs-commune-niveau" / "index.html"]:
        html = page.read_text()
        assert XSS not in html
        assert '&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;' in html


def test_csp_and_no_inline_script_or_handler(built_site):
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>", re.I)
    handler = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
    style_attr = re.compile(r"<[^>]+\sstyle\s*=", re.I)
    pages = list(built_site.rglob("*.html"))
    assert len(pages) > 50
    for page in pages:
        html = page.read_text()
        csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
        assert csp and "script-src 'self';" in unescape(csp.group(1)), page
        assert "unsafe-inline" not in html, page
        assert not inline_script.search(html), page
        assert not handler.search(html), page
        assert not style_attr.search(html), page
        assert "https://unpkg" not in html and "cdn" not in html.lower(), page


def test_restricted_dataset_never_in_site(fresh_copy):
    catalog = fresh_copy / "_build" / "catalog"
    restricted = catalog / "restricted" / "test-65-flux-secteur-ecole-niveau"
    assert restricted.is_dir()
    # even smuggled into the public index and folder, a package marked restricted is not built
    shutil.copytree(restricted, catalog / "datasets" / restricted.name)
    index = json.loads((catalog / "catalog.json").read_text())
    index["datasets"].append({"name": restricted.name, "publisher": "test-65",
                              "title": {"fr": "Flux fin", "en": "Fine flows"},
                              "path": f"datasets/{restricted.name}/datapackage.json"})
    (catalog / "catalog.json").write_text(json.dumps(index))
    out = fresh_copy / "_build" / "site-test"
    build_site(catalog, out, workspace=fresh_copy)
    title_fr = json.loads((restricted / "datapackage.json").read_text())["preau"]["title"]["fr"]
    for path in out.rglob("*"):
        if path.is_file():
            assert "flux-secteur-ecole-niveau" not in str(path.relative_to(out))
            text = path.read_bytes().decode("utf-8", "replace")
            assert "flux-secteur-ecole-niveau" not in text, path
            assert title_fr not in text, path


def test_incremental_rebuild_writes_only_what_changed(fresh_copy):
    catalog = fresh_copy / "_build" / "catalog"
    out = fresh_copy / "_build" / "site-test"
    first = build_site(catalog, out, workspace=fresh_copy)
    assert len(first.written) == first.files > first.pages > 100
    again = build_site(catalog, out, workspace=fresh_copy)
    assert again.written == [] and again.pages == first.pages
    # one dataset changes: its description in the catalog and package
    name = "test-65-effectifs-commune-niveau"
    pkg_path = catalog / "datasets" / name / "datapackage.json"
    pkg = json.loads(pkg_path.read_text())
    pkg["preau"]["description"]["fr"] = "Nouvelle description."
    pkg_path.write_text(json.dumps(pkg))
    index = json.loads((catalog / "catalog.json").read_text())
    for d in index["datasets"]:
        if d["name"] == name:
            d["description"]["fr"] = "Nouvelle description."
    (catalog / "catalog.json").write_text(json.dumps(index))
    third = build_site(catalog, out, workspace=fresh_copy)
    written = set(third.written)
    assert f"jeux-de-donnees/{name}/index.html" in written
    assert f"fichiers/{name}/datapackage.json" in written
    assert "recherche.json" in written and "index.html" in written
    assert "Nouvelle description." in (out / "jeux-de-donnees" / name / "index.html").read_text()
    # nothing about other datasets, schools or assets is rewritten
    assert not any(p.startswith(("ecoles/", "en/ecoles/", "static/", "schemas/")) for p in written)
    assert not any("effectifs-ecole-niveau" in p for p in written)
    assert len(written) <= 12, sorted(written)
    # a dataset removed from the catalog: its pages are removed
    index["datasets"] = [d for d in index["datasets"] if d["name"] != name]
    (catalog / "catalog.json").write_text(json.dumps(index))
    fourth = build_site(catalog, out, workspace=fresh_copy)
    assert f"jeux-de-donnees/{name}/index.html" in fourth.removed
    assert not (out / "jeux-de-donnees" / name).exists()
    manifest = json.loads((out / MANIFEST).read_text())
    assert not any(name in p for p in manifest["files"])


def test_parallel_school_pages_identical_to_serial(sample_root, catalog_dir, tmp_path):
    one = build_site(catalog_dir, tmp_path / "one", workspace=sample_root, workers=1)
    two = build_site(catalog_dir, tmp_path / "two", workspace=sample_root, workers=2)
    assert one.pages == two.pages and sorted(one.written) == sorted(two.written)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    # and the parallel build is incremental too
    assert build_site(catalog_dir, tmp_path / "two", workspace=sample_root, workers=2).written == []


def test_template_override_from_workspace_site_folder(fresh_copy):
    site_dir = fresh_copy / "site-templates"
    (fresh_copy / "site").mkdir(exist_ok=True)
    (fresh_copy / "site" / "school.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1>Surcharge {{ uai }}</h1>{% endblock %}', encoding="utf-8")
    out = site_dir
    build_site(fresh_copy / "_build" / "catalog", out, workspace=fresh_copy)
    page = next((out / "ecoles").glob("*.html"))
    assert f"<h1>Surcharge {page.stem}</h1>" in page.read_text()
    # the other templates still come from the package
    assert "search.js" in (out / "index.html").read_text()


def test_missing_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(PreauError) as exc:
        build_site(tmp_path / "nothing", tmp_path / "out")
    assert "catalog.json" in exc.value.render("fr") and "introuvable" in exc.value.render("fr")
    assert not (tmp_path / "out").exists()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key):
                self.urls.append(a[key])
        if a.get("id"):
            self.ids.add(a["id"])


def test_no_broken_internal_links(built_site):
    checked = broken = 0
    problems = []
    ids: dict[Path, set[str]] = {}
    pending = []
    for page in sorted(built_site.rglob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        ids[page.resolve()] = parser.ids
        pending.append((page, parser.urls))
    for page, urls in pending:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc:
                continue  # external (licence, homepage): not requested by the pages
            target = page.parent
            if parts.path:
                target = (page.parent / unquote(parts.path)).resolve()
                if parts.path.endswith("/") or target.is_dir():
                    target = target / "index.html"
            else:
                target = page.resolve()
            checked += 1
            if not target.is_file() or built_site.resolve() not in target.parents:
                broken += 1
                problems.append(f"{page.relative_to(built_site)} -> {url}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in ids.get(target, set()):
                broken += 1
                problems.append(f"{page.relative_to(built_site)} -> {url} (anchor)")
    assert checked > 1000
    assert broken == 0, problems[:20]
