"""Crossbar's CSV of a list of JSON objects (kz_csv:jobjs_to_file/1, api_util; §9, §13).

* Columns are the objects' flattened paths, joined with `_` (`account_trunks`); arrays
  are cells, not columns, and objects (even empty ones) never are cells. The first
  object's keys come first, in its order; a key first seen later adds a column.
* The header row is renamed through Crossbar's header map (`id` → `ID`).
* Every present cell is double-quoted with `"` doubled; a missing cell is empty; a list
  of scalars is one cell joined with `,`; rows end with `\n`.

One difference, on purpose: KAZOO writes each row with the columns known when it is
written, so rows before a new key are short; here every row has every column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

Json = dict[str, Any]

# Crossbar's ?CSV_HEADER_MAP (crossbar.hrl), the entries a listing of ours can meet.
HEADER_MAP = {
    "id": "ID",
    "account_id": "Account ID",
    "account_name": "Account Name",
    "amount": "Amount",
    "description": "Description",
}

_MISSING = object()


def objects_to_csv(objects: Iterable[Json]) -> bytes:
    """The CSV text of `objects`, header row first; empty when there is none."""
    flat = [dict(_flatten(obj)) for obj in objects]
    columns: dict[tuple[str, ...], None] = {}
    for row in flat:
        columns.update(dict.fromkeys(row))
    if not columns:
        return b""
    names = ("_".join(path) for path in columns)
    lines = [_row(_cell(HEADER_MAP.get(name, name)) for name in names)]
    lines.extend(_row(_cell(row.get(path, _MISSING)) for path in columns) for row in flat)
    return "".join(lines).encode("utf-8")


def _flatten(obj: Json, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in obj.items():
        path = (*prefix, str(key))
        if isinstance(value, dict):
            yield from _flatten(value, path)
        else:
            yield path, value


def _row(cells: Iterable[str]) -> str:
    return ",".join(cells) + "\n"


def _cell(value: Any) -> str:
    if value is _MISSING:
        return ""
    text = _text(value)
    if text is None:
        # kz_csv leaves a cell it cannot turn into text empty (a list of objects).
        return ""
    return '"' + text.replace('"', '""') + '"'


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if any(isinstance(item, (list, dict)) for item in value):
            return None
        return ",".join(_text(item) or "" for item in value)
    if isinstance(value, dict):
        return None
    # true/false/null and numbers as KAZOO prints them (kz_term:to_binary/1).
    return json.dumps(value)
