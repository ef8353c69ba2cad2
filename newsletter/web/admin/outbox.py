"""``/outbox``: the messages the embedded catcher caught, in the dashboard's style and language:
each shown as its HTML first (its links clickable), then its links, headers and text.

Only there when the catcher runs (no ``[smtp] host``), and only to loopback clients: caught mail
holds personal unsubscribe links. A message's HTML is served with a CSP ``sandbox`` and no
script, network or form permissions, so a hostile message cannot act in this origin.
"""

from __future__ import annotations

from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.config import Config
from newsletter.errors import NotFoundError
from newsletter.sending import CaughtMessage, catcher_dir, list_caught, read_caught
from newsletter.web.admin.templating import render_admin_page

LOOPBACK = ("127.0.0.1", "::1", "localhost", "testclient")
# The message's own HTML: no script, no form, no network but a click on one of its links.
MESSAGE_CSP = (
    "sandbox allow-top-navigation-by-user-activation allow-popups "
    "allow-popups-to-escape-sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
)
SHOWN_HEADERS = (
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "DKIM-Signature",
)


class _LinkCollector(HTMLParser):
    """The links of a message's HTML part: (address, text) for each ``<a href>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or None
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            text = " ".join("".join(self._text).split())
            self.links.append((self._href, text or self._href))
            self._href = None


def message_links(html: str) -> list[tuple[str, str]]:
    """The web links (http/https) of ``html``, in order, each once."""
    collector = _LinkCollector()
    collector.feed(html)
    seen: set[str] = set()
    links = []
    for href, text in collector.links:
        if href.startswith(("http://", "https://")) and href not in seen:
            seen.add(href)
            links.append((href, text))
    return links


def with_top_target(html: str) -> str:
    """``html`` with ``<base target="_top">``: a click on a link in the framed message opens
    the link in the whole tab (the sandbox allows that, on a click only)."""
    base = '<base target="_top">'
    lowered = html.lower()
    at = lowered.find("<head>")
    if at >= 0:
        return html[: at + 6] + base + html[at + 6 :]
    return base + html


def _folder(request: Request) -> Path:
    """The catcher's folder; ``NotFoundError`` when the outbox must not be shown."""
    config: Config = request.app.state.config
    client = request.client.host if request.client else ""
    if not config.catcher_enabled or client not in LOOPBACK:
        raise NotFoundError("no outbox here")
    return catcher_dir(config)


def _part(message: EmailMessage, kind: str) -> str:
    body = message.get_body((kind,))
    if body is None:
        return ""
    content = body.get_content()
    return str(content).replace("\r\n", "\n")


def _not_found() -> Response:
    return PlainTextResponse("Not found", status_code=404)


async def outbox_list(request: Request) -> Response:
    try:
        folder = _folder(request)
    except NotFoundError:
        return _not_found()
    messages: list[CaughtMessage] = await run_in_threadpool(list_caught, folder)
    return render_admin_page(request, "outbox.html", {"messages": messages})


async def _load(request: Request) -> tuple[EmailMessage, bytes] | None:
    try:
        folder = _folder(request)
        return await run_in_threadpool(read_caught, folder, request.path_params["name"])
    except NotFoundError:
        return None


async def outbox_message(request: Request) -> Response:
    loaded = await _load(request)
    if loaded is None:
        return _not_found()
    message, _ = loaded
    headers = [(name, str(message[name])) for name in SHOWN_HEADERS if message[name] is not None]
    html_part = _part(message, "html")
    context = {
        "subject": str(message["Subject"] or ""),
        "name": request.path_params["name"],
        "headers": headers,
        "has_html": bool(html_part),
        "links": message_links(html_part),
        "text": _part(message, "plain"),
    }
    return render_admin_page(request, "outbox_message.html", context)


async def outbox_html(request: Request) -> Response:
    loaded = await _load(request)
    if loaded is None:
        return _not_found()
    headers = {"content-security-policy": MESSAGE_CSP, "x-frame-options": "SAMEORIGIN"}
    return HTMLResponse(with_top_target(_part(loaded[0], "html")), headers=headers)


async def outbox_text(request: Request) -> Response:
    loaded = await _load(request)
    if loaded is None:
        return _not_found()
    return PlainTextResponse(_part(loaded[0], "plain"))


async def outbox_raw(request: Request) -> Response:
    loaded = await _load(request)
    if loaded is None:
        return _not_found()
    return Response(loaded[1], media_type="text/plain; charset=utf-8")


routes: list[BaseRoute] = [
    Route("/outbox", outbox_list, methods=["GET"]),
    Route("/outbox/{name}", outbox_message, methods=["GET"]),
    Route("/outbox/{name}/html", outbox_html, methods=["GET"]),
    Route("/outbox/{name}/text", outbox_text, methods=["GET"]),
    Route("/outbox/{name}/raw", outbox_raw, methods=["GET"]),
]
