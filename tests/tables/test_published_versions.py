"""Earlier published versions are known to the attacker as the same cells: only while unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import polars as pl
import pytest

from preau.errors import PreauError
from preau.pipeline import _published_versions

DIMS = ["annee_scolaire", "code_insee", "niveau"]


def true_frame(cp: int) -> pl.DataFrame:
    return pl.DataFrame({"annee_scolaire": ["2025-2026"] * 3, "code_insee": ["65001", "65002", "TOTAL"],
                         "niveau": ["CP"] * 3, "effectif": [cp, 2, cp + 2]})


def publish(catalog, frame: pl.DataFrame) -> None:
    folder = catalog / "datasets" / "demo-65-effectifs-commune-niveau"
    folder.mkdir(parents=True)
    frame.with_columns(pl.when(pl.col("effectif") < 5).then(None).otherwise(pl.col("effectif")).alias("effectif"),
                       (pl.col("effectif") < 5).alias("secret")).write_csv(folder / "effectifs-commune-niveau.csv")


def built(frame):
    return SimpleNamespace(dataset="effectifs-commune-niveau", dims=DIMS, frame=frame)


def test_unchanged_earlier_version_is_returned_as_known(tmp_path):
    publish(tmp_path, true_frame(9))
    old = _published_versions(tmp_path, SimpleNamespace(id="demo-65"), built(true_frame(9)), restricted=False)
    assert old is not None and old.height == 3
    assert old.filter(pl.col("code_insee") == "65002")["secret"].to_list() == [True]


def test_changed_published_count_stops_the_build_with_a_clear_message(tmp_path):
    publish(tmp_path, true_frame(9))
    with pytest.raises(PreauError) as exc:
        _published_versions(tmp_path, SimpleNamespace(id="demo-65"), built(true_frame(10)), restricted=False)
    problem = exc.value.report.problems[0]
    assert problem.code == "published-version-changed"
    assert "2025-2026" in problem.fr and "effectifs-commune-niveau" in problem.en
    assert "10" not in problem.fr and "9 " not in problem.fr  # counts are not shown


def test_no_earlier_version(tmp_path):
    assert _published_versions(tmp_path, SimpleNamespace(id="demo-65"), built(true_frame(9)), restricted=False) is None
