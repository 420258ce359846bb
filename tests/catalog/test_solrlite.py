"""Unit tests of the Solr-protocol dev index (preau.catalog.solrlite), over HTTP on a random port."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from preau.catalog import solrlite
from preau.catalog.solrlite import (MUST, MUST_NOT, SHOULD, Bool, Phrase, QueryError, Range, Term,
                                    mm_required, parse_date, parse_lucene)


@pytest.fixture
def solr(tmp_path):
    server = solrlite.make_server(str(tmp_path / "index.db"), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/solr"
    yield base
    server.shutdown()
    server.server_close()


def http(method: str, url: str, body: bytes | None = None, ctype: str = "application/json"):
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8")


def select(base: str, core: str = "ckan", **params) -> dict:
    pairs = []
    for key, value in params.items():
        key = key.replace("__", ".")
        for v in value if isinstance(value, list) else [value]:
            pairs.append((key, str(v)))
    status, text = http("GET", f"{base}/{core}/select/?" + urllib.parse.urlencode(pairs))
    assert status == 200, text
    return json.loads(text)


def names(result: dict) -> list[str]:
    return [d["name"] for d in result["response"]["docs"]]


DOCS = [
    {"index_id": "i1", "id": "1", "name": "ecoles-65", "title": "Effectifs des écoles",
     "notes": "Nombre d'élèves par école", "tags": ["école", "2024-2025"], "site_id": "main",
     "state": "active", "capacity": "public", "permission_labels": ["public"],
     "entity_type": "package", "dataset_type": "dataset", "organization": "demo-65",
     "res_format": ["CSV", "Parquet"], "num_resources": 2,
     "metadata_modified": "2024-01-02T10:00:00.000000Z", "extras_preau_source": "pays basque"},
    {"index_id": "i2", "id": "2", "name": "secteurs-65", "title": "Secteurs scolaires",
     "notes": "Carte des secteurs", "tags": ["secteur"], "site_id": "main", "state": "active",
     "capacity": "private", "permission_labels": ["member-abc"], "entity_type": "package",
     "dataset_type": "dataset", "organization": "demo-65", "res_format": ["GeoJSON"],
     "num_resources": 1, "metadata_modified": "2025-03-01T00:00:00.000000Z"},
    {"index_id": "i3", "id": "3", "name": "cantine-64", "title": "Cantine et périscolaire",
     "notes": "Inscriptions à la cantine", "tags": ["école", "cantine"], "site_id": "main",
     "state": "deleted", "capacity": "public", "permission_labels": ["public"],
     "entity_type": "package", "dataset_type": "dataset", "organization": "demo-64",
     "res_format": ["CSV"], "num_resources": 1, "metadata_modified": "2023-05-05T00:00:00.000000Z"},
    {"index_id": "i4", "id": "4", "name": "autre-site", "title": "Écoles d'un autre site",
     "site_id": "other", "state": "active", "capacity": "public", "permission_labels": ["public"],
     "entity_type": "package", "dataset_type": "dataset", "organization": "demo-65",
     "num_resources": 0, "metadata_modified": "2022-01-01T00:00:00Z"},
]


@pytest.fixture
def loaded(solr):
    status, text = http("POST", f"{solr}/ckan/update/?commit=true", json.dumps(DOCS).encode())
    assert status == 200, text
    return solr


# ---- parser -------------------------------------------------------------------------------

def test_parse_field_phrase_range_and_prefixes():
    tree = parse_lucene('+site_id:"main" -state:deleted title:écoles metadata_modified:[* TO NOW]',
                        default_op="OR")
    occurs = [o for o, _ in tree.clauses]
    assert occurs == [MUST, MUST_NOT, SHOULD, SHOULD]
    assert tree.clauses[0][1] == Phrase("site_id", "main")
    assert tree.clauses[1][1] == Term("state", "deleted")
    rng = tree.clauses[3][1]
    assert isinstance(rng, Range) and rng.low is None and rng.high == "NOW" and rng.incl_high


def test_parse_boolean_operators_follow_lucene():
    # with default operator AND, "a OR b" makes both optional; "a AND NOT b" forbids b
    tree = parse_lucene("a OR b", default_op="AND")
    assert [o for o, _ in tree.clauses] == [SHOULD, SHOULD]
    tree = parse_lucene("a AND NOT b", default_op="OR")
    assert [o for o, _ in tree.clauses] == [MUST, MUST_NOT]
    tree = parse_lucene("a b", default_op="AND")
    assert [o for o, _ in tree.clauses] == [MUST, MUST]
    tree = parse_lucene('permission_labels:("public" OR "creator-1")')
    group = tree.clauses[0][1]
    assert isinstance(group, Bool) and [n.field for _, n in group.clauses] == ["permission_labels"] * 2
    wild = parse_lucene(r"name:ecole\-* title:a\*b").clauses
    assert wild[0][1] == Term("name", "ecole-*", True)
    assert wild[1][1].wildcard is False


@pytest.mark.parametrize("bad", ["title:(a", '"open', "[a TO", "{!lucene}x", "_query_:x"])
def test_parse_errors(bad):
    with pytest.raises(QueryError):
        parse_lucene(bad)


def test_mm_spec():
    spec = "2<-1 5<80%"
    assert [mm_required(spec, n) for n in range(1, 8)] == [1, 2, 2, 3, 4, 4, 5]
    assert mm_required("100%", 3) == 3 and mm_required("1", 3) == 1 and mm_required("-1", 3) == 2


def test_date_math():
    assert parse_date("2024-01-02T10:00:00Z").day == 2
    now = parse_date("NOW")
    day = parse_date("NOW/DAY")
    assert day.hour == 0 and day <= now
    assert (parse_date("NOW-1DAY") - now).days == -1
    assert parse_date("2024-01-31T00:00:00Z+1MONTH").day == 29


# ---- HTTP: select -------------------------------------------------------------------------

def test_schema_and_ping(solr):
    status, text = http("GET", f"{solr}/ckan/schema?wt=schema.xml")
    assert status == 200 and '<schema name="ckan-2.12"' in text
    status, text = http("GET", f"{solr}/ckan/admin/file/?file=schema.xml")
    assert status == 200 and "ckan-2.12" in text
    status, text = http("GET", f"{solr}/ckan/admin/ping")
    assert status == 200 and json.loads(text)["status"] == "OK"


def test_ckan_permission_filters(loaded):
    fq = ['+site_id:"main"', "+state:active", '+permission_labels:("public" OR "creator-x")']
    assert names(select(loaded, q="*:*", fq=fq, fl="name")) == ["ecoles-65"]
    fq[2] = '+permission_labels:("public" OR "member-abc")'
    got = select(loaded, q="*:*", fq=fq, fl="name", sort="name asc")
    assert names(got) == ["ecoles-65", "secteurs-65"]
    assert got["response"]["numFound"] == 2
    # a negative-only filter keeps everything else
    assert sorted(names(select(loaded, q="*:*", fq="-state:active", fl="name"))) == ["cantine-64"]


def test_dismax_text_search_and_mm(loaded):
    base = dict(defType="dismax", qf="name^4 title^4 tags^2 groups^2 text", mm="2<-1 5<80%",
                fq='+site_id:"main"', fl="name,score")
    # accents folded; title boost wins the ranking; text catches notes and extras
    got = select(loaded, q="ecoles", **base)
    assert names(got) == ["ecoles-65"]
    assert got["response"]["docs"][0]["score"] > 0
    assert names(select(loaded, q="cantine", **base)) == ["cantine-64"]
    assert names(select(loaded, q="basque", **base)) == ["ecoles-65"]
    # two terms: both required (mm 2<-1)
    assert names(select(loaded, q="carte secteurs", **base)) == ["secteurs-65"]
    assert names(select(loaded, q="carte cantine", **base)) == []
    # three terms: one may miss
    assert names(select(loaded, q="carte secteurs licorne", **base)) == ["secteurs-65"]
    # phrase and prohibited term
    assert names(select(loaded, q='"des secteurs"', **base)) == ["secteurs-65"]
    assert sorted(names(select(loaded, q="école -cantine", **{**base, "mm": "1"}))) == ["ecoles-65"]


def test_lucene_fields_ranges_wildcards(loaded):
    sel = lambda q, **kw: sorted(names(select(loaded, q=q, fl="name", rows=50, **kw)))  # noqa: E731
    assert sel("tags:école") == ["cantine-64", "ecoles-65"]
    assert sel("tags:École") == []  # string fields are exact
    assert sel("title:ECOLES") == ["autre-site", "ecoles-65"]  # text fields fold case and accents
    assert sel("name:ecoles*") == ["ecoles-65"]
    assert sel("name:*-6?") == ["cantine-64", "ecoles-65", "secteurs-65"]
    assert sel("num_resources:[1 TO 2]") == ["cantine-64", "ecoles-65", "secteurs-65"]
    assert sel("num_resources:{1 TO *]") == ["ecoles-65"]
    assert sel("metadata_modified:[2024-01-01T00:00:00Z TO 2025-12-31T00:00:00Z]") == ["ecoles-65", "secteurs-65"]
    assert sel("metadata_modified:[* TO NOW-1YEAR]", ) != []
    assert sel("extras_preau_source:*") == ["ecoles-65"]
    assert sel("organization:demo-65 AND NOT tags:secteur") == ["autre-site", "ecoles-65"]
    assert sel("(tags:cantine OR tags:secteur) AND state:active") == ["secteurs-65"]
    assert sel("tags:cantine || name:autre-site") == ["autre-site", "cantine-64"]
    assert sel('+(id:"2" OR name:"2") +site_id:"main"') == ["secteurs-65"]
    assert sel("élèves", df="notes") == ["ecoles-65"]
    assert sel("carte cantine", **{"q.op": "OR", "df": "notes"}) == ["cantine-64", "secteurs-65"]
    assert sel("carte cantine", **{"q.op": "AND", "df": "notes"}) == []


def test_sort_rows_start_fl(loaded):
    got = select(loaded, q="*:*", sort="metadata_modified desc", rows=2, start=1, fl="name,id")
    assert got["response"]["numFound"] == 4 and got["response"]["start"] == 1
    assert names(got) == ["ecoles-65", "cantine-64"]
    assert set(got["response"]["docs"][0]) == {"name", "id"}
    got = select(loaded, q="*:*", sort="num_resources asc, name desc", fl="*")
    assert names(got) == ["autre-site", "secteurs-65", "cantine-64", "ecoles-65"]
    assert "permission_labels" not in got["response"]["docs"][0]  # not stored, like Solr
    status, text = http("GET", f"{loaded}/ckan/select?q=*:*&sort=name+sideways")
    assert status == 400 and "Sort Order" in json.loads(text)["error"]["msg"]


def test_facets(loaded):
    got = select(loaded, q="*:*", fq="+state:active", rows=0, facet="true",
                 facet__field=["organization", "res_format", "tags"], facet__mincount=1,
                 facet__limit=2)
    ff = got["facet_counts"]["facet_fields"]
    assert ff["organization"] == ["demo-65", 3]
    assert ff["res_format"] == ["CSV", 1, "GeoJSON", 1]  # count, then value order; limit 2
    assert ff["tags"][:2] == ["2024-2025", 1]
    got = select(loaded, q="*:*", fq="+state:active", rows=0, facet="true",
                 facet__field="organization", facet__mincount=0, facet__sort="index")
    assert got["facet_counts"]["facet_fields"]["organization"] == ["demo-64", 0, "demo-65", 3]


# ---- HTTP: update -------------------------------------------------------------------------

def test_update_replace_delete_by_id_and_query(loaded):
    doc = dict(DOCS[0], title="Titre remplacé")
    status, _ = http("POST", f"{loaded}/ckan/update?commit=true", json.dumps([doc]).encode())
    assert status == 200
    got = select(loaded, q="id:1", fl="title")
    assert got["response"]["numFound"] == 1 and got["response"]["docs"][0]["title"] == "Titre remplacé"
    # XML delete by id (pysolr) and by query (CKAN's delete_package)
    status, _ = http("POST", f"{loaded}/ckan/update/?commit=true", b"<delete><id>i1</id></delete>",
                     "text/xml")
    assert status == 200
    q = '+entity_type:package AND +(id:"2" OR name:"2") AND +site_id:"main"'
    body = f"<delete><query>{q}</query></delete>".encode()
    assert http("POST", f"{loaded}/ckan/update/", body, "text/xml")[0] == 200
    assert http("POST", f"{loaded}/ckan/update/", b"<commit />", "text/xml")[0] == 200
    assert sorted(names(select(loaded, q="*:*", fl="name"))) == ["autre-site", "cantine-64"]
    # JSON command object
    cmd = b'{"delete": {"query": "site_id:other"}, "commit": {}}'
    assert http("POST", f"{loaded}/ckan/update", cmd)[0] == 200
    assert names(select(loaded, q="*:*", fl="name")) == ["cantine-64"]


def test_xml_add_and_cores_are_separate(solr):
    body = (b'<add><doc><field name="index_id">x</field><field name="id">x</field>'
            b'<field name="name">xml-doc</field><field name="tags">a</field>'
            b'<field name="tags">b</field></doc></add>')
    assert http("POST", f"{solr}/one/update/?commit=true", body, "text/xml")[0] == 200
    assert names(select(solr, core="one", q="tags:b", fl="name")) == ["xml-doc"]
    assert select(solr, core="two", q="*:*")["response"]["numFound"] == 0


def test_persistence(tmp_path):
    path = str(tmp_path / "p.db")
    server = solrlite.make_server(path, port=0)
    core = server.RequestHandlerClass.index.core("ckan")
    core.add(DOCS)
    server.server_close()
    again = solrlite.make_server(path, port=0)
    core = again.RequestHandlerClass.index.core("ckan")
    assert len(core.docs) == 4
    assert set(core.evaluate(parse_lucene("carte", "text"))) == {"i2"}  # FTS5 survives restart
    again.server_close()


def test_bad_requests_answer_400(loaded):
    status, text = http("GET", f"{loaded}/ckan/select?q=title:(oops")
    assert status == 400 and json.loads(text)["error"]["code"] == 400
    status, _ = http("POST", f"{loaded}/ckan/update", b"{not json")
    assert status == 400
    status, _ = http("POST", f"{loaded}/ckan/update", b'[{"name": "no key"}]')
    assert status == 400
