"""The "Collect links" page: registered feeds (add, remove, read now, each one's last error)
and the bookmarklet."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import NewsletterError
from newsletter.i18n import N_, gettext
from newsletter.intake.fetcher import FetchPolicy
from newsletter.services import feeds as feed_service
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import (
    action_flash,
    field,
    page_status,
    redirect,
    run_action,
    run_db,
)
from newsletter.web.admin.intake_page import bookmarklet
from newsletter.web.admin.templating import render_admin_page

DONE_MESSAGES = {
    "added": N_("Feed registered."),
    "removed": N_("Feed removed."),
    "polled": N_("Feeds read."),
}


def _rows(session: Session, language: str) -> list[dict[str, Any]]:
    translate = gettext(language)
    rows = []
    for feed in feed_service.list_feeds(session):
        error = feed_service.feed_error(feed)
        rows.append(
            {
                "feed": feed,
                "error": error.render(translate, lambda _where: "") if error else "",
            }
        )
    return rows


async def _page(request: Request, error: NewsletterError | None = None) -> Response:
    config: Config = request.app.state.config
    language = config.language
    rows = await run_db(request, lambda session: _rows(session, language))
    context = {"rows": rows, "bookmarklet": bookmarklet(config.base_url)}
    context.update(action_flash(request, DONE_MESSAGES, error))
    return render_admin_page(request, "feeds.html", context, status_code=page_status(error))


@editor_required
async def feeds_page(request: Request) -> Response:
    return await _page(request)


@editor_required
async def add_feed(request: Request) -> Response:
    """Register a feed and read it once, so its title and any error show at once."""
    form = await request.form()
    url, now = field(form, "url"), utc_now()
    try:
        feed = await run_db(request, lambda s: feed_service.add_feed(s, url, now))
    except NewsletterError as exc:
        return await _page(request, exc)
    policy, engine = FetchPolicy.from_config(request.app.state.config), request.app.state.engine
    await run_in_threadpool(lambda: feed_service.poll_feed(engine, policy, feed.id, now))
    return redirect("/admin/feeds?done=added")


@editor_required
async def remove_feed(request: Request) -> Response:
    feed_id = int(request.path_params["feed_id"])

    async def on_error(exc: NewsletterError) -> Response:
        return await _page(request, exc)

    return await run_action(
        request,
        lambda s: feed_service.remove_feed(s, feed_id),
        "/admin/feeds?done=removed",
        on_error,
    )


@editor_required
async def poll_feeds(request: Request) -> Response:
    policy, engine = FetchPolicy.from_config(request.app.state.config), request.app.state.engine
    now = utc_now()
    await run_in_threadpool(lambda: feed_service.poll_all_feeds(engine, policy, now))
    return redirect("/admin/feeds?done=polled")


routes = [
    Route("/feeds", feeds_page, methods=["GET"]),
    Route("/feeds", add_feed, methods=["POST"]),
    Route("/feeds/poll", poll_feeds, methods=["POST"]),
    Route("/feeds/{feed_id:id}/delete", remove_feed, methods=["POST"]),
]
