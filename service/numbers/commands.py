"""The operator commands about numbers: `import-numbers` and `ensure-numbers`.

Both print one JSON line per row or finding on stdout and a summary on stderr, like
`ensure-views`; the exit status is 1 when something failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from service.config import Settings
from service.couchdb.client import CouchClient, CouchUnreachable
from service.couchdb.runtime import open_couch
from service.kazoo.changes import DocWritten
from service.numbers.csv_import import import_row, read_rows
from service.numbers.phone_numbers import PhoneNumbers
from service.numbers.reconcile import NumberReconciler
from service.numbers.store import NumberStore
from service.stores.accounts import AccountStore


def _line(entry: object) -> None:
    print(json.dumps(entry), flush=True)


def _error(message: str) -> int:
    print(f"kazoo-connectivity: {message}", file=sys.stderr)
    return 1


async def run_import_numbers(
    settings: Settings, account_id: str, path: Path, *, on_written: DocWritten | None = None
) -> int:
    """`on_written`: told of every number doc written (the change events)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        return _error(f"cannot read {path}: {exc.strerror}")
    handle = await open_couch(settings)
    counts = {"created": 0, "unchanged": 0, "error": 0}
    try:
        async with CouchClient(handle.url, timeout=settings.couch_timeout) as client:
            accounts = AccountStore(client)
            account = await accounts.get(account_id)
            if account is None or account.get("pvt_deleted"):
                return _error(f"account {account_id} does not exist")
            store = NumberStore(client)
            store.on_written = on_written
            numbers = PhoneNumbers(store, accounts)
            for row in read_rows(text):
                result = await import_row(numbers, account_id, row)
                counts[result["result"]] += 1
                _line(result)
    except CouchUnreachable:
        return _error("CouchDB is unreachable")
    finally:
        await handle.close()
    summary = ", ".join(f"{count} {name}" for name, count in counts.items())
    print(f"kazoo-connectivity: import-numbers: {summary}", file=sys.stderr)
    return 1 if counts["error"] else 0


async def run_ensure_numbers(
    settings: Settings, *, dry_run: bool, on_written: DocWritten | None = None
) -> int:
    """`on_written`: told of every number doc written (the change events)."""
    handle = await open_couch(settings)
    try:
        async with CouchClient(handle.url, timeout=settings.couch_timeout) as client:
            reconciler = NumberReconciler(client, dry_run=dry_run)
            reconciler.store.on_written = on_written
            summary = await reconciler.run(lambda finding: _line(finding.to_json()))
    except CouchUnreachable:
        return _error("CouchDB is unreachable")
    finally:
        await handle.close()
    changed = sum(summary.count(action) for action in ("assigned", "released", "copy_written"))
    print(
        f"kazoo-connectivity: ensure-numbers: {summary.accounts} accounts, "
        f"{summary.numbers} numbers checked, {changed} "
        f"{'to change' if dry_run else 'changed'}, "
        f"{summary.count('duplicate_did')} duplicate DIDs, {summary.count('failed')} failed",
        file=sys.stderr,
    )
    return 1 if summary.count("failed") else 0
