"""Monster UI's contract: every request it makes to log in, boot, and drive the PBX
Connector, replayed in its order against the real service, checking the fields it reads.

Requests are made as Monster UI's SDK makes them (jquery.kazoosdk.js, monster.apps.js):
served from another origin (so each one is preceded by the browser's CORS preflight),
`Content-Type: application/json` on every request, `X-Auth-Token` on all but the
login, a `?_=<ms>` cache-buster on GETs, bodies wrapped with `ui_metadata`, DELETE
with a body. Answers must be JSON with exactly `Content-Type: application/json`
(errors included: the UI parses nothing else).
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient
from helpers import Reply, call
from instances import instance_for
from number_helpers import fresh_number, numbers_url

Json = dict[str, Any]

ORIGIN = "http://monster-ui.example:3000"
UI_METADATA = {"version": "4.3.0", "ui": "monster-ui", "origin": "pbxs"}
FILTER_STATE = '["in_service","port_in"]'


@dataclass
class MonsterUI:
    """The browser running Monster UI: what it sends, and what it insists on."""

    api: TestClient
    token: str | None = None
    log: list[str] = field(default_factory=list)

    async def request(
        self,
        verb: str,
        path: str,
        data: Json | None = None,
        *,
        params: dict[str, str] | None = None,
    ) -> Reply:
        await self._preflight(verb, path)
        headers = {"Origin": ORIGIN, "Content-Type": "application/json"}
        if self.token is not None and not path.endswith("/user_auth"):
            headers["X-Auth-Token"] = self.token
        query = dict(params or {})
        if verb == "GET":
            query["_"] = str(int(time.time() * 1000))
        body = None
        if verb != "GET":
            body = {"data": {**(data or {}), "ui_metadata": UI_METADATA}}
            if verb == "DELETE":
                body = {"data": {}}
        reply = await call(self.api, verb, path, body=body, headers=headers, params=query)
        self.log.append(f"{verb} {path} -> {reply.status}")
        context = " / ".join(self.log)
        assert reply.headers.get("Content-Type") == "application/json", context
        assert reply.headers.get("Access-Control-Allow-Origin") == "*", context
        assert isinstance(reply.body, dict) and isinstance(reply.body.get("data"), dict | list), (
            context
        )
        return reply

    async def _preflight(self, verb: str, path: str) -> None:
        wanted = "content-type" if self.token is None else "content-type, x-auth-token"
        headers = {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": verb,
            "Access-Control-Request-Headers": wanted,
        }
        async with self.api.options(path, headers=headers) as resp:
            assert resp.status == 200, f"preflight {verb} {path}: {resp.status}"
            allowed_headers = resp.headers["Access-Control-Allow-Headers"].split(", ")
            assert {"content-type", "x-auth-token"} <= set(allowed_headers)
            assert verb in resp.headers["Access-Control-Allow-Methods"].split(", ")
            assert resp.headers["Access-Control-Allow-Origin"] == "*"


@dataclass
class Tenant:
    account_id: str
    account_name: str
    realm: str
    username: str
    password: str
    number: str


@pytest_asyncio.fixture(scope="module")
async def ui_api(couch_url):
    """An instance of its own: the failed login below must not use up the shared
    instance's failure limiter."""
    instance = await instance_for(couch_url, auth_failure_burst=1000)
    yield instance
    await instance.close()


@pytest_asyncio.fixture
async def tenant(api, make_account, master) -> Tenant:
    """An operator's set-up: a customer account with an admin user and a spare number."""
    account = await make_account(f"PBX Customer {secrets.token_hex(3)}", parent=master)
    username, password = f"admin.{secrets.token_hex(3)}", "Monster-pw-1"
    user = {
        "first_name": "Pat",
        "last_name": "Admin",
        "username": username,
        "password": password,
        "priv_level": "admin",
    }
    reply = await call(
        api, "PUT", f"/v2/accounts/{account.id}/users", data=user, token=master.token
    )
    assert reply.status == 201, reply.text
    number = fresh_number()
    reply = await call(api, "PUT", numbers_url(account.id, number), data={}, token=master.token)
    assert reply.status == 201, reply.text
    return Tenant(account.id, account.name, account.realm, username, password, number)


def credentials(username: str, password: str) -> str:
    return hashlib.md5(f"{username.lower()}:{password}".encode()).hexdigest()


async def test_login_boot_and_the_pbx_connector_work_unchanged(ui_api, tenant):
    ui = MonsterUI(ui_api)
    a = f"/v2/accounts/{tenant.account_id}"

    # Before login: whitelabel look-ups, all tolerated as JSON 404s.
    for path in ("/v2/whitelabel/localhost", "/v2/whitelabel/localhost/logo"):
        assert (await ui.request("GET", path)).status == 404
    assert (await ui.request("GET", "/v2/whitelabel/localhost/icon")).status == 404

    # A mistyped password first: the UI shows "Invalid credentials" from this body.
    wrong = {
        "credentials": credentials(tenant.username, "typo"),
        "account_name": tenant.account_name,
    }
    failed = await ui.request("PUT", "/v2/user_auth", wrong)
    assert failed.status == 401
    assert failed.body["error"] == "401" and "message" in failed.body

    # Login (auth/app.js putAuth).
    login = await ui.request(
        "PUT",
        "/v2/user_auth",
        {
            "credentials": credentials(tenant.username, tenant.password),
            "account_name": tenant.account_name,
        },
    )
    assert login.status == 201
    ui.token = login.body["auth_token"]
    assert "." in ui.token  # monster.util.jwt_decode splits it
    assert login.data["account_id"] == tenant.account_id
    owner_id = login.data["owner_id"]
    assert login.data["is_reseller"] is False
    assert login.data["reseller_id"]
    assert isinstance(login.data["language"], str)

    # Boot, in the order observed.
    assert (await ui.request("GET", f"{a}/external_numbers")).status == 404
    account = await ui.request("GET", a)
    assert account.status == 200
    assert account.data["name"] == tenant.account_name
    assert account.data["realm"] == tenant.realm
    # Present, so myaccount does not rewrite the account at every login.
    assert account.data["ui_restrictions"] == {}
    assert account.body["version"]
    user = await ui.request("GET", f"{a}/users/{owner_id}")
    assert user.status == 200
    assert user.data["priv_level"] == "admin"
    assert (user.data["first_name"], user.data["last_name"]) == ("Pat", "Admin")
    assert user.data["require_password_update"] is False
    store = await ui.request("GET", f"{a}/apps_store")
    assert store.status == 200
    pbxs = next(app for app in store.data if app["name"] == "pbxs")
    assert len(pbxs["id"]) == 32
    assert pbxs["allowed_users"] == "all"
    assert pbxs["i18n"]["en-US"]["label"] == "PBX Connector"
    assert "source_url" not in pbxs and "api_url" not in pbxs
    apps = await ui.request("PATCH", f"{a}/users/{owner_id}", {"appList": [pbxs["id"]]})
    assert apps.status == 200
    assert apps.data["appList"] == [pbxs["id"]]
    for path in (f"{a}/ledgers/total", f"{a}/limits", f"{a}/alerts"):
        assert (await ui.request("GET", path)).status == 404

    # Open the PBX Connector: no trunk yet, so it creates one.
    listing = await ui.request("GET", f"{a}/connectivity")
    assert listing.data == []
    realm = (await ui.request("GET", a)).data["realm"]
    created = await ui.request(
        "PUT",
        f"{a}/connectivity",
        {
            "account": {
                "credits": {"prepay": "0.00"},
                "trunks": 0,
                "inbound_trunks": 0,
                "auth_realm": realm,
            },
            "billing_account_id": tenant.account_id,
            "DIDs_Unassigned": {},
            "servers": [],
        },
    )
    assert created.status == 201
    listing = await ui.request("GET", f"{a}/connectivity")
    assert listing.data == [created.data["id"]]  # an array of id strings
    trunk_url = f"{a}/connectivity/{listing.data[0]}"

    async def numbers() -> Json:
        reply = await ui.request(
            "GET", f"{a}/phone_numbers", params={"filter_state": FILTER_STATE, "paginate": "false"}
        )
        assert reply.status == 200
        return reply.data["numbers"]

    async def spare() -> set[str]:
        # listAvailableNumbers: numbers whose used_by is empty or absent.
        return {num for num, info in (await numbers()).items() if not info.get("used_by")}

    trunk = (await ui.request("GET", trunk_url)).data
    assert trunk["servers"] == []
    assert tenant.number in await spare()

    # Every write is a read-modify-write of the whole doc.
    async def save(change) -> Json:
        doc = copy.deepcopy((await ui.request("GET", trunk_url)).data)
        change(doc)
        reply = await ui.request("POST", trunk_url, doc)
        assert reply.status == 200, reply.text
        return reply.data

    server = {
        "DIDs": {},
        "options": {
            "enabled": True,
            "inbound_format": "e164",
            "international": False,
            "caller_id": {},
            "e911_info": {},
            "failover": {},
            "media_handling": "bypass",
        },
        "permissions": {"users": []},
        "monitor": {"monitor_enabled": False},
        "server_name": "My Asterisk",
        "server_type": "Asterisk",
        "auth": {"auth_method": "IP", "ip": "192.0.2.10"},
        "cfg": {},
    }
    saved = await save(lambda doc: doc["servers"].append(copy.deepcopy(server)))
    # The UI re-renders from the answer: the saved doc, unknown keys kept as sent.
    assert saved["servers"][0]["server_type"] == "Asterisk"
    assert saved["servers"][0]["cfg"] == {} and saved["servers"][0]["monitor"] == server["monitor"]
    assert saved["DIDs_Unassigned"] == {} and saved["billing_account_id"] == tenant.account_id
    assert saved["account"]["credits"] == {"prepay": "0.00"}

    # Assign the spare number: it leaves the spare list (used_by follows the trunk).
    saved = await save(lambda doc: doc["servers"][0]["DIDs"].update({tenant.number: {}}))
    assert tenant.number in saved["servers"][0]["DIDs"]
    assert (await numbers())[tenant.number]["used_by"] == "trunkstore"
    assert tenant.number not in await spare()

    # Remove it again: spare once more.
    saved = await save(lambda doc: doc["servers"][0]["DIDs"].pop(tenant.number))
    assert saved["servers"][0]["DIDs"] == {}
    assert tenant.number in await spare()

    # Edit the PBX (brand, auth, config steps are $.extend merges of the server).
    def edit(doc: Json) -> None:
        doc["servers"][0].update(
            {
                "server_name": "Main office",
                "auth": {
                    "auth_method": "Password",
                    "auth_user": "user_ab12cd34",
                    "auth_password": "x1",
                },
                "cfg": {"register_time": "600", "allow_refer": True},
            }
        )

    saved = await save(edit)
    assert saved["servers"][0]["server_name"] == "Main office"
    assert saved["servers"][0]["cfg"]["register_time"] == "600"

    # Delete the PBX: a splice and a POST, never a DELETE.
    saved = await save(lambda doc: doc["servers"].pop(0))
    assert saved["servers"] == []

    # Delete the spare number (DELETE with a body).
    deleted = await ui.request("DELETE", f"{a}/phone_numbers/{tenant.number.replace('+', '%2B')}")
    assert deleted.status == 200
    assert tenant.number not in await numbers()
    assert all(" -> 5" not in line for line in ui.log), ui.log


async def test_a_failed_login_is_readable_by_the_ui(ui_api, tenant):
    ui = MonsterUI(ui_api)
    reply = await ui.request(
        "PUT",
        "/v2/user_auth",
        {"credentials": credentials(tenant.username, "nope"), "account_name": tenant.account_name},
    )
    assert reply.status == 401
    # formatMonsterAPIError reads these; the text must parse as JSON on its own.
    parsed = json.loads(reply.text)
    assert parsed["status"] == "error" and isinstance(parsed["data"], dict)


async def test_every_json_answer_is_exactly_application_json(api, master):
    cases = [
        ("GET", "/__heartbeat__", None),
        ("GET", "/__lbheartbeat__", None),
        ("GET", "/v2/openapi.json", None),
        ("GET", "/v1/accounts", None),  # 410 before anything else
        ("DELETE", "/v2/api_auth", None),  # 405
        ("PUT", "/v2/user_auth", "{not json"),  # 400
        ("GET", f"/v2/accounts/{master.id}/connectivity", None),  # 401, no token
        ("GET", "/v2/whitelabel/example.com", None),  # 404
    ]
    for method, path, raw in cases:
        reply = await call(api, method, path, raw=raw, headers={"Content-Type": "application/json"})
        assert reply.headers["Content-Type"] == "application/json", (method, path, reply.status)
        assert reply.body is not None, (method, path)


async def test_preflights_answer_every_path_and_plain_options_stays_405(api, master):
    for path in ("/v2/user_auth", f"/v2/accounts/{master.id}/alerts", "/v2/no/such/thing"):
        headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
        async with api.options(path, headers=headers) as resp:
            assert resp.status == 200, path
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # Known paths list their own verbs, as KAZOO does.
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}
    async with api.options("/v2/user_auth", headers=headers) as resp:
        assert resp.headers["Access-Control-Allow-Methods"] == "OPTIONS, PUT"
    plain = await call(api, "OPTIONS", "/v2/user_auth")
    assert plain.status == 405
