"""The admin pages' jinja2 environment: autoescaped, translated, one per process."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.i18n import N_, format_date, format_decimal
from newsletter.resources import WEB_TEMPLATES_DIR
from newsletter.templating import make_environment
from newsletter.web.security import csrf_token

TEMPLATES_DIR = WEB_TEMPLATES_DIR


# Messages the page modules pass to templates as values (flash messages, shown through
# ``|tr``): marked here so that extraction finds them.
FLASH_MESSAGES = (
    N_("Link queued."),
    N_("Link saved."),
    N_("Link moved."),
    N_("Link removed."),
    N_("Intro and subject saved."),
    N_("Test sent to your address."),
    N_("Send paused."),
    N_("Send resumed."),
    N_("Schedule paused."),
    N_("Schedule resumed."),
    N_("This week's issue is delayed."),
    N_("The next issue will be skipped."),
    N_("Import done."),
    N_("Confirmation sent: the person is subscribed once they confirm."),
    N_("Already subscribed, or a confirmation was sent recently."),
    N_("Wrong email or password."),
    N_("Too many attempts; try again in a few minutes."),
    N_("Your session expired; please try again."),
)


# Values the templates show through ``|tr``: send run kinds and import formats.
VALUE_WORDS = (N_("digest"), N_("notice"), N_("auto"), N_("plain"))


@lru_cache(maxsize=4)
def environment(language: str) -> Environment:
    """The admin environment for ``language``: autoescaped, translated, shared filters."""
    return make_environment(
        TEMPLATES_DIR,
        language,
        autoescape=select_autoescape(default=True, default_for_string=True),
        strict=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_admin_page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render ``templates/web/admin/NAME`` with the request's editor, CSRF token and config."""
    config = request.app.state.config
    env = environment(config.language)
    zone = config.timezone

    language = config.language

    def local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return value.astimezone(zone).strftime(fmt) if value is not None else ""

    def long_date(value: datetime | None, weekday: bool = True) -> str:
        """``dimanche 6 décembre 2026``: the local date written out."""
        if value is None:
            return ""
        return format_date(value.astimezone(zone).date(), language, weekday=weekday)

    def long_datetime(value: datetime | None) -> str:
        """``dimanche 6 décembre 2026, 08:00``: the local date written out, and the time."""
        return f"{long_date(value)}, {local(value, '%H:%M')}" if value is not None else ""

    def decimal(value: float, digits: int = 1) -> str:
        """``0,3`` in French, ``0.3`` in English."""
        return format_decimal(value, language, digits=digits)

    full = {
        "request": request,
        "list_name": config.get("list", "name"),
        "editor": getattr(request.state, "editor_email", None),
        "csrf_token": csrf_token(request),
        "language": config.get("list", "language"),
        "catcher": config.catcher_enabled,
        "local": local,
        "long_date": long_date,
        "long_datetime": long_datetime,
        "decimal": decimal,
        "form": {},
        "form_name": "",
        "postal_address_missing": not str(config.get("list", "postal_address")).strip(),
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
