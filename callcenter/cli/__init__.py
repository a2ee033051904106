"""The ``callcenter`` command line.

Every subcommand module registers itself on :data:`app`; errors from the application packages
are turned into a message and an exit status here, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Annotated, Optional

import typer
from rich.console import Console

from callcenter import __version__
from callcenter.config import LoadedConfig, load
from callcenter.errors import CallCenterError

app = typer.Typer(
    name="callcenter",
    help="Contact-center server and tools: configuration, database, customers, routing and IVR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    """What the global options said; settings are loaded on first use so --help never needs a config."""

    config_path: str | None = None
    overrides: list[str] = field(default_factory=list)
    _loaded: LoadedConfig | None = None

    @property
    def loaded(self) -> LoadedConfig:
        if self._loaded is None:
            self._loaded = load(self.config_path, overrides=self.overrides)
        return self._loaded

    @property
    def settings(self):
        return self.loaded.settings


def state(ctx: typer.Context) -> CliState:
    return ctx.find_root().obj


def _version(value: bool) -> None:
    if value:
        console.print(f"callcenter {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Optional[str],
        typer.Option("--config", "-c", help="Configuration file (default: $CALLCENTER_CONFIG, else config/callcenter.toml)."),
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="Override one setting, e.g. --set sip.port=5070 (repeatable; beats file and env)."),
    ] = None,
    database_url: Annotated[
        Optional[str], typer.Option("--database-url", help="Same as --set database.url=URL.", show_default=False)
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Contact-center server and tools.

    Settings come from built-in defaults, then the TOML file, then CALLCENTER_* environment
    variables (CALLCENTER_DATABASE__URL=...), then --set flags: later ones win.
    """
    overrides = list(set_ or [])
    if database_url:
        overrides.append(f"database.url={database_url}")
    ctx.obj = CliState(config_path=config, overrides=overrides)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def escape(text: str) -> str:
    """Text for a rich markup string, shown literally."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


# Subcommand modules: each registers its commands on `app` when imported.
from callcenter.cli import acd_cmd, agent_cmd, config_cmd, customers_cmd, db_cmd, demo_cmd, ivr_cmd, serve_cmd  # noqa: E402,F401
from callcenter.cli import report_cmd, supervisor_cmd  # noqa: E402,F401


def main() -> None:
    try:
        app()
    except CallCenterError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:
        from callcenter.db import describe_error

        message = describe_error(exc)
        if message is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        sys.exit(1)
