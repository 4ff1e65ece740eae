"""`hub customers ...`: the customer register: import, list, show, export, erase, webhook secrets."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from hub.commands._common import console, err_console, fail
from hub.commands._views import print_json, short_when, when, with_database
from hub.ops.customers import DELIMITERS, create_webhook_secret, import_customers, read_customers
from hub.ops.privacy import erase_customer
from hub.ops.register import RegisterFilter, export_rows, list_customers, show_customer, to_csv
from schemas.enums import CustomerTier, NotificationChannel

NAME = "customers"
app = typer.Typer(help="The customer register.", no_args_is_help=True)
EXPORT_ENCODINGS = ("utf-8", "utf-8-sig", "gb18030")


@app.command(name="import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV with a header row"),
    encoding: str | None = typer.Option(
        None, "--encoding", help="The file's encoding [default: detected: UTF-8 (with or without BOM) or GB18030/GBK]"
    ),
    delimiter: str | None = typer.Option(
        None, "--delimiter", help="The column separator, ',' or ';' [default: detected from the header]"
    ),
) -> None:
    """Upsert customers from CSV (customer_id, name, tier, language, preferred_channel, email, phone; optional:
    webhook_url, timezone, quiet_hours, credit_rating, account_manager).

    All rows or none: a malformed row is reported with its line number and nothing is imported.
    """
    if delimiter is not None and delimiter not in DELIMITERS:
        fail(f"--delimiter {delimiter!r}: use ',' or ';'")
    read = read_customers(file, encoding, delimiter)
    if read.errors:
        for error in read.errors[:50]:
            err_console.print(f"{file}:{error.line}: {error.message}")
        more = " (first 50 shown)" if len(read.errors) > 50 else ""
        fail(f"{len(read.errors)} problem(s){more}; nothing was imported. Fix them and run again.")
    if not read.customers:
        fail(f"{file} has no customer rows")
    counts = with_database(lambda conn: import_customers(conn, read.customers))
    console.print(
        f"imported {len(read.customers)} customers from {file} ({read.encoding}, {read.delimiter!r}-separated): "
        f"{counts.added} added, {counts.updated} updated, {counts.unchanged} unchanged"
    )


@app.command(name="list")
def list_(
    search: str | None = typer.Option(None, "--search", help="A piece of the id, name or e-mail"),
    tier: CustomerTier | None = typer.Option(None, "--tier"),
    channel: NotificationChannel | None = typer.Option(None, "--channel", help="Preferred channel"),
    auto: bool = typer.Option(
        False, "--auto", help="Only customers the hub registered itself (seen in an event, never imported)"
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000),
    json_out: bool = typer.Option(False, "--json", help="The rows as JSON"),
) -> None:
    """The register by id: tier, language, preferred channel, contact data, how each got there."""
    f = RegisterFilter(
        search, tier.value if tier else None, channel.value if channel else None, "auto" if auto else None, limit
    )
    rows = with_database(lambda conn: list_customers(conn, f))
    if json_out:
        print_json([asdict(r) for r in rows])
        return
    if not rows:
        console.print("no customers match" if (search or tier or channel or auto) else "the register is empty")
        return
    table = Table(caption=f"{len(rows)} shown (--limit {limit}); times in UTC", caption_justify="left")
    for column in ("customer", "name", "tier", "lang", "channel", "e-mail", "phone", "by", "updated"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r.customer_id,
            escape(r.name or ("[erased]" if r.erased_at else "-")),
            r.tier,
            r.language,
            r.preferred_channel + (" (disabled)" if r.webhook_disabled_at else ""),
            escape(r.email or "-"),
            escape(r.phone or "-"),
            r.registered_by,
            short_when(r.updated_at),
        )
    console.print(table)


@app.command(name="show")
def show(
    customer_id: str = typer.Argument(..., help="The customer id"),
    json_out: bool = typer.Option(False, "--json", help="The customer and the counts as JSON"),
) -> None:
    """One customer: every column of the register, what the hub holds about them (shipments, open tasks,
    contacts, notices per status), whether a webhook secret is active (never the secret), erasures."""
    found = with_database(lambda conn: show_customer(conn, customer_id))
    if json_out:
        print_json(asdict(found))
        return
    c = found.customer
    disabled = f" (disabled {when(c.webhook_disabled_at)}: 410 Gone)" if c.webhook_disabled_at else ""
    fields = [
        ("customer", c.customer_id),
        ("name", c.name or "-"),
        ("tier", c.tier),
        ("language", c.language),
        ("preferred channel", c.preferred_channel),
        ("e-mail", c.email or "-"),
        ("phone", c.phone or "-"),
        ("webhook", (c.webhook_url or "-") + disabled),
        ("webhook secret", f"{found.active_webhook_secrets} active" if found.active_webhook_secrets else "none"),
        ("time zone", c.timezone or "- (HUB_TIMEZONE)"),
        ("quiet hours", c.quiet_hours or "- (22:00-08:00)"),
        ("credit rating", c.credit_rating or "-"),
        ("account manager", c.account_manager or "-"),
        ("registered by", f"{c.registered_by}, {when(c.created_at)}; updated {when(c.updated_at)}"),
        ("shipments", f"{found.shipments:,}"),
        ("open tasks", f"{found.open_tasks:,}"),
        ("contacts", f"{found.contacts:,}, the last {when(found.last_contact_at)}"),
        ("notifications", ", ".join(f"{n:,} {s}" for s, n in found.notifications.items()) or "none"),
    ]
    if c.erased_at:
        fields.append(("erased", f"{when(c.erased_at)} (personal data removed for a privacy request)"))
    for e in found.erasures:
        fields.append(("erasure", f"{when(e['erased_at'])} by {e['erased_by']}: {sum(e['touched'].values())} rows"))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        console.print(f"{label:<{width}}  {escape(str(value))}", highlight=False, soft_wrap=True)


@app.command(name="export")
def export(
    file: str = typer.Argument(..., help="Where the CSV goes ('-': standard output)"),
    encoding: str = typer.Option(
        "utf-8", "--encoding", help="utf-8, utf-8-sig (with a BOM: Excel opens it right) or gb18030"
    ),
    delimiter: str = typer.Option(",", "--delimiter", help="',' or ';'"),
) -> None:
    """Write the register as CSV, every column `hub customers import` reads (never webhook secrets):
    import it back and nothing changes."""
    if encoding not in EXPORT_ENCODINGS:
        fail(f"--encoding {encoding!r}: use one of {', '.join(EXPORT_ENCODINGS)}")
    if delimiter not in DELIMITERS:
        fail(f"--delimiter {delimiter!r}: use ',' or ';'")
    rows = with_database(export_rows)
    data = to_csv(rows, delimiter).encode(encoding)
    if file == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    Path(file).write_bytes(data)
    console.print(f"exported {len(rows)} customers to {file} ({encoding}, {delimiter!r}-separated)")


@app.command(name="erase")
def erase(
    customer_id: str = typer.Argument(..., help="The customer whose personal data goes"),
    by: str = typer.Option(..., "--by", help="Who asked for it (recorded with the erasure)"),
) -> None:
    """Remove a customer's personal data for a privacy request: name, e-mail, phone, webhook URL; phone numbers,
    notes and free text in their stored events; notification texts; dead letters that name them. The customer
    id and the facts (shipments, tasks, times) stay. Recorded (who, when, rows changed), safe to run twice."""
    erasure = with_database(lambda conn: erase_customer(conn, customer_id, by))
    changed = {k: n for k, n in erasure.touched.items() if n}
    if not changed:
        console.print(f"customer {customer_id}: nothing personal left to erase (recorded as erasure {erasure.id})")
        return
    console.print(
        f"customer {customer_id}: erased for {escape(erasure.erased_by)} at {when(erasure.erased_at)} "
        f"(erasure {erasure.id}): " + ", ".join(f"{n:,} {k}" for k, n in changed.items()),
        highlight=False,
        soft_wrap=True,
    )
    if erasure.task_history_entries:
        console.print(
            f"not touched: {erasure.task_history_entries:,} entries in their tasks' histories (task_events is "
            "append-only; the hub writes no personal data there, but comments people wrote may need a look)",
            soft_wrap=True,
        )
    console.print(
        "remove them from the source of your CSV too: the next `hub customers import` would bring the data back",
        soft_wrap=True,
    )


@app.command(name="webhook-secret")
def webhook_secret(
    customer_id: str = typer.Argument(..., help="The customer whose webhooks to sign"),
    rotate: bool = typer.Option(False, "--rotate", help="Replace the current secret (it keeps signing for 24 h)"),
) -> None:
    """Create the customer's Standard Webhooks secret and print it once: give it to the customer's receiver."""
    secret = with_database(lambda conn: create_webhook_secret(conn, customer_id, rotate))
    console.print(f"webhook secret for {customer_id} (shown once: no hub command prints it again):")
    typer.echo(secret)
    if rotate:
        console.print("the previous secret keeps signing for 24 h, so the receiver can switch without a gap")
