"""Shared fixtures: one synthetic territory per test session (the only source of pupil data)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """The default synthetic territory (département 65, 3 school years, seed 2026)."""
    from preau.synth import generate

    out = tmp_path_factory.mktemp("synth") / "synth"
    generate(out, ["65"], seed=2026, years=3)
    return out
