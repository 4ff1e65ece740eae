"""`hub shipment SHIPMENT_ID`: one shipment's file: tracking sheet, history from every stream, tasks, notices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from hub.commands._common import console, settings
from hub.commands._views import lines, print_json, short_when, task_table, when, with_database
from hub.ops.shipments import HistoryEntry, ShipmentFile, TrackingSheet, gist, shipment_file

NOTES_SHOWN = 80  # characters of a contact's free-text notes in the history table


def _eta_text(sheet: TrackingSheet) -> Text:
    if sheet.eta is None:
        return Text("-")
    late = sheet.promised_delivery_at is not None and sheet.eta > sheet.promised_delivery_at
    return Text(when(sheet.eta) + (" (after the promise)" if late else ""), style="bold red" if late else "")


def _customer_text(sheet: TrackingSheet) -> str:
    if not sheet.customer_id:
        return "(not known yet: no shipment event has named the customer)"
    extra = [p for p in (sheet.customer_name, f"{sheet.customer_tier} tier" if sheet.customer_tier else None) if p]
    return sheet.customer_id + (f" ({', '.join(extra)})" if extra else "")


def _sheet_grid(file: ShipmentFile) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    sheet = file.sheet
    if sheet is None:
        grid.add_row("shipment", file.shipment_id)
        grid.add_row(
            "status",
            Text(
                "no tracking sheet yet: contacts mention it, but no shipment or carrier event has arrived",
                style="yellow",
            ),
        )
        return grid
    for label, value in (
        ("shipment", sheet.shipment_id),
        ("status", Text(sheet.status or "-", style="bold")),
        ("promised delivery", when(sheet.promised_delivery_at)),
        ("latest eta", _eta_text(sheet)),
        ("carrier", sheet.carrier_id or "-"),
        ("customer", _customer_text(sheet)),
        ("order", sheet.order_id or "-"),
        ("priority", sheet.priority or "normal"),
        ("last event at", when(sheet.last_event_at)),
        ("sheet updated", when(sheet.updated_at)),
    ):
        grid.add_row(label, value)
    return grid


def _history_table(history: list[HistoryEntry]) -> Table:
    table = Table(title="History (by occurred_at, every stream)", caption="times in UTC", caption_justify="left")
    table.add_column("occurred", no_wrap=True)
    table.add_column("what", no_wrap=True)
    table.add_column("details", overflow="fold", min_width=20)
    for entry in history:
        table.add_row(
            short_when(entry.occurred_at),
            lines(Text(entry.what, style="bold"), entry.stream),
            lines(gist(entry.payload, NOTES_SHOWN) or "-", entry.event_id),
        )
    return table


def _notifications_table(file: ShipmentFile) -> Table:
    table = Table(title="Customer notifications")
    table.add_column("created", no_wrap=True)
    table.add_column("notice", no_wrap=True)
    table.add_column("body", overflow="fold", min_width=20)
    for n in file.notifications:
        table.add_row(
            short_when(n.created_at),
            lines(n.kind, f"{n.status}, {n.channel}, {n.language}"),
            lines(n.body, f"to {n.customer_id}"),
        )
    return table


def render(file: ShipmentFile, now: datetime) -> Group:
    parts: list[Any] = [_sheet_grid(file), ""]
    parts.append(_history_table(file.history) if file.history else Text("no history yet", style="dim"))
    parts.append(task_table(file.tasks, now, title="Tasks") if file.tasks else Text("no tasks", style="dim"))
    parts.append(_notifications_table(file) if file.notifications else Text("no customer notifications", style="dim"))
    return Group(*parts)


def register(app: typer.Typer) -> None:
    @app.command(name="shipment")
    def shipment_command(
        shipment_id: str = typer.Argument(..., help="The waybill number"),
        as_json: bool = typer.Option(False, "--json", help="A JSON object instead of tables"),
    ) -> None:
        """A shipment's file: tracking sheet, full history (shipment, carrier and call streams), tasks, notices."""
        call_logs_topic = settings().topic_call_logs
        file = with_database(lambda conn: shipment_file(conn, shipment_id, call_logs_topic))
        if as_json:
            print_json(file)
        else:
            console.print(render(file, datetime.now(UTC)))
