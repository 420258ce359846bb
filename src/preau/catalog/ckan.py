"""Idempotent publishing of built packages to a CKAN (2.10+) over its action API.

Model: one organization per publisher, one dataset per package (``<publisher>-<dataset>``, private
when ``access = "restricted"``), one resource per file with its sha256 in ``hash``; school years
are resources of the same dataset (one per year and format), so past years stay downloadable. The
all-years CSV table is loaded into the DataStore with column types from the Table Schema and the
schema's primary key.

Idempotence: every object is looked up by its stable key first (organization / dataset name,
resource ``preau_key`` = file name); a file is uploaded only when its sha256 differs from the
resource ``hash``; metadata is written only when a field we own differs from what CKAN holds; the
DataStore is reloaded only when ``datastore_hash`` differs. A retried create first looks the object
up again, so an attempt that succeeded on the server but failed on the wire leaves no duplicate, and
duplicates left by older clients are removed. HTTP: retries with exponential backoff on timeouts,
connection errors, 429 and 5xx, honouring ``Retry-After``. The API token is sent in the
``Authorization`` header only and is never printed, logged or put in an error message.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests

from preau.catalog.report import Change, PublishReport
from preau.errors import PreauError, Problem
from preau.package import Package, PackageFile
from preau.package import dcat

RETRY_STATUS = {429, 500, 502, 503, 504}
CKAN_LICENSES = {"cc-by-4.0": "cc-by", "odbl-1.0": "odc-odbl", "etalab-2.0": "other-at"}
DATASTORE_TYPES = {"string": "text", "integer": "int", "number": "numeric", "boolean": "bool", "date": "date",
                   "datetime": "timestamp", "time": "time", "year": "int"}
SPDX_SHA256 = dcat.SHA256
BATCH = 5000


class CkanError(Exception):
    """A CKAN call that failed for good. ``kind``: network, unavailable, protocol, auth, notfound, validation."""

    def __init__(self, kind: str, action: str, status: int | None = None, message: str = "", errors: Any = None):
        self.kind, self.action, self.status, self.message, self.errors = kind, action, status, message, errors
        super().__init__(f"{action}: {kind} {status or ''} {message}".strip())


def mask(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of the token replaced (defence in depth: we never put it there)."""
    return text.replace(secret, "***") if secret and len(secret) > 3 else text


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class CkanClient:
    """A small CKAN action API client with retries; counts retries and uploaded bytes."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0, retries: int = 6,
                 backoff: float = 0.5, max_backoff: float = 30.0, max_retry_after: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None,
                 session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self._token = token or None
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_backoff, self.max_retry_after = max_backoff, max_retry_after
        self.sleep = sleep
        self.random = random.Random(seed)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "preau-publish"
        self.retried = 0
        self.bytes_uploaded = 0
        self.calls = 0

    def __repr__(self) -> str:  # never shows the token
        return f"CkanClient({self.url!r})"

    def delay(self, attempt: int, response: requests.Response | None) -> float:
        """Seconds to wait before retry ``attempt`` (1-based): Retry-After if given, else exponential + jitter."""
        if response is not None:
            after = _retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, self.max_retry_after)
        base = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return base * (0.75 + self.random.random() / 2)

    def action(self, name: str, data: dict[str, Any] | None = None, *, upload: Path | None = None,
               recover: Callable[[], Any] | None = None) -> Any:
        """Call action ``name``. With ``upload``, a multipart POST with the file as ``upload``.

        ``recover`` (for non-idempotent calls) is asked before each retry whether the previous
        attempt took effect on the server; a non-None answer is returned as the result.
        """
        url = f"{self.url}/api/3/action/{name}"
        headers = {"Authorization": self._token} if self._token else {}
        attempt = 0
        while True:
            attempt += 1
            response = None
            try:
                self.calls += 1
                if upload is not None:
                    fields = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (data or {}).items()
                              if v is not None}
                    with open(upload, "rb") as fh:
                        response = self.session.post(url, data=fields, headers=headers, timeout=self.timeout,
                                                     files={"upload": (upload.name, fh)})
                else:
                    response = self.session.post(url, json=data or {}, headers=headers, timeout=self.timeout)
                failure = None if response.status_code not in RETRY_STATUS else f"HTTP {response.status_code}"
            except requests.Timeout:
                failure = "timeout"
            except requests.ConnectionError:
                failure = "connection"
            except requests.RequestException as exc:  # invalid URL and the like: not retried
                raise CkanError("network", name, None, mask(type(exc).__name__, self._token)) from None
            if failure is None:
                result = self._result(name, response)
                if upload is not None:
                    self.bytes_uploaded += upload.stat().st_size
                return result
            if attempt > self.retries:
                kind = "unavailable" if response is not None else "network"
                raise CkanError(kind, name, response.status_code if response is not None else None, failure)
            self.retried += 1
            self.sleep(self.delay(attempt, response))
            if recover is not None:
                found = recover()
                if found is not None:
                    return found

    def _result(self, name: str, response: requests.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "success" not in body:
            raise CkanError("protocol", name, response.status_code, "not a CKAN API answer")
        if body.get("success"):
            return body.get("result")
        error = body.get("error") or {}
        etype = str(error.get("__type", ""))
        message = mask(str(error.get("message") or etype), self._token)
        if response.status_code == 403 or etype == "Authorization Error":
            raise CkanError("auth", name, response.status_code, message)
        if response.status_code == 404 or etype == "Not Found Error":
            raise CkanError("notfound", name, response.status_code, message)
        if etype == "Validation Error":
            errors = {k: v for k, v in error.items() if k != "__type"}
            raise CkanError("validation", name, response.status_code, mask(json.dumps(errors, ensure_ascii=False),
                                                                           self._token), errors)
        raise CkanError("protocol", name, response.status_code, message)

    def get(self, name: str, data: dict[str, Any]) -> Any | None:
        """A read action; ``None`` when the object does not exist."""
        try:
            return self.action(name, data)
        except CkanError as exc:
            if exc.kind == "notfound":
                return None
            raise


# --- desired state --------------------------------------------------------------------------------

def _extras(pkg: Package) -> dict[str, str]:
    m = pkg.meta
    pub = m["publisher"]
    schema = m.get("schema") or {}
    ds_uri = pkg.descriptor.get("id") or dcat.dataset_uri(pkg.name, pkg.access)
    extras = {
        "identifier": ds_uri,
        "title_en": m["title"].get("en", ""),
        "notes_en": m["description"].get("en", ""),
        "publisher_name": pub["name"]["fr"],
        "publisher_uri": pub.get("uri") or dcat.publisher_uri(pub["id"]),
        "publisher_type": "http://purl.org/adms/publishertype/" + dcat.PUBLISHER_TYPES.get(pub.get("kind") or "",
                                                                                          "LocalAuthority"),
        "access_rights": dcat.EU + "access-right/" + ("RESTRICTED" if not pkg.public else "PUBLIC"),
        "language": json.dumps([dcat.EU + "language/FRA"]),
        "theme": json.dumps([dcat.EU + "data-theme/EDUC"]),
        "school_years": ", ".join(m.get("school_years") or []),
        "disclosure_note": m["disclosure"]["note"]["fr"],
        "disclosure_note_en": m["disclosure"]["note"]["en"],
        "licence_url": m["licence"]["url"],
    }
    if pub.get("email"):
        extras["publisher_email"] = pub["email"]
    if m.get("frequency") in dcat.FREQUENCIES:
        extras["frequency"] = dcat.EU + "frequency/" + dcat.FREQUENCIES[m["frequency"]]
    temporal = m.get("temporal") or {}
    if temporal.get("start"):
        extras["temporal_start"] = temporal["start"]
    if temporal.get("end"):
        extras["temporal_end"] = temporal["end"]
    spatial = m.get("spatial") or {}
    if spatial.get("bbox"):
        extras["spatial_bbox"] = dcat.bbox_wkt(spatial["bbox"])
    codes = [c for c in spatial.get("insee") or [] if dcat.INSEE_RE.match(str(c))]
    if codes:
        extras["spatial_text"] = "Communes (INSEE) : " + ", ".join(codes)
        extras["insee_codes"] = ",".join(codes)
    if schema.get("path"):
        extras["conforms_to"] = json.dumps([f"{ds_uri}/{schema['path']}"])
        extras["schema_version"] = f"{schema['name']} {schema['version']}"
    return extras


def desired_dataset(pkg: Package) -> dict[str, Any]:
    m = pkg.meta
    return {
        "name": pkg.name,
        "title": m["title"]["fr"],
        "notes": m["description"]["fr"] + "\n\n" + m["disclosure"]["note"]["fr"],
        "owner_org": pkg.publisher,
        "private": not pkg.public,
        "license_id": CKAN_LICENSES.get(m["licence"]["id"], "other-at"),
        "version": str(pkg.descriptor.get("version") or ""),
        "tags": sorted(pkg.descriptor.get("keywords", [])),
        "extras": _extras(pkg),
    }


def desired_resource(pkg: Package, f: PackageFile) -> dict[str, str]:
    m = pkg.meta
    label = dcat.format_info(f.format)[1]
    res = {
        "name": f.path,
        "preau_key": f.path,
        "description": f.title.get("fr", ""),
        "description_en": f.title.get("en", ""),
        "format": label,
        "mimetype": f.mediatype,
        "hash": f.sha256,
        "hash_algorithm": SPDX_SHA256,
        "license": m["licence"]["url"],
        "role": f.role,
        "school_year": f.school_year or "",
        "rows": "" if f.rows is None else str(f.rows),
    }
    schema = m.get("schema") or {}
    if f.schema and schema.get("path"):
        res["conforms_to"] = json.dumps([f"{pkg.descriptor.get('id')}/{schema['path']}"])
    return res


def _dataset_diff(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    diff = []
    for key in ("title", "notes", "owner_org", "license_id", "version"):
        current = have.get(key)
        if key == "owner_org":
            current = (have.get("organization") or {}).get("name") or current
        if (current or "") != want[key]:
            diff.append(key)
    if bool(have.get("private")) != want["private"]:
        diff.append("private")
    if sorted(t["name"] for t in have.get("tags", [])) != want["tags"]:
        diff.append("tags")
    have_extras = {e["key"]: e["value"] for e in have.get("extras", [])}
    if any(have_extras.get(k) != v for k, v in want["extras"].items()):
        diff.append("extras")
    if have.get("state") not in (None, "active"):
        diff.append("state")
    return diff


def _dataset_payload(want: dict[str, Any], have: dict[str, Any] | None) -> dict[str, Any]:
    payload = {k: v for k, v in want.items() if k not in ("tags", "extras")}
    payload["tags"] = [{"name": t} for t in want["tags"]]
    extras = {e["key"]: e["value"] for e in (have or {}).get("extras", [])}
    extras.update(want["extras"])  # keep extras set by others, own ours
    payload["extras"] = [{"key": k, "value": v} for k, v in sorted(extras.items())]
    if have is not None:
        payload["id"] = have["id"]
        payload["state"] = "active"
    return payload


def _resource_diff(want: dict[str, str], have: dict[str, Any]) -> list[str]:
    return [k for k, v in want.items() if str(have.get(k) if have.get(k) is not None else "") != v]


def _datastore_fields(schema: dict[str, Any]) -> list[dict[str, str]]:
    return [{"id": f["name"], "type": DATASTORE_TYPES.get(f.get("type", "string"), "text"),
             "info": {"label": f.get("title", f["name"]), "notes": f.get("description", "")}}
            for f in schema.get("fields", [])]


def _records(path: Path, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a CSV typed by the Table Schema (text kept as text: no leading zero lost)."""
    import csv

    missing = set(schema.get("missingValues", [""]))
    types = {f["name"]: f.get("type", "string") for f in schema.get("fields", [])}
    out = []
    true = {"true", "True", "TRUE", "1", "yes", "oui"}
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        rec: dict[str, Any] = {}
        for key, value in row.items():
            t = types.get(key, "string")
            if value is None or (value in missing and t != "string"):
                rec[key] = None
            elif t in ("integer", "year"):
                rec[key] = int(value)
            elif t == "number":
                rec[key] = float(value)
            elif t == "boolean":
                rec[key] = value in true
            else:
                rec[key] = value
        out.append(rec)
    return out


@dataclass
class _Ctx:
    client: CkanClient
    report: PublishReport
    dry_run: bool
    after_write: Callable[[Change], None] | None

    def wrote(self, change: Change) -> None:
        if self.after_write is not None:
            self.after_write(change)


def _problem(exc: CkanError, url: str, token: str | None, subject: str = "") -> Problem:
    where = f" ({subject})" if subject else ""
    msg = mask(exc.message, token)
    msg_en = msg
    if exc.kind in ("network", "unavailable"):
        msg, msg_en = {"connection": ("connexion impossible", "connection failed"),
                       "timeout": ("délai d'attente dépassé", "timed out")}.get(msg, (msg, msg))
    table = {
        "network": (f"serveur CKAN injoignable à {url}{where} : {msg}, malgré plusieurs essais",
                    f"CKAN server unreachable at {url}{where}: {msg_en}, after several attempts"),
        "unavailable": (f"le serveur CKAN {url} ne répond pas correctement ({msg}) malgré plusieurs essais{where}",
                        f"the CKAN server {url} keeps failing ({msg_en}) after several attempts{where}"),
        "protocol": (f"{url} ne répond pas comme une API CKAN (action {exc.action}, HTTP {exc.status}) : vérifiez PREAU_CKAN_URL{where}",
                     f"{url} does not answer like a CKAN API (action {exc.action}, HTTP {exc.status}): check PREAU_CKAN_URL{where}"),
        "auth": (f"accès refusé par CKAN (action {exc.action}){where} : {msg}",
                 f"access denied by CKAN (action {exc.action}){where}: {msg}"),
        "notfound": (f"objet introuvable dans CKAN (action {exc.action}){where}", f"not found in CKAN (action {exc.action}){where}"),
        "validation": (f"CKAN refuse les métadonnées (action {exc.action}){where} : {msg}",
                       f"CKAN rejected the metadata (action {exc.action}){where}: {msg}"),
    }
    fr, en = table.get(exc.kind, (msg, msg))
    return Problem(f"ckan-{exc.kind}", fr, en, field="PREAU_CKAN_URL" if exc.kind in ("network", "protocol") else None)


def _preflight(ctx: _Ctx, packages: list[Package], token: str | None) -> dict[str, dict[str, Any] | None]:
    """Check the server, the token and write access to every organization before any write."""
    c = ctx.client
    status = c.action("status_show")
    if not isinstance(status, dict) or "ckan_version" not in status:
        raise CkanError("protocol", "status_show", 200, "no ckan_version")
    me = c.get("user_show", {}) if token else None
    if token and not me:
        raise PreauError(Problem(
            "ckan-token", "jeton d'API refusé par CKAN (invalide, expiré ou révoqué) : vérifiez PREAU_CKAN_TOKEN",
            "API token refused by CKAN (invalid, expired or revoked): check PREAU_CKAN_TOKEN", field="PREAU_CKAN_TOKEN"))
    if not token:
        raise PreauError(Problem("ckan-token", "PREAU_CKAN_TOKEN manquant : un jeton d'API est nécessaire pour publier",
                                 "PREAU_CKAN_TOKEN missing: an API token is needed to publish", field="PREAU_CKAN_TOKEN"))
    sysadmin = bool(me.get("sysadmin"))
    writable = None
    if not sysadmin:
        writable = {o["name"] for o in c.action("organization_list_for_user", {"permission": "create_dataset"})}
    orgs: dict[str, dict[str, Any] | None] = {}
    denied = []
    for pid in sorted({p.publisher for p in packages}):
        org = c.get("organization_show", {"id": pid, "include_datasets": False, "include_users": False})
        orgs[pid] = org
        if org is not None and writable is not None and org["name"] not in writable:
            denied.append(pid)
    if denied:
        names = ", ".join(denied)
        raise PreauError(Problem(
            "ckan-forbidden-organization",
            f"le compte du jeton (« {me.get('name')} ») ne peut pas publier dans l'organisation : {names} "
            "(il doit en être éditeur ou administrateur)",
            f"the token's account ('{me.get('name')}') may not publish in organization: {names} "
            "(it must be an editor or admin of it)", field="PREAU_CKAN_TOKEN"))
    return orgs


def _sync_org(ctx: _Ctx, pid: str, pkg: Package, org: dict[str, Any] | None) -> None:
    pub = pkg.meta["publisher"]
    want = {"name": pid, "title": pub["name"]["fr"],
            "description": f"{pub['name']['fr']}\n\n{pub['name'].get('en', '')}".strip()}
    if org is None:
        ctx.report.add("organization", pid, "create")
        if not ctx.dry_run:
            ctx.client.action("organization_create", want,
                              recover=lambda: ctx.client.get("organization_show", {"id": pid}))
            ctx.wrote(ctx.report.changes[-1])
        return
    diff = [k for k in ("title", "description") if (org.get(k) or "") != want[k]]
    if not diff:
        ctx.report.add("organization", pid, "unchanged")
        return
    ctx.report.add("organization", pid, "update", detail=", ".join(diff))
    if not ctx.dry_run:
        ctx.client.action("organization_patch", {"id": org["id"], **{k: want[k] for k in diff}})
        ctx.wrote(ctx.report.changes[-1])


def _find(resources: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    by_key = [r for r in resources if r.get("preau_key") == key]
    return by_key or [r for r in resources if r.get("name") == key and not r.get("preau_key")]


def _sync_dataset(ctx: _Ctx, pkg: Package) -> None:
    c, report = ctx.client, ctx.report
    want = desired_dataset(pkg)
    have = c.get("package_show", {"id": pkg.name})
    if have is not None and (have.get("organization") or {}).get("name") not in (None, pkg.publisher):
        raise PreauError(Problem(
            "ckan-name-taken", f"le nom « {pkg.name} » est déjà pris dans CKAN par une autre organisation",
            f"the name '{pkg.name}' is already used in CKAN by another organization"))
    if have is None:
        report.add("dataset", pkg.name, "create", detail="private" if not pkg.public else "")
        if ctx.dry_run:
            have = {"resources": []}
        else:
            have = c.action("package_create", _dataset_payload(want, None),
                            recover=lambda: c.get("package_show", {"id": pkg.name}))
            ctx.wrote(report.changes[-1])
    else:
        diff = _dataset_diff(want, have)
        if diff:
            report.add("dataset", pkg.name, "update", detail="metadata: " + ", ".join(diff))
            if not ctx.dry_run:
                payload = _dataset_payload(want, have)
                have = c.action("package_patch", payload)
                ctx.wrote(report.changes[-1])
        else:
            report.add("dataset", pkg.name, "unchanged")

    resources = list(have.get("resources", []))
    for f in pkg.files:
        _sync_resource(ctx, pkg, f, resources, have.get("id"))
    # resources CKAN holds that the package no longer lists (e.g. a past school year): kept on purpose
    known = {f.path for f in pkg.files}
    for r in resources:
        key = r.get("preau_key") or r.get("name")
        if key not in known:
            report.problems.add(Problem(
                "ckan-kept-resource", f"ressource conservée (absente de la construction) : {pkg.name}/{key}",
                f"resource kept (not in the build any more): {pkg.name}/{key}", severity="info"))


def _sync_resource(ctx: _Ctx, pkg: Package, f: PackageFile, resources: list[dict[str, Any]],
                   package_id: str | None) -> None:
    c, report = ctx.client, ctx.report
    want = desired_resource(pkg, f)
    label = f"{pkg.name}/{f.path}"
    found = _find(resources, f.path)
    # keep the copy that already holds this file (stable sort: CKAN order otherwise)
    found.sort(key=lambda r: (r.get("hash") != f.sha256, r.get("url_type") != "upload"))
    # duplicates left by an interrupted client: keep the first, delete the others
    for extra in found[1:]:
        report.add("resource", label, "delete", detail="duplicate")
        if not ctx.dry_run:
            try:
                c.action("resource_delete", {"id": extra["id"]})
            except CkanError as exc:  # already gone (a retried delete that had succeeded)
                if exc.kind != "notfound":
                    raise
            ctx.wrote(report.changes[-1])
    have = found[0] if found else None
    path = pkg.folder / f.path

    def recover() -> dict[str, Any] | None:
        current = c.get("package_show", {"id": pkg.name}) or {}
        match = _find(current.get("resources", []), f.path)
        return match[0] if match and match[0].get("hash") == f.sha256 else None

    if have is None:
        report.add("resource", label, "create", detail="upload", nbytes=f.bytes)
        if not ctx.dry_run:
            have = c.action("resource_create", {"package_id": package_id, **want}, upload=path, recover=recover)
            resources.append(have)
            ctx.wrote(report.changes[-1])
    elif have.get("hash") != f.sha256 or have.get("url_type") != "upload":
        report.add("resource", label, "update", detail="upload", nbytes=f.bytes)
        if not ctx.dry_run:
            have = c.action("resource_patch", {"id": have["id"], **want}, upload=path)
            ctx.wrote(report.changes[-1])
    else:
        diff = _resource_diff(want, have)
        if diff:
            report.add("resource", label, "update", detail="metadata: " + ", ".join(diff))
            if not ctx.dry_run:
                have = c.action("resource_patch", {"id": have["id"], **want})
                ctx.wrote(report.changes[-1])
        else:
            report.add("resource", label, "unchanged")
    if f.datastore:
        _sync_datastore(ctx, pkg, f, have, label)


def _sync_datastore(ctx: _Ctx, pkg: Package, f: PackageFile, res: dict[str, Any] | None, label: str) -> None:
    c, report = ctx.client, ctx.report
    if res is not None and res.get("datastore_active") and res.get("datastore_hash") == f.sha256:
        report.add("datastore", label, "unchanged")
        return
    schema = pkg.table_schema(f.schema) if f.schema else {}
    action = "update" if res is not None and res.get("datastore_active") else "create"
    records = _records(pkg.folder / f.path, schema)
    report.add("datastore", label, action, detail=f"rows: {len(records)}")
    if ctx.dry_run or res is None:
        return
    if res.get("datastore_active"):
        try:
            c.action("datastore_delete", {"resource_id": res["id"], "force": True})
        except CkanError as exc:
            if exc.kind != "notfound":
                raise
    pk = schema.get("primaryKey") or []
    c.action("datastore_create", {"resource_id": res["id"], "force": True, "fields": _datastore_fields(schema),
                                  "primary_key": pk if isinstance(pk, list) else [pk]})
    for start in range(0, len(records), BATCH):
        # a fresh table: plain inserts (fast); if a batch has to be retried (its first attempt may
        # have reached the server), the retry upserts on the primary key so no row is duplicated
        payload = {"resource_id": res["id"], "force": True, "method": "insert", "records": records[start:start + BATCH]}

        def to_upsert(payload: dict[str, Any] = payload) -> None:
            if pk:
                payload["method"] = "upsert"
            return None

        c.action("datastore_upsert", payload, recover=to_upsert)
    c.action("resource_patch", {"id": res["id"], "datastore_hash": f.sha256})
    ctx.wrote(report.changes[-1])


def publish_ckan(packages: list[Package], url: str, token: str | None, *, dry_run: bool = False,
                 client: CkanClient | None = None, after_write: Callable[[Change], None] | None = None,
                 **client_options: Any) -> PublishReport:
    """Publish ``packages`` to the CKAN at ``url``; returns the report (see module docstring).

    Raises :class:`PreauError` with a clear message (never the token) when the server is
    unreachable, is not a CKAN, refuses the token or the organization, or keeps failing.
    ``after_write`` is called after each write (tests use it to interrupt a run).
    """
    url = url.rstrip("/")
    client = client or CkanClient(url, token, **client_options)
    report = PublishReport(target="ckan", destination=url, dry_run=dry_run)
    ctx = _Ctx(client, report, dry_run, after_write)
    packages = sorted(packages, key=lambda p: (p.publisher, p.name))
    current = ""
    try:
        orgs = _preflight(ctx, packages, token)
        for pid, org in orgs.items():
            first = next(p for p in packages if p.publisher == pid)
            current = pid
            _sync_org(ctx, pid, first, org)
        for pkg in packages:
            current = pkg.name
            _sync_dataset(ctx, pkg)
    except CkanError as exc:
        raise PreauError(_problem(exc, url, token, current)) from None
    finally:
        report.retries = client.retried
    return report
