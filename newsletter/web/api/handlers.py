"""The JSON API's handlers: each reads ``request.state.params``/``body`` (already checked
against its declaration by ``newsletter.web.api.app``) and calls the same core functions as the
dashboard. Errors propagate as ``NewsletterError``; ``api`` turns them into JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from newsletter import content
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import NotFoundError
from newsletter.intake.fetcher import FetchPolicy
from newsletter.models import Link
from newsletter.schedule.policy import parse_local_date, parse_local_datetime
from newsletter.services import inbound, intake, sends
from newsletter.services import schedule as schedule_commands
from newsletter.services import subscribers as subscriber_service
from newsletter.services.subscribers import ImportOptions
from newsletter.web.api.validation import MAX_ID
from newsletter.web.common import (
    consent_context,
    mailer,
    publish_now,
    read_db,
    render_next_issue,
    run_db,
)
from subscribers.store import count_by_status

JSON_HEADERS = {"cache-control": "no-store"}


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=JSON_HEADERS)


def path_id(request: Request, name: str) -> int:
    value = int(request.state.params[name])
    if not 1 <= value <= MAX_ID:
        raise NotFoundError("no object with %(name)s %(value)s", name=name, value=value)
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
        "recipients": sends.active_recipients(session),
        **_queue(session),
    }


async def get_next_issue(request: Request) -> Response:
    config: Config = request.app.state.config
    return ok(await read_db(request, lambda session: _next_issue(session, config)))


async def list_links(request: Request) -> Response:
    return ok(await read_db(request, _queue))


async def create_link(request: Request) -> Response:
    body, now = request.state.body, utc_now()
    config: Config = request.app.state.config
    # Link intake: without a title the use case fetches the page, outside any transaction.
    added = await run_in_threadpool(
        lambda: intake.add_link(
            request.app.state.engine,
            FetchPolicy.from_config(config),
            url=body["url"],
            title=body.get("title", ""),
            source=body.get("source", ""),
            excerpt=body.get("excerpt", ""),
            tags=body.get("tags", []),
            now=now,
        )
    )
    data = link_dict(added.link)
    if added.problem is not None:
        data["fetch_error"] = added.problem.reason
    if added.duplicate is not None:
        data["duplicate"] = vars(added.duplicate)
    return ok(data, 201)


async def update_link(request: Request) -> Response:
    link_id, body = path_id(request, "link_id"), request.state.body

    def work(session: Session) -> dict[str, Any]:
        return link_dict(content.update_link(session, link_id, **body))

    return ok(await run_db(request, work))


async def move_link(request: Request) -> Response:
    link_id, position = path_id(request, "link_id"), request.state.body["position"]

    def work(session: Session) -> dict[str, Any]:
        return {
            "links": [link_dict(link) for link in content.move_link(session, link_id, position)]
        }

    return ok(await run_db(request, work))


async def delete_link(request: Request) -> Response:
    link_id = path_id(request, "link_id")
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
    rendered = await render_next_issue(request)
    return ok({"subject": rendered.subject, "html": rendered.html, "text": rendered.text})


async def send_test(request: Request) -> Response:
    config: Config = request.app.state.config
    rendered = await render_next_issue(request)
    await sends.send_test(config, rendered, request.state.editor_email, utc_now())
    return ok({"sent_to": request.state.editor_email}, 202)


async def send_issue(request: Request) -> Response:
    started = await publish_now(request)
    return ok(
        {"run_id": started.run_id, "key": started.run_key, "recipients": started.recipients}, 201
    )


# --- sends -----------------------------------------------------------------------------------


async def list_sends(request: Request) -> Response:
    def work(session: Session) -> dict[str, Any]:
        recent = sends.recent_sends(session, utc_now())
        return {"sends": [summary.progress.as_json() for summary in recent]}

    return ok(await read_db(request, work))


async def get_send(request: Request) -> Response:
    run_id = path_id(request, "run_id")

    def work(session: Session) -> dict[str, Any]:
        data = sends.send_progress(session, run_id, utc_now()).as_json()
        # The return path: what came back after the send.
        data["deliverability"] = inbound.deliverability(session, run_id).as_dict()
        return data

    return ok(await read_db(request, work))


async def pause_send(request: Request) -> Response:
    run_id, reason = path_id(request, "run_id"), request.state.body.get("reason", "")

    def work(session: Session) -> dict[str, Any]:
        return sends.pause_send(session, run_id, reason, utc_now()).as_json()

    return ok(await run_db(request, work))


async def resume_send(request: Request) -> Response:
    run_id = path_id(request, "run_id")

    def work(session: Session) -> dict[str, Any]:
        return sends.resume_send(session, run_id, utc_now()).as_json()

    return ok(await run_db(request, work))


async def reprepare_send(request: Request) -> Response:
    config: Config = request.app.state.config
    run_id, body = path_id(request, "run_id"), request.state.body

    def work(session: Session) -> dict[str, Any]:
        progress = sends.reprepare_send(
            session, config, run_id, utc_now(), subject=body.get("subject"), intro=body.get("intro")
        )
        return progress.as_json()

    return ok(await run_db(request, work))


async def cancel_send(request: Request) -> Response:
    config: Config = request.app.state.config
    run_id = path_id(request, "run_id")

    def work(session: Session) -> dict[str, Any]:
        cancelled = sends.cancel_send(session, config, run_id, utc_now())
        return {"issue_number": cancelled.issue_number, "links_requeued": cancelled.links_requeued}

    return ok(await run_db(request, work))


async def send_report(request: Request) -> Response:
    run_id = path_id(request, "run_id")

    rows = await read_db(request, lambda s: sends.send_report(s, run_id))
    return StreamingResponse(sends.report_csv(rows), media_type="text/csv; charset=utf-8")


# --- schedule --------------------------------------------------------------------------------


def _schedule(session: Session, config: Config) -> dict[str, Any]:
    now = utc_now()
    pause = schedule_commands.active_pause(session, config, now)
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
            for slot in schedule_commands.planned_slots(session, config, now, 8)
        ],
    }


async def get_schedule(request: Request) -> Response:
    config: Config = request.app.state.config
    return ok(await read_db(request, lambda session: _schedule(session, config)))


async def _schedule_action(request: Request, action: Callable[[Session, Config], Any]) -> Response:
    config: Config = request.app.state.config

    def work(session: Session) -> dict[str, Any]:
        action(session, config)
        return _schedule(session, config)

    return ok(await run_db(request, work))


async def pause_schedule(request: Request) -> Response:
    body, now = request.state.body, utc_now()
    until = parse_local_date(body["until"], "until")
    return await _schedule_action(
        request,
        lambda session, config: schedule_commands.pause_schedule(
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
        request, lambda session, config: schedule_commands.resume_schedule(session, config, now)
    )


async def delay_issue(request: Request) -> Response:
    config: Config = request.app.state.config
    send_at = parse_local_datetime(request.state.body["send_at"], config.timezone, "send_at")
    now = utc_now()
    return await _schedule_action(
        request, lambda session, config: schedule_commands.delay_slot(session, config, send_at, now)
    )


async def skip_issue(request: Request) -> Response:
    reason, now = request.state.body.get("reason", ""), utc_now()
    return await _schedule_action(
        request, lambda session, config: schedule_commands.skip_slot(session, config, reason, now)
    )


# --- subscribers -----------------------------------------------------------------------------


async def list_subscribers(request: Request) -> Response:
    params = request.state.params

    def work(session: Session) -> dict[str, Any]:
        page = subscriber_service.search_subscribers(
            session,
            query=params.get("q", ""),
            status=params.get("status", ""),
            offset=params.get("offset", 0),
            limit=params.get("limit", 100),
        )
        return {
            "total": page.total,
            "counts": count_by_status(session),
            "subscribers": [
                {
                    "email": r.email,
                    "name": r.name,
                    "status": r.status,
                    "created_at": r.created_at.isoformat(),
                    "source": r.source,
                }
                for r in page.rows
            ],
        }

    return ok(await run_db(request, work))


async def add_subscriber(request: Request) -> Response:
    config: Config = request.app.state.config
    body, now = request.state.body, utc_now()
    context = consent_context(request, f"api:{request.state.editor_email}")
    mail = await run_db(
        request,
        lambda session: subscriber_service.request_subscription(
            session,
            config,
            email=body["email"],
            name=body.get("name", ""),
            context=context,
            now=now,
        ),
    )
    if mail is not None:
        await subscriber_service.send_confirmation(mailer(request), mail)
    return ok({"confirmation_sent": mail is not None}, 202)


async def import_subscribers(request: Request) -> Response:
    body = request.state.body
    options = ImportOptions(
        fmt=body.get("format", "auto"),
        confirmed=bool(body.get("confirmed", False)),
        source=body.get("source", ""),
        dry_run=bool(body.get("dry_run", False)),
    )
    result = await run_in_threadpool(
        subscriber_service.import_subscribers,
        request.app.state.engine,
        request.app.state.config,
        body["text"],
        "text",
        options,
        utc_now(),
    )
    return ok({"rows": result.rows, "dry_run": result.dry_run, "report": result.report})


async def export_subscribers(request: Request) -> Response:
    status = request.state.params.get("status")
    data = await read_db(
        request, lambda session: subscriber_service.export_subscribers(session, "csv", status)
    )
    return Response(data, media_type="text/csv; charset=utf-8", headers=JSON_HEADERS)
