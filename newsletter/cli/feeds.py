"""``newsletter feeds add|list|remove|poll``: the feeds whose new items are queued as links."""

from __future__ import annotations

import click

from newsletter.cli.base import AppContext, WholeNumber, _, cli_gettext, main, pass_app
from newsletter.clock import utc_now
from newsletter.db import transaction
from newsletter.intake.fetcher import FetchPolicy
from newsletter.services import feeds as feed_service


@main.group()
def feeds() -> None:
    """Feeds (RSS, Atom, JSON Feed) whose new items are queued for the next issue."""


def _echo_poll(result: feed_service.PollResult) -> None:
    if result.error is not None:
        error = result.error.render(cli_gettext())
        click.echo(
            f"[{result.feed_id}] {result.url}: " + _("error: %(error)s", error=error), err=True
        )
    elif result.not_modified:
        click.echo(f"[{result.feed_id}] {result.url}: " + _("not modified"))
    else:
        click.echo(
            f"[{result.feed_id}] {result.url}: "
            + _("%(count)s link(s) queued", count=result.queued)
        )


@feeds.command("add")
@click.argument("url")
@click.option("--no-poll", is_flag=True, help="Register only; the next scheduled poll reads it.")
@pass_app
def feeds_add(app: AppContext, url: str, no_poll: bool) -> None:
    """Register the feed at URL and read it once (items of the last 7 days are queued)."""
    engine, now = app.engine(), utc_now()
    with transaction(engine) as session:
        feed_id = feed_service.add_feed(session, url, now).id
    click.echo(_("Registered feed %(id)s: %(url)s", id=feed_id, url=url))
    if not no_poll:
        _echo_poll(
            feed_service.poll_feed(engine, FetchPolicy.from_config(app.config), feed_id, now)
        )


@feeds.command("list")
@pass_app
def feeds_list(app: AppContext) -> None:
    """Show the registered feeds, when each was last read and any error."""
    with transaction(app.engine()) as session:
        rows = feed_service.list_feeds(session)
        lines = []
        for feed in rows:
            polled = feed.polled_at.isoformat(timespec="minutes") if feed.polled_at else "never"
            error = feed_service.feed_error(feed)
            state = f"error: {error.reason}" if error else f"{feed.queued_total} queued in all"
            lines.append(f"[{feed.id}] {feed.title or '(untitled)'} — {feed.url}")
            lines.append(f"      last read {polled}; {state}")
    if not lines:
        click.echo(_("No feed registered."))
    for line in lines:
        click.echo(line)


@feeds.command("remove")
@click.argument("feed_id", type=WholeNumber("feed_id"))
@pass_app
def feeds_remove(app: AppContext, feed_id: int) -> None:
    """Forget a feed (the links it queued stay)."""
    with transaction(app.engine()) as session:
        feed_service.remove_feed(session, feed_id)
    click.echo(_("Removed feed %(id)s.", id=feed_id))


@feeds.command("poll")
@pass_app
def feeds_poll(app: AppContext) -> None:
    """Read every feed now and queue the new items."""
    results = feed_service.poll_all_feeds(
        app.engine(), FetchPolicy.from_config(app.config), utc_now()
    )
    if not results:
        click.echo(_("No feed registered."))
    for result in results:
        _echo_poll(result)
