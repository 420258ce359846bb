"""Publishing to the project's real CKAN 2.12 (catalog/ckan-up.sh): organizations, datasets,
resources with sha256, DataStore, idempotence (0 bytes, metadata_modified untouched), crash and
fault injection (our own loopback proxy) then convergence, clear errors, restricted datasets."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fixture_build  # noqa: E402

from preau.catalog.publish import publish  # noqa: E402
from preau.package import load_packages  # noqa: E402
from preau.package.files import sha256_file  # noqa: E402

# the pinned schema's version, as schemas/ declares it today
SCHEMA_VERSION = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "effectifs-commune-niveau" / "schema.json").read_text())["version"]

pytestmark = pytest.mark.ckan
PREAU = Path(sys.executable).parent / "preau"
TABLE = "effectifs-commune-niveau"
RESTRICTED = "flux-secteur-ecole-niveau"


def api(env: dict, action: str, data: dict | None = None, token: str | None = None) -> requests.Response:
    headers = {"Authorization": token} if token else {}
    return requests.post(f"{env['url']}/api/3/action/{action}", json=data or {}, headers=headers, timeout=60)


def result(env: dict, action: str, data: dict | None = None, token: str | None = None):
    r = api(env, action, data, token)
    assert r.status_code == 200, (action, r.status_code, r.text[:300])
    return r.json()["result"]


def ckan_environ(env: dict, token: str | None = None, url: str | None = None) -> dict:
    return {"PREAU_CKAN_URL": url or env["url"], "PREAU_CKAN_TOKEN": env["token"] if token is None else token}


def make_ws(tmp: Path, publisher: str, **kw) -> Path:
    ws, _ = fixture_build.make(tmp, publisher, **kw)
    return ws


def datasets_state(env: dict, publisher: str) -> dict[str, dict]:
    out = {}
    for name in (TABLE, RESTRICTED, "carte-ecoles"):
        pkg = result(env, "package_show", {"id": f"{publisher}-{name}"}, env["token"])
        out[pkg["name"]] = pkg
    return out


def assert_no_duplicates(state: dict[str, dict]) -> None:
    for pkg in state.values():
        names = Counter(r["name"] for r in pkg["resources"])
        assert max(names.values()) == 1, (pkg["name"], names)


@pytest.fixture(scope="module")
def published(ckan_env, tmp_path_factory):
    """One publisher published once (module scope: several tests look at the same result)."""
    publisher = f"t-pub-{os.urandom(4).hex()}"
    ws = make_ws(tmp_path_factory.mktemp("ws"), publisher)
    report = publish(ws, target="ckan", env=ckan_environ(ckan_env))
    return ws, publisher, report


def test_first_publish_creates_orgs_datasets_resources_and_datastore(ckan_env, published):
    ws, publisher, report = published
    assert report.count("create", "organization") == 1
    assert report.count("create", "dataset") == 3
    org = result(ckan_env, "organization_show", {"id": publisher})
    assert org["title"] == "Département de démonstration (65)"
    state = datasets_state(ckan_env, publisher)
    assert_no_duplicates(state)
    packages = {p.name: p for p in load_packages(ws / "_build" / "packages")}
    uploaded = 0
    for name, pkg in state.items():
        local = packages[name]
        assert pkg["organization"]["name"] == publisher
        assert pkg["private"] is (name.endswith(RESTRICTED))
        by_name = {r["name"]: r for r in pkg["resources"]}
        assert set(by_name) == {f.path for f in local.files}
        for f in local.files:
            assert by_name[f.path]["hash"] == f.sha256 == sha256_file(local.folder / f.path)
            assert by_name[f.path]["url_type"] == "upload"
            uploaded += f.bytes
    assert report.bytes_uploaded == uploaded
    # the all-years table is in the DataStore, typed from the Table Schema
    table = state[f"{publisher}-{TABLE}"]
    res = next(r for r in table["resources"] if r["name"] == f"{TABLE}.csv")
    assert res["datastore_active"] is True
    found = result(ckan_env, "datastore_search", {"resource_id": res["id"], "limit": 1000})
    rows = packages[f"{publisher}-{TABLE}"].files[0].rows
    assert found["total"] == rows and len(found["records"]) == rows
    types = {f["id"]: f["type"] for f in found["fields"]}
    assert types["effectif"] == "int4" or types["effectif"] == "int"
    assert types["secret"] == "bool" and types["code_insee"] == "text"
    hidden = [r for r in found["records"] if r["secret"]]
    assert hidden and all(r["effectif"] is None for r in hidden)
    assert all(len(r["code_insee"]) == 5 for r in found["records"])
    # filter on the primary key columns, as a collectivity would
    one = result(ckan_env, "datastore_search", {"resource_id": res["id"],
                                               "filters": {"code_insee": "TOTAL", "niveau": "TOTAL"}})
    assert one["total"] == 2  # one per school year


def test_second_publish_uploads_nothing_and_leaves_metadata_modified(ckan_env, published):
    ws, publisher, _ = published
    before = {n: p["metadata_modified"] for n, p in datasets_state(ckan_env, publisher).items()}
    org_before = result(ckan_env, "organization_show", {"id": publisher})
    time.sleep(1.1)
    report = publish(ws, target="ckan", env=ckan_environ(ckan_env))
    assert report.bytes_uploaded == 0 and report.writes == 0
    assert report.unchanged == len(report.changes) > 0
    after = {n: p["metadata_modified"] for n, p in datasets_state(ckan_env, publisher).items()}
    assert after == before
    org_after = result(ckan_env, "organization_show", {"id": publisher})
    keys = ("id", "name", "title", "description", "state", "created", "image_url", "extras")  # not users' last_active
    assert {k: org_after.get(k) for k in keys} == {k: org_before.get(k) for k in keys}

    # one changed file: the dry run shows it and writes nothing, the real run uploads only it
    csv = ws / "_build/data" / publisher / TABLE / f"{TABLE}-2025-2026.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace(",CP,", ",CE1,", 1), encoding="utf-8")
    dry = publish(ws, target="ckan", dry_run=True, env=ckan_environ(ckan_env))
    assert [(c.kind, c.name, c.action) for c in dry.changes if c.action != "unchanged"] == [
        ("resource", f"{publisher}-{TABLE}/{TABLE}-2025-2026.csv", "update")]
    assert {n: p["metadata_modified"] for n, p in datasets_state(ckan_env, publisher).items()} == before
    report = publish(ws, target="ckan", env=ckan_environ(ckan_env))
    assert report.bytes_uploaded == csv.stat().st_size
    assert [c.name for c in report.changes if c.action != "unchanged"] == [f"{publisher}-{TABLE}/{TABLE}-2025-2026.csv"]
    state = datasets_state(ckan_env, publisher)
    res = next(r for r in state[f"{publisher}-{TABLE}"]["resources"] if r["name"] == csv.name)
    assert res["hash"] == sha256_file(csv)
    assert_no_duplicates(state)


def test_restricted_dataset_is_private(ckan_env, published):
    _, publisher, _ = published
    name = f"{publisher}-{RESTRICTED}"
    # anonymous: not in search, not showable, not in the DCAT feed
    found = result(ckan_env, "package_search", {"q": publisher, "rows": 100})
    names = {d["name"] for d in found["results"]}
    assert f"{publisher}-{TABLE}" in names and name not in names
    assert api(ckan_env, "package_show", {"id": name}).status_code in (403, 404)
    for feed in ("catalog.ttl", "catalog.jsonld", "catalog.rdf"):
        text = requests.get(f"{ckan_env['url']}/{feed}", timeout=60).text
        assert name not in text
    assert requests.get(f"{ckan_env['url']}/dataset/{name}.ttl", timeout=60).status_code in (403, 404)
    assert name in requests.get(f"{ckan_env['url']}/dataset/{name}.ttl", timeout=60,
                                headers={"Authorization": ckan_env["token"]}).text
    # nor its DataStore table
    private = result(ckan_env, "package_show", {"id": name}, ckan_env["token"])
    table = next(r for r in private["resources"] if r["name"] == f"{RESTRICTED}.csv")
    assert table["datastore_active"] is True
    assert api(ckan_env, "datastore_search", {"resource_id": table["id"]}).status_code in (403, 404)
    # a plain user outside the organization does not see it either
    assert api(ckan_env, "package_show", {"id": name}, ckan_env["user_token"]).status_code in (403, 404)
    # a member of the organization does
    result(ckan_env, "organization_member_create", {"id": publisher, "username": ckan_env["user"],
                                                    "role": "member"}, ckan_env["token"])
    pkg = result(ckan_env, "package_show", {"id": name}, ckan_env["user_token"])
    assert pkg["private"] is True
    found = result(ckan_env, "package_search", {"q": publisher, "include_private": True, "rows": 100},
                   ckan_env["user_token"])
    assert name in {d["name"] for d in found["results"]}


def test_dcat_feed_of_ckan_carries_our_metadata(ckan_env, published):
    _, publisher, _ = published
    from rdflib import Graph, Namespace

    dcat, dct, spdx = (Namespace("http://www.w3.org/ns/dcat#"), Namespace("http://purl.org/dc/terms/"),
                       Namespace("http://spdx.org/rdf/terms#"))
    g = Graph()
    g.parse(data=requests.get(f"{ckan_env['url']}/dataset/{publisher}-{TABLE}.ttl", timeout=60).text, format="turtle")
    ds = next(g.subjects(None, dcat.Dataset))
    assert str(g.value(ds, dct.conformsTo)).endswith(f"schema-effectifs-commune-niveau-{SCHEMA_VERSION}.json")
    period = g.value(ds, dct.temporal)
    assert str(g.value(period, dcat.startDate)) == "2024-09-01"
    assert g.value(ds, dct.publisher) is not None and g.value(ds, dct.spatial) is not None
    dists = list(g.objects(ds, dcat.distribution))
    assert dists and all(str(g.value(d, dct.license)).startswith("https://www.etalab.gouv.fr/") for d in dists)
    assert all(g.value(g.value(d, spdx.checksum), spdx.checksumValue) is not None for d in dists)


def test_killed_halfway_then_rerun_converges(ckan_env, tmp_path, unique_name):
    publisher = unique_name("kill")
    ws = make_ws(tmp_path, publisher)
    writes = []

    def boom(change):
        writes.append(change)
        if len(writes) == 7:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        publish(ws, target="ckan", env=ckan_environ(ckan_env), after_write=boom)
    second = publish(ws, target="ckan", env=ckan_environ(ckan_env))
    assert second.count("create", "organization") == 0  # created before the kill
    assert second.writes > 0
    third = publish(ws, target="ckan", env=ckan_environ(ckan_env))
    assert third.writes == 0 and third.bytes_uploaded == 0
    state = datasets_state(ckan_env, publisher)
    assert_no_duplicates(state)
    packages = {p.name: p for p in load_packages(ws / "_build" / "packages")}
    for name, pkg in state.items():
        assert {r["name"]: r["hash"] for r in pkg["resources"]} == {f.path: f.sha256 for f in packages[name].files}
    # a duplicate left by another client (same stable key) is removed by the next run
    target = f"{publisher}-{TABLE}"
    dup = {"package_id": target, "name": "validation.json", "preau_key": "validation.json", "url": "http://x.invalid/v"}
    result(ckan_env, "resource_create", dup, ckan_env["token"])
    fourth = publish(ws, target="ckan", env=ckan_environ(ckan_env))
    assert [(c.action, c.detail) for c in fourth.changes if c.action != "unchanged"] == [("delete", "duplicate")]
    assert_no_duplicates(datasets_state(ckan_env, publisher))


class FaultProxy:
    """A loopback HTTP proxy in front of CKAN injecting 500 / 429 / timeouts, before or after
    forwarding the request (after = CKAN did the work but the client sees a failure)."""

    def __init__(self, upstream: str, seed: int, rate: float = 0.3, hang: float = 3.0,
                 first: dict[str, str] | None = None):
        self.upstream, self.rng, self.rate, self.hang = upstream.rstrip("/"), random.Random(seed), rate, hang
        self.first = dict(first or {})  # action -> fault forced on its first call
        self.lock = threading.Lock()
        self.faults: Counter = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    roll, kind = proxy.rng.random(), proxy.rng.choice(
                        ["500-before", "429", "500-after", "timeout-after", "503-before"])
                    fault = kind if roll < proxy.rate else None
                    action = self.path.rsplit("/", 1)[-1].split("?")[0]
                    if action in proxy.first:
                        fault = proxy.first.pop(action)
                if fault:
                    proxy.faults[fault] += 1
                if fault in ("500-before", "503-before"):
                    return self._send(int(fault[:3]), b"<html>Internal Server Error</html>", {})
                if fault == "429":
                    return self._send(429, b"Too Many Requests", {"Retry-After": "0"})
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length",
                                                                                    "connection")}
                r = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                     timeout=120, allow_redirects=False)
                if fault == "500-after":
                    return self._send(500, b"<html>lost answer</html>", {})
                if fault == "timeout-after":
                    time.sleep(proxy.hang)
                return self._send(r.status_code, r.content, {"Content-Type": r.headers.get("Content-Type", "")})

            def _send(self, status, data, headers):
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _any

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_fault_injecting_proxy_then_convergence(ckan_env, tmp_path, unique_name):
    publisher = unique_name("proxy")
    ws = make_ws(tmp_path, publisher)
    # the first resource upload and the first DataStore batch reach CKAN but their answer is lost
    proxy = FaultProxy(ckan_env["url"], seed=20261123,
                       first={"resource_create": "500-after", "datastore_upsert": "500-after",
                              "package_create": "timeout-after"})
    try:
        report = publish(ws, target="ckan", env=ckan_environ(ckan_env, url=proxy.url),
                         timeout=2.0, retries=10, backoff=0.05, max_backoff=0.5)
    finally:
        proxy.close()
    assert not proxy.first  # the forced faults happened
    assert sum(proxy.faults.values()) >= 5 and report.retries >= 5
    assert proxy.faults["500-after"] + proxy.faults["timeout-after"] > 0
    # straight to CKAN: nothing left to do, no duplicate
    again = publish(ws, target="ckan", env=ckan_environ(ckan_env))
    assert again.writes == 0 and again.bytes_uploaded == 0
    state = datasets_state(ckan_env, publisher)
    assert_no_duplicates(state)
    # DataStore: every row exactly once despite retried (possibly already applied) batches
    packages = {p.name: p for p in load_packages(ws / "_build" / "packages")}
    for name in (f"{publisher}-{TABLE}", f"{publisher}-{RESTRICTED}"):
        f = next(f for f in packages[name].files if f.datastore)
        res = next(r for r in state[name]["resources"] if r["name"] == f.path)
        found = result(ckan_env, "datastore_search", {"resource_id": res["id"], "limit": 0}, ckan_env["token"])
        assert found["total"] == f.rows
    found = result(ckan_env, "organization_list", {"all_fields": False})
    assert found.count(publisher) == 1


def run_cli(ws: Path, environ: dict, *args: str, json_out: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_CKAN")}
    env.update(environ)
    env["PREAU_CKAN_RETRIES"] = "2"
    extra = ["--json"] if json_out else []
    return subprocess.run([str(PREAU), *args, "publish", "--ckan", *extra, str(ws)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_clear_errors_never_showing_the_token(ckan_env, tmp_path, unique_name):
    publisher = unique_name("err")
    ws = make_ws(tmp_path, publisher, layer=False)
    secret = ckan_env["token"]
    cases = [
        (ckan_environ(ckan_env, url=ckan_env["url"] + "/pas-une-api"), "ne répond pas comme une API CKAN"),
        (ckan_environ(ckan_env, url="http://127.0.0.1:9"), "injoignable"),
        (ckan_environ(ckan_env, token="x" + secret[1:]), "jeton d'API refusé"),
        (ckan_environ(ckan_env, url="ftp://127.0.0.1"), "http:// ou https://"),
    ]
    for environ, expected in cases:
        proc = run_cli(ws, environ)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out
        assert expected in out, out
        assert secret not in out and secret[1:] not in out and "Traceback" not in out
    # English on request
    proc = run_cli(ws, ckan_environ(ckan_env, token="x" + secret[1:]), "--lang", "en")
    assert proc.returncode != 0 and "API token refused" in proc.stdout + proc.stderr
    # an organization the token may not write to: created by the sysadmin, then the plain user tries
    assert run_cli(ws, ckan_environ(ckan_env)).returncode == 0
    user_token = ckan_env["user_token"]
    proc = run_cli(ws, ckan_environ(ckan_env, token=user_token), "--lang", "fr")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "ne peut pas publier dans l'organisation" in out and publisher in out
    assert user_token not in out and secret not in out
    proc = run_cli(ws, ckan_environ(ckan_env, token=user_token), json_out=True)
    report = json.loads(proc.stdout)
    assert proc.returncode != 0 and report["problems"][0]["code"] == "ckan-forbidden-organization"
