"""One exception tree for the whole product.

The core raises these; only the edges (``newsletter.cli`` and ``newsletter.web``) translate
them into exit codes or HTTP statuses, and into the reader's language.

An error carries a *message key* and values, never a finished sentence: the key is the English
msgid with ``%(name)s`` placeholders (``"must be at most %(limit)s characters"``), so it is
extracted into the gettext catalogues like any other string. ``str(error)`` is the English
text, for logs and tests; ``error.render(gettext, label)`` is the text an edge shows, translated,
with the field named the way that edge names it (a CLI flag, a form label).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Gettext = Callable[[str], str]


def _identity(text: str) -> str:
    return text


def _fill(template: str, values: Mapping[str, Any]) -> str:
    if not values:
        return template
    try:
        return template % dict(values)
    except (KeyError, ValueError, TypeError):
        # A translation with a broken placeholder must not hide the error it describes.
        return template


class NewsletterError(Exception):
    """Base of every error the product raises on purpose.

    ``key`` is the English msgid (with ``%(name)s`` placeholders), ``values`` fill it, and
    ``where`` names the field, setting, file or line the problem is in, when known: a neutral
    name (``until``, ``url``, ``[smtp] port``) that each edge turns into its own label.
    """

    exit_code: int = 1

    def __init__(self, key: str, where: str | None = None, **values: Any) -> None:
        self.key = key
        self.where = where
        self.values = values
        super().__init__(self.render())

    @property
    def reason(self) -> str:
        """The English text without the place, e.g. ``must not be empty``."""
        return _fill(self.key, self.values)

    @property
    def message(self) -> str:
        """The English text with the place, e.g. ``title: must not be empty``."""
        return self.render()

    def render(
        self, gettext: Gettext = _identity, label: Callable[[str], str] | None = None
    ) -> str:
        """The text in the language of ``gettext``; ``label`` names ``where`` for the reader
        (``None`` shows it as it is, and a label that returns ``""`` leaves it out)."""
        text = _fill(gettext(self.key), self.values)
        if self.where is None:
            return text
        place = label(self.where) if label else self.where
        if not place:
            return text
        # The separator is translated too: French puts a narrow no-break space before a colon.
        return gettext("%(field)s: %(message)s") % {"field": place, "message": text}

    def __str__(self) -> str:
        return self.render()


class ConfigError(NewsletterError):
    """A setting is missing or invalid; the message names the setting and the file."""

    exit_code = 2


class NotInitialisedError(ConfigError):
    """The command needs ``newsletter init`` to have been run first."""


class InvalidInputError(NewsletterError):
    """Input from a person or a file was rejected; nothing was stored.

    ``where`` names the field, file or line the problem is in, when known.
    """

    exit_code = 2


class HeaderInjectionError(InvalidInputError):
    """A value meant for an email header contains a CR, an LF or another control character."""


class IssueFileError(InvalidInputError):
    """A Markdown issue file could not be read; ``where`` is ``FILE:LINE``."""


class NotFoundError(NewsletterError):
    """The thing asked for does not exist."""

    exit_code = 2


class ConflictError(NewsletterError):
    """The request conflicts with the current state (e.g. a send is already running)."""

    exit_code = 2


class TokenError(NewsletterError):
    """A signed token is forged, truncated, expired or meant for another purpose."""

    exit_code = 2


class DeliveryError(NewsletterError):
    """Sending mail failed in a way the caller must hear about."""


class FetchError(NewsletterError):
    """A page or feed could not be fetched or read (blocked address, timeout, HTTP error, not
    HTML, too many redirects); the key says why, e.g. ``the page answered %(status)s``."""


class MailboxError(NewsletterError):
    """The IMAP bounce mailbox could not be reached or read."""


class NotYetError(NewsletterError):
    """What came back answers a delivery whose sending is not recorded yet: the intake must
    have it handed again later (LMTP 451, exit 75, HTTP 503), when it can be acted on."""
