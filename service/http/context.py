"""What Crossbar calls the request context: everything known about one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from service.auth.buckets import RequestBuckets, bucket_key

Json = dict[str, Any]


@dataclass(frozen=True)
class AuthInfo:
    """An authenticated caller: the account (and user) its token acts as."""

    account_id: str
    account: Json
    token: str
    claims: Json
    owner_id: str | None = None
    # What names the token for revocation (auth/tokens.py token_id).
    token_id: str | None = None


@dataclass
class RequestContext:
    request: web.Request
    request_id: str
    method: str
    query: MultiDictProxy[str]
    path_tokens: list[str] = field(default_factory=list)
    envelope: Json = field(default_factory=dict)
    data: Json = field(default_factory=dict)
    unsupported_type: str | None = None
    auth_token: str | None = None
    auth: AuthInfo | None = None
    account_id: str | None = None
    account: Json | None = None
    # The verbs of the matched path, for the CORS headers of the answer.
    allowed_methods: tuple[str, ...] | None = None
    # The body `Accept` prefers (http/negotiation.py); listings honour "csv".
    accepts: str = "json"
    # Where the request comes from (http/client_address.py) and the service's request
    # buckets, for the rate limit and the envelope's `tokens`.
    client_ip: str | None = None
    buckets: RequestBuckets | None = None

    def req_value(self, key: str, default: Any = None) -> Any:
        """KAZOO's cb_context:req_value/2: `data` first, then query string, then envelope.

        Consequence kept on purpose (docs/kazoo-compatibility.md §2): a `page_size` or `verb` inside
        `data` is read too.
        """
        if key in self.data:
            return self.data[key]
        if key in self.query:
            return self.query[key]
        return self.envelope.get(key, default)

    @property
    def is_authenticated(self) -> bool:
        return self.auth is not None

    @property
    def bucket(self) -> str:
        """The request's bucket: client address and URL account (cb_modules_util)."""
        return bucket_key(self.client_ip, self.account_id)

    def bucket_tokens(self) -> Json | None:
        """The envelope's `tokens` (api_util:get_token_obj/1): the configured cost, even
        when nothing was taken, and what is left in the bucket."""
        if self.buckets is None:
            return None
        return {"consumed": self.buckets.cost, "remaining": self.buckets.remaining(self.bucket)}


def is_false(value: Any) -> bool:
    """kz_term:is_false/1: `false` or the string "false"."""
    return value is False or (isinstance(value, str) and value.lower() == "false")


def is_true(value: Any) -> bool:
    """kz_term:is_true/1: `true` or the string "true"."""
    return value is True or (isinstance(value, str) and value.lower() == "true")
