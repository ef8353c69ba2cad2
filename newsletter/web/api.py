"""The JSON API under ``/api``: what the dashboard does, for scripts, with bearer tokens.

Every operation is declared once (``OPERATIONS``, see ``api_schema``); the route table and
``/api/openapi.json`` are both built from the declarations. Handlers call the same core
functions as the dashboard pages and translate ``NewsletterError`` to JSON errors here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route

from newsletter import content, dispatch
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.delivery import pause_run, resume_run, run_progress
from newsletter.editors import editor_for_token
from newsletter.errors import InvalidInputError, NewsletterError, NotFoundError
from newsletter.ledger import get_run
from newsletter.models import Link, SendRun
from newsletter.schedule import parse_local_date, parse_local_datetime
from newsletter.web import api_schemas as s
from newsletter.web.admin.common import error_status, run_db
from newsletter.web.admin.preview import render_next_issue, send_test_to
from newsletter.web.admin.sends import (
    active_count,
    csv_lines,
    progress_dict,
    publish_now,
    report_rows,
)
from newsletter.web.admin.subscribers_page import search_subscribers
from newsletter.web.api_schema import MAX_ID, Handler, Operation, openapi_document, validate
from newsletter.web.public import consent_context, mailer
from subscribers import optin
from subscribers.store import count_by_status

JSON_HEADERS = {"cache-control": "no-store"}


def error(status: int, message: str, where: str | None = None) -> JSONResponse:
    headers = dict(JSON_HEADERS)
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="newsletter"'
    return JSONResponse({"error": message, "where": where}, status_code=status, headers=headers)


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=JSON_HEADERS)


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
        if param.schema.get("type") == "integer":
            if not str(raw).isdigit():
                raise BadRequest("must be a whole number", param.name)
            value = int(raw)
        try:
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
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("is not valid JSON", "body") from None
    try:
        validate(op.body, data)
    except InvalidInputError as exc:
        raise BadRequest(exc.reason, exc.where or "body") from None
    assert isinstance(data, dict)
    return data


def _id(request: Request, name: str) -> int:
    value = int(request.state.params[name])
    if not 1 <= value <= MAX_ID:
        raise NotFoundError(f"no object with {name} {value}")
    return value


# --- links and the next issue ----------------------------------------------------------------


def link_dict(link: Link) -> dict[str, Any]:
    return {
        "id": link.id,
        "url": link.url,
        "title": link.title,
        "source": link.source,
        "excerpt": link.excerpt,
        "tags": [tag for tag in link.tags.split(",") if tag],
        "position": link.position,
    }


def _queue(session: Session) -> dict[str, Any]:
    return {"links": [link_dict(link) for link in content.queued_links(session)]}


def _next_issue(session: Session, config: Config) -> dict[str, Any]:
    view = content.next_issue_view(session, config, utc_now())
    return {
        "number": view.number,
        "subject": view.subject,
        "intro": view.intro,
        "date": view.date.isoformat(),
        "recipients": active_count(session),
        **_queue(session),
    }


async def get_next_issue(request: Request) -> Response:
    config: Config = request.app.state.config
    return ok(await run_db(request, lambda session: _next_issue(session, config)))


async def list_links(request: Request) -> Response:
    return ok(await run_db(request, _queue))


async def create_link(request: Request) -> Response:
    body, now = request.state.body, utc_now()

    def work(session: Session) -> dict[str, Any]:
        link = content.queue_link(
            session,
            url=body["url"],
            title=body["title"],
            source=body.get("source", ""),
            excerpt=body.get("excerpt", ""),
            tags=body.get("tags", []),
            now=now,
        )
        return link_dict(link)

    return ok(await run_db(request, work), 201)


async def update_link(request: Request) -> Response:
    link_id, body = _id(request, "link_id"), request.state.body

    def work(session: Session) -> dict[str, Any]:
        return link_dict(content.update_link(session, link_id, **body))

    return ok(await run_db(request, work))


async def move_link(request: Request) -> Response:
    link_id, position = _id(request, "link_id"), request.state.body["position"]

    def work(session: Session) -> dict[str, Any]:
        return {
            "links": [link_dict(link) for link in content.move_link(session, link_id, position)]
        }

    return ok(await run_db(request, work))


async def delete_link(request: Request) -> Response:
    link_id = _id(request, "link_id")
    await run_db(request, lambda session: content.remove_link(session, link_id))
    return Response(status_code=204)


async def update_draft(request: Request) -> Response:
    body, now = request.state.body, utc_now()

    def work(session: Session) -> dict[str, Any]:
        if "intro" in body:
            content.set_intro(session, body["intro"], now)
        if "subject" in body:
            content.set_subject(session, body["subject"], now)
        draft = content.get_draft(session)
        return {"intro": draft.intro, "subject": draft.subject}

    return ok(await run_db(request, work))


async def preview_issue(request: Request) -> Response:
    config: Config = request.app.state.config
    rendered = await run_db(request, lambda session: render_next_issue(session, config))
    return ok({"subject": rendered.subject, "html": rendered.html, "text": rendered.text})


async def send_test(request: Request) -> Response:
    config: Config = request.app.state.config
    rendered = await run_db(request, lambda session: render_next_issue(session, config))
    await send_test_to(config, rendered, request.state.editor_email)
    return ok({"sent_to": request.state.editor_email}, 202)


async def send_issue(request: Request) -> Response:
    config: Config = request.app.state.config

    def work(session: Session) -> dict[str, Any]:
        recipients = active_count(session)
        run_id = publish_now(session, config)
        run = get_run(session, run_id)
        return {"run_id": run_id, "key": run.key, "recipients": recipients}

    return ok(await run_db(request, work), 201)


# --- sends -----------------------------------------------------------------------------------


async def list_sends(request: Request) -> Response:
    def work(session: Session) -> dict[str, Any]:
        now = utc_now()
        ids = session.scalars(select(SendRun.id).order_by(SendRun.id.desc()).limit(50)).all()
        return {"sends": [progress_dict(run_progress(session, i, now)) for i in ids]}

    return ok(await run_db(request, work))


async def get_send(request: Request) -> Response:
    run_id = _id(request, "run_id")
    return ok(
        await run_db(request, lambda ses: progress_dict(run_progress(ses, run_id, utc_now())))
    )


async def pause_send(request: Request) -> Response:
    run_id, reason = _id(request, "run_id"), request.state.body.get("reason", "")

    def work(session: Session) -> dict[str, Any]:
        pause_run(session, run_id, reason, utc_now())
        return progress_dict(run_progress(session, run_id, utc_now()))

    return ok(await run_db(request, work))


async def resume_send(request: Request) -> Response:
    run_id = _id(request, "run_id")

    def work(session: Session) -> dict[str, Any]:
        resume_run(session, run_id, utc_now())
        return progress_dict(run_progress(session, run_id, utc_now()))

    return ok(await run_db(request, work))


async def send_report(request: Request) -> Response:
    run_id = _id(request, "run_id")

    def work(session: Session) -> list[tuple[str, ...]]:
        get_run(session, run_id)
        return report_rows(session, run_id)

    rows = await run_db(request, work)
    return StreamingResponse(csv_lines(rows), media_type="text/csv; charset=utf-8")


# --- schedule --------------------------------------------------------------------------------


def _schedule(session: Session, config: Config) -> dict[str, Any]:
    now = utc_now()
    pause = dispatch.active_pause(session, config, now)
    return {
        "timezone": str(config.get("schedule", "timezone")),
        "pause": {"until": pause.until.isoformat(), "reason": pause.reason} if pause else None,
        "slots": [
            {
                "slot_at": slot.slot_at.isoformat(),
                "outcome": slot.outcome.value,
                "reason": slot.reason,
                "recorded": slot.recorded,
                "send_at": slot.send_at.isoformat() if slot.send_at else None,
            }
            for slot in dispatch.planned_slots(session, config, now, 8)
        ],
    }


async def get_schedule(request: Request) -> Response:
    config: Config = request.app.state.config
    return ok(await run_db(request, lambda session: _schedule(session, config)))


async def _schedule_action(request: Request, action: Callable[[Session, Config], Any]) -> Response:
    config: Config = request.app.state.config

    def work(session: Session) -> dict[str, Any]:
        action(session, config)
        return _schedule(session, config)

    return ok(await run_db(request, work))


async def pause_schedule(request: Request) -> Response:
    body, now = request.state.body, utc_now()
    until = parse_local_date(body["until"])
    return await _schedule_action(
        request,
        lambda session, config: dispatch.pause_schedule(
            session,
            config,
            until=until,
            reason=body.get("reason", ""),
            notify=bool(body.get("notify", False)),
            now=now,
        ),
    )


async def resume_schedule(request: Request) -> Response:
    now = utc_now()
    return await _schedule_action(
        request, lambda session, config: dispatch.resume_schedule(session, config, now)
    )


async def delay_issue(request: Request) -> Response:
    config: Config = request.app.state.config
    send_at = parse_local_datetime(request.state.body["send_at"], config.timezone)
    now = utc_now()
    return await _schedule_action(
        request, lambda session, config: dispatch.delay_slot(session, config, send_at, now)
    )


async def skip_issue(request: Request) -> Response:
    reason, now = request.state.body.get("reason", ""), utc_now()
    return await _schedule_action(
        request, lambda session, config: dispatch.skip_slot(session, config, reason, now)
    )


# --- subscribers -----------------------------------------------------------------------------


async def list_subscribers(request: Request) -> Response:
    params = request.state.params

    def work(session: Session) -> dict[str, Any]:
        rows, total = search_subscribers(
            session,
            query=params.get("q", ""),
            status=params.get("status", ""),
            offset=params.get("offset", 0),
            limit=params.get("limit", 100),
        )
        return {
            "total": total,
            "counts": count_by_status(session),
            "subscribers": [
                {
                    "email": r.email,
                    "name": r.name,
                    "status": r.status,
                    "created_at": r.created_at.isoformat(),
                    "source": r.source,
                }
                for r in rows
            ],
        }

    return ok(await run_db(request, work))


async def add_subscriber(request: Request) -> Response:
    config: Config = request.app.state.config
    body, now = request.state.body, utc_now()
    context = consent_context(request, f"api:{request.state.editor_email}")
    mail = await run_db(
        request,
        lambda session: optin.request_subscription(
            session,
            config,
            email=body["email"],
            name=body.get("name", ""),
            context=context,
            now=now,
        ),
    )
    if mail is not None:
        await mailer(request).send_confirmation(mail)
    return ok({"confirmation_sent": mail is not None}, 202)


# --- the document and the routes -------------------------------------------------------------


async def openapi_json(request: Request) -> Response:
    config: Config = request.app.state.config
    document = openapi_document(
        OPERATIONS, title=str(config.get("list", "name")), server=f"{config.base_url}/api"
    )
    return ok(document)


OPERATIONS: tuple[Operation, ...] = s.operations(globals())


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [Route("/openapi.json", openapi_json, methods=["GET"])]
    for op in OPERATIONS:
        endpoint = api_endpoint(lambda op=op: op)(op.handler)  # type: ignore[misc]
        routes.append(Route(op.path, endpoint, methods=[op.method], name=op.operation_id))
    return routes


routes: list[BaseRoute] = [Mount("/api", routes=_routes())]
