"""KAZOO's own tokens: RS256 JWTs signed with the system key of `system_auth` (§10.2).

Issued exactly as kz_auth_jwt encodes them, so KAZOO accepts ours and we accept its:

* header `{"alg":"RS256","typ":"JWT","kid":<system key id>}`, compact, in that order;
* claims, in KAZOO's order: `iss` ("kazoo"), `identity_sig`, `account_id`, `owner_id`
  (user logins only), `method` (the auth module, e.g. `cb_api_auth`), `exp` (Unix
  seconds);
* every part base64url without padding; RSASSA-PKCS1-v1_5 over `header.payload`.

`identity_sig` binds the token to the current `pvt_signature_secret` of its identity (the
user for a user login, else the account): giving the identity a new secret revokes every
token it holds (auth_docs.identity_signature).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from service.auth.keys import AuthKeys
from service.kazoo import auth_docs
from service.kazoo.ids import is_raw_account_id

Json = dict[str, Any]


class TokenInvalid(Exception):
    """Not a token KAZOO's keys signed: malformed, tampered, unknown kid, wrong alg."""


class TokenExpired(TokenInvalid):
    """Correctly signed but past its `exp`: KAZOO's early authentication stops it."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: Json

    @property
    def expires_at(self) -> int | None:
        exp = self.claims.get("exp")
        return exp if isinstance(exp, int) else None


async def issue_token(
    keys: AuthKeys,
    account: Json,
    *,
    user: Json | None = None,
    method: str = "cb_api_auth",
    ttl: int | None = None,
) -> IssuedToken:
    """A token for `account` (cb_api_auth), or for `user` of that account (cb_user_auth
    and friends: `owner_id` set, the user's secret signs the identity).

    An identity doc without a `pvt_signature_secret` is given one first and saved, as
    KAZOO's kz_auth_identity does on first use."""
    account_id = account["_id"]
    identity_doc = user if user is not None else account
    if auth_docs.signature_secret(identity_doc) is None:
        identity_doc = await keys.ensure_identity_secret(account_id, identity_doc)
    identity_secret = auth_docs.signature_secret(identity_doc)
    assert identity_secret is not None, "the saver gives every identity a secret"
    signing = await keys.signing_key()
    system_secret = await keys.user_signature_secret()
    lifetime = keys.token_ttl if ttl is None else ttl
    identity = identity_doc["_id"]
    claims: Json = {
        "iss": auth_docs.ISSUER,
        "identity_sig": auth_docs.identity_signature(identity_secret, system_secret, identity),
        "account_id": account_id,
    }
    if user is not None:
        claims["owner_id"] = identity
    claims["method"] = method
    if lifetime > 0:
        claims["exp"] = int(time.time()) + lifetime
    return IssuedToken(encode(claims, signing.kid, signing.private_key), claims)


def encode(claims: Json, kid: str, key: rsa.RSAPrivateKey) -> str:
    header = {"alg": auth_docs.SIGNING_ALGORITHM, "typ": "JWT", "kid": kid}
    signing_input = f"{_b64(_compact(header))}.{_b64(_compact(claims))}"
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _compact(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# -- verification (kz_auth:validate_token/2) ---------------------------------------------


def key_id(token: str) -> str:
    """The `kid` of a well-formed token whose header names one of KAZOO's algorithms
    (verify_header/1 comes first); TokenInvalid otherwise."""
    # A JWT is ASCII; anything else (lone surrogates from undecodable header bytes
    # included) is not worth parsing.
    if token.count(".") != 2 or not token.isascii():
        raise TokenInvalid()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid() from None
    if header.get("alg") not in auth_docs.ALGORITHMS:
        raise TokenInvalid()
    kid = header.get("kid")
    if not auth_docs.is_acceptable_key_id(kid):
        raise TokenInvalid()
    return str(kid)


def verify(token: str, public_key: rsa.RSAPublicKey) -> Json:
    """The claims, once the signature (and `exp`, when there is one) hold."""
    try:
        claims: Json = jwt.decode(
            token,
            public_key,
            algorithms=list(auth_docs.ALGORITHMS),
            # KAZOO checks only `exp` (and only when present), without leeway.
            options={
                "verify_exp": True,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": False,
                "verify_aud": False,
            },
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except jwt.PyJWTError:
        raise TokenInvalid() from None
    if not _well_formed(claims):
        raise TokenInvalid()
    return claims


def _well_formed(claims: Json) -> bool:
    """The built-in `kazoo` issuer, an account, and ids that are plain document ids."""
    if claims.get("iss") != auth_docs.ISSUER:
        return False
    account_id = claims.get("account_id")
    if not (_is_doc_id(account_id) and is_raw_account_id(account_id)):
        return False
    return all(
        claim not in claims or _is_doc_id(claims[claim]) for claim in ("owner_id", "device_id")
    )


def _is_doc_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 255 and not value.startswith("_")


def is_expired(claims: Json, now: float | None = None) -> bool:
    """KAZOO's `exp - now > 0` rule; a token without `exp` never expires."""
    exp = claims.get("exp")
    if exp is None:
        return False
    return not isinstance(exp, int | float) or exp <= (time.time() if now is None else now)


def token_id(token: str) -> str:
    """What names one token for revocation: KAZOO's tokens carry no id of their own."""
    return hashlib.sha256(token.encode()).hexdigest()


def identity_matches(claims: Json, identity_doc: Json, system_secret: str) -> bool:
    """kz_auth_identity's check. A token without `identity_sig` passes, as in KAZOO."""
    given = claims.get("identity_sig")
    if given is None:
        return True
    identity = auth_docs.identity_of(claims)
    secret = auth_docs.signature_secret(identity_doc)
    if identity is None or secret is None or not isinstance(given, str):
        return False
    expected = auth_docs.identity_signature(secret, system_secret, identity[1])
    return hmac.compare_digest(given.encode(), expected.encode())


def may_act_on(auth_account: Json, target_account: Json) -> bool:
    """cb_simple_authz: self, an ancestor in the target's `pvt_tree`, or a superduper admin."""
    auth_id = auth_account["_id"]
    if auth_id == target_account["_id"]:
        return True
    if auth_id in (target_account.get("pvt_tree") or []):
        return True
    return auth_account.get("pvt_superduper_admin") is True
