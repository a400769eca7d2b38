"""Shared by the reliability tests: the figures the README reports, collected
while the tests run and printed at the end of the session, and test documents."""

from __future__ import annotations

import copy
import itertools
import random
from typing import Any

from helpers import PBX_TRUNK

FIGURES: dict[str, int] = {
    "concurrent_writers": 0,
    "lost_updates": 0,
    "faults_injected": 0,
    "bad_inputs": 0,
    "bad_input_5xx": 0,
}


def summary_line() -> str | None:
    if not any(FIGURES.values()):
        return None
    return (
        "reliability: {concurrent_writers} concurrent writers, {lost_updates} lost updates, "
        "{faults_injected} CouchDB faults injected, {bad_inputs} hostile inputs, "
        "{bad_input_5xx} answered 5xx".format(**FIGURES)
    )


_DID_SUFFIXES = itertools.count(random.randrange(10**6))


def unique_trunk(**fields: Any) -> dict[str, Any]:
    """helpers.PBX_TRUNK with a DID no other document uses (DIDs are unique per account)."""
    trunk = copy.deepcopy(PBX_TRUNK)
    trunk["servers"][0]["DIDs"] = {f"+1415{next(_DID_SUFFIXES) % 10**7:07d}": {}}
    trunk.update(fields)
    return trunk
