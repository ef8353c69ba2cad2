"""The subscribers page: counts, search and filter, the weekly chart, and adding a person
(who gets the double opt-in confirmation, like on the public form)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import InvalidInputError, NewsletterError
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.chart import chart_svg, weekly_counts
from newsletter.web.admin.common import error_status, field, redirect, run_db
from newsletter.web.admin.templating import render_page
from newsletter.web.public import consent_context, mailer
from subscribers import io as subscriber_io
from subscribers import optin
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.store import count_by_status

PAGE_SIZE = 100
CHART_WEEKS = 12


def search_subscribers(
    session: Session, *, query: str, status: str, offset: int, limit: int = PAGE_SIZE
) -> tuple[list[Subscriber], int]:
    """Subscribers whose address or name contains ``query`` (case-insensitive), with
    ``status`` when given; returns one page and the total number of matches."""
    where = []
    if query:
        pattern = f"%{query.lower()}%"
        where.append(
            or_(Subscriber.email_key.like(pattern), func.lower(Subscriber.name).like(pattern))
        )
    if status:
        where.append(Subscriber.status == status)
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*where)) or 0
    rows = session.scalars(
        select(Subscriber).where(*where).order_by(Subscriber.id.desc()).offset(offset).limit(limit)
    )
    return list(rows), int(total)


def _context(
    session: Session, config: Config, query: str, status: str, offset: int
) -> dict[str, Any]:
    rows, total = search_subscribers(session, query=query, status=status, offset=offset)
    weeks = weekly_counts(session, config.timezone, utc_now(), CHART_WEEKS)
    return {
        "rows": rows,
        "total": total,
        "counts": count_by_status(session),
        "statuses": [s.value for s in SubscriberStatus],
        "query": query,
        "status": status,
        "offset": offset,
        "page_size": PAGE_SIZE,
        "weeks": weeks,
        "chart": lambda labels: Markup(chart_svg(weeks, labels)),
    }


def _offset(request: Request) -> int:
    raw = request.query_params.get("offset", "0")
    return max(int(raw), 0) if raw.isdigit() else 0


async def _page(
    request: Request,
    error: NewsletterError | None = None,
    flash: str = "",
    extra: dict[str, Any] | None = None,
) -> Response:
    config: Config = request.app.state.config
    query = request.query_params.get("q", "").strip()[:200]
    status = request.query_params.get("status", "")
    status = status if status in {s.value for s in SubscriberStatus} else ""
    offset = _offset(request)
    context = await run_db(request, lambda s: _context(s, config, query, status, offset))
    done = {"added": "Confirmation sent: the person is subscribed once they confirm."}
    context.update(
        flash=str(error) if error else flash or done.get(request.query_params.get("done", ""), ""),
        flash_kind="error" if error else "ok",
        formats=subscriber_io.FORMATS,
        **(extra or {}),
    )
    return render_page(request, "subscribers.html", context, error_status(error) if error else 200)


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
            lambda s: optin.request_subscription(
                s,
                config,
                email=field(form, "email"),
                name=field(form, "name"),
                context=context,
                now=now,
            ),
        )
        if mail is not None:
            await mailer(request).send_confirmation(mail)
    except NewsletterError as exc:  # DeliveryError included: the relay refused or was down
        return await _page(request, exc, extra={"form": form, "form_name": "add"})
    if mail is None:
        return await _page(
            request, flash="Already subscribed, or a confirmation was sent recently."
        )
    return redirect("/admin/subscribers?done=added")


def run_import(
    request: Request, text: str, where: str, options: dict[str, Any]
) -> tuple[int, list[str]]:
    """Import in one transaction (rolled back for a dry run), as ``subscribers import`` does;
    returns the number of rows read and the CLI's report lines."""
    config: Config = request.app.state.config
    rows = subscriber_io.parse_import(text, options["fmt"], where=where)
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        report = subscriber_io.import_rows(
            session,
            config.secret_key,
            rows,
            confirmed=options["confirmed"],
            source=options["source"],
            language=str(config.get("list", "language")),
            now=utc_now(),
        )
        if options["dry_run"]:
            session.rollback()
        else:
            session.commit()
    return len(rows), report.lines()


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
    if "\0" in text:
        raise InvalidInputError("not a text file; nothing imported", where=where)
    return text, where


@editor_required
async def import_subscribers(request: Request) -> Response:
    form = await request.form()
    fmt = field(form, "format") or "auto"
    options = {
        "fmt": fmt if fmt in subscriber_io.FORMATS else "auto",
        "confirmed": field(form, "confirmed") == "yes",
        "source": field(form, "source"),
        "dry_run": field(form, "dry_run") == "yes",
    }
    try:
        text, where = await _upload_text(form)
        count, lines = await run_in_threadpool(run_import, request, text, where, options)
    except NewsletterError as exc:
        return await _page(request, exc, extra={"form": form, "form_name": "import"})
    prefix = "Dry run, nothing changed. " if options["dry_run"] else ""
    report = [f"{prefix}Read {count} rows from {where}.", *lines]
    return await _page(request, flash="Import done.", extra={"import_report": report})


@editor_required
async def export_subscribers(request: Request) -> Response:
    status = request.query_params.get("status", "")
    status = status if status in {s.value for s in SubscriberStatus} else ""

    def work(session: Session) -> str:
        return subscriber_io.export_subscribers(session, "csv", status or None)

    data = await run_db(request, work)
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
