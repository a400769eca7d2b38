"""Who a token speaks for, decided in KAZOO's order (§1, §10.2).

cb_token_auth → crossbar_auth:validate_auth_token/2 → kz_auth:validate_token/2, then
cb_token_auth's own steps:

1. the header's algorithm, the signature under the key of its `kid`, and `exp`
   (auth/token_cache.py);
2. the identity signature against the identity's current `pvt_signature_secret`;
3. `X-Auth-Account-Id`, when sent, must name the token's account;
4. an account whose trial has expired is refused (`account/expired`);
5. the `as` masquerade claim moves the caller to a descendant account (and user);
   anything else it names fails authentication.

Ours on top, stricter than KAZOO: a deleted or disabled account's tokens, and a deleted
user's, stop working at once; `DELETE /v2/token_auth` revokes one token (checked with
step 2, before the header, so that a revoked token says nothing more). The account-tree
rule (authorization) comes after, in the pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from service.auth.keys import AuthKeys
from service.auth.revocation import RevocationList
from service.auth.token_cache import VerifiedTokens
from service.auth.tokens import TokenInvalid, identity_matches, token_id
from service.kazoo import auth_docs
from service.kazoo.ids import is_raw_account_id, now_gregorian

Json = dict[str, Any]
AccountLoader = Callable[[str], Awaitable[Json | None]]
# (account id, doc id) → that doc of the account's database, or None.
DocLoader = Callable[[str, str], Awaitable[Json | None]]


class AccountExpired(Exception):
    """kzd_accounts:is_expired/1: the account's trial ended (Gregorian seconds)."""

    def __init__(self, expired_at: int) -> None:
        super().__init__("account expired")
        self.expired_at = expired_at


@dataclass(frozen=True)
class Authenticated:
    # The account (and user) the caller acts as: the `as` target when masquerading.
    account_id: str
    account: Json
    owner_id: str | None
    claims: Json
    token_id: str


class Authenticator:
    def __init__(
        self,
        keys: AuthKeys,
        verified: VerifiedTokens,
        revocations: RevocationList,
        *,
        load_account: AccountLoader,
        load_doc: DocLoader,
    ) -> None:
        self._keys = keys
        self._verified = verified
        self._revocations = revocations
        self._load_account = load_account
        self._load_doc = load_doc

    async def claims(self, token: str) -> Json:
        """Step 1 alone (Crossbar's early authentication)."""
        return await self._verified.claims(token)

    async def validate(self, token: str, *, known: Json | None = None) -> Authenticated:
        """Steps 1 and 2, our liveness and revocation rules: what the token itself says
        (crossbar_auth:validate_auth_token/2, as `auth/tokeninfo` uses it)."""
        claims = await self._verified.claims(token)
        account_id: str = claims["account_id"]
        account = await self._account(account_id, known)
        if account is None or not _live_account(account):
            raise TokenInvalid()
        if not await self._identity_holds(claims, account):
            raise TokenInvalid()
        identifier = token_id(token)
        if await self._revocations.is_revoked(identifier):
            raise TokenInvalid()
        return Authenticated(account_id, account, claims.get("owner_id"), claims, identifier)

    async def authenticate(
        self, token: str, *, header_account_id: str | None, known: Json | None = None
    ) -> Authenticated:
        """Every step, for a request carrying the token. TokenInvalid / TokenExpired
        (401) or AccountExpired; `known` is an account doc the caller already holds
        (the URL's), used when the token names it."""
        auth = await self.validate(token, known=known)
        if header_account_id is not None and header_account_id != auth.account_id:
            raise TokenInvalid()
        _check_trial(auth.account)
        masquerade = _as_claim(auth.claims)
        if masquerade is None:
            return auth
        account_id, owner_id = masquerade
        account = await self._descendant(account_id, of=auth.account_id)
        return Authenticated(account_id, account, owner_id, auth.claims, auth.token_id)

    async def _account(self, account_id: str, known: Json | None) -> Json | None:
        if known is not None and known.get("_id") == account_id:
            return known
        return await self._load_account(account_id)

    async def _identity_holds(self, claims: Json, account: Json) -> bool:
        if claims.get("identity_sig") is None:
            return True  # KAZOO's rule: nothing to compare
        identity = auth_docs.identity_of(claims)
        if identity is None:
            return False
        doc_id = identity[0]
        doc = account if doc_id == account["_id"] else await self._load_doc(account["_id"], doc_id)
        if doc is None or doc.get("pvt_deleted") is True:
            return False
        return identity_matches(claims, doc, await self._keys.user_signature_secret())

    async def _descendant(self, account_id: str, *, of: str) -> Json:
        """cb_token_auth:check_descendants/5: only an account below the token's."""
        account = await self._load_account(account_id)
        if account is None or not _live_account(account):
            raise TokenInvalid()
        if of not in (account.get("pvt_tree") or []):
            raise TokenInvalid()
        return account


def _live_account(account: Json) -> bool:
    return (
        account.get("pvt_type") == "account"
        and not account.get("pvt_deleted")
        and account.get("pvt_enabled") is not False
    )


def _check_trial(account: Json) -> None:
    expires = account.get("pvt_trial_expires")
    if isinstance(expires, int) and not isinstance(expires, bool) and now_gregorian() > expires:
        raise AccountExpired(expires)


def _as_claim(claims: Json) -> tuple[str, str] | None:
    """`as.account_id` and `as.owner_id`, both set; otherwise the claim is ignored."""
    masquerade = claims.get("as")
    if not isinstance(masquerade, dict):
        return None
    account_id, owner_id = masquerade.get("account_id"), masquerade.get("owner_id")
    if not (account_id and owner_id):
        return None
    if not (isinstance(account_id, str) and isinstance(owner_id, str)):
        raise TokenInvalid()
    if not is_raw_account_id(account_id) or account_id.startswith("_"):
        raise TokenInvalid()
    return account_id, owner_id
