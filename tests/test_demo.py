"""End to end: ``preau demo`` in a temporary copy of the reference workspace, then a privacy scan.

The scan proves that no personal value of the synthetic input (pupil and guardian full names,
pupil identifiers, birth dates, phone numbers, home addresses) appears anywhere under
``_build/data``, ``_build/catalog`` or ``_build/site`` — including inside Parquet, GeoPackage and
FlatGeobuf files, which are decoded first.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".csv", ".json", ".jsonld", ".ttl", ".html", ".geojson", ".svg", ".js", ".md", ".txt", ".xml",
                 ".css", ".rdf"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("demo")
    for sub in ("publishers", "datasets", "schemas", "site"):
        if (ROOT / sub).exists():
            shutil.copytree(ROOT / sub, ws / sub)
    if (ROOT / "node_modules").exists():
        (ws / "node_modules").symlink_to(ROOT / "node_modules")
    proc = subprocess.run([sys.executable, "-m", "preau", "demo"], cwd=ws, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "Traceback" not in proc.stderr
    # the build's warnings are shown (the synthetic communes overlap a little: one warning)
    assert "Avertissements" in proc.stderr and "chevauchement" in proc.stderr
    return ws / "_build"


def test_demo_produces_site_catalog_and_every_table(demo):
    assert (demo / "site" / "index.html").stat().st_size > 0
    catalog = demo / "catalog"
    assert any(catalog.rglob("datapackage.json"))
    index = json.loads((catalog / "catalog.json").read_text(encoding="utf-8"))
    names = {d["name"] for d in index["datasets"]}
    for ds in ("effectifs-ecole-niveau", "effectifs-commune-niveau", "effectifs-secteur-niveau", "flux-secteur-ecole",
               "restauration-periscolaire-ecole", "ecart-age-ecole", "secteurs-scolaires", "carte-ecoles"):
        assert f"demo-65-{ds}" in names
    # the audit groups are written, so `preau audit` can re-prove the build from files alone
    assert (demo / "data" / "demo-65" / "_audit" / "public" / "disclosure-tables.json").exists()
    # every protected table passed the audit and hides something, and its validation report is valid
    for manifest in (demo / "data" / "demo-65").glob("*/manifest.json"):
        m = json.loads(manifest.read_text(encoding="utf-8"))
        if m["kind"] == "table":
            assert m["validation"]["valid"], manifest
            if m["disclosure"]["rule"] == "threshold":
                assert m["disclosure"]["audit"] == "passed"
                assert m["disclosure"]["cells_hidden"] > 0


def _personal_values(synth: Path) -> dict[str, set[str]]:
    values: dict[str, set[str]] = {"name": set(), "id": set(), "phone": set(), "date": set(), "address": set()}
    school_addresses = set(pl.read_csv(synth / "ecoles.csv", separator=";", infer_schema=False)["adresse_1"])
    for path in synth.glob("eleves-*.csv"):
        df = pl.read_csv(path.read_bytes().decode("cp1252").encode(), separator=";", infer_schema=False)
        for first, last in (("Prénom élève", "Nom élève"), ("Prénom responsable légal 1", "Nom responsable légal 1"),
                            ("Prénom responsable légal 2", "Nom responsable légal 2")):
            pairs = df.select(first, last).drop_nulls().unique()
            values["name"] |= {f"{a} {b}" for a, b in pairs.iter_rows()} | {f"{b} {a}" for a, b in pairs.iter_rows()}
        values["id"] |= set(df["INE"])
        values["phone"] |= set(df["Téléphone responsable légal 1"].drop_nulls())
        values["date"] |= set(df["Date de naissance"])
        values["address"] |= set(df["Adresse"].drop_nulls()) - school_addresses
    # names that public reference data already contains (a school called « Jean Moulin », a street
    # « Rue Victor Hugo ») are not personal even if a fictitious guardian bears them
    schools = pl.read_csv(synth / "ecoles.csv", separator=";", infer_schema=False)
    public_text = "\n".join(schools["nom_etablissement"].to_list() + schools["patronyme"].drop_nulls().to_list())
    for path in synth.glob("adresses-*.csv"):
        public_text += "\n" + "\n".join(pl.read_csv(path, separator=";", infer_schema=False,
                                                      columns=["nom_voie"])["nom_voie"].unique().to_list())
    for m in NAME_RE.finditer(public_text):
        words = m.group(0).split(" ")
        values["name"] -= {f"{words[i]} {words[i + 1]}" for i in range(len(words) - 1)}
    return values


def _texts(root: Path):
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            yield path, path.read_text(encoding="utf-8", errors="replace")
        elif suffix == ".parquet":
            yield path, pl.read_parquet(path).write_csv()
        elif suffix in (".gpkg", ".fgb"):
            import geopandas as gpd

            yield path, gpd.read_file(path).drop(columns="geometry").to_csv()


NAME_RE = re.compile(r"[A-ZÀ-ÝŒ][\w’'\-]+(?: [A-ZÀ-ÝŒ][\w’'\-]+)+")
ADDRESS_RE = re.compile(r"\d{1,4}(?: bis| ter)? [^,;\"<>\n\t|]{3,80}")


def test_no_personal_value_anywhere_in_the_build(demo):
    values = _personal_values(demo / "synth")
    assert len(values["name"]) > 10_000 and len(values["address"]) > 5_000
    leaks = []
    for sub in ("data", "catalog", "site"):
        for path, text in _texts(demo / sub):
            for m in NAME_RE.finditer(text):
                words = m.group(0).split(" ")
                for i in range(len(words) - 1):
                    pair = f"{words[i]} {words[i + 1]}"
                    if pair in values["name"]:
                        leaks.append((path, "name"))
            for token in re.findall(r"\b\d{10}[A-Z]\b", text):
                if token in values["id"]:
                    leaks.append((path, "id"))
            for token in re.findall(r"\b0[67](?: \d\d){4}\b", text):
                if token in values["phone"]:
                    leaks.append((path, "phone"))
            for token in re.findall(r"\b\d\d/\d\d/\d{4}\b", text):
                if token in values["date"]:
                    leaks.append((path, "date"))
            for m in ADDRESS_RE.finditer(text):
                s = m.group(0).rstrip()
                cuts = [j for j, ch in enumerate(s) if ch == " "] + [len(s)]
                if any(s[:j] in values["address"] for j in cuts):
                    leaks.append((path, "address"))
    assert not leaks, sorted({(str(p.relative_to(demo)), kind) for p, kind in leaks})[:20]


def test_privacy_scan_would_catch_a_leak(demo, tmp_path):
    """The scan itself can fail: plant one pupil's name and address in a copy and it is found."""
    values = _personal_values(demo / "synth")
    planted = tmp_path / "site"
    planted.mkdir()
    name = sorted(values["name"])[0]
    address = sorted(values["address"])[0]
    (planted / "page.html").write_text(f"<p>{name}</p><p>{address}</p>", encoding="utf-8")
    found = set()
    for _, text in _texts(tmp_path):
        for m in NAME_RE.finditer(text):
            words = m.group(0).split(" ")
            found |= {"name" for i in range(len(words) - 1) if f"{words[i]} {words[i + 1]}" in values["name"]}
        for m in ADDRESS_RE.finditer(text):
            s = m.group(0).rstrip()
            if any(s[:j] in values["address"] for j in [k for k, c in enumerate(s) if c == " "] + [len(s)]):
                found.add("address")
    assert found == {"name", "address"}


def test_demo_with_another_output_folder(tmp_path):
    """`preau demo --out X`: the build, catalog and site go to X; the synthetic exports stay where
    the demo publisher reads them (_build/synth)."""
    for sub in ("publishers", "datasets", "schemas", "site", "catalog"):
        if (ROOT / sub).exists():
            shutil.copytree(ROOT / sub, tmp_path / sub, ignore=shutil.ignore_patterns(".local"))
    if (ROOT / "node_modules").exists():
        (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    proc = subprocess.run([sys.executable, "-m", "preau", "demo", "--out", "sortie"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert (tmp_path / "sortie" / "site" / "index.html").is_file()
    assert (tmp_path / "sortie" / "data" / "demo-65" / "effectifs-ecole-niveau" / "manifest.json").is_file()
    assert any((tmp_path / "_build" / "synth").glob("eleves-*.csv"))
