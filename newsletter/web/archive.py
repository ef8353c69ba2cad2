"""Public reading pages: the archive of sent issues, each issue as a web page, and the Atom
feed."""

from __future__ import annotations

import re
from datetime import datetime
from xml.etree import ElementTree

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from newsletter.config import Config
from newsletter.db import read_transaction
from newsletter.services.archive import ArchivedIssue, sent_issue, sent_issues
from newsletter.templating import paragraphs
from newsletter.web.pages import render_page

FEED_SIZE = 20
ATOM = "http://www.w3.org/2005/Atom"


async def archive(request: Request) -> Response:
    def load() -> list[ArchivedIssue]:
        with read_transaction(request.app.state.engine) as session:
            return sent_issues(session)

    issues = await run_in_threadpool(load)
    return render_page(request, "archive.html", {"issues": issues})


async def archived_issue(request: Request) -> Response:
    number = int(request.path_params["number"])

    def load() -> ArchivedIssue | None:
        with read_transaction(request.app.state.engine) as session:
            return sent_issue(session, number)

    issue = await run_in_threadpool(load)
    if issue is None:
        return render_page(request, "not_found.html", status_code=404)
    return render_page(
        request, "issue.html", {"issue": issue, "intro_paragraphs": paragraphs(issue.intro)}
    )


# Characters XML 1.0 does not allow at all (ElementTree would write them, and the feed would
# stop being XML): C0 controls but tab and line breaks, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (input is checked before it is
    stored; this keeps the feed valid even for rows stored before those checks)."""
    return _NOT_XML.sub("", text)


def atom_feed(config: Config, issues: list[ArchivedIssue]) -> bytes:
    """An Atom (RFC 4287) feed of ``issues``; ElementTree escapes every value."""
    ElementTree.register_namespace("", ATOM)
    base = config.base_url
    feed = ElementTree.Element(f"{{{ATOM}}}feed")

    def sub(parent: ElementTree.Element, tag: str, text: str = "", **attrs: str) -> None:
        element = ElementTree.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text:
            element.text = xml_text(text)

    sub(feed, "title", str(config.get("list", "name")))
    sub(feed, "id", f"{base}/feed.xml")
    sub(feed, "link", rel="self", href=f"{base}/feed.xml")
    sub(feed, "link", rel="alternate", href=f"{base}/archive")
    updated = issues[0].sent_at if issues else datetime(2000, 1, 1).astimezone()
    sub(feed, "updated", updated.isoformat())
    author = ElementTree.SubElement(feed, f"{{{ATOM}}}author")
    sub(author, "name", str(config.get("list", "name")))
    for issue in issues:
        entry = ElementTree.SubElement(feed, f"{{{ATOM}}}entry")
        sub(entry, "title", issue.subject)
        sub(entry, "id", f"{base}/archive/{issue.number}")
        sub(entry, "link", rel="alternate", href=f"{base}/archive/{issue.number}")
        sub(entry, "updated", issue.sent_at.isoformat())
        summary = " · ".join(link.title for link in issue.links)
        sub(entry, "summary", (issue.intro + "\n\n" + summary).strip())
    body = ElementTree.tostring(feed, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode("utf-8")


async def feed(request: Request) -> Response:
    def load() -> list[ArchivedIssue]:
        with read_transaction(request.app.state.engine) as session:
            return sent_issues(session, limit=FEED_SIZE)

    issues = await run_in_threadpool(load)
    body = atom_feed(request.app.state.config, issues)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


routes: list[BaseRoute] = [
    Route("/archive", archive, methods=["GET"]),
    Route("/archive/{number:id}", archived_issue, methods=["GET"]),
    Route("/feed.xml", feed, methods=["GET"]),
]
