"""``preau build`` with a sector *layer* (``references.sectors``, as the national bench builds) instead
of carte-scolaire rules: the layer is read beside the ingest, and the build gives the same tables
with or without the cache; a bad layer is a clear error raised after the exports are read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

from preau.errors import PreauError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synth_workspace import write_synth_workspace  # noqa: E402


def _workspace(base: Path, synth: Path, sectors: Path, export: Path | None = None) -> Path:
    return write_synth_workspace(base / "ws", synth, "couche", ["65"], sectors=sectors, export=export)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from preau.synth import generate

    out = tmp_path_factory.mktemp("couche") / "synth"
    generate(out, ["65"], seed=5, years=1, scale=0.3)
    return out


def _tables(folder: Path) -> dict[str, pl.DataFrame]:
    return {d.name: pl.read_csv(d / f"{d.name}.csv", infer_schema=False)
            for d in sorted(folder.iterdir()) if (d / f"{d.name}.csv").is_file()}


def test_build_with_a_sector_layer_same_tables_with_and_without_cache(synth, tmp_path):
    from preau.pipeline import build

    ws = _workspace(tmp_path, synth, synth / "secteurs.geojson")
    cached = build(ws, tmp_path / "a")
    assert list((tmp_path / "a" / "cache" / "layers").glob("layer-*"))  # the layer went through the cache
    plain = build(ws, tmp_path / "b", cache=False)
    a, b = _tables(cached.out_dir / "couche"), _tables(plain.out_dir / "couche")
    assert "effectifs-secteur-niveau" in a and a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
    # the residence sectors are the layer's codes (plus the code of pupils not placed)
    layer_codes = {f["properties"]["code_secteur"]
                   for f in json.loads((synth / "secteurs.geojson").read_text(encoding="utf-8"))["features"]}
    used = set(a["effectifs-secteur-niveau"]["code_secteur"].unique().to_list()) - {"TOTAL"}
    assert used and len(used & layer_codes) >= 0.9 * len(used)
    assert used - layer_codes <= {"00000-00"}
    # and a warm build (layer read back from the cache) gives them again
    again = build(ws, tmp_path / "a")
    c = _tables(again.out_dir / "couche")
    for name in a:
        assert a[name].equals(c[name]), name


def test_bad_sector_layer_is_a_clear_error(synth, tmp_path):
    from preau.pipeline import build

    bad = tmp_path / "secteurs.geojson"
    bad.write_text("ceci n'est pas du GeoJSON", encoding="utf-8")
    ws = _workspace(tmp_path, synth, bad)
    with pytest.raises(PreauError) as err:
        build(ws, tmp_path / "out")
    codes = [p.code for p in err.value.report.errors]
    assert codes == ["geo-layer-unreadable"]
    assert err.value.report.errors[0].file.endswith("secteurs.geojson")
    assert not (tmp_path / "out" / "data").exists()  # nothing half-published


def test_an_export_error_comes_before_the_layer_read_beside_it(synth, tmp_path):
    from preau.pipeline import build

    bad = tmp_path / "secteurs.geojson"
    bad.write_text("{}", encoding="utf-8")
    export = sorted(synth.glob("eleves-*.csv"))[-1]
    broken = tmp_path / export.name
    lines = export.read_bytes().split(b"\r\n" if b"\r\n" in export.read_bytes()[:4096] else b"\n")
    broken.write_bytes(b"\n".join([b"colonne;inconnue"] + lines[1:3]) + b"\n")
    ws = _workspace(tmp_path, synth, bad, export=broken)
    with pytest.raises(PreauError) as err:
        build(ws, tmp_path / "out")
    codes = {p.code for p in err.value.report.errors}
    assert "missing-column" in codes and not any(c.startswith("geo-") for c in codes)


def test_layer_warnings_reach_the_build_and_the_cli(synth, tmp_path):
    """A warning of the layer read beside the ingest (a feature without geometry, skipped) is the
    build's: in ``BuildResult.report``, printed by ``preau build`` and in its ``--json``."""
    import subprocess
    import sys

    from preau.pipeline import build

    layer = json.loads((synth / "secteurs.geojson").read_text(encoding="utf-8"))
    layer["features"].append({"type": "Feature", "properties": {"code_secteur": "65999-99"}, "geometry": None})
    odd = tmp_path / "secteurs.geojson"
    odd.write_text(json.dumps(layer), encoding="utf-8")
    ws = _workspace(tmp_path, synth, odd)
    result = build(ws, tmp_path / "a")
    warned = [p for p in result.report.warnings if p.code == "geo-layer-empty-geometry"]
    assert len(warned) == 1 and warned[0].file.endswith("secteurs.geojson")
    assert warned[0].message("fr").startswith("1 objet(s) sans géométrie")
    proc = subprocess.run([sys.executable, "-m", "preau", "build", str(ws), "--out", str(tmp_path / "b"), "--json"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    codes = [w["code"] for w in json.loads(proc.stdout)["warnings"]]
    assert codes.count("geo-layer-empty-geometry") == 1
    proc = subprocess.run([sys.executable, "-m", "preau", "build", str(ws), "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "Avertissements" in proc.stderr and "sans géométrie" in proc.stderr
