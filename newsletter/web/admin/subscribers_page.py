"""The subscribers page: counts, search and filter, the weekly chart, and adding a person
(who gets the double opt-in confirmation, like on the public form)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import InvalidInputError, NewsletterError
from newsletter.inputs import parse_count
from newsletter.services import subscribers as subscriber_service
from newsletter.services.subscribers import PAGE_SIZE, STATUSES, ImportOptions
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.chart import chart_svg, weekly_counts
from newsletter.web.admin.common import (
    error_flash,
    field,
    page_status,
    read_db,
    redirect,
    run_db,
)
from newsletter.web.admin.templating import render_admin_page
from newsletter.web.common import consent_context, mailer
from subscribers import io as subscriber_io
from subscribers.store import count_by_status

CHART_WEEKS = 12
MAX_OFFSET = 10**9


def _context(
    session: Session, config: Config, query: str, status: str, offset: int
) -> dict[str, Any]:
    page = subscriber_service.search_subscribers(session, query=query, status=status, offset=offset)
    weeks = weekly_counts(session, config.timezone, utc_now(), CHART_WEEKS)
    return {
        "rows": page.rows,
        "total": page.total,
        "counts": count_by_status(session),
        "statuses": STATUSES,
        "query": query,
        "status": status,
        "offset": offset,
        "page_size": PAGE_SIZE,
        "weeks": weeks,
        "chart": lambda labels: Markup(chart_svg(weeks, labels)),
    }


def _offset(request: Request) -> int:
    try:
        return parse_count(request.query_params.get("offset", "0"), "offset", MAX_OFFSET)
    except InvalidInputError:
        return 0


async def _page(
    request: Request,
    error: NewsletterError | None = None,
    flash: str = "",
    extra: dict[str, Any] | None = None,
) -> Response:
    config: Config = request.app.state.config
    query = request.query_params.get("q", "").strip()[:200]
    status = request.query_params.get("status", "")
    status = status if status in STATUSES else ""
    offset = _offset(request)
    context = await read_db(request, lambda s: _context(s, config, query, status, offset))
    done = {"added": "Confirmation sent: the person is subscribed once they confirm."}
    if error is not None:
        context.update(error_flash(request, error))
    else:
        context.update(flash=flash or done.get(request.query_params.get("done", ""), ""))
    context.update(formats=subscriber_io.FORMATS, **(extra or {}))
    return render_admin_page(request, "subscribers.html", context, page_status(error))


@editor_required
async def subscribers_page(request: Request) -> Response:
    return await _page(request)


@editor_required
async def add_subscriber(request: Request) -> Response:
    config: Config = request.app.state.config
    form = await request.form()
    context = consent_context(request, f"admin:{request.state.editor_email}")
    now = utc_now()
    try:
        mail = await run_db(
            request,
            lambda s: subscriber_service.request_subscription(
                s,
                config,
                email=field(form, "email"),
                name=field(form, "name"),
                context=context,
                now=now,
            ),
        )
        if mail is not None:
            await subscriber_service.send_confirmation(mailer(request), mail)
    except NewsletterError as exc:  # DeliveryError included: the relay refused or was down
        return await _page(request, exc, extra={"form": form, "form_name": "add"})
    if mail is None:
        return await _page(
            request, flash="Already subscribed, or a confirmation was sent recently."
        )
    return redirect("/admin/subscribers?done=added")


async def _upload_text(form: Any) -> tuple[str, str]:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInputError("choose a file to import", where="file")
    data = await upload.read()
    where = upload.filename or "upload"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError("not UTF-8 text; nothing imported", where=where) from None
    return text, where


@editor_required
async def import_subscribers(request: Request) -> Response:
    form = await request.form()
    fmt = field(form, "format") or "auto"
    options = ImportOptions(
        fmt=fmt if fmt in subscriber_io.FORMATS else "auto",
        confirmed=field(form, "confirmed") == "yes",
        source=field(form, "source"),
        dry_run=field(form, "dry_run") == "yes",
    )
    config: Config = request.app.state.config
    try:
        text, where = await _upload_text(form)
        result = await run_in_threadpool(
            subscriber_service.import_subscribers,
            request.app.state.engine,
            config,
            text,
            where,
            options,
            utc_now(),
        )
    except NewsletterError as exc:
        return await _page(request, exc, extra={"form": form, "form_name": "import"})
    prefix = "Dry run, nothing changed. " if result.dry_run else ""
    report = [f"{prefix}Read {result.rows} rows from {result.where}.", *result.report]
    return await _page(request, flash="Import done.", extra={"import_report": report})


@editor_required
async def export_subscribers(request: Request) -> Response:
    status = request.query_params.get("status", "")
    status = status if status in STATUSES else ""

    def work(session: Session) -> str:
        return subscriber_service.export_subscribers(session, "csv", status or None)

    data = await read_db(request, work)
    name = f"subscribers-{status or 'all'}.csv"
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "cache-control": "no-store",
        },
    )


routes = [
    Route("/subscribers", subscribers_page, methods=["GET"]),
    Route("/subscribers/add", add_subscriber, methods=["POST"]),
    Route("/subscribers/import", import_subscribers, methods=["POST"]),
    Route("/subscribers/export.csv", export_subscribers, methods=["GET"]),
]
