"""Packaging: Frictionless Data Packages (checked by the real frictionless-py) + DCAT-AP 3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from rdflib import Graph, Literal, Namespace, URIRef

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fixture_build  # noqa: E402

from preau.errors import PreauError  # noqa: E402
from preau.package import build_packages  # noqa: E402
from preau.package.files import sha256_file  # noqa: E402

# the pinned schema's version, as schemas/ declares it today
SCHEMA_VERSION = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "effectifs-commune-niveau" / "schema.json").read_text())["version"]

FRICTIONLESS = Path(sys.executable).parent / "frictionless"
DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
SPDX = Namespace("http://spdx.org/rdf/terms#")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
TABLE = "demo-65-effectifs-commune-niveau"


@pytest.fixture()
def built(tmp_path):
    ws, data = fixture_build.make(tmp_path / "ws")
    out = tmp_path / "packages"
    result = build_packages(ws, data, out)
    return ws, data, out, result


def frictionless(descriptor: Path) -> dict:
    proc = subprocess.run([str(FRICTIONLESS), "validate", "--json", descriptor.name], cwd=descriptor.parent,
                          capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    assert (proc.returncode == 0) == report["valid"]
    return report


def test_frictionless_accepts_every_package(built):
    _, _, out, result = built
    assert sorted(p.name for p in result.packages) == [
        "demo-65-carte-ecoles", TABLE, "demo-65-flux-secteur-ecole-niveau"]
    for pkg in result.packages:
        report = frictionless(pkg.folder / "datapackage.json")
        assert report["valid"], (pkg.name, report["errors"], [t["errors"] for t in report["tasks"]])
        # every resource was checked (tables read against the schema, other files by size and hash)
        assert len(report["tasks"]) == len(pkg.descriptor["resources"])
    tasks = {t["name"]: t for t in frictionless(out / TABLE / "datapackage.json")["tasks"]}
    assert tasks["effectifs-commune-niveau.csv"]["type"] == "table"


def test_frictionless_detects_a_tampered_file(built):
    _, _, out, _ = built
    csv = out / TABLE / "effectifs-commune-niveau-2024-2025.csv"
    text = csv.read_text(encoding="utf-8")
    csv.write_text(text.replace(",CP,", ",XX,", 1), encoding="utf-8")
    report = frictionless(out / TABLE / "datapackage.json")
    assert not report["valid"]
    codes = {e["type"] for t in report["tasks"] for e in t["errors"]}
    assert "hash-count" in codes and "constraint-error" in codes


def test_descriptor_content(built):
    ws, data, out, _ = built
    desc = json.loads((out / TABLE / "datapackage.json").read_text(encoding="utf-8"))
    assert desc["name"] == TABLE
    assert desc["licenses"][0]["name"] == "etalab-2.0"
    assert "communes" in desc["keywords"]
    p = desc["preau"]
    assert p["title"]["fr"] and p["title"]["en"] and p["access"] == "public"
    assert p["school_years"] == ["2024-2025", "2025-2026"]
    assert "5 élèves" in p["disclosure"]["note"]["fr"] and "5 pupils" in p["disclosure"]["note"]["en"]
    assert p["disclosure"]["note"]["fr"] in desc["description"]
    by_path = {r["path"]: r for r in desc["resources"]}
    # schema pinned by version, copied next to the data and referenced by path
    pinned = f"schema-effectifs-commune-niveau-{SCHEMA_VERSION}.json"
    assert (out / TABLE / pinned).read_bytes() == (ws / "schemas/effectifs-commune-niveau/schema.json").read_bytes()
    assert by_path["effectifs-commune-niveau.csv"]["schema"] == pinned
    assert by_path["effectifs-commune-niveau.csv"]["preau"]["datastore"] is True
    for path, res in by_path.items():
        f = out / TABLE / path
        assert res["bytes"] == f.stat().st_size
        assert res["hash"] == "sha256:" + sha256_file(f)
    # Parquet per school year derived from the all-years table
    for year in ("2024-2025", "2025-2026"):
        res = by_path[f"effectifs-commune-niveau-{year}.parquet"]
        frame = pl.read_parquet(out / TABLE / res["path"])
        expected = pl.read_csv(data / "demo-65/effectifs-commune-niveau" / f"effectifs-commune-niveau-{year}.csv",
                               schema_overrides={"code_insee": pl.Utf8})
        assert frame.height == res["preau"]["rows"] == expected.height
        assert set(frame["annee_scolaire"].unique()) == {year}
    assert {"validation.json", "disclosure.json"} <= set(by_path)
    restricted = json.loads((out / "demo-65-flux-secteur-ecole-niveau/datapackage.json").read_text())
    assert restricted["preau"]["access"] == "restricted"
    assert "/restricted/" in restricted["id"]


def test_dcat_ap_metadata(built):
    _, _, out, _ = built
    g = Graph()
    g.parse(out / TABLE / "dcat.jsonld", format="json-ld")
    ds = URIRef("http://localhost:8000/catalog/datasets/" + TABLE)
    assert (ds, None, DCAT.Dataset) in g
    assert Literal("Effectifs par commune de résidence et niveau", lang="fr") in set(g.objects(ds, DCT.title))
    assert Literal("Pupils by commune of residence and level", lang="en") in set(g.objects(ds, DCT.title))
    pub = g.value(ds, DCT.publisher)
    assert Literal("Département de démonstration (65)", lang="fr") in set(g.objects(pub, FOAF.name))
    starts = sorted(str(g.value(t, DCAT.startDate)) for t in g.objects(ds, DCT.temporal))
    assert starts == ["2024-09-01", "2025-09-01"]
    spatial = set(g.objects(ds, DCT.spatial))
    communes = {str(s) for s in spatial if "id.insee.fr" in str(s)}
    assert len(communes) == 8 and "http://id.insee.fr/geo/commune/65001" in communes
    bboxes = [g.value(s, DCAT.bbox) for s in spatial if g.value(s, DCAT.bbox) is not None]
    assert len(bboxes) == 1 and str(bboxes[0]).startswith("POLYGON((-0.330000 42.670000")
    schema_uri = g.value(ds, DCT.conformsTo)
    assert str(schema_uri).endswith(f"/schema-effectifs-commune-niveau-{SCHEMA_VERSION}.json")
    dists = list(g.objects(ds, DCAT.distribution))
    assert len(dists) == len(json.loads((out / TABLE / "datapackage.json").read_text())["resources"])
    for d in dists:
        name = str(d).rsplit("/", 1)[1]
        f = out / TABLE / name
        checksum = g.value(d, SPDX.checksum)
        assert str(g.value(checksum, SPDX.checksumValue)) == sha256_file(f)
        assert str(g.value(checksum, SPDX.algorithm)) == "http://spdx.org/rdf/terms#checksumAlgorithm_sha256"
        assert int(g.value(d, DCAT.byteSize)) == f.stat().st_size
        assert str(g.value(d, DCT.license)) == "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"
        if name.endswith(".csv"):
            assert str(g.value(d, DCAT.mediaType)).endswith("/text/csv")
            assert str(g.value(d, DCT["format"])).endswith("/file-type/CSV")
            assert g.value(d, DCT.conformsTo) == schema_uri


def test_second_build_rewrites_nothing_and_a_change_rewrites_only_what_changed(built):
    ws, data, out, first = built
    assert first.written > 0
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = build_packages(ws, data, out)
    assert again.written == 0 and again.removed == 0 and again.unchanged == first.written
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    csv = data / "demo-65/effectifs-commune-niveau/effectifs-commune-niveau-2025-2026.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace(",CP,", ",CE1,", 1), encoding="utf-8")
    third = build_packages(ws, data, out)
    changed = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and mtimes.get(p) != p.stat().st_mtime_ns}
    assert changed == {f"{TABLE}/effectifs-commune-niveau-2025-2026.csv", f"{TABLE}/datapackage.json", f"{TABLE}/dcat.jsonld"}
    assert third.written == 3


def test_missing_file_is_reported_and_nothing_is_written(tmp_path):
    ws, data = fixture_build.make(tmp_path / "ws")
    manifest = data / "demo-65/effectifs-commune-niveau/manifest.json"
    m = json.loads(manifest.read_text(encoding="utf-8"))
    m["resources"].append({"path": "absent.csv", "format": "csv", "school_year": None})
    manifest.write_text(json.dumps(m), encoding="utf-8")
    out = tmp_path / "packages"
    with pytest.raises(PreauError) as err:
        build_packages(ws, data, out)
    problems = err.value.report.errors
    assert [p.code for p in problems] == ["package-missing-file"]
    assert "absent.csv" in problems[0].fr and problems[0].file.endswith("manifest.json")
    assert not out.exists()


def test_unknown_dataset_personal_schema_and_failed_validation_are_refused(tmp_path):
    ws, data = fixture_build.make(tmp_path / "ws")
    base = data / "demo-65"
    m = json.loads((base / "carte-ecoles/manifest.json").read_text(encoding="utf-8"))
    m["dataset"] = "inconnu"
    (base / "carte-ecoles/manifest.json").write_text(json.dumps(m), encoding="utf-8")
    m = json.loads((base / "effectifs-commune-niveau/manifest.json").read_text(encoding="utf-8"))
    m["validation"]["valid"] = False
    (base / "effectifs-commune-niveau/manifest.json").write_text(json.dumps(m), encoding="utf-8")
    m = json.loads((base / "flux-secteur-ecole-niveau/manifest.json").read_text(encoding="utf-8"))
    for r in m["resources"]:
        r["schema"] = "eleves-premier-degre"
    (base / "flux-secteur-ecole-niveau/manifest.json").write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(PreauError) as err:
        build_packages(ws, data, tmp_path / "packages")
    codes = sorted(p.code for p in err.value.report.errors)
    assert codes == ["package-invalid-data", "package-personal-schema", "package-unknown-dataset"]
    assert not (tmp_path / "packages").exists()


def test_dcat_spatial_of_a_large_territory_lists_its_departements(built):
    """A dataset covering more than MAX_COMMUNES communes (a région, the country) gets one
    dct:spatial Location per département, not 35,000 commune URIs."""
    from preau.package import dcat

    _, _, out, _ = built
    desc = json.loads((out / TABLE / "datapackage.json").read_text(encoding="utf-8"))
    codes = [f"{d}{i:03d}" for d in ("64", "65", "2A") for i in range(1, 401)] + ["97411"]
    desc["preau"]["spatial"]["insee"] = codes
    g = Graph()
    g.parse(data=json.dumps(dcat.dataset_document(desc)), format="json-ld")
    spatial = {str(s) for s in g.objects(None, DCT.spatial) if "id.insee.fr" in str(s)}
    assert spatial == {dcat.INSEE_DEPARTEMENT + d for d in ("64", "65", "2A", "974")}
    desc["preau"]["spatial"]["insee"] = codes[:dcat.MAX_COMMUNES]
    g = Graph()
    g.parse(data=json.dumps(dcat.dataset_document(desc)), format="json-ld")
    assert len({s for s in g.objects(None, DCT.spatial) if "id.insee.fr/geo/commune/" in str(s)}) == dcat.MAX_COMMUNES


def test_sha256_many_is_sha256_file_of_each(tmp_path):
    """Files hashed two at a time give each file's own digest; a missing file is left out (its
    caller hashes it alone and gets the error there)."""
    import hashlib

    from preau.package.files import sha256_file, sha256_many

    paths = []
    for i in range(5):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(bytes([i]) * (3 << 20) + b"end%d" % i)  # several read blocks each
        paths.append(p)
    missing = tmp_path / "absent.csv"
    got = sha256_many(paths + [missing, paths[0]])
    assert set(got) == set(paths)
    for p in paths:
        assert got[p] == sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert len(set(got.values())) == 5
