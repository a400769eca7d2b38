"""`/v2/schemas[/{NAME}[/validation]]`: the JSON Schemas the service validates with (cb_schemas).

* `GET /v2/schemas` lists the schema names;
* `GET /v2/schemas/{NAME}` answers the file in `schemas/` as it is, in `data`;
* `PUT /v2/schemas/{NAME}/validation` validates `data` without saving anything: 200 with
  the document as it would be stored (public fields, defaults and coercions applied),
  or the 400 a write of that document would get.

KAZOO lets anyone read schemas; like the rest of this API we want a token
(docs/kazoo-compatibility.md, "Also served").
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.services import SERVICES, Services
from service.kazoo import errors
from service.kazoo.documents import public_fields
from service.kazoo.schema_files import read_schema, schema_names, validator_for

Json = dict[str, Any]

VALIDATION = "validation"


class SchemasResource:
    needs_auth = True

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        if len(args) <= 1:
            return ("GET",)
        if len(args) == 2 and args[1] == VALIDATION:
            return ("PUT",)
        return None

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        if not args:
            return render(ctx, success_body(ctx, schema_names()), 200)
        name = args[0]
        schema = read_schema(name)
        if schema is None:
            raise errors.bad_document_id(name)
        if len(args) == 1:
            return render(ctx, success_body(ctx, schema), 200)
        services = ctx.request.app[SERVICES]
        return render(ctx, success_body(ctx, _validated(ctx, services, name)), 200)


def _validated(ctx: RequestContext, services: Services, name: str) -> Json:
    if name == "connectivity":
        # The very checks a connectivity PUT runs; with no target account, the realm
        # forced into `account.auth_realm` is the caller's own (§7.6).
        doc, _doc_id = services.connectivity.validated_new(ctx.data, _caller_realm(ctx))
        return doc
    validator = validator_for(name, strict=services.settings.strict_validation)
    assert validator is not None  # the name was found in schemas/ just before
    result = validator.validate(public_fields(ctx.data))
    if not result.ok or result.value is None:
        raise errors.validation_error(result.errors)
    return result.value


def _caller_realm(ctx: RequestContext) -> str | None:
    realm = ctx.auth.account.get("realm") if ctx.auth else None
    return realm if isinstance(realm, str) and realm else None
