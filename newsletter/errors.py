"""One exception tree for the whole product.

The core raises these; only the edges (``newsletter.cli`` and ``newsletter.web``) translate
them into exit codes or HTTP statuses.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of every error the product raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message


class HeaderInjectionError(InvalidInputError):
    """A value meant for an email header contains a CR or LF."""


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
