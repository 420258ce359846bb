"""``preau publish``: package the build output, then publish it to the local file catalog (default)
or to CKAN (when ``PREAU_CKAN_URL`` and ``PREAU_CKAN_TOKEN`` are set, or with ``--ckan``).

One entry point for the CLI and the pipeline: :func:`publish`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from preau.catalog.local import write_local_catalog
from preau.catalog.report import Change, PublishReport
from preau.errors import PreauError, Problem
from preau.package import build_packages
from preau.workspace import Workspace, load_workspace

ENV_URL = "PREAU_CKAN_URL"
ENV_TOKEN = "PREAU_CKAN_TOKEN"


def ckan_settings(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    env = os.environ if env is None else env
    return (env.get(ENV_URL) or "").strip() or None, (env.get(ENV_TOKEN) or "").strip() or None


def publish(workspace: Workspace | str | Path = ".", *, target: str | None = None, dry_run: bool = False,
            data_dir: str | Path | None = None, packages_dir: str | Path | None = None,
            catalog_dir: str | Path | None = None, base_url: str | None = None, lang: str | None = None,
            env: Mapping[str, str] | None = None, after_write: Callable[[Change], None] | None = None,
            **ckan_options: Any) -> PublishReport:
    """Package ``<workspace>/_build/data`` and publish it.

    ``target``: ``"local"`` (``<workspace>/_build/catalog``), ``"ckan"``, or ``None`` = CKAN when
    ``PREAU_CKAN_URL`` and ``PREAU_CKAN_TOKEN`` are set, else local. ``dry_run`` computes the diff
    and writes nothing (packages are then built in a temporary folder).
    """
    ws = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)[0]
    root = Path(ws.root)
    url, token = ckan_settings(env)
    if target is None:
        target = "ckan" if url and token else "local"
    if target not in ("local", "ckan"):
        raise PreauError(Problem("publish-target", f"cible inconnue « {target} » (local ou ckan)",
                                 f"unknown target '{target}' (local or ckan)"))
    if target == "ckan" and not url:
        raise PreauError(Problem("ckan-config", f"{ENV_URL} n'est pas défini : adresse du CKAN attendue "
                                 "(par exemple http://127.0.0.1:5000)",
                                 f"{ENV_URL} is not set: the CKAN address is expected (e.g. http://127.0.0.1:5000)",
                                 field=ENV_URL))
    if target == "ckan" and not url.startswith(("http://", "https://")):
        raise PreauError(Problem("ckan-config", f"{ENV_URL} doit commencer par http:// ou https://",
                                 f"{ENV_URL} must start with http:// or https://", field=ENV_URL))
    data_dir = Path(data_dir) if data_dir else root / "_build" / "data"
    with tempfile.TemporaryDirectory(prefix="preau-packages-") as tmp:
        out = Path(tmp) if dry_run else (Path(packages_dir) if packages_dir else root / "_build" / "packages")
        packages = build_packages(ws, data_dir, out, lang=lang, base_url=base_url).packages
        if target == "local":
            return write_local_catalog(packages, Path(catalog_dir) if catalog_dir else root / "_build" / "catalog",
                                       base_url=base_url, dry_run=dry_run)
        from preau.catalog.ckan import publish_ckan

        env_map = os.environ if env is None else env
        if "timeout" not in ckan_options and env_map.get("PREAU_CKAN_TIMEOUT"):
            ckan_options["timeout"] = float(env_map["PREAU_CKAN_TIMEOUT"])
        if "retries" not in ckan_options and env_map.get("PREAU_CKAN_RETRIES"):
            ckan_options["retries"] = int(env_map["PREAU_CKAN_RETRIES"])
        return publish_ckan(packages, url, token, dry_run=dry_run, after_write=after_write, **ckan_options)
