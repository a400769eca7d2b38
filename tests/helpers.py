"""Small HTTP helpers shared by the functional tests."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy

Json = dict[str, Any]


@dataclass
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]
    text: str

    @property
    def data(self) -> Any:
        return self.body["data"]


async def call(
    api: TestClient,
    method: str,
    path: str,
    *,
    data: Any = None,
    body: Any = None,
    raw: bytes | str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Reply:
    """One request. `data` is wrapped in the KAZOO envelope; `body` is sent as given."""
    sent_headers = dict(headers or {})
    if token is not None:
        sent_headers["X-Auth-Token"] = token
    payload: bytes | str | None = raw
    if data is not None:
        payload = json.dumps({"data": data})
    elif body is not None:
        payload = json.dumps(body)
    if payload is not None:
        sent_headers.setdefault("Content-Type", "application/json")
    async with api.request(method, path, data=payload, headers=sent_headers, params=params) as resp:
        text = await resp.text()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Reply(status=resp.status, body=parsed, headers=resp.headers, text=text)


async def put_trunk(
    api: TestClient, account: Any, doc: Json | None = None, *, token: str | None = None
) -> Reply:
    """PUT a connectivity doc into `account` (as itself, or with another `token`): for
    tests whose subject is the PUT's answer."""
    body = doc if doc is not None else {"name": "trunk"}
    return await call(api, "PUT", account.url(), data=body, token=token or account.token)


async def create_trunk(
    api: TestClient, account: Any, doc: Json | None = None, *, token: str | None = None
) -> Reply:
    """PUT a connectivity doc and expect 201: for tests whose subject comes after it."""
    reply = await put_trunk(api, account, doc, token=token)
    assert reply.status == 201, reply.text
    return reply


def unique_realm(label: str) -> str:
    """A realm no earlier run claimed: realms are unique server-wide, and an Apache
    CouchDB (CONNECTIVITY_TEST_COUCH_URL) keeps its accounts from one run to the next."""
    return f"{label}-{secrets.token_hex(4)}.sip.example"


def assert_kazoo_error(reply: Reply, status: int, message: str) -> Json:
    """The reply is KAZOO's error envelope with this status and message; returns `data`."""
    assert reply.status == status, reply.text
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    assert reply.body["status"] == "error"
    assert reply.body["error"] == str(status)
    assert reply.body["message"] == message
    assert reply.headers["X-Request-ID"] == reply.body["request_id"]
    return reply.body["data"]


PBX_TRUNK: Json = {
    "name": "PBX Trunk",
    "account": {"trunks": 2, "auth_realm": "ignored.example"},
    "servers": [
        {
            "server_name": "PBX 1",
            "auth": {"auth_user": "pbx1", "auth_password": "s3cret-pbx-password"},
            "options": {"inbound_format": "e164"},
            "DIDs": {"+14155550100": {}},
        }
    ],
    "custom_field": 42,
}
