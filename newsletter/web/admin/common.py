"""What every admin page shares: running core work in one transaction off the event loop,
and translating the product's errors to a status and a message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.db import transaction
from newsletter.errors import (
    ConflictError,
    DeliveryError,
    InvalidInputError,
    NewsletterError,
    NotFoundError,
)

T = TypeVar("T")


def _in_transaction(request: Request, work: Callable[[Session], T]) -> T:
    with transaction(request.app.state.engine) as session:
        return work(session)


async def run_db(request: Request, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in one transaction, in a worker thread (the sync/async seam)."""
    return await run_in_threadpool(_in_transaction, request, work)


def error_status(exc: NewsletterError) -> int:
    """The HTTP status for an error of the core."""
    if isinstance(exc, InvalidInputError):
        return 422
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, DeliveryError):
        return 502  # the relay refused or was unreachable
    return 500


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
    done = messages.get(request.query_params.get("done", ""), "")
    return {"flash": str(error) if error else done, "flash_kind": "error" if error else "ok"}


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
    raw = field(form, name).strip()
    try:
        return int(raw)
    except ValueError:
        raise InvalidInputError("must be a whole number", where=name) from None


def tags_field(form: Any) -> list[str]:
    return [tag.strip() for tag in field(form, "tags").split(",") if tag.strip()]
