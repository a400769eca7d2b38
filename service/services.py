"""The long-lived objects one running service shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .accounts import AccountStore
from .auth import SigningKey
from .config import Settings
from .connectivity_store import ConnectivityStore
from .couchdb import CouchClient
from .rate_limit import FailureLimiter
from .revocation import RevocationList
from .validation import SchemaValidator, schema_path


@dataclass
class Services:
    settings: Settings
    client: CouchClient
    validator: SchemaValidator
    accounts: AccountStore
    connectivity: ConnectivityStore
    signing_key: SigningKey
    account_validator: SchemaValidator
    revocations: RevocationList
    auth_failures: FailureLimiter

    @classmethod
    def build(cls, settings: Settings, client: CouchClient, validator: SchemaValidator) -> Services:
        return cls(
            settings=settings,
            client=client,
            validator=validator,
            accounts=AccountStore(client),
            connectivity=ConnectivityStore(client, validator),
            signing_key=SigningKey(client),
            account_validator=SchemaValidator.from_file(
                schema_path("accounts"), strict=settings.strict_validation
            ),
            revocations=RevocationList(client, negative_ttl=settings.revocation_cache_seconds),
            auth_failures=FailureLimiter(
                settings.auth_failure_burst, settings.auth_failure_refill_per_second
            ),
        )


SERVICES = web.AppKey("services", Services)
