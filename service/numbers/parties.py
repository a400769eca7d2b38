"""Accounts as the number rules see them (`Party`), read at most once per operation.

The rules themselves are pure (number_access); this supplies the account documents they
need — the requester's and, only when the verdict depends on it, the owner's `pvt_tree`.
"""

from __future__ import annotations

from typing import Any

from service.numbers.access import Party, is_authorized, may_use, needs_owner
from service.numbers.docs import STATE_AVAILABLE, assigned_to, state_of
from service.stores.accounts import AccountStore

Json = dict[str, Any]


class Parties:
    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts
        self._known: dict[str, Party | None] = {}

    async def get(self, account_id: str) -> Party | None:
        if account_id not in self._known:
            account = await self._accounts.get(account_id)
            self._known[account_id] = Party.of(account) if account is not None else None
        return self._known[account_id]

    async def owner_for(self, number: Json, party: Party) -> Party | None:
        owner_id = assigned_to(number)
        if owner_id is None or not needs_owner(number, party):
            return None
        return await self.get(owner_id)

    async def verdict(self, number: Json, account_id: str) -> bool:
        """§11.1 for `account_id` (knm_phone_number:handle_fetch/2)."""
        if state_of(number) == STATE_AVAILABLE or assigned_to(number) == account_id:
            return True  # the two common cases need no account read
        party = await self.get(account_id) or Party(id=account_id)
        return await self.may_use(number, party)

    async def may_use(self, number: Json, party: Party) -> bool:
        return may_use(number, party, await self.owner_for(number, party))

    async def authorized(self, number: Json, party: Party) -> bool:
        """knm_phone_number:is_authorized/1 (no `reserved by an ancestor` exception)."""
        return is_authorized(number, party, await self.owner_for(number, party))
