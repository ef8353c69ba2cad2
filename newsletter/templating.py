"""The one jinja2 environment factory: emails, public pages, the dashboard and the outbox.

Every environment gets the gettext translations of its language (the jinja2 i18n extension,
new-style: ``{% trans %}``, ``_()``, ``ngettext``) and the same filters:

- ``long_date`` / ``full_date``: a CLDR date, ``6 décembre 2026`` / ``dimanche 6 décembre 2026``;
- ``decimal``: a number with one decimal in the language's notation, ``0,3``;
- ``tr``: translate a *value* (a status, a flash message) at render time; the result stays a
  plain string, so autoescaping still applies (``_()`` would mark it safe and %-format it,
  which only fixed msgids may meet). A status word is looked up with the ``status`` context
  first, so ``paused`` can read differently as a status and as a reason;
- ``typography``: the language's spacing around punctuation (French narrow no-break spaces);
- ``paragraphs``: plain text split into paragraphs on blank lines.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import jinja2

from newsletter.i18n import (
    NP_,
    format_date,
    format_decimal,
    translations,
    typography,
)

STATUS = "status"

# Status words the templates show through ``|tr`` (run, slot and subscriber statuses): marked
# here so that extraction finds them, with the ``status`` context (a literal, for Babel).
STATUS_WORDS = (
    NP_("status", "running"),
    NP_("status", "paused"),
    NP_("status", "done"),
    NP_("status", "sent"),
    NP_("status", "delayed"),
    NP_("status", "skipped"),
    NP_("status", "missed"),
    NP_("status", "pending"),
    NP_("status", "active"),
    NP_("status", "unsubscribed"),
    NP_("status", "bounced"),
)


def paragraphs(text: str) -> list[str]:
    """Split plain text into paragraphs on blank lines; lines inside one are joined."""
    blocks = text.replace("\r\n", "\n").split("\n\n")
    return [
        " ".join(line.strip() for line in block.split("\n")).strip()
        for block in blocks
        if block.strip()
    ]


Autoescape = bool | Callable[[str | None], bool]


def make_environment(
    folder: Path | None, language: str, *, autoescape: Autoescape, strict: bool, **options: Any
) -> jinja2.Environment:
    """A jinja2 environment loading templates from ``folder`` (``None``: ``from_string`` only),
    translated into ``language``, with the shared filters. ``strict`` makes an undefined
    variable an error; ``options`` go to ``jinja2.Environment`` (e.g. ``trim_blocks``)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder) if folder is not None else None,
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
        extensions=["jinja2.ext.i18n"],
        **options,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["language"] = language
    env.filters.update(filters(language))
    return env


def filters(language: str) -> dict[str, Callable[..., Any]]:
    """The filters every environment has, for ``language``."""

    def long_date(value: date) -> str:
        return format_date(value, language)

    def full_date(value: date) -> str:
        return format_date(value, language, weekday=True)

    def decimal(value: float, digits: int = 1) -> str:
        return format_decimal(value, language, digits=digits)

    return {
        "long_date": long_date,
        "full_date": full_date,
        "decimal": decimal,
        "tr": translator(language),
        "typography": lambda text: typography(str(text), language),
        "paragraphs": paragraphs,
    }


def translator(language: str) -> Callable[[object], str]:
    """Translate a value at render time: a status word (``status`` context) or a message."""
    catalogue = translations(language)

    def tr(value: object) -> str:
        text = str(value)
        as_status = catalogue.pgettext(STATUS, text)
        return as_status if as_status != text else catalogue.gettext(text)

    return tr
