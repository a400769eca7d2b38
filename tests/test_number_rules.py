"""KAZOO's number rules as pure functions (service/numbers/rules.py, access.py, docs.py).

E.164 spellings, who may use a number, and how number docs change on create, take-over,
assignment and release, each checked against what KAZOO's number manager does. No
CouchDB: `make mutation` runs these against mutants of those modules.
"""

from __future__ import annotations

import pytest

from service.numbers import docs
from service.numbers.access import (
    Party,
    is_authorized,
    is_reserved_from_parent,
    may_use,
    needs_owner,
)
from service.numbers.rules import (
    encoded_number_db,
    is_reconcilable,
    normalize,
    number_db,
    raw_spellings,
    spellings_by_the_rules,
)

E164 = "+14155550100"
OWNER, PARENT, ROOT, OTHER = "owner", "parent", "root", "other"

# -- E.164, as knm_converters spells it --------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+14155550100", "+14155550100"),
        ("4155550100", "+14155550100"),  # NANP default
        ("14155550100", "+14155550100"),
        ("+4155550100", "+4155550100"),  # a leading + is kept as it is
        ("2125550100", "+12125550100"),
        ("1115550100", "1115550100"),  # area code 1xx: no NANP number, nor international
        ("4151550100", "+4151550100"),  # nor an exchange starting with 1
        ("011442071234567", "+442071234567"),
        ("00442071234567", "+442071234567"),
        ("01144201", "+44201"),  # five digits after the prefix are enough…
        ("0114420", "0114420"),  # …four are not
        ("00123", "00123"),
        ("41234567", "+41234567"),  # eight digits are international
        ("4123456", "4123456"),  # seven are nothing
        ("1234", "1234"),
        ("14155550100x", "14155550100x"),
        ("", ""),
        ("+1 415", "+1 415"),
    ],
)
def test_normalize_follows_kazoos_default_converters(raw, e164):
    assert normalize(raw) == e164


@pytest.mark.parametrize(
    ("number", "reconcilable"),
    [
        ("4155550100", True),
        ("+14155550100", True),
        ("14155550100", True),
        ("+442071234567", True),
        ("+22345678", True),  # + and eight digits from 2-9
        ("+2234567", False),  # seven
        ("+12345678", False),  # + then 1 is the NANP rule: ten digits needed
        ("011", True),  # KAZOO's regex takes 011 and 00 followed by anything numeric
        ("00", True),
        ("1234", False),
        ("+1234", False),
        ("+1 415 555 0100", False),
        ("", False),
        ("x4155550100", False),
        ("4155550100x", False),
    ],
)
def test_reconcilable_numbers(number, reconcilable):
    assert is_reconcilable(number) is reconcilable


def test_number_databases_take_the_first_five_characters():
    assert number_db("+14155550100") == "numbers/+1415"
    assert number_db("+4420") == "numbers/+4420"
    assert number_db("+442") is None
    assert encoded_number_db("+14155550100") == "numbers%2F%2B1415"
    assert encoded_number_db("+44") is None


def test_raw_spellings_are_every_key_that_normalises_back():
    assert raw_spellings("+14155550100") == sorted(
        ["+14155550100", "14155550100", "4155550100", "0014155550100", "01114155550100"]
    )
    assert raw_spellings("+442071234567") == sorted(
        ["+442071234567", "00442071234567", "011442071234567", "442071234567"]
    )
    assert raw_spellings("1234") == ["1234"]
    # "+1" + nine digits: `1…` and `…` do not normalise back to it.
    assert raw_spellings("+1415555010") == sorted(["+1415555010", "001415555010", "0111415555010"])


@pytest.mark.parametrize(
    "e164",
    [
        "+12002000000",
        "+14155550100",
        "+19999999999",
        "+12001999999",
        "+11002000000",
        "+12000000000",
    ],
)
def test_nanp_spellings_are_what_the_rules_give(e164):
    # raw_spellings answers NANP numbers without running the converters (a big trunk's
    # write spells 50,000 of them); it must be what running them gives.
    assert raw_spellings(e164) == spellings_by_the_rules(e164)


# -- who may use a number (§11.1) ----------------------------------------------------------


def number(state: str | None = "in_service", owner: str | None = OWNER, **extra) -> dict:
    doc: dict = {"_id": E164, **extra}
    if state is not None:
        doc["pvt_state"] = state
    if owner is not None:
        doc["pvt_assigned_to"] = owner
    return doc


OWNER_PARTY = Party(OWNER, tree=(ROOT, PARENT))
PARENT_PARTY = Party(PARENT, tree=(ROOT,))
ROOT_PARTY = Party(ROOT, superduper=True)
OTHER_PARTY = Party(OTHER, tree=(ROOT,))


def test_parties_come_from_account_docs():
    assert Party.of({"_id": "a", "pvt_tree": ["r", "p"], "pvt_superduper_admin": True}) == Party(
        "a", ("r", "p"), True
    )
    assert Party.of({"_id": "a", "pvt_tree": "r", "pvt_superduper_admin": "true"}) == Party("a")
    assert Party.of({"_id": "a"}) == Party("a", (), False)


@pytest.mark.parametrize(
    ("auth", "owner", "authorized"),
    [
        (OWNER_PARTY, OWNER_PARTY, True),  # the owner itself
        (PARENT_PARTY, OWNER_PARTY, True),  # an ancestor of the owner
        (ROOT_PARTY, OWNER_PARTY, True),  # a superduper admin
        (OTHER_PARTY, OWNER_PARTY, False),  # a sibling
        (OWNER_PARTY, None, True),  # the owner needs no owner doc
        (PARENT_PARTY, None, False),  # without the owner's tree, an ancestor is unknown
        (Party(PARENT, superduper=True), None, True),
    ],
)
def test_is_authorized(auth, owner, authorized):
    assert is_authorized(number(), auth, owner) is authorized


def test_an_unassigned_number_is_only_for_superduper_admins():
    for unassigned in (number(owner=None), number(owner=""), {**number(), "pvt_assigned_to": 5}):
        assert is_authorized(unassigned, ROOT_PARTY, None)
        assert not is_authorized(unassigned, OWNER_PARTY, OWNER_PARTY)


def test_reserved_from_parent():
    reserved_by_parent = number("reserved", owner=PARENT)
    assert is_reserved_from_parent(reserved_by_parent, OWNER_PARTY)
    assert is_reserved_from_parent(reserved_by_parent, PARENT_PARTY)  # by itself
    assert not is_reserved_from_parent(reserved_by_parent, OTHER_PARTY)
    assert not is_reserved_from_parent(number("in_service", owner=PARENT), OWNER_PARTY)
    assert not is_reserved_from_parent(number("reserved", owner=None), OWNER_PARTY)
    assert not is_reserved_from_parent(number("reserved", owner=OWNER), PARENT_PARTY)


def test_may_use():
    assert may_use(None, OTHER_PARTY, None)  # a number that does not exist
    assert may_use(number("available", owner=OTHER), OWNER_PARTY, None)
    assert may_use(number(), OWNER_PARTY, OWNER_PARTY)
    assert may_use(number("reserved", owner=PARENT), OWNER_PARTY, PARENT_PARTY)
    assert not may_use(number(), OTHER_PARTY, OWNER_PARTY)
    assert not may_use(number("in_service", owner=PARENT), OWNER_PARTY, PARENT_PARTY)
    # The legacy state key counts as the state.
    assert may_use({"_id": E164, "pvt_number_state": "available"}, OTHER_PARTY, None)


def test_the_owner_is_read_only_when_the_verdict_depends_on_it():
    assert needs_owner(number(), PARENT_PARTY)
    assert not needs_owner(None, PARENT_PARTY)
    assert not needs_owner(number(), ROOT_PARTY)
    assert not needs_owner(number(), OWNER_PARTY)
    assert not needs_owner(number(owner=None), PARENT_PARTY)
    assert not needs_owner(number("available"), PARENT_PARTY)
    assert needs_owner(number("reserved"), PARENT_PARTY)


# -- number docs ---------------------------------------------------------------------------


def test_field_readers():
    assert docs.state_of({"pvt_state": "reserved", "pvt_number_state": "x"}) == "reserved"
    assert docs.state_of({"pvt_number_state": "port_in"}) == "port_in"
    assert docs.state_of({"pvt_state": 5}) is None and docs.state_of({}) is None
    assert docs.assigned_to({"pvt_assigned_to": "a"}) == "a"
    assert docs.assigned_to({"pvt_assigned_to": ""}) is None
    assert docs.assigned_to({"pvt_assigned_to": ["a"]}) is None
    assert docs.used_by({"pvt_used_by": "callflow"}) == "callflow"
    assert docs.used_by({"pvt_used_by": ""}) is None and docs.used_by({"pvt_used_by": 1}) is None
    assert docs.is_live({}) and docs.is_live({"pvt_deleted": False})
    assert not docs.is_live({"pvt_deleted": True}) and not docs.is_live({"_deleted": True})


def test_public_fields_never_store_id_or_used_by():
    data = {"id": "x", "used_by": "y", "_rev": "1", "pvt_a": 1, "mine": {"k": [1]}, "idx": 2}
    public = docs.public_fields(data)
    assert public == {"mine": {"k": [1]}, "idx": 2}
    public["mine"]["k"].append(2)
    assert data["mine"] == {"k": [1]}


def test_a_new_local_number_as_knm_ops_create_saves_it():
    assert docs.new_number(
        E164, state="in_service", assign_to=OWNER, public={"mine": 1, "id": "x"}, now=7
    ) == {
        "mine": 1,
        "_id": E164,
        "pvt_type": "number",
        "pvt_db_name": "numbers%2F%2B1415",
        "pvt_module_name": "knm_local",
        "pvt_ported_in": False,
        "pvt_state": "in_service",
        "pvt_created": 7,
        "pvt_modified": 7,
        "pvt_features": {"local": {}},
        "pvt_assigned_to": OWNER,
    }


def test_new_numbers_by_state_and_carrier():
    reserved = docs.new_number(E164, state="reserved", assign_to=OWNER, now=1)
    assert reserved["pvt_reserve_history"] == [OWNER] and reserved["pvt_assigned_to"] == OWNER
    available = docs.new_number(E164, state="available", assign_to=OWNER, now=1)
    assert "pvt_assigned_to" not in available and "pvt_reserve_history" not in available
    nobody = docs.new_number(E164, state="in_service", assign_to=None, now=1)
    assert "pvt_assigned_to" not in nobody
    mdn = docs.new_number(E164, state="in_service", assign_to=OWNER, module_name="knm_mdn")
    assert mdn["pvt_features"] == {"local": {}}
    carrier = docs.new_number(E164, state="in_service", assign_to=OWNER, module_name="knm_x")
    assert "pvt_features" not in carrier and carrier["pvt_module_name"] == "knm_x"
    assert carrier["pvt_created"] == carrier["pvt_modified"] > 63_000_000_000


def test_taking_over_an_available_number():
    existing = {
        "_id": E164,
        "_rev": "3-a",
        "pvt_state": "available",
        "pvt_module_name": "knm_bandwidth2",
        "pvt_db_name": "kept",
        "pvt_created": 1,
        "pvt_used_by": "callflow",
        "pvt_number_state": "available",
        "old_public": "kept",
    }
    doc = docs.take_over(
        existing, E164, state="in_service", assign_to=OWNER, public={"new": 1}, now=9
    )
    assert doc == {
        "_id": E164,
        "_rev": "3-a",
        "pvt_state": "in_service",
        "pvt_module_name": "knm_bandwidth2",
        "pvt_db_name": "kept",
        "pvt_created": 1,
        "pvt_type": "number",
        "pvt_modified": 9,
        "pvt_assigned_to": OWNER,
        "old_public": "kept",
        "new": 1,
    }


def test_taking_over_from_a_previous_owner_and_reserving():
    existing = {"_id": E164, "pvt_state": "port_in", "pvt_assigned_to": OTHER, "pvt_used_by": "x"}
    doc = docs.take_over(existing, E164, state="reserved", assign_to=OWNER, now=9)
    assert doc["pvt_assigned_to"] == OWNER and doc["pvt_previously_assigned_to"] == OTHER
    assert "pvt_used_by" not in doc
    assert doc["pvt_reserve_history"] == [OWNER]
    assert doc["pvt_db_name"] == "numbers%2F%2B1415" and doc["pvt_created"] == 9
    again = docs.take_over(
        {**existing, "pvt_reserve_history": [OTHER]}, E164, state="reserved", assign_to=OWNER
    )
    assert again["pvt_reserve_history"] == [OWNER, OTHER]
    # The same owner again: nothing about ownership changes.
    same = docs.take_over(existing, E164, state="in_service", assign_to=OTHER, now=9)
    assert same["pvt_used_by"] == "x" and "pvt_previously_assigned_to" not in same
    # Made available: the owner stays as it was.
    freed = docs.take_over(existing, E164, state="available", assign_to=OWNER, now=9)
    assert freed["pvt_assigned_to"] == OTHER and "pvt_previously_assigned_to" not in freed


def test_used_by_is_set_and_removed_and_the_legacy_keys_go():
    legacy = {"_id": E164, "used_by": "old", "pvt_number_state": "in_service", "pvt_modified": 1}
    used = docs.with_used_by(legacy, "trunkstore", now=5)
    assert used == {
        "_id": E164,
        "pvt_used_by": "trunkstore",
        "pvt_state": "in_service",
        "pvt_modified": 5,
    }
    assert legacy["used_by"] == "old", "a copy"
    unused = docs.with_used_by(used, None, now=6)
    assert "pvt_used_by" not in unused and unused["pvt_modified"] == 6
    kept = docs.with_used_by({"pvt_state": "reserved", "pvt_number_state": "x"}, "a")
    assert kept["pvt_state"] == "reserved" and "pvt_number_state" not in kept
    assert kept["pvt_modified"] > 63_000_000_000


def test_release_of_a_local_number():
    stored = {
        "_id": E164,
        "_rev": "2-a",
        "pvt_state": "in_service",
        "pvt_module_name": "knm_local",
        "pvt_features": {"local": {}, "cnam": {}},
        "pvt_assigned_to": OWNER,
        "pvt_used_by": "trunkstore",
        "pvt_reserve_history": [OWNER],
        "public": "cleared",
    }
    assert docs.released(stored, now=4) == {
        "_id": E164,
        "_rev": "2-a",
        "pvt_state": "available",
        "pvt_module_name": "knm_local",
        "pvt_features": {"local": {}},
        "pvt_previously_assigned_to": OWNER,
        "pvt_modified": 4,
    }
    assert docs.is_deleted_on_release(docs.released(stored))


def test_release_unwinds_the_reservation_history():
    stored = {
        "_id": E164,
        "pvt_state": "reserved",
        "pvt_module_name": "knm_bandwidth2",
        "pvt_features": {"cnam": {}},
        "pvt_assigned_to": OWNER,
        "pvt_reserve_history": [OWNER, PARENT, ROOT],
    }
    after = docs.released(stored, now=4)
    assert after["pvt_state"] == "reserved" and after["pvt_assigned_to"] == PARENT
    assert after["pvt_reserve_history"] == [PARENT, ROOT]
    assert after["pvt_previously_assigned_to"] == OWNER
    assert "pvt_features" not in after
    assert not docs.is_deleted_on_release(after)
    mdn = docs.released({**stored, "pvt_module_name": "knm_mdn", "pvt_reserve_history": "x"})
    assert mdn["pvt_features"] == {"local": {}} and mdn["pvt_state"] == "available"
    assert docs.is_deleted_on_release(mdn)
    legacy = docs.released({"_id": E164, "pvt_number_state": "in_service"}, now=1)
    assert legacy["pvt_state"] == "available" and "pvt_number_state" not in legacy
    assert "pvt_previously_assigned_to" not in legacy
    assert docs.released({"_id": E164})["pvt_modified"] > 63_000_000_000


def test_released_to_the_same_reserver_records_no_previous_owner():
    stored = {"_id": E164, "pvt_assigned_to": OWNER, "pvt_reserve_history": [OWNER, OWNER]}
    assert "pvt_previously_assigned_to" not in docs.released(stored, now=1)


@pytest.mark.parametrize(
    ("state", "module", "releasable"),
    [
        ("released", "knm_x", True),
        ("reserved", "knm_x", True),
        ("port_in", "knm_x", True),
        ("in_service", "knm_x", True),
        ("available", "knm_x", False),
        ("aging", "knm_x", False),
        ("deleted", "knm_x", False),
        ("available", "knm_local", True),  # local numbers may always be released
        (None, "knm_mdn", False),
    ],
)
def test_can_release(state, module, releasable):
    doc = {"pvt_module_name": module} if state is None else {"pvt_state": state}
    doc["pvt_module_name"] = module
    assert docs.can_release(doc) is releasable


def test_the_account_copy_has_no_revision_of_its_own():
    stored = {"_id": E164, "_rev": "5-x", "pvt_state": "in_service", "n": {"a": 1}}
    copy = docs.account_copy(stored)
    assert copy == {"_id": E164, "pvt_state": "in_service", "n": {"a": 1}}
    copy["n"]["a"] = 2
    assert stored["n"] == {"a": 1}


def test_features_are_listed_sorted():
    assert docs.features_list({"pvt_features": {"local": {}, "cnam": {}}}) == ["cnam", "local"]
    assert docs.features_list({"pvt_features": ["local"]}) == []
    assert docs.features_list({}) == []


def test_public_json_as_the_phone_numbers_api_answers():
    stored = {
        "_id": E164,
        "pvt_state": "in_service",
        "pvt_used_by": "trunkstore",
        "pvt_features": {"local": {}},
        "pvt_module_name": "knm_local",
        "pvt_created": 1,
        "pvt_modified": 2,
        "mine": "x",
        "used_by": "never shown from here",
    }
    assert docs.public_json(stored) == {
        "mine": "x",
        "id": E164,
        "state": "in_service",
        "used_by": "trunkstore",
        "features": ["local"],
        "_read_only": {
            "created": 1,
            "modified": 2,
            "state": "in_service",
            "used_by": "trunkstore",
            "features": ["local"],
            "carrier_module": "local",
        },
    }
    bare = docs.public_json({"_id": E164, "pvt_module_name": "bandwidth"})
    assert bare == {"id": E164, "_read_only": {}}
    gone = docs.public_json({"_id": E164, "pvt_state": "in_service"}, deleted=True)
    assert gone["state"] == "deleted" and gone["_read_only"] == {
        "state": "deleted",
        "is_deleted": True,
    }
    soft = docs.public_json({"_id": E164, "pvt_deleted": True, "pvt_module_name": 5})
    assert soft["_read_only"] == {"is_deleted": True}


def test_listing_entries_hide_private_fields():
    assert docs.listing_entry({"state": "in_service", "pvt_x": 1, "used_by": "t"}) == {
        "state": "in_service",
        "used_by": "t",
    }


def test_names_kazoo_uses():
    assert (docs.NUMBER_TYPE, docs.TRUNKSTORE) == ("number", "trunkstore")
    assert (docs.LOCAL_CARRIER, docs.MDN_CARRIER) == ("knm_local", "knm_mdn")
    assert docs.RELEASED_STATE == docs.STATE_AVAILABLE == "available"
    assert (docs.STATE_AGING, docs.STATE_PORT_IN) == ("aging", "port_in")


# -- what the first mutation run showed was unchecked ---------------------------------------


def test_an_ancestor_is_authorized_through_the_owners_tree():
    assert may_use(number(), PARENT_PARTY, OWNER_PARTY)
    assert not may_use(number(), PARENT_PARTY, None)


def test_updates_share_nothing_with_the_stored_doc_and_tolerate_missing_keys():
    stored = {"_id": E164, "pvt_features": {"local": {}}, "pvt_x": {"a": [1]}}
    for changed in (
        docs.released(stored, now=1),
        docs.take_over(stored, E164, state="in_service", assign_to=OWNER, now=1),
        docs.with_used_by(stored, None, now=1),
        docs.account_copy(stored),
    ):
        changed["pvt_x"]["a"].append(2)
        assert stored["pvt_x"] == {"a": [1]}
    taken = docs.take_over(stored, E164, state="in_service", assign_to=OWNER)
    assert taken["pvt_modified"] > 63_000_000_000


def test_a_reservation_handed_back_is_reserved_whatever_the_state_was():
    stored = {"_id": E164, "pvt_state": "in_service", "pvt_reserve_history": [OWNER, PARENT]}
    assert docs.released({**stored, "pvt_assigned_to": OWNER})["pvt_state"] == "reserved"


def test_an_assigned_local_number_is_not_deleted_on_release():
    assigned = {"pvt_assigned_to": OWNER, "pvt_module_name": "knm_local"}
    assert not docs.is_deleted_on_release(assigned)
    assert not docs.is_deleted_on_release({"pvt_module_name": "knm_bandwidth2"})
