"""The language the command line speaks, decided when a message is shown (not at import)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from babel.core import default_locale

from newsletter.i18n import LANGUAGES, gettext


def cli_language() -> str:
    """The language the command line speaks: the user's locale (``LANGUAGE``, ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``), as for any gettext program; English for a language the product
    does not speak. (The list's language is for subscribers and its pages.)"""
    found = default_locale("LC_MESSAGES") or "en"
    language = found.split("_")[0]
    return language if language in LANGUAGES else "en"


def cli_gettext() -> Callable[[str], str]:
    """The command line's ``gettext``, for rendering an error's key."""
    return gettext(cli_language())


def _(msgid: str, /, **values: Any) -> str:
    """``msgid`` in the command line's language, filled with ``values`` (``%(name)s``)."""
    text = cli_gettext()(msgid)
    return text % values if values else text
