"""`PUT /v2/user_auth`'s rules (cb_user_auth): which account, which user, may they log in.

The account is found by `phone_number`, else `account_realm` (or `realm`), else
`account_name`, each falling through to the next when it finds nothing; an account
name may match several accounts, which are tried in turn. The user is the one whose
stored hash equals `credentials` (`method` md5, the default, or sha) in that
account's database. KAZOO's outcome for each failure is kept: nothing found is
"invalid credentials"; an expired or disabled account is told apart (423).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from service.kazoo.ids import now_gregorian
from service.kazoo.users import normalize_account_name
from service.stores.accounts import AccountStore
from service.stores.users import UserNotFound, UserStore

Json = dict[str, Any]

# The account a phone number is assigned to, or None (numbers/ knows; stores do not).
NumberOwner = Callable[[str], Awaitable[str | None]]


class LoginFailed(Exception):
    """Wrong credentials, or nothing matched: KAZOO's 401 `invalid_credentials`."""


class AccountLocked(Exception):
    """The credentials are right but the account is expired or disabled (423)."""

    def __init__(self, reason: str, cause: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason  # "expired" or "disabled"
        self.cause = cause


@dataclass(frozen=True)
class Login:
    account: Json
    user: Json


class Logins:
    def __init__(self, accounts: AccountStore, users: UserStore, number_owner: NumberOwner) -> None:
        self.accounts = accounts
        self.users = users
        self.number_owner = number_owner

    async def log_in(self, request: Json) -> Login:
        """`request`: a validated user_auth body. LoginFailed or AccountLocked otherwise."""
        method = request.get("method", "md5")
        credentials = request["credentials"]
        for account_id in await self._candidate_accounts(request):
            found = await self.users.find_by_credentials(account_id, credentials, method)
            if found is None:
                continue
            return await self._checked(account_id, str(found["owner_id"]))
        raise LoginFailed()

    async def _candidate_accounts(self, request: Json) -> list[str]:
        number = request.get("phone_number")
        if isinstance(number, str) and number:
            owner = await self.number_owner(number)
            if owner is not None:
                return [owner]
        realm = request.get("account_realm", request.get("realm"))
        if isinstance(realm, str) and realm:
            by_realm = await self.accounts.ids_by_realm(realm)
            if by_realm:
                return by_realm
        name = request.get("account_name")
        if isinstance(name, str) and normalize_account_name(name):
            return await self.accounts.ids_by_name(normalize_account_name(name))
        return []

    async def _checked(self, account_id: str, user_id: str) -> Login:
        account = await self.accounts.get(account_id)
        if account is None or account.get("pvt_deleted"):
            raise LoginFailed()
        try:
            user = await self.users.get(account_id, user_id)
        except UserNotFound:
            raise LoginFailed() from None
        expires = account.get("pvt_trial_expires")
        if isinstance(expires, int) and expires < now_gregorian():
            # kzd_accounts:is_expired/1: a trial account past `pvt_trial_expires`.
            raise AccountLocked("expired", expires)
        if account.get("pvt_enabled") is False:
            raise AccountLocked("disabled")
        return Login(account=account, user=user)
