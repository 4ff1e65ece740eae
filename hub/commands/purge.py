"""`hub purge`: delete what is past retention now (a running `hub run` also does, every HUB_PURGE_INTERVAL_S)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import typer
from rich.table import Table

from hub.commands._common import console, settings
from hub.commands._views import print_json, when, with_database
from hub.ops.db import OpsError
from hub.ops.lifecycle import PURGED_TABLES, PurgeBusy, Retention, count_past, describe, purge_locked


def register(app: typer.Typer) -> None:
    @app.command(name="purge")
    def purge_command(
        dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing"),
        batch: int = typer.Option(
            None, "--batch", min=1, max=100_000, help="Rows per transaction [default: HUB_PURGE_BATCH]"
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON"),
    ) -> None:
        """Delete inbox ids, published outbox rows, dead letters and event history past HUB_RETAIN_*_DAYS,
        in small transactions (task histories are never purged)."""
        s = settings()
        retention, now = Retention.of(s), datetime.now(UTC)
        horizons = retention.horizons(now)

        async def work(conn: asyncpg.Connection) -> dict[str, int]:
            if dry_run:
                return await count_past(conn, retention, now)
            try:
                report = await purge_locked(conn, retention, batch or s.purge_batch, now=now)
            except PurgeBusy as exc:
                raise OpsError(f"{exc}; run it again when that one is done") from exc
            except asyncpg.InsufficientPrivilegeError as exc:
                raise OpsError(
                    f"{exc}: the role of HUB_DATABASE_URL may not delete; re-run deploy/postgres-init/hub-roles.psql "
                    "(it grants DELETE on the purged tables) or run `hub migrate`"
                ) from exc
            if not json_out:
                console.print(describe(report), highlight=False)
            return report.deleted

        counts = with_database(work)
        if json_out:
            tables = {t: {"before": at, "rows": counts.get(t, 0)} for t, at in horizons.items()}
            print_json({"dry_run": dry_run, "tables": tables})
            return
        if not horizons:
            console.print("every HUB_RETAIN_*_DAYS is 0: nothing is ever purged")
            return
        table = Table(title="would be deleted (--dry-run)" if dry_run else "deleted")
        table.add_column("table")
        table.add_column("rows before (UTC)")
        table.add_column("rows", justify="right")
        for name, at in horizons.items():
            table.add_row(name, when(at), f"{counts.get(name, 0):,}")
        console.print(table)
        kept = [t for t in PURGED_TABLES if t not in horizons]
        console.print(f"kept forever: {', '.join([*kept, 'task_events'])}", highlight=False)
