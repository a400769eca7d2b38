"""Validate connectivity documents against the draft-04 schema, as KAZOO does.

KAZOO runs its jesse fork (``2600hz/jesse`` 1.5-rc13) through ``kz_json_schema`` and
``cb_context`` (docs/kazoo-compatibility.md §5.2, §6).  We compile the same schema once with
jsonschema's ``Draft4Validator`` and replace a few keywords so that a client sees
what KAZOO would show it:

* ``properties`` fills in defaults while validating (jesse ``use_defaults``);
* ``required`` reports the missing property in the error path (kz_json_schema);
* ``pattern`` / ``patternProperties`` match like Erlang's ``re`` (ASCII ``\\d``).

Errors are rendered as KAZOO's validation-error ``data`` object.  Unless ``strict``,
wrongly typed integers, numbers and booleans are repaired and the document is
validated again, as ``cb_context:maybe_fix_js_types/5`` does.

Error order (it decides which error survives when two hit the same path): jesse's
order, i.e. keywords in the order they appear in the schema file (which is sorted,
so ``enum`` comes before ``type`` and ``properties`` before ``required``),
properties in schema order, array items and pattern-matched keys in document order.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, partial
from pathlib import Path
from typing import Any, Final

import orjson
from jsonschema import Draft4Validator, validators
from jsonschema.exceptions import ValidationError

from service.fast_json import MAX_SAFE_INTEGER
from service.kazoo.fast_validation import FastAcceptance
from service.paths import SCHEMAS_DIR

DRAFT4_URI: Final = "http://json-schema.org/draft-04/schema#"

Errors = dict[str, dict[str, dict[str, Any]]]

# The classes made by `validators.extend` have `descend`, which
# jsonschema.protocols.Validator does not declare; keyword functions receive one.
_Validator = Any


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of one validation: the document with defaults, or KAZOO's error data."""

    value: dict[str, Any] | None
    errors: Errors = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def schema_path(name: str = "connectivity") -> Path:
    """Location of ``schemas/<name>.json``."""
    return SCHEMAS_DIR / f"{name}.json"


# --- keywords that differ from plain jsonschema --------------------------------------


def _default_applies(validator: _Validator, subschema: Mapping[str, Any]) -> bool:
    # jesse_validator_draft4:check_default/4 and is_valid_default/3: a default is
    # used only when the property schema also has a `type` that the default matches.
    if "default" not in subschema or "type" not in subschema:
        return False
    types = subschema["type"]
    names = [types] if isinstance(types, str) else types
    return any(validator.is_type(subschema["default"], name) for name in names)


def _properties_with_defaults(
    validator: _Validator,
    properties: Mapping[str, Any],
    instance: Any,
    schema: Mapping[str, Any],
) -> Iterator[ValidationError]:
    # jesse_validator_draft4:check_properties/3 + set_default/4: an absent property
    # gets a copy of its default, which is then validated itself (so defaults nested
    # in it are applied too).  Only objects that exist are touched, so an absent
    # parent is never synthesised.  Because `properties` sorts before `required`,
    # `required` sees the inserted defaults (`"auth": {}` is valid).
    if not validator.is_type(instance, "object"):
        return
    for name, subschema in properties.items():
        if name not in instance:
            if not _default_applies(validator, subschema):
                continue
            instance[name] = copy.deepcopy(subschema["default"])
        yield from _descend_remembered(validator, instance[name], subschema, name, name)


def _required_with_name(
    validator: _Validator,
    required: Iterable[str],
    instance: Any,
    schema: Mapping[str, Any],
) -> Iterator[ValidationError]:
    # kz_json_schema:error_to_jobj/2 reports a missing property at the parent's
    # path plus the property name (`servers.0.auth`), so the name goes in the path.
    if not validator.is_type(instance, "object"):
        return
    for name in required:
        if name not in instance:
            yield ValidationError(f"{name!r} is a required property", path=[name])


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    # jesse matches with Erlang's `re` (PCRE, `unicode` but not `ucp`), where \d, \w
    # and \s are ASCII-only; Python's str patterns would also accept e.g. "٣".
    return re.compile(pattern, re.ASCII)


def _pattern_ascii(
    validator: _Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties_ascii(
    validator: _Validator,
    pattern_properties: Mapping[str, Any],
    instance: Any,
    schema: Mapping[str, Any],
) -> Iterator[ValidationError]:
    # jesse_validator_draft4:check_pattern_properties/3 walks the document's keys in
    # the outer loop; keys that match no pattern are left alone (no error, no default).
    if not validator.is_type(instance, "object"):
        return
    for key, value in list(instance.items()):
        for pattern, subschema in pattern_properties.items():
            if _regex(pattern).search(key):
                yield from _descend_remembered(validator, value, subschema, key, pattern)


# Small objects repeat: a trunk's DIDs are mostly `{}`, servers share the same few
# `auth`/`options` shapes, and each is validated (and given its defaults) the same way —
# most of a 25-DID document's validation. Validation is a pure function of
# the subschema and the value, so a small valid object seen before gets its remembered,
# defaulted form.
_REMEMBERED_LIMIT = 4096
_REMEMBERED_MAX_BYTES = 256
# (id of the subschema, the value as JSON) -> (the subschema, the valid defaulted value).
# The subschema is held so that its id cannot be reused by another while remembered.
_remembered: dict[tuple[int, bytes], tuple[Mapping[str, Any], dict[str, Any]]] = {}


def _descend_remembered(
    validator: _Validator, value: Any, subschema: Mapping[str, Any], key: str, pattern: str
) -> Iterator[ValidationError]:
    """`validator.descend(value, subschema)`, from memory for a small valid object."""
    blob = _small_object_json(value)
    if blob is None:
        yield from validator.descend(value, subschema, path=key, schema_path=pattern)
        return
    known = _remembered.get((id(subschema), blob))
    if known is not None and known[0] is subschema:
        value.update(copy.deepcopy(known[1]))  # the defaults the validator would add
        return
    errors = list(validator.descend(value, subschema, path=key, schema_path=pattern))
    if errors:
        yield from errors
    elif len(_remembered) < _REMEMBERED_LIMIT:
        _remembered[(id(subschema), blob)] = (subschema, copy.deepcopy(value))


def _small_object_json(value: Any) -> bytes | None:
    if not isinstance(value, dict):
        return None
    try:
        blob = orjson.dumps(value)
    except TypeError:
        return None
    return blob if len(blob) <= _REMEMBERED_MAX_BYTES else None


# Draft4Validator's type checker already agrees with jesse's is_type_valid/2:
# `integer` is Erlang is_integer/1 (4.0 is a float, so not an integer) and
# booleans are neither integers nor numbers.
_KazooDraft4Validator = validators.extend(
    Draft4Validator,
    validators={
        "pattern": _pattern_ascii,
        "patternProperties": _pattern_properties_ascii,
        "properties": _properties_with_defaults,
        "required": _required_with_name,
    },
)


# --- rendering errors as KAZOO's `data` object ---------------------------------------


def _dotted_path(path: Iterable[str | int]) -> str:
    # kz_json_schema:build_validate_error/4: 0-based indices, "." in a key -> "%2E".
    return ".".join(str(part).replace(".", "%2E") for part in path)


def _text(number: Any) -> str:
    # kz_term:to_binary/1 of the schema's limit, as used in the messages.
    return str(number)


def _type_names(types: str | list[str]) -> str:
    # kz_json_schema:get_types/1 joins union types with ", ".
    return types if isinstance(types, str) else ", ".join(types)


def _required(error: ValidationError) -> dict[str, Any]:
    return {"message": "Field is required but missing", "value": error.path[-1]}


def _type(error: ValidationError) -> dict[str, Any]:
    names = _type_names(error.validator_value)
    return {
        "message": f"Value did not match type(s): {names}",
        "target": names,
        "value": error.instance,
    }


def _enum(error: ValidationError) -> dict[str, Any]:
    return {
        "message": "Value not found in enumerated list of values",
        "target": error.validator_value,
        "value": error.instance,
    }


def _min_length(error: ValidationError) -> dict[str, Any]:
    limit = error.validator_value
    return {
        "message": f"String must be at least {_text(limit)} characters",
        "target": limit,
        "cause": error.instance,
        "value": error.instance,
    }


def _max_length(error: ValidationError) -> dict[str, Any]:
    limit = error.validator_value
    return {
        "message": f"String must not be more than {_text(limit)} characters",
        "target": limit,
        "cause": error.instance,
        "value": error.instance,
    }


# The three below take their wording first, bound with functools.partial in _DETAILS
# (plain functions rather than closures built at import, so that each rendering runs
# when an error is rendered: `make mutation` can then tell whether a test checks it).


def _limit(message: str, error: ValidationError) -> dict[str, Any]:
    limit = error.validator_value
    return {"message": f"{message} {_text(limit)}", "target": limit, "value": error.instance}


def _pattern(error: ValidationError) -> dict[str, Any]:
    pattern = error.validator_value
    return {
        "message": f"Failed to match pattern '{pattern}'",
        "target": pattern,
        "value": error.instance,
    }


def _sized(template: str, error: ValidationError) -> dict[str, Any]:
    limit = error.validator_value
    return {"message": template.format(_text(limit)), "target": limit, "value": error.instance}


def _plain(message: str, error: ValidationError) -> dict[str, Any]:
    return {"message": message, "value": error.instance}


# Codes and messages of kz_json_schema:error_to_jobj/2.  The last five cannot be
# reached with connectivity.json; additionalProperties is reported at the object's
# path (jesse would name each extra key).
_DETAILS: Final[dict[str, Callable[[ValidationError], dict[str, Any]]]] = {
    "required": _required,
    "type": _type,
    "enum": _enum,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minimum": partial(_limit, "Value must be at least"),
    "maximum": partial(_limit, "Value must be at most"),
    "pattern": _pattern,
    "minItems": partial(_sized, "The list must have at least {} items"),
    "maxItems": partial(_sized, "The list is more than {} items"),
    "minProperties": partial(_sized, "The object must have at least {} keys"),
    "uniqueItems": partial(_plain, "List of items is not unique"),
    "additionalProperties": partial(
        _plain, "Strict checking of data is enabled; only include schema-defined properties"
    ),
    "dependencies": partial(_plain, "Dependencies were not validated"),
}

# kz_json_schema:error_to_jobj/2's catch-all clause for any other failure.
_FALLBACK: Final = partial(_plain, "failed to validate")


def _kazoo_errors(errors: Iterable[ValidationError]) -> Errors:
    rendered: Errors = {}
    for error in errors:
        code = str(error.validator)
        detail = _DETAILS.get(code, _FALLBACK)(error)
        # cb_context:failed_error/2 folds errors with kz_json:merge_jobjs/2, a
        # top-level merge: a later error at the same path replaces the earlier one.
        rendered[_dotted_path(error.absolute_path)] = {code: detail}
    return rendered


# --- lenient type repair (cb_context:maybe_fix_js_types/5) ---------------------------

# kz_term:to_integer/1 and to_number/1 try binary_to_integer/1, then
# binary_to_float/1: an optional sign and ASCII digits, and a float needs digits on
# both sides of the dot ("1e5", "4." and " 42" are refused).
_ERLANG_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_ERLANG_FLOAT: Final = re.compile(r"[+-]?[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?")


def _erlang_round(number: float) -> int | None:
    # Erlang round/1: half away from zero, on the exact binary value of the float.
    if not math.isfinite(number):
        return None
    return int(Decimal(number).to_integral_value(rounding=ROUND_HALF_UP))


def _parse_erlang_number(text: str) -> int | float | None:
    if _ERLANG_INTEGER.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # beyond Python's int-from-str digit limit
            return None
    if _ERLANG_FLOAT.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else None  # binary_to_float overflows
    return None


def _to_integer(value: Any) -> int | None:
    # kz_term:to_integer/1 (notstrict): floats are rounded, strings parsed then
    # rounded; JSON true/false/null are atoms in Erlang and have no clause.
    if isinstance(value, bool):
        return None
    integer = None
    if isinstance(value, float):
        integer = _erlang_round(value)
    elif isinstance(value, str):
        number = _parse_erlang_number(value)
        integer = number if isinstance(number, int) or number is None else _erlang_round(number)
    # Beyond ±(2^53 - 1) the stored value would be rounded (see fast_json.MAX_SAFE_INTEGER).
    return integer if integer is None or abs(integer) <= MAX_SAFE_INTEGER else None


def _to_number(value: Any) -> int | float | None:
    # kz_term:to_number/1: "42" -> 42, "4.5" -> 4.5.
    return _parse_erlang_number(value) if isinstance(value, str) else None


def _to_boolean(value: Any) -> bool | None:
    # kz_term:to_boolean/1 only knows "true" and "false".
    return {"true": True, "false": False}.get(value) if isinstance(value, str) else None


# kz_json_schema:fix_js_types/2 compares the schema's `type` with exactly these
# names, so a union such as ["integer", "null"] is never repaired.  Not reproduced:
# Erlang would also read a JSON array of character codes ([52, 50]) as "42".
_REPAIRS: Final[dict[str, Callable[[Any], int | float | bool | None]]] = {
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
}


def _repaired_value(error: ValidationError) -> int | float | bool | None:
    if error.validator != "type" or not error.absolute_path:
        return None
    declared = error.validator_value
    repair = _REPAIRS.get(declared) if isinstance(declared, str) else None
    return repair(error.instance) if repair else None


def _set_at(document: Any, path: Iterable[str | int], value: Any) -> None:
    *parents, last = path
    for part in parents:
        document = document[part]
    document[last] = value


def _repair_types(document: dict[str, Any], errors: Iterable[ValidationError]) -> bool:
    repaired = False
    for error in errors:
        value = _repaired_value(error)
        if value is not None:
            _set_at(document, error.absolute_path, value)
            repaired = True
    return repaired


# --- public API ----------------------------------------------------------------------


class SchemaValidator:
    """A draft-04 schema compiled once, validating with KAZOO's semantics."""

    def __init__(
        self, schema: Mapping[str, Any], *, strict: bool = False, fast_path: bool = True
    ) -> None:
        """`fast_path=False`: every document through jsonschema (fast_validation.py)."""
        Draft4Validator.check_schema(schema)
        _require_draft4(schema)
        self._validator = _KazooDraft4Validator(schema)
        self._strict = strict
        self._fast = (
            FastAcceptance.for_schema(schema, partial(_default_applies, self._validator), _regex)
            if fast_path
            else None
        )

    @classmethod
    def from_file(cls, path: Path, *, strict: bool = False) -> SchemaValidator:
        schema = json.loads(path.read_text(encoding="utf-8"))
        return cls(schema, strict=strict)

    def validate(self, data: dict[str, Any]) -> ValidationResult:
        """Validate a copy of `data`; defaults come back only when it is valid."""
        if self._fast is not None:
            accepted = self._fast.accept(data)
            if accepted is not None:
                return ValidationResult(value=accepted)
        # The usual case, a valid body, needs one copy (the validator fills defaults in).
        instance = copy.deepcopy(data)
        errors = list(self._validator.iter_errors(instance))
        if not errors:
            return ValidationResult(value=instance)
        candidate = copy.deepcopy(data)
        while True:
            instance = copy.deepcopy(candidate)
            errors = list(self._validator.iter_errors(instance))
            if not errors:
                return ValidationResult(value=instance)
            # crossbar.schema_strict_validation (default false): otherwise repair
            # what can be repaired and validate again until nothing more changes.
            if self._strict or not _repair_types(candidate, errors):
                return ValidationResult(value=None, errors=_kazoo_errors(errors))


def _require_draft4(schema: Mapping[str, Any]) -> None:
    declared = schema.get("$schema", DRAFT4_URI)
    if declared.rstrip("#") != DRAFT4_URI.rstrip("#"):
        raise ValueError(f"expected a draft-04 schema, got $schema {declared!r}")
