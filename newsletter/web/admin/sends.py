"""Sending an issue now (with a confirmation step), watching sends, pausing and resuming them,
and each send's delivery report as CSV."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from newsletter import content
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import NewsletterError
from newsletter.i18n import N_
from newsletter.models import RunStatus
from newsletter.services import inbound, sends
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import (
    error_flash,
    error_status,
    field,
    read_db,
    redirect,
    run_action,
)
from newsletter.web.admin.templating import render_admin_page
from newsletter.web.common import error_text, publish_now

REFRESH_SECONDS = 2
SEND_DONE = {
    "paused": N_("Send paused."),
    "resumed": N_("Send resumed."),
    "reprepared": N_("Message prepared again; the send resumed."),
    "cancelled": N_("Send cancelled: the issue was withdrawn and its links are back in the queue."),
}


# --- send now --------------------------------------------------------------------------------


def _confirm_context(session: Session, config: Config) -> dict[str, Any]:
    view = content.next_issue_view(session, config, utc_now())
    latest = sends.recent_sends(session, utc_now(), limit=1)
    return {
        "view": view,
        "recipients": sends.active_recipients(session),
        "latest_run": latest[0].run.id if latest else None,
    }


@editor_required
async def confirm_page(request: Request) -> Response:
    config: Config = request.app.state.config
    context = await read_db(request, lambda s: _confirm_context(s, config))
    return render_admin_page(request, "send_confirm.html", context)


@editor_required
async def send_now(request: Request) -> Response:
    config: Config = request.app.state.config
    form = await request.form()
    if field(form, "confirm") != "yes":
        return redirect("/admin/issue/send")
    try:
        started = await publish_now(request)
    except NewsletterError as exc:
        context = await read_db(request, lambda s: _confirm_context(s, config))
        context.update(error_flash(request, exc))
        return render_admin_page(request, "send_confirm.html", context, error_status(exc))
    return redirect(f"/admin/sends/{started.run_id}")


# --- watching sends --------------------------------------------------------------------------


@editor_required
async def sends_page(request: Request) -> Response:
    rows = await read_db(request, lambda s: sends.recent_sends(s, utc_now()))
    return render_admin_page(request, "sends.html", {"rows": rows})


@editor_required
async def send_page(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    return await _send_page(request, run_id)


async def _send_page(
    request: Request, run_id: int, error: NewsletterError | None = None
) -> Response:
    def load(session: Session) -> tuple[Any, bool]:
        progress = sends.send_progress(session, run_id, utc_now())
        return progress, sends.can_reprepare(session, run_id)

    try:
        progress, recoverable = await read_db(request, load)
    except NewsletterError as exc:
        return render_admin_page(request, "error.html", error_flash(request, exc), 404)
    figures = await read_db(request, lambda s: inbound.deliverability(s, run_id).as_dict())
    context = {
        "p": progress,
        "d": progress.as_json(),
        "dv": figures,  # deliverability figures (the return path)
        "refresh": REFRESH_SECONDS if progress.status == RunStatus.RUNNING else None,
        "recoverable": recoverable,
        "flash": SEND_DONE.get(request.query_params.get("done", ""), ""),
    }
    if error is not None:
        context.update(error_flash(request, error))
    return render_admin_page(request, "send.html", context, error_status(error) if error else 200)


@editor_required
async def send_json(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    try:
        progress = await read_db(request, lambda s: sends.send_progress(s, run_id, utc_now()))
    except NewsletterError as exc:
        message = error_text(request.app.state.config, exc)
        return JSONResponse({"error": message}, status_code=error_status(exc))
    return JSONResponse(progress.as_json(), headers={"cache-control": "no-store"})


async def _error_page(request: Request, exc: NewsletterError) -> Response:
    return render_admin_page(request, "error.html", error_flash(request, exc), error_status(exc))


async def _act_on_run(request: Request, done: str, work: Callable[[Session], object]) -> Response:
    run_id = int(request.path_params["run_id"])
    location = f"/admin/sends/{run_id}?done={done}"
    return await run_action(request, work, location, lambda exc: _error_page(request, exc))


@editor_required
async def pause(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    reason = field(await request.form(), "reason")
    return await _act_on_run(
        request, "paused", lambda s: sends.pause_send(s, run_id, reason, utc_now())
    )


@editor_required
async def resume(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    return await _act_on_run(request, "resumed", lambda s: sends.resume_send(s, run_id, utc_now()))


@editor_required
async def reprepare(request: Request) -> Response:
    config: Config = request.app.state.config
    run_id = int(request.path_params["run_id"])
    form = await request.form()
    subject, intro = field(form, "subject"), field(form, "intro")

    def work(session: Session) -> object:
        return sends.reprepare_send(
            session, config, run_id, utc_now(), subject=subject or None, intro=intro or None
        )

    return await run_action(
        request,
        work,
        f"/admin/sends/{run_id}?done=reprepared",
        lambda exc: _send_page(request, run_id, exc),
    )


@editor_required
async def cancel(request: Request) -> Response:
    config: Config = request.app.state.config
    run_id = int(request.path_params["run_id"])
    return await run_action(
        request,
        lambda s: sends.cancel_send(s, config, run_id, utc_now()),
        f"/admin/sends/{run_id}?done=cancelled",
        lambda exc: _send_page(request, run_id, exc),
    )


# --- the delivery report ---------------------------------------------------------------------


@editor_required
async def report_csv_download(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    try:
        rows = await read_db(request, lambda s: sends.send_report(s, run_id))
    except NewsletterError as exc:
        message = error_text(request.app.state.config, exc)
        return JSONResponse({"error": message}, status_code=error_status(exc))
    filename = f"delivery-report-{run_id}.csv"
    return StreamingResponse(
        sends.report_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


routes = [
    Route("/issue/send", confirm_page, methods=["GET"]),
    Route("/issue/send", send_now, methods=["POST"]),
    Route("/sends", sends_page, methods=["GET"]),
    Route("/sends/{run_id:id}", send_page, methods=["GET"]),
    Route("/sends/{run_id:id}/progress.json", send_json, methods=["GET"]),
    Route("/sends/{run_id:id}/pause", pause, methods=["POST"]),
    Route("/sends/{run_id:id}/resume", resume, methods=["POST"]),
    Route("/sends/{run_id:id}/reprepare", reprepare, methods=["POST"]),
    Route("/sends/{run_id:id}/cancel", cancel, methods=["POST"]),
    Route("/sends/{run_id:id}/report.csv", report_csv_download, methods=["GET"]),
]
