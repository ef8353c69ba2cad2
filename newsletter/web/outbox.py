"""``/outbox``: the messages the embedded catcher caught, each viewable as HTML and as text.

Only there when the catcher runs (no ``[smtp] host``), and only to loopback clients: caught mail
holds personal unsubscribe links. A message's HTML is served with a CSP ``sandbox`` and no
script, network or form permissions, so a hostile message cannot act in this origin.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.config import Config
from newsletter.errors import NotFoundError
from newsletter.sending.catcher import CaughtMessage, catcher_dir, list_caught, read_caught
from newsletter.templating import make_environment

LOOPBACK = ("127.0.0.1", "::1", "localhost", "testclient")
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MESSAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
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

# English for now: the page is a developer tool, and its wording is not in the catalogues yet.
_env = make_environment(None, "en", autoescape=True, strict=False)
_PAGE = _env.from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 1rem; overflow-wrap: anywhere; }
td.h { font-weight: bold; white-space: nowrap; }
</style></head><body>
<p><a href="/outbox">Outbox</a></p>
<h1>{{ title }}</h1>
{% if messages is defined %}
<p>Messages caught by the embedded SMTP catcher (nothing was delivered).
{{ messages|length }} shown, newest first.</p>
{% if messages %}<table><tr><th>Received (UTC)</th><th>To</th><th>Subject</th><th>Size</th></tr>
{% for m in messages %}<tr><td>{{ m.received.strftime("%Y-%m-%d %H:%M:%S") }}</td>
<td>{{ m.to }}</td><td><a href="/outbox/{{ m.name }}">{{ m.subject or "(no subject)" }}</a></td>
<td>{{ (m.size / 1024)|round(1) }} KB</td></tr>
{% endfor %}</table>{% else %}<p>No message yet.</p>{% endif %}
{% else %}
<p><a href="/outbox/{{ name }}/html">HTML</a> · <a href="/outbox/{{ name }}/text">Text</a>
· <a href="/outbox/{{ name }}/raw">Raw</a></p>
<table>{% for key, value in headers %}<tr><td class="h">{{ key }}</td><td>{{ value }}</td></tr>
{% endfor %}</table>
<h2>Text</h2><pre>{{ text }}</pre>
{% endif %}
</body></html>
"""
)


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
    html = _PAGE.render(title="Outbox", messages=messages)
    return HTMLResponse(html, headers={"content-security-policy": PAGE_CSP})


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
    html = _PAGE.render(
        title=str(message["Subject"] or "(no subject)"),
        name=request.path_params["name"],
        headers=headers,
        text=_part(message, "plain"),
    )
    return HTMLResponse(html, headers={"content-security-policy": PAGE_CSP})


async def outbox_html(request: Request) -> Response:
    loaded = await _load(request)
    if loaded is None:
        return _not_found()
    headers = {"content-security-policy": MESSAGE_CSP, "x-frame-options": "SAMEORIGIN"}
    return HTMLResponse(_part(loaded[0], "html"), headers=headers)


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
