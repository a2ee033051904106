"""``callcenter agent``: the agent's console (a Textual app) connected to the server over CTI."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from callcenter.cli import app, err_console, escape, state
from callcenter.errors import CallCenterError

PIN_ENV = "CALLCENTER_PIN"

# The options every console shares (agent and supervisor).
ServerOption = Annotated[
    Optional[str], typer.Option("--server", help="CTI server URL, ws://HOST:PORT or wss://HOST:PORT (default: cti.listen).")
]
PinFileOption = Annotated[Optional[Path], typer.Option("--pin-file", help="Read the PIN from this file (scripts; chmod 600).")]
CaFileOption = Annotated[
    Optional[Path], typer.Option("--ca-file", help="For wss://: trust this CA or self-signed certificate (PEM).")
]


def read_pin(pin_file: Path | None, environ: dict[str, str] | os._Environ = os.environ) -> str | None:
    """The PIN from ``--pin-file`` (first line), else ``$CALLCENTER_PIN``; None means: ask for it."""
    if pin_file is not None:
        try:
            mode = pin_file.stat().st_mode
            text = pin_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CallCenterError(f"--pin-file {pin_file}: {exc.strerror or exc}") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            err_console.print(f"[yellow]warning:[/] {escape(str(pin_file))} can be read by other users; chmod 600 it",
                              highlight=False, soft_wrap=True)
        pin = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not pin:
            raise CallCenterError(f"--pin-file {pin_file}: the file is empty")
        return pin
    pin = environ.get(PIN_ENV, "").strip()
    return pin or None


def console_link(settings, server: str | None, ca_file: Path | None, pin_file: Path | None,
                 who: str) -> tuple[str, str, Any]:
    """URL, PIN and TLS context for a console, checked before any screen opens."""
    from callcenter.cti.client import client_ssl_context, default_url

    url = server or default_url(settings)
    if not url.startswith(("ws://", "wss://")):
        raise CallCenterError(f"--server {url!r}: write it as ws://HOST:PORT or wss://HOST:PORT")
    if ca_file is not None and not ca_file.is_file():
        raise CallCenterError(f"--ca-file {ca_file}: no such file")
    pin = read_pin(pin_file)
    if pin is None:
        pin = typer.prompt(f"PIN for {who}", hide_input=True)
    try:
        ssl_context = client_ssl_context(url, str(ca_file) if ca_file else None)
    except (OSError, ValueError) as exc:
        raise CallCenterError(f"--ca-file {ca_file}: {exc}") from None
    return url, pin, ssl_context


@app.command("agent")
def agent_cmd(
    ctx: typer.Context,
    agent: Annotated[str, typer.Option("--agent", "-a", help="Your agent id (as in \\[agents.ID]).")],
    server: ServerOption = None,
    pin_file: PinFileOption = None,
    ca_file: CaFileOption = None,
    not_ready: Annotated[
        Optional[str], typer.Option("--not-ready", help="Log in not ready with this reason (e.g. break) instead of available.")
    ] = None,
    phone: Annotated[
        Optional[str], typer.Option("--phone", help="Ring this SIP URI for this session instead of the configured phone.")
    ] = None,
) -> None:
    """Open the agent console: state, incoming calls with the screen pop, call controls, dispositions, callbacks.

    The PIN is asked for (hidden) unless --pin-file or $CALLCENTER_PIN gives it. On the server's own
    machine no --server is needed. Press ? in the console for every key.
    """
    settings = state(ctx).settings
    url, pin, ssl_context = console_link(settings, server, ca_file, pin_file, f"agent {agent}")

    from callcenter.tui.agent_console import AgentConsoleApp

    console_app = AgentConsoleApp(url=url, agent_id=agent, pin=pin, ssl_context=ssl_context,
                                  not_ready_reason=not_ready, phone=phone)
    message = console_app.run()
    if console_app.return_code:
        raise CallCenterError(message or "the console stopped")
