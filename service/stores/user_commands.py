"""`kazoo-connectivity create-user`: a user stored exactly as `PUT …/users` stores it."""

from __future__ import annotations

import argparse
import json
import sys

from service.config import Settings
from service.couchdb.client import CouchClient, CouchUnreachable
from service.couchdb.runtime import open_couch
from service.kazoo.documents import WriteContext
from service.kazoo.errors import KazooError
from service.kazoo.ids import encoded_account_db, new_id
from service.kazoo.validation import SchemaValidator, schema_path
from service.stores.accounts import AccountStore
from service.stores.users import UserStore


async def run_create_user(settings: Settings, args: argparse.Namespace) -> int:
    """Prints `{user_id, account_id, username, priv_level}`; never the password or a hash."""
    body = {
        "username": args.username,
        "password": args.password,
        "priv_level": args.priv_level,
        "first_name": args.first_name or args.username,
        "last_name": args.last_name,
    }
    handle = await open_couch(settings)
    try:
        async with CouchClient(handle.url, timeout=settings.couch_timeout) as client:
            account = await AccountStore(client).get(args.account)
            if account is None or account.get("pvt_deleted"):
                print(f"kazoo-connectivity: no account {args.account}", file=sys.stderr)
                return 1
            validator = SchemaValidator.from_file(
                schema_path("users"), strict=settings.strict_validation
            )
            store = UserStore(client, validator)
            ctx = WriteContext(
                account_id=args.account,
                encoded_account_db=encoded_account_db(args.account),
                request_id=new_id(),
                auth_account_id=None,
            )
            saved = await store.create(args.account, store.validated(body), ctx)
    except KazooError as exc:
        # The same validation errors the API answers (a taken or malformed username).
        print(f"kazoo-connectivity: {json.dumps(exc.data)}", file=sys.stderr)
        return 1
    except CouchUnreachable:
        print("kazoo-connectivity: CouchDB is unreachable", file=sys.stderr)
        return 1
    finally:
        await handle.close()
    summary = {
        "user_id": saved["_id"],
        "account_id": args.account,
        "username": saved["username"],
        "priv_level": saved["priv_level"],
    }
    print(json.dumps(summary))
    return 0
