"""The long-lived objects one running service shares between requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from service import fast_json
from service.auth.authenticate import Authenticator
from service.auth.buckets import RequestBuckets
from service.auth.keys import AuthKeys
from service.auth.rate_limit import FailureLimiter
from service.auth.revocation import RevocationList
from service.auth.token_cache import VerifiedTokens
from service.cache.accounts import AccountCache
from service.cache.reads import ReadCache
from service.config import Settings
from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentNotFound
from service.couchdb.feed_hub import FeedHub
from service.couchdb.grouped_saves import GroupedSaves
from service.events.publisher import EventPublisher, publisher_for
from service.http.client_address import Network, parse_networks
from service.kazoo.ids import account_db
from service.kazoo.validation import SchemaValidator, schema_path
from service.numbers.did_claims import CLAIMS_DB, DidClaims
from service.numbers.did_guard import DidGuard
from service.numbers.did_index import DidIndex
from service.numbers.instances import InstanceRoster
from service.numbers.phone_numbers import PhoneNumbers
from service.numbers.store import NumberStore
from service.stores.accounts import AccountStore
from service.stores.connectivity import ConnectivityStore
from service.stores.identities import IdentitySecrets
from service.stores.logins import Logins
from service.stores.users import UserStore

Json = dict[str, Any]

# How often an idle feed says it is alive; three silent heartbeats mean it is lost.
FEED_HEARTBEAT_SECONDS = 1.0


@dataclass
class Services:
    settings: Settings
    client: CouchClient
    validator: SchemaValidator
    accounts: AccountStore
    connectivity: ConnectivityStore
    # KAZOO's signing keys (system_config/auth, system_auth) and the tokens they sign.
    keys: AuthKeys
    authenticator: Authenticator
    identity_secrets: IdentitySecrets
    account_validator: SchemaValidator
    revocations: RevocationList
    auth_failures: FailureLimiter
    phone_numbers: PhoneNumbers
    # The pipeline's account reads; accounts' own writes invalidate it.
    account_cache: AccountCache
    # Connectivity docs and listings; connectivity writes invalidate it.
    reads: ReadCache
    # Which trunk routes which number, per account written to (numbers/did_index.py).
    did_index: DidIndex
    did_claims: DidClaims | None
    # This instance's entry among those writing to the CouchDB (numbers/instances.py).
    roster: InstanceRoster | None
    # The account databases' changes feeds both of them follow.
    feeds: FeedHub
    # Crossbar's per client/account request buckets, and whose X-Forwarded-For to believe.
    buckets: RequestBuckets
    reverse_proxies: tuple[Network, ...]
    # Users (schemas/users.json) and their logins (PUT /v2/user_auth).
    users: UserStore
    logins: Logins
    user_auth_validator: SchemaValidator
    # KAZOO's change events on AMQP; None without CONNECTIVITY_AMQP_URL.
    events: EventPublisher | None

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
        account_cache = AccountCache(accounts.get, client, ttl=settings.account_cache_seconds)
        accounts.on_change = account_cache.invalidate
        # A write's DID index read comes across its account's doc (numbers/did_index.py).
        did_index = DidIndex(
            client,
            max_dbs=settings.did_index_databases,
            max_numbers=settings.did_index_numbers,
            account_docs=account_cache,
        )
        account_cache.read_under_way = lambda account_id: did_index.read_under_way(
            account_db(account_id)
        )
        did_claims = (
            DidClaims(client, expiry=settings.did_claim_seconds) if settings.claims_dids else None
        )
        # Every claiming instance keeps its entry; only "auto" ones may then work solo.
        roster = (
            InstanceRoster(
                client,
                CLAIMS_DB,
                did_claims.ensure_database,
                beat=settings.instance_beat_seconds,
                claim_expiry=settings.did_claim_seconds,
            )
            if did_claims is not None
            else None
        )
        # One number store shared by the DID checks and the phone_numbers resource.
        numbers = NumberStore(client)
        identity_secrets = IdentitySecrets(client, accounts)
        identity_secrets.on_change = reads.forget
        keys = AuthKeys(
            client,
            ensure_databases=accounts.ensure_system_databases,
            ensure_identity_secret=identity_secrets.ensure,
            token_ttl=settings.token_ttl,
        )
        revocations = RevocationList(client, negative_ttl=settings.revocation_cache_seconds)
        authenticator = Authenticator(
            keys,
            VerifiedTokens(keys),
            revocations,
            load_account=account_cache.get,
            load_doc=_doc_reader(client, reads),
        )
        strict = settings.strict_validation
        users = UserStore(client, SchemaValidator.from_file(schema_path("users"), strict=strict))
        connectivity = ConnectivityStore(
            client,
            validator,
            dids=DidGuard(
                client,
                AccountStore(client),
                numbers,
                index=did_index,
                claims=did_claims,
                roster=roster if settings.claims_only_with_others else None,
            ),
            reads=reads,
            max_dids=settings.did_bound,
            saves=GroupedSaves(client),
        )
        events = publisher_for(settings)
        if events is not None:
            # Every store writing documents KAZOO caches announces them, as kz_datamgr
            # does for KAZOO's own writes (README, Beside KAZOO).
            for store in (connectivity, accounts, numbers, keys, identity_secrets):
                store.on_written = events.doc_changed
            users.on_change = _user_events(events)
        return cls(
            settings=settings,
            client=client,
            validator=validator,
            accounts=accounts,
            connectivity=connectivity,
            keys=keys,
            authenticator=authenticator,
            identity_secrets=identity_secrets,
            account_validator=SchemaValidator.from_file(
                schema_path("accounts"), strict=settings.strict_validation
            ),
            revocations=revocations,
            auth_failures=FailureLimiter(
                settings.auth_failure_burst, settings.auth_failure_refill_per_second
            ),
            phone_numbers=PhoneNumbers(numbers, AccountStore(client)),
            account_cache=account_cache,
            reads=reads,
            did_index=did_index,
            did_claims=did_claims,
            roster=roster,
            feeds=hub,
            buckets=RequestBuckets(
                settings.rate_limit_tokens, settings.rate_limit_fill_rate, settings.rate_limit_cost
            ),
            reverse_proxies=parse_networks(settings.reverse_proxies),
            users=users,
            logins=Logins(AccountStore(client), users, numbers.owner_of),
            user_auth_validator=SchemaValidator.from_file(
                schema_path("user_auth"), strict=settings.strict_validation
            ),
            events=events,
        )


def _doc_reader(client: CouchClient, reads: ReadCache):  # type: ignore[no-untyped-def]
    """A doc of an account's database (a user, for its token's identity), through the
    read cache: a user's every request would otherwise cost a CouchDB read."""

    async def read(account_id: str, doc_id: str) -> Json | None:
        db = account_db(account_id)
        try:
            raw = await reads.doc(db, doc_id, lambda: client.get_doc_bytes(db, doc_id))
        except (DocumentNotFound, DatabaseNotFound):
            return None
        doc = fast_json.loads(raw)
        return doc if isinstance(doc, dict) else None

    return read


SERVICES = web.AppKey("services", Services)


def _user_events(events: EventPublisher) -> Callable[[str, Json, bool], None]:
    """The user store's change hook, as a change event of the user's account database."""

    def announce(account_id: str, doc: Json, created: bool) -> None:
        events.doc_changed(account_db(account_id), doc, "created" if created else "edited")

    return announce
