"""Joins, leaves and bounces per week from the consent log, drawn as a server-side SVG (no
script needed; the page's CSP allows none inline)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.models import ConsentEvent, ConsentKind

JOIN_KINDS = {ConsentKind.CONFIRMED, ConsentKind.RESUBSCRIBED, ConsentKind.IMPORTED}
# The page's stylesheet colours the bars by class, alike in the legend; these are the fallback.
SERIES = (("joins", "#2b8a3e"), ("leaves", "#b35900"), ("bounces", "#c92a2a"))
TOOLTIP = "{week}, {series}: {value}"


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


def _ticks(top: int) -> list[int]:
    """Evenly spaced whole values from 0 to at least ``top`` for the count axis."""
    step = max(1, -(-top // 3))
    return list(range(0, top + step, step))


def chart_svg(
    weeks: list[WeekCounts],
    labels: Mapping[str, str],
    width: int = 560,
    height: int = 240,
) -> str:
    """Grouped bars, one group per week, with a count axis and a week axis. ``labels`` names
    each series, and ``labels["tooltip"]`` formats a bar's tooltip (``{week}``, ``{series}``,
    ``{value}``), all already translated. Pure string building; the only
    text that reaches the markup is escaped."""
    pad_left, pad_bottom, pad_top, pad_right = 36, 30, 12, 8
    top = max([1] + [max(w.joins, w.leaves, w.bounces) for w in weeks])
    ticks = _ticks(top)
    top = max(top, ticks[-1])
    plot_h = height - pad_bottom - pad_top
    base_y = height - pad_bottom
    group_w = (width - pad_left - pad_right) / max(len(weeks), 1)
    bar_w = group_w / (len(SERIES) + 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="chart" aria-hidden="true" focusable="false">',
    ]
    for value in ticks:
        y = base_y - plot_h * value / top
        parts.append(
            f'<line class="grid" x1="{pad_left}" y1="{y:.1f}" x2="{width - pad_right}" '
            f'y2="{y:.1f}"/><text x="{pad_left - 6}" y="{y + 4:.1f}" font-size="12" '
            f'text-anchor="end">{value}</text>'
        )
    parts.append(f'<line x1="{pad_left}" y1="{base_y}" x2="{width - pad_right}" y2="{base_y}"/>')
    for i, week in enumerate(weeks):
        x0 = pad_left + i * group_w + bar_w / 2
        for j, (name, colour) in enumerate(SERIES):
            value = getattr(week, name)
            h = plot_h * value / top
            title = escape(
                str(labels.get("tooltip", TOOLTIP)).format(
                    week=week.week.strftime("%d/%m"),
                    series=str(labels.get(name, name)),
                    value=value,
                )
            )
            parts.append(
                f'<rect class="{name}" x="{x0 + j * bar_w:.1f}" y="{base_y - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{title}</title></rect>"
            )
        if i % 2 == 0 or len(weeks) <= 8:
            label = week.week.strftime("%d/%m")
            x = x0 + bar_w * len(SERIES) / 2
            parts.append(
                f'<text x="{x:.1f}" y="{height - 10}" font-size="12" text-anchor="middle">'
                f"{label}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
