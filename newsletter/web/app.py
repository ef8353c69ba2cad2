"""Build the Starlette application. An edge: maps ``NewsletterError`` to HTTP statuses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.config import Config


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(config: Config, engine: Engine, **state: Any) -> Starlette:
    """The whole web app for ``config``; ``state`` adds objects to ``app.state`` (e.g. the
    mail catcher) for the route modules that need them."""
    routes: list[BaseRoute] = [Route("/healthz", healthz)]
    app = Starlette(routes=routes)
    app.state.config = config
    app.state.engine = engine
    for name, value in state.items():
        setattr(app.state, name, value)
    return app
