"""Previewing the next issue (the test send is an action of the issue page).

The preview is the real rendered digest (``render_digest``), served from its own route with a
CSP that forbids scripts and framed by the issue page in a sandboxed iframe: the excerpts are
the editor's, but the links and their pages are the world's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from newsletter import content
from newsletter.config import Config
from newsletter.services import sends
from newsletter.web.admin.auth import editor_required
from newsletter.web.common import render_next_issue

PREVIEW_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
PREVIEW_HEADERS = {
    "content-security-policy": PREVIEW_CSP,
    "x-frame-options": "SAMEORIGIN",
    "cache-control": "no-store",
}


def _preview_intro(request: Request) -> str | None:
    intro = request.query_params.get("intro")
    return intro[: content.MAX_EXCERPT] if intro is not None else None


@editor_required
async def preview_html(request: Request) -> Response:
    config: Config = request.app.state.config
    intro = _preview_intro(request)
    rendered = await render_next_issue(request, intro)
    html = sends.fill_preview(rendered.html, config, request.state.editor_email)
    return HTMLResponse(html, headers=PREVIEW_HEADERS)


@editor_required
async def preview_text(request: Request) -> Response:
    config: Config = request.app.state.config
    rendered = await render_next_issue(request)
    text = sends.fill_preview(rendered.text, config, request.state.editor_email)
    return PlainTextResponse(text, headers=PREVIEW_HEADERS)


routes = [
    Route("/issue/preview.html", preview_html, methods=["GET"]),
    Route("/issue/preview.txt", preview_text, methods=["GET"]),
]
