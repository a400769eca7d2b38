"""The long-lived objects one running service shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .accounts import AccountStore
from .auth import SigningKey
from .config import Settings
from .connectivity_store import ConnectivityStore
from .couchdb import CouchClient
from .validation import SchemaValidator


@dataclass
class Services:
    settings: Settings
    client: CouchClient
    validator: SchemaValidator
    accounts: AccountStore
    connectivity: ConnectivityStore
    signing_key: SigningKey

    @classmethod
    def build(cls, settings: Settings, client: CouchClient, validator: SchemaValidator) -> Services:
        return cls(
            settings=settings,
            client=client,
            validator=validator,
            accounts=AccountStore(client),
            connectivity=ConnectivityStore(client, validator),
            signing_key=SigningKey(client),
        )


SERVICES = web.AppKey("services", Services)
