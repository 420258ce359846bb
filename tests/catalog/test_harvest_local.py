"""Harvest into the local file catalog (``preau harvest --into local:PATH``), no CKAN needed.

A neighbour's Préau file catalog (generated aggregates, made by the real packaging stages) and a
DCAT-AP file feed are harvested into a local catalog: the first run copies with provenance, a
no-change run writes no file, a change updates, a removal archives (out of catalog.json) then
deletes after the grace period (injected clock), a copy that comes back is restored, a bad file or
record fails alone and leaves nothing half-written, and ``preau publish`` keeps the copies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from preau.catalog.harvest import Source, fetch_preau, harvest
from preau.catalog.local import harvested_packages, write_local_catalog
from preau.errors import PreauError
from preau.package import load_packages
from preau.package.files import sha256_file

FEED = """@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
<https://commune.example.org/id/cantine> a dcat:Dataset ; dct:identifier "cantine" ;
    dct:title "Inscrits à la cantine"@fr ; dct:description "Effectifs agrégés"@fr ;
    dct:modified "2026-10-01T09:30:00Z" ; dcat:keyword "cantine" ;
    dct:publisher [ a foaf:Agent ; foaf:name "Commune de Test" ] ;
    dcat:landingPage <https://commune.example.org/jeux/cantine> ;
    dcat:distribution [ a dcat:Distribution ; dct:title "cantine.csv" ;
        dcat:downloadURL <https://commune.example.org/fichiers/cantine.csv> ;
        dct:format <http://publications.europa.eu/resource/authority/file-type/CSV> ] .
<https://commune.example.org/id/casse> a dcat:Dataset ; dct:identifier "casse" .
"""


class Clock:
    def __init__(self):
        self.t = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.t


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def neighbour_template(tmp_path_factory) -> Path:
    from preau.website.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("voisin")
    write_sample_catalog(root, publisher="demo-32", departements=("32",), communes=3, layers=False,
                         restricted=True)
    return root


@pytest.fixture()
def world(neighbour_template, tmp_path):
    import shutil

    from preau.website.sample import write_sample_catalog

    neighbour = tmp_path / "voisin"
    shutil.copytree(neighbour_template, neighbour)
    main = tmp_path / "main"
    catalog = write_sample_catalog(main, publisher="test-65", communes=2, layers=False, restricted=False)
    feed = tmp_path / "feed.ttl"
    feed.write_text(FEED, encoding="utf-8")
    sources = [Source(name="voisin", kind="preau", path=neighbour / "_build" / "catalog", organization="demo-32",
                      title="Catalogue voisin", resources="mirror", grace_days=2),
               Source(name="flux", kind="dcat", path=feed, organization="commune-test", resources="link",
                      grace_days=2)]
    return {"neighbour": neighbour, "main": main, "catalog": catalog, "feed": feed, "sources": sources}


def _index(catalog: Path) -> dict:
    return json.loads((catalog / "catalog.json").read_text(encoding="utf-8"))


def _drop_from_neighbour(neighbour: Path, name: str) -> None:
    path = neighbour / "_build" / "catalog" / "catalog.json"
    index = json.loads(path.read_text(encoding="utf-8"))
    index["datasets"] = [d for d in index["datasets"] if d["name"] != name]
    path.write_text(json.dumps(index), encoding="utf-8")


def test_first_run_copies_with_provenance(world):
    catalog, clock = world["catalog"], Clock()
    into = f"local:{catalog}"
    dry = harvest(world["sources"], into=into, dry_run=True, now=clock)
    assert dry.source("voisin").counts["created"] == 2 and not (catalog / "harvested").exists()

    report = harvest(world["sources"], into=into, now=clock)
    v, f = report.source("voisin"), report.source("flux")
    assert v.status == "ok" and v.counts["created"] == 2  # the restricted table is not in the source index
    assert f.status == "partial" and f.counts["created"] == 1 and f.counts["failed"] == 1
    assert any("dct:title" in p.en for p in f.problems)

    copies = {folder.name: desc for folder, desc in harvested_packages(catalog)}
    flux_name = next(n for n in copies if n.startswith("flux-cantine-"))
    assert sorted(copies) == [flux_name, "voisin-demo-32-effectifs-commune-niveau",
                              "voisin-demo-32-effectifs-ecole-niveau"]
    # mirrored: same bytes as the source's files, descriptor kept (schema, disclosure) + provenance
    name = "voisin-demo-32-effectifs-commune-niveau"
    src_pkg = world["neighbour"] / "_build" / "catalog" / "datasets" / "demo-32-effectifs-commune-niveau"
    desc = copies[name]
    original = json.loads((src_pkg / "datapackage.json").read_text(encoding="utf-8"))
    assert [r["path"] for r in desc["resources"]] == [r["path"] for r in original["resources"]]
    for r in desc["resources"]:
        assert sha256_file(catalog / "harvested" / name / r["path"]) == sha256_file(src_pkg / r["path"])
    assert desc["preau"]["disclosure"] == original["preau"]["disclosure"]
    h = desc["preau"]["harvest"]
    assert h["source"] == "voisin" and h["source_kind"] == "preau" and h["source_title"] == "Catalogue voisin"
    assert h["original_id"] == "demo-32-effectifs-commune-niveau" and h["organization"] == "demo-32"
    assert h["publisher"]["id"] == "demo-32" and h["publisher"]["name"]["fr"] == "Territoire de test (32)"
    assert h["harvested"] == "2026-11-23T08:00:00Z" and h["status"] == "active"
    assert h["source_modified"] == json.loads((world["neighbour"] / "_build/catalog/catalog.json").read_text())["generated"]
    assert "Moissonné depuis « Catalogue voisin »" in desc["preau"]["provenance"]["fr"]
    # linked (DCAT): the resource path is the source's URL, nothing downloaded; derived descriptor
    flux = copies[flux_name]
    assert flux["resources"][0]["path"] == "https://commune.example.org/fichiers/cantine.csv"
    assert flux["preau"]["harvest"]["publisher"]["name"] == "Commune de Test"
    assert flux["preau"]["harvest"]["original_url"] == "https://commune.example.org/jeux/cantine"
    assert flux["preau"]["harvest"]["source_modified"] == "2026-10-01T09:30:00Z"
    # catalog.json lists local and harvested datasets, harvested publishers included
    index = _index(catalog)
    harvested = {d["name"]: d for d in index["datasets"] if d.get("origin") == "harvested"}
    assert set(harvested) == set(copies)
    assert harvested[name]["path"] == f"harvested/{name}/datapackage.json"
    assert harvested[name]["harvest"]["source"] == "voisin" and "hash" not in harvested[name]["harvest"]
    assert {d["name"] for d in index["datasets"] if not d.get("harvest")} == {
        "test-65-effectifs-commune-niveau", "test-65-effectifs-ecole-niveau"}
    pubs = {p["id"]: p for p in index["publishers"]}
    assert pubs["demo-32"]["harvested"] == ["voisin"] and pubs["demo-32"]["name"]["fr"] == "Territoire de test (32)"
    assert pubs["commune-test"]["name"] == "Commune de Test"
    assert "harvested" not in pubs["test-65"]


def test_no_change_run_writes_nothing_and_publish_keeps_the_copies(world):
    catalog, clock = world["catalog"], Clock()
    into = f"local:{catalog}"
    harvest(world["sources"], into=into, now=clock)
    before = snapshot(catalog)
    clock.t += timedelta(hours=6)
    again = harvest(world["sources"], into=into, now=clock)
    assert again.writes == 0
    assert again.source("voisin").counts["unchanged"] == 2 and again.source("flux").counts["unchanged"] == 1
    assert snapshot(catalog) == before  # not one file rewritten, catalog.json included
    # `preau publish` of the local datasets keeps the harvested copies (and writes nothing new)
    packages = load_packages(world["main"] / "_build" / "packages")
    write_local_catalog(packages, catalog)
    assert snapshot(catalog) == before
    assert len([d for d in _index(catalog)["datasets"] if d.get("harvest")]) == 3
    # a catalog holding harvested copies, harvested in turn, does not pass the copies on (no loops)
    fetched = fetch_preau(Source(name="x", kind="preau", path=catalog, organization="x"))
    assert sorted(r.name for r in fetched.records) == ["test-65-effectifs-commune-niveau",
                                                        "test-65-effectifs-ecole-niveau"]
    assert fetched.skipped == 3


def test_change_updates_removal_archives_then_deletes(world):
    from preau.website.sample import write_sample_catalog

    catalog, clock, neighbour = world["catalog"], Clock(), world["neighbour"]
    into = f"local:{catalog}"
    harvest(world["sources"], into=into, now=clock)
    name = "voisin-demo-32-effectifs-commune-niveau"
    # a changed dataset at the source (new numbers): updated, same bytes as the new source files
    write_sample_catalog(neighbour, publisher="demo-32", departements=("32",), communes=3, layers=False,
                         restricted=True, seed=99)
    clock.t += timedelta(days=1)
    changed = harvest(world["sources"][:1], into=into, now=clock)
    assert changed.source("voisin").counts["updated"] == 2
    src_csv = neighbour / "_build/catalog/datasets/demo-32-effectifs-commune-niveau/effectifs-commune-niveau.csv"
    assert (catalog / "harvested" / name / "effectifs-commune-niveau.csv").read_bytes() == src_csv.read_bytes()
    desc = dict(harvested_packages(catalog))[catalog / "harvested" / name]
    assert desc["preau"]["harvest"]["harvested"] == "2026-11-24T08:00:00Z"
    # gone from the source: archived (kept, marked, out of catalog.json)
    _drop_from_neighbour(neighbour, "demo-32-effectifs-commune-niveau")
    clock.t += timedelta(days=1)
    gone = harvest(world["sources"][:1], into=into, now=clock)
    assert gone.source("voisin").counts["archived"] == 1 and gone.source("voisin").counts["unchanged"] == 1
    desc = json.loads((catalog / "harvested" / name / "datapackage.json").read_text(encoding="utf-8"))
    assert desc["preau"]["harvest"]["status"] == "archived"
    assert desc["preau"]["harvest"]["archived_at"] == "2026-11-25T08:00:00Z"
    assert name not in {d["name"] for d in _index(catalog)["datasets"]}
    # within the grace period (2 days): still kept
    clock.t += timedelta(days=1)
    wait = harvest(world["sources"][:1], into=into, now=clock)
    assert wait.source("voisin").datasets[name] == "archived (waiting)" and wait.writes == 0
    assert (catalog / "harvested" / name).is_dir()
    # after it: deleted
    clock.t += timedelta(days=1, minutes=1)
    late = harvest(world["sources"][:1], into=into, now=clock)
    assert late.source("voisin").counts["deleted"] == 1
    assert not (catalog / "harvested" / name).exists()
    assert name not in {d["name"] for d in _index(catalog)["datasets"]}


def test_archived_copy_comes_back_restored(world):
    catalog, clock, neighbour = world["catalog"], Clock(), world["neighbour"]
    into = f"local:{catalog}"
    harvest(world["sources"][:1], into=into, now=clock)
    index_path = neighbour / "_build" / "catalog" / "catalog.json"
    saved = index_path.read_bytes()
    _drop_from_neighbour(neighbour, "demo-32-effectifs-ecole-niveau")
    harvest(world["sources"][:1], into=into, now=clock)
    index_path.write_bytes(saved)
    back = harvest(world["sources"][:1], into=into, now=clock)
    assert back.source("voisin").counts["restored"] == 1
    assert "voisin-demo-32-effectifs-ecole-niveau" in {d["name"] for d in _index(catalog)["datasets"]}


def test_bad_file_fails_alone_and_nothing_is_half_written(world):
    catalog, clock, neighbour = world["catalog"], Clock(), world["neighbour"]
    into = f"local:{catalog}"
    harvest(world["sources"][:1], into=into, now=clock)
    name = "voisin-demo-32-effectifs-commune-niveau"
    before = snapshot(catalog / "harvested" / name)
    # the source announces a sha256 its file does not have (a file replaced half-way), index changed
    pkg_path = neighbour / "_build/catalog/datasets/demo-32-effectifs-commune-niveau/datapackage.json"
    pkg = json.loads(pkg_path.read_text(encoding="utf-8"))
    res = next(r for r in pkg["resources"] if r["path"] == "effectifs-commune-niveau.csv")
    res["hash"] = "sha256:" + "0" * 64
    pkg_path.write_text(json.dumps(pkg), encoding="utf-8")
    index_path = neighbour / "_build" / "catalog" / "catalog.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index["generated"] = "2026-12-01T00:00:00+00:00"
    index_path.write_text(json.dumps(index), encoding="utf-8")
    report = harvest(world["sources"][:1], into=into, now=clock)
    v = report.source("voisin")
    assert v.status == "partial" and v.counts["failed"] == 1 and v.counts["updated"] == 1
    assert any("sha256" in p.en and p.field == "demo-32-effectifs-commune-niveau" for p in v.problems)
    assert snapshot(catalog / "harvested" / name) == before  # the previous copy, untouched
    assert not [p for p in (catalog / "harvested").iterdir() if p.name.startswith(".")]  # no staging left


def test_source_that_is_the_target_fails_alone(world):
    catalog = world["catalog"]
    before = snapshot(catalog)
    itself = Source(name="demo", kind="preau", path=catalog, organization="x", resources="mirror")
    report = harvest([itself, world["sources"][1]], into=f"local:{catalog}")
    assert report.source("demo").status == "failed" and not report.ok
    assert report.source("demo").problems[0].code == "harvest-source-is-target"
    assert report.source("flux").counts["created"] == 1  # the other source goes on
    assert not [k for k in snapshot(catalog) if k.startswith("harvested/demo-")] and before


def test_name_taken_by_a_local_dataset_is_refused(world):
    catalog = world["catalog"]
    src = Source(name="test", kind="preau", path=world["neighbour"] / "_build" / "catalog", organization="x",
                 resources="mirror")
    (catalog / "datasets" / "test-demo-32-effectifs-ecole-niveau").mkdir()
    report = harvest([src], into=f"local:{catalog}")
    s = report.source("test")
    assert s.counts["failed"] == 1 and s.counts["created"] == 1
    assert any(p.code == "harvest-name-taken" for p in s.problems)


def test_cli_into_local_json_and_bad_target(world, tmp_path):
    toml = tmp_path / "sources.toml"
    toml.write_text(f'[[source]]\nname = "voisin"\nkind = "preau"\npath = "{world["neighbour"] / "_build" / "catalog"}"\n'
                    'organization = "demo-32"\nresources = "mirror"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_CKAN")} | {"PREAU_LANG": "fr"}
    cmd = [sys.executable, "-m", "preau", "harvest", "--sources", str(toml), "--into", f"local:{world['catalog']}"]
    done = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sources"][0]["counts"]["created"] == 2
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "2 inchangés" in done.stdout
    bad = subprocess.run(cmd[:-2] + ["--into", "ftp:x"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "cible inconnue" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(PreauError):
        harvest(world["sources"], into="local:")


def test_source_paths_cannot_point_outside_the_source(world):
    """A catalog.json entry whose resource path leaves the source folder is skipped, the rest goes on."""
    catalog, neighbour = world["catalog"], world["neighbour"]
    secret = neighbour / "secret.csv"
    secret.write_text("a\n1\n", encoding="utf-8")
    path = neighbour / "_build" / "catalog" / "catalog.json"
    index = json.loads(path.read_text(encoding="utf-8"))
    bad = next(d for d in index["datasets"] if d["name"] == "demo-32-effectifs-ecole-niveau")
    bad["resources"][0]["path"] = "../../secret.csv"
    path.write_text(json.dumps(index), encoding="utf-8")
    report = harvest(world["sources"][:1], into=f"local:{catalog}")
    v = report.source("voisin")
    assert v.counts["created"] == 1 and v.counts["failed"] == 1
    assert any("relative" in p.en for p in v.problems)
    assert not list((catalog / "harvested").rglob("secret.csv"))
