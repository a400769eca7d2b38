"""KAZOO's listing filters (crossbar_filter.erl, docs/kazoo-compatibility.md §9).

Query-string keys `filter_<path>`, `filter_not_<path>`, `has_key`, `key_missing`,
`has_value`, `value_missing`, `created_from`, `created_to`, `modified_from` and
`modified_to` select the documents of a listing. Any of them makes the listing read the
full stored documents (private fields included), and a document is listed only when
every query parameter holds for it; parameters that are not filters always hold.

Values are compared as KAZOO compares them: the stored value is turned into a binary
(`kz_term:to_binary/1`: numbers and booleans as text, arrays concatenated, objects as
JSON) and compared with the raw query value; a query value that is a JSON array means
"any of its strings". Paths are dotted, array positions 1-based. A filter that raises in
KAZOO (e.g. a path running through a string) excludes the document.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_plus

Json = dict[str, Any]

# cowboy's parse_qs gives a bare key (`?has_key`) the value `true`, not "".
QueryValue = str | bool
QueryPair = tuple[str, QueryValue]

_PREFIX_FILTERS = ("filter_", "has_key", "key_missing", "has_value", "value_missing")
_TIME_FILTERS = ("created_from", "created_to", "modified_from", "modified_to")

# Erlang's binary_to_integer/1 and binary_to_float/1 grammars (no spaces, no "_",
# a float needs a fraction).
_ERLANG_INTEGER = re.compile(r"[+-]?[0-9]+")
_ERLANG_FLOAT = re.compile(r"[+-]?[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?")

# kz_term:is_empty/1: what `has_value` / `value_missing` treat as no value.
_EMPTY_STRINGS = ("", "0", "NULL", "undefined")


class _Missing:
    """A path that leads nowhere (KAZOO's `undefined`)."""


MISSING = _Missing()


class FilterFailed(Exception):
    """KAZOO's filter would raise here; crossbar_filter excludes the document."""


def query_pairs(raw_query: str) -> list[QueryPair]:
    """The query string as cowboy parses it, repeated keys and bare keys kept."""
    pairs: list[QueryPair] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value) if sep else True))
    return pairs


def is_filter_key(name: str) -> bool:
    # crossbar_filter:is_filter_key/1 matches these as prefixes (`has_keyX` switches on
    # filtering even though no filter then uses it).
    return name.startswith(_PREFIX_FILTERS) or name in _TIME_FILTERS


@dataclass(frozen=True)
class DocFilter:
    """Every query parameter, applied to one stored document at a time."""

    pairs: tuple[QueryPair, ...]

    def __call__(self, doc: Json | None) -> bool:
        return all(_holds(doc or {}, name, value) for name, value in self.pairs)


def build_filter(raw_query: str) -> DocFilter | None:
    """The listing's filter, or None when the query string has no filter key."""
    pairs = query_pairs(raw_query)
    if not any(is_filter_key(name) for name, _ in pairs):
        return None
    return DocFilter(tuple(pairs))


def _holds(doc: Json, name: str, value: QueryValue) -> bool:
    try:
        outcome = _apply(doc, name, value)
    except FilterFailed:
        return False
    return True if outcome is None else outcome


def _apply(doc: Json, name: str, value: QueryValue) -> bool | None:
    """One parameter's verdict; None for parameters that are not filters."""
    if name.startswith("filter_not_"):
        return not _value_matches(doc, name[len("filter_not_") :], value)
    if name.startswith("filter_"):
        return _value_matches(doc, name[len("filter_") :], value)
    if name == "has_key":
        return lookup(doc, _path(value)) is not MISSING
    if name == "key_missing":
        return lookup(doc, _path(value)) is MISSING
    if name == "has_value":
        return not _is_empty(lookup(doc, _path(value)))
    if name == "value_missing":
        return _is_empty(lookup(doc, _path(value)))
    if name in _TIME_FILTERS:
        return _in_time_range(doc, name, value)
    return None


# -- paths ---------------------------------------------------------------------------


def _path(value: QueryValue) -> str:
    if not isinstance(value, str):
        # binary:split(true, ...) raises in KAZOO: a bare `?has_key` excludes everything.
        raise FilterFailed("a path is needed")
    return value


def lookup(doc: Any, path: str) -> Any:
    """kz_json:get_value/2 on a dotted path; array positions are 1-based."""
    node = doc
    for key in path.split("."):
        if isinstance(node, list):
            position = erlang_to_integer(key)
            if position is None or not 1 <= position <= len(node):
                return MISSING
            node = node[position - 1]
        elif isinstance(node, dict):
            if key not in node:
                return MISSING
            node = node[key]
        else:
            # get_value1/3 raises badarg when a path continues through a scalar.
            raise FilterFailed(f"{path} runs through a scalar")
    return node


# -- filter_<path> -------------------------------------------------------------------


def _value_matches(doc: Json, path: str, wanted: QueryValue) -> bool:
    """crossbar_filter:should_filter/3: the stored value as a binary against the query."""
    stored = as_binary(lookup(doc, path))
    query = b"true" if wanted is True else str(wanted).encode("utf-8")
    if stored == query:
        return True
    try:
        decoded = json.loads(query)
    except (ValueError, RecursionError):
        return False
    if isinstance(decoded, list):
        # lists:member/2 of a binary: only the array's strings can match.
        return any(isinstance(item, str) and item.encode("utf-8") == stored for item in decoded)
    return isinstance(decoded, str) and decoded.encode("utf-8") == stored


def as_binary(value: Any) -> bytes:
    """kz_json:get_binary_value/3 with default <<>>: kz_term:to_binary/1, or b"" if it fails."""
    if value is MISSING:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if value is None:
        return b"null"
    if isinstance(value, int):
        return str(value).encode("ascii")
    if isinstance(value, float):
        return mochinum_digits(value).encode("ascii")
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if isinstance(value, list):
        iolist = _iolist_bytes(value)
        return b"" if iolist is None else iolist
    return b""


def _iolist_bytes(items: list[Any]) -> bytes | None:
    """iolist_to_binary/1 of a JSON array: strings and bytes concatenated, else badarg."""
    out = bytearray()
    for item in items:
        if isinstance(item, str):
            out += item.encode("utf-8")
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 255:
            out.append(item)
        elif isinstance(item, list):
            nested = _iolist_bytes(item)
            if nested is None:
                return None
            out += nested
        else:
            return None
    return bytes(out)


def mochinum_digits(value: float) -> str:
    """kz_mochinum:digits/1: the shortest round-tripping digits, placed as mochinum does."""
    if value == 0.0 or not math.isfinite(value):
        return "0.0"
    shortest = Decimal(repr(abs(value))).normalize()
    _sign, digit_tuple, exponent = shortest.as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    assert isinstance(exponent, int)
    text = _insert_decimal(len(digits) + exponent, digits)
    return "-" + text if value < 0 else text


def _insert_decimal(place: int, digits: str) -> str:
    if place == 0:
        return "0." + digits
    if place > 0:
        extra = place - len(digits)
        if extra == 0:
            return digits + ".0"
        if extra < 0:
            return digits[:place] + "." + digits[place:]
        if extra < 6:
            return digits + "0" * extra + ".0"
        return _exponent_form(place, digits)
    if place > -6:
        return "0." + "0" * -place + digits
    return _exponent_form(place, digits)


def _exponent_form(place: int, digits: str) -> str:
    sign = "e-" if place < 0 else "e+"
    return f"{digits[0]}.{digits[1:] or '0'}{sign}{abs(place - 1)}"


# -- has_value / value_missing -------------------------------------------------------


def _is_empty(value: Any) -> bool:
    if value is MISSING or value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        return value in _EMPTY_STRINGS
    if isinstance(value, list | dict):
        return not value
    return False


# -- created_from / created_to / modified_from / modified_to -------------------------


def _in_time_range(doc: Json, name: str, value: QueryValue) -> bool:
    bound = erlang_to_integer(value) if isinstance(value, str) else None
    if bound is None:
        raise FilterFailed(f"{name} is not a number")
    field = "pvt_created" if name.startswith("created") else "pvt_modified"
    stamp = _integer_value(doc.get(field))
    if stamp is None:
        # KAZOO compares the integer with the atom `undefined`, and numbers sort before
        # atoms: a doc without the timestamp passes every `_from` and fails every `_to`.
        return name.endswith("_from")
    return bound <= stamp if name.endswith("_from") else bound >= stamp


def _integer_value(value: Any) -> int | None:
    """kz_json:get_integer_value/2: ints, floats rounded, numeric strings; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return erlang_round(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return erlang_to_integer(value)
    return None


def erlang_to_integer(text: str) -> int | None:
    """kz_term:to_integer/1 of a binary: an integer, or a float rounded; None if neither."""
    if _ERLANG_INTEGER.fullmatch(text):
        return int(text)
    if _ERLANG_FLOAT.fullmatch(text):
        number = float(text)
        return erlang_round(number) if math.isfinite(number) else None
    return None


def erlang_round(number: float) -> int:
    # Erlang rounds halves away from zero; Python's round() rounds them to even.
    rounded = math.floor(abs(number) + 0.5)
    return -rounded if number < 0 else rounded
