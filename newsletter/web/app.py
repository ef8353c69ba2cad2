"""Build the Starlette application. An edge: maps ``NewsletterError`` to HTTP statuses."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import read_transaction
from newsletter.resources import STATIC_DIR
from newsletter.services.schedule import schedule_state
from newsletter.web import admin, clicks, hooks, public
from newsletter.web import archive as public_archive
from newsletter.web.admin import outbox
from newsletter.web.admin.intake_page import manifest_routes
from newsletter.web.api import app as editor_api
from newsletter.web.security import (
    BodySizeLimitMiddleware,
    CSRFMiddleware,
    HideTokensFilter,
    SecurityHeadersMiddleware,
)

PUBLIC_STATIC = STATIC_DIR / "public"
# Third-party files kept as published (Simple.css), each with its licence beside it.
VENDOR_STATIC = STATIC_DIR / "vendor"


async def healthz(request: Request) -> Response:
    """Liveness plus the schedule: next slot, what happens there, any pause."""
    state = request.app.state

    def read_schedule() -> dict[str, object]:
        with read_transaction(state.engine) as session:
            return schedule_state(session, state.config, utc_now())

    schedule = await run_in_threadpool(read_schedule)
    scheduler = getattr(state, "scheduler", None)
    schedule["scheduler_running"] = bool(scheduler is not None and scheduler.running)
    return JSONResponse({"status": "ok", "schedule": schedule})


def hide_tokens_in_access_log() -> None:
    """Keep link tokens out of uvicorn's access log (call once uvicorn set up its logging)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideTokensFilter) for f in access.filters):
        access.addFilter(HideTokensFilter())


def create_app(config: Config, engine: Engine, **state: Any) -> Starlette:
    """The whole web app for ``config``; ``state`` adds objects to ``app.state`` (e.g. the
    mail catcher) for the route modules that need them."""
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        *outbox.routes,
        *hooks.routes,  # provider webhooks of the return path (bounces, complaints)
        *admin.routes,
        *editor_api.routes,
        *clicks.routes,  # /r/ISSUE/LINK: counted, signed redirects (link intake)
        *manifest_routes,
        *public_archive.routes,
        *public.routes,
        Mount("/static/vendor", app=StaticFiles(directory=str(VENDOR_STATIC)), name="vendor"),
        Mount("/static", app=StaticFiles(directory=str(PUBLIC_STATIC)), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(
            BodySizeLimitMiddleware,
            prefix_limits={
                "/admin": 1024 * 1024,
                "/api": 1024 * 1024,
                "/hooks": hooks.HOOKS_BODY_LIMIT,
            },
        ),
        # Readers following a counted link get no cookie at all.
        Middleware(CSRFMiddleware, exempt_prefixes=("/r/",)),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.config = config
    app.state.engine = engine
    for name, value in state.items():
        setattr(app.state, name, value)
    return app
