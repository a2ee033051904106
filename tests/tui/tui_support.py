"""Helpers for console tests: the screen as plain text, and waiting on the app."""

from __future__ import annotations

import io

from rich.console import Console


def screen_text(app) -> str:
    """What the terminal shows now (every layer, the modal on top), as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def console(stack, agent_id: str, pin: str | None = None):
    from callcenter.tui.agent_console import AgentConsoleApp
    from tests.cti.cti_support import PINS

    return AgentConsoleApp(url=stack.url, agent_id=agent_id, pin=PINS[agent_id] if pin is None else pin)


async def type_text(pilot, text: str) -> None:
    keys = {" ": "space", ":": "colon", "-": "minus", "+": "plus", ".": "full_stop", ",": "comma"}
    await pilot.press(*(keys.get(ch, ch) for ch in text))


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]
