"""Unit tests of the harvest readers and report (no CKAN): DCAT-AP and Préau catalogs from files."""

from __future__ import annotations

import json

from preau.catalog.harvest import HarvestReport, Source, SourceHealth, fetch_dcat, fetch_preau

TTL = """@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
<https://ex.org/id/a> a dcat:Dataset ; dct:identifier "a" ; dct:title "Titre A"@fr, "Title A"@en ;
    dct:modified "2026-01-01" ; dcat:keyword "ecoles" ;
    dcat:distribution [ a dcat:Distribution ; dcat:downloadURL <https://ex.org/a.csv> ;
                        dct:format <http://publications.europa.eu/resource/authority/file-type/CSV> ] .
<https://ex.org/id/b> a dcat:Dataset ; dct:identifier "b" .
<https://ex.org/id/c> a dcat:Dataset ; dct:title "C" ; dcat:distribution [ a dcat:Distribution ] .
"""


def test_fetch_dcat_file_reports_malformed(tmp_path):
    feed = tmp_path / "feed.ttl"
    feed.write_text(TTL, encoding="utf-8")
    got = fetch_dcat(Source(name="s", kind="dcat", organization="org", path=feed))
    assert [r.original_id for r in got.records] == ["a"]
    rec = got.records[0]
    assert rec.title == "Titre A" and rec.tags == ["ecoles"] and rec.modified == "2026-01-01"
    assert rec.resources[0]["url"] == "https://ex.org/a.csv" and rec.resources[0]["format"] == "CSV"
    assert rec.name.startswith("a-")
    reasons = sorted(m[2] for m in got.malformed)
    assert reasons == ["dct:title missing", "distribution without dcat:downloadURL or dcat:accessURL"]


def test_fetch_preau_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.csv").write_text("a\n1\n", encoding="utf-8")
    index = {"generated": "2026-01-01T00:00:00Z", "datasets": [
        {"name": "ok", "title": {"fr": "Bon", "en": "Good"}, "keywords": ["k"],
         "licence": {"id": "etalab-2.0", "url": "https://lic"}, "schema": {"name": "effectifs-x", "version": "1.0.0"},
         "resources": [{"name": "x.csv", "path": "d/x.csv", "format": "csv", "hash": "sha256:abc"}]},
        {"name": "sans-titre"}, {"title": "sans nom"}]}
    (tmp_path / "catalog.json").write_text(json.dumps(index), encoding="utf-8")
    got = fetch_preau(Source(name="p", kind="preau", organization="org", path=tmp_path))
    assert [r.name for r in got.records] == ["ok"]
    rec = got.records[0]
    assert rec.license_id == "etalab-2.0" and rec.resources[0]["hash"] == "abc"
    assert "effectifs-x@1.0.0" in rec.conforms_to
    assert rec.resources[0]["url"] == str((tmp_path / "d" / "x.csv").resolve())
    assert sorted(m[2] for m in got.malformed) == ["name missing", "title missing"]


def test_report_render_and_json():
    h = SourceHealth("s", "ckan", "http://x")
    h.counts["created"] = 2
    h.counts["failed"] = 1
    h.status = "partial"
    report = HarvestReport(sources=[h])
    assert "2 créés" in report.render("fr") and "1 en échec" in report.render("fr")
    assert "2 created" in report.render("en")
    assert json.loads(report.to_json())["sources"][0]["counts"]["created"] == 2
    assert report.ok
    h.status = "failed"
    assert not report.ok
