"""Schema validation with KAZOO's semantics (docs/kazoo-compatibility.md §5.2, §6, Appendix A)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator
from jsonschema.exceptions import SchemaError

from service.kazoo.validation import SchemaValidator, ValidationResult, schema_path

DID = "+14155550100"
DID_PATTERN = r"^\+?\d*$"


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    return SchemaValidator.from_file(schema_path())


@pytest.fixture(scope="module")
def strict_validator() -> SchemaValidator:
    return SchemaValidator.from_file(schema_path(), strict=True)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(schema_path().read_text(encoding="utf-8"))


def adhoc(properties: dict[str, Any], *, strict: bool = False) -> SchemaValidator:
    """A validator for a small draft-04 schema, for keywords connectivity.json lacks."""
    return SchemaValidator(
        {"$schema": "http://json-schema.org/draft-04/schema#", "properties": properties},
        strict=strict,
    )


def server(**fields: Any) -> dict[str, Any]:
    return {"auth": {"auth_user": "pbx1", "auth_password": "s3cret"}, **fields}


def only_error(result: ValidationResult) -> tuple[str, str, dict[str, Any]]:
    assert result.value is None
    assert not result.ok
    assert len(result.errors) == 1, result.errors
    [(path, by_code)] = result.errors.items()
    [(code, detail)] = by_code.items()
    return path, code, detail


# --- the schema file -----------------------------------------------------------------


def test_schema_path_is_the_repository_schema_file() -> None:
    path = schema_path()
    assert path.parts[-2:] == ("schemas", "connectivity.json")
    assert path.parent.parent == Path(__file__).resolve().parent.parent
    assert path.is_file()


def test_schema_file_is_valid_draft4(schema: dict[str, Any]) -> None:
    Draft4Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert "_id" not in schema


def test_schema_file_is_pretty_printed_with_sorted_keys(schema: dict[str, Any]) -> None:
    text = schema_path().read_text(encoding="utf-8")
    assert text == json.dumps(schema, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def test_schema_top_level_has_no_type_and_no_required(schema: dict[str, Any]) -> None:
    assert "type" not in schema
    assert "required" not in schema
    assert sorted(schema["properties"]) == ["account", "name", "servers"]


SERVER = ("properties", "servers", "items")
AUTH = (*SERVER, "properties", "auth")
OPTIONS = (*SERVER, "properties", "options")
DIDS = (*SERVER, "properties", "DIDs")
DID_SCHEMA = (*DIDS, "patternProperties", DID_PATTERN)


def at(schema: dict[str, Any], *path: str) -> Any:
    for part in path:
        schema = schema[part]
    return schema


@pytest.mark.parametrize(
    ("path", "default"),
    [
        (("properties", "servers"), []),
        ((*AUTH, "properties", "auth_method"), "password"),
        ((*DID_SCHEMA, "properties", "force_outbound"), False),
        ((*OPTIONS, "properties", "delay"), 0),
        ((*OPTIONS, "properties", "enabled"), True),
        ((*OPTIONS, "properties", "force_outbound"), False),
        ((*OPTIONS, "properties", "hunt_non_reconcilable"), False),
        ((*OPTIONS, "properties", "inbound_format"), "npan"),
        ((*OPTIONS, "properties", "media_handling"), "bypass"),
    ],
)
def test_schema_carries_each_default(
    schema: dict[str, Any], path: tuple[str, ...], default: Any
) -> None:
    assert at(schema, *path)["default"] == default


def test_schema_has_no_other_defaults(schema: dict[str, Any]) -> None:
    def count(node: Any) -> int:
        if isinstance(node, dict):
            return ("default" in node) + sum(count(v) for v in node.values())
        return sum(count(v) for v in node) if isinstance(node, list) else 0

    assert count(schema) == 9


ACCOUNT = ("properties", "account")
CID_MAX = {"type": "string", "maxLength": 35}
CID_RANGE = {"type": "string", "minLength": 1, "maxLength": 35}


@pytest.mark.parametrize(
    ("path", "constraints"),
    [
        (ACCOUNT, {"type": "object"}),
        ((*ACCOUNT, "properties", "caller_id", "properties", "cid_name"), CID_MAX),
        ((*ACCOUNT, "properties", "caller_id", "properties", "cid_number"), CID_MAX),
        ((*ACCOUNT, "properties", "emergency_caller_id", "properties", "cid_name"), CID_MAX),
        ((*ACCOUNT, "properties", "emergency_caller_id", "properties", "cid_number"), CID_MAX),
        ((*ACCOUNT, "properties", "trunks"), {"type": "integer", "minimum": 0}),
        (("properties", "name"), {"type": "string"}),
        (("properties", "servers"), {"type": "array"}),
        (SERVER, {"type": "object", "required": ["auth"]}),
        ((*SERVER, "properties", "name"), {"type": "string", "minLength": 1}),
        (AUTH, {"type": "object", "required": ["auth_method"]}),
        (
            (*AUTH, "properties", "auth_method"),
            {"type": "string", "enum": ["password", "Password", "IP", "ip"]},
        ),
        ((*AUTH, "properties", "auth_password"), {"type": "string", "minLength": 1}),
        ((*AUTH, "properties", "auth_user"), {"type": "string", "minLength": 1}),
        ((*AUTH, "properties", "ip"), {"type": "string"}),
        ((*AUTH, "properties", "port"), {"type": "integer"}),
        (DIDS, {"type": "object"}),
        (DID_SCHEMA, {"type": "object"}),
        ((*DID_SCHEMA, "properties", "caller_id", "properties", "cid_name"), CID_RANGE),
        ((*DID_SCHEMA, "properties", "caller_id", "properties", "cid_number"), CID_RANGE),
        ((*DID_SCHEMA, "properties", "failover", "properties", "e164"), {"type": "string"}),
        ((*DID_SCHEMA, "properties", "failover", "properties", "sip"), {"type": "string"}),
        ((*DID_SCHEMA, "properties", "force_outbound"), {"type": "boolean"}),
        ((*DID_SCHEMA, "properties", "options"), {"type": "array", "items": {"type": "string"}}),
        (OPTIONS, {"type": "object"}),
        ((*OPTIONS, "properties", "caller_id", "properties", "cid_name"), CID_RANGE),
        ((*OPTIONS, "properties", "caller_id", "properties", "cid_number"), CID_RANGE),
        ((*OPTIONS, "properties", "emergency_caller_id", "properties", "cid_name"), CID_MAX),
        ((*OPTIONS, "properties", "emergency_caller_id", "properties", "cid_number"), CID_MAX),
        ((*OPTIONS, "properties", "delay"), {"type": "integer"}),
        ((*OPTIONS, "properties", "enabled"), {"type": "boolean"}),
        (
            (*OPTIONS, "properties", "dynamic_flags"),
            {"type": "array", "items": {"type": "string"}},
        ),
        ((*OPTIONS, "properties", "flags"), {"type": "array", "items": {"type": "string"}}),
        ((*OPTIONS, "properties", "failover", "properties", "e164"), {"type": "string"}),
        ((*OPTIONS, "properties", "failover", "properties", "sip"), {"type": "string"}),
        ((*OPTIONS, "properties", "force_outbound"), {"type": "boolean"}),
        ((*OPTIONS, "properties", "hunt_account_id"), {"type": "string"}),
        ((*OPTIONS, "properties", "hunt_non_reconcilable"), {"type": "boolean"}),
        ((*OPTIONS, "properties", "ignore_early_media"), {"type": "boolean"}),
        (
            (*OPTIONS, "properties", "inbound_format"),
            {"type": "string", "enum": ["e164", "npan", "1npan", "username", "strip_plus"]},
        ),
        ((*OPTIONS, "properties", "ip"), {"type": "string"}),
        ((*OPTIONS, "properties", "port"), {"type": "integer"}),
        (
            (*OPTIONS, "properties", "media_handling"),
            {"type": "string", "enum": ["process", "bypass"]},
        ),
        ((*OPTIONS, "properties", "progress_timeout"), {"type": "integer", "minimum": 1}),
        ((*OPTIONS, "properties", "timeout"), {"type": "integer"}),
        (
            (*OPTIONS, "properties", "sip_headers"),
            {"type": "array", "items": {"type": "object"}},
        ),
    ],
)
def test_schema_carries_each_constraint(
    schema: dict[str, Any], path: tuple[str, ...], constraints: dict[str, Any]
) -> None:
    node = at(schema, *path)
    assert {key: node.get(key) for key in constraints} == constraints
    # no constraint beyond Appendix A (e.g. an unexpected minLength)
    extra = {"minLength", "maxLength", "minimum", "maximum", "enum", "pattern"} - set(constraints)
    assert not extra & set(node)


@pytest.mark.parametrize(
    ("path", "description"),
    [
        (
            (),
            "Trunkstore configuration document - this is old stuff; "
            "do not recommend building off this if possible",
        ),
        (ACCOUNT, "Information that applies to the account as a whole"),
        (
            (*ACCOUNT, "properties", "trunks"),
            "The number of two-way trunks this account has purchased",
        ),
        (("properties", "name"), "Human-friendly name of the trunkstore account"),
        (
            ("properties", "servers"),
            "What servers will be allowed to make/receive calls via this account",
        ),
        ((*SERVER, "properties", "name"), "Human-friendly name of the server"),
        ((*AUTH, "properties", "auth_method"), "What type of auth mechanism to use"),
        ((*AUTH, "properties", "auth_password"), "Password of the user@auth_realm"),
        ((*AUTH, "properties", "port"), "Port to send SIP traffic for the remote device"),
        (
            (*DID_SCHEMA, "properties", "failover", "properties", "sip"),
            "A SIP URI (sip:user@host) to call for failover",
        ),
        (
            (*OPTIONS, "properties", "delay"),
            "The time, in seconds, to wait before attempting to call the server",
        ),
        (
            (*OPTIONS, "properties", "media_handling"),
            "Determine whether the switch should be in the media path or not",
        ),
        (
            (*OPTIONS, "properties", "sip_headers"),
            "List of arbitrary SIP headers to add to the INVITE",
        ),
    ],
)
def test_schema_carries_the_documented_descriptions(
    schema: dict[str, Any], path: tuple[str, ...], description: str
) -> None:
    assert at(schema, *path)["description"] == description


# --- loading -------------------------------------------------------------------------


def test_from_file_reads_the_schema_once(tmp_path: Path) -> None:
    copied = tmp_path / "connectivity.json"
    shutil.copy(schema_path(), copied)
    loaded = SchemaValidator.from_file(copied)
    copied.unlink()
    assert loaded.validate({}).value == {"servers": []}


def test_from_file_rejects_an_invalid_schema(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"properties": {"a": {"type": "integr"}}}', encoding="utf-8")
    with pytest.raises(SchemaError):
        SchemaValidator.from_file(broken)


def test_a_schema_declaring_another_draft_is_refused() -> None:
    with pytest.raises(ValueError, match="draft-04"):
        SchemaValidator({"$schema": "http://json-schema.org/draft-07/schema#"})


# --- error format (§5.2) -------------------------------------------------------------


def test_behaviour_example_of_section_5_2(validator: SchemaValidator) -> None:
    long_name = "N" * 36
    result = validator.validate(
        {
            "servers": [{"options": {"delay": "soon"}}],
            "account": {"trunks": -1, "caller_id": {"cid_name": long_name}},
        }
    )
    assert result.value is None
    assert result.errors == {
        "servers.0.auth": {
            "required": {"message": "Field is required but missing", "value": "auth"}
        },
        "servers.0.options.delay": {
            "type": {
                "message": "Value did not match type(s): integer",
                "target": "integer",
                "value": "soon",
            }
        },
        "account.trunks": {
            "minimum": {"message": "Value must be at least 0", "target": 0, "value": -1}
        },
        "account.caller_id.cid_name": {
            "maxLength": {
                "message": "String must not be more than 35 characters",
                "target": 35,
                "cause": long_name,
                "value": long_name,
            }
        },
    }


def test_required_is_reported_at_parent_path_plus_name(validator: SchemaValidator) -> None:
    assert only_error(validator.validate({"servers": [{"name": "x"}]})) == (
        "servers.0.auth",
        "required",
        {"message": "Field is required but missing", "value": "auth"},
    )


def test_type_error_message(validator: SchemaValidator) -> None:
    assert only_error(validator.validate({"servers": [server(auth="x")]})) == (
        "servers.0.auth",
        "type",
        {"message": "Value did not match type(s): object", "target": "object", "value": "x"},
    )


def test_union_types_are_joined_with_comma_space() -> None:
    result = adhoc({"a": {"type": ["string", "null"]}}).validate({"a": 1})
    assert only_error(result) == (
        "a",
        "type",
        {
            "message": "Value did not match type(s): string, null",
            "target": "string, null",
            "value": 1,
        },
    )


def test_enum_error_message(validator: SchemaValidator) -> None:
    doc = {"servers": [server(options={"inbound_format": "E164"})]}
    assert only_error(validator.validate(doc)) == (
        "servers.0.options.inbound_format",
        "enum",
        {
            "message": "Value not found in enumerated list of values",
            "target": ["e164", "npan", "1npan", "username", "strip_plus"],
            "value": "E164",
        },
    )


def test_min_length_error_message(validator: SchemaValidator) -> None:
    assert only_error(validator.validate({"servers": [server(name="")]})) == (
        "servers.0.name",
        "minLength",
        {"message": "String must be at least 1 characters", "target": 1, "cause": "", "value": ""},
    )


def test_max_length_error_message(validator: SchemaValidator) -> None:
    number = "1" * 36
    doc = {"servers": [server(options={"emergency_caller_id": {"cid_number": number}})]}
    assert only_error(validator.validate(doc)) == (
        "servers.0.options.emergency_caller_id.cid_number",
        "maxLength",
        {
            "message": "String must not be more than 35 characters",
            "target": 35,
            "cause": number,
            "value": number,
        },
    )


def test_string_length_counts_code_points_not_bytes(validator: SchemaValidator) -> None:
    fits = "é😀" * 17 + "é"  # 35 code points, 86 UTF-8 bytes
    assert validator.validate({"account": {"caller_id": {"cid_name": fits}}}).ok
    path, code, _ = only_error(
        validator.validate({"account": {"caller_id": {"cid_name": fits + "😀"}}})
    )
    assert (path, code) == ("account.caller_id.cid_name", "maxLength")


def test_minimum_error_message(validator: SchemaValidator) -> None:
    doc = {"servers": [server(options={"progress_timeout": 0})]}
    assert only_error(validator.validate(doc)) == (
        "servers.0.options.progress_timeout",
        "minimum",
        {"message": "Value must be at least 1", "target": 1, "value": 0},
    )


def test_maximum_error_message() -> None:
    assert only_error(adhoc({"n": {"type": "integer", "maximum": 10}}).validate({"n": 11})) == (
        "n",
        "maximum",
        {"message": "Value must be at most 10", "target": 10, "value": 11},
    )


def test_pattern_error_message() -> None:
    result = adhoc({"s": {"type": "string", "pattern": "^[a-z]+$"}}).validate({"s": "A1"})
    assert only_error(result) == (
        "s",
        "pattern",
        {"message": "Failed to match pattern '^[a-z]+$'", "target": "^[a-z]+$", "value": "A1"},
    )


def test_pattern_digit_class_is_ascii_only_like_erlang_re() -> None:
    checker = adhoc({"s": {"type": "string", "pattern": r"^\d+$"}})
    assert checker.validate({"s": "0123456789"}).ok
    assert only_error(checker.validate({"s": "٣٤"}))[1] == "pattern"


@pytest.mark.parametrize(
    ("keyword", "limit", "value", "message"),
    [
        ("minItems", 2, [1], "The list must have at least 2 items"),
        ("maxItems", 1, [1, 2], "The list is more than 1 items"),
    ],
)
def test_item_count_error_messages(
    keyword: str, limit: int, value: list[int], message: str
) -> None:
    result = adhoc({"l": {"type": "array", keyword: limit}}).validate({"l": value})
    assert only_error(result) == (
        "l",
        keyword,
        {"message": message, "target": limit, "value": value},
    )


def test_unique_items_error_message() -> None:
    result = adhoc({"l": {"type": "array", "uniqueItems": True}}).validate({"l": [1, 1]})
    assert only_error(result) == (
        "l",
        "uniqueItems",
        {"message": "List of items is not unique", "value": [1, 1]},
    )


def test_unlisted_keyword_gets_kazoo_fallback_message() -> None:
    result = adhoc({"n": {"type": "integer", "multipleOf": 5}}).validate({"n": 7})
    assert only_error(result) == ("n", "multipleOf", {"message": "failed to validate", "value": 7})


def test_array_indices_are_zero_based(validator: SchemaValidator) -> None:
    doc = {"servers": [server(), server(), {"auth": {"auth_method": "ldap"}}]}
    path, code, detail = only_error(validator.validate(doc))
    assert (path, code, detail["value"]) == ("servers.2.auth.auth_method", "enum", "ldap")


def test_array_item_index_inside_a_nested_list(validator: SchemaValidator) -> None:
    doc = {"servers": [server(options={"flags": ["a", 7]})]}
    assert only_error(validator.validate(doc))[:2] == ("servers.0.options.flags.1", "type")


def test_error_inside_a_did_uses_the_number_as_path_segment(validator: SchemaValidator) -> None:
    doc = {"servers": [server(DIDs={DID: {"caller_id": {"cid_name": ""}}})]}
    path, code, _ = only_error(validator.validate(doc))
    assert (path, code) == (f"servers.0.DIDs.{DID}.caller_id.cid_name", "minLength")


def test_dots_inside_keys_are_escaped_as_percent_2e() -> None:
    result = adhoc({"a.b": {"properties": {"c.d": {"type": "integer"}}}}).validate(
        {"a.b": {"c.d": "x"}}
    )
    assert only_error(result)[:2] == ("a%2Eb.c%2Ed", "type")


def test_all_errors_are_collected(validator: SchemaValidator) -> None:
    doc = {
        "name": 1,
        "servers": [{"name": ""}, server(options={"media_handling": "relay", "timeout": "x"})],
    }
    assert set(validator.validate(doc).errors) == {
        "name",
        "servers.0.auth",
        "servers.0.name",
        "servers.1.options.media_handling",
        "servers.1.options.timeout",
    }


def test_last_error_at_the_same_path_wins(validator: SchemaValidator) -> None:
    # auth_method 5 fails `enum` then `type` (schema keys are sorted): only `type` stays
    doc = {"servers": [{"auth": {"auth_method": 5}}]}
    assert validator.validate(doc).errors == {
        "servers.0.auth.auth_method": {
            "type": {
                "message": "Value did not match type(s): string",
                "target": "string",
                "value": 5,
            }
        }
    }


def test_non_object_did_value_is_a_type_error(validator: SchemaValidator) -> None:
    doc = {"servers": [server(DIDs={DID: "yes"})]}
    assert only_error(validator.validate(doc))[:2] == (f"servers.0.DIDs.{DID}", "type")


# --- defaults (§6.2) -----------------------------------------------------------------


def test_empty_document_gets_the_servers_default(validator: SchemaValidator) -> None:
    assert validator.validate({}) == ValidationResult(value={"servers": []}, errors={})


def test_every_server_level_default_is_applied(validator: SchemaValidator) -> None:
    doc = {"servers": [{"auth": {}, "options": {}, "DIDs": {DID: {}}}]}
    assert validator.validate(doc).value == {
        "servers": [
            {
                "auth": {"auth_method": "password"},
                "options": {
                    "delay": 0,
                    "enabled": True,
                    "force_outbound": False,
                    "hunt_non_reconcilable": False,
                    "inbound_format": "npan",
                    "media_handling": "bypass",
                },
                "DIDs": {DID: {"force_outbound": False}},
            }
        ]
    }


def test_empty_auth_is_valid_thanks_to_the_auth_method_default(
    validator: SchemaValidator,
) -> None:
    result = validator.validate({"servers": [{"auth": {}}]})
    assert result.ok
    assert result.value == {"servers": [{"auth": {"auth_method": "password"}}]}


def test_defaults_apply_to_every_array_item(validator: SchemaValidator) -> None:
    doc = {"servers": [{"auth": {}}, {"auth": {"auth_method": "IP", "ip": "10.0.0.1"}}]}
    servers = validator.validate(doc).value["servers"]  # type: ignore[index]
    assert [s["auth"]["auth_method"] for s in servers] == ["password", "IP"]


def test_present_values_are_not_replaced_by_defaults(validator: SchemaValidator) -> None:
    options = {"enabled": False, "delay": 3, "media_handling": "process"}
    doc = {"servers": [server(options=options)]}
    result_options = validator.validate(doc).value["servers"][0]["options"]  # type: ignore[index]
    assert {k: result_options[k] for k in options} == options


def test_absent_parents_are_not_synthesised(validator: SchemaValidator) -> None:
    value = validator.validate({"account": {}, "servers": [server()]}).value
    assert value == {
        "account": {},
        "servers": [server(auth={**server()["auth"], "auth_method": "password"})],
    }


def test_did_keys_outside_the_pattern_get_no_defaults(validator: SchemaValidator) -> None:
    dids = {DID: {}, "": {}, "4155550100": {}, "sip:me@example.com": {}, "٣٣": {}}
    result = validator.validate({"servers": [server(DIDs=dids)]})
    assert result.value["servers"][0]["DIDs"] == {  # type: ignore[index]
        DID: {"force_outbound": False},
        "": {"force_outbound": False},
        "4155550100": {"force_outbound": False},
        "sip:me@example.com": {},
        "٣٣": {},
    }


def test_values_under_non_matching_did_keys_are_not_validated(
    validator: SchemaValidator,
) -> None:
    doc = {"servers": [server(DIDs={"sip:x": {"force_outbound": "maybe"}})]}
    assert validator.validate(doc).ok


def test_a_server_without_auth_gets_no_default_auth(validator: SchemaValidator) -> None:
    assert only_error(validator.validate({"servers": [{"options": {}}]}))[:2] == (
        "servers.0.auth",
        "required",
    )


def test_defaults_are_not_returned_when_invalid(validator: SchemaValidator) -> None:
    result = validator.validate({"name": 5, "servers": [{"auth": {}}]})
    assert result.value is None
    assert list(result.errors) == ["name"]


def test_default_needs_a_matching_type() -> None:
    checker = adhoc(
        {
            "untyped": {"default": 1},
            "mistyped": {"type": "string", "default": 1},
            "typed": {"type": ["string", "integer"], "default": 1},
        }
    )
    assert checker.validate({}).value == {"typed": 1}


def test_defaults_nested_inside_an_inserted_default_are_applied() -> None:
    checker = adhoc(
        {
            "outer": {
                "type": "object",
                "default": {},
                "properties": {"inner": {"type": "integer", "default": 7}},
            }
        }
    )
    assert checker.validate({}).value == {"outer": {"inner": 7}}


def test_inserted_defaults_are_copies(validator: SchemaValidator) -> None:
    first = validator.validate({}).value
    first["servers"].append("mutated")  # type: ignore[index]
    assert validator.validate({}).value == {"servers": []}


# --- lenient coercion (§6.3) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("42", 42),
        ("4.6", 5),
        (4.6, 5),
        (4.0, 4),
        (2.5, 3),
        (-2.5, -3),
        ("-2.5", -3),
        ("+7", 7),
        ("007", 7),
        ("1.5e1", 15),
        (1e2, 100),
    ],
)
def test_integer_values_are_repaired(validator: SchemaValidator, given: Any, stored: int) -> None:
    result = validator.validate({"servers": [server(options={"timeout": given})]})
    assert result.ok
    timeout = result.value["servers"][0]["options"]["timeout"]  # type: ignore[index]
    assert timeout == stored
    assert type(timeout) is int


@pytest.mark.parametrize(
    "given",
    [
        "soon",
        "",
        " 42",
        "42 ",
        "1e5",
        "4.",
        ".5",
        "4_2",
        "٤٢",
        "Infinity",
        True,
        None,
        [4],
        {"n": 4},
    ],
)
def test_unrepairable_integer_values_stay_type_errors(
    validator: SchemaValidator, given: Any
) -> None:
    assert only_error(validator.validate({"account": {"trunks": given}})) == (
        "account.trunks",
        "type",
        {"message": "Value did not match type(s): integer", "target": "integer", "value": given},
    )


@pytest.mark.parametrize(("given", "stored"), [("true", True), ("false", False)])
def test_boolean_strings_are_repaired(validator: SchemaValidator, given: str, stored: bool) -> None:
    result = validator.validate({"servers": [server(options={"enabled": given})]})
    assert result.value["servers"][0]["options"]["enabled"] is stored  # type: ignore[index]


@pytest.mark.parametrize("given", ["TRUE", "yes", "1", 1, 0, None])
def test_other_boolean_values_stay_type_errors(validator: SchemaValidator, given: Any) -> None:
    doc = {"servers": [server(DIDs={DID: {"force_outbound": given}})]}
    path, code, detail = only_error(validator.validate(doc))
    assert (path, code, detail["value"]) == (f"servers.0.DIDs.{DID}.force_outbound", "type", given)


@pytest.mark.parametrize(("given", "stored"), [("42", 42), ("4.5", 4.5), ("-0.25", -0.25)])
def test_number_strings_are_repaired(given: str, stored: float) -> None:
    value = adhoc({"n": {"type": "number"}}).validate({"n": given}).value
    assert value == {"n": stored}
    assert type(value["n"]) is type(stored)  # type: ignore[index]


@pytest.mark.parametrize("given", ["abc", "1e5", True])
def test_unrepairable_number_values_stay_type_errors(given: Any) -> None:
    assert only_error(adhoc({"n": {"type": "number"}}).validate({"n": given}))[:2] == ("n", "type")


def test_union_types_are_never_repaired() -> None:
    result = adhoc({"n": {"type": ["integer", "null"]}}).validate({"n": "42"})
    assert only_error(result)[:2] == ("n", "type")


def test_null_is_a_type_error_and_gets_no_default(validator: SchemaValidator) -> None:
    path, code, detail = only_error(
        validator.validate({"servers": [server(options={"delay": None})]})
    )
    assert (path, code, detail["value"]) == ("servers.0.options.delay", "type", None)


def test_repaired_value_is_checked_again(validator: SchemaValidator) -> None:
    assert only_error(validator.validate({"account": {"trunks": "-1"}})) == (
        "account.trunks",
        "minimum",
        {"message": "Value must be at least 0", "target": 0, "value": -1},
    )


def test_repairs_apply_while_unrepairable_errors_are_reported(
    validator: SchemaValidator,
) -> None:
    doc = {"account": {"trunks": "2"}, "servers": [server(options={"timeout": "soon"})]}
    assert only_error(validator.validate(doc))[:2] == ("servers.0.options.timeout", "type")


def test_repaired_document_gets_defaults(validator: SchemaValidator) -> None:
    doc = {"account": {"trunks": "0"}, "servers": [{"auth": {"port": "5060"}}]}
    assert validator.validate(doc).value == {
        "account": {"trunks": 0},
        "servers": [{"auth": {"port": 5060, "auth_method": "password"}}],
    }


# --- strict mode ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "name"), [("42", "integer"), (4.0, "integer"), ("true", "boolean")]
)
def test_strict_mode_repairs_nothing(
    strict_validator: SchemaValidator, given: Any, name: str
) -> None:
    options = {"delay": given} if name == "integer" else {"enabled": given}
    path, code, detail = only_error(
        strict_validator.validate({"servers": [server(options=options)]})
    )
    assert (code, detail["target"], detail["value"]) == ("type", name, given)
    assert path.startswith("servers.0.options.")


def test_strict_mode_still_applies_defaults(strict_validator: SchemaValidator) -> None:
    assert strict_validator.validate({"servers": [{"auth": {}}]}).value == {
        "servers": [{"auth": {"auth_method": "password"}}]
    }


def test_booleans_are_never_integers(strict_validator: SchemaValidator) -> None:
    assert only_error(strict_validator.validate({"account": {"trunks": False}}))[:2] == (
        "account.trunks",
        "type",
    )


# --- unknown fields and immutability (§6.4) ------------------------------------------


def test_unknown_fields_are_kept_at_every_depth(validator: SchemaValidator) -> None:
    doc = {
        "ui_metadata": {"origin": "callflows"},
        "id": None,
        "account": {"auth_realm": "a.example.com", "credits": {"prepay": 1}},
        "servers": [
            server(
                server_name="PBX 1",
                monitor={"monitor_enabled": False},
                options={"codecs": ["PCMU"], "e911_info": {}},
                DIDs={DID: {"extra": [1, None]}},
            )
        ],
    }
    value = validator.validate(doc).value
    assert value is not None
    assert value["ui_metadata"] == {"origin": "callflows"}
    assert value["id"] is None
    assert value["account"] == {"auth_realm": "a.example.com", "credits": {"prepay": 1}}
    kept = value["servers"][0]
    assert (kept["server_name"], kept["monitor"]) == ("PBX 1", {"monitor_enabled": False})
    assert (kept["options"]["codecs"], kept["options"]["e911_info"]) == (["PCMU"], {})
    assert kept["DIDs"][DID] == {"extra": [1, None], "force_outbound": False}


@pytest.mark.parametrize(
    "doc",
    [
        {"servers": [{"auth": {}, "options": {}, "DIDs": {DID: {}}}]},
        {"account": {"trunks": "3"}, "servers": [{"auth": {"port": "5060"}}]},
        {"account": {"trunks": "x"}, "servers": [{}]},
    ],
    ids=["defaults", "repaired", "invalid"],
)
def test_input_is_never_mutated(validator: SchemaValidator, doc: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    result = validator.validate(doc)
    assert doc == before
    if result.value is not None:
        assert result.value is not doc
        assert result.value["servers"][0] is not doc["servers"][0]


def test_repeated_did_values_each_get_their_own_defaults_and_errors(
    validator: SchemaValidator, strict_validator: SchemaValidator
) -> None:
    # Equal DID values are validated once and remembered (validation.py): each must
    # still come out as a validation of its own would leave it.
    dids = {"+14155550100": {}, "+14155550101": {}, "+14155550102": {"options": ["x"]}}
    for _ in range(2):  # the second time, from memory
        result = validator.validate({"servers": [server(DIDs=dict(dids))]})
        assert result.ok and result.value is not None
        got = result.value["servers"][0]["DIDs"]
        assert got["+14155550100"] == {"force_outbound": False}
        assert got["+14155550102"] == {"options": ["x"], "force_outbound": False}
        got["+14155550100"]["force_outbound"] = True  # a caller's change stays its own
        assert got["+14155550101"] == {"force_outbound": False}
    bad = {"+14155550100": {"force_outbound": "maybe"}, "+14155550101": {"force_outbound": "maybe"}}
    for _ in range(2):  # an invalid value is never remembered as valid
        result = strict_validator.validate({"servers": [server(DIDs=bad)]})
        assert not result.ok
        assert set(result.errors) == {
            "servers.0.DIDs.+14155550100.force_outbound",
            "servers.0.DIDs.+14155550101.force_outbound",
        }
