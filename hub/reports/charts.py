"""The statement's chart, shipments per day, as an inline SVG written by hand.

Ten thousand statements a month must build in minutes on two cores, so the chart is a few dozen
lines of string building (well under a millisecond, same input, same bytes) rather than matplotlib
(seconds to import, about a second a chart). Its text is SVG text in the reports' font family, so
the PDF draws it with the packaged Chinese font and pdftotext can read it; every piece of text is
XML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from hub.reports.fonts import STACK
from hub.reports.models import DailyCount

WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 40, 6, 22, 22  # room for the y labels, the unit and the day numbers
BAR = "#2f6690"
GRID = "#dde2e8"
INK = "#5a6472"
MAX_X_LABELS = 31


def ticks(top: int) -> list[int]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to at least `top`, about four of them."""
    if top <= 0:
        return [0, 1]
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(1, int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)))
    return [i * step for i in range(math.ceil(top / step) + 1)]


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 9) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{INK}">{escape(text)}</text>'


def _day_label(day: DailyCount, many: bool) -> str:
    return f"{day.day.month:02d}-{day.day.day:02d}" if many else str(day.day.day)


def shipments_per_day(days: Sequence[DailyCount], *, title: str, unit: str) -> str:
    """A bar per day, a horizontal grid line per y tick, the day of month under each bar (fewer,
    as MM-DD, when the period is longer than a month), `unit` above the y axis; `title` is what a
    screen reader says."""
    scale = ticks(max((d.shipments for d in days), default=0))
    top = scale[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    every = math.ceil(len(days) / MAX_X_LABELS) if len(days) > MAX_X_LABELS else 1
    many = every > 1
    if many:
        every = max(every, math.ceil(len(days) / 10))
    base = TOP + plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label={quoteattr(title)} '
        f"font-family={quoteattr(STACK)}>",
        _text(LEFT - 6, TOP - 10, unit, anchor="end"),
    ]
    for value in scale:
        y = base - plot_h * value / top
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(_text(LEFT - 6, y + 3, f"{value:,}", anchor="end"))
    for i, day in enumerate(days):
        x = LEFT + i * slot
        h = plot_h * day.shipments / top
        if h > 0:
            parts.append(
                f'<rect x="{x + slot * 0.15:.1f}" y="{base - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{BAR}"><title>{day.day.isoformat()}: {day.shipments:,}</title></rect>'
            )
        if i % every == 0:
            parts.append(_text(x + slot / 2, base + 13, _day_label(day, many), size=8))
    parts.append(f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="{INK}"/>')
    parts.append("</svg>")
    return "".join(parts)
