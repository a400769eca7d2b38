"""The change events' encoding, case by case, without a broker: KAZOO's quirks that the
end-to-end tests (test_amqp_events.py) do not reach."""

from __future__ import annotations

import re

import pytest
from kapi import doc_update_problems

from service import fast_json
from service.config import ConfigError, load_settings
from service.events.encoding import doc_event, encode_key, kazoo_db_name, reg_flush_event
from service.events.publisher import EventPublisher
from service.numbers.rules import encoded_number_db

ACCOUNT = "3a1b2c3d4e5f60718293a4b5c6d7e8f9"
ACCOUNT_DB = f"account/3a/1b/{ACCOUNT[4:]}"


def payload(event):
    return fast_json.loads(event.body)


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("0f1e2d3c", "0f1e2d3c"),
        ("a.b", "a%2Eb"),
        ("with space", "with+space"),
        ("+14155550100", "%2B14155550100"),
        ("é/x", "%C3%A9%2Fx"),
        ("keep-~_", "keep-~_"),
        # kz_amqp_util:encode/1 leaves the wildcards alone.
        ("*", "*"),
        ("#", "#"),
    ],
)
def test_routing_key_segments_are_encoded_as_kazoo_encodes_them(raw, encoded):
    assert encode_key(raw) == encoded


def test_database_names_are_the_encoded_names_kazoo_uses():
    assert kazoo_db_name(ACCOUNT_DB) == f"account%2F3a%2F1b%2F{ACCOUNT[4:]}"
    assert kazoo_db_name("numbers/+1415") == encoded_number_db("+14155550100")
    assert kazoo_db_name("accounts") == "accounts"


def test_a_trunk_event_has_kazoos_routing_key_and_fields():
    doc = {
        "_id": "trunk.1",
        "_rev": "7-abc",
        "pvt_type": "sys_info",
        "pvt_account_id": ACCOUNT,
        "pvt_created": 63870000000,
        "pvt_modified": 63870001234,
    }
    event = doc_event(ACCOUNT_DB, doc, "edited", "connectivity@here")
    assert event.exchange == "configuration"
    assert event.routing_key == f"doc_edited.account%2F3a%2F1b%2F{ACCOUNT[4:]}.sys_info.trunk%2E1"
    body = payload(event)
    assert doc_update_problems(body) == []
    assert body["Rev"] == "7-abc"
    # Swapped, as kzs_publish:publish/3 swaps them.
    assert (body["Date-Modified"], body["Date-Created"]) == (63870000000, 63870001234)
    assert body["Is-Soft-Deleted"] is False
    assert re.fullmatch(r"[0-9a-f]{32}", body["Msg-ID"]) and event.msg_id == body["Msg-ID"]
    assert (body["App-Name"], body["Origin-Cache"]) == ("datamgr", "kazoo_data_cache")


def test_a_soft_deleted_doc_is_always_announced_as_deleted():
    doc = {"_id": "t", "_rev": "3-x", "pvt_type": "sys_info", "pvt_deleted": True}
    event = doc_event(ACCOUNT_DB, doc, "edited", "n@h")
    assert event.routing_key.startswith("doc_deleted.")
    assert payload(event)["Is-Soft-Deleted"] is True


def test_the_account_id_comes_from_the_doc_or_its_account_database():
    from_doc = doc_event("accounts", {"_id": "x", "pvt_account_id": ACCOUNT}, "created", "n@h")
    from_db = doc_event(ACCOUNT_DB, {"_id": "x", "pvt_account_id": "short"}, "created", "n@h")
    neither = doc_event("system_auth", {"_id": "x", "pvt_type": "key"}, "created", "n@h")
    assert payload(from_doc)["Account-ID"] == payload(from_db)["Account-ID"] == ACCOUNT
    assert "Account-ID" not in payload(neither)


def test_a_doc_without_type_or_dates_leaves_those_fields_out():
    event = doc_event("accounts", {"_id": "x", "pvt_created": "soon"}, "created", "n@h")
    # kz_term:to_binary(undefined) fills the routing key's type segment.
    assert event.routing_key == "doc_created.accounts.undefined.x"
    body = payload(event)
    assert "Type" not in body and "Date-Modified" not in body and "Rev" not in body
    assert doc_update_problems(body) == []


def test_a_registration_flush_names_the_realm():
    event = reg_flush_event("pbx.example.com", "n@h")
    assert (event.exchange, event.routing_key) == (
        "registrar",
        "registration.flush.pbx%2Eexample%2Ecom",
    )
    body = payload(event)
    assert body["Realm"] == "pbx.example.com"
    assert (body["Event-Category"], body["Event-Name"]) == ("directory", "reg_flush")


def test_design_docs_make_no_event():
    publisher = EventPublisher("amqp://guest:guest@127.0.0.1:1/", node="n@h", capacity=10)
    publisher.doc_changed(ACCOUNT_DB, {"_id": "_design/trunkstore", "_rev": "1-a"}, "created")
    publisher.doc_changed(ACCOUNT_DB, {"_id": "trunk", "_rev": "1-a"}, "created")
    assert publisher.state()["queued"] == 1


def test_the_amqp_settings_are_checked_without_echoing_the_password():
    settings = load_settings(
        {
            "CONNECTIVITY_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
            "CONNECTIVITY_AMQP_QUEUE_SIZE": "50",
            "CONNECTIVITY_AMQP_NODE": "connectivity@pbx1",
        }
    )
    assert (settings.amqp_url, settings.amqp_queue_size, settings.amqp_node) == (
        "amqp://guest:guest@127.0.0.1:5672/",
        50,
        "connectivity@pbx1",
    )
    assert load_settings({}).amqp_url is None
    assert load_settings({}).amqp_node.startswith("connectivity@")
    with pytest.raises(ConfigError) as bad:
        load_settings({"CONNECTIVITY_AMQP_URL": "http://guest:hunter2@127.0.0.1:5672/"})
    assert "CONNECTIVITY_AMQP_URL" in str(bad.value) and "hunter2" not in str(bad.value)
    with pytest.raises(ConfigError):
        load_settings({"CONNECTIVITY_AMQP_QUEUE_SIZE": "0"})
