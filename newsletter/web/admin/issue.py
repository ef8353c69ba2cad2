"""The next issue page: queue, edit, reorder and remove links; write the intro and subject;
send a test of the issue to the signed-in editor."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter import content
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import NewsletterError
from newsletter.services import sends
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import (
    action_flash,
    field,
    int_field,
    page_status,
    read_db,
    redirect,
    run_action,
    tags_field,
)
from newsletter.web.admin.templating import render_admin_page
from newsletter.web.common import render_next_issue

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
    request: Request,
    *,
    error: NewsletterError | None = None,
    form: Any = None,
    notices: Sequence[str] = (),
    form_name: str = "add",
) -> Response:
    """The issue page; after an error, ``form`` (what the editor typed) refills the form named
    ``form_name`` (``add``, ``draft`` or ``link-ID``)."""
    config: Config = request.app.state.config
    context = await read_db(request, lambda s: _issue_context(s, config))
    context.update(action_flash(request, DONE_MESSAGES, error), form=form or {})
    context["notices"] = notices  # link intake: a suggestion's warnings, above the add form
    context["form_name"] = form_name
    return render_admin_page(request, "issue.html", context, status_code=page_status(error))


async def issue_page_with(
    request: Request, *, form: Mapping[str, str], notices: Sequence[str]
) -> Response:
    """The issue page with the add form filled in (a suggested card) and ``notices``."""
    return await _page(request, form=form, notices=notices)


async def issue_error_page(request: Request, error: NewsletterError, form: Any = None) -> Response:
    """The issue page again, showing what went wrong with the editor's last action (and,
    with ``form``, the fields the editor typed)."""
    return await _page(request, error=error, form=form)


async def _act(
    request: Request,
    done: str,
    work: Callable[[Session], object],
    form: Any = None,
    form_name: str = "add",
) -> Response:
    """Run ``work``, then back to the issue page with the ``done`` message or the error (and,
    with ``form``, the fields the editor typed in the form ``form_name``)."""

    async def on_error(exc: NewsletterError) -> Response:
        return await _page(request, error=exc, form=form, form_name=form_name)

    return await run_action(request, work, f"/admin/issue?done={done}", on_error)


def link_fields(form: Any) -> dict[str, Any]:
    """The fields of the link form, as ``content.queue_link``/``update_link`` take them."""
    return {
        "url": field(form, "url").strip(),
        "title": field(form, "title"),
        "source": field(form, "source"),
        "excerpt": field(form, "excerpt"),
        "tags": tags_field(form),
    }


@editor_required
async def issue_page(request: Request) -> Response:
    return await _page(request)


@editor_required
async def edit_link(request: Request) -> Response:
    form = await request.form()
    link_id = int(request.path_params["link_id"])
    return await _act(
        request,
        "saved",
        lambda s: content.update_link(s, link_id, **link_fields(form)),
        form,
        f"link-{link_id}",
    )


@editor_required
async def move_link(request: Request) -> Response:
    form = await request.form()
    link_id = int(request.path_params["link_id"])
    try:
        position = int_field(form, "position")
    except NewsletterError as exc:
        return await _page(request, error=exc, form=form, form_name=f"link-{link_id}")
    return await _act(
        request, "moved", lambda s: content.move_link(s, link_id, position), form, f"link-{link_id}"
    )


@editor_required
async def remove_link(request: Request) -> Response:
    link_id = int(request.path_params["link_id"])
    return await _act(request, "removed", lambda s: content.remove_link(s, link_id))


@editor_required
async def save_draft(request: Request) -> Response:
    form = await request.form()
    now = utc_now()

    def work(session: Session) -> None:
        content.set_intro(session, field(form, "intro"), now)
        content.set_subject(session, field(form, "subject"), now)

    return await _act(request, "draft", work, form, "draft")


@editor_required
async def send_test(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        rendered = await render_next_issue(request)
        await sends.send_test(config, rendered, request.state.editor_email, utc_now())
    except NewsletterError as exc:
        return await _page(request, error=exc)
    return redirect("/admin/issue?done=tested")


routes = [
    Route("/issue", issue_page, methods=["GET"]),
    Route("/issue/links/{link_id:id}", edit_link, methods=["POST"]),
    Route("/issue/links/{link_id:id}/move", move_link, methods=["POST"]),
    Route("/issue/links/{link_id:id}/delete", remove_link, methods=["POST"]),
    Route("/issue/draft", save_draft, methods=["POST"]),
    Route("/issue/test", send_test, methods=["POST"]),
]
