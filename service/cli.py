"""`kazoo-connectivity` (also `python -m service`): serve, and operator commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from .accounts import AccountError, AccountStore
from .config import ConfigError, Settings, load_settings
from .couch_runtime import open_couch
from .couchdb import CouchClient, CouchUnreachable
from .logs import configure_logging

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kazoo-connectivity",
        description="KAZOO's Crossbar connectivity API on CouchDB. Settings come from "
        "CONNECTIVITY_* environment variables (see README).",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP service (the default)")
    commands.add_parser("couch-url", help="print the URL, with credentials, of the CouchDB in use")
    create = commands.add_parser("create-account", help="create an account; prints JSON")
    create.add_argument("--name", required=True)
    create.add_argument("--realm", default=None)
    create.add_argument("--parent", default=None, metavar="ACCOUNT_ID")
    rotate = commands.add_parser(
        "rotate-api-key", help="give an account a new api key (revokes its tokens); prints JSON"
    )
    rotate.add_argument("--account", required=True, metavar="ACCOUNT_ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"kazoo-connectivity: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    command = args.command or "serve"
    if command == "serve":
        return serve(settings)
    if command == "couch-url":
        return asyncio.run(_couch_url(settings))
    if command == "rotate-api-key":
        return asyncio.run(_rotate_api_key(settings, args.account))
    return asyncio.run(_create_account(settings, args.name, args.realm, args.parent))


def serve(settings: Settings) -> int:
    from .app import create_app

    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_grace,
        access_log=None,
        print=lambda message: log.info(message),
    )
    return 0


async def _couch_url(settings: Settings) -> int:
    if settings.couch_url is not None:
        print(settings.couch_url)
        return 0
    handle = await open_couch(settings)
    try:
        if handle.embedded is not None:
            # Nobody serves this data folder right now: the URL would die with us.
            print(
                "kazoo-connectivity: the embedded CouchDB is not running; start "
                "`kazoo-connectivity serve` (make run) first",
                file=sys.stderr,
            )
            return 1
        print(handle.url)
        return 0
    finally:
        await handle.close()


async def _create_account(
    settings: Settings, name: str, realm: str | None, parent: str | None
) -> int:
    handle = await open_couch(settings)
    try:
        async with CouchClient(handle.url, timeout=settings.couch_timeout) as client:
            store = AccountStore(client)
            await store.ensure_system_databases()
            created = await store.create(name, realm, parent)
    except AccountError as exc:
        print(f"kazoo-connectivity: {exc}", file=sys.stderr)
        return 1
    except CouchUnreachable:
        print("kazoo-connectivity: CouchDB is unreachable", file=sys.stderr)
        return 1
    finally:
        await handle.close()
    print(json.dumps(created.summary))
    return 0


async def _rotate_api_key(settings: Settings, account_id: str) -> int:
    handle = await open_couch(settings)
    try:
        async with CouchClient(handle.url, timeout=settings.couch_timeout) as client:
            store = AccountStore(client)
            account = await store.get(account_id)
            if account is None or account.get("pvt_deleted"):
                print(f"kazoo-connectivity: no account {account_id}", file=sys.stderr)
                return 1
            account = await store.rotate_api_key(account)
    except CouchUnreachable:
        print("kazoo-connectivity: CouchDB is unreachable", file=sys.stderr)
        return 1
    finally:
        await handle.close()
    print(json.dumps({"account_id": account_id, "api_key": account["pvt_api_key"]}))
    return 0
