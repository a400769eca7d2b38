"""Crossbar's request token buckets (§10.5): per client address and URL account,
429 `too_many_requests` when empty, and `tokens` in every JSON envelope.

The buckets themselves are driven by a clock the test turns; over HTTP, instances of
their own use a bucket that never refills (fill rate 0), so that what they answer does
not depend on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from helpers import assert_kazoo_error, call
from instances import instance_for

from service.auth.buckets import RequestBuckets, bucket_key
from service.config import ConfigError, load_settings
from service.http.client_address import client_address, parse_networks

BURST = 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the buckets -----------------------------------------------------------------------


def test_a_bucket_starts_full_and_answers_no_once_empty():
    buckets = RequestBuckets(100, 10, 1, clock=Clock())
    assert buckets.remaining("a") == 100
    assert all(buckets.take("a") for _ in range(100))
    assert buckets.remaining("a") == 0
    assert not buckets.take("a")
    assert buckets.remaining("a") == 0


def test_refill_is_a_block_each_whole_second_capped_at_the_maximum():
    clock = Clock()
    buckets = RequestBuckets(100, 10, 1, clock=clock)
    for _ in range(100):
        buckets.take("a")
    clock.now += 0.999
    assert buckets.remaining("a") == 0, "nothing before the second is over"
    clock.now += 0.001
    assert buckets.remaining("a") == 10
    clock.now += 2.5
    assert buckets.remaining("a") == 30
    assert all(buckets.take("a") for _ in range(30)) and not buckets.take("a")
    clock.now += 0.5  # the bucket's next second boundary, not a second after the take
    assert buckets.remaining("a") == 10
    clock.now += 60
    assert buckets.remaining("a") == 100


def test_a_cost_is_taken_all_or_nothing():
    buckets = RequestBuckets(5, 0, 2, clock=Clock())
    assert buckets.take("a") and buckets.take("a")
    assert not buckets.take("a")
    assert buckets.remaining("a") == 1


def test_cost_zero_turns_the_limits_off():
    buckets = RequestBuckets(1, 0, 0, clock=Clock())
    assert all(buckets.take("a") for _ in range(1_000))
    assert buckets.remaining("a") == 1


def test_buckets_are_separate_and_idle_ones_start_again_full():
    clock = Clock()
    buckets = RequestBuckets(2, 0, 1, clock=clock)
    a, b = bucket_key("10.0.0.1", "acct-a"), bucket_key("10.0.0.1", "acct-b")
    assert buckets.take(a) and buckets.take(a) and not buckets.take(a)
    assert buckets.take(b)
    assert buckets.take(bucket_key("10.0.0.2", "acct-a"))
    clock.now += 599
    assert not buckets.take(a), "a refused request still counts as use"
    clock.now += 600
    assert buckets.remaining(a) == 2 and buckets.take(a)


def test_bucket_memory_is_bounded():
    clock = Clock()
    buckets = RequestBuckets(2, 0, 1, clock=clock, max_buckets=100)
    for n in range(1_000):
        buckets.take(f"10.0.{n // 256}.{n % 256}/acct")
    assert len(buckets) <= 100


def test_bucket_names_are_kazoos():
    assert bucket_key("192.0.2.1", "abc") == "192.0.2.1/abc"
    assert bucket_key("192.0.2.1", None) == "192.0.2.1/no_account"
    assert bucket_key(None, None) == "no_ip/no_account"


# -- the client address ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("198.51.100.7", "203.0.113.5", "198.51.100.7"),  # peer not a trusted proxy
        ("127.0.0.1", "198.51.100.1, 203.0.113.5", "203.0.113.5"),  # the proxy's own entry
        ("127.0.0.1", "203.0.113.5, 10.1.2.3", "203.0.113.5"),  # a chain of trusted proxies
        ("127.0.0.1", "10.1.2.3", "10.1.2.3"),  # only proxies: the farthest one
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.5, garbage", "127.0.0.1"),
        ("127.0.0.1", " , ", "127.0.0.1"),
        ("127.0.0.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address_trusts_x_forwarded_for_only_from_proxies(peer, forwarded, expected):
    proxies = parse_networks(["127.0.0.1", "10.0.0.0/8"])
    assert client_address(peer, forwarded, proxies) == expected


def test_rate_limit_settings():
    settings = load_settings({})
    assert (settings.rate_limit_tokens, settings.rate_limit_fill_rate) == (100, 10)
    assert settings.rate_limit_cost == 1 and settings.reverse_proxies == ("127.0.0.1",)
    env = {
        "CONNECTIVITY_RATE_LIMIT_TOKENS": "7",
        "CONNECTIVITY_RATE_LIMIT_FILL_RATE": "0",
        "CONNECTIVITY_RATE_LIMIT_COST": "0",
        "CONNECTIVITY_REVERSE_PROXIES": "10.0.0.0/8, ::1",
    }
    settings = load_settings(env)
    assert (settings.rate_limit_tokens, settings.rate_limit_fill_rate) == (7, 0)
    assert settings.rate_limit_cost == 0 and settings.reverse_proxies == ("10.0.0.0/8", "::1")
    assert load_settings({"CONNECTIVITY_REVERSE_PROXIES": "none"}).reverse_proxies == ()
    for name, bad in (("REVERSE_PROXIES", "10.0.0.300"), ("RATE_LIMIT_COST", "-1")):
        with pytest.raises(ConfigError, match=name):
            load_settings({f"CONNECTIVITY_{name}": bad})


# -- over HTTP -------------------------------------------------------------------------


@pytest_asyncio.fixture
async def limited(couch_url) -> AsyncIterator[TestClient]:
    """An instance with small buckets that never refill; 127.0.0.1 is a trusted proxy."""
    client = await instance_for(
        couch_url, rate_limit_tokens=BURST, rate_limit_fill_rate=0, rate_limit_cost=1
    )
    yield client
    await client.close()


@pytest_asyncio.fixture
async def untrusting(couch_url) -> AsyncIterator[TestClient]:
    """The same, trusting X-Forwarded-For from another proxy only."""
    client = await instance_for(
        couch_url,
        rate_limit_tokens=BURST,
        rate_limit_fill_rate=0,
        rate_limit_cost=1,
        reverse_proxies=("192.0.2.10",),
    )
    yield client
    await client.close()


async def test_burst_then_429_with_tokens_in_every_envelope(limited, make_account):
    account = await make_account("Bucket")
    remaining = []
    for _ in range(BURST):
        reply = await call(limited, "GET", account.url(), token=account.token)
        assert reply.status == 200
        remaining.append(reply.body["tokens"])
    assert remaining == [{"consumed": 1, "remaining": n} for n in (2, 1, 0)]
    refused = await call(limited, "GET", account.url(), token=account.token)
    assert assert_kazoo_error(refused, 429, "too_many_requests") == {"message": "too many requests"}
    assert refused.body["tokens"] == {"consumed": 1, "remaining": 0}
    # Taken before the credentials are looked at: 429 wins over 401 (§10.5).
    anonymous = await call(limited, "GET", account.url(), token="garbage")
    assert_kazoo_error(anonymous, 429, "too_many_requests")
    # A document and a write of that account are refused too: the bucket is per account.
    write = await call(limited, "PUT", account.url(), data={}, token=account.token)
    assert_kazoo_error(write, 429, "too_many_requests")


async def test_buckets_are_per_url_account(limited, make_account):
    first, second = await make_account("Bucket one"), await make_account("Bucket two")
    for _ in range(BURST):
        assert (await call(limited, "GET", first.url(), token=first.token)).status == 200
    assert (await call(limited, "GET", first.url(), token=first.token)).status == 429
    other = await call(limited, "GET", second.url(), token=second.token)
    assert other.status == 200
    assert other.body["tokens"] == {"consumed": 1, "remaining": BURST - 1}


async def test_buckets_are_per_client_address_behind_a_trusted_proxy(limited, make_account):
    account = await make_account("Bucket proxied")
    behind = {"X-Forwarded-For": "203.0.113.5"}
    for _ in range(BURST):
        reply = await call(limited, "GET", account.url(), token=account.token, headers=behind)
        assert reply.status == 200
    assert (
        await call(limited, "GET", account.url(), token=account.token, headers=behind)
    ).status == 429
    # A client behind the proxy cannot pick a fresh bucket by sending its own header:
    # the proxy's entry, on the right, is the one believed.
    spoofed = {"X-Forwarded-For": "198.51.100.99, 203.0.113.5"}
    reply = await call(limited, "GET", account.url(), token=account.token, headers=spoofed)
    assert reply.status == 429
    # Another client behind the proxy, and the proxy itself, have buckets of their own.
    neighbour = {"X-Forwarded-For": "203.0.113.6"}
    reply = await call(limited, "GET", account.url(), token=account.token, headers=neighbour)
    assert reply.status == 200
    assert (await call(limited, "GET", account.url(), token=account.token)).status == 200


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(untrusting, make_account):
    account = await make_account("Bucket untrusted")
    for n in range(BURST + 1):
        headers = {"X-Forwarded-For": f"203.0.113.{n + 1}"}
        reply = await call(untrusting, "GET", account.url(), token=account.token, headers=headers)
        assert reply.status == (200 if n < BURST else 429), n


async def test_tokens_on_error_answers_and_heartbeats_exempt(limited, make_account):
    account = await make_account("Bucket errors")
    # Answered before any token is taken (unknown path, bad account): the bucket's
    # current content, `consumed` the configured cost, as KAZOO's envelope says.
    unknown = await call(limited, "GET", "/v2/nowhere", token=account.token)
    assert unknown.status == 404 and unknown.body["tokens"] == {"consumed": 1, "remaining": 3}
    bad = await call(limited, "GET", "/v2/accounts/short/connectivity", token=account.token)
    assert bad.status == 404 and bad.body["tokens"]["remaining"] == BURST
    missing = await call(limited, "GET", account.url("/no-such-doc"), token=account.token)
    assert_kazoo_error(missing, 404, "bad_identifier")
    assert missing.body["tokens"] == {"consumed": 1, "remaining": 2}
    denied = await call(limited, "GET", account.url(), token="garbage")
    assert_kazoo_error(denied, 401, "invalid_credentials")
    assert denied.body["tokens"] == {"consumed": 1, "remaining": 1}
    # Requests without a URL account share the address's `no_account` bucket.
    for _ in range(BURST):
        await call(limited, "GET", "/v2/schemas", token=account.token)
    schemas = await call(limited, "GET", "/v2/schemas", token=account.token)
    assert_kazoo_error(schemas, 429, "too_many_requests")
    for path in ("/__heartbeat__", "/__lbheartbeat__"):
        for _ in range(BURST + 2):
            assert (await call(limited, "GET", path)).status == 200
    # CORS preflights take nothing either.
    preflight = await call(
        limited,
        "OPTIONS",
        account.url(),
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 200


async def test_the_suites_shared_instance_has_limits_off(api, master):
    """Every instance the suite starts has cost 0 (tests/conftest.py): far more than a
    bucket's worth of requests from one address to one account, never a 429."""
    for _ in range(150):
        reply = await call(api, "GET", master.url(), token=master.token)
        assert reply.status == 200
    assert reply.body["tokens"] == {"consumed": 0, "remaining": 100}
