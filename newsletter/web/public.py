"""The public pages of the opt-in flow: subscribe, confirm, unsubscribe.

Nothing acts on a GET (mail scanners prefetch links): the confirm and unsubscribe links open a
page with a button that POSTs. ``POST /u/TOKEN`` also answers RFC 8058 one-click requests
(``List-Unsubscribe=One-Click``, urlencoded or multipart, no cookie): the signed token is the
proof, so that POST needs no CSRF token, and it answers 200 without a redirect.

Every database step runs in a worker thread in one transaction; mail goes out after it
committed, through the app's ``Mailer`` (``app.state.mailer``, by default the SMTP one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.clock import utc_now
from newsletter.db import read_transaction
from newsletter.errors import DeliveryError, InvalidInputError, TokenError
from newsletter.services.archive import sent_issues
from newsletter.web.common import (
    BatchWork,
    consent_context,
    mailer,
    read_db,
    run_db,
    run_db_batched,
)
from newsletter.web.pages import page_gettext, render_page
from newsletter.web.security import CSRFError, RequestLimiter, check_csrf, client_ip
from subscribers import optin
from subscribers.tokens import ExpiredTokenError

log = logging.getLogger(__name__)

T = TypeVar("T")

HONEYPOT_FIELD = "website"
SUBSCRIBE_LIMIT = (10, 600.0)  # per IP: 10 sign-ups in 10 minutes
MAX_FIELD_LENGTH = 320


async def in_transaction(request: Request, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in a worker thread inside one write transaction (see
    ``run_db``: on SQLite the app's writers take turns, fairly, without holding threads)."""
    return await run_db(request, work)


def subscribe_limiter(request: Request) -> RequestLimiter:
    state = request.app.state
    limiter: RequestLimiter | None = getattr(state, "subscribe_limiter", None)
    if limiter is None:
        limiter = RequestLimiter(*SUBSCRIBE_LIMIT)
        state.subscribe_limiter = limiter
    return limiter


async def read_form(request: Request) -> FormData:
    """The posted form; raises ``InvalidInputError`` for a body that is not one."""
    try:
        return await request.form(max_files=0, max_fields=20)
    except (ClientDisconnect, HTTPException, MultiPartException) as exc:
        raise InvalidInputError("unreadable form (%(error)s)", error=str(exc)) from None


def field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def message_page(
    request: Request, title: str, message: str, status_code: int = 200, **extra: Any
) -> Response:
    return render_page(
        request,
        "message.html",
        {"title": title, "message": message, **extra},
        status_code=status_code,
    )


def invalid_link(request: Request) -> Response:
    _ = page_gettext(request)
    return message_page(
        request,
        _("This link is not valid"),
        _("The link may have been cut by your mail program. Copy the whole link and try again."),
        status_code=400,
    )


def csrf_failed(request: Request) -> Response:
    _ = page_gettext(request)
    return message_page(
        request,
        _("Please try again"),
        _("The form expired or came from another site. Reload the page and send it again."),
        status_code=403,
    )


async def csrf_refusal(request: Request) -> Response | None:
    """None when the POSTed form carries a valid CSRF token; else the page refusing it."""
    try:
        check_csrf(request, await read_form(request))
    except (CSRFError, InvalidInputError):
        return csrf_failed(request)
    return None


def confirm_expired(request: Request, token: str) -> Response:
    """The page of an expired confirmation link, offering to send a new one (status 410)."""
    return render_page(request, "confirm_expired.html", {"token": token}, status_code=410)


async def send_mail(request: Request, mail: optin.ConfirmationMail | optin.WelcomeMail) -> None:
    """Send after commit. A relay failure is logged, not shown: the page must not reveal
    anything about the address, and the person can ask again once the interval passed."""
    try:
        if isinstance(mail, optin.ConfirmationMail):
            await mailer(request).send_confirmation(mail)
        else:
            await mailer(request).send_welcome(mail)
    except DeliveryError as exc:
        log.warning("could not send the %s email: %s", type(mail).__name__, exc)


def after_response(
    response: Response,
    request: Request,
    mail: optin.ConfirmationMail | optin.WelcomeMail | None,
) -> Response:
    """Send ``mail`` once ``response`` went out. Sending before answering would make the
    answer slower for addresses that get an email than for those that do not, which tells
    an observer whether an address is already subscribed."""
    if mail is not None:
        response.background = BackgroundTask(send_mail, request, mail)
    return response


# --- subscribe -------------------------------------------------------------------------------


async def subscribe(request: Request) -> Response:
    _ = page_gettext(request)
    if not subscribe_limiter(request).allow(client_ip(request)):
        return message_page(
            request,
            _("Too many requests"),
            _("Too many sign-ups from your network. Please wait a few minutes and try again."),
            status_code=429,
        )
    try:
        form = await read_form(request)
        check_csrf(request, form)
    except CSRFError:
        return csrf_failed(request)
    except InvalidInputError:
        return await form_again(request, "", "", _("The form could not be read."))
    email, name = field(form, "email"), field(form, "name")
    if field(form, HONEYPOT_FIELD):
        # A bot filled the hidden field: answer exactly as for a person, do nothing.
        return check_inbox(request)
    if len(email) > MAX_FIELD_LENGTH or len(name) > MAX_FIELD_LENGTH:
        return await form_again(request, "", "", _("This field is too long."))
    context = consent_context(request, "web")
    now = utc_now()
    config = request.app.state.config
    try:
        mail = await in_transaction(
            request,
            lambda s: optin.request_subscription(
                s, config, email=email, name=name, context=context, now=now
            ),
        )
    except InvalidInputError as exc:
        return await form_again(request, email, name, describe_invalid(request, exc))
    return after_response(check_inbox(request), request, mail)


def describe_invalid(request: Request, exc: InvalidInputError) -> str:
    _ = page_gettext(request)
    if exc.where == "name":
        return _("This name is too long.")
    if "required" in exc.reason:
        return _("Please enter your email address.")
    return _("This email address is not valid. Check it and try again.")


async def form_again(request: Request, email: str, name: str, error: str) -> Response:
    """The home page again, with what was typed and what was wrong, status 400."""
    context = await run_in_threadpool(home_context, request.app.state.engine)
    context.update(email=email, name=name, error=error)
    return render_page(request, "index.html", context, status_code=400)


def check_inbox(request: Request) -> Response:
    _ = page_gettext(request)
    return message_page(
        request,
        _("Check your inbox"),
        _(
            "If this address can be subscribed, an email with a confirmation link is on its "
            "way. Open it and press the button to confirm."
        ),
    )


# --- confirm ---------------------------------------------------------------------------------


async def confirm_page(request: Request) -> Response:
    token = str(request.path_params["token"])
    config, now = request.app.state.config, utc_now()
    try:
        await read_db(request, lambda s: optin.check_confirm_token(s, config, token, now))
    except ExpiredTokenError:
        return confirm_expired(request, token)
    except TokenError:
        return invalid_link(request)
    return render_page(request, "confirm.html", {"token": token})


async def confirm(request: Request) -> Response:
    _ = page_gettext(request)
    token = str(request.path_params["token"])
    if (refused := await csrf_refusal(request)) is not None:
        return refused
    config, now, context = request.app.state.config, utc_now(), consent_context(request, "web")
    try:
        mail = await in_transaction(
            request,
            lambda s: optin.confirm_subscription(s, config, token, context=context, now=now),
        )
    except ExpiredTokenError:
        return confirm_expired(request, token)
    except TokenError:
        return invalid_link(request)
    page = message_page(
        request,
        _("Subscription confirmed"),
        _("Thank you! You will receive the next issue. A welcome email is on its way."),
    )
    return after_response(page, request, mail)


async def renew(request: Request) -> Response:
    _ = page_gettext(request)
    token = str(request.path_params["token"])
    if (refused := await csrf_refusal(request)) is not None:
        return refused
    config, now = request.app.state.config, utc_now()
    try:
        mail = await in_transaction(
            request, lambda s: optin.renew_confirmation(s, config, token, now=now)
        )
    except TokenError:
        return invalid_link(request)
    return after_response(check_inbox(request), request, mail)


# --- unsubscribe -----------------------------------------------------------------------------


async def unsubscribe_page(request: Request) -> Response:
    token = str(request.path_params["token"])
    config = request.app.state.config
    try:
        await read_db(request, lambda s: optin.check_unsubscribe_token(s, config, token))
    except TokenError:
        return invalid_link(request)
    return render_page(request, "unsubscribe.html", {"token": token})


async def unsubscribe(request: Request) -> Response:
    """Our button and RFC 8058 one-click POSTs alike: the token is the only proof needed.
    One-click POSTs come by the thousand after a send, so they are written in batches."""
    token = str(request.path_params["token"])
    one_click = await is_one_click(request)
    context = consent_context(request, "one-click" if one_click else "web")
    item = optin.Unsubscription(token, utc_now(), context)
    try:
        await run_db_batched(request, unsubscribe_batch(request), item)
    except TokenError:
        return invalid_link(request)
    return unsubscribed_page(request)


async def is_one_click(request: Request) -> bool:
    """Whether the POST says ``List-Unsubscribe=One-Click`` (RFC 8058), urlencoded (read
    directly: this is the hot path) or multipart."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            body = (await request.body()).decode("utf-8")
        except (ClientDisconnect, UnicodeDecodeError):
            return False
        return ("List-Unsubscribe", "One-Click") in parse_qsl(body, max_num_fields=20)
    try:
        form = await read_form(request)
    except InvalidInputError:
        return False
    return field(form, "List-Unsubscribe") == "One-Click"


def unsubscribe_batch(request: Request) -> BatchWork:
    """``optin.unsubscribe_many`` for this app's configuration: one function per app, so the
    writer groups the requests queued together."""
    state = request.app.state
    found: BatchWork | None = getattr(state, "unsubscribe_batch", None)
    if found is None:
        config = state.config

        def batch(session: Session, items: Sequence[Any]) -> Sequence[Any]:
            return optin.unsubscribe_many(session, config, items)

        found = batch
        state.unsubscribe_batch = found
    return found


def unsubscribed_page(request: Request) -> Response:
    """The answer to an unsubscribe. It is the same for everyone (the list's language, no
    form), so it is rendered once per app: one-click POSTs come by the thousand."""
    state = request.app.state
    html: str | None = getattr(state, "unsubscribed_html", None)
    if html is None:
        _ = page_gettext(request)
        page = message_page(
            request,
            _("You are unsubscribed"),
            _("You will receive no more emails from this newsletter."),
        )
        html = bytes(page.body).decode("utf-8")
        state.unsubscribed_html = html
    return HTMLResponse(html)


def home_context(engine: Engine) -> dict[str, Any]:
    """What the home page shows besides the form (sync: call it from a worker thread)."""
    with read_transaction(engine) as session:
        latest = sent_issues(session, limit=1)
    return {"latest": latest[0] if latest else None, "email": "", "name": "", "error": ""}


async def home(request: Request) -> Response:
    context = await run_in_threadpool(home_context, request.app.state.engine)
    return render_page(request, "index.html", context)


routes: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/subscribe", subscribe, methods=["POST"]),
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm, methods=["POST"]),
    Route("/confirm/{token}/renew", renew, methods=["POST"]),
    Route("/u/{token}", unsubscribe_page, methods=["GET"]),
    Route("/u/{token}", unsubscribe, methods=["POST"]),
]
