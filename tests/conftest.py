"""Shared fixtures: one synthetic territory per test session (the only source of pupil data)."""

from __future__ import annotations

from pathlib import Path

import os

import pytest


@pytest.fixture(autouse=True)
def _keep_language():
    """`preau --lang en` run in-process sets PREAU_LANG: restore it so no test leaks into the next."""
    before = os.environ.get("PREAU_LANG")
    yield
    if before is None:
        os.environ.pop("PREAU_LANG", None)
    else:
        os.environ["PREAU_LANG"] = before


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """The default synthetic territory (département 65, 3 school years, seed 2026)."""
    from preau.synth import generate

    out = tmp_path_factory.mktemp("synth") / "synth"
    generate(out, ["65"], seed=2026, years=3)
    return out
