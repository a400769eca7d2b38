"""`/v2/schemas` and `/v2/openapi.json`: the schema file and the API description."""

from __future__ import annotations

import json

from helpers import PBX_TRUNK, assert_kazoo_error, call
from openapi_spec_validator import validate

from service.http.openapi_doc import OPENAPI_FILE, bundled_document, load_document
from service.http.pipeline import ACCOUNT_RESOURCES, TOP_RESOURCES
from service.kazoo.validation import schema_path

INVALID = {"servers": [{"options": {"delay": "soon"}}], "account": {"trunks": -1}}


async def test_schema_names_are_listed_sorted(api, master):
    reply = await call(api, "GET", "/v2/schemas", token=master.token)
    assert reply.status == 200, reply.text
    assert "connectivity" in reply.data
    assert reply.data == sorted(reply.data)
    assert reply.body["status"] == "success"


async def test_schemas_need_a_token(api):
    for path in ("/v2/schemas", "/v2/schemas/connectivity"):
        assert_kazoo_error(await call(api, "GET", path), 401, "invalid_credentials")
    reply = await call(api, "PUT", "/v2/schemas/connectivity/validation", data={})
    assert_kazoo_error(reply, 401, "invalid_credentials")


async def test_schema_is_the_file_as_it_is(api, master):
    reply = await call(api, "GET", "/v2/schemas/connectivity", token=master.token)
    assert reply.status == 200, reply.text
    assert reply.data == json.loads(schema_path().read_text(encoding="utf-8"))


async def test_unknown_schema_is_404(api, master):
    for path in ("/v2/schemas/nope", "/v2/schemas/..%2Fpyproject", "/v2/schemas/nope/validation"):
        method = "PUT" if path.endswith("validation") else "GET"
        reply = await call(api, method, path, data={}, token=master.token)
        assert_kazoo_error(reply, 404, "bad_identifier")


async def test_validation_paths_and_verbs(api, master):
    reply = await call(api, "GET", "/v2/schemas/connectivity/validation", token=master.token)
    assert_kazoo_error(reply, 405, "invalid_method")
    assert reply.headers["Allow"] == "PUT"
    reply = await call(api, "PUT", "/v2/schemas/connectivity/other", data={}, token=master.token)
    assert_kazoo_error(reply, 404, "not_found")


async def test_validation_answers_the_document_as_it_would_be_stored(api, master):
    sent = {**PBX_TRUNK, "account": {"trunks": "2"}, "pvt_type": "x", "id": "chosen"}
    reply = await call(
        api, "PUT", "/v2/schemas/connectivity/validation", data=sent, token=master.token
    )
    assert reply.status == 200, reply.text
    doc = reply.data
    assert doc["account"] == {"trunks": 2, "auth_realm": master.realm}  # coerced, realm forced
    server = doc["servers"][0]
    assert server["auth"]["auth_method"] == "password"  # defaults filled in
    assert server["options"]["media_handling"] == "bypass"
    assert server["DIDs"] == {"+14155550100": {"force_outbound": False}}
    assert doc["custom_field"] == 42
    assert "pvt_type" not in doc and "id" not in doc


async def test_validation_saves_nothing(api, master):
    checked = await call(
        api, "PUT", "/v2/schemas/connectivity/validation", data=PBX_TRUNK, token=master.token
    )
    assert checked.status == 200, checked.text
    assert checked.data["name"] == PBX_TRUNK["name"]
    listing = await call(api, "GET", master.url(), token=master.token)
    assert listing.status == 200, listing.text
    assert listing.data == []


async def test_validation_gives_the_400_a_put_gives(api, master):
    for body in (INVALID, {"id": "_design/x"}, {"servers": {}}):
        checked = await call(
            api, "PUT", "/v2/schemas/connectivity/validation", data=body, token=master.token
        )
        created = await call(api, "PUT", master.url(), data=body, token=master.token)
        assert assert_kazoo_error(checked, 400, "validation error") == assert_kazoo_error(
            created, 400, "validation error"
        )


async def test_other_schemas_validate_with_their_own_file(api, master):
    reply = await call(api, "PUT", "/v2/schemas/accounts/validation", data={}, token=master.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data["name"]["required"]["value"] == "name"


# --- the OpenAPI document ------------------------------------------------------------


async def test_openapi_is_served_without_a_token_and_is_valid(api):
    reply = await call(api, "GET", "/v2/openapi.json")
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    validate(reply.body)
    assert reply.body["openapi"].startswith("3.1")
    # External refs are inlined: the served document stands alone.
    assert '"$ref": "../' not in reply.text


def test_openapi_file_in_the_repository_is_valid_with_its_refs():
    document = load_document()
    refs = document["components"]["schemas"]["connectivity"]
    assert refs == {"$ref": "../connectivity.json"}  # one source of truth
    validate(document, base_uri=OPENAPI_FILE.as_uri())


def test_served_document_inlines_the_schema_files_unchanged():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    schema.pop("$schema")
    assert bundled_document()["components"]["schemas"]["connectivity"] == schema


def test_openapi_describes_every_resource_the_service_routes():
    paths = bundled_document()["paths"]
    for name in TOP_RESOURCES:
        assert any(path.startswith(f"/v2/{name}") for path in paths), name
    for name in ACCOUNT_RESOURCES:
        # `auth` has only a sub-path (`auth/identity_secret`), as in KAZOO.
        prefix = f"/v2/accounts/{{ACCOUNT_ID}}/{name}"
        assert any(path == prefix or path.startswith(prefix + "/") for path in paths), name


def test_openapi_create_answers_201_with_location_and_links():
    create = bundled_document()["paths"]["/v2/accounts/{ACCOUNT_ID}/connectivity"]["put"]
    created = create["responses"]["201"]
    assert "Location" in created["headers"]
    assert set(created["links"]) == {
        "GetConnectivity",
        "ReplaceConnectivity",
        "PatchConnectivity",
        "DeleteConnectivity",
    }
    assert "200" not in create["responses"]
