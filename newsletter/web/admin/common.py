"""What every admin page shares: an editor's action in one transaction then a redirect, the
flash that reports it, and reading form fields. The database seam and the error texts come
from ``newsletter.web.common``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.errors import NewsletterError
from newsletter.inputs import parse_count
from newsletter.web.common import error_status, error_text, read_db, run_db

__all__ = [
    "action_flash",
    "error_flash",
    "error_status",
    "field",
    "int_field",
    "page_status",
    "read_db",
    "redirect",
    "run_action",
    "run_db",
    "tags_field",
]


async def run_action(
    request: Request,
    work: Callable[[Session], object],
    done_url: str,
    on_error: Callable[[NewsletterError], Awaitable[Response]],
) -> Response:
    """Run an editor's action in one transaction, then redirect to ``done_url``; when the core
    refuses it (``NewsletterError``), the page ``on_error`` makes of the error instead."""
    try:
        await run_db(request, work)
    except NewsletterError as exc:
        return await on_error(exc)
    return redirect(done_url)


def action_flash(
    request: Request, messages: Mapping[str, str], error: NewsletterError | None
) -> dict[str, str]:
    """The flash of a page shown after an editor's action: the error when it failed, else the
    message for the ``?done=`` it was redirected with (empty when there is none)."""
    if error is not None:
        return error_flash(request, error)
    return {"flash": messages.get(request.query_params.get("done", ""), ""), "flash_kind": "ok"}


def error_flash(request: Request, error: NewsletterError) -> dict[str, str]:
    """The flash of a page that shows ``error``, in the page's language."""
    return {"flash": error_text(request.app.state.config, error), "flash_kind": "error"}


def page_status(error: NewsletterError | None) -> int:
    """200, or the status of the error the page shows."""
    return error_status(error) if error else 200


def redirect(path: str) -> RedirectResponse:
    """Post/redirect/get: the browser lands on ``path`` with a GET."""
    return RedirectResponse(path, status_code=303)


def field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def int_field(form: Any, name: str) -> int:
    """An integer form field; raises ``InvalidInputError`` naming the field."""
    return parse_count(field(form, name), name)


def tags_field(form: Any) -> list[str]:
    return [tag.strip() for tag in field(form, "tags").split(",") if tag.strip()]
