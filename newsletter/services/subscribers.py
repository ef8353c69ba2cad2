"""Use cases of the subscriber list: search, add (double opt-in or with consent given
elsewhere), import and export. The CLI, the dashboard and the API call these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.errors import ConflictError, DeliveryError, InvalidInputError
from subscribers import io as subscriber_io
from subscribers import optin, store
from subscribers.models import ConsentKind, Subscriber, SubscriberStatus

PAGE_SIZE = 100
STATUSES = tuple(status.value for status in SubscriberStatus)


@dataclass(frozen=True)
class SubscriberPage:
    """One page of a subscriber search, and the total number of matches."""

    rows: list[Subscriber]
    total: int


@dataclass(frozen=True)
class ImportOptions:
    """How to import: the file format, whether consent was given elsewhere (``confirmed``,
    which needs ``source``), and whether to change nothing (``dry_run``)."""

    fmt: str = "auto"
    confirmed: bool = False
    source: str = ""
    dry_run: bool = False


@dataclass(frozen=True)
class ImportResult:
    """What an import read and did: the rows read and the report's lines."""

    where: str
    rows: int
    dry_run: bool
    report: list[str]


def search_subscribers(
    session: Session, *, query: str, status: str, offset: int, limit: int = PAGE_SIZE
) -> SubscriberPage:
    """Subscribers whose address or name contains ``query`` (case-insensitive), with
    ``status`` when given, newest first; one page of ``limit`` from ``offset``."""
    where = []
    if query:
        pattern = f"%{query.lower()}%"
        where.append(
            or_(Subscriber.email_key.like(pattern), func.lower(Subscriber.name).like(pattern))
        )
    if status:
        where.append(Subscriber.status == status)
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*where)) or 0
    rows = session.scalars(
        select(Subscriber).where(*where).order_by(Subscriber.id.desc()).offset(offset).limit(limit)
    )
    return SubscriberPage(list(rows), int(total))


def request_subscription(
    session: Session,
    config: Config,
    *,
    email: str,
    name: str,
    context: store.ConsentContext,
    now: datetime,
    refuse_known: bool = False,
) -> optin.ConfirmationMail | None:
    """Record a pending subscription (double opt-in) and return the confirmation to send, or
    ``None`` when none is due (already subscribed, or one was sent recently). The answer never
    says which, so no address can be probed. ``refuse_known`` (an editor adding someone) raises
    ``ConflictError`` for an address the list already holds or was erased from."""
    if refuse_known:
        refuse_existing(session, config, email)
    return optin.request_subscription(
        session, config, email=email, name=name, context=context, now=now
    )


async def send_confirmation(mailer: optin.Mailer, mail: optin.ConfirmationMail) -> None:
    """Send the confirmation ``mail``; raises ``DeliveryError`` saying the person was added
    but the email failed."""
    try:
        await mailer.send_confirmation(mail)
    except DeliveryError as exc:
        raise DeliveryError(
            "the subscriber was added but the email failed: %(error)s", error=exc.reason
        ) from None


def add_confirmed(
    session: Session, config: Config, *, email: str, name: str, source: str, now: datetime
) -> Subscriber:
    """Add ``email`` as active, its consent given elsewhere (``source`` says where); no email
    is sent. Raises ``InvalidInputError`` without a source, ``ConflictError`` for a known or
    erased address."""
    if not source.strip():
        raise InvalidInputError("consent given elsewhere needs a source saying where", "source")
    refuse_existing(session, config, email)
    subscriber = store.create_subscriber(
        session,
        email=email,
        name=name,
        status=SubscriberStatus.ACTIVE,
        source=source,
        language=config.language,
        now=now,
    )
    context = store.ConsentContext(source=source, detail="added by an editor")
    store.record_consent(
        session, config.secret_key, subscriber, ConsentKind.CONFIRMED, now, context
    )
    return subscriber


def refuse_existing(session: Session, config: Config, email: str) -> None:
    """Raise ``ConflictError`` when the list holds ``email`` or it was erased."""
    existing = store.find_subscriber(session, email)
    if existing is not None:
        raise ConflictError(
            "%(email)s is already known (status: %(status)s)",
            email=existing.email,
            status=existing.status,
        )
    if store.is_suppressed(session, config.secret_key, email):
        raise ConflictError(
            "%(email)s was erased at its owner's request; only they can subscribe again, "
            "on the form",
            email=email,
        )


def import_subscribers(
    engine: Engine, config: Config, text: str, where: str, options: ImportOptions, now: datetime
) -> ImportResult:
    """Import ``text`` (a plain list, or a listmonk or Mailchimp CSV export; ``where`` names it
    in errors) in one transaction, rolled back for a dry run. Unsubscribed and erased addresses
    are skipped and counted; a bad row is reported by number and the rest imported. Raises
    ``InvalidInputError`` when the text cannot be read at all."""
    if "\0" in text:
        raise InvalidInputError("not a text file; nothing imported", where)
    rows = subscriber_io.parse_import(text, options.fmt, where=where)
    with Session(engine, expire_on_commit=False) as session:
        report = subscriber_io.import_rows(
            session,
            config.secret_key,
            rows,
            confirmed=options.confirmed,
            source=options.source,
            language=config.language,
            now=now,
        )
        # A dry run does all the work, then throws it away in one rollback.
        if options.dry_run:
            session.rollback()
        else:
            session.commit()
    return ImportResult(where=where, rows=len(rows), dry_run=options.dry_run, report=report.lines())


def export_subscribers(session: Session, fmt: str = "csv", status: str | None = None) -> str:
    """Every subscriber (only ``status`` when given) as CSV (formula-safe) or JSON text."""
    if status and status not in STATUSES:
        raise InvalidInputError("unknown status %(status)r", "status", status=status)
    return subscriber_io.export_subscribers(session, fmt, status or None)
