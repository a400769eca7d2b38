"""Phone numbers as KAZOO's number manager spells them: E.164, reconcilable, number dbs.

Pure functions (docs/kazoo-compatibility.md §11.1, §7.1). KAZOO's default converter is a list of
regular expressions tried in order (`knm_converter_regex`, `?DEFAULT_E164_CONVERTERS`):
NANP first, so ten digits become `+1…`; a number already starting with `+` is kept as
it is; anything no rule matches is returned unchanged (and is then usually not
reconcilable).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote

# (pattern, prefix): the E.164 form is prefix + the last group that matched, or the
# whole match when the pattern has no group (knm_converter_regex:maybe_convert_to_e164/3).
_E164_CONVERTERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(\+?1)?([2-9][0-9]{2}[2-9][0-9]{6})$"), "+1"),
    (re.compile(r"^011(\d{5,})$|^00(\d{5,})$"), "+"),
    (re.compile(r"^[2-9]\d{7,}$"), "+"),
)

# knm_converters ?DEFAULT_RECONCILE_REGEX: which normalised strings are phone numbers
# at all. Anything else in a DIDs object is ignored by the ownership check.
_RECONCILABLE = re.compile(r"^(\+?1)?\d{10}$|^\+[2-9]\d{7,}$|^011\d*$|^00\d*$")

# A NANP number in E.164: all five spellings of `raw_spellings` normalise back to it.
_NANP_E164 = re.compile(r"\+1[2-9][0-9]{2}[2-9][0-9]{6}\Z")

NUMBERS_DB_PREFIX = "numbers/"
_DB_PREFIX_LENGTH = 5


def normalize(number: str) -> str:
    """E.164 with the NANP default (knm_converters:normalize/1)."""
    # Checked before the cache: most DIDs are E.164 already, and a trunk with more DIDs
    # than the cache holds would otherwise miss on every one (each write normalises
    # them several times, in order), paying for the cache on top of the rules.
    if number.startswith("+"):
        return number
    return _converted(number)


# Every write normalises each of its DIDs several times (uniqueness, ownership,
# assignment), and the same numbers come back write after write.
@lru_cache(maxsize=16_384)
def _converted(number: str) -> str:
    for pattern, prefix in _E164_CONVERTERS:
        match = pattern.match(number)
        if match is None:
            continue
        groups = [group for group in match.groups() if group is not None]
        # Erlang's re:run returns unset leading groups as <<>> and drops trailing ones,
        # so "the last captured group" is the last one that took part in the match.
        root = groups[-1] if groups else match.group(0)
        return prefix + root
    return number


def is_reconcilable(number: str) -> bool:
    """knm_converters:is_reconcilable/1: the normalised form matches the reconcile regex."""
    return bool(number) and is_reconcilable_e164(normalize(number))


def is_reconcilable_e164(normalized: str) -> bool:
    """`is_reconcilable` of a number `normalize` has already been through."""
    return _RECONCILABLE.search(normalized) is not None


def number_db(e164: str) -> str | None:
    """The real database name, `numbers/+1415`; None when the number is too short."""
    if len(e164) < _DB_PREFIX_LENGTH:
        return None
    return NUMBERS_DB_PREFIX + e164[:_DB_PREFIX_LENGTH]


def encoded_number_db(e164: str) -> str | None:
    """What KAZOO stores in `pvt_db_name`: `numbers%2F%2B1415` (knm_converters:to_db/1)."""
    db = number_db(e164)
    return quote(db, safe="") if db is not None else None


def raw_spellings(e164: str) -> list[str]:
    """Every DID key KAZOO would normalise to `e164`, for exact-key view lookups.

    Candidates are generated and then kept only if they really normalise back, so the
    list is exact whatever the rules above say.
    """
    if _NANP_E164.match(e164):
        # What `spellings_by_the_rules` finds for every such number (tests/
        # test_number_rules.py compares both), ~15 times faster: a write spells every
        # number it adds, 50,000 of them for a big trunk's first save.
        digits = e164[2:]
        return ["+1" + digits, "001" + digits, "0111" + digits, "1" + digits, digits]
    return spellings_by_the_rules(e164)


def spellings_by_the_rules(e164: str) -> list[str]:
    """`raw_spellings`, each candidate put through `normalize`."""
    if not e164.startswith("+"):
        return [e164]
    digits = e164[1:]
    candidates = [e164, "011" + digits, "00" + digits, digits]
    if digits.startswith("1"):
        candidates.append(digits[1:])
    return sorted({c for c in candidates if c and normalize(c) == e164})
