"""Translations and locale-aware formatting: gettext catalogues and CLDR data, through Babel.

English msgids, one gettext catalogue per language in
``newsletter/locale/<language>/LC_MESSAGES/messages.po``, extracted with Babel from the Python
code and the jinja2 templates (``make messages``; see docs/CONTRIBUTING.md). The ``.po`` files
are read at start-up (once per language and process), so a checkout and an installed wheel need
no compile step. A msgid missing from a catalogue falls back to the English msgid: an
untranslated string is visible but never breaks a page. Plural rules come from the catalogue's
``Plural-Forms`` header, which Babel writes from CLDR; dates, numbers and lists are formatted
with CLDR data (``babel.dates``, ``babel.numbers``, ``babel.lists``).
"""

from __future__ import annotations

import gettext as _gettext
import re
from collections.abc import Callable, Iterable
from datetime import date
from functools import cache
from io import BytesIO

from babel import Locale
from babel.dates import format_date as _cldr_date
from babel.lists import format_list as _cldr_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal as _cldr_decimal

from newsletter.errors import Gettext as Gettext  # the one definition, re-exported
from newsletter.resources import LOCALE_DIR

DEFAULT_LANGUAGE = "fr"
LANGUAGES = ("fr", "en")

# The CLDR locale each list language is formatted in. English days come before months, as in
# the rest of the product ("Sunday, 29 November 2026").
_LOCALES = {"fr": "fr_FR", "en": "en_GB"}

# The message domain: ``messages.po`` under each language's ``LC_MESSAGES``.
DOMAIN = "messages"

Ngettext = Callable[[str, str, int], str]
Translations = _gettext.NullTranslations


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it here (gettext_noop): for msgids
    kept in constants and translated where they are shown."""
    return message


def NP_(context: str, message: str) -> str:
    """Like ``N_``, for a msgid that carries a ``msgctxt`` (translate it with ``pgettext``)."""
    return message


def catalogue_path(language: str) -> str:
    """Where the ``.po`` catalogue of ``language`` lives (it may not exist, e.g. ``en``)."""
    return str(LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po")


@cache
def translations(language: str) -> Translations:
    """The gettext translations of ``language``, read from its ``.po`` file once per process.

    English, or a language with no catalogue, gives the msgids themselves.
    """
    try:
        return read_translations(catalogue_path(language), language)
    except FileNotFoundError:
        return _gettext.NullTranslations()


def read_translations(path: str, language: str) -> Translations:
    """The translations in the ``.po`` file at ``path``, compiled in memory. Fuzzy entries are
    left out, as ``msgfmt`` would; the plural rule is the file's ``Plural-Forms``.
    Translations get the language's ``typography`` (French narrow no-break spaces), so the
    catalogue itself can be typed with plain spaces. Raises ``FileNotFoundError`` when there
    is no such file."""
    with open(path, "rb") as po:
        catalogue = read_po(po, locale=_LOCALES.get(language, language), domain=DOMAIN)
    for message in catalogue:
        # The catalogue is written with plain spaces; the pages get the language's spacing.
        if isinstance(message.string, str):
            message.string = typography(message.string, language)
        elif message.string:
            message.string = tuple(typography(form, language) for form in message.string)
    compiled = BytesIO()
    write_mo(compiled, catalogue, use_fuzzy=False)
    compiled.seek(0)
    return _gettext.GNUTranslations(compiled)


def gettext(language: str) -> Gettext:
    """A ``_`` function for Python strings in ``language``."""
    return translations(language).gettext


def ngettext(language: str) -> Ngettext:
    """An ``ngettext(singular, plural, n)`` function in ``language`` (its CLDR plural rule)."""
    return translations(language).ngettext


def locale_of(language: str) -> Locale:
    """The CLDR locale ``language`` is formatted in."""
    return Locale.parse(_LOCALES.get(language, language))


def format_date(value: date, language: str, *, weekday: bool = False) -> str:
    """A long date in ``language`` (CLDR): ``6 décembre 2026``, or with ``weekday``
    ``dimanche 6 décembre 2026`` / ``Sunday, 6 December 2026``."""
    return _cldr_date(value, "full" if weekday else "long", locale=locale_of(language))


def format_decimal(value: float, language: str, *, digits: int = 1) -> str:
    """``value`` with exactly ``digits`` decimals in ``language``'s notation: ``0,3`` in
    French, ``0.3`` in English; thousands are grouped (``1 234,5``)."""
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return _cldr_decimal(value, pattern, locale=locale_of(language))


def format_list(items: Iterable[str], language: str) -> str:
    """``a, b et c`` / ``a, b and c``: CLDR's standard list pattern for ``language``."""
    return _cldr_list(list(items), locale=locale_of(language))


# French typography puts a narrow no-break space (U+202F) before ``: ; ! ?`` and ``»`` and
# after ``«``, so the sign never starts a line. A colon that joins two words is not
# punctuation and is left alone: a URL (``https://``), a time of day (``18:00``), a format
# (``HH:MM``), an address and port (``%(host)s:%(port)s``); so is the second sign of ``?!``.
NARROW_NBSP = "\u202f"
_SPACES = "[ \u00a0\u202f]*"
_FRENCH_SPACING = (
    (re.compile(rf"(?<=[^\s!?]){_SPACES}(?=[;!?»])"), NARROW_NBSP),
    (re.compile(rf"(?<=\S){_SPACES}(?=:(?![\w/%]))"), NARROW_NBSP),
    (re.compile(rf"«{_SPACES}(?=\S)"), "«" + NARROW_NBSP),
)


def typography(text: str, language: str) -> str:
    """``text`` with ``language``'s spacing around punctuation: in French, a narrow no-break
    space before ``: ; ! ? »`` and after ``«`` (replacing a plain space, or added where
    missing). Other languages are returned unchanged."""
    if language != "fr":
        return text
    for pattern, replacement in _FRENCH_SPACING:
        text = pattern.sub(replacement, text)
    return text
