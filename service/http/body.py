"""Reading a request body into KAZOO's envelope (docs/kazoo-compatibility.md §2).

Crossbar parses and checks the envelope before anything else, even authentication,
so every problem here is a 400/413 raised before routing goes further.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from service.fast_json import MAX_SAFE_INTEGER
from service.kazoo import errors

Json = dict[str, Any]

JSON_TYPES = frozenset({"application/json", "application/x-json", ""})
FORM_TYPE = "application/x-www-form-urlencoded"

# Bodies nested deeper than this are refused: a Crossbar document is a few levels
# deep, and unbounded nesting would exhaust the stack in every later step.
MAX_DEPTH = 64


@dataclass
class RequestBody:
    envelope: Json = field(default_factory=dict)
    data: Json = field(default_factory=dict)
    # True when the body was something other than JSON or a form (a "file upload" to
    # KAZOO): `data` stays empty and writes are refused with 415.
    unsupported_type: str | None = None


class _BadConstant(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # NaN, Infinity and -Infinity are not JSON; Python's parser accepts them by default.
    raise _BadConstant(name)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        # 1e400 overflows to infinity, which neither JSON nor CouchDB can store.
        raise _BadConstant(text if len(text) <= 40 else text[:40] + "…")
    return value


_MAX_SAFE_DIGITS = len(str(MAX_SAFE_INTEGER))


def _parse_int(text: str) -> int:
    # The length check comes first: int() refuses more than 4,300 digits with a
    # ValueError of its own (CVE-2020-10735 guard), which must not become a 500.
    if len(text.lstrip("-")) > _MAX_SAFE_DIGITS or abs(value := int(text)) > MAX_SAFE_INTEGER:
        raise _BadConstant(text if len(text) <= 40 else text[:40] + "…")
    return value


# Every digit becomes "9", anything else a space: one search then tells whether the body
# may hold an integer past 2^53, which the fast parser would accept.
_NUMBER_SHAPES = bytes(0x39 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_UNSAFE_DIGITS = b"9" * _MAX_SAFE_DIGITS


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity/overflowing numbers, bounded depth.

    orjson refuses everything refused here (bad UTF-8, lone surrogates, NaN, an infinite
    float, a BOM, trailing text) but accepts integers past 2^53 and any depth, so it
    reads bodies without a long digit run, and the depth is checked after it. Whatever
    it refuses is read again by the standard parser, whose errors are the answers'
    (tests/test_body_parsing.py compares the two).
    """
    # Floats read alike in both, exponents included (an infinite one is refused by both):
    # a digit followed by "e", as in most hex ids and passwords, needs no fallback.
    if _UNSAFE_DIGITS not in raw.translate(_NUMBER_SHAPES):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if _may_nest_deeper(raw.count(b"{") + raw.count(b"[")):
                _check_depth(value)
            return value
    return parse_standard(raw)


def parse_standard(raw: bytes) -> Any:
    """`parse_json` through the standard library alone: the reference for its errors."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.invalid_json(f"invalid_utf8 around {exc.start}") from None
    try:
        value = json.loads(
            text, parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int
        )
    except _BadConstant as exc:
        raise errors.invalid_json(f"invalid_number {exc}") from None
    except json.JSONDecodeError as exc:
        kind = "truncated_json" if exc.pos >= len(text.rstrip()) else "invalid_json"
        raise errors.invalid_json(f"{kind} around {exc.pos}") from None
    except RecursionError:
        raise errors.invalid_json(f"too deeply nested (more than {MAX_DEPTH} levels)") from None
    if "\\u" in text:
        _reject_lone_surrogates(value)
    if _may_nest_deeper(text.count("{") + text.count("[")):
        _check_depth(value)
    return value


def _reject_lone_surrogates(value: Any) -> None:
    # `"\ud800"` parses to a string that cannot be written as UTF-8, so CouchDB could
    # never store it; refuse it here instead of failing later.
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise errors.invalid_json(f"invalid_string lone surrogate at {exc.start}") from None


def _may_nest_deeper(opening_brackets: int) -> bool:
    """Whether a text with this many `{` and `[` (strings included) can nest deeper
    than MAX_DEPTH: a body with fewer cannot, and its walk is spared."""
    return opening_brackets > MAX_DEPTH


def _check_depth(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise errors.invalid_json(f"too deeply nested (more than {MAX_DEPTH} levels)")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def normalize_envelope_keys(envelope: Json) -> Json:
    """Top-level keys lower-cased with `-` as `_` (api_util:normalize_envelope_keys/1)."""
    return {key.lower().replace("-", "_"): value for key, value in envelope.items()}


def media_type(content_type_header: str | None) -> str:
    if not content_type_header:
        return ""
    return content_type_header.split(";", 1)[0].strip().lower()


def read_body(raw: bytes, content_type: str) -> RequestBody:
    """Turns the raw body into envelope + data, or raises the KAZOO 400."""
    if not raw.strip():
        # An empty body is `data = {}` (api_util:get_json_body(<<>>, _)).
        return RequestBody()
    if content_type in JSON_TYPES:
        parsed = parse_json(raw)
    elif content_type == FORM_TYPE:
        parsed = _parse_form(raw)
    else:
        return RequestBody(unsupported_type=content_type)
    return _check_envelope(parsed)


def _parse_form(raw: bytes) -> Any:
    # curl -d sends JSON as a form; KAZOO falls back to JSON for a single JSON blob.
    stripped = raw.lstrip()
    if stripped[:1] in (b"{", b"["):
        return parse_json(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.invalid_json(f"invalid_utf8 around {exc.start}") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def _check_envelope(parsed: Any) -> RequestBody:
    if not isinstance(parsed, dict):
        raise errors.missing_envelope(parsed)
    envelope = normalize_envelope_keys(parsed)
    if "data" not in envelope:
        raise errors.missing_envelope(parsed)
    data = envelope["data"]
    if isinstance(data, list):
        # KAZOO lets an array through the envelope check and fails later (§14 #11).
        raise errors.data_not_object(data)
    if not isinstance(data, dict):
        raise errors.validation_error(
            {
                "data": {
                    "type": {
                        "message": "Value did not match type(s): object, array",
                        "target": "object, array",
                        "value": data,
                    }
                }
            }
        )
    return RequestBody(envelope=envelope, data=data)
