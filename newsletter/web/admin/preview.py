"""Previewing the next issue and sending a test of it to the signed-in editor.

The preview is the real rendered digest (``render_digest``), served from its own route with a
CSP that forbids scripts and framed by the issue page in a sandboxed iframe: the excerpts are
the editor's, but the links and their pages are the world's.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from newsletter import content
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import NewsletterError
from newsletter.sending.message import MessageTemplate, Recipient
from newsletter.sending.render import (
    RECIPIENT_EMAIL_PLACEHOLDER,
    UNSUBSCRIBE_URL_PLACEHOLDER,
    RenderedEmail,
    render_digest,
)
from newsletter.sending.smtp import send_single
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import redirect, run_db
from newsletter.web.admin.issue import issue_error_page

PREVIEW_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
PREVIEW_HEADERS = {
    "content-security-policy": PREVIEW_CSP,
    "x-frame-options": "SAMEORIGIN",
    "cache-control": "no-store",
}


def preview_unsubscribe_url(config: Config) -> str:
    """Stands for a subscriber's personal link in previews and tests; it unsubscribes nobody."""
    return f"{config.base_url}/u/preview"


def render_next_issue(session: Session, config: Config, intro: str | None = None) -> RenderedEmail:
    """The next issue as it would be sent now, placeholders still in; ``intro`` previews an
    unsaved intro."""
    return render_digest(config, content.next_issue_view(session, config, utc_now(), intro))


def _preview_intro(request: Request) -> str | None:
    intro = request.query_params.get("intro")
    return intro[: content.MAX_EXCERPT] if intro is not None else None


def _fill(text: str, config: Config, email: str) -> str:
    text = text.replace(UNSUBSCRIBE_URL_PLACEHOLDER, preview_unsubscribe_url(config))
    return text.replace(RECIPIENT_EMAIL_PLACEHOLDER, email)


@editor_required
async def preview_html(request: Request) -> Response:
    config: Config = request.app.state.config
    intro = _preview_intro(request)
    rendered = await run_db(request, lambda s: render_next_issue(s, config, intro))
    html = _fill(rendered.html, config, request.state.editor_email)
    return HTMLResponse(html, headers=PREVIEW_HEADERS)


@editor_required
async def preview_text(request: Request) -> Response:
    config: Config = request.app.state.config
    rendered = await run_db(request, lambda s: render_next_issue(s, config))
    text = _fill(rendered.text, config, request.state.editor_email)
    return PlainTextResponse(text, headers=PREVIEW_HEADERS)


async def send_test_to(config: Config, rendered: RenderedEmail, email: str) -> None:
    """Send ``rendered`` as a preview (subject marked) to ``email`` through the relay.
    Raises ``TemporaryFailure``/``PermanentFailure`` when the relay refuses it."""
    template = MessageTemplate.prepare(config, rendered, test=True)
    recipient = Recipient(email=email, unsubscribe_url=preview_unsubscribe_url(config))
    data = template.for_recipient(recipient, utc_now())
    await send_single(config, str(config.get("list", "from_address")), [email], data)


@editor_required
async def send_test(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        rendered = await run_db(request, lambda s: render_next_issue(s, config))
        await send_test_to(config, rendered, request.state.editor_email)
    except NewsletterError as exc:
        return await issue_error_page(request, exc)
    return redirect("/admin/issue?done=tested")


routes = [
    Route("/issue/preview.html", preview_html, methods=["GET"]),
    Route("/issue/preview.txt", preview_text, methods=["GET"]),
    Route("/issue/test", send_test, methods=["POST"]),
]
