"""The JSON Schema files under `schemas/`, by name, as KAZOO's `schemas` resource offers them.

A schema's name is its file name without `.json` (`schemas/connectivity.json` is
`connectivity`). Only names found in the folder are ever turned back into a path, so
a request cannot read anything else.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from service.kazoo.validation import SchemaValidator
from service.paths import SCHEMAS_DIR

Json = dict[str, Any]

SUFFIX = ".json"


def schema_names(directory: Path = SCHEMAS_DIR) -> list[str]:
    """Every schema's name, sorted (cb_schemas sorts its listing too)."""
    return sorted(path.name.removesuffix(SUFFIX) for path in directory.glob(f"*{SUFFIX}"))


def schema_file(name: str, directory: Path = SCHEMAS_DIR) -> Path | None:
    if name not in schema_names(directory):
        return None
    return directory / f"{name}{SUFFIX}"


def read_schema(name: str, directory: Path = SCHEMAS_DIR) -> Json | None:
    """The schema file's JSON exactly as stored, or None for an unknown name."""
    path = schema_file(name, directory)
    if path is None:
        return None
    schema: Json = json.loads(path.read_text(encoding="utf-8"))
    return schema


@cache
def validator_for(name: str, *, strict: bool) -> SchemaValidator | None:
    """A validator for a schema that has no document layer of its own, compiled once."""
    path = schema_file(name)
    return None if path is None else SchemaValidator.from_file(path, strict=strict)
