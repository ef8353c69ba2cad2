"""The subscribers page: counts, search and filter, the weekly chart, and adding a person
(who gets the double opt-in confirmation, like on the public form)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import DeliveryError, NewsletterError
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.chart import chart_svg, weekly_counts
from newsletter.web.admin.common import error_status, field, redirect, run_db
from newsletter.web.admin.templating import render_page
from newsletter.web.public import consent_context, mailer
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
        "chart": Markup(chart_svg(weeks)),
    }


def _offset(request: Request) -> int:
    raw = request.query_params.get("offset", "0")
    return max(int(raw), 0) if raw.isdigit() else 0


async def _page(
    request: Request, error: NewsletterError | None = None, flash: str = ""
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
    except DeliveryError as exc:
        return await _page(request, exc)
    except NewsletterError as exc:
        return await _page(request, exc)
    if mail is None:
        return await _page(
            request, flash="Already subscribed, or a confirmation was sent recently."
        )
    return redirect("/admin/subscribers?done=added")


routes = [
    Route("/subscribers", subscribers_page, methods=["GET"]),
    Route("/subscribers/add", add_subscriber, methods=["POST"]),
]
