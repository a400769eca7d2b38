"""KAZOO's error catalogue (docs/kazoo-compatibility.md §5.1) as one exception type.

Every failure the service reports is a `KazooError`; the error middleware is the only
place that turns one into an HTTP response, so the envelope is built once.
"""

from __future__ import annotations

from typing import Any


class KazooError(Exception):
    """An error answered to the client in KAZOO's error envelope.

    `message` is the envelope `message` (KAZOO's short error text, spaces and underscores
    exactly as KAZOO writes them); `data` is the envelope `data`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        data: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.data: dict[str, Any] = data if data is not None else {}
        self.headers = headers or {}


# Constructors for the rows of §5.1, named after what went wrong. Keeping the exact
# wording here (e.g. "bad identifier" with a space for account ids, "bad_identifier"
# with an underscore for documents) is deliberate: KAZOO clients match on it.


def validation_error(data: dict[str, Any]) -> KazooError:
    return KazooError(400, "validation error", data)


def invalid_json(reason: str) -> KazooError:
    return validation_error({"json": {"invalid": {"message": reason, "target": "body"}}})


def too_many_dids(count: int, limit: int) -> KazooError:
    # Our own rule (CONNECTIVITY_MAX_DIDS, §7.5), in the shape of a schema error so that
    # clients show it like one.
    return validation_error(
        {
            "servers": {
                "maxDIDs": {
                    "message": f"A connectivity document may route at most {limit} DIDs",
                    "target": limit,
                    "value": count,
                }
            }
        }
    )


def missing_envelope(envelope: Any) -> KazooError:
    return validation_error(
        {"data": {"required": {"message": "Field is required but missing", "value": envelope}}}
    )


def data_not_object(value: Any) -> KazooError:
    return validation_error(
        {
            "data": {
                "type": {
                    "message": "Value did not match type(s): object",
                    "target": "object",
                    "value": value,
                }
            }
        }
    )


def payload_too_large(limit: int) -> KazooError:
    return KazooError(
        413,
        "validation error",
        {
            "file": {
                "maxSize": {
                    "message": f"Payload or Files must not be more than {limit} bytes",
                    "target": limit,
                }
            }
        },
    )


def document_too_large() -> KazooError:
    # CouchDB's max_document_size can refuse a body under our upload limit once defaults
    # and private fields are added; it is still the client's document that is too big.
    return KazooError(
        413,
        "validation error",
        {
            "document": {
                "maxSize": {"message": "the stored document would exceed the datastore's limit"}
            }
        },
    )


def bad_document_id(doc_id: str) -> KazooError:
    return KazooError(404, "bad_identifier", {"cause": doc_id, "message": "bad identifier"})


def reserved_document_id(
    doc_id: str, message: str = "document ids may not start with '_'"
) -> KazooError:
    # Our own rules (§14 #10, connectivity_store.doc_id_problem): e.g. a client-chosen id
    # starting with `_` would be a CouchDB name.
    return validation_error({"id": {"invalid": {"message": message, "value": doc_id}}})


def invalid_account_id(raw: str) -> KazooError:
    return KazooError(404, "bad identifier", {"message": f"invalid account_id '{raw}'"})


def missing_account_id() -> KazooError:
    return KazooError(404, "bad identifier", {"message": "missing account_id"})


def unknown_account(account_id: str) -> KazooError:
    return KazooError(404, "bad_identifier", {"cause": account_id, "message": "bad identifier"})


def not_found() -> KazooError:
    return KazooError(404, "not_found", {"message": "not found"})


def method_not_allowed(allowed: list[str]) -> KazooError:
    # KAZOO sends no Allow header (§14 #9); sending one is harmless and helps clients.
    return KazooError(
        405,
        "invalid_method",
        {"message": "method not allowed"},
        headers={"Allow": ", ".join(allowed)},
    )


def invalid_credentials() -> KazooError:
    return KazooError(401, "invalid_credentials", {"message": "invalid credentials"})


def expired_credentials() -> KazooError:
    # A correctly signed but expired token is rejected during KAZOO's early
    # authentication with this different wording and an empty data object (§5.1).
    return KazooError(401, "invalid credentials", {})


def missing_token(message: str) -> KazooError:
    """cb_auth's tokeninfo without a token: a 404 with its own wording."""
    return KazooError(404, message, {"message": message})


def account_expired(expired_at: int) -> KazooError:
    """cb_token_auth:is_account_expired/2: a validation error on `account`."""
    return validation_error(
        {"account": {"expired": {"message": "account expired", "cause": expired_at}}}
    )


def forbidden(message: str = "forbidden") -> KazooError:
    return KazooError(403, "forbidden", {"message": message})


def unauthorized_numbers(numbers: list[str]) -> KazooError:
    # cb_modules_util:validate_number_ownership/2 (§11.1).
    return forbidden("unauthorized to use " + ", ".join(numbers))


# The number manager's errors (knm_errors:to_json/3): the envelope `error` is the HTTP
# code, `message` the knm error name, and `data` knm's own error object
# (cb_phone_numbers:set_error/2).


def _number_error(code: int, error: str, message: str, cause: str | None) -> KazooError:
    data: dict[str, Any] = {"code": code, "error": error, "message": message}
    if cause is not None:
        data["cause"] = cause
    return KazooError(code, error, data)


def number_not_found() -> KazooError:
    # cb_phone_numbers:reply_number_not_found/1.
    data = {"message": "bad identifier", "not_found": "The number could not be found"}
    return KazooError(404, "bad_identifier", data)


def number_not_reconcilable(number: str) -> KazooError:
    return _number_error(404, "not_reconcilable", f"number {number} is not reconcilable", number)


def number_exists(number: str) -> KazooError:
    return _number_error(409, "number_exists", f"number {number} already exists", number)


def number_unauthorized(cause: str | None = None) -> KazooError:
    return _number_error(403, "forbidden", "requestor is unauthorized to perform operation", cause)


def number_invalid_state_transition(from_state: str | None, to_state: str) -> KazooError:
    cause = f"from {from_state or '(nothing)'} to {to_state}"
    return _number_error(400, "invalid_state_transition", "invalid state transition", cause)


def too_many_requests() -> KazooError:
    return KazooError(429, "too_many_requests", {"message": "too many requests"})


def conflict() -> KazooError:
    return KazooError(409, "datastore_conflict", {"message": "conflicting documents"})


def datastore_unreachable(message: str = "datastore connection lost") -> KazooError:
    # KAZOO's `message` for every way of not reaching CouchDB; `data.message` says
    # which one (crossbar_util: "datastore timeout", "datastore connection refused").
    return KazooError(503, "datastore_unreachable", {"message": message})


def datastore_timeout() -> KazooError:
    return datastore_unreachable("datastore timeout")


def datastore_refused() -> KazooError:
    return datastore_unreachable("datastore connection refused")


def datastore_answered_fault(status: int | None) -> KazooError:
    # CouchDB answered 5xx: it was reached, so not "timeout" but KAZOO's fault answer
    # (crossbar_util:response_db_fatal/1, 503), with the status CouchDB gave.
    cause = f"couchdb answered {status}" if status else "couchdb fault"
    return KazooError(503, "datastore_fault", {"cause": cause, "message": "datastore fatal error"})


def datastore_fault(cause: str) -> KazooError:
    # KAZOO answers 500 here (§5.1); an unexpected datastore answer is still the
    # datastore's fault, so we say 503 and let clients retry instead of a 500.
    return KazooError(503, "datastore_fault", {"cause": cause, "message": "unknown failure"})


def faulty_request(message: str) -> KazooError:
    return KazooError(404, "faulty_request", {"message": message})


def gone_v1() -> KazooError:
    return KazooError(
        410,
        "gone",
        {"message": "API version 1 is not supported. Please upgrade your code to use version 2."},
    )


def unsupported_media_type(content_type: str) -> KazooError:
    # KAZOO's cowboy answers 415 with an empty body; we keep the status and say why.
    return KazooError(
        415,
        "unsupported_media_type",
        {"message": f"content type {content_type} is not accepted", "cause": content_type},
    )


def not_acceptable() -> KazooError:
    return KazooError(406, "not_acceptable", {"message": "no acceptable content type"})


def precondition_failed() -> KazooError:
    return KazooError(412, "precondition_failed", {"message": "precondition failed"})


def account_has_descendants() -> KazooError:
    # cb_accounts refuses to delete an account that still has (live) sub-accounts.
    return KazooError(400, "account_has_descendants", {"message": "account has descendants"})


def account_locked(reason: str, cause: object = None) -> KazooError:
    # cb_user_auth: credentials right, account expired (trial over) or disabled. KAZOO
    # files it under the `account` key; Monster UI tells the user on 423 (monster-ui
    # apps/auth/app.js).
    detail: dict[str, Any] = {"message": f"account {reason}"}
    if cause is not None:
        detail["cause"] = cause
    return KazooError(423, f"account {reason}", {"account": {reason: detail}})
