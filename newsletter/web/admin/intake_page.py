"""Link intake in the dashboard: the add form (a URL alone is enough), its "suggest" step,
the bookmarklet and share-target confirm page, and the Web Share Target manifest.

Pages fetch through ``newsletter.services.intake`` in a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.errors import FetchError, Gettext, NewsletterError
from newsletter.i18n import gettext
from newsletter.intake.fetcher import FetchPolicy
from newsletter.services import intake
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import field, redirect
from newsletter.web.admin.issue import issue_error_page, issue_page_with, link_fields
from newsletter.web.admin.templating import render_admin_page
from newsletter.web.common import error_text

_URL_IN_TEXT = re.compile(r"https?://\S+")
MAX_SHARED = 2000  # characters kept of a shared title or selection


def _policy(request: Request) -> FetchPolicy:
    config: Config = request.app.state.config
    return FetchPolicy.from_config(config)


def _gettext(request: Request) -> Gettext:
    return gettext(request.app.state.config.language)


def _notices(
    request: Request, problem: FetchError | None, duplicate: intake.Duplicate | None
) -> list[str]:
    """The warnings of a suggestion or an added link, in the list's language."""
    _ = _gettext(request)
    notices: list[str] = []
    if problem is not None:
        notices.append(
            _("The page could not be read: %(why)s") % {"why": problem.render(_, lambda _where: "")}
        )
    if duplicate is not None:
        notices.append(duplicate.render(_))
    return notices


def _suggested_form(form: Any, suggestion: intake.Suggestion) -> dict[str, str]:
    """The add form filled with the suggested card; what the editor typed wins."""
    card = suggestion.card
    typed = {name: field(form, name).strip() for name in ("title", "source", "excerpt", "tags")}
    return {
        "url": card.url if suggestion.filled else suggestion.typed_url,
        "title": typed["title"] or (card.title if suggestion.filled else ""),
        "source": typed["source"] or card.source,
        "excerpt": typed["excerpt"] or card.excerpt,
        "tags": typed["tags"],
    }


@editor_required
async def add_link(request: Request) -> Response:
    """Queue the link; without a title, its page fills the card. Warnings (the page could
    not be read, the same page already queued or sent) show on the issue page."""
    form = await request.form()
    fields = link_fields(form)
    engine, policy, now = request.app.state.engine, _policy(request), utc_now()
    try:
        added = await run_in_threadpool(lambda: intake.add_link(engine, policy, **fields, now=now))
    except NewsletterError as exc:
        return await issue_error_page(request, exc, form)
    notices = _notices(request, added.problem, added.duplicate)
    if not notices:
        return redirect("/admin/issue?done=added")
    _ = _gettext(request)
    return await issue_page_with(request, form={}, notices=[_("Link queued."), *notices])


@editor_required
async def suggest_link(request: Request) -> Response:
    """The suggestion step: the add form comes back filled from the page, nothing saved."""
    form = await request.form()
    engine, policy = request.app.state.engine, _policy(request)
    url = field(form, "url")
    try:
        suggestion = await run_in_threadpool(lambda: intake.suggest(engine, policy, url))
    except NewsletterError as exc:
        return await issue_error_page(request, exc, form)
    return await issue_page_with(
        request,
        form=_suggested_form(form, suggestion),
        notices=_notices(request, suggestion.problem, suggestion.duplicate),
    )


def _shared(request: Request) -> dict[str, str]:
    """What the bookmarklet or the share sheet sent: a URL (phones often put it in the
    text), a title, and the selected text."""
    params = request.query_params
    url = params.get("url", "").strip()
    text = params.get("text", "").strip()
    if not url:
        found = _URL_IN_TEXT.search(text)
        if found:
            url = found.group(0)
            text = (text[: found.start()] + text[found.end() :]).strip()
    return {"url": url, "title": params.get("title", "")[:MAX_SHARED], "text": text[:MAX_SHARED]}


@editor_required
async def share_page(request: Request) -> Response:
    """The confirm page the bookmarklet and the share target open (a GET: it stores nothing).

    The page is read to suggest its card; the selected text, when there is one, is the
    excerpt, and the editor confirms with a POST to the add form's action."""
    shared = _shared(request)
    engine, policy = request.app.state.engine, _policy(request)
    notices: list[str] = []
    form = {"url": shared["url"], "title": shared["title"], "source": "", "excerpt": ""}
    if shared["url"]:
        try:
            suggestion = await run_in_threadpool(
                lambda: intake.suggest(engine, policy, shared["url"])
            )
        except NewsletterError as exc:
            notices.append(error_text(request.app.state.config, exc))
        else:
            form = _suggested_form({}, suggestion)
            form["title"] = form["title"] or shared["title"]
            notices = _notices(request, suggestion.problem, suggestion.duplicate)
    if shared["text"]:
        form["excerpt"] = shared["text"]
    return render_admin_page(request, "share.html", {"form": form, "notices": notices})


async def manifest(request: Request) -> Response:
    """The Web Share Target manifest: installed on a phone, the dashboard receives shares.

    Public (browsers fetch manifests without cookies); it holds nothing but names and paths."""
    config: Config = request.app.state.config
    name = str(config.get("list", "name"))
    document = {
        "name": name,
        "short_name": name[:12],
        "start_url": "/admin/issue",
        "scope": "/admin/",
        "display": "standalone",
        "icons": [{"src": "/admin/static/icon.svg", "sizes": "any", "type": "image/svg+xml"}],
        "share_target": {
            "action": "/admin/intake/share",
            "method": "GET",
            "params": {"title": "title", "text": "text", "url": "url"},
        },
    }
    return Response(
        json.dumps(document, ensure_ascii=False),
        media_type="application/manifest+json",
        headers={"cache-control": "no-cache"},
    )


def bookmarklet(base_url: str) -> str:
    """A ``javascript:`` URL that opens the confirm page with the current page's URL, title
    and selection. It runs in the visited page, so the dashboard's CSP does not apply to it,
    and the dashboard itself never runs inline script."""
    target = f"{base_url}/admin/intake/share"
    return (
        "javascript:(function(){var e=encodeURIComponent,s=String(window.getSelection()||'');"
        f"location.href='{target}?url='+e(location.href)+'&title='+e(document.title)"
        "+'&text='+e(s.slice(0,2000));})()"
    )


routes = [
    Route("/issue/links", add_link, methods=["POST"]),
    Route("/issue/links/suggest", suggest_link, methods=["POST"]),
    Route("/intake/share", share_page, methods=["GET"]),
]
# Public: browsers fetch a manifest without cookies, so it cannot sit behind the sign-in.
manifest_routes = [Route("/manifest.webmanifest", manifest, methods=["GET"])]
