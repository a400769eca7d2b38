"""Tokens whose signature this process has already verified, with their claims.

A client sends the same token with every request, and checking an RS256 signature costs
tens of microseconds (README, Performance), twice per request (the early expiry check and
authentication, §1). Only the signature check is remembered, together with the key it
was checked with: when that kid's key changes (a key reset elsewhere), the entry no longer
counts. The rest is decided on every use: expiry here, and in auth/authenticate.py the
identity signature, revocation, the account and authorization. Failures are never
remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from service.auth.keys import AuthKeys
from service.auth.tokens import TokenExpired, TokenInvalid, is_expired, key_id, verify

Json = dict[str, Any]


class VerifiedTokens:
    def __init__(self, keys: AuthKeys, max_entries: int = 10_000) -> None:
        self._keys = keys
        self._max_entries = max_entries
        # token -> (its kid, the key that verified it, its claims)
        self._entries: OrderedDict[str, tuple[str, rsa.RSAPublicKey, Json]] = OrderedDict()

    async def claims(self, token: str) -> Json:
        """The claims of a correctly signed, unexpired token; TokenExpired / TokenInvalid."""
        entry = self._entries.get(token)
        if entry is not None:
            kid, verified_with, claims = entry
            if await self._keys.public_key(kid) is verified_with:
                self._entries.move_to_end(token)
                return self._unexpired(token, claims)
            self._entries.pop(token, None)
        kid = key_id(token)
        public_key = await self._keys.public_key(kid)
        if public_key is None:
            raise TokenInvalid()
        claims = verify(token, public_key)
        self._entries[token] = (kid, public_key, claims)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return dict(claims)

    def _unexpired(self, token: str, claims: Json) -> Json:
        if is_expired(claims):
            self._entries.pop(token, None)
            raise TokenExpired()
        return dict(claims)
