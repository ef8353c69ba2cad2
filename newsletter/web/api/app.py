"""The JSON API under ``/api``: what the dashboard does, for scripts, with bearer tokens.

Every operation is declared once (``OPERATIONS``, see ``api_schema``); the route table and
``/api/openapi.json`` are both built from the declarations. Handlers call the same core
functions as the dashboard pages (``api_handlers``); ``NewsletterError`` becomes a JSON error here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.editors import editor_for_token
from newsletter.errors import InvalidInputError, NewsletterError
from newsletter.inputs import check_text, load_json, parse_count
from newsletter.web.api import handlers
from newsletter.web.api.handlers import JSON_HEADERS, ok
from newsletter.web.api.intake import intake_operations
from newsletter.web.api.operations import operations
from newsletter.web.api.validation import Handler, Operation, openapi_document, validate
from newsletter.web.common import error_status


def error(status: int, message: str, where: str | None = None) -> JSONResponse:
    headers = dict(JSON_HEADERS)
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="newsletter"'
    return JSONResponse({"error": message, "where": where}, status_code=status, headers=headers)


def _editor_email(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    with transaction(request.app.state.engine) as session:
        editor = editor_for_token(session, token.strip(), utc_now())
        return editor.email if editor is not None else None


class BadRequest(Exception):
    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message, self.where = message, where


def api_endpoint(op_ref: Callable[[], Operation]) -> Callable[[Handler], Handler]:
    """Bearer-token authentication, parameter and body validation against the operation's
    declaration, and error translation, around a handler."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            email = await run_in_threadpool(_editor_email, request)
            if email is None:
                return error(401, "a valid bearer token is required")
            request.state.editor_email = email
            op = op_ref()
            try:
                request.state.params = _params(request, op)
                request.state.body = await _body(request, op)
                return await handler(request)
            except BadRequest as exc:
                return error(400, exc.message, exc.where)
            except NewsletterError as exc:
                where = exc.where if isinstance(exc, InvalidInputError) else None
                message = exc.reason if isinstance(exc, InvalidInputError) else str(exc)
                return error(error_status(exc), message, where)

        return endpoint

    return decorate


def _params(request: Request, op: Operation) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in op.params:
        source = request.path_params if param.where == "path" else request.query_params
        raw = source.get(param.name)
        if raw is None:
            if param.where == "path" or param.required:
                raise BadRequest("is required", param.name)
            continue
        value: Any = raw
        try:
            if param.schema.get("type") == "integer":
                value = parse_count(str(raw), param.name)
            else:
                check_text(str(raw), param.name)
            validate(param.schema, value, param.name)
        except InvalidInputError as exc:
            raise BadRequest(exc.reason, param.name) from None
        values[param.name] = value
    return values


async def _body(request: Request, op: Operation) -> dict[str, Any]:
    if op.body is None:
        return {}
    raw = await request.body()
    try:
        data = load_json(raw) if raw.strip() else None
        validate(op.body, data)
    except InvalidInputError as exc:
        raise BadRequest(exc.reason, exc.where or "body") from None
    assert isinstance(data, dict)
    return data


# --- the document and the routes -------------------------------------------------------------


async def openapi_json(request: Request) -> Response:
    config: Config = request.app.state.config
    document = openapi_document(
        OPERATIONS, title=str(config.get("list", "name")), server=f"{config.base_url}/api"
    )
    return ok(document)


OPERATIONS: tuple[Operation, ...] = operations(vars(handlers)) + intake_operations()


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [Route("/openapi.json", openapi_json, methods=["GET"])]
    for op in OPERATIONS:
        endpoint = api_endpoint(lambda op=op: op)(op.handler)  # type: ignore[misc]
        routes.append(Route(op.path, endpoint, methods=[op.method], name=op.operation_id))
    return routes


routes: list[BaseRoute] = [Mount("/api", routes=_routes())]
