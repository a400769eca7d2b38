"""`kazoo-connectivity` (also `python -m service`): serve, and operator commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from service.config import ConfigError, Settings, load_settings
from service.couchdb.client import CouchClient, CouchUnreachable
from service.couchdb.runtime import open_couch
from service.couchdb.view_maintenance import ensure_all_views
from service.events.publisher import publishing
from service.kazoo.changes import DocWritten
from service.kazoo.users import PRIV_LEVELS
from service.logs import configure_logging
from service.numbers.commands import run_ensure_numbers, run_import_numbers
from service.stores.accounts import AccountError, AccountStore
from service.stores.user_commands import run_create_user

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
    user = commands.add_parser(
        "create-user",
        help="create a user who can log in with PUT /v2/user_auth (Monster UI); prints JSON",
    )
    user.add_argument("--account", required=True, metavar="ACCOUNT_ID")
    user.add_argument("--username", required=True)
    user.add_argument("--password", required=True)
    user.add_argument("--priv-level", choices=PRIV_LEVELS, default="admin")
    user.add_argument("--first-name", default=None, help="default: the username")
    user.add_argument("--last-name", default="User")
    rotate = commands.add_parser(
        "rotate-api-key", help="give an account a new api key (revokes its tokens); prints JSON"
    )
    rotate.add_argument("--account", required=True, metavar="ACCOUNT_ID")
    imports = commands.add_parser(
        "import-numbers",
        help="create the numbers of a CSV file (columns: number[,state]) for an account; "
        "prints one JSON line per row",
    )
    imports.add_argument("--account", required=True, metavar="ACCOUNT_ID")
    imports.add_argument("file", type=Path, metavar="FILE.csv")
    ensure_numbers = commands.add_parser(
        "ensure-numbers",
        help="bring number docs (used_by, account copies) in line with every account's "
        "connectivity docs and report duplicate DIDs; prints one JSON line per finding",
    )
    ensure_numbers.add_argument("--dry-run", action="store_true", help="report, change nothing")
    commands.add_parser(
        "ensure-views",
        help="install our design docs where missing or different (accounts db and every "
        "account db); prints one JSON line per change",
    )
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
    if command == "create-user":
        return asyncio.run(run_create_user(settings, args))
    if command == "rotate-api-key":
        return asyncio.run(_rotate_api_key(settings, args.account))
    if command == "ensure-views":
        return asyncio.run(_ensure_views(settings))
    if command == "import-numbers":
        return asyncio.run(
            _announced(
                settings,
                lambda hook: run_import_numbers(settings, args.account, args.file, on_written=hook),
            )
        )
    if command == "ensure-numbers":
        return asyncio.run(
            _announced(
                settings,
                lambda hook: run_ensure_numbers(settings, dry_run=args.dry_run, on_written=hook),
            )
        )
    return asyncio.run(_create_account(settings, args.name, args.realm, args.parent))


def serve(settings: Settings) -> int:
    from service.http.app import couch_gave_up, create_app
    from service.http.server import serve_until_stopped

    app = create_app(settings)
    listening = asyncio.run(
        serve_until_stopped(app, settings.host, settings.port, settings.shutdown_grace)
    )
    # Non-zero when the port was taken or the embedded CouchDB died for good, so that a
    # supervisor (systemd, Kubernetes) restarts us.
    return 1 if not listening or couch_gave_up(app) else 0


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


async def _announced(
    settings: Settings, command: Callable[[DocWritten | None], Awaitable[int]]
) -> int:
    """Runs a command whose writes are announced on AMQP when the settings ask for it."""
    async with publishing(settings) as on_written:
        return await command(on_written)


async def _create_account(
    settings: Settings, name: str, realm: str | None, parent: str | None
) -> int:
    handle = await open_couch(settings)
    try:
        async with (
            CouchClient(handle.url, timeout=settings.couch_timeout) as client,
            publishing(settings) as on_written,
        ):
            store = AccountStore(client)
            store.on_written = on_written
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
        async with (
            CouchClient(handle.url, timeout=settings.couch_timeout) as client,
            publishing(settings) as on_written,
        ):
            store = AccountStore(client)
            store.on_written = on_written
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


async def _ensure_views(settings: Settings) -> int:
    """One JSON line per design doc written (or database that failed); a summary on stderr."""
    handle = await open_couch(settings)
    try:
        async with CouchClient(handle.url, timeout=settings.couch_timeout) as client:
            summary = await ensure_all_views(
                client, lambda report: print(json.dumps(report.to_json()), flush=True)
            )
    except CouchUnreachable:
        print("kazoo-connectivity: CouchDB is unreachable", file=sys.stderr)
        return 1
    finally:
        await handle.close()
    print(
        f"kazoo-connectivity: {summary.checked} databases checked, "
        f"{summary.changed} design docs written, {summary.failed} failed",
        file=sys.stderr,
    )
    return 1 if summary.failed else 0
