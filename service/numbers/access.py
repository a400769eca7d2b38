"""Who may use a phone number (docs/kazoo-compatibility.md §11.1), as pure rules.

KAZOO's knm_phone_number:handle_fetch/2 lets a number through when it is `available`,
when the requesting account is authorised for it (`is_authorized/1`), or when it is
reserved by one of the requester's ancestors (`is_reserved_from_parent/1`). A number
that does not exist is not KAZOO's business and passes too (cb_modules_util ignores
`not_found`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.numbers.docs import STATE_AVAILABLE, STATE_RESERVED, assigned_to, state_of

Json = dict[str, Any]


@dataclass(frozen=True)
class Party:
    """An account as the number rules see it."""

    id: str
    tree: tuple[str, ...] = ()  # ancestors, root first (`pvt_tree`)
    superduper: bool = False

    @classmethod
    def of(cls, account: Json) -> Party:
        tree = account.get("pvt_tree")
        return cls(
            id=account["_id"],
            tree=tuple(tree) if isinstance(tree, list) else (),
            superduper=account.get("pvt_superduper_admin") is True,
        )


def is_authorized(number: Json, auth: Party, owner: Party | None) -> bool:
    """knm_phone_number:is_authorized/1 with `auth_by` = `auth`.

    `owner` is the account the number is assigned to (needed for its `pvt_tree`); None
    when it could not be read, which only the owner itself or a superduper survives.
    """
    owner_id = assigned_to(number)
    if owner_id is None:
        # "assigns all 'undefined', checking if auth is super duper"
        return auth.superduper
    if auth.superduper or auth.id == owner_id:
        return True
    return owner is not None and auth.id in owner.tree


def is_reserved_from_parent(number: Json, auth: Party) -> bool:
    """A number an ancestor (or the account itself) reserved may be used below it.

    KAZOO also lets anyone use a number reserved by a superduper account
    (`is_admin_or_in_account_hierarchy(AssignedTo, AuthBy)`); with KAZOO's single master
    account that is the same as "an ancestor reserved it", but with several top-level
    accounts it would hand one tree's reservations to another, so we keep the ancestor
    rule only.
    """
    owner_id = assigned_to(number)
    if state_of(number) != STATE_RESERVED or owner_id is None:
        return False
    return owner_id == auth.id or owner_id in auth.tree


def may_use(number: Json | None, auth: Party, owner: Party | None) -> bool:
    """The §11.1 verdict for one number doc (None: the number does not exist)."""
    if number is None:
        return True
    if state_of(number) == STATE_AVAILABLE:
        return True
    return is_authorized(number, auth, owner) or is_reserved_from_parent(number, auth)


def needs_owner(number: Json | None, auth: Party) -> bool:
    """Whether the verdict depends on the owner's `pvt_tree` (so it must be read)."""
    if number is None or auth.superduper:
        return False
    owner_id = assigned_to(number)
    return owner_id is not None and owner_id != auth.id and state_of(number) != STATE_AVAILABLE
