"""The clicks page: each past issue's links ranked by readers' clicks (anonymous counts)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.config import Config
from newsletter.services.clicks import recent_issue_clicks
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import run_db
from newsletter.web.admin.templating import render_admin_page


@editor_required
async def clicks_page(request: Request) -> Response:
    config: Config = request.app.state.config
    issues = await run_db(request, recent_issue_clicks)
    context = {"issues": issues, "enabled": bool(config.get("tracking", "clicks"))}
    return render_admin_page(request, "clicks.html", context)


routes = [Route("/clicks", clicks_page, methods=["GET"])]
