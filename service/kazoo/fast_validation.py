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
Filler = Callable[[Any], None]
# A property whose schema gives no default the full validator would use.
_NO_DEFAULT: Final = object()
Regex = Callable[[str], re.Pattern[str]]


class FastAcceptance:
    """`accept(data)`: the valid document with its defaults, or None (ask the full one)."""

    def __init__(
        self, schema: Mapping[str, Any], default_applies: DefaultApplies, regex: Regex
    ) -> None:
        self._default_applies = default_applies
        self._regex = regex
        self._check = fastjsonschema.compile(_ascii_patterns(schema), use_default=False)
        self._filler = self._plan(schema)

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
        if self._filler is not None:
            self._filler(instance)
        try:
            self._check(instance)
        except fastjsonschema.JsonSchemaException:
            return None
        return instance

    # The defaults walk is planned once per schema: which properties get which default,
    # and which subschemas can hold a default at all (a walk into the others changes
    # nothing). Walking the schema for every body, asking of each missing property whether
    # its default applies, took 40 of a trunk's 55 µs of validation.

    def _plan(self, schema: Mapping[str, Any]) -> Filler | None:
        """What filling `schema`'s defaults does to an instance; None: nothing, ever.
        The descents of validation.py's keywords, in the schema's key order as there:
        patternProperties (sorted first) never sees a key `properties` defaults in."""
        steps: list[Filler] = []
        for keyword in schema:
            step = None
            if keyword == "properties":
                step = self._plan_properties(schema[keyword])
            elif keyword == "patternProperties":
                step = self._plan_pattern_properties(schema[keyword])
            elif keyword == "additionalProperties":
                step = self._plan_additional_properties(schema)
            if step is not None:
                steps.append(step)
        on_items = self._plan_items(schema)
        if not steps and on_items is None:
            return None

        def fill(instance: Any) -> None:
            if isinstance(instance, dict):
                for step in steps:
                    step(instance)
            elif isinstance(instance, list) and on_items is not None:
                on_items(instance)

        return fill

    def _plan_properties(self, properties: Mapping[str, Any]) -> Filler | None:
        entries: list[tuple[str, Any, Filler | None]] = []
        for name, subschema in properties.items():
            default = subschema["default"] if self._default_applies(subschema) else _NO_DEFAULT
            inner = self._plan(subschema)
            if default is not _NO_DEFAULT or inner is not None:
                entries.append((name, default, inner))
        if not entries:
            return None

        def fill(instance: dict[str, Any]) -> None:
            for name, default, inner in entries:
                if name not in instance:
                    if default is _NO_DEFAULT:
                        continue
                    instance[name] = _fresh(default)
                if inner is not None:
                    inner(instance[name])

        return fill

    def _plan_pattern_properties(self, patterns: Mapping[str, Any]) -> Filler | None:
        planned = [
            (self._regex(pattern), inner)
            for pattern, subschema in patterns.items()
            if (inner := self._plan(subschema)) is not None
        ]
        if not planned:
            return None

        def fill(instance: dict[str, Any]) -> None:
            for key, value in list(instance.items()):
                for regex, inner in planned:
                    if regex.search(key):
                        inner(value)

        return fill

    def _plan_additional_properties(self, schema: Mapping[str, Any]) -> Filler | None:
        extra = schema["additionalProperties"]
        if not isinstance(extra, dict) or (inner := self._plan(extra)) is None:
            return None
        named = schema.get("properties", {})
        patterns = [self._regex(p) for p in schema.get("patternProperties", {})]

        def fill(instance: dict[str, Any]) -> None:
            for key, value in list(instance.items()):
                if key not in named and not any(p.search(key) for p in patterns):
                    inner(value)

        return fill

    def _plan_items(self, schema: Mapping[str, Any]) -> Filler | None:
        items = schema.get("items")
        if isinstance(items, dict):
            each = self._plan(items)
            if each is None:
                return None

            def fill_each(instance: list[Any]) -> None:
                for item in instance:
                    each(item)

            return fill_each
        if not isinstance(items, list):
            return None
        positional = [self._plan(subschema) for subschema in items]
        extra = schema.get("additionalItems")
        rest = self._plan(extra) if isinstance(extra, dict) else None
        if rest is None and all(inner is None for inner in positional):
            return None

        def fill_positions(instance: list[Any]) -> None:
            for inner, item in zip(positional, instance, strict=False):
                if inner is not None:
                    inner(item)
            if rest is not None:
                for item in instance[len(positional) :]:
                    rest(item)

        return fill_positions


def _fresh(default: Any) -> Any:
    """A default to store in a document: its own copy, unless it cannot be changed."""
    if default is None or isinstance(default, str | int | float | bool):
        return default
    return copy.deepcopy(default)


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
