"""Département subtotals: a publisher whose schools span several départements (académie, région,
France) gets département rows in its geographic dimensions, so that the attacker's LP blocks are
per département instead of one national block — end to end through ``preau.pipeline.build``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from preau.codes import insee_departement, uai_departement
from preau.disclosure.files import load_folder
from preau.disclosure.model import build_model
from preau.ingest import read_export
from preau.tables import DEPARTEMENT_PATTERN, departement_levels, sector_departement

ROOT = Path(__file__).resolve().parents[2]
DEPTS = ["09", "65"]


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """Two départements, one school year, one publisher; built by the real pipeline."""
    from preau.pipeline import build
    from preau.synth import generate

    base = tmp_path_factory.mktemp("deux-departements")
    synth = base / "synth"
    generate(synth, DEPTS, seed=11, years=1, scale=0.5)
    ws = base / "ws"
    (ws / "publishers").mkdir(parents=True)
    for sub in ("datasets", "schemas"):
        (ws / sub).symlink_to(ROOT / sub)
    exports = sorted(synth.glob("eleves-*.csv"))
    lines = ['id = "region"', 'name = { fr = "Deux départements (fictif)", en = "Two départements (synthetic)" }',
             'kind = "region"', 'licence = "etalab-2.0"', f"territory = {json.dumps(DEPTS)}", ""]
    for p in exports:
        lines += ["[[sources]]", f'path = "{p}"', 'profile = "onde"',
                  f'school_year = "{p.stem.removeprefix("eleves-")}"', ""]
    lines += ["[references]", f'schools = "{synth / "ecoles.csv"}"',
              "addresses = [" + ", ".join(f'"{p}"' for p in sorted(synth.glob("adresses-*.csv"))) + "]",
              f'communes = "{synth / "communes.geojson"}"', f'sector_rules = "{synth / "carte-scolaire.csv"}"']
    (ws / "publishers" / "region.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = build(ws, base / "_build")
    return result.out_dir / "region"


def _table(folder: Path, name: str) -> pl.DataFrame:
    return pl.read_csv(folder / name / f"{name}.csv", infer_schema=False).with_columns(
        pl.col("effectif").cast(pl.Int64), pl.col("secret") == "true")


def test_one_departement_has_no_subtotals():
    pupils = pl.DataFrame({"uai": ["0650001A", "0650002B"], "code_insee_residence": ["65440", "65100"]})
    assert departement_levels(pupils) == {}


def test_levels_map_every_value_to_its_departement():
    pupils = pl.DataFrame({"uai": ["0650001A", "0090002B"], "code_insee_residence": ["65440", "09122"],
                           "code_secteur_residence": ["65440-01", "00000-00"]})
    geo = departement_levels(pupils)
    assert geo["uai"] == {"0650001A": "65", "0090002B": "09"}
    assert geo["code_insee"] == {"65440": "65", "09122": "09"}
    assert geo["code_secteur"] == {"65440-01": "65"}  # no département for the unlocated code


def test_subtotal_rows_are_the_sums_of_their_departement(region):
    communes = _table(region, "effectifs-commune-niveau")
    dept_rows = communes.filter(pl.col("code_insee").str.contains(f"^(?:{DEPARTEMENT_PATTERN})$"))
    assert set(dept_rows["code_insee"].unique().to_list()) >= set(DEPTS)
    assert set(dept_rows["nom_commune"].unique().to_list()) >= {f"Département {d}" for d in DEPTS}
    assert not dept_rows["secret"].any()  # large counts: published
    # the subtotals are the true counts of the pupils living in each département (from the export)
    exports = sorted((region.parents[2] / "synth").glob("eleves-*.csv"))
    pupils = read_export(exports[0]).frame
    truth = (pupils.with_columns(pl.col("code_insee_residence").map_elements(insee_departement, return_dtype=pl.String)
                                 .alias("code_insee")).group_by("code_insee", "niveau").len())
    got = truth.join(dept_rows, on=["code_insee", "niveau"])
    assert got.height == truth.height and (got["len"] == got["effectif"]).all()
    schooled = pupils.with_columns(pl.col("uai").map_elements(uai_departement, return_dtype=pl.String).alias("d")
                                   ).group_by("d").len()
    total = communes.filter((pl.col("code_insee") == "TOTAL") & (pl.col("niveau") == "TOTAL"))["effectif"].item()
    assert dept_rows.filter(pl.col("niveau") == "TOTAL")["effectif"].sum() == total
    # school side and residence side: département rows in the flows table's both columns
    flows = _table(region, "flux-secteur-ecole")
    by_school_dept = flows.filter((pl.col("code_secteur") == "TOTAL") & pl.col("uai").is_in(DEPTS))
    assert dict(zip(by_school_dept["uai"], by_school_dept["effectif"])) == dict(zip(schooled["d"], schooled["len"]))
    # no « sector → département of schools » cells: département rows only beside a TOTAL
    assert flows.filter(pl.col("uai").is_in(DEPTS) & (pl.col("code_secteur") != "TOTAL")).height == 0
    assert flows.filter(pl.col("code_secteur").is_in(DEPTS) & (pl.col("uai") != "TOTAL")).height == 0
    assert set(flows.filter(pl.col("uai").is_in(DEPTS))["uai"].unique().to_list()) == set(DEPTS)
    assert set(flows.filter(pl.col("code_secteur").is_in(DEPTS))["code_secteur"].unique().to_list()) >= set(DEPTS)
    for name in ("effectifs-secteur-niveau", "ecart-age-ecole", "restauration-periscolaire-ecole"):
        t = _table(region, name)
        col = "code_secteur" if "code_secteur" in t.columns else "uai"
        assert set(t.filter(pl.col(col).is_in(DEPTS))[col].unique().to_list()) == set(DEPTS), name
    # every table of the build passed its (1.1.0) schema: the build validates them all
    for name in ("effectifs-commune-niveau", "flux-secteur-ecole"):
        assert json.loads((region / name / "validation.json").read_text())["valid"]


def _departement_of(value: str, dim: str) -> str | None:
    if value == "TOTAL" or value in DEPTS:
        return None
    if dim == "uai":
        return uai_departement(value)
    if dim == "code_insee":
        return insee_departement(value)
    if dim == "code_secteur":
        return sector_departement(value)
    return None


def test_attacker_blocks_stay_inside_one_departement(region):
    """The audit group of the build (what the attacker sees): no connected block of hidden cells —
    through the published equations — holds cells of two départements."""
    [(_, tables, published)] = load_folder(region / "_audit" / "public")
    model = build_model(tables, published, with_values=False)
    hidden = np.zeros(model.n, bool)
    for ti in model.tables:
        hidden[ti.var[ti.hidden]] = True
    assert hidden.sum() > 50
    AU = model.A[:, np.nonzero(hidden)[0]].tocsr()
    AU = AU[np.diff(AU.indptr) > 0]
    G = sp.bmat([[None, AU.T], [AU, None]], format="csr")
    _, lab = connected_components(G, directed=False)
    lab = lab[:int(hidden.sum())]
    depts_of_block: dict[int, set] = {}
    for i, v in enumerate(np.nonzero(hidden)[0]):
        t, row = model.where(int(v))
        found = {d for dim in ("uai", "code_insee", "code_secteur") if dim in t.frame.columns
                 for d in [_departement_of(t.frame[dim][row], dim)] if d}
        depts_of_block.setdefault(int(lab[i]), set()).update(found)
    spanning = [b for b, d in depts_of_block.items() if len(d) > 1]
    # cross-border flows (a sector of one département to a school of the other) may join two blocks;
    # every other block is one département's
    assert len(depts_of_block) > 10
    assert len(spanning) <= max(2, len(depts_of_block) // 20)


def test_build_keeps_one_prepared_ban_reference_per_departement(region):
    """preau build keeps the prepared BAN references in <out>/cache/ban (one entry per BAN file,
    here one per département), beside the data and never inside it."""
    out = region.parents[1]
    entries = sorted((out / "cache" / "ban").glob("ban-*"))
    assert len(entries) == len(DEPTS)
    assert all((e / "addresses.parquet").is_file() and (e / "meta.json").is_file() for e in entries)
    assert not any(p.name == "cache" for p in (out / "data").rglob("*"))


def test_departement_levels_lists_values_in_sorted_order():
    """The hierarchies go into the audit folder's disclosure-tables.json: their values come sorted,
    whatever order the pupils (or a hash grouping) give, so that file's bytes are reproducible."""
    import random

    import polars as pl

    from preau.tables import departement_levels

    rows = [(f"0{d}{i:04d}A", f"{d}{i:03d}", f"{d}{i:03d}-01") for d in ("65", "31", "09") for i in range(40)]
    random.Random(3).shuffle(rows)
    pupils = pl.DataFrame(rows, schema=["uai", "code_insee_residence", "code_secteur_residence"], orient="row"
                          ).with_columns(pl.col("uai").cast(pl.Categorical))
    levels = departement_levels(pupils)
    for dim in ("uai", "code_insee", "code_secteur"):
        assert list(levels[dim]) == sorted(levels[dim]), dim
        assert len(levels[dim]) == 120
