"""Translations: English msgids, one catalogue per language in ``newsletter/locale/``.

Templates use the jinja2 i18n extension (``{% trans %}`` and ``_()``); Python code calls
``gettext(language)(msgid)``. A catalogue is a plain Python dict (see ``newsletter/locale/fr.py``):
adding a string means adding one ``"English": "Français"`` entry. A missing entry falls back to
the English msgid, so an untranslated string is visible but never breaks a page.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from datetime import date
from functools import cache
from typing import Any

DEFAULT_LANGUAGE = "fr"
LANGUAGES = ("fr", "en")

Gettext = Callable[[str], str]


class Translations:
    """A gettext-like object for ``jinja2.Environment.install_gettext_translations``."""

    def __init__(self, language: str, messages: Mapping[str, Any]) -> None:
        self.language = language
        self.messages = messages

    def gettext(self, message: str) -> str:
        found = self.messages.get(message)
        return found if isinstance(found, str) else message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        found = self.messages.get(singular)
        if isinstance(found, tuple) and len(found) == 2:
            return str(found[1] if _is_plural(self.language, n) else found[0])
        return plural if _is_plural("en", n) else singular

    # jinja2 also looks for the context-aware variants; we have no contexts.
    def pgettext(self, context: str, message: str) -> str:
        return self.gettext(message)

    def npgettext(self, context: str, singular: str, plural: str, n: int) -> str:
        return self.ngettext(singular, plural, n)


def _is_plural(language: str, n: int) -> bool:
    # French treats 0 and 1 as singular; English only 1.
    return n > 1 if language == "fr" else n != 1


@cache
def translations(language: str) -> Translations:
    """The catalogue for ``language`` (English, the msgids themselves, for ``en``)."""
    if language == "en":
        return Translations("en", {})
    try:
        module = importlib.import_module(f"newsletter.locale.{language}")
    except ImportError:
        return Translations("en", {})
    return Translations(language, module.MESSAGES)


def gettext(language: str) -> Gettext:
    """A ``_`` function for Python strings in ``language``."""
    return translations(language).gettext


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def format_date(value: date, language: str, *, weekday: bool = False) -> str:
    """A long date in ``language``: ``dimanche 29 novembre 2026`` / ``Sunday 29 November 2026``."""
    _ = gettext(language)
    text = f"{value.day} {_(_MONTHS[value.month - 1])} {value.year}"
    if weekday:
        text = f"{_(_WEEKDAYS[value.weekday()])} {text}"
    return text
