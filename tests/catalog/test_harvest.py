"""Federation (preau.catalog.harvest) against two real CKAN instances, a DCAT-AP feed and a Préau
file catalog: first run copies with provenance, a no-change run writes nothing, a change updates,
a removal archives then deletes after the grace period (injected clock), a malformed record is
skipped and reported, a dead source fails alone."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from ckanapi import NotFound, RemoteCKAN

from preau.catalog.harvest import Source, harvest, load_sources
from preau.errors import PreauError

pytestmark = pytest.mark.ckan
ROOT = Path(__file__).resolve().parents[2]

DCAT_PAGE = """@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix hydra: <http://www.w3.org/ns/hydra/core#> .
{datasets}
{paging}
"""
DCAT_DATASET = """
<{base}/id/{ident}> a dcat:Dataset ;
    dct:identifier "{ident}" ;
    {title}
    dct:description "Description {ident}"@fr ;
    dct:modified "2026-01-0{n}T00:00:00Z" ;
    dcat:keyword "ecoles", "effectifs" ;
    dct:conformsTo <https://schema.example.org/effectifs-commune-niveau> ;
    dcat:distribution <{base}/id/{ident}/csv> .
<{base}/id/{ident}/csv> a dcat:Distribution ;
    dct:title "Fichier CSV {ident}" ;
    dcat:downloadURL <{base}/files/{ident}.csv> ;
    dct:format <http://publications.europa.eu/resource/authority/file-type/CSV> .
"""


class Feed:
    """A DCAT-AP feed on two pages (hydra:nextPage), served over HTTP from a folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        # ident -> title (None = malformed: no dct:title)
        self.datasets = {"ecoles-a": "Écoles A", "ecoles-b": "Écoles B", "casse": None}

    def write(self) -> None:
        items = list(self.datasets.items())
        pages = [items[:2], items[2:]]
        for i, page in enumerate(pages, 1):
            body = "".join(
                DCAT_DATASET.format(base=self.base, ident=ident, n=n + 1,
                                    title=f'dct:title "{title}"@fr ;' if title else "")
                for n, (ident, title) in enumerate(page))
            paging = (f'<{self.base}/catalog-{i}.ttl> a hydra:PagedCollection ; '
                      f'hydra:nextPage "{self.base}/catalog-{i + 1}.ttl" .') if i < len(pages) else ""
            (self.folder / f"catalog-{i}.ttl").write_text(DCAT_PAGE.format(datasets=body, paging=paging),
                                                          encoding="utf-8")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".ttl": "text/turtle"}

    def log_message(self, *args):
        pass


def make_preau_catalog(folder: Path, counts: dict[str, int]) -> None:
    """A small Préau file catalog: catalog.json + one generated CSV per dataset; '' = malformed."""
    datasets = []
    for name, effectif in counts.items():
        path = f"datasets/{name}/{name}.csv"
        file = folder / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"code_insee,niveau,effectif\n65440,CP,{effectif}\n", encoding="utf-8")
        entry = {"name": name, "publisher": "demo-65",
                 "title": {"fr": f"Effectifs {name}", "en": f"Counts {name}"},
                 "description": {"fr": "Effectifs par commune", "en": "Counts by commune"},
                 "keywords": ["effectifs"], "licence": {"id": "etalab-2.0", "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence"},
                 "schema": "https://schema.example.org/effectifs-commune-niveau",
                 "path": f"datasets/{name}/datapackage.json",
                 "resources": [{"name": f"{name}.csv", "path": path, "format": "csv",
                                "hash": "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()}]}
        if name.startswith("casse"):
            del entry["title"]
        datasets.append(entry)
    index = {"generated": "2026-01-01T00:00:00Z", "publishers": [], "datasets": datasets}
    (folder / "catalog.json").write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")


class Clock:
    def __init__(self):
        self.t = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.t


@pytest.fixture
def world(ckan_env, ckan_peer_env, tmp_path):
    tag = uuid.uuid4().hex[:6]
    peer = RemoteCKAN(ckan_peer_env["url"], apikey=ckan_peer_env["token"])
    src_org = peer.action.organization_create(name=f"t-src-{tag}")
    peer_names = []
    for i in range(3):
        ds = peer.action.package_create(
            name=f"t-peer-{tag}-{i}", title=f"Jeu pair {i}", owner_org=src_org["id"],
            notes="Effectifs", tags=[{"name": "effectifs"}], license_id="cc-by",
            resources=[{"name": f"fichier-{i}.csv", "url": f"http://example.invalid/{tag}/{i}.csv",
                        "format": "CSV"}])
        peer_names.append(ds["name"])
    peer.action.package_create(name=f"t-peer-{tag}-prive", owner_org=src_org["id"], private=True)
    feed_dir = tmp_path / "feed"
    feed_dir.mkdir()
    feed = Feed(feed_dir)
    feed.write()
    folder = tmp_path / "preau"
    make_preau_catalog(folder, {f"eff-{tag}-1": 12, f"eff-{tag}-2": 30, f"casse-{tag}": 3})
    sources = [
        Source(name=f"p{tag}", kind="ckan", url=ckan_peer_env["url"], organization=f"h-{tag}-pair",
               title="CKAN pair", grace_days=1, page_size=2, timeout=20, retries=1,
               filters={"organization": src_org["name"]}),
        Source(name=f"d{tag}", kind="dcat", url=f"{feed.base}/catalog-1.ttl", organization=f"h-{tag}-dcat",
               grace_days=1, timeout=20, retries=1,
               filters={"conforms_to": "effectifs-commune-niveau"}),
        Source(name=f"f{tag}", kind="preau", path=folder, organization=f"h-{tag}-preau",
               resources="mirror", grace_days=1, timeout=20, retries=1),
    ]
    yield {"tag": tag, "peer": peer, "peer_names": peer_names, "feed": feed, "folder": folder,
           "sources": sources, "central": RemoteCKAN(ckan_env["url"], apikey=ckan_env["token"]),
           "anon": RemoteCKAN(ckan_env["url"]), "url": ckan_env["url"], "token": ckan_env["token"]}
    feed.close()


def modified_by_name(central: RemoteCKAN, source: str) -> dict[str, str]:
    res = central.action.package_search(fq=f'extras_harvest_source:"{source}"', include_private=True, rows=1000)
    return {d["name"]: d["metadata_modified"] for d in res["results"]}


def test_harvest_full_cycle(world):
    w, clock = world, Clock()
    central, anon, tag = w["central"], w["anon"], w["tag"]
    run = lambda **kw: harvest(w["sources"], w["url"], w["token"], now=clock, sleep=lambda s: None, **kw)  # noqa: E731
    p, d, f = (s.name for s in w["sources"])

    # ---- dry run writes nothing
    dry = run(dry_run=True)
    assert dry.source(p).counts["created"] == 3
    assert modified_by_name(central, p) == {}

    # ---- first run copies, with provenance
    first = run()
    assert first.source(p).counts["created"] == 3 and first.source(p).pages == 2  # paging: 2 per page
    assert first.source(d).counts["created"] == 2 and first.source(d).pages == 2
    assert first.source(d).counts["failed"] == 1 and first.source(d).status == "partial"
    assert any("dct:title" in pr.en for pr in first.source(d).problems)
    assert first.source(f).counts["created"] == 2 and first.source(f).counts["failed"] == 1
    assert any("title missing" in pr.en for pr in first.source(f).problems)
    shown = anon.action.package_show(id=f"{p}-t-peer-{tag}-0")
    extras = {e["key"]: e["value"] for e in shown["extras"]}
    original = w["peer"].action.package_show(id=f"t-peer-{tag}-0")
    assert extras["harvest_source"] == p
    assert extras["harvest_original_id"] == original["id"]
    assert extras["harvest_original_url"].endswith(f"/dataset/t-peer-{tag}-0")
    assert extras["harvest_source_modified"] == original["metadata_modified"]
    assert extras["harvest_time"] == "2026-11-23T08:00:00Z"
    assert shown["organization"]["name"] == f"h-{tag}-pair"
    assert shown["resources"][0]["url"] == f"http://example.invalid/{tag}/0.csv"  # linked
    assert anon.action.package_search(q=f"name:{p}-t-peer-{tag}-prive")["count"] == 0
    assert len(modified_by_name(central, p)) == 3  # the private source dataset is not harvested
    # mirrored file: uploaded to the central CKAN, same bytes
    mirrored = anon.action.package_show(id=f"{f}-eff-{tag}-1")
    body = requests.get(mirrored["resources"][0]["url"], timeout=30).content
    assert body == (w["folder"] / f"datasets/eff-{tag}-1/eff-{tag}-1.csv").read_bytes()
    assert mirrored["resources"][0]["url"].startswith(w["url"])
    # the central DCAT feed lists harvested datasets with their provenance
    ttl = requests.get(w["url"] + "/catalog.ttl", params={"q": f"name:{p}-t-peer-{tag}-0"},
                       timeout=60).content.decode("utf-8")
    assert "Jeu pair 0" in ttl and "dct:provenance" in ttl and "Moissonné depuis « CKAN pair »" in ttl

    # ---- second run with no change writes nothing
    before = {s.name: modified_by_name(central, s.name) for s in w["sources"]}
    clock.t += timedelta(hours=1)
    second = run()
    assert second.writes == 0
    for s in w["sources"]:
        assert second.source(s.name).counts["created"] == second.source(s.name).counts["updated"] == 0
        assert modified_by_name(central, s.name) == before[s.name]
    assert second.source(p).counts["unchanged"] == 3

    # ---- changes are updated, only them
    w["peer"].action.package_patch(id=f"t-peer-{tag}-1", title="Jeu pair 1 (corrigé)")
    w["feed"].datasets["ecoles-b"] = "Écoles B (v2)"
    w["feed"].write()
    make_preau_catalog(w["folder"], {f"eff-{tag}-1": 13, f"eff-{tag}-2": 30, f"casse-{tag}": 3})
    clock.t += timedelta(hours=1)
    third = run()
    for s in w["sources"]:
        assert third.source(s.name).counts["updated"] == 1, third.render("en")
    assert third.source(p).counts["unchanged"] == 2
    after = modified_by_name(central, p)
    assert after[f"{p}-t-peer-{tag}-1"] != before[p][f"{p}-t-peer-{tag}-1"]
    assert after[f"{p}-t-peer-{tag}-0"] == before[p][f"{p}-t-peer-{tag}-0"]
    assert anon.action.package_show(id=f"{p}-t-peer-{tag}-1")["title"] == "Jeu pair 1 (corrigé)"
    mirrored = anon.action.package_show(id=f"{f}-eff-{tag}-1")
    assert b",13" in requests.get(mirrored["resources"][0]["url"], timeout=30).content

    # ---- removed: archived (kept, private), then deleted after the grace period
    w["peer"].action.package_delete(id=f"t-peer-{tag}-2")
    make_preau_catalog(w["folder"], {f"eff-{tag}-1": 13, f"casse-{tag}": 3})
    del w["feed"].datasets["ecoles-a"]
    w["feed"].write()
    clock.t += timedelta(hours=1)
    fourth = run()
    for s in w["sources"]:
        assert fourth.source(s.name).counts["archived"] == 1, fourth.render("en")
    gone = f"{p}-t-peer-{tag}-2"
    assert anon.action.package_search(q=f"name:{gone}")["count"] == 0
    kept = central.action.package_show(id=gone)
    assert kept["private"] is True
    assert {e["key"]: e["value"] for e in kept["extras"]}["harvest_status"] == "archived"
    clock.t += timedelta(hours=12)  # still within the grace period (1 day)
    fifth = run()
    assert all(fifth.source(s.name).counts["deleted"] == 0 for s in w["sources"])
    assert fifth.writes == 0
    clock.t += timedelta(hours=13)
    sixth = run()
    for s in w["sources"]:
        assert sixth.source(s.name).counts["deleted"] == 1, sixth.render("en")
    with pytest.raises(NotFound):
        central.action.package_show(id=gone)
    # the health report serialises
    data = json.loads(sixth.to_json())
    assert {s["name"] for s in data["sources"]} == {p, d, f}
    assert "supprimés" in sixth.render("fr")


def test_dead_source_fails_alone_and_archives_nothing(world):
    w, clock = world, Clock()
    good = w["sources"][0]
    dead = Source(name=f"x{w['tag']}", kind="dcat", url="http://127.0.0.1:9/catalog.ttl",
                  organization=f"h-{w['tag']}-dead", timeout=2, retries=1)
    report = harvest([good, dead], w["url"], w["token"], now=clock, sleep=lambda s: None)
    assert report.source(good.name).counts["created"] == 3
    assert report.source(dead.name).status == "failed"
    assert not report.ok
    # the good source going down later archives nothing
    down = Source(**{**good.__dict__, "url": "http://127.0.0.1:9"})
    report = harvest([down], w["url"], w["token"], now=clock, sleep=lambda s: None)
    assert report.source(good.name).status == "failed"
    assert report.source(good.name).counts["archived"] == 0
    assert len(modified_by_name(w["central"], good.name)) == 3


def test_cli_harvest_json_and_errors(world, tmp_path):
    w = world
    src = w["sources"][2]
    toml = tmp_path / "sources.toml"
    toml.write_text(f'[[source]]\nname = "{src.name}"\nkind = "preau"\npath = "{src.path}"\n'
                    f'organization = "{src.organization}"\nresources = "mirror"\n', encoding="utf-8")
    env = {**os.environ, "PREAU_CKAN_URL": w["url"], "PREAU_CKAN_TOKEN": w["token"], "PREAU_LANG": "fr"}
    cmd = [sys.executable, "-m", "preau", "harvest", "--sources", str(toml), "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sources"][0]["counts"]["created"] == 2
    assert w["token"] not in done.stdout + done.stderr
    # wrong token: clear message, non-zero exit, token never shown
    bad = {**env, "PREAU_CKAN_TOKEN": "faux-jeton-0123456789"}
    done = subprocess.run(cmd[:-1], env=bad, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "jeton refusé" in done.stderr and "faux-jeton" not in done.stderr + done.stdout
    # unknown source
    done = subprocess.run(cmd[:-1] + ["--source", "nope"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "source inconnue" in done.stderr


def test_load_sources_errors(tmp_path):
    good = load_sources(ROOT / "catalog" / "sources.toml")
    assert {s.kind for s in good} >= {"ckan", "preau"}
    bad = tmp_path / "s.toml"
    bad.write_text('[[source]]\nname = "a"\nkind = "ftp"\nurl = "http://x"\norganization = "org"\n')
    with pytest.raises(PreauError) as err:
        load_sources(bad)
    assert err.value.report.problems[0].field == "kind"
    bad.write_text('[[source]]\nname = "a"\nkind = "ckan"\norganization = "org"\n')
    with pytest.raises(PreauError):
        load_sources(bad)
    bad.write_text('[[source]\nname = "a"\n')
    with pytest.raises(PreauError) as err:
        load_sources(bad)
    assert err.value.report.problems[0].line == 1
