"""Readers' clicks as anonymous per-link counts (``[tracking] clicks``, off by default).

Each link of a digest points to ``/r/ISSUE/LINK?s=SIGNATURE``. The signature (an HMAC of the
issue number and link id) makes the redirect useless as an open redirect: the target is the
link's URL *in the database*, never anything taken from the request, so editing the URL can
only reach another link of a sent issue, and only with that link's own signature.

A hit adds 1 to the link's counter, nothing else: no subscriber id, no IP address, no cookie.
Mail scanners that open every link are counted apart (``bot_clicks``): HEAD requests, known
scanner user agents, and hits within a second of a delivery of the same issue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

from newsletter.content import IssueView
from newsletter.errors import NotFoundError, TokenError
from newsletter.models import Delivery, DeliveryStatus, Issue, Link, SendRun

SCANNER_WINDOW = timedelta(seconds=1)
# Substrings of the user agents of link scanners, previewers and scripts (lower case).
SCANNER_AGENTS = (
    "bot",
    "crawler",
    "spider",
    "scanner",
    "preview",
    "headless",
    "python-",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "barracuda",
    "proofpoint",
    "mimecast",
    "safelinks",
    "urldefense",
    "symantec",
    "trendmicro",
    "fortiguard",
    "sophos",
    "facebookexternalhit",
    "microsoft office",
    "ms-office",
)


def click_signature(secret: str, issue_number: int, link_id: int) -> str:
    """The signature of ``/r/ISSUE/LINK``: 128 bits of HMAC-SHA256, URL-safe."""
    message = f"click:{issue_number}:{link_id}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def click_url(base_url: str, secret: str, issue_number: int, link_id: int) -> str:
    sig = click_signature(secret, issue_number, link_id)
    return f"{base_url.rstrip('/')}/r/{issue_number}/{link_id}?s={sig}"


def check_signature(secret: str, issue_number: int, link_id: int, signature: str) -> None:
    """Raises ``TokenError`` unless ``signature`` is this link's."""
    expected = click_signature(secret, issue_number, link_id)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise TokenError("this link is not one of ours")


def tracked_view(view: IssueView, link_ids: Sequence[int], base_url: str, secret: str) -> IssueView:
    """``view`` with each link's URL replaced by its counted redirect (same order as
    ``link_ids``)."""
    if len(link_ids) != len(view.links):
        raise ValueError("one id per link is needed")
    links = tuple(
        replace(link, url=click_url(base_url, secret, view.number, link_id))
        for link, link_id in zip(view.links, link_ids, strict=True)
    )
    return replace(view, links=links)


def is_scanner(method: str, user_agent: str) -> bool:
    """A HEAD request or a user agent of a known scanner, previewer or script."""
    agent = user_agent.lower()
    return method.upper() == "HEAD" or not agent or any(s in agent for s in SCANNER_AGENTS)


def _just_delivered(session: Session, issue: Issue, now: datetime) -> bool:
    """Whether a delivery of ``issue`` was sent within ``SCANNER_WINDOW`` before ``now``
    (a gateway scanning the message as it arrives)."""
    recent = exists().where(
        and_(
            Delivery.run_id == SendRun.id,
            SendRun.issue_id == issue.id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at >= now - SCANNER_WINDOW,
            Delivery.sent_at <= now,
        )
    )
    return bool(session.scalar(select(recent)))


def record_click(
    session: Session,
    issue_number: int,
    link_id: int,
    *,
    method: str,
    user_agent: str,
    now: datetime,
) -> str:
    """Count one hit on a link of a sent or sending issue and return where it goes.

    Raises ``NotFoundError`` when the link is not part of issue ``issue_number``. The counter
    is incremented in the database (``clicks = clicks + 1``), exact under concurrent hits."""
    row = session.execute(
        select(Link.url, Issue)
        .join(Issue, Link.issue_id == Issue.id)
        .where(Issue.number == issue_number, Link.id == link_id)
    ).first()
    if row is None:
        raise NotFoundError("no such link")
    url, issue = row
    bot = is_scanner(method, user_agent) or _just_delivered(session, issue, now)
    column = Link.bot_clicks if bot else Link.clicks
    session.execute(update(Link).where(Link.id == link_id).values({column: column + 1}))
    return str(url)
