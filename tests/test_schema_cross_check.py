"""connectivity.json checked by a second, independent validator: ajv (draft-04), in node.

A corpus of more than 200 documents (valid ones generated from the schema, invalid
ones made from those by one targeted mutation each, and KAZOO-shaped documents) goes
to ajv in one node process and to jsonschema's Draft4Validator; both must give the
same verdict for every document. (The generator is schemathesis' own JSON Schema
strategy, fed the schema as a request body: hypothesis-jsonschema 0.23.1 does not
run on the Hypothesis release schemathesis 4 needs.)

They read two things differently, both decided and tested below:

* A number written `79.0`: JavaScript cannot tell it from 79, so for ajv it is an
  integer; for Draft4Validator (and for KAZOO, where it is an Erlang float) it is not.
  The service keeps KAZOO's reading (strict mode rejects it; lenient mode rounds it).
* The DID key pattern
`^\\+?\\d*$` (§5.2). Python reads `\\d` as any Unicode digit and lets `$`
match before a trailing newline; JavaScript (ajv compiles patterns with the `u` flag)
reads `\\d` as [0-9] and `$` as the very end. KAZOO's PCRE is in between: ASCII `\\d`
(no UCP) but Python's `$`. Keys that fall in that gap only decide *whether* a DID's
value is validated (patternProperties never fails by itself), so the verdicts differ
only when such a key carries an invalid value. Decision: the service keeps KAZOO's
reading (tested below); the cross-check runs Draft4Validator a second time with the
pattern spelled the JavaScript way and requires exact agreement with ajv, and every
disagreement on the file as it is must be one of those keys.
"""

from __future__ import annotations

import copy
import json
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from helpers import PBX_TRUNK
from hypothesis import HealthCheck, given, seed, settings
from jsonschema import Draft4Validator
from kazoo_docs import kazoo_trunks
from kazoo_docs import public_view as kazoo_public_view

from service.kazoo.validation import SchemaValidator, schema_path

Json = dict[str, Any]

AJV_DIR = Path(__file__).resolve().parent / "ajv"
DID_PATTERN = r"^\+?\d*$"
# The same pattern as JavaScript (and so ajv) reads it.
DID_PATTERN_AS_JS = r"^\+?[0-9]*\Z"
GENERATED = 110
MUTATED = 100


def _schema() -> Json:
    schema: Json = json.loads(schema_path().read_text(encoding="utf-8"))
    return schema


def _with_did_pattern(schema: Json, pattern: str) -> Json:
    text = json.dumps(schema).replace(json.dumps(DID_PATTERN)[1:-1], json.dumps(pattern)[1:-1])
    respelled: Json = json.loads(text)
    return respelled


def ajv_verdicts(schema: Json, documents: list[Any]) -> list[Json]:
    node = shutil.which("node")
    assert node is not None, "node is needed for the ajv cross-check"
    assert (AJV_DIR / "node_modules" / "ajv-draft-04").is_dir(), "run `make install` first"
    done = subprocess.run(
        [node, str(AJV_DIR / "validate.js")],
        input=json.dumps({"schema": schema, "documents": documents}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    verdicts: list[Json] = json.loads(done.stdout)
    assert len(verdicts) == len(documents)
    return verdicts


# --- the corpus ----------------------------------------------------------------------


def generated_valid_documents(schema: Json, count: int) -> list[Json]:
    """Documents drawn from the schema (as objects: what the API takes as `data`)."""
    body = {key: value for key, value in schema.items() if key != "$schema"}
    api = schemathesis.openapi.from_dict(
        {
            "openapi": "3.1.0",
            "info": {"title": "connectivity documents", "version": "1"},
            "paths": {
                "/document": {
                    "post": {
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": {**body, "type": "object"}}},
                        },
                        "responses": {"200": {"description": "ok"}},
                    }
                }
            },
        }
    )
    documents: list[Json] = []

    @seed(6)
    @settings(
        max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(api["/document"]["POST"].as_strategy())
    def collect(case: Any) -> None:
        documents.append(case.body)

    collect()
    return documents


def _server(document: Json, rng: random.Random) -> Json:
    servers = document.get("servers")
    if not isinstance(servers, list) or not servers:
        servers = [{"auth": {"auth_method": "IP", "ip": "198.51.100.7"}}]
        document["servers"] = servers
    server: Json = rng.choice(servers)
    return server


def _options(document: Json, rng: random.Random) -> Json:
    server = _server(document, rng)
    if not isinstance(server.get("options"), dict):
        server["options"] = {}
    options: Json = server["options"]
    return options


def _account(document: Json) -> Json:
    if not isinstance(document.get("account"), dict):
        document["account"] = {}
    account: Json = document["account"]
    return account


# Each one breaks exactly one rule of the schema, whatever the document was.
MUTATIONS = {
    "trunks below minimum": lambda d, r: _account(d).__setitem__("trunks", -1),
    "trunks not an integer": lambda d, r: _account(d).__setitem__("trunks", "two"),
    "cid_name too long": lambda d, r: _account(d).__setitem__("caller_id", {"cid_name": "x" * 36}),
    "name not a string": lambda d, r: d.__setitem__("name", 5),
    "servers not an array": lambda d, r: d.__setitem__("servers", {"0": {}}),
    "server without auth": lambda d, r: _server(d, r).pop("auth", None) or None,
    "auth_method not listed": lambda d, r: _server(d, r).__setitem__(
        "auth", {"auth_method": "token"}
    ),
    "auth_user empty": lambda d, r: _server(d, r).__setitem__(
        "auth", {"auth_method": "password", "auth_user": ""}
    ),
    "inbound_format not listed": lambda d, r: _options(d, r).__setitem__("inbound_format", "e.164"),
    "delay a float": lambda d, r: _options(d, r).__setitem__("delay", 1.5),
    "progress_timeout below minimum": lambda d, r: _options(d, r).__setitem__(
        "progress_timeout", 0
    ),
    "flags not an array": lambda d, r: _options(d, r).__setitem__("flags", "a"),
    "sip_headers items not objects": lambda d, r: _options(d, r).__setitem__(
        "sip_headers", ["X-Foo: bar"]
    ),
    "enabled a string": lambda d, r: _options(d, r).__setitem__("enabled", "yes"),
    "DID force_outbound not boolean": lambda d, r: _server(d, r).__setitem__(
        "DIDs", {"+14155550100": {"force_outbound": "yes"}}
    ),
    "DID caller id empty": lambda d, r: _server(d, r).__setitem__(
        "DIDs", {"4155550100": {"caller_id": {"cid_number": ""}}}
    ),
}


def mutated_documents(valid: list[Json], count: int) -> list[tuple[str, Json]]:
    rng = random.Random(6)
    names = sorted(MUTATIONS)
    mutated = []
    for index in range(count):
        name = names[index % len(names)]
        document = copy.deepcopy(valid[index % len(valid)])
        MUTATIONS[name](document, rng)
        mutated.append((name, document))
    return mutated


def kazoo_shaped_documents() -> list[Json]:
    """Shapes KAZOO stores and clients send (§4, §5.2, §6.4, appendix B)."""
    account_id = "5ab1e4c0" * 4
    stored = kazoo_trunks(account_id, "5ab1e4.sip.example.com", "account%2Fac%2Fco%2Funt1")
    views = [kazoo_public_view(doc) for doc in stored]
    return [
        *views,
        copy.deepcopy(PBX_TRUNK),
        {},
        {"servers": []},
        {"name": "IP only", "servers": [{"auth": {"auth_method": "ip", "ip": "203.0.113.9"}}]},
        {  # §5.2's example: four errors at once
            "servers": [{"options": {"delay": "soon"}}],
            "account": {"trunks": -1, "caller_id": {"cid_name": "n" * 36}},
        },
        {  # legacy string numbers (crossbar_util_tests TS_DOC): invalid when read strictly
            "account": {"trunks": "0", "inbound_trunks": "0", "credits": {"prepay": "0.00"}},
            "servers": [
                {
                    "auth": {"auth_method": "Password", "auth_user": "u", "auth_password": "p"},
                    "options": {"enabled": "true", "delay": "0"},
                }
            ],
        },
        {  # a DID with every option KAZOO's routing reads (§12.1)
            "servers": [
                {
                    "auth": {"auth_method": "password", "auth_user": "pbx", "auth_password": "pw"},
                    "DIDs": {
                        "+14155550100": {
                            "caller_id": {"cid_name": "Sales", "cid_number": "+14155550100"},
                            "failover": {"e164": "+14155550199", "sip": "sip:x@example.com"},
                            "force_outbound": True,
                            "options": ["hunt"],
                        },
                        "not-a-did": {"force_outbound": "ignored: key does not match"},
                    },
                    "options": {"media_handling": "process", "sip_headers": [{"X-A": "b"}]},
                }
            ]
        },
    ]


@pytest.fixture(scope="module")
def schema() -> Json:
    return _schema()


@pytest.fixture(scope="module")
def corpus(schema: Json) -> list[Json]:
    valid = generated_valid_documents(schema, GENERATED)
    mutated = [document for _name, document in mutated_documents(valid, MUTATED)]
    return valid + mutated + kazoo_shaped_documents()


@pytest.fixture(scope="module")
def ajv_on_file(schema: Json, corpus: list[Json]) -> list[Json]:
    return ajv_verdicts(schema, corpus)


# --- the cross-check -----------------------------------------------------------------


def test_corpus_is_large_and_mixed(corpus: list[Json], ajv_on_file: list[Json]) -> None:
    valid = sum(verdict["valid"] for verdict in ajv_on_file)
    assert len(corpus) >= 200
    assert valid >= 100 and len(corpus) - valid >= 100, (valid, len(corpus))


def test_ajv_agrees_with_draft4_reading_the_pattern_as_javascript_does(
    schema: Json, corpus: list[Json], ajv_on_file: list[Json]
) -> None:
    draft4 = Draft4Validator(_with_did_pattern(schema, DID_PATTERN_AS_JS))
    disagreements = [
        (document, verdict)
        for document, verdict in zip(corpus, ajv_on_file, strict=True)
        if draft4.is_valid(_as_javascript_reads_it(document)) != verdict["valid"]
    ]
    assert not disagreements, disagreements[:3]


def test_on_the_file_as_it_is_only_the_two_known_gaps_make_them_disagree(
    schema: Json, corpus: list[Json], ajv_on_file: list[Json]
) -> None:
    draft4 = Draft4Validator(schema)
    disagreeing = 0
    for document, verdict in zip(corpus, ajv_on_file, strict=True):
        if draft4.is_valid(document) != verdict["valid"]:
            disagreeing += 1
            assert _in_a_known_gap(document), document
    # The gaps are real: the generated corpus does fall into them.
    assert disagreeing > 0


def test_every_mutation_is_invalid_for_both_validators(schema: Json) -> None:
    valid = generated_valid_documents(schema, 20)
    mutated = mutated_documents(valid, 3 * len(MUTATIONS))
    verdicts = ajv_verdicts(schema, [document for _name, document in mutated])
    draft4 = Draft4Validator(schema)
    for (name, document), verdict in zip(mutated, verdicts, strict=True):
        assert not verdict["valid"], name
        assert not draft4.is_valid(document), name


def test_service_validator_agrees_with_ajv_apart_from_kazoo_defaults(
    schema: Json, corpus: list[Json], ajv_on_file: list[Json]
) -> None:
    # KAZOO's validation (strict: no coercion) differs from a plain validator in one
    # documented way besides the DID gap: defaults are filled in before `required` is
    # checked, so `"auth": {}` is valid (docs/kazoo-compatibility.md §6.2).
    service = SchemaValidator(schema, strict=True)
    for document, verdict in zip(corpus, ajv_on_file, strict=True):
        if _in_a_known_gap(document):
            continue
        expected = verdict["valid"] or _only_missing_defaulted_auth_method(verdict)
        assert service.validate(document).ok == expected, (document, verdict)


def _as_javascript_reads_it(value: Any) -> Any:
    """The document after a trip through JavaScript: 79.0 becomes 79."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_as_javascript_reads_it(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_javascript_reads_it(item) for key, item in value.items()}
    return value


def _in_a_known_gap(document: Any) -> bool:
    # json.dumps tells 79.0 from 79 (Python's == does not).
    has_integral_float = json.dumps(_as_javascript_reads_it(document)) != json.dumps(document)
    return has_integral_float or _has_did_key_in_the_gap(document)


def _did_keys(document: Any) -> list[str]:
    servers = document.get("servers") if isinstance(document, dict) else None
    keys: list[str] = []
    for server in servers if isinstance(servers, list) else []:
        dids = server.get("DIDs") if isinstance(server, dict) else None
        if isinstance(dids, dict):
            keys.extend(dids)
    return keys


def _has_did_key_in_the_gap(document: Any) -> bool:
    return any(
        bool(re.search(DID_PATTERN, key)) != bool(re.search(DID_PATTERN_AS_JS, key))
        or bool(re.search(DID_PATTERN, key, re.ASCII)) != bool(re.search(DID_PATTERN, key))
        for key in _did_keys(document)
    )


def _only_missing_defaulted_auth_method(verdict: Json) -> bool:
    errors = verdict["errors"]
    return bool(errors) and all(
        error["keyword"] == "required"
        and error["params"].get("missingProperty") == "auth_method"
        and re.fullmatch(r"/servers/\d+/auth", error["instancePath"])
        for error in errors
    )


# --- the DID pattern gap, decided ----------------------------------------------------

INVALID_DID_VALUE = {"force_outbound": "yes"}


def _doc_with_did(key: str) -> Json:
    return {"servers": [{"auth": {"auth_method": "IP"}, "DIDs": {key: dict(INVALID_DID_VALUE)}}]}


@pytest.mark.parametrize(
    ("key", "ajv_validates_it", "draft4_validates_it", "service_validates_it"),
    [
        # An ordinary DID: every reading validates its value.
        ("+14155550100", True, True, True),
        # Trailing newline: Python's and PCRE's `$` match before it, JavaScript's does not.
        ("+14155550100\n", False, True, True),
        # Arabic-Indic digits: Unicode `\d` in Python only; PCRE (no UCP) and JS are ASCII.
        ("+١٤١٥", False, True, False),
    ],
)
def test_did_key_readings(
    schema: Json,
    key: str,
    ajv_validates_it: bool,
    draft4_validates_it: bool,
    service_validates_it: bool,
) -> None:
    document = _doc_with_did(key)
    [verdict] = ajv_verdicts(schema, [document])
    # The value is invalid, so a reading that validates it rejects the document.
    assert verdict["valid"] is not ajv_validates_it
    assert Draft4Validator(schema).is_valid(document) is not draft4_validates_it
    # The service follows KAZOO (PCRE): ASCII digits, `$` before a final newline.
    assert SchemaValidator(schema, strict=True).validate(document).ok is not service_validates_it


# --- integral floats, decided --------------------------------------------------------


def test_a_float_with_no_fraction_is_an_integer_only_for_ajv(schema: Json) -> None:
    document = {"account": {"trunks": 79.0}}
    [verdict] = ajv_verdicts(schema, [document])
    assert verdict["valid"]
    assert not Draft4Validator(schema).is_valid(document)
    # KAZOO's reading: not an integer when strict, rounded when lenient (§6.3).
    assert not SchemaValidator(schema, strict=True).validate(document).ok
    lenient = SchemaValidator(schema).validate(document)
    assert lenient.value is not None
    assert lenient.value["account"]["trunks"] == 79
    assert isinstance(lenient.value["account"]["trunks"], int)
