"""What a successful login answers about the caller (crossbar_util:response_auth/3).

Shared by every endpoint that hands out or describes a token: `api_auth`,
`auth/tokeninfo` (and a user login). Monster UI reads `account_id`, `owner_id`,
`is_reseller`, `reseller_id` and `language` from it (MUI §1).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from service.auth.keys import AuthKeys
from service.auth.rate_limit import FailureLimiter
from service.auth.tokens import issue_token
from service.http.context import AuthInfo, RequestContext
from service.kazoo import errors

Json = dict[str, Any]


def auth_answer(account: Json, owner_id: str | None = None) -> Json:
    tree = account.get("pvt_tree") or []
    answer: Json = {"account_id": account["_id"]}
    if owner_id is not None:
        answer["owner_id"] = owner_id
    answer.update(
        {
            "account_name": account.get("name"),
            "apps": [],
            "is_reseller": bool(account.get("pvt_reseller") or account.get("pvt_superduper_admin")),
            "language": account.get("language", "en-us"),
            "reseller_id": tree[-1] if tree else account["_id"],
        }
    )
    return answer


async def sign_in(
    ctx: RequestContext,
    keys: AuthKeys,
    account: Json,
    *,
    user: Json | None = None,
    method: str = "cb_api_auth",
) -> None:
    """Issues the caller's token and makes it this request's, so that the answer's
    envelope carries it (`auth_token`), as after any authenticated request."""
    issued = await issue_token(keys, account, user=user, method=method)
    ctx.auth_token = issued.token
    ctx.auth = AuthInfo(
        account_id=account["_id"],
        account=account,
        token=issued.token,
        claims=issued.claims,
        owner_id=user["_id"] if user is not None else None,
    )


@contextmanager
def login_attempt(ctx: RequestContext, limiter: FailureLimiter) -> Iterator[None]:
    """A login under the failed-login limit (§10.5): 429 once the client has failed too
    often; any KAZOO error leaving the block (a refused login) counts as a failure."""
    client = ctx.client_ip or "unknown"
    if not limiter.allows(client):
        raise errors.too_many_requests()
    try:
        yield
    except errors.KazooError:
        limiter.record_failure(client)
        raise
