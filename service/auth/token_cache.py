"""Tokens whose signature this process has already verified, with their claims.

A client sends the same token with every request; verifying its HS256 signature and
claims with PyJWT each time (twice per request: the early expiry check and
authentication, §1) was a tenth of the service's CPU per GET (README, Performance).

Only the signature check is remembered. The rest is decided on every use: expiry here
(the one claim that can turn false with time — `iat`/`nbf` only become more valid), and
in the pipeline the account's identity signature (a rotated key or a deleted account
revokes the token), revocation, and authorization. Failures are never remembered.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from service.auth.tokens import TokenExpired, decode_token

Json = dict[str, Any]


class VerifiedTokens:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._max_entries = max_entries
        # token -> (the secret it was verified with, its claims)
        self._entries: OrderedDict[str, tuple[bytes, Json]] = OrderedDict()

    def claims(self, secret: bytes, token: str) -> Json:
        """As `auth.decode_token`: the claims, or TokenExpired / TokenInvalid."""
        entry = self._entries.get(token)
        if entry is None or entry[0] != secret:
            claims = decode_token(secret, token)
            self._remember(token, secret, claims)
        else:
            claims = entry[1]
            self._entries.move_to_end(token)
        # PyJWT's rule, without leeway: expired once `exp` is not after now.
        if int(claims["exp"]) <= time.time():
            self._entries.pop(token, None)
            raise TokenExpired()
        return dict(claims)

    def _remember(self, token: str, secret: bytes, claims: Json) -> None:
        self._entries[token] = (secret, dict(claims))
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
