"""A compiled first look at a document: accept a valid one in a tenth of the time.

Most bodies are valid, and jsonschema's interpreter took ~0.4 ms for a trunk with two
servers and ten DIDs, a fifth of a write's CPU in the service (README, Writes). Here the
defaults are filled in by a walk that makes the same descents as the full validator
(service/kazoo/validation.py), then fastjsonschema's compiled check runs on the result.
When it passes, that result is the answer; anything else goes to the full validator,
which alone renders KAZOO's errors and repairs types. So the fast path may refuse what
is valid (the full one then accepts it) but must never accept what the full one refuses:
only schemas whose every keyword means the same in both are taken
(docs/kazoo-compatibility.md §5.2).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import fastjsonschema
import orjson

# Keywords fastjsonschema checks exactly as jsonschema's Draft4Validator with
# validation.py's replacements does, or more strictly (format: Draft4Validator checks
# none, fastjsonschema some). Not here: $ref and the combinators, whose descents the
# defaults walk does not make; dependencies, uniqueItems and multipleOf, whose details
# differ (1 == True in Python sets and `in`).
_SAME_MEANING: Final = frozenset(
    {
        "$schema",
        "id",
        "title",
        "description",
        "default",
        "examples",
        "format",
        "type",
        "enum",
        "required",
        "properties",
        "patternProperties",
        "additionalProperties",
        "items",
        "additionalItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    }
)

# Keywords whose value maps names to subschemas; keywords whose value is a subschema or
# a list of them (a boolean for the additional ones).
_SCHEMA_MAPS: Final = ("properties", "patternProperties")
_SCHEMA_OR_LIST: Final = ("additionalProperties", "items", "additionalItems")
# Keywords sorted before `properties` that look at an object's keys: the full validator
# runs them before `properties` adds a default, a check of the finished document after.
_KEYS_BEFORE_PROPERTIES: Final = ("additionalProperties", "maxProperties", "minProperties")

DefaultApplies = Callable[[Mapping[str, Any]], bool]
Regex = Callable[[str], re.Pattern[str]]


class FastAcceptance:
    """`accept(data)`: the valid document with its defaults, or None (ask the full one)."""

    def __init__(
        self, schema: Mapping[str, Any], default_applies: DefaultApplies, regex: Regex
    ) -> None:
        self._schema = schema
        self._default_applies = default_applies
        self._regex = regex
        self._check = fastjsonschema.compile(_ascii_patterns(schema), use_default=False)

    @classmethod
    def for_schema(
        cls, schema: Mapping[str, Any], default_applies: DefaultApplies, regex: Regex
    ) -> FastAcceptance | None:
        """None when the schema uses a keyword the two validators could read apart."""
        if not _same_meaning(schema, default_applies, regex):
            return None
        try:
            return cls(schema, default_applies, regex)
        except (fastjsonschema.JsonSchemaDefinitionException, re.error):
            return None  # e.g. a format it does not know: the full validator alone

    def accept(self, data: dict[str, Any]) -> dict[str, Any] | None:
        instance = _copy(data)
        self._fill(self._schema, instance)
        try:
            self._check(instance)
        except fastjsonschema.JsonSchemaException:
            return None
        return instance

    def _fill(self, schema: Mapping[str, Any], instance: Any) -> None:
        # The descents of validation.py's keywords, in the schema's key order as there:
        # patternProperties (sorted first) never sees a key `properties` defaults in.
        if isinstance(instance, dict):
            for keyword in schema:
                if keyword == "properties":
                    self._fill_properties(schema[keyword], instance)
                elif keyword == "patternProperties":
                    self._fill_pattern_properties(schema[keyword], instance)
                elif keyword == "additionalProperties":
                    self._fill_additional_properties(schema, instance)
        elif isinstance(instance, list):
            self._fill_items(schema, instance)

    def _fill_properties(self, properties: Mapping[str, Any], instance: dict[str, Any]) -> None:
        for name, subschema in properties.items():
            if name not in instance:
                if not self._default_applies(subschema):
                    continue
                instance[name] = copy.deepcopy(subschema["default"])
            self._fill(subschema, instance[name])

    def _fill_pattern_properties(
        self, patterns: Mapping[str, Any], instance: dict[str, Any]
    ) -> None:
        for key, value in list(instance.items()):
            for pattern, subschema in patterns.items():
                if self._regex(pattern).search(key):
                    self._fill(subschema, value)

    def _fill_additional_properties(
        self, schema: Mapping[str, Any], instance: dict[str, Any]
    ) -> None:
        extra = schema["additionalProperties"]
        if not isinstance(extra, dict):
            return
        named = schema.get("properties", {})
        patterns = [self._regex(p) for p in schema.get("patternProperties", {})]
        for key, value in list(instance.items()):
            if key not in named and not any(p.search(key) for p in patterns):
                self._fill(extra, value)

    def _fill_items(self, schema: Mapping[str, Any], instance: list[Any]) -> None:
        items = schema.get("items")
        if isinstance(items, dict):
            for item in instance:
                self._fill(items, item)
        elif isinstance(items, list):
            for subschema, item in zip(items, instance, strict=False):
                self._fill(subschema, item)
            extra = schema.get("additionalItems")
            if isinstance(extra, dict):
                for item in instance[len(items) :]:
                    self._fill(extra, item)


def _subschemas(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for keyword in _SCHEMA_MAPS:
        found.extend(schema.get(keyword, {}).values())
    for keyword in _SCHEMA_OR_LIST:
        value = schema.get(keyword)
        if isinstance(value, dict):
            found.append(value)
        elif isinstance(value, list):
            found.extend(value)
    return found


def _same_meaning(schema: Any, default_applies: DefaultApplies, regex: Regex) -> bool:
    if not isinstance(schema, dict) or not _SAME_MEANING.issuperset(schema):
        return False
    # jsonschema tells additional keys from patterned ones with Unicode \d, the
    # patterns here are ASCII: together they could disagree.
    if "patternProperties" in schema and schema.get("additionalProperties", True) is not True:
        return False
    # `1 in [True]` holds in Python: only enums without numbers or booleans.
    if "enum" in schema and not all(
        value is None or isinstance(value, str) for value in schema["enum"]
    ):
        return False
    defaulted = [name for name, sub in schema.get("properties", {}).items() if default_applies(sub)]
    if defaulted:
        if any(keyword in schema for keyword in _KEYS_BEFORE_PROPERTIES):
            return False
        patterns = [regex(p) for p in schema.get("patternProperties", {})]
        if any(p.search(name) for p in patterns for name in defaulted):
            return False
    return all(_same_meaning(sub, default_applies, regex) for sub in _subschemas(schema))


def _ascii_patterns(schema: Any) -> Any:
    """A copy whose patterns match as Erlang's `re` does: ASCII \\d, \\w and \\s."""
    if isinstance(schema, list):
        return [_ascii_patterns(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copied: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword == "pattern":
            copied[keyword] = "(?a)" + value
        elif keyword == "patternProperties":
            copied[keyword] = {"(?a)" + p: _ascii_patterns(sub) for p, sub in value.items()}
        elif keyword == "properties":
            copied[keyword] = {name: _ascii_patterns(sub) for name, sub in value.items()}
        elif keyword in _SCHEMA_OR_LIST:
            copied[keyword] = _ascii_patterns(value)
        else:
            copied[keyword] = value
    return copied


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON data: through orjson, a tenth of `copy.deepcopy`'s cost. An
    integer orjson cannot write (past 64 bits, from a stored doc) takes deepcopy."""
    try:
        copied: dict[str, Any] = orjson.loads(orjson.dumps(data))
    except orjson.JSONEncodeError:
        return copy.deepcopy(data)
    return copied
