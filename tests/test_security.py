"""The reseller security suite: every token, target, endpoint and verb.

A tree master → reseller A → customers A1, A2, plus reseller B → customer B1 as an
unrelated tree, a deleted account and an unknown one. Each attempt is expected to be
allowed exactly when the token's account is the target, one of its ancestors, or a
superduper admin (§10.3). Writes carry a precondition that cannot hold (If-Match on a
stale revision), so an attempt that passes authorization answers 412 and changes
nothing, while a denied one answers 403: the matrix tests authorization without side
effects. The closing figure is printed at the end of the pytest run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from helpers import assert_kazoo_error, call
from instances import instance

STALE = {"If-Match": '"1-00000000000000000000000000000000"'}
CREATE_GUARD = {"If-Match": "*"}

SECURITY_FIGURES: dict[str, int] = {"attempts": 0, "wrongly_allowed": 0, "wrongly_denied": 0}


@dataclass(frozen=True)
class Attempt:
    method: str
    path: str
    headers: dict[str, str]
    # Status when authorization passes (412 for the guarded writes).
    ok_status: int
    # A valid body, so that validation (which precedes preconditions, §1) passes.
    data: dict[str, str] | None = None


def endpoints(account_id: str, doc_id: str) -> list[Attempt]:
    base = f"/v2/accounts/{account_id}"
    conn = f"{base}/connectivity"
    return [
        Attempt("GET", base, {}, 200),
        Attempt("POST", base, STALE, 412, {"name": "renamed"}),
        Attempt("PATCH", base, STALE, 412),
        Attempt("DELETE", base, STALE, 412),
        Attempt("PUT", base, CREATE_GUARD, 412, {"name": "child"}),
        Attempt("GET", f"{base}/children", {}, 200),
        Attempt("GET", f"{base}/descendants", {}, 200),
        Attempt("GET", f"{base}/api_key", {}, 200),
        Attempt("PUT", f"{base}/api_key", STALE, 412),
        Attempt("GET", conn, {}, 200),
        Attempt("PUT", conn, CREATE_GUARD, 412),
        Attempt("GET", f"{conn}/{doc_id}", {}, 200),
        Attempt("POST", f"{conn}/{doc_id}", STALE, 412),
        Attempt("PATCH", f"{conn}/{doc_id}", STALE, 412),
        Attempt("DELETE", f"{conn}/{doc_id}", STALE, 412),
        Attempt("GET", f"{base}/phone_numbers", {}, 200),
    ]


def may_act(actor, target) -> bool:
    return (
        actor.id == target.id
        or actor.id in target.doc.get("pvt_tree", [])
        or actor.doc.get("pvt_superduper_admin") is True
    )


async def test_every_token_target_endpoint_verb(api, make_account):
    top = await make_account("Master")
    reseller_a = await make_account("Reseller A", parent=top)
    customer_a1 = await make_account("Customer A1", parent=reseller_a)
    customer_a2 = await make_account("Customer A2", parent=reseller_a)
    reseller_b = await make_account("Reseller B", parent=top)
    customer_b1 = await make_account("Customer B1", parent=reseller_b)
    deleted = await make_account("Deleted", parent=reseller_b)
    await call(api, "DELETE", f"/v2/accounts/{deleted.id}", token=top.token)
    live = [top, reseller_a, customer_a1, customer_a2, reseller_b, customer_b1]
    docs = {}
    for account in live:
        created = await call(api, "PUT", account.url(), data={"name": "t"}, token=account.token)
        docs[account.id] = created.data["id"]
    unknown_id = "0" * 32
    wrong: list[str] = []
    attempts = 0
    decisions: Counter[int] = Counter()
    for actor in [*live, deleted]:
        for target in [*live, deleted, None]:
            target_id = target.id if target else unknown_id
            for attempt in endpoints(target_id, docs.get(target_id, "nodoc")):
                reply = await call(
                    api,
                    attempt.method,
                    attempt.path,
                    token=actor.token,
                    headers=attempt.headers,
                    data=attempt.data,
                )
                attempts += 1
                decisions[reply.status] += 1
                if target is None or target is deleted:
                    expected = 404  # the account check comes before authentication (§1)
                elif actor is deleted:
                    expected = 401
                elif not may_act(actor, target):
                    expected = 403
                elif (
                    attempt.method == "DELETE"
                    and target is top
                    and "connectivity" not in attempt.path
                ):
                    expected = 405  # the master account (the top of the tree) is never deleted
                else:
                    expected = attempt.ok_status
                if reply.status != expected:
                    allowed_now = reply.status < 400 or reply.status in (405, 412)
                    kind = (
                        "wrongly_allowed"
                        if allowed_now and expected in (401, 403, 404)
                        else "wrongly_denied"
                    )
                    SECURITY_FIGURES[kind] += 1
                    got = f"{attempt.method} {attempt.path} -> {reply.status}"
                    wrong.append(f"{actor.name}: {got}, want {expected}")
    SECURITY_FIGURES["attempts"] += attempts
    assert wrong == []
    # Counted from the tree, not from `may_act`: of the 6 x 6 live pairs, 14 may act
    # (the master on all 6, each reseller on itself and its customers: 3 + 2, each
    # customer on itself: 3), so 22 pairs are refused on every endpoint.
    per_pair = len(endpoints(top.id, ""))
    assert decisions[403] == 22 * per_pair
    assert decisions[401] == 6 * per_pair  # the deleted account's token, on the 6 live targets
    assert decisions[404] == 7 * 2 * per_pair  # every token on the deleted and unknown ones


async def test_a_token_past_its_exp_is_refused(api, couch_url, make_account):
    """Time is driven, not waited for: an instance whose tokens expire a minute before
    they are issued hands out tokens whose `exp` is already past."""
    account = await make_account("Expiring")
    async with instance(couch_url, token_ttl=-60) as expiring:
        login = await call(expiring, "PUT", "/v2/api_auth", data={"api_key": account.api_key})
        assert login.status == 201, login.text
        token = login.body["auth_token"]
        for client in (expiring, api):
            reply = await call(client, "GET", account.url(), token=token)
            assert assert_kazoo_error(reply, 401, "invalid credentials") == {}
        # The same instance honours a token that is still valid: only `exp` was refused.
        assert (await call(expiring, "GET", account.url(), token=account.token)).status == 200


async def test_token_description_and_revocation_across_instances(api, couch_url, make_account):
    account = await make_account("Revoker")
    described = await call(api, "GET", "/v2/token_auth", token=account.token)
    assert described.status == 200
    assert described.data["account_id"] == account.id
    assert described.data["expires_at"] > described.data["issued_at"]
    login = await call(api, "PUT", "/v2/api_auth", data={"api_key": account.api_key})
    second_token = login.body["auth_token"]
    async with instance(couch_url, revocation_cache_seconds=0) as other:
        assert (await call(other, "GET", account.url(), token=account.token)).status == 200
        revoked = await call(api, "DELETE", "/v2/token_auth", token=account.token)
        assert revoked.status == 200
        for client in (api, other):
            reply = await call(client, "GET", account.url(), token=account.token)
            assert_kazoo_error(reply, 401, "invalid_credentials")
        # Only that token: the account's other token still works.
        assert (await call(api, "GET", account.url(), token=second_token)).status == 200


async def test_failed_logins_are_rate_limited(couch_url, make_account):
    account = await make_account("Limited")
    limits = {"auth_failure_burst": 3, "auth_failure_refill_per_second": 0}
    async with instance(couch_url, **limits) as client:
        for _ in range(10):
            good = await call(client, "PUT", "/v2/api_auth", data={"api_key": account.api_key})
            assert good.status == 201  # successes never consume attempts
        for _ in range(3):
            bad = await call(client, "PUT", "/v2/api_auth", data={"api_key": "f" * 64})
            assert_kazoo_error(bad, 404, "bad_identifier")
        limited = await call(client, "PUT", "/v2/api_auth", data={"api_key": account.api_key})
        assert assert_kazoo_error(limited, 429, "too_many_requests") == {
            "message": "too many requests"
        }
