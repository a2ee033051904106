"""``callcenter db``: create and migrate the database."""

from __future__ import annotations

import typer

from callcenter import bootstrap
from callcenter.cli import app, console, state
from callcenter.db import current_revision, head_revision, upgrade
from callcenter.db.agents import sync_agents

db_app = typer.Typer(help="Create, migrate and inspect the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade_cmd(ctx: typer.Context) -> None:
    """Create the database or migrate it to the current schema (Alembic), then sync agents from the config.

    Safe to run at any time: an up-to-date database is left as it is.
    """
    settings = state(ctx).settings
    db = bootstrap.database(settings, check_schema=False)
    before, after = upgrade(db)
    if before == after:
        console.print(f"[green]✓[/] {db.safe_url} is up to date (revision {after})", highlight=False)
    else:
        console.print(f"[green]✓[/] {db.safe_url} migrated {before or 'empty'} → {after}", highlight=False)
    added, updated = sync_agents(db, settings.agents)
    if added or updated:
        console.print(f"  agents from config: {added} added, {updated} updated", highlight=False)


@db_app.command("status")
def status(ctx: typer.Context) -> None:
    """Show the database's schema revision against the one this version needs."""
    db = bootstrap.database(state(ctx).settings, check_schema=False)
    current, head = current_revision(db), head_revision()
    mark = "[green]up to date[/]" if current == head else "[yellow]needs 'callcenter db upgrade'[/]"
    console.print(f"{db.safe_url}: revision {current or '(empty)'}, code expects {head}: {mark}", highlight=False)
    if current != head:
        raise typer.Exit(1)
