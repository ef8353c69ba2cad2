"""Sending an issue now (with a confirmation step), watching sends, pausing and resuming them,
and each send's delivery report as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from newsletter import content
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import NewsletterError
from newsletter.models import Delivery, Issue, RunStatus, SendRun
from newsletter.sending.publish import issue_run_key, publish_next_issue
from newsletter.sending.runs import get_run
from newsletter.sending.service import RunProgress, pause_run, resume_run, run_progress
from newsletter.services.inbound import deliverability
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import error_status, field, redirect, run_action, run_db
from newsletter.web.admin.templating import render_page
from subscribers.models import SubscriberStatus
from subscribers.store import count_by_status

REFRESH_SECONDS = 2
REPORT_BATCH = 1000


def active_count(session: Session) -> int:
    return count_by_status(session)[SubscriberStatus.ACTIVE.value]


def publish_now(session: Session, config: Config) -> int:
    """Assemble and start sending the next issue; returns the id of its send run."""
    issue = publish_next_issue(session, config, utc_now())
    run_id = session.scalar(select(SendRun.id).where(SendRun.key == issue_run_key(issue.number)))
    assert run_id is not None  # publish_next_issue started it in this transaction
    return run_id


def progress_json(session: Session, run_id: int, now: datetime) -> dict[str, Any]:
    """The JSON progress of run ``run_id``, with its deliverability figures (the return
    path); raises ``NotFoundError``."""
    data = progress_dict(run_progress(session, run_id, now))
    data["deliverability"] = deliverability(session, run_id).as_dict()
    return data


def progress_dict(progress: RunProgress) -> dict[str, Any]:
    """The JSON shape of a run's progress (also the API's)."""
    return {
        "run_id": progress.run_id,
        "key": progress.key,
        "subject": progress.subject,
        "status": progress.status,
        "pause_reason": progress.pause_reason,
        "total": progress.total,
        "sent": progress.counts.get("sent", 0),
        "failed": progress.counts.get("failed", 0) + progress.counts.get("bounced", 0),
        "skipped": progress.counts.get("skipped", 0),
        "pending": progress.open,
        "counts": progress.counts,
        "rate": round(progress.rate, 3),
        "eta_seconds": int(progress.eta.total_seconds()) if progress.eta else None,
        "last_errors": [{"email": e, "error": m} for e, m in progress.last_errors],
    }


# --- send now --------------------------------------------------------------------------------


def _confirm_context(session: Session, config: Config) -> dict[str, Any]:
    view = content.next_issue_view(session, config, utc_now())
    return {"view": view, "recipients": active_count(session)}


@editor_required
async def confirm_page(request: Request) -> Response:
    config: Config = request.app.state.config
    context = await run_db(request, lambda s: _confirm_context(s, config))
    return render_page(request, "send_confirm.html", context)


@editor_required
async def send_now(request: Request) -> Response:
    config: Config = request.app.state.config
    form = await request.form()
    if field(form, "confirm") != "yes":
        return redirect("/admin/issue/send")
    try:
        run_id = await run_db(request, lambda s: publish_now(s, config))
    except NewsletterError as exc:
        context = await run_db(request, lambda s: _confirm_context(s, config))
        context.update(flash=str(exc), flash_kind="error")
        return render_page(request, "send_confirm.html", context, error_status(exc))
    return redirect(f"/admin/sends/{run_id}")


# --- watching sends --------------------------------------------------------------------------


def _runs(session: Session) -> list[dict[str, Any]]:
    now = utc_now()
    runs = session.scalars(select(SendRun).order_by(SendRun.id.desc()).limit(50)).all()
    numbers = {row.id: row.number for row in session.execute(select(Issue.id, Issue.number))}
    return [
        {
            "run": run,
            "issue": numbers.get(run.issue_id or -1),
            "progress": run_progress(session, run.id, now),
        }
        for run in runs
    ]


@editor_required
async def sends_page(request: Request) -> Response:
    rows = await run_db(request, _runs)
    return render_page(request, "sends.html", {"rows": rows})


@editor_required
async def send_page(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    try:
        progress = await run_db(request, lambda s: run_progress(s, run_id, utc_now()))
    except NewsletterError as exc:
        return render_page(request, "error.html", {"flash": str(exc), "flash_kind": "error"}, 404)
    figures = await run_db(request, lambda s: deliverability(s, run_id).as_dict())
    context = {
        "p": progress,
        "d": progress_dict(progress),
        "dv": figures,  # deliverability figures (the return path)
        "refresh": REFRESH_SECONDS if progress.status == RunStatus.RUNNING else None,
        "flash": {"paused": "Send paused.", "resumed": "Send resumed."}.get(
            request.query_params.get("done", ""), ""
        ),
    }
    return render_page(request, "send.html", context)


@editor_required
async def send_json(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    try:
        data = await run_db(request, lambda s: progress_json(s, run_id, utc_now()))
    except NewsletterError as exc:
        return JSONResponse({"error": str(exc)}, status_code=error_status(exc))
    return JSONResponse(data, headers={"cache-control": "no-store"})


async def _error_page(request: Request, exc: NewsletterError) -> Response:
    context = {"flash": str(exc), "flash_kind": "error"}
    return render_page(request, "error.html", context, error_status(exc))


async def _act_on_run(request: Request, done: str, work: Callable[[Session], object]) -> Response:
    run_id = int(request.path_params["run_id"])
    location = f"/admin/sends/{run_id}?done={done}"
    return await run_action(request, work, location, lambda exc: _error_page(request, exc))


@editor_required
async def pause(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    reason = field(await request.form(), "reason")
    return await _act_on_run(request, "paused", lambda s: pause_run(s, run_id, reason, utc_now()))


@editor_required
async def resume(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    return await _act_on_run(request, "resumed", lambda s: resume_run(s, run_id, utc_now()))


# --- the delivery report ---------------------------------------------------------------------

REPORT_COLUMNS = ("email", "status", "attempts", "last_error", "sent_at")


def report_rows(session: Session, run_id: int) -> list[tuple[str, ...]]:
    """One row per recipient of the run, in snapshot order; raises ``NotFoundError`` when there
    is no such run."""
    get_run(session, run_id)
    query = (
        select(
            Delivery.email,
            Delivery.status,
            Delivery.attempts,
            Delivery.last_error,
            Delivery.sent_at,
        )
        .where(Delivery.run_id == run_id)
        .order_by(Delivery.id)
    )
    return [
        (email, status, str(attempts), error, sent_at.isoformat() if sent_at else "")
        for email, status, attempts, error, sent_at in session.execute(query)
    ]


def csv_lines(rows: list[tuple[str, ...]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REPORT_COLUMNS)
    for start in range(0, len(rows), REPORT_BATCH):
        writer.writerows(_safe_cells(row) for row in rows[start : start + REPORT_BATCH])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _safe_cells(row: tuple[str, ...]) -> tuple[str, ...]:
    # A spreadsheet would run a cell starting with = + - @ as a formula (CSV injection).
    return tuple("'" + cell if cell[:1] in ("=", "+", "-", "@") else cell for cell in row)


@editor_required
async def report_csv(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    try:
        rows = await run_db(request, lambda s: report_rows(s, run_id))
    except NewsletterError as exc:
        return JSONResponse({"error": str(exc)}, status_code=error_status(exc))
    filename = f"delivery-report-{run_id}.csv"
    return StreamingResponse(
        csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


routes = [
    Route("/issue/send", confirm_page, methods=["GET"]),
    Route("/issue/send", send_now, methods=["POST"]),
    Route("/sends", sends_page, methods=["GET"]),
    Route("/sends/{run_id:int}", send_page, methods=["GET"]),
    Route("/sends/{run_id:int}/progress.json", send_json, methods=["GET"]),
    Route("/sends/{run_id:int}/pause", pause, methods=["POST"]),
    Route("/sends/{run_id:int}/resume", resume, methods=["POST"]),
    Route("/sends/{run_id:int}/report.csv", report_csv, methods=["GET"]),
]
