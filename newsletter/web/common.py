"""What every web module shares: the sync/async seam to the database, the HTTP status and
the reader's text for a product error, and the request's consent context and mailer.

Page modules (public, admin, api) import from here and from ``newsletter.services``, never
from each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import read_transaction, transaction
from newsletter.errors import (
    ConflictError,
    DeliveryError,
    InvalidInputError,
    NewsletterError,
    NotFoundError,
    TokenError,
)
from newsletter.i18n import N_, gettext
from newsletter.sending import RenderedEmail, TransactionalMailer
from newsletter.services import sends
from newsletter.web.security import client_ip
from newsletter.web.writer import BatchWork as BatchWork
from newsletter.web.writer import WriteQueue
from subscribers.optin import Mailer
from subscribers.store import ConsentContext

T = TypeVar("T")

# How a web page names the field an error is about (``NewsletterError.where``). These are
# msgids, translated in the page's language; a field not listed here is left out of the
# message rather than shown as an internal name (or a CLI flag).
FIELD_LABELS = {
    "url": N_("Link"),
    "title": N_("Title"),
    "source": N_("Source"),
    "excerpt": N_("Excerpt"),
    "tag": N_("Tags"),
    "tags": N_("Tags"),
    "intro": N_("Intro"),
    "subject": N_("Subject"),
    "position": N_("Position"),
    "until": N_("Until"),
    "reason": N_("Reason"),
    "send_at": N_("New date and time"),
    "email": N_("Email"),
    "name": N_("Name"),
    "password": N_("Password"),
    "file": N_("File"),
    "format": N_("Format"),
    "status": N_("Status"),
}


def _in_transaction(engine: Engine, work: Callable[[Session], T]) -> T:
    with transaction(engine) as session:
        return work(session)


def _in_read_transaction(engine: Engine, work: Callable[[Session], T]) -> T:
    with read_transaction(engine) as session:
        return work(session)


async def run_db(request: Request, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in one write transaction, off the event loop (the sync/async
    seam). Keep ``work`` short: render and send after it returned.

    On SQLite the app's writes go to its one writer thread (``web.writer``), in order; on
    PostgreSQL each runs in a worker thread of its own."""
    engine: Engine = request.app.state.engine
    if engine.dialect.name != "sqlite":
        return await run_in_threadpool(_in_transaction, engine, work)
    return await _write_queue(request).run(work)


async def run_db_batched(request: Request, batch: BatchWork, item: Any) -> Any:
    """``item``'s result from ``batch(session, items)``, run for every item queued with it
    in one write transaction (``WriteQueue.run_batched``: group commit for the writes that
    come by the thousand); raises the exception returned for ``item``. On PostgreSQL each
    item runs alone in a worker thread."""
    engine: Engine = request.app.state.engine
    if engine.dialect.name == "sqlite":
        return await _write_queue(request).run_batched(batch, item)
    outcome = (await run_in_threadpool(_in_transaction, engine, lambda s: batch(s, [item])))[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def read_db(request: Request, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in one read transaction, in a worker thread: it never waits for
    a writer (a send recording its outcomes, an unsubscribe), and must not write."""
    return await run_in_threadpool(_in_read_transaction, request.app.state.engine, work)


async def render_next_issue(request: Request, intro: str | None = None) -> RenderedEmail:
    """The next issue as it would be sent now: read in a read transaction, then rendered
    (jinja2 + premailer) in a worker thread, with no transaction held."""
    config: Config = request.app.state.config
    now = utc_now()
    view = await read_db(request, lambda s: sends.next_issue_view(s, config, now, intro))
    return await run_in_threadpool(sends.render_view, config, view)


async def publish_now(request: Request) -> sends.StartedSend:
    """``sends.publish_now``, with the issue rendered before its write transaction, so the
    writers queued behind it (one-click unsubscribes, a send's outcomes) wait milliseconds,
    not the length of a rendering."""
    config: Config = request.app.state.config
    now = utc_now()
    issue = await read_db(request, lambda s: sends.issue_to_publish(s, config, now))
    prepared = await run_in_threadpool(sends.prepare_issue, config, issue)
    return await run_db(request, lambda s: sends.publish_now(s, config, now, prepared=prepared))


def _write_queue(request: Request) -> WriteQueue:
    state = request.app.state
    found: WriteQueue | None = getattr(state, "write_queue", None)
    if found is None:
        found = WriteQueue(state.engine)
        state.write_queue = found
    return found


def error_status(exc: NewsletterError) -> int:
    """The HTTP status for an error of the core."""
    if isinstance(exc, InvalidInputError):
        return 422
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, TokenError):
        return 400
    if isinstance(exc, DeliveryError):
        return 502  # the relay refused or was unreachable
    return 500


def error_text(config: Config, exc: NewsletterError) -> str:
    """``exc`` as a web page shows it: in the list's language, its field named by a
    translated label (or left out), never by a CLI flag."""
    _ = gettext(config.language)

    def label(where: str) -> str:
        known = FIELD_LABELS.get(where)
        return _(known) if known else ""

    return exc.render(_, label)


def consent_context(request: Request, source: str) -> ConsentContext:
    """Where a subscription request came from, for the consent log."""
    return ConsentContext(
        source=source,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
        consent_text_version=str(
            request.app.state.config.get("subscribers", "consent_text_version")
        ),
    )


def mailer(request: Request) -> Mailer:
    """The app's mailer for opt-in emails (tests may put their own on ``app.state.mailer``)."""
    state = request.app.state
    found: Mailer | None = getattr(state, "mailer", None)
    if found is None:
        found = TransactionalMailer(state.config)
        state.mailer = found
    return found
