"""``newsletter links add|list|remove`` and ``newsletter issue intro|import|preview``: collect
the week's links and look at the next issue before it goes out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from newsletter import content
from newsletter.cli.base import AppContext, Choice, WholeNumber, _, cli_gettext, main, pass_app
from newsletter.clock import utc_now
from newsletter.db import transaction
from newsletter.errors import InvalidInputError
from newsletter.intake.fetcher import FetchPolicy
from newsletter.issuefile import queue_issue_file, read_issue_file
from newsletter.services import intake, sends

# The preview's unsubscribe link is signed for no real subscriber (id 0).
GMAIL_CLIP_BYTES = 102 * 1024


@main.group()
def links() -> None:
    """The links queued for the next issue."""


@links.command("add")
@click.argument("url")
@click.option("--title", default="", help="Headline; without it, the page's own is fetched.")
@click.option("--source", default="", help="Publication it comes from, e.g. Le Monde.")
@click.option("--excerpt", default="", help="A short excerpt (blank lines separate paragraphs).")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for several.")
@pass_app
def links_add(
    app: AppContext, url: str, title: str, source: str, excerpt: str, tags: tuple[str, ...]
) -> None:
    """Queue URL for the next issue (without --title, its card is read from the page)."""
    # Link intake (issue 13): the use case fetches the page when no title is given.
    added = intake.add_link(
        app.engine(),
        FetchPolicy.from_config(app.config),
        url=url,
        title=title,
        source=source,
        excerpt=excerpt,
        tags=tags,
        now=utc_now(),
    )
    link = added.link
    click.echo(
        _(
            "Queued link %(id)s at position %(position)s: %(title)s",
            id=link.id,
            position=link.position,
            title=link.title,
        )
    )
    if link.source:
        click.echo(_("  source: %(source)s", source=link.source))
    if added.problem is not None:
        reason = added.problem.render(cli_gettext())
        click.echo(_("Warning: the page could not be read (%(reason)s).", reason=reason), err=True)
    if added.duplicate is not None:
        warning = added.duplicate.render(cli_gettext())
        click.echo(_("Warning: %(warning)s", warning=warning), err=True)


@links.command("list")
@pass_app
def links_list(app: AppContext) -> None:
    """Show the queue of the next issue, in order."""
    with transaction(app.engine()) as session:
        queued = content.queued_links(session)
        number = content.next_issue_number(session)
    if not queued:
        click.echo(_("No link queued for issue #%(number)s.", number=number))
        return
    click.echo(_("Issue #%(number)s: %(count)s link(s)", number=number, count=len(queued)))
    for index, link in enumerate(queued, start=1):
        source = f" — {link.source}" if link.source else ""
        click.echo(f"{index:>3}. [{link.id}] {link.title}{source}")
        click.echo(f"       {link.url}")


@links.command("remove")
@click.argument("link_id", type=WholeNumber("link_id"))
@pass_app
def links_remove(app: AppContext, link_id: int) -> None:
    """Remove a queued link by its id (shown in brackets by `links list`)."""
    with transaction(app.engine()) as session:
        content.remove_link(session, link_id)
    click.echo(_("Removed link %(id)s.", id=link_id))


@links.command("move")
@click.argument("link_id", type=WholeNumber("link_id"))
@click.argument("position", type=WholeNumber("position", low=0))
@pass_app
def links_move(app: AppContext, link_id: int, position: int) -> None:
    """Move a queued link to POSITION (1 = first)."""
    with transaction(app.engine()) as session:
        content.move_link(session, link_id, position)
    click.echo(
        _("Moved link %(id)s to position %(position)s.", id=link_id, position=max(position, 1))
    )


@main.group()
def issue() -> None:
    """The next issue: its intro, a Markdown import, a preview."""


@issue.command("intro")
@click.argument("text", required=False)
@click.option(
    "--file", "file", type=click.Path(dir_okay=False, path_type=Path), help="Read it from a file."
)
@pass_app
def issue_intro(app: AppContext, text: str | None, file: Path | None) -> None:
    """Set the next issue's intro to TEXT (or the contents of --file)."""
    if (text is None) == (file is None):
        raise InvalidInputError("give the intro as TEXT or with --file, not both")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                "cannot read the file: %(error)s", str(file), error=str(exc)
            ) from None
    with transaction(app.engine()) as session:
        content.set_intro(session, text or "", utc_now())
    click.echo(_("Intro saved for the next issue."))


@issue.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def issue_import(app: AppContext, path: Path) -> None:
    """Queue every link of a Markdown issue file (see README, "Issue file format")."""
    parsed = read_issue_file(path)
    with transaction(app.engine()) as session:
        ids = queue_issue_file(session, parsed, utc_now())
    click.echo(_("Queued %(count)s link(s) from %(path)s.", count=len(ids), path=str(path)))
    if parsed.subject is not None:
        click.echo(_("Set the subject of the next issue."))
    if parsed.intro is not None:
        click.echo(_("Set the intro of the next issue."))


@issue.command("preview")
@click.option(
    "--format", "fmt", type=Choice(["html", "text", "eml"]), default="text", show_default=True
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout."
)
@click.option("--to", "to", metavar="EMAIL", help="Send the preview to EMAIL (subject marked).")
@pass_app
def issue_preview(app: AppContext, fmt: str, output: Path | None, to: str | None) -> None:
    """Render the next issue (number = last + 1) without assembling or sending it."""
    config, now = app.config, utc_now()
    with transaction(app.engine()) as session:
        view = content.next_issue_view(session, config, now)
    rendered = sends.render_view(config, view)
    if not view.links:
        click.echo(
            _("Note: no link is queued for issue #%(number)s yet.", number=view.number), err=True
        )
    size = len(rendered.html.encode("utf-8"))
    if size >= GMAIL_CLIP_BYTES:
        warning = _(
            "Warning: the HTML is %(size)s KB; Gmail clips messages over 102 KB "
            "(the unsubscribe footer would be hidden). Shorten excerpts or move links.",
            size=size // 1024,
        )
        click.echo(warning, err=True)
    if to is not None:
        asyncio.run(sends.send_test(config, rendered, to, now))
        click.echo(
            _("Sent the preview of issue #%(number)s to %(email)s.", number=view.number, email=to)
        )
        return
    if fmt == "eml":
        payload = sends.preview_message(config, rendered, None, now)
    else:
        part = rendered.html if fmt == "html" else rendered.text
        address = str(config.get("list", "from_address"))
        payload = sends.fill_preview(part, config, address).encode("utf-8")
    if output is None:
        click.echo(payload, nl=False)
    else:
        output.write_bytes(payload)
        click.echo(
            _(
                "Wrote the %(format)s preview of issue #%(number)s to %(path)s.",
                format=fmt,
                number=view.number,
                path=str(output),
            )
        )
