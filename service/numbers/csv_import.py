"""`kazoo-connectivity import-numbers --account ACCOUNT_ID FILE.csv`: bulk creation.

The CSV file has one number per row; a first row starting with `number` is a header.

    number,state
    +14155550100,in_service
    4155550101
    +442071234567,reserved

* `number` — any form KAZOO normalises (`+14155550100`, `14155550100`, `4155550100`,
  `011…`/`00…` international); stored as E.164.
* `state` — optional: `in_service` (default), `reserved`, `available`, `port_in` or
  `aging`, as `create_with_state` of `PUT …/phone_numbers/{NUMBER}`.

Each number is created as that API creates it, with the operator's rights (KAZOO's
`auth_by` "system"): assigned to the account, `knm_local`, copy in the account db. A
number already assigned to the same account is left as it is, so a file can be
imported twice.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from service.kazoo.errors import KazooError
from service.numbers.docs import STATE_IN_SERVICE, assigned_to
from service.numbers.phone_numbers import CREATE_STATE_KEY, OPERATOR, PhoneNumbers
from service.numbers.rules import is_reconcilable, normalize

Json = dict[str, Any]

COLUMNS = ("number", "state")


@dataclass(frozen=True)
class Row:
    line: int
    number: str
    state: str


def read_rows(text: str) -> Iterator[Row]:
    """The CSV rows with a number; blank lines skipped, header detected."""
    for line, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in cells]
        if not cells or not cells[0]:
            continue
        if line == 1 and cells[0].lower() == COLUMNS[0]:
            continue
        state = cells[1] if len(cells) > 1 and cells[1] else STATE_IN_SERVICE
        yield Row(line=line, number=cells[0], state=state)


async def import_row(numbers: PhoneNumbers, account_id: str, row: Row) -> Json:
    """One output line: what became of this row."""
    result: Json = {"line": row.line, "number": row.number}
    if is_reconcilable(row.number):
        result["number"] = normalize(row.number)
    try:
        doc = await numbers.create(row.number, account_id, OPERATOR, {CREATE_STATE_KEY: row.state})
    except KazooError as error:
        if error.message == "number_exists" and await _already_ours(numbers, row, account_id):
            return result | {"result": "unchanged"}
        return result | {"result": "error", "error": error.message, "data": error.data}
    return result | {"result": "created", "state": doc.get("pvt_state")}


async def _already_ours(numbers: PhoneNumbers, row: Row, account_id: str) -> bool:
    existing = await numbers.store.get(normalize(row.number))
    return existing is not None and assigned_to(existing) == account_id
