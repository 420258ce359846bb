"""The geo stage in one call, one département at a time (``preau.geo.locate_pupils``).

A two-département synthetic territory (``preau.synth``, 32 + 65, sparse addresses, few pupils):
the partitioned run must give every pupil the sector a single whole-territory run gives, route
pupils without INSEE code by their postcode, and leave unlocated those no BAN file covers.
"""

from __future__ import annotations

import json
import shutil

import geopandas as gpd
import polars as pl
import pytest
import shapely

from preau.geo import assign_sectors, build_sectors, load_reference, locate_pupils, read_sectors
from preau.geo.locate import _layer_part, _layer_parts, _merge_sectors, departement_expr, departement_of_file

COLS = {"adresse": "Adresse", "code_postal": "Code postal", "commune": "Commune", "code_insee": "Code INSEE commune"}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    from preau.synth import generate

    out = tmp_path_factory.mktemp("locate") / "synth"
    generate(out, ["32", "65"], seed=7, years=1, pupils=4000, address_density=0.3)
    return out


@pytest.fixture(scope="module")
def pupils(two):
    year = json.loads((two / "synth.json").read_text(encoding="utf-8"))["school_years"][-1]
    el = pl.read_csv(two / f"eleves-{year}.csv", separator=";", encoding="cp1252", infer_schema=False)
    truth = pl.read_parquet(two / "verite" / f"eleves-{year}.parquet").select(
        "identifiant_eleve", pl.col("code_secteur_residence").alias("truth"))
    return el.join(truth, left_on="INE", right_on="identifiant_eleve", how="left", maintain_order="left")


@pytest.fixture(scope="module")
def whole(two, pupils):
    """The unpartitioned reference run: all BAN files at once, sectors built at once."""
    ref = load_reference(sorted(two.glob("adresses-*.csv")))
    built = build_sectors(two / "carte-scolaire.csv", ref, two / "communes.geojson")
    return built.sectors, assign_sectors(pupils, ref, built.sectors, COLS)


@pytest.fixture(scope="module")
def located(two, pupils):
    return locate_pupils(pupils, sorted(two.glob("adresses-*.csv")), sector_rules=two / "carte-scolaire.csv",
                         communes=two / "communes.geojson", columns=COLS)


def test_partitioned_run_equals_the_whole_territory_run(pupils, whole, located):
    sectors, assigned = whole
    codes, quality, built = located
    assert codes.len() == pupils.height
    assert codes.fill_null("-").to_list() == assigned["code_secteur_residence"].fill_null("-").to_list()
    assert set(quality["departements"]) == {"32", "65"}
    assert sum(d["pupils"] for d in quality["departements"].values()) == pupils.height
    assert quality["not_routed"] == 0 and quality["total"] == pupils.height
    assert quality["counts"]["housenumber"] >= 0.9 * pupils.height
    # The same sectors, polygon for polygon (built département by département, then merged).
    a = sectors.set_index("code_secteur").sort_index()
    b = built.set_index("code_secteur").sort_index()
    assert list(a.index) == list(b.index)
    assert (a["uai"] == b["uai"]).all() and (a["communes"] == b["communes"]).all()
    diff = shapely.area(shapely.symmetric_difference(a.geometry.values, b.geometry.values))
    assert diff.max() < 1.0, diff.max()


def test_known_sectors_are_the_true_ones(pupils, located):
    got = pupils.select("truth").with_columns(located.codes.alias("got")).filter(pl.col("got").is_not_null())
    assert got.height >= 0.98 * pupils.height
    assert (got["got"] == got["truth"]).all()


def test_given_sector_layer(two, pupils):
    codes, quality, sectors = locate_pupils(pupils, sorted(two.glob("adresses-*.csv")),
                                            sectors=two / "secteurs.geojson", columns=COLS)
    assert len(sectors) == len(read_sectors(two / "secteurs.geojson"))
    assert "sector_build" not in quality
    got = pupils.select("truth").with_columns(codes.alias("got")).filter(pl.col("got").is_not_null())
    assert got.height >= 0.98 * pupils.height and (got["got"] == got["truth"]).all()
    # A layer without a commune list: cut per département by extent only, the same answers.
    bare = read_sectors(two / "secteurs.geojson")[["code_secteur", "geometry"]]
    again, _, _ = locate_pupils(pupils, sorted(two.glob("adresses-*.csv")), sectors=bare, columns=COLS)
    assert again.fill_null("-").to_list() == codes.fill_null("-").to_list()


def test_routing_by_postcode_and_unlocated_pupils(two, pupils, located):
    n = pupils.height
    # Every pupil of 32 loses its INSEE code (its postcode routes it); a tenth of all pupils lose
    # both codes (nowhere to go); the BAN of 65 is missing (its pupils stay unlocated).
    is32 = pl.col("Code INSEE commune").str.starts_with("32")
    tenth = pl.int_range(0, pl.len()) % 10 == 3
    damaged = pupils.with_columns(
        pl.when(is32).then(pl.lit("")).otherwise(pl.col("Code INSEE commune")).alias("Code INSEE commune"),
        pl.when(tenth).then(pl.lit(None, pl.Utf8)).otherwise(pl.col("Code postal")).alias("Code postal"))
    damaged = damaged.with_columns(pl.when(tenth).then(pl.lit("x")).otherwise(pl.col("Code INSEE commune"))
                                   .alias("Code INSEE commune"))
    codes, quality, _ = locate_pupils(damaged, [two / "adresses-32.csv"], sector_rules=two / "carte-scolaire.csv",
                                      communes=two / "communes.geojson", columns=COLS)
    assert codes.len() == n
    kind = pupils.select(is32.alias("is32"), tenth.alias("tenth")).with_columns(
        codes.alias("got"), located.codes.alias("ref"))
    routed = kind.filter(pl.col("is32") & ~pl.col("tenth"))
    assert routed.height > 100
    # Routed by postcode to the 32 reference; the commune is then found by its name and postcode.
    assert (routed["got"].fill_null("-") == routed["ref"].fill_null("-")).mean() >= 0.99
    assert kind.filter(pl.col("tenth") | ~pl.col("is32"))["got"].null_count() == kind.filter(pl.col("tenth") | ~pl.col("is32")).height
    assert quality["not_routed"] == n - routed.height
    assert quality["counts"]["not_found"] >= n - routed.height
    assert set(quality["departements"]) == {"32"}


def test_file_names_without_departement_load_together(two, pupils, located, tmp_path):
    plain = []
    for i, p in enumerate(sorted(two.glob("adresses-*.csv"))):
        plain.append(tmp_path / f"ban-extrait{'ab'[i]}.csv")
        shutil.copy(p, plain[-1])
    codes, quality, _ = locate_pupils(pupils, plain, sector_rules=two / "carte-scolaire.csv",
                                      communes=two / "communes.geojson", columns=COLS)
    assert set(quality["departements"]) == {"*"}
    assert codes.fill_null("-").to_list() == located.codes.fill_null("-").to_list()


def test_departement_of_files_and_rows():
    assert departement_of_file("x/adresses-65.csv") == "65"
    assert departement_of_file("adresses-2a.csv.gz") == "2A"
    assert departement_of_file("adresses-974.csv") == "974"
    assert departement_of_file("ban-france.csv") is None
    df = pl.DataFrame({"i": ["65440", "", "2B033", "97411", None, "1053", "bad"],
                       "cp": ["65000", "20167", "", "", "97400", "", "20290"]})
    got = df.select(departement_expr(pl.col("i"), pl.col("cp"))).to_series().to_list()
    assert got == ["65", "2A", "2B", "974", "974", "01", "2B"]


def test_merged_sector_spanning_two_departements():
    left, right = shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)
    a = gpd.GeoDataFrame({"code_secteur": ["S1", "S2"], "uai": ["0650001A", "0650002B"], "communes": ["65001", "65002"],
                          "adresses": [5, 7]}, geometry=[left, shapely.box(0, 10, 10, 20)], crs="EPSG:2154")
    b = gpd.GeoDataFrame({"code_secteur": ["S1"], "uai": ["0650001A"], "communes": ["32001"], "adresses": [3]},
                         geometry=[right], crs="EPSG:2154")
    m = _merge_sectors([a, b]).set_index("code_secteur")
    assert list(m.index) == ["S1", "S2"]
    assert m.loc["S1", "communes"] == "32001,65001" and m.loc["S1", "uai"] == "0650001A"
    assert m.loc["S1", "adresses"] == 8 and m.loc["S1"].geometry.area == pytest.approx(200.0)


def test_two_worker_processes_give_the_same_result(two, pupils, located):
    codes, quality, sectors = locate_pupils(pupils, sorted(two.glob("adresses-*.csv")),
                                            sector_rules=two / "carte-scolaire.csv", communes=two / "communes.geojson",
                                            columns=COLS, workers=2)
    assert codes.fill_null("-").to_list() == located.codes.fill_null("-").to_list()
    assert quality == located.quality
    assert list(sectors["code_secteur"]) == list(located.sectors["code_secteur"])


@pytest.mark.parametrize("workers", [1, 2])
def test_categorical_columns_give_the_same_result(two, pupils, located, workers):
    # the build keeps the pupils' low-cardinality text columns Categorical (less memory); with
    # workers, each task's share crosses to its process Categorical and is made text there
    cat = pupils.with_columns(pl.col(COLS["code_postal"], COLS["commune"], COLS["code_insee"]).cast(pl.Categorical))
    codes, quality, _ = locate_pupils(cat, sorted(two.glob("adresses-*.csv")),
                                      sector_rules=two / "carte-scolaire.csv", communes=two / "communes.geojson",
                                      columns=COLS, workers=workers)
    assert codes.fill_null("-").to_list() == located.codes.fill_null("-").to_list()
    assert quality == located.quality


def test_layer_part_keeps_the_sectors_listing_a_commune_of_the_departement():
    # one pass over the layer (not one per département); overseas codes take three digits
    layer = gpd.GeoDataFrame({"code_secteur": ["a", "b", "c", "d", "e"],
                              "communes": ["65440,65100", "64001, 65002", "97411", "2A004,2B033", None]},
                             geometry=[shapely.box(i, 0, i + 1, 1) for i in range(5)], crs="EPSG:2154")
    parts = _layer_parts(layer)
    assert list(_layer_part(layer, "65", parts)["code_secteur"]) == ["a", "b"]
    assert list(_layer_part(layer, "64", parts)["code_secteur"]) == ["b"]
    assert list(_layer_part(layer, "974", parts)["code_secteur"]) == ["c"]
    assert list(_layer_part(layer, "2A", parts)["code_secteur"]) == ["d"]
    assert _layer_part(layer, "33", parts).empty
    no_list = layer.drop(columns="communes")
    assert len(_layer_part(no_list, "65", _layer_parts(no_list))) == 5


def test_cached_references_give_the_same_result(two, pupils, located, tmp_path):
    """With a cache folder, the first run keeps one prepared reference per département (worker
    processes write them) and the second reads them back: both give the uncached result."""
    cache = tmp_path / "cache"
    bans = sorted(two.glob("adresses-*.csv"))
    for workers in (2, 1):
        codes, quality, sectors = locate_pupils(pupils, bans, sector_rules=two / "carte-scolaire.csv",
                                                communes=two / "communes.geojson", columns=COLS, workers=workers,
                                                cache_dir=cache)
        assert codes.fill_null("-").to_list() == located.codes.fill_null("-").to_list()
        assert quality == located.quality
        assert list(sectors["code_secteur"]) == list(located.sectors["code_secteur"])
        assert len(list((cache / "ban").glob("ban-*"))) == len(bans)
        assert len(list((cache / "layers").glob("layer-*"))) == 1  # the communes layer (sectors built)


@pytest.mark.parametrize("categorical", [False, True])
def test_rows_by_departement_equal_the_row_wise_expression(categorical):
    # codes normalised once per distinct value (Categorical: per category), rows in order; the
    # INSEE code decides when usable, else the postcode (Corsica split, overseas on 3 digits)
    from preau.geo.locate import PUPIL_COLUMNS, _rows_by_departement

    insee = ["65440", None, "", "2a004", " 1053", "97411", "xx", None, "12345", "", "2B033", "32013"] * 3
    cps = ["65000", "20100", "20200", None, "01000", "97400", "06500", "6500", None, "abc", "20600", ""] * 3
    frame = pl.DataFrame({"code_insee_residence": insee, "code_postal": cps})
    if categorical:
        frame = frame.with_columns(pl.all().cast(pl.Categorical))
    dep = frame.select(departement_expr(pl.col("code_insee_residence"), pl.col("code_postal"))).to_series()
    expected = {}
    for i, d in enumerate(dep.to_list()):
        if d is not None:
            expected.setdefault(d, []).append(i)
    got = {k: v.to_list() for k, v in _rows_by_departement(frame, PUPIL_COLUMNS).items()}
    assert got == expected
    assert set(got) == {"65", "2A", "2B", "01", "974", "06", "12", "32"}


def test_workers_prepare_references_while_the_layer_is_read(two, pupils, tmp_path):
    """Two workers, a given sector layer and a cache: the references are prepared while the layer
    is read, every département is handled once, the answers are those of one process uncached."""
    from concurrent.futures import ThreadPoolExecutor

    from preau.geo.locate import _groups, _Preparing
    from preau.geo.reference import reference_cached

    bans = sorted(two.glob("adresses-*.csv"))
    serial, q1, _ = locate_pupils(pupils, bans, sectors=two / "secteurs.geojson", columns=COLS)
    cache = tmp_path / "cache"
    codes, q2, _ = locate_pupils(pupils, bans, sectors=two / "secteurs.geojson", columns=COLS, workers=2,
                                 cache_dir=cache)
    assert codes.fill_null("-").to_list() == serial.fill_null("-").to_list() and q1 == q2
    assert all(reference_cached([b], cache / "ban") for b in bans)
    # the order of the tasks: each group once, whatever was prepared when the layer came
    groups = _groups(bans)
    fresh = tmp_path / "fresh"
    with ThreadPoolExecutor(2) as pool, ThreadPoolExecutor(1) as other:
        prep = _Preparing(pool, 2, groups, fresh)
        reading = other.submit(lambda: [f.result() for f in list(prep.busy)])  # done once both are prepared
        order = prep.until(reading)
    assert sorted(order) == sorted(groups) and len(order) == len(groups)
    assert all(reference_cached(groups[k], fresh / "ban") for k in order)
