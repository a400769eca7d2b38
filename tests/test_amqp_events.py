"""KAZOO's nodes hear our writes: document change events and registration flushes on the
machine's real RabbitMQ, listened to with the bindings KAZOO's consumers use.

* trunkstore_listener binds `*.*.sys_info.*` on `configuration`, the trunkstore cache
  the types it caches (`*.*.account.*`, `*.*.number.*`), kazoo_data's cache `#`;
* the registrar binds `registration.flush.*` on `registrar`.

Each test reads only the events of the documents it wrote, and a later write of its own
closes the list: events arrive in the order of the writes, so nothing about the
earlier documents can still come after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aio_pika.abc import AbstractConnection
from aiohttp.test_utils import TestClient
from amqp_helpers import BROKER_URL, Listener, about, broker_connection, for_realm, requires_broker
from cli_runner import run_cli
from faultproxy import TcpProxy
from helpers import PBX_TRUNK, call
from instances import instance_for, until
from kapi import doc_update_problems, reg_flush_problems
from number_helpers import fresh_number, kazoo_number, routing_trunk, store_number

from service.events.encoding import encode_key
from service.kazoo.ids import account_db, encoded_account_db
from service.numbers.rules import encoded_number_db, number_db

pytestmark = requires_broker

NODE = "connectivity@tests"

# Waits far beyond what a reconnection takes, never standing in for one.
LIMIT = 20.0


@pytest_asyncio.fixture(scope="module")
async def broker() -> AsyncIterator[AbstractConnection]:
    connection = await broker_connection()
    yield connection
    await connection.close()


@pytest_asyncio.fixture(scope="module")
async def events_api(couch_url: str) -> AsyncIterator[TestClient]:
    """A service instance that publishes to the machine's broker."""
    client = await instance_for(
        couch_url, amqp_url=BROKER_URL, amqp_node=NODE, amqp_reconnect_max_seconds=0.5
    )
    yield client
    await client.close()


def assert_kazoo_event(delivery, *, name, db, doc_type, doc_id, account_id):
    """One document event exactly as KAZOO's listeners expect it."""
    database = encoded_account_db(account_id) if db is None else db
    assert delivery.routing_key == f"{name}.{database}.{doc_type}.{encode_key(doc_id)}"
    payload = delivery.payload
    assert doc_update_problems(payload) == []
    assert payload["Event-Name"] == name
    assert (payload["ID"], payload["Database"], payload["Type"]) == (doc_id, database, doc_type)
    # Without Account-ID trunkstore cannot flush the account's routing (flush/1).
    assert payload.get("Account-ID") == account_id
    # Not a KAZOO node: kz_cache_listener ignores events of its own node.
    assert payload["Node"] == NODE
    assert delivery.content_type == "application/json"
    assert delivery.message_id == payload["Msg-ID"]


async def test_each_connectivity_verb_publishes_one_event(events_api, broker, couch, master):
    trunkstore = await Listener.bind(broker, "configuration", "*.*.sys_info.*")
    data_cache = await Listener.bind(broker, "configuration", "#")
    url, token = master.url(), master.token
    created = await call(events_api, "PUT", url, data=PBX_TRUNK, token=token)
    assert created.status == 201, created.text
    doc_id = created.data["id"]
    replaced = await call(events_api, "POST", url + f"/{doc_id}", data=PBX_TRUNK, token=token)
    patched = await call(
        events_api, "PATCH", url + f"/{doc_id}", data={"name": "Renamed"}, token=token
    )
    deleted = await call(events_api, "DELETE", url + f"/{doc_id}", token=token)
    assert [replaced.status, patched.status, deleted.status] == [200, 200, 200]
    stored = await couch.get_doc(master.db, doc_id)
    marker = await call(events_api, "PUT", url, data=PBX_TRUNK, token=token)

    for listener in (trunkstore, data_cache):
        events = await listener.collect(about(doc_id), until=about(marker.data["id"]))
        events = events[:-1]
        names = [event.payload["Event-Name"] for event in events]
        assert names == ["doc_created", "doc_edited", "doc_edited", "doc_deleted"]
        for event in events:
            assert_kazoo_event(
                event,
                name=event.payload["Event-Name"],
                db=None,
                doc_type="sys_info",
                doc_id=doc_id,
                account_id=master.id,
            )
        revs = [event.payload["Rev"] for event in events]
        answered = [reply.body["revision"] for reply in (created, replaced, patched)]
        assert revs[:3] == answered
        # A DELETE answers the revision it deleted (§8); the event, like KAZOO's,
        # names the revision the soft delete wrote.
        assert deleted.body["revision"] == revs[2]
        assert revs[3] == stored["_rev"]
        assert [event.payload["Is-Soft-Deleted"] for event in events] == [False] * 3 + [True]
        # KAZOO's swapped dates (kzs_publish:publish/3).
        assert events[0].payload["Date-Modified"] == stored["pvt_created"]
        assert events[3].payload["Date-Created"] == stored["pvt_modified"]


async def test_a_hard_delete_names_the_tombstone(events_api, broker, couch, master):
    trunkstore = await Listener.bind(broker, "configuration", "*.*.sys_info.*")
    url, token = master.url(), master.token
    created = await call(events_api, "PUT", url, data=PBX_TRUNK, token=token)
    doc_id = created.data["id"]
    gone = await call(
        events_api,
        "DELETE",
        url + f"/{doc_id}",
        token=token,
        params={"should_soft_delete": "false"},
    )
    assert gone.status == 200, gone.text
    listed = await couch.all_docs(master.db, keys=[doc_id])
    marker = await call(events_api, "PUT", url, data=PBX_TRUNK, token=token)
    events = (await trunkstore.collect(about(doc_id), until=about(marker.data["id"])))[:-1]
    assert [event.payload["Event-Name"] for event in events] == ["doc_created", "doc_deleted"]
    deleted = events[1]
    assert_kazoo_event(
        deleted,
        name="doc_deleted",
        db=None,
        doc_type="sys_info",
        doc_id=doc_id,
        account_id=master.id,
    )
    assert deleted.payload["Is-Soft-Deleted"] is False
    # The tombstone's revision, as CouchDB lists the deleted doc.
    assert listed["rows"][0]["value"] == {"rev": deleted.payload["Rev"], "deleted": True}


async def test_trunk_create_and_delete_flush_the_realms_registrations(
    events_api, broker, master, reseller
):
    registrar = await Listener.bind(broker, "registrar", "registration.flush.*")
    url, token = master.url(), master.token
    created = await call(events_api, "PUT", url, data=PBX_TRUNK, token=token)
    doc_id = created.data["id"]
    for method, data in (("POST", PBX_TRUNK), ("PATCH", {"name": "New"}), ("DELETE", None)):
        reply = await call(events_api, method, url + f"/{doc_id}", data=data, token=token)
        assert reply.status == 200, reply.text
    # Another realm's flush closes the list.
    await call(events_api, "PUT", reseller.url(), data=PBX_TRUNK, token=reseller.token)
    flushes = await registrar.collect(for_realm(master.realm), until=for_realm(reseller.realm))
    flushes = flushes[:-1]
    # cb_connectivity flushes on PUT and DELETE only.
    assert len(flushes) == 2
    for flush in flushes:
        assert flush.routing_key == f"registration.flush.{encode_key(master.realm)}"
        assert reg_flush_problems(flush.payload) == []
        assert flush.payload["Realm"] == master.realm
        assert flush.payload["Node"] == NODE
        assert flush.message_id == flush.payload["Msg-ID"]
    assert flushes[0].payload["Msg-ID"] != flushes[1].payload["Msg-ID"]


async def test_each_account_verb_publishes_to_both_account_databases(events_api, broker, master):
    # The trunkstore cache binds the account type (trunkstore_sup).
    cache = await Listener.bind(broker, "configuration", "*.*.account.*")
    base, token = f"/v2/accounts/{master.id}", master.token
    created = await call(events_api, "PUT", base, data={"name": "Child"}, token=token)
    assert created.status == 201, created.text
    child = created.data["id"]
    child_url = f"/v2/accounts/{child}"
    replaced = await call(events_api, "POST", child_url, data={"name": "Child 2"}, token=token)
    patched = await call(events_api, "PATCH", child_url, data={"name": "Child 3"}, token=token)
    deleted = await call(events_api, "DELETE", child_url, token=token)
    assert [replaced.status, patched.status, deleted.status] == [200, 200, 200]
    marker = await call(events_api, "PUT", base, data={"name": "Marker"}, token=token)

    events = await cache.collect(about(child), until=about(marker.data["id"]))
    events = events[:-1]
    by_db: dict[str, list] = {}
    for event in events:
        by_db.setdefault(event.payload["Database"], []).append(event)
    own_db = encoded_account_db(child)
    assert set(by_db) == {own_db, "accounts"}
    for database, db_events in by_db.items():
        names = [event.payload["Event-Name"] for event in db_events]
        assert names == ["doc_created", "doc_edited", "doc_edited", "doc_deleted"], database
        for event in db_events:
            assert_kazoo_event(
                event,
                name=event.payload["Event-Name"],
                db=database,
                doc_type="account",
                doc_id=child,
                account_id=child,
            )
    answered = [reply.body["revision"] for reply in (created, replaced, patched)]
    assert [event.payload["Rev"] for event in by_db[own_db][:3]] == answered
    assert by_db[own_db][3].payload["Is-Soft-Deleted"] is True


async def test_each_user_verb_publishes_one_event(events_api, broker, master):
    # kazoo_data's cache listener binds everything; a user doc is type `user`.
    cache = await Listener.bind(broker, "configuration", "*.*.user.*")
    base, token = f"/v2/accounts/{master.id}/users", master.token
    person = {"first_name": "Event", "last_name": "User", "username": "event-user-1"}
    created = await call(
        events_api, "PUT", base, data={**person, "password": "An-events-pw1"}, token=token
    )
    assert created.status == 201, created.text
    user = created.data["id"]
    replaced = await call(
        events_api, "POST", f"{base}/{user}", data={**person, "last_name": "Two"}, token=token
    )
    patched = await call(
        events_api, "PATCH", f"{base}/{user}", data={"last_name": "Three"}, token=token
    )
    deleted = await call(events_api, "DELETE", f"{base}/{user}", token=token)
    assert [replaced.status, patched.status, deleted.status] == [200, 200, 200], deleted.text
    marker = await call(
        events_api,
        "PUT",
        base,
        data={**person, "username": "event-marker-1", "password": "An-events-pw2"},
        token=token,
    )
    assert marker.status == 201, marker.text

    events = (await cache.collect(about(user), until=about(marker.data["id"])))[:-1]
    names = [event.payload["Event-Name"] for event in events]
    assert names == ["doc_created", "doc_edited", "doc_edited", "doc_deleted"]
    for event in events:
        assert_kazoo_event(
            event,
            name=event.payload["Event-Name"],
            db=None,
            doc_type="user",
            doc_id=user,
            account_id=master.id,
        )
    answered = [reply.body["revision"] for reply in (created, replaced, patched)]
    assert [event.payload["Rev"] for event in events[:3]] == answered
    assert events[3].payload["Is-Soft-Deleted"] is True


async def test_a_trunk_using_a_number_announces_the_number_docs(events_api, broker, couch, master):
    number, marker_number = fresh_number(), fresh_number()
    for each in (number, marker_number):
        await store_number(couch, kazoo_number(each, owner=master.id))
    numbers = await Listener.bind(broker, "configuration", "*.*.number.*")
    created = await call(
        events_api,
        "PUT",
        master.url(),
        data=routing_trunk([number]),
        token=master.token,
    )
    assert created.status == 201, created.text
    await call(
        events_api,
        "PUT",
        master.url(),
        data=routing_trunk([marker_number]),
        token=master.token,
    )
    events = (await numbers.collect(about(number), until=about(marker_number)))[:-1]
    number_db_events = [e for e in events if e.payload["Database"] == encoded_number_db(number)]
    copy_events = [e for e in events if e.payload["Database"] == encoded_account_db(master.id)]
    assert len(number_db_events) == len(copy_events) == 1
    stored = await couch.get_doc(number_db(number), number)
    assert stored["pvt_used_by"] == "trunkstore"
    assert_kazoo_event(
        number_db_events[0],
        name="doc_edited",
        db=encoded_number_db(number),
        doc_type="number",
        doc_id=number,
        # A number doc has no pvt_account_id and its database is no account's.
        account_id=None,
    )
    assert number_db_events[0].payload["Rev"] == stored["_rev"]
    assert number_db_events[0].routing_key.endswith(".number.%2B" + number[1:])
    copy = await couch.get_doc(account_db(master.id), number)
    assert copy_events[0].payload["Rev"] == copy["_rev"]
    assert copy_events[0].payload["Account-ID"] == master.id


async def test_operator_commands_announce_their_writes(couch_url, broker):
    cache = await Listener.bind(broker, "configuration", "*.*.account.*")
    env = {"CONNECTIVITY_AMQP_URL": BROKER_URL, "CONNECTIVITY_AMQP_NODE": NODE}
    code, out, err = await run_cli(
        "create-account", "--name", "Operator", couch_url=couch_url, env=env
    )
    assert code == 0, err
    account_id = json.loads(out)["account_id"]
    code, _, err = await run_cli(
        "rotate-api-key", "--account", account_id, couch_url=couch_url, env=env
    )
    assert code == 0, err
    # Both processes have exited: whatever arrives now, each sent before it ended.
    events = await cache.collect(
        about(account_id),
        until=lambda d: (
            d.payload["ID"] == account_id
            and d.payload["Database"] == "accounts"
            and d.payload["Event-Name"] == "doc_edited"
        ),
    )
    assert [(e.payload["Database"], e.payload["Event-Name"]) for e in events] == [
        (encoded_account_db(account_id), "doc_created"),
        ("accounts", "doc_created"),
        (encoded_account_db(account_id), "doc_edited"),
        ("accounts", "doc_edited"),
    ]
    assert all(doc_update_problems(e.payload) == [] for e in events)


# -- the broker away, slow, refusing ------------------------------------------------------


@pytest_asyncio.fixture
async def broker_proxy() -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the machine's broker: cutting it never touches the broker."""
    proxy = await TcpProxy(BROKER_URL).start()
    yield proxy
    await proxy.stop()


async def instance_behind(couch_url: str, proxy: TcpProxy, **settings: Any) -> TestClient:
    return await instance_for(
        couch_url,
        amqp_url=proxy.url,
        amqp_node=NODE,
        amqp_reconnect_max_seconds=0.2,
        **settings,
    )


async def broker_state(api: TestClient) -> dict[str, Any]:
    reply = await call(api, "GET", "/__heartbeat__")
    assert reply.status == 200, reply.text
    assert reply.body["couchdb"] is True
    return reply.body["amqp"]


async def connected(api: TestClient, value: bool = True) -> None:
    async def check() -> bool:
        return (await broker_state(api))["connected"] is value

    await until(check, f"the broker connection to be {'up' if value else 'down'}", LIMIT)


async def drained(api: TestClient) -> None:
    async def check() -> bool:
        state = await broker_state(api)
        return state["connected"] and state["queued"] == 0

    await until(check, "the waiting events to go out", LIMIT)


def first_of_each(deliveries: list) -> list:
    """At least once: a resent event keeps its Msg-ID (and all of its payload)."""
    seen: dict[str, Any] = {}
    for delivery in deliveries:
        msg_id = delivery.payload["Msg-ID"]
        if msg_id in seen:
            assert delivery.payload == seen[msg_id].payload
            continue
        seen[msg_id] = delivery
    return list(seen.values())


async def patch_name(api: TestClient, account, doc_id: str, name: str) -> str:
    reply = await call(
        api, "PATCH", account.url(f"/{doc_id}"), data={"name": name}, token=account.token
    )
    assert reply.status == 200, reply.text
    return reply.body["revision"]


async def test_without_amqp_the_heartbeat_says_nothing_of_a_broker(api):
    reply = await call(api, "GET", "/__heartbeat__")
    assert reply.status == 200
    assert reply.body == {"couchdb": True}


async def test_the_heartbeat_reports_the_broker_without_failing_on_it(couch_url, broker_proxy):
    api = await instance_behind(couch_url, broker_proxy)
    try:
        await connected(api)
        await broker_proxy.go_down()
        await connected(api, False)
        await broker_proxy.come_up()
        await connected(api)
    finally:
        await api.close()


async def test_a_broker_cut_during_a_burst_loses_no_event(couch_url, broker, broker_proxy, master):
    trunkstore = await Listener.bind(broker, "configuration", "*.*.sys_info.*")
    api = await instance_behind(couch_url, broker_proxy)
    try:
        await connected(api)
        created = await call(api, "PUT", master.url(), data=routing_trunk(), token=master.token)
        doc_id = created.data["id"]
        revisions = [created.body["revision"]]
        for index in range(150):
            if index == 50:
                await broker_proxy.go_down()
            if index == 100:
                await broker_proxy.come_up()
            revisions.append(await patch_name(api, master, doc_id, f"Burst {index}"))
        marker = await call(api, "PUT", master.url(), data=routing_trunk(), token=master.token)
        events = await trunkstore.collect(about(doc_id), until=about(marker.data["id"]))
        assert [e.payload["Rev"] for e in first_of_each(events[:-1])] == revisions
        # The service reconnected by itself.
        assert broker_proxy.accepted >= 2
    finally:
        await api.close()


async def test_a_full_queue_drops_the_oldest_counts_and_logs_each(
    couch_url, api, broker, broker_proxy, master, caplog
):
    created = await call(api, "PUT", master.url(), data=routing_trunk(), token=master.token)
    doc_id = created.data["id"]
    await broker_proxy.go_down()
    small = await instance_behind(couch_url, broker_proxy, amqp_queue_size=5)
    try:
        with caplog.at_level(logging.WARNING, logger="service.events"):
            revisions = [await patch_name(small, master, doc_id, f"N {i}") for i in range(12)]
        drops = [r for r in caplog.records if r.getMessage().startswith("amqp event dropped")]
        assert len(drops) == 7
        state = await broker_state(small)
        assert (state["connected"], state["queued"], state["dropped"]) == (False, 5, 7)

        trunkstore = await Listener.bind(broker, "configuration", "*.*.sys_info.*")
        await broker_proxy.come_up()
        await drained(small)
        last = await patch_name(small, master, doc_id, "after")
        events = await trunkstore.collect(about(doc_id), until=lambda d: d.payload["Rev"] == last)
        # The five newest waited and went out, in order, then the next write's.
        assert [e.payload["Rev"] for e in first_of_each(events)] == [*revisions[7:], last]
    finally:
        await small.close()


async def test_a_refusing_broker_never_fails_a_write(couch_url, master, caplog):
    wrong = BROKER_URL.replace("guest:guest@", "guest:not-the-password@")
    api = await instance_for(couch_url, amqp_url=wrong, amqp_reconnect_max_seconds=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="service.events"):
            created = await call(api, "PUT", master.url(), data=routing_trunk(), token=master.token)
            assert created.status == 201, created.text
            await patch_name(api, master, created.data["id"], "Refused")

            async def refused() -> bool:
                return any("unreachable" in r.getMessage() for r in caplog.records)

            await until(refused, "the refusal to be logged", LIMIT)
        state = await broker_state(api)
        # The PUT's event and its registration flush, and the PATCH's event.
        assert (state["connected"], state["queued"]) == (False, 3)
        assert not any(
            "not-the-password" in r.getMessage() + str(r.__dict__) for r in caplog.records
        )
    finally:
        await api.close()


async def test_a_stalled_broker_never_holds_a_write(couch_url, broker, broker_proxy, master):
    trunkstore = await Listener.bind(broker, "configuration", "*.*.sys_info.*")
    api = await instance_behind(couch_url, broker_proxy, amqp_publish_timeout=0.5)
    try:
        await connected(api)
        created = await call(api, "PUT", master.url(), data=routing_trunk(), token=master.token)
        doc_id = created.data["id"]
        await drained(api)
        broker_proxy.hold()
        revisions = [await patch_name(api, master, doc_id, f"Held {i}") for i in range(5)]
        # No confirm comes: the publisher gives the connection up and tries anew.
        await connected(api, False)
        broker_proxy.release()
        await drained(api)
        events = await trunkstore.collect(
            about(doc_id), until=lambda d: d.payload["Rev"] == revisions[-1]
        )
        assert [e.payload["Rev"] for e in first_of_each(events)][1:] == revisions
    finally:
        await api.close()


async def test_events_of_a_thousand_writes_arrive_complete_and_in_order(events_api, broker, master):
    trunkstore = await Listener.bind(broker, "configuration", "*.*.sys_info.*")
    docs = []
    for _ in range(10):
        created = await call(
            events_api,
            "PUT",
            master.url(),
            data=routing_trunk(),
            token=master.token,
        )
        docs.append(created.data["id"])

    async def hundred_writes(doc_id: str) -> list[str]:
        return [await patch_name(events_api, master, doc_id, f"W {i}") for i in range(100)]

    answered = await asyncio.gather(*(hundred_writes(doc_id) for doc_id in docs))
    marker = await call(events_api, "PUT", master.url(), data=routing_trunk(), token=master.token)
    wanted = set(docs)
    events = await trunkstore.collect(
        lambda d: d.payload["ID"] in wanted, until=about(marker.data["id"])
    )
    events = first_of_each(events[:-1])
    assert len(events) == 1010
    for doc_id, revisions in zip(docs, answered, strict=True):
        of_doc = [e.payload["Rev"] for e in events if e.payload["ID"] == doc_id]
        assert of_doc[1:] == revisions
