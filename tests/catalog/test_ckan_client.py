"""Unit tests of the CKAN client (retries, Retry-After, timeouts, errors, token never shown) and of the
diff logic, against a scripted loopback HTTP server of ours (no CKAN needed)."""

from __future__ import annotations

import email.utils
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fixture_build  # noqa: E402

from preau.catalog.ckan import (  # noqa: E402
    CkanClient,
    CkanError,
    _dataset_diff,
    _dataset_payload,
    _records,
    _resource_diff,
    desired_dataset,
    desired_resource,
    publish_ckan,
)
from preau.errors import PreauError  # noqa: E402
from preau.package import build_packages  # noqa: E402

TOKEN = "tok-" + "s3cr3t" * 8


class Script:
    """Answers per request: (status, body, headers, delay seconds); the last one repeats."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.seen: list[dict] = []

    def next(self, path, headers, body):
        self.seen.append({"path": path, "auth": headers.get("Authorization"), "body": body})
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture()
def server():
    state = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, payload, headers, delay = state["script"].next(self.path, self.headers, body)
            if delay:
                time.sleep(delay)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def use(answers):
        state["script"] = Script(answers)
        return state["script"]

    yield f"http://127.0.0.1:{httpd.server_address[1]}", use
    httpd.shutdown()
    httpd.server_close()


def ok(result):
    return (200, {"success": True, "result": result}, None, 0)


def client(url, sleeps, **kw):
    kw.setdefault("retries", 4)
    return CkanClient(url, TOKEN, sleep=sleeps.append, seed=1, **kw)


def test_retries_5xx_and_429_honouring_retry_after(server):
    url, use = server
    script = use([(500, b"<html>oops</html>", None, 0), (503, b"", None, 0),
                  (429, {"success": False}, {"Retry-After": "7"}, 0), ok({"name": "x"})])
    sleeps: list[float] = []
    c = client(url, sleeps)
    assert c.action("package_show", {"id": "x"}) == {"name": "x"}
    assert len(script.seen) == 4 and c.retried == 3
    assert 0.5 * 0.75 <= sleeps[0] <= 0.5 * 1.25 and 1.0 * 0.75 <= sleeps[1] <= 1.0 * 1.25  # exponential
    assert sleeps[2] == 7.0  # Retry-After wins
    assert all(s["auth"] == TOKEN for s in script.seen)  # sent in the header, nowhere else


def test_retry_after_as_http_date_and_capped(server):
    url, use = server
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    use([(503, b"", {"Retry-After": when}, 0), (429, b"", {"Retry-After": "3600"}, 0), ok(1)])
    sleeps: list[float] = []
    c = client(url, sleeps, max_retry_after=60)
    assert c.action("status_show") == 1
    assert 25 <= sleeps[0] <= 31 and sleeps[1] == 60


def test_timeout_is_retried(server):
    url, use = server
    use([(200, {"success": True, "result": "late"}, None, 1.5), ok("fast")])
    sleeps: list[float] = []
    c = client(url, sleeps, timeout=0.4)
    assert c.action("status_show") == "fast"
    assert c.retried == 1


def test_gives_up_after_the_retries(server):
    url, use = server
    script = use([(502, b"bad gateway", None, 0)])
    sleeps: list[float] = []
    c = client(url, sleeps, retries=3)
    with pytest.raises(CkanError) as err:
        c.action("package_show", {"id": "x"})
    assert err.value.kind == "unavailable" and err.value.status == 502
    assert len(script.seen) == 4 and len(sleeps) == 3
    assert sleeps == sorted(sleeps)  # growing waits


def test_client_errors_are_not_retried(server):
    url, use = server
    script = use([(403, {"success": False, "error": {"__type": "Authorization Error", "message": "Access denied"}},
                   None, 0)])
    with pytest.raises(CkanError) as err:
        client(url, []).action("package_create", {"name": "x"})
    assert err.value.kind == "auth" and len(script.seen) == 1
    script = use([(409, {"success": False, "error": {"__type": "Validation Error", "name": ["already in use"]}},
                   None, 0)])
    with pytest.raises(CkanError) as err:
        client(url, []).action("package_create", {"name": "x"})
    assert err.value.kind == "validation" and err.value.errors == {"name": ["already in use"]}
    use([(200, b"<html>not an api</html>", None, 0)])
    with pytest.raises(CkanError) as err:
        client(url, []).action("status_show")
    assert err.value.kind == "protocol"


def test_recover_prevents_a_duplicate_create(server):
    """The create reached the server but the answer was lost (500): the retry first looks it up."""
    url, use = server
    script = use([(500, b"", None, 0), ok("second create: must not happen")])
    found = []
    c = client(url, [])
    result = c.action("resource_create", {"name": "a.csv"}, recover=lambda: found.append(1) or {"id": "r1"})
    assert result == {"id": "r1"} and len(script.seen) == 1 and found == [1]


def test_unreachable_server_message_never_shows_the_token(tmp_path):
    ws, data = fixture_build.make(tmp_path / "ws", layer=False)
    packages = build_packages(ws, data, tmp_path / "p").packages
    with pytest.raises(PreauError) as err:
        publish_ckan(packages, "http://127.0.0.1:9", TOKEN, retries=1, sleep=lambda s: None)
    text = err.value.report.render("fr") + err.value.report.render("en") + err.value.report.to_json()
    assert "injoignable" in err.value.report.render("fr") and "unreachable" in err.value.report.render("en")
    assert TOKEN not in text and "s3cr3t" not in text
    assert "s3cr3t" not in repr(CkanClient("http://x", TOKEN))


def test_wrong_token_and_forbidden_organization(server, tmp_path):
    url, use = server
    ws, data = fixture_build.make(tmp_path / "ws", layer=False)
    packages = build_packages(ws, data, tmp_path / "p").packages
    status = ok({"ckan_version": "2.12.0"})
    not_found = (404, {"success": False, "error": {"__type": "Not Found Error", "message": "User not found"}}, None, 0)
    use([status, not_found])
    with pytest.raises(PreauError) as err:
        publish_ckan(packages, url, TOKEN, sleep=lambda s: None)
    assert err.value.report.errors[0].code == "ckan-token"
    script = use([status, ok({"name": "someone", "sysadmin": False}), ok([]), ok({"id": "o1", "name": "demo-65"})])
    with pytest.raises(PreauError) as err:
        publish_ckan(packages, url, TOKEN, sleep=lambda s: None)
    problem = err.value.report.errors[0]
    assert problem.code == "ckan-forbidden-organization" and "demo-65" in problem.fr
    assert [s["path"].rsplit("/", 1)[1] for s in script.seen] == [
        "status_show", "user_show", "organization_list_for_user", "organization_show"]  # no write attempted


def test_diff_logic(tmp_path):
    ws, data = fixture_build.make(tmp_path / "ws", layer=False)
    pkg = next(p for p in build_packages(ws, data, tmp_path / "p").packages if p.public)
    want = desired_dataset(pkg)
    payload = _dataset_payload(want, None)
    have = {**payload, "organization": {"name": pkg.publisher}, "state": "active", "id": "x",
            "extras": payload["extras"] + [{"key": "set_by_someone_else", "value": "1"}]}
    assert _dataset_diff(want, have) == []
    assert _dataset_diff(want, {**have, "title": "autre"}) == ["title"]
    assert _dataset_diff(want, {**have, "private": True}) == ["private"]
    assert _dataset_diff(want, {**have, "tags": [{"name": "x"}]}) == ["tags"]
    changed = [dict(e) for e in have["extras"]]
    next(e for e in changed if e["key"] == "temporal_end")["value"] = "2030-08-31"
    assert _dataset_diff(want, {**have, "extras": changed}) == ["extras"]
    # our extras are rewritten, foreign ones kept
    merged = {e["key"]: e["value"] for e in _dataset_payload(want, {**have, "extras": changed})["extras"]}
    assert merged["temporal_end"] == want["extras"]["temporal_end"] and merged["set_by_someone_else"] == "1"
    f = next(f for f in pkg.files if f.datastore)
    res = desired_resource(pkg, f)
    assert res["hash"] == f.sha256 and res["preau_key"] == f.path and json.loads(res["conforms_to"])
    server_side = {**res, "id": "r", "size": 10, "datastore_active": True, "url": "http://x/f.csv"}
    assert _resource_diff(res, server_side) == []
    assert _resource_diff(res, {**server_side, "description": "x"}) == ["description"]
    records = _records(pkg.folder / f.path, pkg.table_schema(f.schema))
    assert isinstance(records[0]["effectif"], (int, type(None))) and isinstance(records[0]["secret"], bool)
    assert all(len(r["code_insee"]) == 5 for r in records)  # codes stay text
    hidden = [r for r in records if r["secret"]]
    assert hidden and all(r["effectif"] is None for r in hidden)
