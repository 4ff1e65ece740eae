"""A report as JSON, CSV, HTML or PDF, in Chinese or English.

    render(report, fmt, language)
      json  the model's JSON, as stored and as the JSON Schemas in schemas/json/reports/ describe
      csv   UTF-8 with a BOM (so Excel shows Chinese): the header facts, then one section per table
      html  templates/<kind>.html.j2 (one Jinja2 set, autoescaped: customer names are untrusted text),
            its stylesheet inlined, the statement's chart inline as SVG (charts.py)
      pdf   the same HTML through WeasyPrint, A4, with the packaged Chinese font (fonts.py)

The CSV and the HTML show the same tables, built once here from the model (`document()`), so a
figure cannot differ between them. Counts are integers, percents and hours have one decimal, rates
per 1,000 two, exactly as the model holds them. A statement speaks its customer's language unless
`language` asks otherwise; the other reports speak `language`, Chinese by default. Every report
states its period, the moment its figures are as of, and the time zone both are in.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from pydantic import BaseModel

from hub.reports import charts, fonts
from hub.reports.models import (
    AnyReport,
    ComplaintsReport,
    Count,
    Durations,
    KpiReport,
    Period,
    Share,
    Statement,
)
from schemas.export import COMMITTED_DIR, dump

Language = Literal["zh", "en"]
Format = Literal["json", "csv", "html", "pdf"]
FORMATS: tuple[Format, ...] = get_args(Format)
LANGUAGES: tuple[Language, ...] = get_args(Language)
LABELS_FILE = Path(__file__).with_name("i18n.yaml")
TEMPLATES_DIR = Path(__file__).with_name("templates")
HTML_LANG = {"zh": "zh-CN", "en": "en"}
BOM = "\ufeff"
DASH = "—"  # a figure with nothing to count (a percent of 0 answers)

Kind = Literal["int", "pct", "hours", "rate", "text"]


# --- labels ------------------------------------------------------------------------------------------


@cache
def labels_table() -> dict[str, Any]:
    """i18n.yaml as loaded: {"labels": {key: {zh, en}}, "values": {group: {code: {zh, en}}}}."""
    return dict(yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8")))


@cache
def labels(language: Language) -> dict[str, str]:
    """Every label in `language`; the templates read it as `t` (a missing one fails the render)."""
    return {key: entry[language] for key, entry in labels_table()["labels"].items()}


def value_label(group: str, code: str, language: Language) -> str:
    """A code a figure counts by, in `language`; unknown codes (carrier, customer ids) as they are."""
    if code == "-":
        return labels(language)["not_recorded"]
    entry = labels_table()["values"].get(group, {}).get(code)
    return entry[language] if entry else code


# --- the tables, shared by CSV and HTML ---------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    value: int | float | str | None
    kind: Kind = "text"

    def csv(self) -> str:
        """As the model holds it: integers, one decimal (percent, hours), two (per 1,000); empty for None."""
        if self.value is None:
            return ""
        if self.kind == "int":
            return str(self.value)
        if self.kind in ("pct", "hours"):
            return f"{self.value:.1f}"
        if self.kind == "rate":
            return f"{self.value:.2f}"
        return str(self.value)

    def shown(self) -> str:
        """For a reader: thousands separated, a percent sign, a dash for None."""
        if self.value is None:
            return DASH
        if self.kind == "int":
            return f"{self.value:,}"
        if self.kind == "pct":
            return f"{self.value:,.1f}%"
        if self.kind == "hours":
            return f"{self.value:,.1f}"
        if self.kind == "rate":
            return f"{self.value:,.2f}"
        return str(self.value)

    @property
    def numeric(self) -> bool:
        return self.kind != "text"


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    numeric: tuple[bool, ...] = ()  # per column: right-aligned

    @classmethod
    def of(cls, title: str, columns: Iterable[tuple[str, bool]], rows: Iterable[Iterable[Cell]]) -> Table:
        cols = tuple(columns)
        return cls(title, tuple(c for c, _ in cols), tuple(tuple(r) for r in rows), tuple(n for _, n in cols))


@dataclass(frozen=True)
class Tile:
    """A headline figure: its label, the figure, and a line under it (what a percent is of)."""

    label: str
    figure: Cell
    detail: str = ""


@dataclass(frozen=True)
class Document:
    """What a rendering shows, in one language: the header facts, the headline figures, the tables."""

    kind: str
    language: Language
    title: str
    customer_name: str | None
    customer_id: str | None
    period_label: str
    period_from: str
    period_to: str
    as_of: str
    zone: str
    tiles: tuple[Tile, ...]
    tables: dict[str, Table]
    notes: tuple[str, ...] = ()
    chart: Markup | None = None
    facts: tuple[tuple[str, str], ...] = ()  # label, value: the CSV's header rows

    @property
    def html_lang(self) -> str:
        return HTML_LANG[self.language]

    @property
    def period_text(self) -> str:
        """The period's label and its days (just the days when the label says them already)."""
        days = f"{self.period_from} – {self.period_to}"
        if self.period_label == f"{self.period_from}..{self.period_to}":
            return days
        return f"{self.period_label} ({days})"


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta()
    sign = "-" if offset < timedelta() else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _period_bounds(period: Period, zone: ZoneInfo) -> tuple[str, str]:
    """The first and last day of [start, end) (whole days, as a reader counts them), else the moments."""
    start, end = _local(period.start, zone), _local(period.end, zone)
    if start.time() == end.time() == datetime.min.time():
        return start.date().isoformat(), (end.date() - timedelta(days=1)).isoformat()
    return start.strftime("%Y-%m-%d %H:%M"), end.strftime("%Y-%m-%d %H:%M")


def _share_row(label: str, share: Share) -> tuple[Cell, ...]:
    return (Cell(label), Cell(share.percent, "pct"), Cell(share.numerator, "int"), Cell(share.denominator, "int"))


def _duration_row(label: str, durations: Durations) -> tuple[Cell, ...]:
    return (
        Cell(label),
        Cell(durations.count, "int"),
        Cell(durations.median_hours, "hours"),
        Cell(durations.p90_hours, "hours"),
    )


def _share_tile(label: str, share: Share) -> Tile:
    return Tile(label, Cell(share.percent, "pct"), f"{share.numerator:,} / {share.denominator:,}")


class _Tables:
    """Builders of the common tables, in one language."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self.t = labels(language)

    def figures(self, rows: Iterable[tuple[str, int | float | None, Kind]]) -> Table:
        t = self.t
        return Table.of(
            t["summary"],
            [(t["figure"], False), (t["value"], True)],
            [(Cell(t[key]), Cell(value, kind)) for key, value, kind in rows],
        )

    def shares(self, rows: Iterable[tuple[str, Share]]) -> Table:
        t = self.t
        columns = [(t["figure"], False), (t["percent"], True), (t["numerator"], True), (t["denominator"], True)]
        return Table.of(t["rates"], columns, [_share_row(t[key], share) for key, share in rows])

    def durations(self, rows: Iterable[tuple[str, Durations]]) -> Table:
        t = self.t
        columns = [(t["figure"], False), (t["items"], True), (t["median_hours"], True), (t["p90_hours"], True)]
        return Table.of(t["durations"], columns, [_duration_row(t[key], d) for key, d in rows])

    def counts(self, title: str, column: str, counts: list[Count], group: str = "") -> Table:
        t = self.t
        return Table.of(
            t[title],
            [(t[column], False), (t["count"], True)],
            [(Cell(value_label(group, c.key, self.language)), Cell(c.count, "int")) for c in counts],
        )


def _statement(r: Statement, language: Language) -> tuple[str, tuple[Tile, ...], dict[str, Table], tuple[str, ...]]:
    b = _Tables(language)
    t = b.t
    tables = {
        "summary": b.figures(
            [
                ("shipments", r.shipments, "int"),
                ("delivered", r.delivered, "int"),
                ("claims", r.claims, "int"),
                ("complaints", r.complaints, "int"),
                ("complaints_resolved", r.complaints_resolved, "int"),
            ]
        ),
        "rates": b.shares([("on_time", r.on_time), ("csat", r.csat)]),
        "durations": b.durations([("complaint_resolution", r.complaint_resolution)]),
        "exceptions_by_kind": b.counts("exceptions_by_kind", "exception_kind", r.exceptions_by_kind, "exception"),
        "shipments_per_day": Table.of(
            t["shipments_per_day"],
            [(t["day"], False), (t["shipments"], True)],
            [(Cell(d.day.isoformat()), Cell(d.shipments, "int")) for d in r.shipments_per_day],
        ),
    }
    tiles = (
        Tile(t["shipments"], Cell(r.shipments, "int")),
        Tile(t["delivered"], Cell(r.delivered, "int")),
        _share_tile(t["on_time"], r.on_time),
        Tile(t["complaints"], Cell(r.complaints, "int"), f"{t['complaints_resolved']} {r.complaints_resolved:,}"),
        _share_tile(t["csat"], r.csat),
    )
    notes = (t["note_on_time"], t["note_csat"], t["note_complaints"])
    return t["report_statement"], tiles, tables, notes


def _complaints(
    r: ComplaintsReport, language: Language
) -> tuple[str, tuple[Tile, ...], dict[str, Table], tuple[str, ...]]:
    b = _Tables(language)
    t = b.t
    backlog = r.open_backlog
    tables = {
        "summary": b.figures(
            [
                ("complaints", r.complaints, "int"),
                ("repeat_contacts", r.repeat_contacts, "int"),
                ("shipments", r.shipments, "int"),
                ("per_1000_shipments", r.per_1000_shipments, "rate"),
            ]
        ),
        "rates": b.shares([("resolved_within_due", r.resolved_within_due)]),
        "durations": b.durations([("time_to_resolve", r.time_to_resolve)]),
        "by_cause": b.counts("by_cause", "cause", r.by_cause, "cause"),
        "by_department": b.counts("by_department", "department", r.by_department, "department"),
        "by_carrier": b.counts("by_carrier", "carrier", r.by_carrier),
        "by_customer": b.counts("by_customer", "customer_id", r.by_customer),
        "open_backlog": Table.of(
            t["open_backlog"],
            [(t["age"], False), (t["count"], True)],
            [
                (Cell(t[key]), Cell(getattr(backlog, key), "int"))
                for key in ("under_1_day", "days_1_to_3", "days_3_to_7", "over_7_days")
            ],
        ),
    }
    tiles = (
        Tile(t["complaints"], Cell(r.complaints, "int")),
        Tile(t["per_1000_shipments"], Cell(r.per_1000_shipments, "rate"), f"{t['shipments']} {r.shipments:,}"),
        _share_tile(t["resolved_within_due"], r.resolved_within_due),
        Tile(
            f"{t['time_to_resolve']} · {t['median_hours']}",
            Cell(r.time_to_resolve.median_hours, "hours"),
            f"{t['p90_hours']} {Cell(r.time_to_resolve.p90_hours, 'hours').shown()}",
        ),
    )
    notes = (t["note_complaints"], t["note_resolved_within_due"])
    return t["report_complaints"], tiles, tables, notes


def _kpi(r: KpiReport, language: Language) -> tuple[str, tuple[Tile, ...], dict[str, Table], tuple[str, ...]]:
    b = _Tables(language)
    t = b.t
    # A department's within-SLA share is of the tasks it resolved, and its handling time is over the
    # same tasks, so `resolved` stands for both denominators.
    departments = Table.of(
        t["departments"],
        [
            (t["department"], False),
            (t["created"], True),
            (t["resolved"], True),
            (t["within_sla_count"], True),
            (t["within_sla"], True),
            (t["breaches_level_1"], True),
            (t["breaches_level_2"], True),
            (t["handling_median"], True),
            (t["handling_p90"], True),
        ],
        [
            (
                Cell(value_label("department", d.department, language)),
                Cell(d.created, "int"),
                Cell(d.resolved, "int"),
                Cell(d.within_sla.numerator, "int"),
                Cell(d.within_sla.percent, "pct"),
                Cell(d.breaches_level_1, "int"),
                Cell(d.breaches_level_2, "int"),
                Cell(d.handling_time.median_hours, "hours"),
                Cell(d.handling_time.p90_hours, "hours"),
            )
            for d in r.departments
        ],
    )
    tables = {
        "summary": b.figures(
            [
                ("shipments", r.shipments, "int"),
                ("exceptions", r.exceptions, "int"),
                ("exceptions_per_1000", r.exceptions_per_1000_shipments, "rate"),
                ("stale_shipments", r.stale_shipments, "int"),
            ]
        ),
        "rates": b.shares(
            [
                ("on_time_delivery", r.on_time_delivery),
                ("first_contact_resolution", r.first_contact_resolution),
                ("csat", r.csat),
            ]
        ),
        "departments": departments,
        "notifications": Table.of(
            t["notifications"],
            [(t["channel"], False), (t["sent"], True), (t["failed"], True)],
            [
                (Cell(value_label("channel", n.channel, language)), Cell(n.sent, "int"), Cell(n.failed, "int"))
                for n in r.notifications
            ],
        ),
    }
    tiles = (
        _share_tile(t["on_time_delivery"], r.on_time_delivery),
        Tile(
            t["exceptions_per_1000"],
            Cell(r.exceptions_per_1000_shipments, "rate"),
            f"{t['exceptions']} {r.exceptions:,}",
        ),
        _share_tile(t["first_contact_resolution"], r.first_contact_resolution),
        _share_tile(t["csat"], r.csat),
    )
    notes = (t["note_first_contact"], t["note_csat"])
    return t["report_kpi"], tiles, tables, notes


_BUILDERS: dict[str, Callable[[Any, Language], tuple[str, tuple[Tile, ...], dict[str, Table], tuple[str, ...]]]] = {
    "statement": _statement,
    "complaints": _complaints,
    "kpi": _kpi,
}


def document(report: AnyReport, language: Language) -> Document:
    """What every rendering of `report` shows, in `language`."""
    t = labels(language)
    zone = ZoneInfo(report.period.timezone)
    as_of = _local(report.as_of, zone)
    first, last = _period_bounds(report.period, zone)
    title, tiles, tables, notes = _BUILDERS[report.kind](report, language)
    chart = None
    if isinstance(report, Statement):
        svg = charts.shipments_per_day(report.shipments_per_day, title=t["shipments_per_day"], unit=t["chart_unit"])
        chart = Markup(svg)  # built from numbers and our own labels, every text XML-escaped
    customer_name = report.customer_name if isinstance(report, Statement) else None
    facts = (
        (t["customer"], customer_name or ""),
        (t["customer_id"], report.customer_id or t["all_customers"]),
        (t["period"], report.period.label),
        (t["period_from"], first),
        (t["period_to"], last),
        (t["as_of"], f"{as_of:%Y-%m-%d %H:%M} ({_offset(as_of)})"),
        (t["timezone"], report.period.timezone),
    )
    return Document(
        kind=report.kind,
        language=language,
        title=title,
        customer_name=customer_name,
        customer_id=report.customer_id,
        period_label=report.period.label,
        period_from=first,
        period_to=last,
        as_of=f"{as_of:%Y-%m-%d %H:%M} ({_offset(as_of)})",
        zone=report.period.timezone,
        tiles=tiles,
        tables=tables,
        notes=(t["times_in"].format(zone=report.period.timezone), *notes),
        chart=chart,
        facts=tuple((label, value) for label, value in facts if value),
    )


# --- the formats --------------------------------------------------------------------------------------


def render(report: AnyReport, fmt: Format, language: Language | None = None) -> bytes:
    """`report` as `fmt`, in `language` (a statement: its customer's language unless given; others: zh)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "json":
        return (report.model_dump_json(indent=2) + "\n").encode("utf-8")
    chosen: Language = language or (report.language if isinstance(report, Statement) else "zh")
    if chosen not in LANGUAGES:
        raise ValueError(f"language {chosen!r}: one of {', '.join(LANGUAGES)}")
    doc = document(report, chosen)
    if fmt == "csv":
        return to_csv(doc)
    html = to_html(doc)
    if fmt == "html":
        return html.encode("utf-8")
    return to_pdf(html)


def to_csv(doc: Document) -> bytes:
    """The title, the header facts as label/value rows, then per table: its title, its header, its rows,
    a blank row. Numbers as the model holds them (no separators, no percent signs), so Excel reads
    them as numbers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([doc.title])
    writer.writerows(doc.facts)
    for table in doc.tables.values():
        writer.writerow([])
        writer.writerow([table.title])
        writer.writerow(table.columns)
        writer.writerows([cell.csv() for cell in row] for row in table.rows)
    return (BOM + out.getvalue()).encode("utf-8")


def css_string(text: str) -> Markup:
    """`text` as a quoted CSS string, safe inside <style>: anything but letters, digits, spaces and
    non-ASCII characters is written as a CSS escape (no quote, backslash or < gets through)."""
    escaped = "".join(c if c.isalnum() or c == " " or ord(c) > 127 else f"\\{ord(c):x} " for c in text)
    return Markup(f'"{escaped}"')


def css_page_counter(text: str) -> Markup:
    """A label with {page} and {pages} as the CSS `content` of a page margin box."""
    parts: list[str] = []
    for piece in text.replace("{pages}", "\0pages\0").replace("{page}", "\0page\0").split("\0"):
        if piece in ("page", "pages"):
            parts.append(f"counter({piece})")
        elif piece:
            parts.append(css_string(piece))
    return Markup(" ".join(parts))


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, the stylesheet included: names and ids are untrusted text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["css_string"] = css_string
    env.filters["css_page_counter"] = css_page_counter
    env.globals["font_stack"] = Markup(fonts.STACK)
    return env


def to_html(doc: Document) -> str:
    return environment().get_template(f"{doc.kind}.html.j2").render(doc=doc, t=labels(doc.language))


class PdfUnavailable(RuntimeError):
    """WeasyPrint cannot load Pango/HarfBuzz here (system libraries pip cannot install)."""


@cache
def _pdf_setup() -> tuple[Any, Any, Any]:
    """WeasyPrint (imported here: a second or two, paid only by PDFs), its font configuration with the
    packaged font registered once per process, and a fetcher that loads that font file and nothing
    else: no network, no other file, whatever a report contains."""
    try:
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration
        from weasyprint.urls import URLFetcher
    except OSError as error:  # a missing shared library
        raise PdfUnavailable(f"PDF reports need Pango and HarfBuzz: run `python -m hub.dev.system` ({error})") from None

    font_url = fonts.cjk_font().as_uri()

    class FontOnly(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            if url != font_url:
                raise ValueError(f"reports load no resources: {url[:80]}")
            return super().fetch(url, headers)

    fetcher = FontOnly()
    config = FontConfiguration()
    font_css = CSS(string=fonts.font_face_css(), font_config=config, url_fetcher=fetcher)
    _remove_font_copy_at_exit(config)
    return config, font_css, fetcher


def _remove_font_copy_at_exit(config: Any) -> None:
    """WeasyPrint copies the font (8 MB) into a temporary folder and removes it in the font
    configuration's __del__, which for this process-long configuration runs at interpreter exit,
    after its module is torn down: it failed ("Exception ignored in ... __del__") and left the copy
    in /tmp, once per process that ever made a PDF. A multiprocessing finalizer runs earlier, and
    also in the report processes (`HUB_REPORT_PROCESSES`), which exit without atexit handlers."""
    folder = getattr(config, "_folder", None)  # WeasyPrint's own attribute: absent, nothing to do
    if folder is None:
        return
    config._folder = None  # its __del__ then has nothing left to remove
    Finalize(config, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True}, exitpriority=0)


def to_pdf(html: str) -> bytes:
    from weasyprint import HTML

    config, font_css, fetcher = _pdf_setup()
    pdf: bytes = HTML(string=html, url_fetcher=fetcher).write_pdf(stylesheets=[font_css], font_config=config)
    return pdf


# --- JSON Schemas of the reports ----------------------------------------------------------------------

SCHEMAS_DIR = COMMITTED_DIR / "reports"
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "complaints": (ComplaintsReport, "The complaint statistics report (hub report complaints --format json)."),
    "kpi": (KpiReport, "Operating figures per department (hub report kpi --format json)."),
    "statement": (Statement, "A customer's statement for a period (hub report statement --format json)."),
}


def json_schemas() -> dict[str, str]:
    """File name -> text of the reports' JSON Schemas (what the hub writes: serialization mode)."""
    return {
        f"{name}.schema.json": dump(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": f"reports/{name}.schema.json",
                "description": description,
                **model.model_json_schema(mode="serialization"),
            }
        )
        for name, (model, description) in SCHEMAS.items()
    }


def export_schemas(directory: Path = SCHEMAS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in json_schemas().items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written
