"""KAZOO's naming of ids, databases and times (§7.1, §7.2, conventions)."""

from __future__ import annotations

import os
import re
import time

# Seconds between 0000-01-01 (Erlang's calendar epoch) and 1970-01-01.
GREGORIAN_OFFSET = 62_167_219_200

ACCOUNT_ID_LENGTH = 32

# KAZOO treats these `id` values as "no id given" (kz_term:is_empty/1).
# KAZOO's database of every account's copy of its account doc (kzs_util, §7.1).
ACCOUNTS_DB = "accounts"

EMPTY_ID_VALUES = frozenset({"", "0", "undefined", "NULL"})


def now_gregorian() -> int:
    return int(time.time()) + GREGORIAN_OFFSET


def new_id() -> str:
    """16 random bytes as 32 lowercase hex, like kz_datamgr:get_uuid/0."""
    return os.urandom(16).hex()


def is_raw_account_id(value: str) -> bool:
    # KAZOO's ?MATCH_ACCOUNT_RAW only checks the length, in bytes.
    return len(value.encode("utf-8")) == ACCOUNT_ID_LENGTH


# CouchDB database names match ^[a-z][a-z0-9_$()+/-]*$; `account/` supplies the leading
# letter and the slashes, so an account id may hold only the other characters, and
# starts with a letter or digit because it is also a doc id in its own database.
_STORABLE_ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_$()+-]{31}$")


def is_storable_account_id(value: str) -> bool:
    """True when `account/xx/yy/rest` is a database name CouchDB accepts (§7.1).

    KAZOO checks only the length and lets CouchDB refuse the rest (a 500); every
    account id KAZOO or this service creates is 32 lowercase hex and passes.
    """
    return bool(_STORABLE_ACCOUNT_ID.match(value))


def account_db(account_id: str) -> str:
    """The real database name: `account/xx/yy/rest`."""
    return f"account/{account_id[0:2]}/{account_id[2:4]}/{account_id[4:]}"


def encoded_account_db(account_id: str) -> str:
    """What KAZOO stores in `pvt_account_db` and puts in URLs: `account%2Fxx%2Fyy%2Frest`."""
    return account_db(account_id).replace("/", "%2F")


def account_id_from_db(db: str) -> str | None:
    """The account id of an `account/xx/yy/rest` database name, else None."""
    parts = db.split("/")
    if len(parts) != 4 or parts[0] != "account":
        return None
    account_id = "".join(parts[1:])
    return account_id if len(account_id) == ACCOUNT_ID_LENGTH else None


def alphanum_name(name: str) -> str:
    """`pvt_alphanum_name`: lower-cased, every character outside [a-z0-9] removed."""
    return re.sub(r"[^a-z0-9]", "", name.lower())
