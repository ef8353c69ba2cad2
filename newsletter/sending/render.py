"""Render emails once: jinja2 over ``templates/email/`` and premailer, per issue, not per
recipient (design decision 3).

Personal values (the recipient's unsubscribe link and address) are not known here: the
templates receive the ``*_PLACEHOLDER`` strings below, and ``newsletter.sending.message``
substitutes each recipient's values into the rendered parts before encoding them.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jinja2
from premailer import Premailer

from newsletter.config import Config
from newsletter.content import IssueView
from newsletter.errors import NewsletterError
from newsletter.i18n import N_, format_date, gettext
from newsletter.resources import EMAIL_TEMPLATES_DIR
from newsletter.templating import make_environment, paragraphs

TEMPLATES_DIR = EMAIL_TEMPLATES_DIR

# Made of characters that neither HTML escaping, premailer nor URL handling change.
UNSUBSCRIBE_URL_PLACEHOLDER = "@@UNSUBSCRIBE_URL@@"
RECIPIENT_EMAIL_PLACEHOLDER = "@@RECIPIENT_EMAIL@@"
PLACEHOLDERS = (UNSUBSCRIBE_URL_PLACEHOLDER, RECIPIENT_EMAIL_PLACEHOLDER)


@dataclass(frozen=True)
class RenderedEmail:
    """A rendered message, not yet personalised: placeholders stand for personal values."""

    subject: str
    html: str
    text: str


TEXT_WIDTH = 72
IN_THIS_ISSUE = N_("In this issue: %(titles)s")


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """``text`` wrapped at ``width`` columns for the plain-text part, lines after the first
    starting with ``indent`` (the first with ``first``, ``indent`` by default). Lines break
    only at spaces, never inside a word or at a hyphen, so a URL stays whole (alone on its
    line when it is longer than ``width``)."""
    return textwrap.fill(
        " ".join(text.split()),
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def domain(url: str) -> str:
    """The host a link points to, without ``www.``: ``lemonde.fr``."""
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


@cache
def environment(language: str) -> jinja2.Environment:
    """The email environment for ``language`` (autoescape on for ``.html``)."""
    env = make_environment(
        TEMPLATES_DIR,
        language,
        autoescape=jinja2.select_autoescape(["html"]),
        strict=True,
        keep_trailing_newline=True,
        trim_blocks=True,
    )
    env.filters.update(wrap=wrap, domain=domain)
    return env


def inline_css(html: str) -> str:
    """Inline the ``<style>`` rules as ``style=`` attributes (premailer), keeping the media
    queries in a ``<style>`` block for phones. Never fetches anything from the network."""
    premailer = Premailer(
        html,
        allow_network=False,
        allow_loading_external_files=False,
        disable_link_rewrites=True,
        strip_important=False,
        cssutils_logging_level=logging.CRITICAL,
        disable_validation=True,
    )
    return str(premailer.transform(pretty_print=False))


def _common_context(config: Config) -> dict[str, Any]:
    return {
        "language": config.language,
        "list_name": str(config.get("list", "name")),
        "postal_address": str(config.get("list", "postal_address")),
        "base_url": config.base_url,
        "logo_url": str(config.get("list", "logo_url")),
        "accent_color": str(config.get("list", "accent_color")),
        "subscribe_url": f"{config.base_url}/",
        "archive_index_url": f"{config.base_url}/archive",
        "unsubscribe_url": UNSUBSCRIBE_URL_PLACEHOLDER,
        "recipient_email": RECIPIENT_EMAIL_PLACEHOLDER,
    }


def _render(config: Config, kind: str, context: Mapping[str, Any]) -> tuple[str, str]:
    env = environment(config.language)
    try:
        html = env.get_template(f"{kind}.html").render(context)
        text = env.get_template(f"{kind}.txt").render(context)
    except jinja2.TemplateNotFound as exc:
        raise NewsletterError(
            "no email template %(name)r in %(folder)s", name=exc.name, folder=str(TEMPLATES_DIR)
        ) from None
    return inline_css(html), _normalise_text(text)


def _normalise_text(text: str) -> str:
    # Collapse runs of blank lines left by template blocks; end with exactly one newline.
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip("\n") + "\n"


def digest_context(config: Config, view: IssueView) -> dict[str, Any]:
    language = config.language
    intro = paragraphs(view.intro)
    return {
        **_common_context(config),
        "subject": view.subject,
        "number": view.number,
        "date_text": format_date(view.date, language, weekday=True),
        "intro_paragraphs": intro,
        "preheader": _summary(language, [link.title for link in view.links]),
        "links": view.links,
        "archive_url": f"{config.base_url}/archive/{view.number}",
        "clicks_counted": bool(config.get("tracking", "clicks")),
    }


def _summary(language: str, titles: list[str], shown: int = 3) -> str:
    """The visible line at the top of a digest, which mail apps show as its preview: "In this
    issue: A, B, C…". A plain line, not hidden text (hidden text scores as spam)."""
    listed = ", ".join(titles[:shown]) + ("…" if len(titles) > shown else "")
    return gettext(language)(IN_THIS_ISSUE) % {"titles": listed}


def render_digest(config: Config, view: IssueView) -> RenderedEmail:
    """Render an issue's digest once: HTML with inlined CSS, and its own plain text."""
    html, text = _render(config, "digest", digest_context(config, view))
    return RenderedEmail(subject=view.subject, html=html, text=text)


def render_email(config: Config, kind: str, context: Mapping[str, Any]) -> RenderedEmail:
    """Render ``templates/email/{kind}.html`` and ``{kind}.txt`` (e.g. confirm, welcome,
    notice). ``context`` must hold ``subject``; it may override the common values (list name,
    postal address, ``unsubscribe_url`` — pass ``""`` for mail that has none)."""
    if "subject" not in context:
        raise NewsletterError("render_email(%(kind)r) needs a 'subject' in its context", kind=kind)
    full = {**_common_context(config), **context}
    html, text = _render(config, kind, full)
    return RenderedEmail(subject=str(full["subject"]), html=html, text=text)
