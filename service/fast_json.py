"""JSON on the hot path: orjson where it gives the same answer, the standard library else.

Every request decodes CouchDB's answers and encodes an envelope; orjson does both
several times faster (measured: a 2.5 kB envelope ~25 µs → ~3 µs, a stored doc
~28 µs → ~12 µs). Where the two differ, the standard library's answer is kept:

* orjson reads integers beyond 64 bits as floats (json keeps them exact): text with a
  run of 19 or more digits is read by json. Such numbers cannot come in through the
  API (http/body.py), but a doc replicated from KAZOO may hold one, and a PATCH
  must not turn it into a float.
* orjson refuses what json accepts (lone surrogate escapes, non-string keys,
  integers beyond 64 bits when writing): those go to json.
* Written floats may differ in form only (`1e16` for json's `1e+16`), never in value.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Integers beyond ±(2^53 - 1) are refused rather than stored: the embedded server and
# CouchDB's JavaScript views hold numbers as doubles and would silently round them
# (9007199254740993 reads back as …992), JavaScript clients such as Monster UI too, so
# the answer to the PUT and later reads would disagree. No trunkstore field needs them.
MAX_SAFE_INTEGER = 2**53 - 1

# Every digit becomes "9", everything else a space: then one substring search finds
# any run of digits long enough to overflow 64 bits (~1 µs per kB).
_DIGIT_RUNS = bytes(0x39 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_NUMBER = b"9" * 19


def loads(raw: bytes) -> Any:
    """Like `json.loads`; raises ValueError on text that is not JSON."""
    if _LONG_NUMBER in raw.translate(_DIGIT_RUNS):
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a value orjson will not write
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
