"""HTML pages from ``templates/web/``: one autoescaping jinja2 environment per app, with the
i18n extension in the list's language, and the CSRF token at hand for forms."""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter import templating
from newsletter.config import Config
from newsletter.i18n import Gettext, gettext
from newsletter.resources import WEB_TEMPLATES_DIR
from newsletter.web.security import CSRF_FIELD, FormToken

WEB_TEMPLATES = WEB_TEMPLATES_DIR


def make_environment(config: Config) -> jinja2.Environment:
    """The page environment for ``config``'s language (autoescaped, strict undefined)."""
    env = templating.make_environment(WEB_TEMPLATES, config.language, autoescape=True, strict=True)
    env.globals["list_name"] = str(config.get("list", "name"))
    env.globals["csrf_field"] = CSRF_FIELD
    return env


def environment(request: Request) -> jinja2.Environment:
    """The app's page environment, made on first use."""
    state = request.app.state
    env = getattr(state, "page_environment", None)
    if env is None:
        env = make_environment(state.config)
        state.page_environment = env
    return env


def page_gettext(request: Request) -> Gettext:
    return gettext(request.app.state.config.language)


def render_page(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render ``templates/web/<name>`` with ``context`` plus the request and the CSRF token
    for its forms (made only if the page has one)."""
    values = {"request": request, "csrf_token": FormToken(request), **(context or {})}
    html = environment(request).get_template(name).render(values)
    return HTMLResponse(html, status_code=status_code, headers=headers)
