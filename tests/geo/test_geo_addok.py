"""The addok adapter against a real addok (PyPI addok + addok-fr + addok-france + addok-csv, in
``.tools/addok`` made by ``make test-deps``) and a real Redis started here on a loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from preau.errors import PreauError
from preau.geo import geocode
from preau.geo.addok import AddokClient, ban_to_addok

ROOT = Path(__file__).resolve().parents[2]
ADDOK = ROOT / ".tools" / "addok" / "bin" / "addok"
pytestmark = pytest.mark.addok


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen) -> None:
    for _ in range(150):
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


@pytest.fixture(scope="module")
def addok_url(mini, tmp_path_factory):
    assert ADDOK.exists(), "addok missing: run `make test-deps` (creates .tools/addok)"
    redis = shutil.which("redis-server")
    assert redis, "redis-server missing: run `make test-deps` (apt redis-server)"
    work = tmp_path_factory.mktemp("addok")
    rport, hport = _port(), _port()
    procs = [subprocess.Popen([redis, "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait(rport, procs[0])
        env = {**os.environ, "ADDOK_CONFIG_MODULE": str(ROOT / "bench" / "addok_conf.py"), "REDIS_HOST": "127.0.0.1",
               "REDIS_PORT": str(rport), "ADDOK_WORKERS": "1"}
        ban = pl.read_csv(mini["ban"], separator=";", infer_schema=False)
        ban_to_addok(ban, work / "ban.ndjson")
        subprocess.run([str(ADDOK), "batch", str(work / "ban.ndjson")], env=env, check=True, capture_output=True)
        subprocess.run([str(ADDOK), "ngrams"], env=env, check=True, capture_output=True)
        procs.append(subprocess.Popen([str(ADDOK), "serve", "--host", "127.0.0.1", "--port", str(hport)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(hport, procs[1])
        yield f"http://127.0.0.1:{hport}"
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=10)


def test_adapter_agrees_with_offline_geocoder(addok_url, mini, mini_ref):
    ban = pl.read_csv(mini["ban"], separator=";", infer_schema=False).filter(pl.col("rep") == "")
    inp = ban.select((pl.col("numero") + " " + pl.col("nom_voie")).alias("adresse"), "code_postal",
                     pl.col("nom_commune").alias("commune"), "code_insee")
    theirs = AddokClient(addok_url).geocode(inp)
    ours = geocode(inp, mini_ref)
    assert theirs.columns == ours.columns
    assert (theirs["result_type"] == "housenumber").mean() >= 0.99
    assert (theirs["result_id"] == ban["id"]).mean() >= 0.99
    assert (theirs["result_id"] == ours["result_id"]).mean() >= 0.99
    assert (theirs["result_code_insee"] == ban["code_insee"]).all()
    one = AddokClient(addok_url).search("3 rue des lilas", citycode="65901")
    assert one and one["properties"]["type"] == "housenumber" and one["properties"]["citycode"] == "65901"


def test_adapter_unreachable_server_is_a_clear_error():
    with pytest.raises(PreauError) as err:
        AddokClient(f"http://127.0.0.1:{_port()}", timeout=2).geocode(pl.DataFrame({"adresse": ["1 rue x"]}))
    assert "addok" in err.value.render("fr")
