"""`hub report complaints|kpi|statement`: the department's reports, straight from the hub's
database as of now, as JSON, CSV (UTF-8 with BOM), HTML or PDF."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path

import asyncpg
import typer

from hub.clock.engine import store_report
from hub.commands._common import console, fail, settings
from hub.commands._views import with_database
from hub.config import Settings
from hub.reports import figures
from hub.reports.models import AnyReport, Period, Statement
from schemas.enums import Language

NAME = "report"
app = typer.Typer(
    help="Reports: complaint statistics, department KPIs, monthly customer statements.", no_args_is_help=True
)


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"
    PDF = "pdf"


MONTH = typer.Option(None, "--month", help="A calendar month in HUB_TIMEZONE, YYYY-MM [default: last month]")
FROM = typer.Option(None, "--from", help="First day (YYYY-MM-DD), with --to, instead of --month")
TO = typer.Option(None, "--to", help="Last day, included")
FORMAT = typer.Option(Format.JSON, "--format", "-f", help="json, csv (UTF-8 with BOM), html or pdf")
OUT = typer.Option(
    None, "--out", "-o", dir_okay=False, help="Write here [default: stdout; pdf: a file named after the report]"
)
LANGUAGE = typer.Option(Language.ZH, "--language", help="zh or en (a statement is always in its customer's language)")


def period(s: Settings, month: str | None, start: str | None, end: str | None) -> Period:
    try:
        if start or end:
            if not (start and end) or month:
                fail("give --from and --to together, or --month")
            return figures.days(date.fromisoformat(start or ""), date.fromisoformat(end or ""), s.zone)
        return figures.month(month, s.zone) if month else figures.previous_month(datetime.now(UTC), s.zone)
    except ValueError as exc:
        fail(str(exc))


def emit(report: AnyReport, fmt: Format, language: Language, out: Path | None, name: str) -> None:
    from hub.reports.render import render  # renderers load fonts and templates: only when a report is asked

    content = render(report, fmt.value, language.value)
    if out is None and fmt is Format.PDF:
        out = Path(f"{name}.pdf")
    if out is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return
    out.write_bytes(content)
    console.print(
        f"{report.kind} report for {report.period.label} ({report.period.timezone}), as of "
        f"{report.as_of:%Y-%m-%d %H:%M %Z}: written to {out}",
        soft_wrap=True,
    )


@app.command(name="complaints")
def complaints_command(
    month: str | None = MONTH,
    start: str | None = FROM,
    end: str | None = TO,
    fmt: Format = FORMAT,
    customer: str | None = typer.Option(None, "--customer"),
    out: Path | None = OUT,
    language: Language = LANGUAGE,
) -> None:
    """Complaint statistics for a period.

    By cause, carrier, customer and department; time to resolve; open backlog by age; repeat
    contacts; complaints per 1,000 shipments; share resolved within due."""
    s = settings()
    p = period(s, month, start, end)
    report = with_database(lambda conn: figures.complaints_report(conn, p, datetime.now(UTC), customer))
    emit(report, fmt, language, out, f"complaints-{p.label}")


@app.command(name="kpi")
def kpi_command(
    month: str | None = MONTH,
    start: str | None = FROM,
    end: str | None = TO,
    fmt: Format = FORMAT,
    customer: str | None = typer.Option(None, "--customer"),
    out: Path | None = OUT,
    language: Language = LANGUAGE,
) -> None:
    """Operating figures (KPIs) per department for a period.

    Tasks created, resolved, within SLA, breaches, handling time; on-time delivery, exceptions
    per 1,000 shipments, stale shipments, first-contact resolution,
    CSAT, notifications sent and failed by channel."""
    s = settings()
    p = period(s, month, start, end)
    report = with_database(lambda conn: figures.kpi_report(conn, p, datetime.now(UTC), customer))
    emit(report, fmt, language, out, f"kpi-{p.label}")


@app.command(name="statement")
def statement_command(
    customer: str = typer.Option(..., "--customer", help="The customer (required)"),
    month: str | None = MONTH,
    start: str | None = FROM,
    end: str | None = TO,
    fmt: Format = FORMAT,
    out: Path | None = OUT,
) -> None:
    """A customer's statement for a period, in its language.

    Rebuilt from the database as of now and stored again (as the monthly statement would be)."""
    s = settings()
    p = period(s, month, start, end)

    async def build(conn: asyncpg.Connection) -> Statement:
        try:
            report = await figures.statement(conn, p, datetime.now(UTC), customer)
        except LookupError as exc:
            fail(f"{exc}; check the id with `hub customers` or import the register")
        async with conn.transaction():
            await store_report(conn, report, p.label, customer, report.as_of)
        return report

    report = with_database(build)
    emit(report, fmt, Language(report.language), out, f"statement-{customer}-{p.label}")
