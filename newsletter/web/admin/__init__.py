"""The editor dashboard under ``/admin``: one module per page, all behind ``editor_required``.

``routes`` is what ``newsletter.web.app.create_app`` mounts.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from newsletter import resources
from newsletter.web.admin import (
    clicks_page,
    feeds_page,
    inbound_page,
    intake_page,
    issue,
    preview,
    schedule_page,
    sends,
    session_pages,
    subscribers_page,
)
from newsletter.web.admin.auth import editor_required

STATIC_DIR = resources.STATIC_DIR / "admin"


@editor_required
async def index(request: Request) -> Response:
    return RedirectResponse("/admin/issue", status_code=303)


def admin_routes() -> list[BaseRoute]:
    """Every admin route, relative to ``/admin``."""
    return [
        Route("/", index, methods=["GET"]),
        *session_pages.routes,
        *issue.routes,
        *intake_page.routes,  # link intake: add (URL alone), suggest, share
        *feeds_page.routes,
        *clicks_page.routes,
        *preview.routes,
        *sends.routes,
        *schedule_page.routes,
        *subscribers_page.routes,
        *inbound_page.routes,  # the return path's inbound view
        Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="admin-static"),
    ]


routes: list[BaseRoute] = [Mount("/admin", routes=admin_routes())]
