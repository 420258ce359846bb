"""Fixtures for tests against the project's real CKAN 2.12 (started by ``make ckan-up``).

``ckan_env`` (session scope) is the instance ``main`` (catalog/ckan-up.sh main 5000). It returns a
dict read from ``catalog/.local/main/ckan.env``::

    {"url": "http://127.0.0.1:5000",
     "token": <sysadmin API token>,
     "user": "preau_user",   "user_token": <token of a plain user, member of nothing>,
     "user2": "preau_user2", "user2_token": <token of a second plain user>,
     "admin": "preau_admin", "ini": <path of ckan.ini>, "name": "main"}

Organization membership is created by the tests that need it (``organization_member_create`` with
the sysadmin token). The database persists between runs: use unique names (``unique_name``).
``ckan_peer_env`` is a second instance, ``peer`` on port 5001 (separate databases and storage),
for federation tests. If an instance's ckan.env is missing the tests FAIL (never skip): run
``make ckan-up``. Never print the tokens.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "catalog" / ".local"


def read_ckan_env(name: str = "main") -> dict:
    """The connection settings of CKAN instance ``name`` written by catalog/ckan-up.sh."""
    path = LOCAL / name / "ckan.env"
    if not path.is_file():
        pytest.fail(f"{path} is missing: the real CKAN is not set up. Run `make ckan-up` "
                    f"(or `catalog/ckan-up.sh {name} PORT`) first.", pytrace=False)
    raw = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            raw[key.strip()] = value.strip()
    return {
        "name": raw.get("PREAU_CKAN_NAME", name),
        "url": raw["PREAU_CKAN_URL"],
        "token": raw["PREAU_CKAN_TOKEN"],
        "admin": raw.get("PREAU_CKAN_ADMIN", "preau_admin"),
        "user": raw.get("PREAU_CKAN_USER", "preau_user"),
        "user_token": raw["PREAU_CKAN_USER_TOKEN"],
        "user2": raw.get("PREAU_CKAN_USER2", "preau_user2"),
        "user2_token": raw.get("PREAU_CKAN_USER2_TOKEN", ""),
        "ini": raw.get("PREAU_CKAN_INI", ""),
    }


def _check_alive(env: dict) -> dict:
    import requests

    try:
        r = requests.get(env["url"] + "/api/3/action/status_show", timeout=10)
        r.raise_for_status()
    except Exception as exc:  # noqa: BLE001 - any failure means the server is not usable
        pytest.fail(f"CKAN at {env['url']} does not answer ({type(exc).__name__}): run "
                    f"`make ckan-up`.", pytrace=False)
    return env


@pytest.fixture(scope="session")
def ckan_env() -> dict:
    """The project's real CKAN (instance ``main``): url, token (sysadmin), user_token, ..."""
    return _check_alive(read_ckan_env("main"))


@pytest.fixture(scope="session")
def ckan_peer_env() -> dict:
    """A second real CKAN (instance ``peer``, port 5001) with its own databases."""
    return _check_alive(read_ckan_env("peer"))


@pytest.fixture
def unique_name():
    """Factory of CKAN-valid unique names: unique_name("org") -> "t-org-1a2b3c4d"."""

    def make(prefix: str = "x") -> str:
        return f"t-{prefix}-{uuid.uuid4().hex[:10]}"

    return make
