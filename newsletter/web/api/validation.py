"""The JSON API's declarations: each operation's request and response schemas, a validator
for the JSON Schema subset they use, and the OpenAPI 3.1 document built from them. The
handlers validate against the same declarations the document publishes, so the two cannot
drift apart (``tests/test_api_openapi.py`` checks it with schemathesis)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import InvalidInputError

Schema = dict[str, Any]
Handler = Callable[[Request], Awaitable[Response]]
MAX_ID = 2**31 - 1

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "where": {"type": ["string", "null"]}},
}
ERROR_TEXT = {
    400: "The request body or a parameter is malformed.",
    401: "Missing or unknown bearer token.",
    404: "No such object.",
    409: "The request conflicts with the current state.",
    422: "The input was understood but rejected; nothing was stored.",
    502: "The SMTP relay refused the message or could not be reached.",
}


def string(max_length: int, min_length: int = 0) -> Schema:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def obj(properties: Mapping[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(required),
        "additionalProperties": False,
    }


def nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query"
    schema: Schema
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI style: /links/{link_id}
    handler: Handler
    summary: str
    ok: int
    response: Schema | None  # None: no body (204) or a non-JSON body
    body: Schema | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    media_type: str = "application/json"
    tags: tuple[str, ...] = field(default=())

    @property
    def operation_id(self) -> str:
        return getattr(self.handler, "__name__", "op")


# --- validation ------------------------------------------------------------------------------


def validate(schema: Schema, value: Any, where: str = "body") -> None:
    """Raise ``InvalidInputError`` naming the place when ``value`` does not match ``schema``
    (the subset used here: type, enum, string length, integer bounds, array items, objects
    with required keys and no additional properties)."""
    types = schema.get("type")
    allowed = types if isinstance(types, list) else [types] if types else []
    if allowed and not any(_is_type(value, name) for name in allowed):
        raise InvalidInputError("must be of type %(types)s", where, types=" or ".join(allowed))
    if value is None:
        return
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidInputError(
            "must be one of %(choices)s", where, choices=", ".join(map(str, schema["enum"]))
        )
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise InvalidInputError("is too short", where)
        if len(value) > schema.get("maxLength", len(value)):
            raise InvalidInputError(
                "must be at most %(limit)s characters", where, limit=schema["maxLength"]
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            raise InvalidInputError("is out of range", where)
    elif isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            raise InvalidInputError(
                "must have at most %(limit)s items", where, limit=schema["maxItems"]
            )
        for index, item in enumerate(value):
            validate(schema.get("items", {}), item, f"{where}[{index}]")
    elif isinstance(value, dict):
        _validate_object(schema, value, where)


def _validate_object(schema: Schema, value: dict[str, Any], where: str) -> None:
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            raise InvalidInputError("is required", f"{where}.{name}")
    for name, item in value.items():
        if name not in properties:
            if schema.get("additionalProperties", True) is False:
                raise InvalidInputError("is not a known field", f"{where}.{name}")
            continue
        validate(properties[name], item, f"{where}.{name}")


def _is_type(value: Any, name: str) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    return checks[name](value)


# --- the OpenAPI document --------------------------------------------------------------------


def openapi_document(operations: tuple[Operation, ...], *, title: str, server: str) -> Schema:
    """OpenAPI 3.1 for ``operations``, mounted under ``server`` (e.g. ``https://…/api``)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title} — API",
            "version": "1.0.0",
            "description": "Everything an editor can do in /admin. Authenticate with "
            "`Authorization: Bearer TOKEN` (create one with `newsletter editors token EMAIL`).",
        },
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR},
        },
        "paths": paths,
    }


def _operation(op: Operation) -> Schema:
    responses: dict[str, Any] = {}
    if op.response is None and op.media_type == "application/json":
        responses[str(op.ok)] = {"description": "Done."}
    else:
        content = {op.media_type: {"schema": op.response or {"type": "string"}}}
        responses[str(op.ok)] = {"description": "Success.", "content": content}
    statuses = {401, *op.errors}
    if op.body is not None or op.params:
        statuses.add(400)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    spec: Schema = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": responses,
    }
    if op.tags:
        spec["tags"] = list(op.tags)
    if op.params:
        spec["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.where == "path" or p.required,
                "schema": p.schema,
            }
            for p in op.params
        ]
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": op.body}},
        }
    return spec
