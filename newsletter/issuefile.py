"""Markdown issue files: a whole issue written in one file and queued in one go.

Format (see README, "Issue file format")::

    ---
    subject: Les liens CivicTech de la semaine #24
    date: 2026-11-29
    intro: |
      Bonjour à toutes et à tous…
    ---

    ## [« Civic Tech » : des applis pour doper la démocratie en ville](https://www.lemonde.fr/…)
    source: Le Monde
    tags: ville, participation

    > Un extrait, en citation.
    >
    > Un second paragraphe.

The whole file is checked before anything is stored: an error names ``FILE:LINE`` and nothing
is queued.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from newsletter import content
from newsletter.errors import InvalidInputError, IssueFileError

HEADING = re.compile(r"^##\s+\[(?P<title>.*)\]\((?P<url>[^()\s]*)\)\s*$")
FRONT_MATTER_KEYS = ("subject", "intro", "date")


@dataclass
class Entry:
    """One link of the file and the line its heading is on."""

    line: int
    title: str
    url: str
    source: str = ""
    tags: list[str] = field(default_factory=list)
    excerpt_lines: list[str] = field(default_factory=list)

    @property
    def excerpt(self) -> str:
        return "\n".join(self.excerpt_lines).strip()


@dataclass(frozen=True)
class IssueFile:
    """A parsed issue file: front matter values and its links, in order."""

    path: str
    subject: str | None
    intro: str | None
    date: date | None
    entries: tuple[Entry, ...]


def _error(path: str, line: int, msgid: str, **values: Any) -> IssueFileError:
    return IssueFileError(msgid, f"{path}:{line}", **values)


def _refused(path: str, line: int, exc: InvalidInputError) -> IssueFileError:
    """``exc`` (a refused field) at ``FILE:LINE``: its English text becomes a value, since
    ``where`` is taken by the file and line."""
    if exc.where is None:
        return _error(path, line, "%(error)s", error=exc.reason)
    return _error(path, line, "%(field)s: %(error)s", field=exc.where, error=exc.reason)


def read_issue_file(path: str | Path) -> IssueFile:
    """Read and check an issue file. Raises ``IssueFileError`` naming ``FILE:LINE``."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IssueFileError("cannot read the file: %(error)s", name, error=str(exc)) from None
    return parse_issue_file(text, name)


def parse_issue_file(text: str, name: str) -> IssueFile:
    """Parse the text of an issue file named ``name`` (used in error messages)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    meta, first_body_line = _front_matter(lines, name)
    entries = _entries(lines, first_body_line, name)
    if not entries:
        raise _error(name, len(lines), "no link found: each link starts with `## [Title](url)`")
    return IssueFile(
        path=name,
        subject=meta.get("subject"),
        intro=meta.get("intro"),
        date=meta.get("date"),
        entries=tuple(entries),
    )


def _front_matter(lines: list[str], name: str) -> tuple[dict[str, Any], int]:
    """The front matter values and the index of the first body line."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise _error(name, 1, "front matter opened with `---` is never closed") from None
    try:
        data = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise _error(name, line, "broken front matter: %(problem)s", problem=problem) from None
    if not isinstance(data, dict):
        raise _error(name, 2, "front matter must be `key: value` lines")
    return _check_meta(data, lines, name), end + 1


def _key_line(lines: list[str], key: str) -> int:
    for number, line in enumerate(lines, start=1):
        if line.startswith(f"{key}:"):
            return number
    return 1


def _check_meta(data: dict[Any, Any], lines: list[str], name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in data.items():
        line = _key_line(lines, str(key))
        if key not in FRONT_MATTER_KEYS:
            allowed = ", ".join(FRONT_MATTER_KEYS)
            raise _error(
                name,
                line,
                "unknown front matter key %(field)r (allowed: %(allowed)s)",
                field=key,
                allowed=allowed,
            )
        if key == "date":
            meta[key] = _check_date(value, name, line)
            continue
        value = _literal_scalar(lines[line - 1], key, value)
        if not isinstance(value, str):
            raise _error(name, line, "`%(field)s` must be text", field=key)
        try:
            meta[key] = (
                content.check_text(value, "subject", limit=content.MAX_TITLE, required=True)
                if key == "subject"
                else value.strip()
            )
        except InvalidInputError as exc:
            raise _error(name, line, "`%(field)s` %(error)s", field=key, error=exc.reason) from None
    return meta


def _literal_scalar(raw_line: str, key: str, value: Any) -> Any:
    # In YAML, ` #` starts a comment, so `subject: Les liens #24` would lose its number.
    # A plain one-line value is taken literally, as an editor expects.
    raw = raw_line.split(":", 1)[1].strip() if raw_line.startswith(f"{key}:") else ""
    if raw and raw[0] not in "'\"|>":
        return raw
    return value


def _check_date(value: Any, name: str, line: int) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _error(name, line, "`date` must be YYYY-MM-DD, got %(value)r", value=value) from None


def _entries(lines: list[str], start: int, name: str) -> list[Entry]:
    entries: list[Entry] = []
    for index in range(start, len(lines)):
        number, line = index + 1, lines[index]
        stripped = line.strip()
        if line.startswith("##"):
            entries.append(_heading(line, number, name))
        elif not stripped and (not entries or not entries[-1].excerpt_lines):
            continue
        elif not entries:
            raise _error(
                name, number, "text before the first link; a link starts with `## [Title](url)`"
            )
        else:
            _entry_line(entries[-1], stripped, number, name)
    return entries


def _heading(line: str, number: int, name: str) -> Entry:
    match = HEADING.match(line)
    if match is None:
        raise _error(name, number, "a link heading must look like `## [Title](https://…)`")
    title = match.group("title").strip()
    if not title:
        raise _error(name, number, "missing title in `## [Title](url)`")
    try:
        title = content.check_text(title, "title", limit=content.MAX_TITLE, required=True)
        url = content.check_url(match.group("url"))
    except InvalidInputError as exc:
        raise _refused(name, number, exc) from None
    return Entry(line=number, title=title, url=url)


def _entry_line(entry: Entry, stripped: str, number: int, name: str) -> None:
    if stripped.startswith(">"):
        entry.excerpt_lines.append(stripped[1:].strip())
    elif not stripped:
        entry.excerpt_lines.append("")
    elif entry.excerpt_lines:
        raise _error(name, number, "unexpected text after the excerpt; quote it with `> `")
    elif stripped.lower().startswith("source:"):
        entry.source = _field(stripped, "source", content.MAX_SOURCE, number, name)
    elif stripped.lower().startswith("tags:"):
        raw = stripped.split(":", 1)[1]
        entry.tags = [tag.strip() for tag in raw.split(",") if tag.strip()]
    else:
        raise _error(name, number, "expected `source: …`, `tags: …` or a `> ` excerpt")


def _field(stripped: str, key: str, limit: int, number: int, name: str) -> str:
    try:
        return content.check_text(stripped.split(":", 1)[1], key, limit=limit)
    except InvalidInputError as exc:
        raise _error(name, number, "`%(field)s` %(error)s", field=key, error=exc.reason) from None


def queue_issue_file(session: Session, issue_file: IssueFile, now: datetime) -> list[int]:
    """Queue every link of a checked file and set the draft's intro/subject when given.
    Returns the new link ids. Raises ``IssueFileError`` naming the entry's line if a link is
    refused (the caller's transaction then stores nothing)."""
    ids: list[int] = []
    for entry in issue_file.entries:
        try:
            link = content.queue_link(
                session,
                url=entry.url,
                title=entry.title,
                source=entry.source,
                excerpt=entry.excerpt,
                tags=entry.tags,
                now=now,
            )
        except InvalidInputError as exc:
            raise _refused(issue_file.path, entry.line, exc) from None
        ids.append(link.id)
    if issue_file.intro is not None:
        content.set_intro(session, issue_file.intro, now)
    if issue_file.subject is not None:
        content.set_subject(session, issue_file.subject, now)
    return ids
