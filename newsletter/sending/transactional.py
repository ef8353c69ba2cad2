"""Mail sent one message at a time through the same renderer, message builder and SMTP
settings as the digest: tests of an issue (``send_rendered``) and the opt-in emails
(confirmation, welcome; ``TransactionalMailer`` implements ``subscribers.optin.Mailer``)."""

from __future__ import annotations

import re
from datetime import datetime

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.i18n import gettext
from newsletter.sending.message import MessageTemplate, Recipient
from newsletter.sending.render import RenderedEmail, render_email
from newsletter.sending.smtp import send_single
from subscribers.optin import ConfirmationMail, SentIssue, WelcomeMail

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)


def issue_body(html: str) -> str:
    """The inside of a stored issue's ``<body>`` (the whole text when it has none), to embed
    in another email. Its placeholders stay, and are personalised with the rest."""
    found = _BODY.search(html)
    return found.group(1) if found else html


def build_message(
    config: Config,
    rendered: RenderedEmail,
    recipient: Recipient,
    now: datetime,
    *,
    test: bool = False,
    list_mail: bool = True,
) -> bytes:
    """The MIME bytes of ``rendered`` for ``recipient``, as ``send_rendered`` sends them.
    Raises ``HeaderInjectionError``/``InvalidInputError`` for a bad header value."""
    template = MessageTemplate.prepare(config, rendered, test=test, list_mail=list_mail)
    return template.for_recipient(recipient, now)


async def send_rendered(
    config: Config,
    rendered: RenderedEmail,
    recipient: Recipient,
    now: datetime,
    *,
    test: bool = False,
    list_mail: bool = True,
) -> None:
    """Send ``rendered`` to one ``recipient`` on its own SMTP connection; ``test`` marks the
    subject as a preview. Raises ``TemporaryFailure``/``PermanentFailure`` (``DeliveryError``)
    when the relay refuses it or cannot be reached."""
    data = build_message(config, rendered, recipient, now, test=test, list_mail=list_mail)
    sender = str(config.get("list", "from_address"))
    await send_single(config, sender, [recipient.email], data)


def render_confirmation(config: Config, mail: ConfirmationMail) -> RenderedEmail:
    _ = gettext(mail.language)
    name = str(config.get("list", "name"))
    return render_email(
        config,
        "confirm",
        {
            "subject": _("Confirm your subscription to {name}").format(name=name),
            "confirm_url": mail.confirm_url,
            "expiry_days": int(config.get("subscribers", "confirm_expiry_days")),
            "unsubscribe_url": "",
        },
    )


def render_welcome(config: Config, mail: WelcomeMail) -> RenderedEmail:
    _ = gettext(mail.language)
    name = str(config.get("list", "name"))
    issue: SentIssue | None = mail.latest_issue
    return render_email(
        config,
        "welcome",
        {
            "subject": _("Welcome to {name}").format(name=name),
            "issue_subject": issue.subject if issue else "",
            "issue_html": issue_body(issue.html) if issue else "",
            "issue_text": issue.text.strip() if issue else "",
            "archive_url": f"{config.base_url}/archive/{issue.number}" if issue else "",
        },
    )


class TransactionalMailer:
    """Sends each opt-in email on its own SMTP connection; raises ``DeliveryError``."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def send_confirmation(self, mail: ConfirmationMail) -> None:
        rendered = render_confirmation(self.config, mail)
        # Not list mail: the person has not joined yet, so no List-Unsubscribe.
        recipient = Recipient(mail.email, mail.name, "")
        await send_rendered(self.config, rendered, recipient, utc_now(), list_mail=False)

    async def send_welcome(self, mail: WelcomeMail) -> None:
        rendered = render_welcome(self.config, mail)
        recipient = Recipient(mail.email, mail.name, mail.unsubscribe_url)
        await send_rendered(self.config, rendered, recipient, utc_now())
