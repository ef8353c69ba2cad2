"""The schedule page: the coming slots and what happens at each; pause until a date (with a
reason, optionally notifying subscribers), resume, delay this week's issue, skip the next one.
Every action is ``newsletter.services.schedule``'s; this page only reads forms and shows results."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter import content
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import NewsletterError
from newsletter.schedule.dispatch import schedule_of
from newsletter.schedule.policy import parse_local_date, parse_local_datetime
from newsletter.services import schedule as schedule_commands
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import action_flash, field, page_status, read_db, run_action
from newsletter.web.admin.templating import render_admin_page

WEEKS_SHOWN = 8
FORM_OF_ACTION = {"paused": "pause", "delayed": "delay", "skipped": "skip"}
DONE_MESSAGES = {
    "paused": "Schedule paused.",
    "resumed": "Schedule resumed.",
    "delayed": "This week's issue is delayed.",
    "skipped": "The next issue will be skipped.",
}


def schedule_context(session: Session, config: Config) -> dict[str, Any]:
    now = utc_now()
    pause = schedule_commands.active_pause(session, config, now)
    back = None
    if pause is not None:
        back = schedule_commands.first_slot_on_or_after(schedule_of(config), pause.until)
    return {
        "slots": schedule_commands.planned_slots(session, config, now, WEEKS_SHOWN),
        "queued": len(content.queued_links(session)),
        "pause": pause,
        "pause_back": back,
        "timezone": str(config.get("schedule", "timezone")),
        "today": now.astimezone(config.timezone).date().isoformat(),
    }


async def _page(
    request: Request, error: NewsletterError | None = None, form: Any = None, form_name: str = ""
) -> Response:
    """The schedule page; after an error, ``form`` (what the editor typed) refills the form
    named ``form_name`` (``pause``, ``delay`` or ``skip``)."""
    config: Config = request.app.state.config
    context = await read_db(request, lambda s: schedule_context(s, config))
    context.update(action_flash(request, DONE_MESSAGES, error), form=form or {})
    context["form_name"] = form_name
    return render_admin_page(request, "schedule.html", context, page_status(error))


@editor_required
async def schedule_page(request: Request) -> Response:
    return await _page(request)


def local_datetime_field(value: str) -> str:
    """An HTML ``datetime-local`` value (``2026-03-30T18:00``) as ``2026-03-30 18:00``."""
    return value.strip().replace("T", " ")[:16]


async def _act(request: Request, done: str, action: Any) -> Response:
    config: Config = request.app.state.config
    form = await request.form()
    now = utc_now()

    async def on_error(exc: NewsletterError) -> Response:
        return await _page(request, exc, form, FORM_OF_ACTION.get(done, ""))

    location = f"/admin/schedule?done={done}"
    return await run_action(request, lambda s: action(s, config, form, now), location, on_error)


@editor_required
async def pause(request: Request) -> Response:
    def work(session: Session, config: Config, form: Any, now: Any) -> None:
        schedule_commands.pause_schedule(
            session,
            config,
            until=parse_local_date(field(form, "until"), "until"),
            reason=field(form, "reason"),
            notify=field(form, "notify") == "yes",
            now=now,
        )

    return await _act(request, "paused", work)


@editor_required
async def resume(request: Request) -> Response:
    return await _act(
        request, "resumed", lambda s, c, f, n: schedule_commands.resume_schedule(s, c, n)
    )


@editor_required
async def delay(request: Request) -> Response:
    def work(session: Session, config: Config, form: Any, now: Any) -> None:
        send_at = parse_local_datetime(
            local_datetime_field(field(form, "send_at")), config.timezone, "send_at"
        )
        schedule_commands.delay_slot(session, config, send_at, now)

    return await _act(request, "delayed", work)


@editor_required
async def skip(request: Request) -> Response:
    return await _act(
        request,
        "skipped",
        lambda s, c, f, n: schedule_commands.skip_slot(s, c, field(f, "reason"), n),
    )


routes = [
    Route("/schedule", schedule_page, methods=["GET"]),
    Route("/schedule/pause", pause, methods=["POST"]),
    Route("/schedule/resume", resume, methods=["POST"]),
    Route("/schedule/delay", delay, methods=["POST"]),
    Route("/schedule/skip", skip, methods=["POST"]),
]
