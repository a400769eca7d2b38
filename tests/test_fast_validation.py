"""The compiled fast path (service/kazoo/fast_validation.py) answers exactly as the full
validator: the same documents with the same defaults accepted, every other one left to
the full validator's KAZOO-shaped errors (docs/kazoo-compatibility.md §5.2)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from service.kazoo.validation import SchemaValidator, schema_path

Json = dict[str, Any]
DRAFT4 = "http://json-schema.org/draft-04/schema#"

TRUNK: Json = {
    "name": "Main trunk",
    "account": {"trunks": 2, "auth_realm": "realm.example.com", "caller_id": {}},
    "servers": [
        {
            "server_name": "PBX 1",
            "auth": {"auth_method": "password", "auth_user": "pbx1", "auth_password": "pw"},
            "options": {"inbound_format": "e164", "delay": 0, "caller_id": {"cid_number": "+1"}},
            "DIDs": {"+14155550100": {}, "4155550101": {"force_outbound": True}},
        },
        {"auth": {"auth_method": "IP", "ip": "10.0.0.1"}, "options": {}, "DIDs": {}},
    ],
}
USER: Json = {"first_name": "Ada", "last_name": "Lovelace", "username": "ada@example.com"}
ACCOUNT: Json = {"name": "Example", "realm": "example.sip.example.com"}

# Values that sit on the edges of the schemas' keywords: types JSON confuses (1 / 1.0 /
# true), digits a Unicode regex accepts and Erlang's `re` does not, long strings, and
# the values the enums and defaults hold.
ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 0.5, 2**53, "", "x", "1", "true", "٣", "+٣٣",
    "+14155550100", "IP", "ip", "Password", "npan", "bypass", "e164", "a" * 300, [], [1],
    [{}], {}, {"x": 1}, {"auth_method": "password"},
]  # fmt: skip


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutated(doc: Json, rng: random.Random) -> Json:
    """`doc` with one to three places replaced, removed or given a new key."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        places = paths(doc)[1:]
        if not places:
            doc[rng.choice(["name", "x"])] = copy.deepcopy(rng.choice(ODD_VALUES))
            continue
        path = rng.choice(places)
        *parents, last = path
        holder: Any = doc
        for part in parents:
            holder = holder[part]
        action = rng.random()
        if action < 0.6:
            holder[last] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action < 0.8 and isinstance(holder, dict):
            del holder[last]
        elif isinstance(holder[last], dict):
            holder[last][rng.choice(["+1٣", "4155550199", "x", "DIDs", "auth"])] = copy.deepcopy(
                rng.choice(ODD_VALUES)
            )
    return doc


@pytest.mark.parametrize(
    ("schema_name", "sample"),
    [("connectivity", TRUNK), ("users", USER), ("accounts", ACCOUNT), ("user_auth", {})],
)
@pytest.mark.parametrize("strict", [False, True])
def test_fast_and_full_validation_agree_on_every_mutation(
    schema_name: str, sample: Json, strict: bool
) -> None:
    path = schema_path(schema_name)
    fast = SchemaValidator.from_file(path, strict=strict)
    full = SchemaValidator(json.loads(path.read_text()), strict=strict, fast_path=False)
    rng = random.Random(f"{schema_name}-{strict}")
    accepted = refused = 0
    for _ in range(1500):
        doc = mutated(sample, rng) if sample else {"credentials": rng.choice(ODD_VALUES)}
        expected = full.validate(doc)
        assert fast.validate(doc) == expected, doc
        accepted, refused = accepted + expected.ok, refused + (not expected.ok)
    # Both outcomes were exercised, or the comparison proved little.
    assert accepted > 50 and refused > 50, (accepted, refused)


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        # Python's `True in [1]` holds; jesse refuses a boolean for an integer enum.
        ({"enum": [1, 2]}, True),
        # Only jesse's keywords say what these mean; each must still be refused.
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 1.5),
        ({"uniqueItems": True}, [1, 1.0]),
        ({"type": "string", "pattern": r"^\d+$"}, "٣٣"),
    ],
)
def test_keywords_the_fast_path_leaves_alone_are_still_checked(schema: Json, value: Any) -> None:
    validator = SchemaValidator({"$schema": DRAFT4, "properties": {"x": schema}})
    result = validator.validate({"x": value})
    assert not result.ok and list(result.errors) == ["x"]
    assert validator.validate({"y": value}).ok


def test_a_default_is_each_documents_own() -> None:
    """Defaults are planned once per schema and stored in every document that lacks
    them: a list or object default must be a copy, so that changing one saved document
    never changes what the next one gets."""
    validator = SchemaValidator(
        {
            "$schema": DRAFT4,
            "properties": {
                "tags": {"type": "array", "default": []},
                "nested": {
                    "type": "object",
                    "properties": {"options": {"type": "object", "default": {"a": [1]}}},
                },
                "name": {"type": "string", "default": "unnamed"},
            },
        }
    )
    first = validator.validate({"nested": {}})
    assert first.ok and first.value == {
        "nested": {"options": {"a": [1]}},
        "tags": [],
        "name": "unnamed",
    }
    first.value["tags"].append("changed")
    first.value["nested"]["options"]["a"].append(2)
    second = validator.validate({"nested": {}})
    assert second.value == {"nested": {"options": {"a": [1]}}, "tags": [], "name": "unnamed"}
