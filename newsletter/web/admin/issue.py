"""The next issue page: queue, edit, reorder and remove links; write the intro and subject."""

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
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import error_status, field, int_field, redirect, run_db, tags_field
from newsletter.web.admin.templating import render_page

DONE_MESSAGES = {
    "added": "Link queued.",
    "saved": "Link saved.",
    "moved": "Link moved.",
    "removed": "Link removed.",
    "draft": "Intro and subject saved.",
    "tested": "Test sent to your address.",
}


def _issue_context(session: Session, config: Config) -> dict[str, Any]:
    now = utc_now()
    view = content.next_issue_view(session, config, now)
    draft = content.get_draft(session)
    last = content.last_sent_issue(session)
    return {
        "links": content.queued_links(session),
        "view": view,
        "draft": draft,
        "last_sent": last,
    }


async def _page(
    request: Request, *, error: NewsletterError | None = None, form: Any = None
) -> Response:
    config: Config = request.app.state.config
    context = await run_db(request, lambda s: _issue_context(s, config))
    done = DONE_MESSAGES.get(request.query_params.get("done", ""), "")
    context.update(
        flash=str(error) if error else done,
        flash_kind="error" if error else "ok",
        form=form or {},
    )
    status = error_status(error) if error else 200
    return render_page(request, "issue.html", context, status_code=status)


async def issue_error_page(request: Request, error: NewsletterError) -> Response:
    """The issue page again, showing what went wrong with the editor's last action."""
    return await _page(request, error=error)


@editor_required
async def issue_page(request: Request) -> Response:
    return await _page(request)


@editor_required
async def add_link(request: Request) -> Response:
    form = await request.form()
    now = utc_now()

    def work(session: Session) -> None:
        content.queue_link(
            session,
            url=field(form, "url").strip(),
            title=field(form, "title"),
            source=field(form, "source"),
            excerpt=field(form, "excerpt"),
            tags=tags_field(form),
            now=now,
        )

    try:
        await run_db(request, work)
    except NewsletterError as exc:
        return await _page(request, error=exc, form=form)
    return redirect("/admin/issue?done=added")


@editor_required
async def edit_link(request: Request) -> Response:
    form = await request.form()
    link_id = int(request.path_params["link_id"])

    def work(session: Session) -> None:
        content.update_link(
            session,
            link_id,
            url=field(form, "url").strip(),
            title=field(form, "title"),
            source=field(form, "source"),
            excerpt=field(form, "excerpt"),
            tags=tags_field(form),
        )

    try:
        await run_db(request, work)
    except NewsletterError as exc:
        return await _page(request, error=exc)
    return redirect("/admin/issue?done=saved")


@editor_required
async def move_link(request: Request) -> Response:
    form = await request.form()
    link_id = int(request.path_params["link_id"])
    try:
        position = int_field(form, "position")
        await run_db(request, lambda s: content.move_link(s, link_id, position))
    except NewsletterError as exc:
        return await _page(request, error=exc)
    return redirect("/admin/issue?done=moved")


@editor_required
async def remove_link(request: Request) -> Response:
    link_id = int(request.path_params["link_id"])
    try:
        await run_db(request, lambda s: content.remove_link(s, link_id))
    except NewsletterError as exc:
        return await _page(request, error=exc)
    return redirect("/admin/issue?done=removed")


@editor_required
async def save_draft(request: Request) -> Response:
    form = await request.form()
    now = utc_now()

    def work(session: Session) -> None:
        content.set_intro(session, field(form, "intro"), now)
        content.set_subject(session, field(form, "subject"), now)

    try:
        await run_db(request, work)
    except NewsletterError as exc:
        return await _page(request, error=exc)
    return redirect("/admin/issue?done=draft")


routes = [
    Route("/issue", issue_page, methods=["GET"]),
    Route("/issue/links", add_link, methods=["POST"]),
    Route("/issue/links/{link_id:int}", edit_link, methods=["POST"]),
    Route("/issue/links/{link_id:int}/move", move_link, methods=["POST"]),
    Route("/issue/links/{link_id:int}/delete", remove_link, methods=["POST"]),
    Route("/issue/draft", save_draft, methods=["POST"]),
]
