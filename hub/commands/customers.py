"""`hub customers import FILE.csv`: upsert the customer register."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import typer

from hub.commands._common import console, database_url, err_console, fail, run, settings
from hub.customers import import_customers, read_customers

NAME = "customers"
app = typer.Typer(help="The customer register.", no_args_is_help=True)


@app.command(name="import")
def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV with a header row")) -> None:
    """Upsert customers from CSV (columns: customer_id, name, tier, language, preferred_channel, email, phone).

    All rows or none: a malformed row is reported with its line number and nothing is imported.
    """
    customers, errors = read_customers(file)
    if errors:
        for error in errors[:50]:
            err_console.print(f"{file}:{error.line}: {error.message}")
        more = " (first 50 shown)" if len(errors) > 50 else ""
        fail(f"{len(errors)} malformed row(s){more}; nothing was imported. Fix them and run again.")
    if not customers:
        fail(f"{file} has no customer rows")
    dsn = database_url(settings())

    async def go() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return await import_customers(conn, customers)
        finally:
            await conn.close()

    console.print(f"imported {run(go())} customers from {file}")
