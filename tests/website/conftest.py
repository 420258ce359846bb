"""Fixtures of the site tests: a synthetic catalog made by the real pipeline stages, the built site."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

XSS = '<script>alert("xss")</script>'


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """Workspace + local catalog (12 communes of the 65, 3 school years, layers, one restricted table)."""
    from preau.website.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("site-sample")
    write_sample_catalog(root, title_suffix=XSS)
    return root


@pytest.fixture(scope="session")
def catalog_dir(sample_root) -> Path:
    return sample_root / "_build" / "catalog"


@pytest.fixture(scope="session")
def built_site(sample_root, catalog_dir, tmp_path_factory) -> Path:
    from preau.website import build_site

    out = tmp_path_factory.mktemp("site") / "site"
    build_site(catalog_dir, out, workspace=sample_root)
    return out


@pytest.fixture()
def fresh_copy(sample_root, tmp_path) -> Path:
    """A private copy of the workspace + catalog, for tests that modify it."""
    dest = tmp_path / "ws"
    shutil.copytree(sample_root, dest, ignore=shutil.ignore_patterns("site"))
    return dest
