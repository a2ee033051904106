"""``callcenter supervisor``: the supervisor's dashboard (a Textual app) connected to the server over CTI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from callcenter.cli import app, state
from callcenter.cli.agent_cmd import CaFileOption, PinFileOption, ServerOption, console_link
from callcenter.errors import CallCenterError


@app.command("supervisor")
def supervisor_cmd(
    ctx: typer.Context,
    supervisor: Annotated[str, typer.Option("--id", "-i", help="Your supervisor id (an \\[agents.ID] with role = \"supervisor\").")],
    server: ServerOption = None,
    pin_file: PinFileOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Open the supervisor dashboard: live queues and agents, alerts, trends, staffing, and agent actions.

    Modes, one key each: 1 wallboard (every queue: waiting, longest wait, service level both ways,
    ASA, AHT, offered/answered/abandoned today, agents by state; amber then red as a queue slips;
    calls blocked because every worker was full), 2 agents (sort with o, filter with /, force a
    state with f, change skills with k), 3 queue detail (waiting callers and why the oldest
    waits), 4 trends (last hour), 5 staffing (Erlang C). Press ? in the dashboard for every key.

    Only accounts with role = "supervisor" may open it; agents use `callcenter agent`. The PIN is
    asked for (hidden) unless --pin-file or $CALLCENTER_PIN gives it. Every action is written to
    the audit log with your id. Alert thresholds are in the \\[supervisor] section of the settings.
    """
    settings = state(ctx).settings
    url, pin, ssl_context = console_link(settings, server, ca_file, pin_file, f"supervisor {supervisor}")

    from callcenter.tui.supervisor_console import SupervisorApp

    dashboard = SupervisorApp(url=url, supervisor_id=supervisor, pin=pin, ssl_context=ssl_context)
    message = dashboard.run()
    if dashboard.return_code:
        raise CallCenterError(message or "the dashboard stopped")
