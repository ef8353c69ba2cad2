"""Double opt-in and unsubscribing: what happens when a person acts on a form or a link.

The functions here decide and record; they never send mail. They return the mail to send as
plain data (``ConfirmationMail``, ``WelcomeMail``) and the edge hands it, after the
transaction committed, to a ``Mailer`` it was given (``newsletter.sending.transactional`` implements
one). This keeps ``subscribers`` below rendering and SMTP in the layer order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.errors import TokenError
from newsletter.models import Issue, IssueStatus
from subscribers.models import ConsentKind, Subscriber, SubscriberStatus
from subscribers.store import (
    ConsentContext,
    Departure,
    activate,
    check_name,
    create_subscriber,
    deactivate_many,
    find_subscriber,
    normalise_address,
    record_consent,
)
from subscribers.tokens import (
    ExpiredTokenError,
    make_confirm_token,
    make_unsubscribe_token,
    read_confirm_claim,
    read_unsubscribe_token,
)

# Far longer than any confirmation link lives: used to read the id from an expired token.
_FOREVER = timedelta(days=365 * 100)


@dataclass(frozen=True)
class SentIssue:
    """The latest sent issue, as stored: rendered parts with placeholders for personal links."""

    number: int
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class ConfirmationMail:
    email: str
    name: str
    language: str
    confirm_url: str
    unsubscribe_url: str


@dataclass(frozen=True)
class WelcomeMail:
    email: str
    name: str
    language: str
    unsubscribe_url: str
    latest_issue: SentIssue | None


class Mailer(Protocol):
    """Sends the opt-in emails; raises ``DeliveryError`` when the relay refuses."""

    async def send_confirmation(self, mail: ConfirmationMail) -> None: ...

    async def send_welcome(self, mail: WelcomeMail) -> None: ...


def confirm_url(config: Config, subscriber_id: int, now: datetime) -> str:
    return f"{config.base_url}/confirm/{make_confirm_token(config.secret_key, subscriber_id, now)}"


def unsubscribe_url(config: Config, subscriber_id: int) -> str:
    return f"{config.base_url}/u/{make_unsubscribe_token(config.secret_key, subscriber_id)}"


def _confirm_max_age(config: Config) -> timedelta:
    return timedelta(days=int(config.get("subscribers", "confirm_expiry_days")))


def _may_send_confirmation(config: Config, subscriber: Subscriber, now: datetime) -> bool:
    last = subscriber.confirmation_sent_at
    interval = timedelta(minutes=int(config.get("subscribers", "confirm_interval_minutes")))
    return last is None or now - last >= interval


def _confirmation_for(config: Config, subscriber: Subscriber, now: datetime) -> ConfirmationMail:
    subscriber.confirmation_sent_at = now
    return ConfirmationMail(
        email=subscriber.email,
        name=subscriber.name,
        language=subscriber.language,
        confirm_url=confirm_url(config, subscriber.id, now),
        unsubscribe_url=unsubscribe_url(config, subscriber.id),
    )


def request_subscription(
    session: Session,
    config: Config,
    *,
    email: str,
    name: str,
    context: ConsentContext,
    now: datetime,
) -> ConfirmationMail | None:
    """Someone asked to subscribe ``email``: record it and say which confirmation to send.

    The caller must answer the same way whatever this returns (no enumeration). Returns None
    when the address is already active or was sent a confirmation less than
    ``[subscribers] confirm_interval_minutes`` ago. Raises ``InvalidInputError`` for a bad
    address or name; nothing is stored then.
    """
    normalised = normalise_address(email)
    cleaned_name = check_name(name)
    subscriber = find_subscriber(session, normalised)
    if subscriber is None:
        subscriber = create_subscriber(
            session,
            email=normalised,
            name=cleaned_name,
            status=SubscriberStatus.PENDING,
            source=context.source,
            language=config.language,
            now=now,
        )
    if subscriber.status == SubscriberStatus.ACTIVE:
        return None
    if not _may_send_confirmation(config, subscriber, now):
        return None
    record_consent(session, config.secret_key, subscriber, ConsentKind.REQUESTED, now, context)
    return _confirmation_for(config, subscriber, now)


def check_confirm_token(session: Session, config: Config, token: str, now: datetime) -> Subscriber:
    """The subscriber a confirmation token names. Raises ``TokenError`` when forged, the
    person is gone, or they unsubscribed after the link was sent (a used link must not
    subscribe again someone who left since), ``ExpiredTokenError`` when too old."""
    subscriber_id, made = read_confirm_claim(
        config.secret_key, token, now, _confirm_max_age(config)
    )
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise TokenError("this link is not valid")
    if _left_since(subscriber, made):
        raise TokenError("this link is not valid")
    return subscriber


def _left_since(subscriber: Subscriber, made: datetime) -> bool:
    """Whether ``subscriber`` unsubscribed after a confirmation link made at ``made`` (to the
    second) and has not asked to subscribe again since (a new request renews their links)."""
    left = subscriber.unsubscribed_at
    if left is None or subscriber.status == SubscriberStatus.ACTIVE or left < made:
        return False
    asked = subscriber.confirmation_sent_at
    return asked is None or left > asked


def confirm_subscription(
    session: Session, config: Config, token: str, *, context: ConsentContext, now: datetime
) -> WelcomeMail | None:
    """Confirm the subscription a token names; the welcome email to send, or None when the
    person was already active. Raises ``TokenError`` / ``ExpiredTokenError``."""
    subscriber = check_confirm_token(session, config, token, now)
    if not activate(session, config.secret_key, subscriber, now, context):
        return None
    return WelcomeMail(
        email=subscriber.email,
        name=subscriber.name,
        language=subscriber.language,
        unsubscribe_url=unsubscribe_url(config, subscriber.id),
        latest_issue=latest_sent_issue(session),
    )


def renew_confirmation(
    session: Session, config: Config, token: str, *, now: datetime
) -> ConfirmationMail | None:
    """A fresh confirmation for the person an expired (but genuine) token names.

    Returns None when they are active already, unsubscribed after the link was sent, or
    were sent one recently; raises ``TokenError`` for a forged token.
    """
    try:
        subscriber_id, made = read_confirm_claim(config.secret_key, token, now, _FOREVER)
    except ExpiredTokenError as exc:  # only with a clock before 1926; be explicit anyway
        subscriber_id, made = exc.subscriber_id, now
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status == SubscriberStatus.ACTIVE:
        return None
    if _left_since(subscriber, made):
        return None
    if not _may_send_confirmation(config, subscriber, now):
        return None
    return _confirmation_for(config, subscriber, now)


def check_unsubscribe_token(session: Session, config: Config, token: str) -> Subscriber | None:
    """The subscriber an unsubscribe token names, or None if they were erased.

    Raises ``TokenError`` for a forged, truncated or other-purpose token.
    """
    subscriber_id = read_unsubscribe_token(config.secret_key, token)
    return session.get(Subscriber, subscriber_id)


def unsubscribe(
    session: Session, config: Config, token: str, *, context: ConsentContext, now: datetime
) -> bool:
    """Unsubscribe at once the person a token names. True when something changed.

    Raises ``TokenError`` for an invalid token. An erased person has nothing left to change.
    """
    outcome = unsubscribe_many(session, config, [Unsubscription(token, now, context)])[0]
    if isinstance(outcome, TokenError):
        raise outcome
    return outcome


@dataclass(frozen=True)
class Unsubscription:
    """One unsubscribe request: the token of its link, when it came and from where."""

    token: str
    at: datetime
    context: ConsentContext


def unsubscribe_many(
    session: Session, config: Config, requests: Sequence[Unsubscription]
) -> list[bool | TokenError]:
    """``unsubscribe`` for many requests in one go (one-click POSTs arrive by the thousand
    after a send): one outcome per request, in order, True when it changed something, or
    the ``TokenError`` of an invalid token (returned, not raised: the others still count)."""
    outcomes: list[bool | TokenError] = []
    departures: list[Departure] = []
    for request in requests:
        try:
            subscriber_id = read_unsubscribe_token(config.secret_key, request.token)
        except TokenError as exc:
            outcomes.append(exc)
            continue
        outcomes.append(False)  # replaced below
        departures.append(Departure(subscriber_id, request.at, request.context))
    changed = iter(deactivate_many(session, config.secret_key, departures))
    return [o if isinstance(o, TokenError) else next(changed) for o in outcomes]


def latest_sent_issue(session: Session) -> SentIssue | None:
    query = (
        select(Issue)
        .where(Issue.status == IssueStatus.SENT.value)
        .order_by(Issue.number.desc())
        .limit(1)
    )
    issue = session.scalars(query).first()
    if issue is None:
        return None
    return SentIssue(number=issue.number, subject=issue.subject, html=issue.html, text=issue.text)
