"""Markdown issue files: parsed whole, queued in one transaction, errors name FILE:LINE."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from newsletter import content
from newsletter.db import transaction
from newsletter.errors import IssueFileError
from newsletter.issuefile import parse_issue_file, queue_issue_file, read_issue_file
from newsletter.models import Link

NOW = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)

GOOD = """\
---
subject: Les liens CivicTech de la semaine #24
date: 2026-11-29
intro: |
  Bonjour à toutes et à tous,

  trois semaines de liens d’un coup.
---

## [« Civic Tech » : des applis pour doper la démocratie en ville](https://www.lemonde.fr/a)
source: Le Monde
tags: ville, participation

> Des applications pour parler à sa mairie.
>
> Second paragraphe.

## [La Bulgarie impose l’open source dans l’administration](https://www.numerama.com/b)
source: Numerama

> Le code des logiciels publics devient libre.
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "issue-24.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_is_parsed_and_queued(engine: Engine, tmp_path: Path) -> None:
    """Every entry is queued in order with source, tags and excerpt; intro and subject go to
    the draft."""
    parsed = read_issue_file(write(tmp_path, GOOD))
    assert parsed.date == date(2026, 11, 29)
    with transaction(engine) as session:
        ids = queue_issue_file(session, parsed, NOW)
    assert len(ids) == 2
    with transaction(engine) as session:
        links = content.queued_links(session)
        draft = content.get_draft(session)
    assert [link.source for link in links] == ["Le Monde", "Numerama"]
    assert links[0].title.startswith("« Civic Tech »")
    assert links[0].tags == "ville,participation"
    assert links[0].excerpt == "Des applications pour parler à sa mairie.\n\nSecond paragraphe."
    assert draft.subject == "Les liens CivicTech de la semaine #24"
    assert draft.intro.startswith("Bonjour") and "\n\n" in draft.intro


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            GOOD.replace("[La Bulgarie impose l’open source dans l’administration]", "[ ]"),
            18,
            "missing title",
        ),
        (GOOD.replace("https://www.numerama.com/b", "ftp://numerama.com/b"), 18, "http"),
        (GOOD.replace("https://www.lemonde.fr/a", "javascript:alert(1)"), 10, "http"),
        (GOOD.replace("date: 2026-11-29", "date: [2026-11-29"), 4, "broken front matter"),
        (GOOD.replace("date: 2026-11-29", "date: 29/11/2026"), 3, "YYYY-MM-DD"),
        (GOOD.replace("date: 2026-11-29", "author: moi"), 3, "unknown front matter key"),
        (GOOD.replace("---\n\n##", "\n\n##", 1), 1, "never closed"),
        (GOOD.replace("source: Numerama", "Numerama"), 19, "expected `source"),
        (GOOD.replace("## [La Bulgarie", "## La Bulgarie"), 18, "must look like"),
    ],
)
def test_bad_file_names_file_and_line_and_queues_nothing(
    engine: Engine, tmp_path: Path, text: str, line: int, message: str
) -> None:
    """A missing title, a non-http(s) link or broken front matter is an error naming
    FILE:LINE, and nothing is queued."""
    path = write(tmp_path, text)
    with pytest.raises(IssueFileError) as caught, transaction(engine) as session:
        queue_issue_file(session, read_issue_file(path), NOW)
    assert caught.value.where == f"{path}:{line}"
    assert message in str(caught.value)
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Link)) == 0


def test_file_without_front_matter_or_links() -> None:
    """Front matter is optional; a file without any link heading is refused."""
    parsed = parse_issue_file("## [T](https://example.org)\n", "x.md")
    assert parsed.subject is None and parsed.entries[0].url == "https://example.org"
    with pytest.raises(IssueFileError, match="no link found"):
        parse_issue_file("---\nsubject: x\n---\n\n", "empty.md")
    with pytest.raises(IssueFileError, match="text before the first link"):
        parse_issue_file("Hello\n## [T](https://example.org)\n", "x.md")


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    """A missing file is reported with its name."""
    with pytest.raises(IssueFileError, match=r"missing\.md"):
        read_issue_file(tmp_path / "missing.md")
