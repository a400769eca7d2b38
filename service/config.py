"""Settings, read once from `CONNECTIVITY_*` environment variables into a frozen object."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "CONNECTIVITY_"


class ConfigError(ValueError):
    """A setting has a value the service cannot run with; the message says which."""


def default_amqp_node() -> str:
    return f"connectivity@{socket.gethostname()}"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # None: start the embedded CouchDB-compatible server as a child process.
    couch_url: str | None = None
    data_dir: Path = Path(".data")
    couch_timeout: float = 10.0
    token_ttl: int = 3600
    page_size: int = 50
    max_upload_size: int = 8_000_000
    # KAZOO's `crossbar.schema_strict_validation` (default false: lenient coercion, §6.3).
    strict_validation: bool = False
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    # Failed api_auth attempts one client may make before 429, and how fast it earns
    # new attempts back (§10.5). Successful logins never consume attempts.
    auth_failure_burst: int = 10
    auth_failure_refill_per_second: float = 0.1
    # How long a "token not revoked" answer is trusted before CouchDB is asked again.
    revocation_cache_seconds: float = 2.0
    # Longest an account doc is served from memory; changes normally arrive sooner
    # through the `accounts` changes feed (cache/accounts.py). 0 turns the cache off.
    account_cache_seconds: float = 5.0
    # Connectivity docs and listing pages served from memory (cache/reads.py): at most
    # this many MB of them, from at most this many databases (one changes feed each).
    # 0 MB turns the cache off.
    read_cache_mb: int = 32
    read_cache_databases: int = 64
    # Crossbar's request token buckets, one per client address and URL account (§10.5):
    # `rate_limit_tokens` to start with and at most, `rate_limit_fill_rate` more each
    # second, `rate_limit_cost` per request; a cost of 0 turns the limits off.
    rate_limit_tokens: int = 100
    rate_limit_fill_rate: int = 10
    rate_limit_cost: int = 1
    # Peers whose X-Forwarded-For names the client (KAZOO's crossbar.reverse_proxies).
    reverse_proxies: tuple[str, ...] = ("127.0.0.1",)
    # KAZOO's RabbitMQ (README, Beside KAZOO). None: no change events are published.
    amqp_url: str | None = None
    # Events waiting for the broker; past this many the oldest is dropped (and logged).
    amqp_queue_size: int = 10_000
    # The `Node` our events carry: KAZOO's cache listeners ignore events of their own node.
    amqp_node: str = field(default_factory=default_amqp_node)
    # Longest wait between two reconnection attempts (the wait doubles from 0.1 s).
    amqp_reconnect_max_seconds: float = 5.0
    # A publish the broker has not confirmed by then counts as a lost connection.
    amqp_publish_timeout: float = 5.0
    # Accounts whose DIDs are checked from memory at once (numbers/did_index.py); 0:
    # every duplicate-DID check asks the `lookup_did` view.
    did_index_databases: int = 10_000
    # Numbers the DID index keeps in memory at most (~90 bytes each), all accounts
    # together; the least recently written accounts go first.
    did_index_numbers: int = 400_000
    # Claims in CouchDB of the numbers a write adds, so that several instances sharing
    # one CouchDB cannot both add a number (numbers/did_claims.py). None ("auto"): with
    # CONNECTIVITY_COUCH_URL, claims while another instance writes to it
    # (numbers/instances.py); off for the embedded server (no other instance reaches
    # it). True: always. False: never, for an instance that is its CouchDB's only writer.
    did_claims: bool | None = None
    # How long a claim left by an instance that died mid-write blocks its number.
    did_claim_seconds: float = 30.0
    # How often an instance rewrites its entry in the instance roster.
    instance_beat_seconds: float = 2.0
    # DIDs one connectivity doc may route (§7.5); None: the server's default below,
    # 0: no bound of our own (the upload limit and CouchDB's max_document_size remain).
    max_dids: int | None = None

    @property
    def uses_embedded_couch(self) -> bool:
        return self.couch_url is None

    @property
    def couch_view_timeout(self) -> float:
        """Seconds a view read may take: it waits for CouchDB to index the writes before
        it, which for one big trunk takes longer than any other request (§7.5)."""
        return max(self.couch_timeout, VIEW_INDEX_SECONDS)

    @property
    def claims_dids(self) -> bool:
        """Whether this instance claims numbers in CouchDB, at least while others write."""
        return (not self.uses_embedded_couch) if self.did_claims is None else self.did_claims

    @property
    def claims_only_with_others(self) -> bool:
        """Whether it claims only while the instance roster shows another writer."""
        return self.claims_dids and self.did_claims is None

    @property
    def did_bound(self) -> int | None:
        """The DIDs a connectivity doc may route, or None for no bound (§7.5)."""
        value = self.max_dids
        if value is None:
            value = EMBEDDED_MAX_DIDS if self.uses_embedded_couch else APACHE_MAX_DIDS
        return value or None


# The default bound on DIDs per connectivity doc (§7.5; KAZOO has none). Every DID is a
# `trunkstore/lookup_did` row, and the embedded server indexes a doc's rows in one go,
# answering nothing else meanwhile: measured on the reference machine (2 cores, quiet),
# 1.6 s for 10,000 DIDs and 28 s for 50,000 (docs/embedded-couchdb.md). Apache CouchDB
# indexes in its own processes and keeps answering, so there the bound only guards memory.
EMBEDDED_MAX_DIDS = 10_000
APACHE_MAX_DIDS = 100_000
# How long a view read may wait for its index. Apache CouchDB 3.4 took up to 56 s on the
# reference machine to index a new revision of a 50,000-DID trunk (README, Big trunks);
# its own view timeout (60 s) then answers first.
VIEW_INDEX_SECONDS = 120.0


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{PREFIX}{name} must be between {low} and {high}, got {value}")
    return value


def _optional_int(env: Mapping[str, str], name: str, *, low: int, high: int) -> int | None:
    """An integer setting whose absence means "the default for this server"."""
    raw = env.get(PREFIX + name)
    if raw is None or raw.strip() == "":
        return None
    return _int(env, name, 0, low=low, high=high)


def _float(env: Mapping[str, str], name: str, default: float, *, low: float) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from None
    if not value >= low:
        raise ConfigError(f"{PREFIX}{name} must be at least {low}, got {raw}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{PREFIX}{name} must be true or false, got {raw!r}")


def _did_claims(env: Mapping[str, str]) -> bool | None:
    raw = env.get(PREFIX + "DID_CLAIMS", "").strip().lower()
    return None if raw in ("", "auto") else _bool(env, "DID_CLAIMS", False)


def _couch_url(env: Mapping[str, str]) -> str | None:
    raw = env.get(PREFIX + "COUCH_URL")
    if raw is None or raw.strip() == "":
        return None
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The message must not echo the URL: it usually carries the admin password.
        raise ConfigError(
            f"{PREFIX}COUCH_URL must be an http(s) URL such as http://admin:secret@127.0.0.1:5984"
        )
    return raw.strip()


def _amqp_url(env: Mapping[str, str]) -> str | None:
    raw = env.get(PREFIX + "AMQP_URL")
    if raw is None or raw.strip() == "":
        return None
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        # Not echoed: the URL carries the broker's password.
        raise ConfigError(
            f"{PREFIX}AMQP_URL must be an amqp(s) URL such as amqp://guest:guest@127.0.0.1:5672/"
        )
    return raw.strip()


def _amqp_node(env: Mapping[str, str]) -> str:
    raw = env.get(PREFIX + "AMQP_NODE", "").strip()
    if not raw:
        return default_amqp_node()
    if any(ch.isspace() for ch in raw):
        raise ConfigError(f"{PREFIX}AMQP_NODE must be a node name such as name@host, got {raw!r}")
    return raw


def _host(env: Mapping[str, str]) -> str:
    raw = env.get(PREFIX + "HOST", "127.0.0.1").strip()
    if not raw or any(ch.isspace() for ch in raw):
        raise ConfigError(f"{PREFIX}HOST must be a host name or address, got {raw!r}")
    return raw


def _log_level(env: Mapping[str, str]) -> str:
    raw = env.get(PREFIX + "LOG_LEVEL", "INFO").strip().upper()
    if raw not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return raw


def _reverse_proxies(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get(PREFIX + "REVERSE_PROXIES", "").strip()
    if not raw:
        return Settings.reverse_proxies
    if raw.lower() == "none":
        return ()
    entries = tuple(entry.strip() for entry in raw.split(",") if entry.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"{PREFIX}REVERSE_PROXIES must list IP addresses or CIDR blocks, got {entry!r}"
            ) from None
    return entries


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parses the environment; raises ConfigError naming the first bad variable."""
    env = os.environ if env is None else env
    data_dir = env.get(PREFIX + "DATA_DIR", "").strip() or ".data"
    return Settings(
        host=_host(env),
        port=_int(env, "PORT", 8000, low=0, high=65535),
        couch_url=_couch_url(env),
        data_dir=Path(data_dir),
        couch_timeout=_float(env, "COUCH_TIMEOUT", 10.0, low=0.1),
        token_ttl=_int(env, "TOKEN_TTL", 3600, low=1, high=366 * 24 * 3600),
        page_size=_int(env, "PAGE_SIZE", 50, low=1, high=100_000),
        max_upload_size=_int(env, "MAX_UPLOAD_SIZE", 8_000_000, low=1024, high=1 << 30),
        strict_validation=_bool(env, "STRICT_VALIDATION", False),
        shutdown_grace=_float(env, "SHUTDOWN_GRACE", 10.0, low=0.0),
        log_level=_log_level(env),
        auth_failure_burst=_int(env, "AUTH_FAILURE_BURST", 10, low=1, high=1_000_000),
        auth_failure_refill_per_second=_float(env, "AUTH_FAILURE_REFILL", 0.1, low=0.0),
        revocation_cache_seconds=_float(env, "REVOCATION_CACHE_SECONDS", 2.0, low=0.0),
        account_cache_seconds=_float(env, "ACCOUNT_CACHE_SECONDS", 5.0, low=0.0),
        read_cache_mb=_int(env, "READ_CACHE_MB", 32, low=0, high=1 << 20),
        read_cache_databases=_int(env, "READ_CACHE_DATABASES", 64, low=1, high=10_000),
        rate_limit_tokens=_int(env, "RATE_LIMIT_TOKENS", 100, low=1, high=1 << 31),
        rate_limit_fill_rate=_int(env, "RATE_LIMIT_FILL_RATE", 10, low=0, high=1 << 31),
        rate_limit_cost=_int(env, "RATE_LIMIT_COST", 1, low=0, high=1 << 31),
        reverse_proxies=_reverse_proxies(env),
        amqp_url=_amqp_url(env),
        amqp_queue_size=_int(env, "AMQP_QUEUE_SIZE", 10_000, low=1, high=10_000_000),
        amqp_node=_amqp_node(env),
        amqp_reconnect_max_seconds=_float(env, "AMQP_RECONNECT_MAX_SECONDS", 5.0, low=0.1),
        amqp_publish_timeout=_float(env, "AMQP_PUBLISH_TIMEOUT", 5.0, low=0.1),
        did_index_databases=_int(env, "DID_INDEX_DATABASES", 10_000, low=0, high=1_000_000),
        did_index_numbers=_int(env, "DID_INDEX_NUMBERS", 400_000, low=0, high=100_000_000),
        did_claims=_did_claims(env),
        did_claim_seconds=_float(env, "DID_CLAIM_SECONDS", 30.0, low=0.1),
        instance_beat_seconds=_float(env, "INSTANCE_BEAT_SECONDS", 2.0, low=0.05),
        max_dids=_optional_int(env, "MAX_DIDS", low=0, high=10_000_000),
    )
