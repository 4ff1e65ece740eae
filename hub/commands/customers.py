"""`hub customers import FILE.csv`: upsert the customer register."""

from __future__ import annotations

from pathlib import Path

import typer

from hub.commands._common import console, err_console, fail
from hub.commands._views import with_database
from hub.ops.customers import DELIMITERS, create_webhook_secret, import_customers, read_customers

NAME = "customers"
app = typer.Typer(help="The customer register.", no_args_is_help=True)


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
