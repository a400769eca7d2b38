"""The Monster UI apps this service offers in `apps_store` (cb_apps_store's records).

KAZOO keeps one `pvt_type: app` doc per installed app in the master account's
database; Monster UI only needs the app that drives this API, the PBX Connector
(`name: "pbxs"`, 2600hz/monster-ui-pbxs). Its record is data here: `source_url` and
`api_url` are left out so the UI loads the app from its own files and talks to its
default API.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

Json = dict[str, Any]

# A fixed id, the same on every instance and after every restart: users keep it in
# their `appList`, so it must never change.
PBXS_APP_ID = hashlib.md5(b"kazoo-connectivity:app:pbxs").hexdigest()

_PBXS_APP: Json = {
    "id": PBXS_APP_ID,
    "name": "pbxs",
    "i18n": {
        "en-US": {
            "label": "PBX Connector",
            "description": "Connect your own PBX (SIP trunking) and route numbers to it.",
        }
    },
    "allowed_users": "all",
    "users": [],
    "masqueradable": True,
    "phase": "gold",
    "tags": ["reseller", "sip_trunking"],
    "author": "2600Hz",
    "version": "4.3",
    "license": "MPL-2.0",
    "price": 0,
}


def catalogue() -> list[Json]:
    """Every app record, as `GET /v2/accounts/{A}/apps_store` lists them (copies)."""
    return [copy.deepcopy(_PBXS_APP)]


def app(app_id: str) -> Json | None:
    return next((record for record in catalogue() if record["id"] == app_id), None)
