"""Joins, leaves and bounces per week from the consent log, drawn as a server-side SVG (no
script needed; the page's CSP allows none inline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.models import ConsentEvent, ConsentKind

JOIN_KINDS = {ConsentKind.CONFIRMED, ConsentKind.RESUBSCRIBED, ConsentKind.IMPORTED}
SERIES = (("joins", "#2b8a3e"), ("leaves", "#e67700"), ("bounces", "#c92a2a"))


@dataclass(frozen=True)
class WeekCounts:
    week: date  # the Monday the week starts on (local)
    joins: int
    leaves: int
    bounces: int


def weekly_counts(session: Session, zone: ZoneInfo, now: datetime, weeks: int) -> list[WeekCounts]:
    """Counts per local week for the ``weeks`` weeks up to ``now`` (oldest first)."""
    this_monday = now.astimezone(zone).date() - timedelta(days=now.astimezone(zone).weekday())
    first = this_monday - timedelta(weeks=weeks - 1)
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    buckets = {first + timedelta(weeks=i): [0, 0, 0] for i in range(weeks)}
    rows = session.execute(
        select(ConsentEvent.kind, ConsentEvent.at).where(ConsentEvent.at >= start)
    )
    for kind, at in rows:
        day = at.astimezone(zone).date()
        bucket = buckets.get(day - timedelta(days=day.weekday()))
        if bucket is None:
            continue
        if kind in JOIN_KINDS:
            bucket[0] += 1
        elif kind == ConsentKind.UNSUBSCRIBED:
            bucket[1] += 1
        elif kind == ConsentKind.BOUNCED:
            bucket[2] += 1
    return [WeekCounts(week, *counts) for week, counts in sorted(buckets.items())]


def chart_svg(weeks: list[WeekCounts], width: int = 720, height: int = 220) -> str:
    """Grouped bars, one group per week. Pure string building with numbers and dates only,
    so nothing user-supplied reaches the markup."""
    pad_left, pad_bottom, pad_top = 32, 28, 10
    top = max([1] + [max(w.joins, w.leaves, w.bounces) for w in weeks])
    plot_h = height - pad_bottom - pad_top
    group_w = (width - pad_left) / max(len(weeks), 1)
    bar_w = group_w / (len(SERIES) + 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" class="chart">',
        f'<text x="0" y="{pad_top + 8}" font-size="10">{top}</text>',
        f'<line x1="{pad_left}" y1="{height - pad_bottom}" x2="{width}" '
        f'y2="{height - pad_bottom}" stroke="#999"/>',
    ]
    for i, week in enumerate(weeks):
        x0 = pad_left + i * group_w
        for j, (name, colour) in enumerate(SERIES):
            value = getattr(week, name)
            h = plot_h * value / top
            parts.append(
                f'<rect class="{name}" x="{x0 + j * bar_w:.1f}" y="{height - pad_bottom - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{week.week.isoformat()} {name}: {value}</title></rect>"
            )
        label = week.week.strftime("%d/%m")
        parts.append(f'<text x="{x0:.1f}" y="{height - 10}" font-size="9">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)
