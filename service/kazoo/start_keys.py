"""KAZOO's opaque paging keys (docs/kazoo-compatibility.md §9).

`next_start_key` is base64url, without padding, of the Erlang external term format of
the view key (api_util:encode_start_key/1). We encode the term types a view key can
hold here (binaries, integers, lists, null/true/false atoms) and decode the same; an
undecodable value is used as the raw CouchDB start key, as KAZOO does.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

VERSION = 0x83
SMALL_INTEGER = 0x61
INTEGER = 0x62
NIL = 0x6A
LIST = 0x6C
BINARY = 0x6D
SMALL_ATOM_UTF8 = 0x77
ATOM_UTF8 = 0x76
ATOM = 0x64

_ATOMS = {"null": None, "true": True, "false": False}


class _NotATerm(ValueError):
    pass


def encode_start_key(key: Any) -> str:
    raw = bytes([VERSION]) + _encode_term(key)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_start_key(value: str) -> Any:
    """The view key a client sent back; the value itself when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return value
    if len(raw) < 2 or raw[0] != VERSION:
        return value
    try:
        term, rest = _decode_term(raw, 1)
    except (_NotATerm, struct.error, IndexError, UnicodeDecodeError):
        return value
    return value if rest != len(raw) else term


def _encode_term(key: Any) -> bytes:
    if isinstance(key, bool) or key is None:
        name = {True: b"true", False: b"false", None: b"null"}[key]
        return bytes([SMALL_ATOM_UTF8, len(name)]) + name
    if isinstance(key, int) and 0 <= key <= 255:
        return bytes([SMALL_INTEGER, key])
    if isinstance(key, int) and -(2**31) <= key < 2**31:
        return bytes([INTEGER]) + struct.pack(">i", key)
    if isinstance(key, str):
        data = key.encode("utf-8")
        return bytes([BINARY]) + struct.pack(">I", len(data)) + data
    if isinstance(key, list):
        if not key:
            return bytes([NIL])
        body = b"".join(_encode_term(item) for item in key)
        return bytes([LIST]) + struct.pack(">I", len(key)) + body + bytes([NIL])
    # Anything else (objects, floats, big integers) travels as its JSON text.
    return _encode_term(json.dumps(key, separators=(",", ":")))


def _decode_term(raw: bytes, pos: int) -> tuple[Any, int]:
    tag = raw[pos]
    pos += 1
    if tag == BINARY:
        (length,) = struct.unpack_from(">I", raw, pos)
        pos += 4
        if pos + length > len(raw):
            raise _NotATerm("short binary")
        return raw[pos : pos + length].decode("utf-8"), pos + length
    if tag == SMALL_INTEGER:
        return raw[pos], pos + 1
    if tag == INTEGER:
        return struct.unpack_from(">i", raw, pos)[0], pos + 4
    if tag == NIL:
        return [], pos
    if tag == LIST:
        (count,) = struct.unpack_from(">I", raw, pos)
        pos += 4
        items = []
        for _ in range(count):
            item, pos = _decode_term(raw, pos)
            items.append(item)
        if raw[pos] != NIL:
            raise _NotATerm("improper list")
        return items, pos + 1
    if tag in (SMALL_ATOM_UTF8, ATOM_UTF8, ATOM):
        size_len = 1 if tag == SMALL_ATOM_UTF8 else 2
        length = int.from_bytes(raw[pos : pos + size_len], "big")
        pos += size_len
        name = raw[pos : pos + length].decode("utf-8")
        if name not in _ATOMS:
            raise _NotATerm("unknown atom")
        return _ATOMS[name], pos + length
    raise _NotATerm(f"tag {tag}")
