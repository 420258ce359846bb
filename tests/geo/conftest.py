from __future__ import annotations

from pathlib import Path

import pytest

from geo_fixtures import write_rules, write_territory


@pytest.fixture(scope="session")
def mini(tmp_path_factory) -> dict[str, Path]:
    """A small generated BAN-format territory: two communes, ten streets, rules, communes layer."""
    folder = tmp_path_factory.mktemp("mini")
    paths = write_territory(folder)
    paths["rules"] = write_rules(folder / "carte-scolaire.csv")
    paths["rules_bad"] = write_rules(folder / "carte-scolaire-voie-inconnue.csv", extra_unknown_street=True)
    return paths


@pytest.fixture(scope="session")
def mini_ref(mini):
    from preau.geo import load_reference

    return load_reference(mini["ban"])
