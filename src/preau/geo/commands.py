"""Library side of the ``preau geo …`` commands (the CLI only parses arguments and calls these)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from preau.errors import PreauError, Report, rel
from preau.geo.geocode import DEFAULT_COLUMNS, geocode, quality
from preau.geo.reference import load_reference
from preau.geo.sectors import read_text_csv

BUILD = "_build"


def _read_input(path: Path, report: Report) -> pl.DataFrame:
    if not path.is_file():
        report.error("geo-input-missing", f"fichier d'adresses introuvable : {rel(path)}",
                     f"address file not found: {rel(path)}", file=rel(path))
        raise PreauError(report)
    try:
        return read_text_csv(path)
    except Exception as exc:
        report.error("geo-input-unreadable", f"fichier d'adresses illisible ({type(exc).__name__})",
                     f"unreadable address file ({type(exc).__name__})", file=rel(path))
        raise PreauError(report) from None


def _safe_output(output: Path, report: Report) -> Path:
    """Geocoding results hold addresses: only under a ``_build`` folder."""
    out = output.resolve()
    if BUILD not in out.parts:
        report.error("geo-output-outside-build", "les résultats contiennent des adresses : le fichier de sortie doit "
                     "être dans un dossier _build/", "results hold addresses: the output file must be inside a "
                     "_build/ folder", file=rel(output))
        raise PreauError(report)
    return out


def geocode_file(input_path: str | Path, reference: list[str | Path] | str | Path, output: str | Path | None = None,
                 columns: dict[str, str] | None = None) -> dict:
    """Geocode a CSV of addresses against BAN files; return the quality report (counts only).

    Results (input columns + result columns) are written only when ``output`` is given, and only under
    a ``_build/`` folder (they hold addresses). The report never contains an address.
    """
    report = Report(subject=rel(input_path))
    input_path = Path(input_path)
    out = _safe_output(Path(output), report) if output else None
    df = _read_input(input_path, report)
    cols = {**DEFAULT_COLUMNS, **(columns or {})}
    if cols["adresse"] not in df.columns:
        alt = next((c for c in ("adresse", "address", "adresse_1", "ligne_adresse") if c in df.columns), None)
        if alt:
            cols["adresse"] = alt
    if cols["commune"] not in df.columns:
        alt = next((c for c in ("commune_residence", "nom_commune", "ville", "city") if c in df.columns), None)
        if alt:
            cols["commune"] = alt
    if cols["code_insee"] not in df.columns:
        alt = next((c for c in ("code_insee_residence", "citycode", "code_commune") if c in df.columns), None)
        if alt:
            cols["code_insee"] = alt
    if cols["code_postal"] not in df.columns and "postcode" in df.columns:
        cols["code_postal"] = "postcode"
    missing = [cols["adresse"]] if cols["adresse"] not in df.columns else []
    if not any(cols[k] in df.columns for k in ("code_postal", "commune", "code_insee")):
        missing.append(f"{cols['code_insee']} / {cols['code_postal']} / {cols['commune']}")
    for name in missing:  # before reading a large reference
        report.error("geo-input-columns", f"colonne absente des adresses à géocoder : {name}",
                     f"column missing from the addresses to geocode: {name}", file=rel(input_path), line=1, field=name)
    report.raise_if_errors()
    ref = load_reference(reference)
    try:
        res = geocode(df, ref, cols)
    except PreauError as exc:
        for p in exc.report.problems:
            p.file = p.file or rel(input_path)
        raise
    q = quality(res)
    q["reference"] = {"files": ref.sources, "addresses": ref.size}
    q["problems"] = [p.to_dict() for p in ref.report.problems]
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        pl.concat([df, res], how="horizontal").write_csv(tmp, separator=";")
        tmp.replace(out)
        q["output"] = rel(out)
    return q


def sectors_from_rules(rules: str | Path, addresses: list[str | Path] | str | Path, communes: str | Path,
                       out_dir: str | Path, gap_tolerance: float = 0.001) -> dict:
    """Build sector polygons from carte-scolaire rules and write them to ``out_dir``: layer files
    (GeoJSON WGS84, GPKG / FlatGeobuf in Lambert-93 and WGS84), ``apercu.svg`` and
    ``rapport-secteurs.json`` (match rates, topology). Returns that report."""
    from preau.geo.layers import sectors_layer, write_layer
    from preau.geo.sectors import build_sectors, check_topology, read_communes

    report = Report(subject=rel(rules))
    ref = load_reference(addresses)
    report.extend(ref.report.problems)
    communes_gdf = read_communes(communes, report)
    built = build_sectors(rules, ref, communes_gdf, report=report)
    topo = check_topology(built.sectors, communes_gdf, gap_tolerance=gap_tolerance, report=report)
    write_layer(sectors_layer(built.sectors), out_dir, "secteurs-scolaires", None, report=report)
    result = {"sectors": len(built.sectors), "match": built.match, "topology": topo,
              "problems": [p.to_dict() for p in report.problems]}
    Path(out_dir, "rapport-secteurs.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    result["out"] = rel(out_dir)
    return result
