"""``callcenter config``: check and show the configuration."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from callcenter.cli import app, console, state
from callcenter.config import load
from callcenter.security import redact_url

config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def check(
    ctx: typer.Context,
    file: Annotated[Optional[str], typer.Argument(help="File to check \\[default: the --config file].")] = None,
) -> None:
    """Validate the configuration: exit 0 when valid, 2 with every problem listed when not.

    Environment variables (CALLCENTER_*) and --set flags are applied on top of the file, as at run time.
    """
    cli = state(ctx)
    loaded = load(file or cli.config_path, overrides=cli.overrides)
    settings = loaded.settings
    source = str(loaded.path) if loaded.path else "built-in defaults"
    console.print(
        f"[green]✓[/] {source}: valid — {len(settings.queues)} queue(s), {len(settings.agents)} agent(s), "
        f"{len(settings.dispositions)} disposition code(s), time zone {settings.hours.timezone}",
        highlight=False,
    )
    for path, origin in sorted(loaded.origins.items()):
        console.print(f"  {'.'.join(path)} set by {origin}", style="dim", highlight=False)


@config_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective configuration (secrets hidden)."""
    settings = state(ctx).settings
    table = Table("key", "value", title="Effective configuration", title_justify="left")
    for section in ("center", "sip", "database", "redis", "cti", "ivr", "acd"):
        for key, value in getattr(settings, section).model_dump().items():
            if key == "url" and isinstance(value, str):
                value = redact_url(value)
            table.add_row(f"{section}.{key}", str(value))
    table.add_row("hours.timezone", settings.hours.timezone)
    table.add_row("queues", ", ".join(settings.queues))
    table.add_row("agents", ", ".join(settings.agents))
    table.add_row("dispositions", ", ".join(settings.dispositions))
    console.print(table)
