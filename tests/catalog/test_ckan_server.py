"""Integration tests of the project's real CKAN 2.12 (catalog/ckan-up.sh, `make ckan-up`).

They check the server the other catalog tests rely on: reads, token writes, uploads, search
(through the solrlite index), DataStore, DCAT feed, private datasets and permissions.
"""

from __future__ import annotations

import io

import pytest
import requests
from ckanapi import NotAuthorized, NotFound, RemoteCKAN, ValidationError

pytestmark = pytest.mark.ckan


def api(env: dict, token: str | None = None) -> RemoteCKAN:
    return RemoteCKAN(env["url"], apikey=token, user_agent="preau-tests")


@pytest.fixture(scope="module")
def org(ckan_env):
    admin = api(ckan_env, ckan_env["token"])
    import uuid

    name = f"t-org-{uuid.uuid4().hex[:10]}"
    return admin.action.organization_create(name=name, title=f"Organisation de test {name}")


def test_anonymous_reads(ckan_env):
    anon = api(ckan_env)
    status = anon.action.status_show()
    assert status["ckan_version"].startswith("2.12")
    assert {"activity", "datastore", "dcat", "structured_data"} <= set(status["extensions"])
    result = anon.action.package_search(rows=0)
    assert result["count"] >= 0


def test_token_writes_dataset_and_upload(ckan_env, org, unique_name):
    admin, anon = api(ckan_env, ckan_env["token"]), api(ckan_env)
    name = unique_name("ds")
    content = "code_insee,effectif\n65440,12\n65001,7\n".encode("utf-8")
    ds = admin.action.package_create(
        name=name, title="Effectifs de test", owner_org=org["id"], license_id="cc-by",
        tags=[{"name": "ecoles"}], extras=[{"key": "preau_source", "value": "test"}])
    res = admin.action.resource_create(package_id=ds["id"], name="effectifs.csv", format="CSV",
                                       upload=("effectifs.csv", io.BytesIO(content)))
    shown = anon.action.package_show(id=name)
    assert shown["title"] == "Effectifs de test"
    assert shown["extras"] == [{"key": "preau_source", "value": "test"}]
    assert [r["id"] for r in shown["resources"]] == [res["id"]]
    download = requests.get(shown["resources"][0]["url"], timeout=30)
    assert download.status_code == 200 and download.content == content


def test_package_search_q_fq_facets_rows_sort(ckan_env, org, unique_name):
    admin, anon = api(ckan_env, ckan_env["token"]), api(ckan_env)
    tag = unique_name("tag")
    names = sorted(unique_name("s") for _ in range(3))
    words = ["maternelles", "élémentaires", "secteurs"]
    for i, (name, word) in enumerate(zip(names, words)):
        ds = admin.action.package_create(
            name=name, title=f"Jeu {word} {i}", owner_org=org["id"],
            notes=f"Description des {word}", tags=[{"name": tag}] + ([{"name": "pair"}] if i % 2 == 0 else []))
        admin.action.resource_create(package_id=ds["id"], name="r", url="http://example.invalid/r",
                                     format="CSV" if i < 2 else "GeoJSON")
    # free text (dismax over name/title/tags/groups/text), accents folded
    found = anon.action.package_search(q="elementaires", fq=f'tags:"{tag}"')
    assert [d["name"] for d in found["results"]] == [names[1]]
    # fielded query, filter, facets
    found = anon.action.package_search(q=f"tags:{tag}", fq="res_format:CSV",
                                       **{"facet.field": ["tags", "res_format"]})
    assert found["count"] == 2
    assert found["facets"]["res_format"] == {"CSV": 2}
    assert found["facets"]["tags"][tag] == 2
    assert found["search_facets"]["tags"]["items"]
    # paging and sorting
    page = anon.action.package_search(fq=f"tags:{tag}", sort="name asc", rows=2, start=0)
    assert page["count"] == 3
    assert [d["name"] for d in page["results"]] == names[:2]
    page = anon.action.package_search(fq=f"tags:{tag}", sort="name desc", rows=2, start=2)
    assert [d["name"] for d in page["results"]] == names[:1]
    # boolean query
    found = anon.action.package_search(q=f"tags:{tag} AND -tags:pair")
    assert [d["name"] for d in found["results"]] == [names[1]]


def test_datastore_create_search_sql(ckan_env, org, unique_name):
    admin, anon = api(ckan_env, ckan_env["token"]), api(ckan_env)
    ds = admin.action.package_create(name=unique_name("dst"), owner_org=org["id"])
    rows = [{"code_insee": "65440", "niveau": "CP", "effectif": 12},
            {"code_insee": "65440", "niveau": "CE1", "effectif": 9},
            {"code_insee": "65001", "niveau": "CP", "effectif": 4}]
    created = admin.action.datastore_create(
        resource={"package_id": ds["id"], "name": "table"}, force=True, primary_key=["code_insee", "niveau"],
        fields=[{"id": "code_insee", "type": "text"}, {"id": "niveau", "type": "text"},
                {"id": "effectif", "type": "int"}], records=rows)
    rid = created["resource_id"]
    got = anon.action.datastore_search(resource_id=rid, filters={"code_insee": "65440"}, sort="niveau")
    assert got["total"] == 2
    assert [r["effectif"] for r in got["records"]] == [9, 12]
    sql = anon.action.datastore_search_sql(
        sql=f'SELECT sum(effectif) AS total FROM "{rid}" WHERE niveau = \'CP\'')
    assert int(sql["records"][0]["total"]) == 16


def test_private_dataset_hidden_from_anonymous(ckan_env, org, unique_name):
    admin, anon = api(ckan_env, ckan_env["token"]), api(ckan_env)
    user = api(ckan_env, ckan_env["user_token"])
    public_name, private_name = unique_name("pub"), unique_name("priv")
    admin.action.package_create(name=public_name, title=f"Public {public_name}", owner_org=org["id"])
    admin.action.package_create(name=private_name, title=f"Restreint {private_name}",
                                owner_org=org["id"], private=True)
    # anonymous: search and show hide it
    assert anon.action.package_search(q=f"name:{private_name}")["count"] == 0
    assert anon.action.package_search(q=f"name:{public_name}")["count"] == 1
    with pytest.raises((NotAuthorized, NotFound)):
        anon.action.package_show(id=private_name)
    # DCAT feed: public listed, private absent
    feed = requests.get(ckan_env["url"] + "/catalog.ttl", timeout=60)  # newest first, 100 per page
    assert feed.status_code == 200 and "dcat:Catalog" in feed.text
    assert f"Public {public_name}" in feed.text
    assert private_name not in feed.text
    one = requests.get(ckan_env["url"] + "/catalog.ttl", params={"q": f"name:{public_name}"}, timeout=60)
    assert f"Public {public_name}" in one.text
    hidden = requests.get(ckan_env["url"] + "/catalog.ttl", params={"q": f"name:{private_name}"}, timeout=60)
    assert hidden.status_code == 200 and private_name not in hidden.text
    assert requests.get(f"{ckan_env['url']}/dataset/{private_name}.ttl", timeout=30).status_code in (403, 404)
    # sysadmin sees it
    assert admin.action.package_search(q=f"name:{private_name}", include_private=True)["count"] == 1
    assert admin.action.package_show(id=private_name)["private"] is True
    # a plain user does not, until made a member of the organization
    assert user.action.package_search(q=f"name:{private_name}", include_private=True)["count"] == 0
    with pytest.raises(NotAuthorized):
        user.action.package_show(id=private_name)
    admin.action.organization_member_create(id=org["id"], username=ckan_env["user"], role="member")
    assert user.action.package_search(q=f"name:{private_name}", include_private=True)["count"] == 1
    assert user.action.package_show(id=private_name)["name"] == private_name


def test_anonymous_and_plain_user_writes_refused(ckan_env, unique_name):
    anon = api(ckan_env)
    with pytest.raises(NotAuthorized):
        anon.action.package_create(name=unique_name("anon"))
    with pytest.raises(NotAuthorized):
        anon.action.organization_create(name=unique_name("anon"))
    other = api(ckan_env, ckan_env["user2_token"])
    with pytest.raises((NotAuthorized, ValidationError)):
        other.action.package_create(name=unique_name("u2"), owner_org="does-not-exist")
    wrong = api(ckan_env, "not-a-valid-token")
    with pytest.raises(NotAuthorized):
        wrong.action.organization_create(name=unique_name("bad"))
