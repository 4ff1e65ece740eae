"""`hub migrate`: apply the numbered SQL migrations."""

from __future__ import annotations

import typer

from hub.commands._common import console, database_url, fail, run, settings
from hub.migrate import MigrationError, apply_migrations


def register(app: typer.Typer) -> None:
    @app.command()
    def migrate() -> None:
        """Create or update the hub's tables (safe to run twice, and from several processes at once)."""
        dsn = database_url(settings(), for_migrations=True)
        try:
            applied = run(apply_migrations(dsn))
        except (MigrationError, OSError) as exc:
            fail(f"migrations not applied: {exc}")
        if applied:
            console.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
        else:
            console.print("database is up to date")
