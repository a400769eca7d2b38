"""The long-lived objects one running service shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from service.auth.rate_limit import FailureLimiter
from service.auth.revocation import RevocationList
from service.auth.token_cache import VerifiedTokens
from service.auth.tokens import SigningKey
from service.cache.accounts import AccountCache
from service.cache.reads import ReadCache
from service.config import Settings
from service.couchdb.client import CouchClient
from service.couchdb.feed_hub import FeedHub
from service.kazoo.validation import SchemaValidator, schema_path
from service.numbers.did_guard import DidGuard
from service.numbers.did_index import DidIndex
from service.numbers.phone_numbers import PhoneNumbers
from service.numbers.store import NumberStore
from service.stores.accounts import AccountStore
from service.stores.connectivity import ConnectivityStore

# How often an idle feed says it is alive; three silent heartbeats mean it is lost.
FEED_HEARTBEAT_SECONDS = 1.0


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
    phone_numbers: PhoneNumbers
    # The pipeline's account reads; accounts' own writes invalidate it.
    account_cache: AccountCache
    tokens: VerifiedTokens
    # Connectivity docs and listings; connectivity writes invalidate it.
    reads: ReadCache
    # Which trunk routes which number, per account written to (numbers/did_index.py).
    did_index: DidIndex
    # The account databases' changes feeds both of them follow.
    feeds: FeedHub

    @classmethod
    def build(
        cls,
        settings: Settings,
        client: CouchClient,
        validator: SchemaValidator,
        feeds: CouchClient,
    ) -> Services:
        """`feeds`: a client of its own for the caches' changes feeds."""
        accounts = AccountStore(client)
        hub = FeedHub(feeds, heartbeat=FEED_HEARTBEAT_SECONDS)
        reads = ReadCache(
            hub,
            max_bytes=settings.read_cache_mb * 1024 * 1024,
            max_dbs=settings.read_cache_databases,
        )
        did_index = DidIndex(hub, client, max_dbs=settings.did_index_databases)
        account_cache = AccountCache(accounts.get, client, ttl=settings.account_cache_seconds)
        accounts.on_change = account_cache.invalidate
        # One number store shared by the DID checks and the phone_numbers resource.
        numbers = NumberStore(client)
        return cls(
            settings=settings,
            client=client,
            validator=validator,
            accounts=accounts,
            connectivity=ConnectivityStore(
                client,
                validator,
                dids=DidGuard(client, AccountStore(client), numbers, index=did_index),
                reads=reads,
            ),
            signing_key=SigningKey(client),
            account_validator=SchemaValidator.from_file(
                schema_path("accounts"), strict=settings.strict_validation
            ),
            revocations=RevocationList(client, negative_ttl=settings.revocation_cache_seconds),
            auth_failures=FailureLimiter(
                settings.auth_failure_burst, settings.auth_failure_refill_per_second
            ),
            phone_numbers=PhoneNumbers(numbers, AccountStore(client)),
            account_cache=account_cache,
            tokens=VerifiedTokens(),
            reads=reads,
            did_index=did_index,
            feeds=hub,
        )


SERVICES = web.AppKey("services", Services)
