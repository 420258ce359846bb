"""The local file catalog (_build/catalog): layout, DCAT feed, restricted tier, idempotence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rdflib import Graph, Namespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fixture_build  # noqa: E402

from preau.catalog.local import write_local_catalog  # noqa: E402
from preau.package import build_packages  # noqa: E402

DCAT = Namespace("http://www.w3.org/ns/dcat#")
RESTRICTED = "demo-65-flux-secteur-ecole-niveau"


def build(tmp_path):
    ws, data = fixture_build.make(tmp_path / "ws")
    return ws, data, build_packages(ws, data, tmp_path / "packages").packages


def snapshot(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_layout_index_and_feed(tmp_path):
    _, _, packages = build(tmp_path)
    cat = tmp_path / "catalog"
    report = write_local_catalog(packages, cat)
    assert report.count("create", "dataset") == 3
    index = json.loads((cat / "catalog.json").read_text(encoding="utf-8"))
    names = [d["name"] for d in index["datasets"]]
    assert names == ["demo-65-carte-ecoles", "demo-65-effectifs-commune-niveau"]
    assert index["publishers"][0]["id"] == "demo-65"
    for d in index["datasets"]:
        assert (cat / d["path"]).is_file() and (cat / d["dcat"]).is_file()
        for r in d["resources"]:
            assert (cat / r["path"]).stat().st_size == r["bytes"]
    g = Graph()
    g.parse(cat / "catalog.ttl", format="turtle")
    datasets = {str(o).rsplit("/", 1)[1] for o in g.objects(None, DCAT.dataset)}
    assert datasets == set(names)
    g2 = Graph()
    g2.parse(cat / "catalog.jsonld", format="json-ld")
    assert len(g2) == len(g)
    # restricted: its own folder, never in the index or the feed
    assert (cat / "restricted" / RESTRICTED / "datapackage.json").is_file()
    assert not (cat / "datasets" / RESTRICTED).exists()
    for f in ("catalog.json", "catalog.jsonld", "catalog.ttl"):
        text = (cat / f).read_text(encoding="utf-8")
        assert RESTRICTED not in text and "flux-secteur-ecole-niveau" not in text


def test_second_publish_writes_nothing(tmp_path):
    _, _, packages = build(tmp_path)
    cat = tmp_path / "catalog"
    write_local_catalog(packages, cat)
    before = snapshot(cat)
    report = write_local_catalog(packages, cat)
    assert report.writes == 0 and report.bytes_uploaded == 0
    assert snapshot(cat) == before


def test_dry_run_writes_nothing_and_reports_the_diff(tmp_path):
    ws, data, packages = build(tmp_path)
    cat = tmp_path / "catalog"
    dry = write_local_catalog(packages, cat, dry_run=True)
    assert not cat.exists() and dry.count("create", "dataset") == 3
    write_local_catalog(packages, cat)
    csv = data / "demo-65/effectifs-commune-niveau/effectifs-commune-niveau.csv"
    csv.write_text(csv.read_text(encoding="utf-8") + "2025-2026,TOTAL,,TOTAL,1,false\n", encoding="utf-8")
    packages = build_packages(ws, data, tmp_path / "packages").packages
    before = snapshot(cat)
    dry = write_local_catalog(packages, cat, dry_run=True)
    assert snapshot(cat) == before
    updated = {c.name for c in dry.changes if c.action == "update"}
    assert "demo-65-effectifs-commune-niveau/effectifs-commune-niveau.csv" in updated
    assert "demo-65-effectifs-commune-niveau" in updated and "catalog.json" in updated
    assert "demo-65-carte-ecoles" not in updated


def test_dataset_turned_restricted_leaves_the_public_catalog(tmp_path):
    ws, data, packages = build(tmp_path)
    cat = tmp_path / "catalog"
    write_local_catalog(packages, cat)
    toml = ws / "datasets/effectifs-commune-niveau.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('access = "public"', 'access = "restricted"'),
                    encoding="utf-8")
    packages = build_packages(ws, data, tmp_path / "packages").packages
    report = write_local_catalog(packages, cat)
    assert not (cat / "datasets/demo-65-effectifs-commune-niveau").exists()
    assert (cat / "restricted/demo-65-effectifs-commune-niveau/datapackage.json").is_file()
    assert any(c.action == "delete" and c.name == "demo-65-effectifs-commune-niveau" for c in report.changes)
    for f in ("catalog.json", "catalog.jsonld", "catalog.ttl"):
        assert "effectifs-commune-niveau" not in (cat / f).read_text(encoding="utf-8")


def test_cli_publish_local_json_then_nothing_to_do(tmp_path):
    import os
    import subprocess

    ws, _ = fixture_build.make(tmp_path / "ws")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_CKAN")}
    preau = Path(sys.executable).parent / "preau"

    def run(*args):
        proc = subprocess.run([str(preau), *args], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc

    dry = json.loads(run("publish", "--dry-run", "--json", str(ws)).stdout)
    assert dry["target"] == "local" and dry["dry_run"] and dry["counts"]["dataset"]["create"] == 3
    assert not (ws / "_build/catalog").exists()
    first = json.loads(run("publish", "--json", str(ws)).stdout)
    assert first["counts"]["dataset"]["create"] == 3 and first["bytes_uploaded"] > 0
    assert (ws / "_build/catalog/catalog.json").is_file()
    second = run("--lang", "en", "publish", "--local", str(ws)).stdout
    assert "dataset(s): 3 unchanged" in second and "bytes written: 0" in second


def test_catalog_files_are_links_to_the_packages_and_keep_their_bytes(tmp_path, monkeypatch):
    """The local catalog links its files to the packages' (one file system): no copy, and a package
    rebuilt later (new files renamed over the old ones) leaves the published bytes as they were."""
    import os

    import preau.catalog.local as local

    ws, data, packages = build(tmp_path)
    cat = tmp_path / "catalog"
    write_local_catalog(packages, cat)
    name = "demo-65-effectifs-commune-niveau/effectifs-commune-niveau.csv"
    pkg_file, cat_file = tmp_path / "packages" / name, cat / "datasets" / name
    assert os.path.samefile(pkg_file, cat_file)
    published = cat_file.read_bytes()
    # a no-change publish compares linked files by inode: nothing is hashed, nothing written
    hashed = []
    real_file, real_many = local.sha256_file, local.sha256_many
    monkeypatch.setattr(local, "sha256_file", lambda p: hashed.append(p) or real_file(p))
    monkeypatch.setattr(local, "sha256_many", lambda ps: real_many(hashed.extend(ps := list(ps)) or ps))
    assert write_local_catalog(packages, cat).writes == 0
    assert not [p for p in hashed if Path(p).name == "effectifs-commune-niveau.csv"]
    monkeypatch.undo()
    csv = data / "demo-65/effectifs-commune-niveau/effectifs-commune-niveau.csv"
    csv.write_text(csv.read_text(encoding="utf-8") + "2025-2026,TOTAL,,TOTAL,1,false\n", encoding="utf-8")
    packages = build_packages(ws, data, tmp_path / "packages").packages
    assert pkg_file.read_bytes() != published and cat_file.read_bytes() == published  # not published yet
    report = write_local_catalog(packages, cat)
    assert "demo-65-effectifs-commune-niveau/effectifs-commune-niveau.csv" in {c.name for c in report.changes if c.action == "update"}
    assert cat_file.read_bytes() == pkg_file.read_bytes() and os.path.samefile(pkg_file, cat_file)


def test_catalog_files_are_copied_where_links_fail(tmp_path, monkeypatch):
    import os

    def refuse(src, dst):
        raise OSError(18, "Invalid cross-device link")

    _, _, packages = build(tmp_path)
    monkeypatch.setattr(os, "link", refuse)
    cat = tmp_path / "catalog"
    write_local_catalog(packages, cat)
    name = "demo-65-effectifs-commune-niveau/effectifs-commune-niveau.csv"
    pkg_file, cat_file = tmp_path / "packages" / name, cat / "datasets" / name
    assert not os.path.samefile(pkg_file, cat_file) and cat_file.read_bytes() == pkg_file.read_bytes()
    assert oct(cat_file.stat().st_mode & 0o777) == oct(0o644)
    assert write_local_catalog(packages, cat).writes == 0
