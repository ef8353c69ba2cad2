"""Importing and exporting subscribers: plain lists and the CSV exports of listmonk and
Mailchimp.

Reading a file either yields every row (each with its row number) or fails as a whole with
``InvalidInputError`` (missing, not UTF-8, not CSV, no address column): an unreadable file
imports nothing. A bad row is reported with its number and the others are imported.
Unsubscribed and erased addresses are never re-added silently; they are counted as skipped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter.csvfile import csv_text
from newsletter.errors import InvalidInputError
from subscribers.models import ConsentKind, SubscriberStatus
from subscribers.store import (
    ConsentContext,
    check_name,
    create_subscriber,
    find_subscriber,
    is_suppressed,
    list_subscribers,
    normalise_address,
    record_consent,
    subscriber_dict,
)

FORMATS = ("auto", "plain", "listmonk", "mailchimp")
MAX_IMPORT_BYTES = 50 * 1024 * 1024
# Rows a source marks as not wanting mail: imported as nothing, counted as skipped.
_OPTED_OUT = {"blocklisted", "unsubscribed", "cleaned"}


@dataclass(frozen=True)
class ImportRow:
    number: int  # 1-based line/row number in the file, header included
    email: str
    name: str = ""
    opted_out: bool = False


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_unsubscribed: list[int] = field(default_factory=list)
    skipped_erased: list[int] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        def rows(numbers: Iterable[int]) -> str:
            listed = ", ".join(str(n) for n in numbers)
            return f" (rows {listed})" if listed else ""

        text = [
            f"added: {self.added}",
            f"updated: {self.updated}",
            f"unchanged: {self.unchanged}",
            f"skipped-unsubscribed: {len(self.skipped_unsubscribed)}"
            + rows(self.skipped_unsubscribed),
            f"skipped-erased: {len(self.skipped_erased)}" + rows(self.skipped_erased),
            f"invalid: {len(self.invalid)}",
        ]
        text += [f"  row {number}: {reason}" for number, reason in self.invalid]
        return text


def read_import_file(path: Path, fmt: str = "auto") -> list[ImportRow]:
    """Every row of ``path`` in format ``fmt``. Raises ``InvalidInputError`` naming the file
    when it cannot be read as a whole."""
    if fmt not in FORMATS:
        raise InvalidInputError("unknown format %(format)r", "format", format=fmt)
    return parse_import(read_import_text(path), fmt, where=str(path))


def read_import_text(path: Path) -> str:
    """The text of the import file ``path``. Raises ``InvalidInputError`` naming the file when
    it is missing, too large, not UTF-8 or not text."""
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise InvalidInputError("file is too large (over 50 MB)", where=str(path))
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError("no such file", where=str(path)) from None
    except UnicodeDecodeError:
        raise InvalidInputError("not UTF-8 text; nothing imported", where=str(path)) from None
    except OSError as exc:
        raise InvalidInputError(
            "cannot read it (%(error)s)", where=str(path), error=exc.strerror
        ) from None
    if "\0" in text:
        raise InvalidInputError("not a text file; nothing imported", where=str(path))
    return text


def parse_import(text: str, fmt: str, where: str = "input") -> list[ImportRow]:
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt == "plain":
        return _parse_plain(text)
    return _parse_csv(text, fmt, where)


def detect_format(text: str) -> str:
    first = text.lstrip().split("\n", 1)[0].lower()
    if "email address" in first:
        return "mailchimp"
    if "email" in first and ("," in first or ";" in first):
        return "listmonk"
    return "plain"


def _parse_plain(text: str) -> list[ImportRow]:
    """One address per line, optionally followed by a comma and a name; ``#`` comments."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        email, _, name = stripped.partition(",")
        rows.append(ImportRow(number, email.strip(), name.strip()))
    return rows


# The address column and the name column(s) of each export format.
_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "listmonk": ("email", ("name",)),
    "mailchimp": ("email address", ("first name", "last name")),
}


def _parse_csv(text: str, fmt: str, where: str) -> list[ImportRow]:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = [cell.strip().lower() for cell in next(reader)]
    except (StopIteration, csv.Error):
        raise InvalidInputError("empty or not CSV; nothing imported", where=where) from None
    email_col, name_cols = _COLUMNS[fmt]
    if email_col not in header:
        raise InvalidInputError(
            "no %(column)r column in the header for format %(format)s; nothing imported",
            where,
            column=email_col,
            format=fmt,
        )
    wanted = (email_col, *name_cols, "status")
    at = {name: header.index(name) for name in wanted if name in header}
    rows = []
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue

            def cell(name: str, record: list[str] = record) -> str:
                index = at.get(name)
                return record[index].strip() if index is not None and index < len(record) else ""

            name = " ".join(filter(None, (cell(n) for n in name_cols)))
            opted_out = cell("status").lower() in _OPTED_OUT
            rows.append(ImportRow(reader.line_num, cell(email_col), name, opted_out))
    except csv.Error as exc:
        raise InvalidInputError(
            "line %(line)s: %(error)s; nothing imported",
            where,
            line=reader.line_num,
            error=str(exc),
        ) from None
    return rows


def import_rows(
    session: Session,
    secret: str,
    rows: Sequence[ImportRow],
    *,
    confirmed: bool,
    source: str,
    language: str,
    now: datetime,
) -> ImportReport:
    """Add or update subscribers from ``rows``; ``confirmed`` rows become active (their
    consent was given elsewhere: ``source`` names where) and others pending.

    Raises ``InvalidInputError`` when a confirmed import has no consent source.
    """
    if confirmed and not source.strip():
        raise InvalidInputError(
            "an import of already-consented addresses must name its consent source", "source"
        )
    report = ImportReport()
    context = ConsentContext(source=source, detail="import")
    for row in rows:
        try:
            email = normalise_address(row.email)
            name = check_name(row.name)
        except InvalidInputError as exc:
            report.invalid.append((row.number, f"{row.email!r}: {exc.reason}"))
            continue
        _import_one(session, secret, row, email, name, confirmed, context, language, now, report)
    return report


def _import_one(
    session: Session,
    secret: str,
    row: ImportRow,
    email: str,
    name: str,
    confirmed: bool,
    context: ConsentContext,
    language: str,
    now: datetime,
    report: ImportReport,
) -> None:
    existing = find_subscriber(session, email)
    if existing is None and is_suppressed(session, secret, email):
        report.skipped_erased.append(row.number)
        return
    if row.opted_out or (
        existing is not None
        and existing.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)
    ):
        report.skipped_unsubscribed.append(row.number)
        return
    if existing is not None:
        if name and existing.name != name:
            existing.name = name
            report.updated += 1
        else:
            report.unchanged += 1
        return
    status = SubscriberStatus.ACTIVE if confirmed else SubscriberStatus.PENDING
    subscriber = create_subscriber(
        session,
        email=email,
        name=name,
        status=status,
        source=context.source,
        language=language,
        now=now,
    )
    record_consent(session, secret, subscriber, ConsentKind.IMPORTED, now, context)
    report.added += 1


EXPORT_FIELDS = (
    "email",
    "name",
    "status",
    "source",
    "language",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "bounced_at",
)


def export_subscribers(session: Session, fmt: str, status: str | None = None) -> str:
    """Every subscriber (optionally one status) as CSV or JSON text."""
    records: list[dict[str, Any]] = [subscriber_dict(s) for s in list_subscribers(session, status)]
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    if fmt != "csv":
        raise InvalidInputError("unknown format %(format)r", "format", format=fmt)
    return csv_text(EXPORT_FIELDS, ([record[key] for key in EXPORT_FIELDS] for record in records))
