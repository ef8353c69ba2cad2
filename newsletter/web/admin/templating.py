"""The admin pages' jinja2 environment: autoescaped, translated, one per process."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.i18n import Translations, translations
from newsletter.resources import WEB_TEMPLATES_DIR
from newsletter.web.admin.messages_fr import MESSAGES as ADMIN_FR
from newsletter.web.security import csrf_token

TEMPLATES_DIR = WEB_TEMPLATES_DIR


@lru_cache(maxsize=4)
def environment(language: str) -> Environment:
    """The admin environment for ``language``: the product catalogue plus the admin strings."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    base = translations(language)
    messages: dict[str, Any] = dict(base.messages)
    if base.language == "fr":
        messages.update(ADMIN_FR)
    catalogue = Translations(base.language, messages)
    env.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    # For values (statuses, flash messages): a plain str, so autoescaping still applies.
    # ``_()`` would mark its result safe and %-format it, which only fixed msgids may meet.
    env.filters["tr"] = lambda value: catalogue.gettext(str(value))
    return env


def render_page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render ``templates/web/admin/NAME`` with the request's editor, CSRF token and config."""
    config = request.app.state.config
    env = environment(str(config.get("list", "language")))
    zone = config.timezone

    def local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return value.astimezone(zone).strftime(fmt) if value is not None else ""

    full = {
        "request": request,
        "list_name": config.get("list", "name"),
        "editor": getattr(request.state, "editor_email", None),
        "csrf_token": csrf_token(request),
        "language": config.get("list", "language"),
        "catcher": config.catcher_enabled,
        "local": local,
        **context,
    }
    html = env.get_template(f"admin/{name}").render(full)
    return HTMLResponse(html, status_code=status_code, headers=ADMIN_HEADERS)


# The dashboard loads its own CSS and JS files and frames its own preview, nothing else.
ADMIN_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "manifest-src 'self'; "
    "frame-ancestors 'none'"
)
ADMIN_HEADERS = {
    "content-security-policy": ADMIN_CSP,
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}
