"""The OpenAPI description of this service, as `GET /v2/openapi.json` serves it.

The file in the repository (`schemas/openapi/openapi.json`) refers to the JSON Schemas in
`schemas/` with relative `$ref`s, so each schema has one source of truth. The served
copy inlines them: tools that load the document over HTTP then need nothing else.

While inlining, each schema's `$schema` (draft-04) is dropped: inside an OpenAPI 3.1
document a Schema Object speaks the document's dialect (2020-12), and a `$schema` is
only allowed at the root of a schema resource. The keywords our schema files use mean
the same in both drafts, with one nuance the document states: for 2020-12 a number
written `79.0` is an integer, for draft-04 (and KAZOO) it is not; the service rounds
it in lenient mode and refuses it in strict mode (tests/test_schema_cross_check.py).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from service.paths import SCHEMAS_DIR

OPENAPI_FILE = SCHEMAS_DIR / "openapi" / "openapi.json"


def load_document(path: Path = OPENAPI_FILE) -> dict[str, Any]:
    """The repository file as it is, external `$ref`s included."""
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def bundled_document(path: Path = OPENAPI_FILE) -> dict[str, Any]:
    """The document with every external `$ref` replaced by the file it names."""
    bundled: dict[str, Any] = _inline(load_document(path), path.parent)
    return bundled


@cache
def served_bytes() -> bytes:
    """The bundled document, serialised once: the files do not change while we run."""
    return json.dumps(bundled_document(), ensure_ascii=False, indent=2).encode("utf-8")


def _inline(node: Any, base: Path) -> Any:
    if isinstance(node, list):
        return [_inline(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    target = node.get("$ref")
    if isinstance(target, str) and not target.startswith("#"):
        return _external_schema(base / target)
    return {key: _inline(value, base) for key, value in node.items()}


def _external_schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    schema.pop("$schema", None)
    return schema
