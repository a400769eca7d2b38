"""Adding, reading and removing numbers: KAZOO's knm_numbers for this service.

Used by `/v2/accounts/{ACCOUNT_ID}/phone_numbers/{NUMBER}` and by `import-numbers`.
Raises KAZOO's number errors (knm_errors, §5.1 style envelopes) for the API to render.

Creating (knm_ops:create/2, knm_lib): the state asked for (`create_with_state`, default
`in_service`) must be one the requester may create — every state for a superduper admin
(or the operator's CLI), `in_service`/`reserved` for an account whose doc has
`pvt_wnm_allow_additions: true`, none otherwise. An existing number can only be
(re)created from `aging`, `available` or `port_in`; anything else is 409 `number_exists`.

Removing (knm_ops:release/2): the number goes back to the previous reserver, or is
released; an unassigned `knm_local` number is then deleted for good, as KAZOO does with
its default settings. `?hard=true` from a superduper admin deletes it outright.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.couchdb.client import DocumentConflict
from service.kazoo import errors
from service.numbers.access import Party
from service.numbers.docs import (
    RELEASED_STATE,
    STATE_AGING,
    STATE_AVAILABLE,
    STATE_IN_SERVICE,
    STATE_PORT_IN,
    STATE_RESERVED,
    assigned_to,
    can_release,
    is_deleted_on_release,
    is_live,
    new_number,
    released,
    state_of,
    take_over,
)
from service.numbers.parties import Parties
from service.numbers.rules import is_reconcilable, normalize, number_db
from service.numbers.store import NumberStore
from service.stores.accounts import AccountStore

Json = dict[str, Any]

CREATE_STATE_KEY = "create_with_state"
# knm_lib:allowed_creation_states/2.
ADMIN_CREATION_STATES = (
    STATE_AGING,
    STATE_AVAILABLE,
    STATE_IN_SERVICE,
    STATE_PORT_IN,
    STATE_RESERVED,
)
ADDITIONS_CREATION_STATES = (STATE_IN_SERVICE, STATE_RESERVED)
# knm_lib:ensure_load_create_state/2: the states an existing number may be created from.
RECREATABLE_STATES = (STATE_AGING, STATE_AVAILABLE, STATE_PORT_IN)
# The phone_numbers schema's enum for `create_with_state`.
KNOWN_STATES = (*ADMIN_CREATION_STATES, "deleted", "discovery", "port_out", "released")


@dataclass(frozen=True)
class Requester:
    """Who asks: an account (the token's), or the operator at the command line."""

    party: Party | None  # None = the operator (KAZOO's `auth_by` "system")
    allow_additions: bool = False

    @classmethod
    def of(cls, account: Json) -> Requester:
        return cls(
            party=Party.of(account), allow_additions=account.get("pvt_wnm_allow_additions") is True
        )

    @property
    def is_admin(self) -> bool:
        return self.party is None or self.party.superduper

    def creation_states(self) -> tuple[str, ...]:
        if self.is_admin:
            return ADMIN_CREATION_STATES
        return ADDITIONS_CREATION_STATES if self.allow_additions else ()


OPERATOR = Requester(party=None)


@dataclass(frozen=True)
class Removed:
    number: Json
    deleted: bool


class PhoneNumbers:
    def __init__(self, store: NumberStore, accounts: AccountStore) -> None:
        self.store = store
        self.accounts = accounts

    # -- create ------------------------------------------------------------------------

    async def create(self, raw: str, account_id: str, requester: Requester, data: Json) -> Json:
        """PUT …/phone_numbers/{NUMBER}: the stored number, assigned to `account_id`."""
        e164 = _reconcilable(raw)
        state = _requested_state(data)
        if state != STATE_PORT_IN and state not in requester.creation_states():
            raise errors.number_unauthorized(f"creating number in state '{state}' is not allowed")
        stored = await self.store.get(e164, include_deleted=True)
        existing = stored if stored is not None and is_live(stored) else None
        if existing is None:
            doc = new_number(e164, state=state, assign_to=account_id, public=data)
            if stored is not None:
                # A soft-deleted doc is "not found" to KAZOO; the new one replaces it.
                doc["_rev"] = stored["_rev"]
        else:
            await self._check_recreatable(existing, e164, requester)
            doc = take_over(existing, e164, state=state, assign_to=account_id, public=data)
        doc.pop("create_with_state", None)
        try:
            return await self.store.write_through(doc, assigned_to(existing or {}))
        except DocumentConflict:
            # Someone created or changed it at the same moment.
            raise errors.number_exists(e164) from None

    async def _check_recreatable(self, existing: Json, e164: str, requester: Requester) -> None:
        if state_of(existing) not in RECREATABLE_STATES:
            raise errors.number_exists(e164)
        if state_of(existing) == STATE_PORT_IN and not await self._authorized(existing, requester):
            raise errors.number_unauthorized()

    # -- read --------------------------------------------------------------------------

    async def get(self, raw: str, requester: Requester) -> Json:
        """GET …/phone_numbers/{NUMBER}: KAZOO reads it with `auth_by` = the requester."""
        e164 = _reconcilable(raw)
        number = await self.store.get(e164)
        if number is None or not await self._usable(number, requester):
            raise errors.number_not_found()
        return number

    # -- remove ------------------------------------------------------------------------

    async def remove(self, raw: str, requester: Requester, *, hard: bool) -> Removed:
        """DELETE …/phone_numbers/{NUMBER}: released, or deleted for good."""
        e164 = _reconcilable(raw)
        number = await self.store.get(e164)
        if number is None:
            raise errors.number_not_found()
        if not await self._usable(number, requester):
            raise errors.number_unauthorized()
        owner = assigned_to(number)
        if hard and requester.is_admin:
            await self.store.delete(number)
            if owner is not None:
                await self.store.delete_copy(owner, e164)
            return Removed(number=number, deleted=True)
        if not can_release(number):
            raise errors.number_invalid_state_transition(state_of(number), RELEASED_STATE)
        if not await self._authorized(number, requester):
            raise errors.number_unauthorized()
        return await self._release(number, owner)

    async def _release(self, number: Json, owner: str | None) -> Removed:
        after = released(number)
        try:
            if is_deleted_on_release(after):
                await self.store.delete(number)
                if owner is not None:
                    await self.store.delete_copy(owner, number["_id"])
                return Removed(number=after, deleted=True)
            stored = await self.store.write_through(after, owner)
        except DocumentConflict:
            raise errors.conflict() from None
        return Removed(number=stored, deleted=False)

    # -- rules -------------------------------------------------------------------------

    async def _usable(self, number: Json, requester: Requester) -> bool:
        """knm_phone_number:handle_fetch/2."""
        if requester.party is None:
            return True
        return await Parties(self.accounts).may_use(number, requester.party)

    async def _authorized(self, number: Json, requester: Requester) -> bool:
        """knm_phone_number:is_authorized/1."""
        if requester.party is None:
            return True
        return await Parties(self.accounts).authorized(number, requester.party)


def _reconcilable(raw: str) -> str:
    e164 = normalize(raw) if is_reconcilable(raw) else None
    # "00" passes KAZOO's reconcile regex yet is too short to name a `numbers/…`
    # database: refused like any unreconcilable number, not a 500 (found by schemathesis).
    if e164 is None or number_db(e164) is None:
        raise errors.number_not_reconcilable(raw)
    return e164


def _requested_state(data: Json) -> str:
    state = data.get(CREATE_STATE_KEY)
    if state is None:
        return STATE_IN_SERVICE
    if state not in KNOWN_STATES:
        raise errors.validation_error(
            {
                CREATE_STATE_KEY: {
                    "enum": {
                        "message": "Value not found in enumerated list of values",
                        "target": list(KNOWN_STATES),
                        "value": state,
                    }
                }
            }
        )
    return str(state)
