"""The naive pipeline the benchmark compares against: for every recipient, render the digest
with jinja2, inline its CSS with premailer, build an ``EmailMessage`` and send it with
``aiosmtplib.send`` on a new connection. This is what "render once, personalise cheaply"
(design decision 3) avoids; the templates mimic the digest's shape and size.
"""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib
import jinja2
import premailer

from bench.common import BENCH_SECRET, ISSUE_INTRO, Measured, issue_links
from subscribers.tokens import make_unsubscribe_token

HTML = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>{{ subject }}</title>
<style>
body { margin: 0; padding: 0; background: #f4f1ea; font-family: Georgia, serif; color: #222; }
.wrap { max-width: 640px; margin: 0 auto; background: #ffffff; padding: 24px; }
h1 { font-size: 26px; color: #1a3d5c; margin: 0 0 12px 0; }
p.intro { font-size: 16px; line-height: 1.5; color: #333; }
.link { border-top: 1px solid #e3ddd0; padding: 14px 0; }
.link h2 { font-size: 18px; margin: 0 0 4px 0; }
.link h2 a { color: #1a3d5c; text-decoration: none; }
.source { font-size: 13px; color: #7a6f5c; text-transform: uppercase; letter-spacing: 1px; }
blockquote { margin: 8px 0 0 0; padding-left: 12px; border-left: 3px solid #c9b98f;
  font-size: 15px; line-height: 1.5; color: #444; }
.tags span { font-size: 12px; background: #efe9dc; padding: 2px 6px; margin-right: 4px; }
.footer { font-size: 12px; color: #888; border-top: 2px solid #1a3d5c; padding-top: 12px; }
.footer a { color: #1a3d5c; }
</style></head>
<body><div class="wrap">
<h1>{{ subject }}</h1>
<p class="intro">{{ intro }}</p>
{% for link in links %}<div class="link">
<h2><a href="{{ link.url }}">{{ link.title }}</a></h2>
<div class="source">{{ link.source }}</div>
<blockquote>{{ link.excerpt }}</blockquote>
<div class="tags">{% for tag in link.tags %}<span>{{ tag }}</span>{% endfor %}</div>
</div>{% endfor %}
<div class="footer"><p>Vous recevez ce courriel car vous êtes abonné·e à {{ list_name }}.</p>
<p><a href="{{ unsubscribe_url }}">Se désabonner</a> · 12 rue de la Paix, 75002 Paris</p></div>
</div></body></html>
"""

TEXT = """{{ subject }}

{{ intro }}
{% for link in links %}
* {{ link.title }} — {{ link.source }}
  {{ link.url }}
  « {{ link.excerpt }} »
{% endfor %}
--
Se désabonner : {{ unsubscribe_url }}
12 rue de la Paix, 75002 Paris
"""

_env = jinja2.Environment(autoescape=True)
_html = _env.from_string(HTML)
_text = jinja2.Environment(autoescape=False).from_string(TEXT)


def build_message(email: str, subscriber_id: int, context: dict[str, Any]) -> EmailMessage:
    """Everything per recipient: jinja2, premailer, EmailMessage."""
    token = make_unsubscribe_token(BENCH_SECRET, subscriber_id)
    url = f"https://liens.example.org/u/{token}"
    html = premailer.transform(_html.render(unsubscribe_url=url, **context))
    msg = EmailMessage()
    msg["Subject"] = context["subject"]
    msg["From"] = "Les liens CivicTech <liens@example.org>"
    msg["To"] = email
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="liens.example.org")
    msg["List-Id"] = "Les liens CivicTech <liens.example.org>"
    msg["List-Unsubscribe"] = f"<{url}>, <mailto:liens@example.org?subject=unsubscribe>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(_text.render(unsubscribe_url=url, **context), cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg


def digest_context() -> dict[str, Any]:
    return {
        "subject": "Les liens CivicTech de la semaine #24",
        "intro": ISSUE_INTRO,
        "links": issue_links(40),
        "list_name": "Les liens CivicTech",
    }


async def _send_all(port: int, count: int, concurrency: int) -> int:
    context = digest_context()
    semaphore = asyncio.Semaphore(concurrency)
    sent = 0

    async def one(i: int) -> None:
        nonlocal sent
        async with semaphore:
            email = f"naif.{i:07d}@example.org"
            msg = build_message(email, i + 1, context)
            await aiosmtplib.send(msg, hostname="127.0.0.1", port=port, timeout=30)
            sent += 1

    await asyncio.gather(*(one(i) for i in range(count)))
    return sent


def run_naive(port: int, *, count: int, concurrency: int) -> Measured:
    """Send ``count`` messages the naive way to 127.0.0.1:``port``; time it."""
    started = time.perf_counter()
    sent = asyncio.run(_send_all(port, count, concurrency))
    seconds = time.perf_counter() - started
    return Measured("naive", sent, seconds, note=f"sample of {count}, {concurrency} concurrent")


def message_size() -> int:
    """Bytes of one naive message (for the report)."""
    return len(build_message("naif.0000001@example.org", 1, digest_context()).as_bytes())
