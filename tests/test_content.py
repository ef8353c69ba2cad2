"""The link queue, the draft and issue assembly, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, func, select

from newsletter import content
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import ConflictError, InvalidInputError, NotFoundError
from newsletter.examples import EXAMPLE_LINKS, queue_example_content
from newsletter.models import Issue, IssueStatus, Link
from tests.conftest import ConfigFactory

NOW = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)  # already Sunday 29 in Paris


@pytest.fixture
def cfg(make_config: ConfigFactory, db_url: str) -> Config:
    return make_config(db_url)


def add(engine: Engine, title: str, url: str = "https://example.org/a") -> int:
    with transaction(engine) as session:
        return content.queue_link(session, url=url, title=title, source="Slate", now=NOW).id


def titles(engine: Engine) -> list[str]:
    with transaction(engine) as session:
        return [link.title for link in content.queued_links(session)]


def test_queue_keeps_order_and_fields(engine: Engine) -> None:
    """Queued links come back in the order they were added, with their fields and tags."""
    add(engine, "Un")
    with transaction(engine) as session:
        content.queue_link(
            session,
            url=" https://www.numerama.com/x ",
            title=" La Bulgarie et le libre ",
            source="Numerama",
            excerpt="Un extrait.\r\n\r\nDeux.",
            tags=("libre", "europe"),
            now=NOW,
        )
    with transaction(engine) as session:
        links = content.queued_links(session)
        assert [link.title for link in links] == ["Un", "La Bulgarie et le libre"]
        assert links[1].url == "https://www.numerama.com/x"
        assert links[1].excerpt == "Un extrait.\n\nDeux."
        assert links[1].tags == "libre,europe"
        assert links[1].queued_at == NOW


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "ftp://example.org/file"}, "url"),
        ({"url": "https://"}, "url"),
        ({"title": "   "}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"source": "x" * 201}, "source"),
        ({"tags": ("a,b",)}, "tag"),
    ],
)
def test_bad_link_is_refused_and_nothing_stored(
    engine: Engine, kwargs: dict[str, object], where: str
) -> None:
    """A link that is not http(s), has no title or has bad fields is refused, naming the field."""
    values: dict[str, object] = {"url": "https://example.org", "title": "T", "source": "S"}
    values.update(kwargs)
    with pytest.raises(InvalidInputError) as caught, transaction(engine) as session:
        content.queue_link(session, now=NOW, **values)  # type: ignore[arg-type]
    assert caught.value.where == where
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Link)) == 0


def test_move_update_remove(engine: Engine) -> None:
    """Links can be moved (1 = first), edited and removed while queued."""
    a, b, c = add(engine, "A"), add(engine, "B"), add(engine, "C")
    with transaction(engine) as session:
        content.move_link(session, c, 1)
    assert titles(engine) == ["C", "A", "B"]
    with transaction(engine) as session:
        content.move_link(session, c, 99)
        content.update_link(session, a, title="A2", tags=["x"])
    assert titles(engine) == ["A2", "B", "C"]
    with transaction(engine) as session:
        content.remove_link(session, b)
    assert titles(engine) == ["A2", "C"]
    with pytest.raises(NotFoundError), transaction(engine) as session:
        content.remove_link(session, b)


def test_assemble_numbers_issue_and_moves_queue(engine: Engine, cfg: Config) -> None:
    """Assembling takes every queued link into issue N (last + 1), uses the subject template
    and the draft intro, clears the draft and leaves an empty queue."""
    add(engine, "A")
    add(engine, "B")
    with transaction(engine) as session:
        content.set_intro(session, "Bonjour !", NOW)
        issue = content.assemble_issue(session, cfg, NOW)
        assert (issue.number, issue.subject, issue.intro) == (
            1,
            "Les liens de la semaine #1",
            "Bonjour !",
        )
        view = content.issue_view(session, issue, cfg.timezone)
        assert [link.title for link in view.links] == ["A", "B"]
        assert view.date == date(2026, 11, 29)
    assert titles(engine) == []
    add(engine, "C")
    with transaction(engine) as session:
        assert content.get_draft(session).intro == ""
        nxt = content.next_issue_view(session, cfg, NOW)
        assert nxt.number == 2 and [link.title for link in nxt.links] == ["C"]
        with pytest.raises(ConflictError):
            content.remove_link(session, session.scalars(select(Link)).first().id)  # type: ignore[union-attr]


def test_assemble_with_empty_queue_is_refused(engine: Engine, cfg: Config) -> None:
    """An empty week cannot be assembled: InvalidInputError and no issue row."""
    with pytest.raises(InvalidInputError, match="no link"), transaction(engine) as session:
        content.assemble_issue(session, cfg, NOW)
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 0


def test_last_sent_issue_and_draft_subject(engine: Engine, cfg: Config) -> None:
    """The last sent issue is the highest-numbered one with status sent; a draft subject
    replaces the template."""
    add(engine, "A")
    with transaction(engine) as session:
        assert content.last_sent_issue(session) is None
        content.set_subject(session, "Spécial été", NOW)
        issue = content.assemble_issue(session, cfg, NOW)
        assert issue.subject == "Spécial été"
        issue.status = IssueStatus.SENT
    with transaction(engine) as session:
        sent = content.last_sent_issue(session)
        assert sent is not None and sent.number == 1
        assert content.next_issue_number(session) == 2


def test_example_content_is_queued(engine: Engine, cfg: Config) -> None:
    """init's example content queues the example links and an intro for issue 1."""
    assert queue_example_content(engine) == len(EXAMPLE_LINKS)
    with transaction(engine) as session:
        view = content.next_issue_view(session, cfg, NOW)
    assert view.number == 1 and len(view.links) == len(EXAMPLE_LINKS)
    assert view.intro.startswith("Bonjour")
