"""The supervisor's dialogs on one agent: force a state (with a reason), change skills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from callcenter.tui.supervisor_model import (
    parse_skills,
    skills_text,
    state_text,
    words,
)
from screenpop.render import safe_text

if TYPE_CHECKING:
    pass


# ----------------------------------------------------------------------------- dialogs


class ForceStateScreen(ModalScreen[tuple[str, str | None] | None]):
    """Pick the state to force: ready, not ready with a reason, or logged out."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, agent: dict[str, Any], reasons: list[str]) -> None:
        super().__init__()
        self.agent = agent
        self.reasons = [r for r in reasons if r != "no_answer"] or reasons

    def compose(self) -> ComposeResult:
        options = [Option(Text("Ready (available for calls)"), id="ready")]
        options += [Option(Text(f"Not ready: {words(r)}"), id=f"not_ready:{r}") for r in self.reasons]
        options.append(Option(Text("Log out of the ACD"), id="logged_out"))
        title = Text("Force the state of ")
        title.append_text(safe_text(f"{self.agent.get('agent_id')} {self.agent.get('name') or ''}", "bold", limit=60))
        title.append(f", now {state_text(self.agent.get('state'), self.agent.get('reason'))}")
        with Vertical(id="force", classes="dialog"):
            yield Static(title, classes="dialog-title")
            yield OptionList(*options, id="force-list")
            yield Label("Enter picks (you confirm next), Esc cancels", classes="hint")

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        state, _, reason = str(event.option.id).partition(":")
        self.dismiss((state, reason or None))

    def action_cancel(self) -> None:
        self.dismiss(None)


class SkillsScreen(ModalScreen[dict[str, int] | None]):
    """Edit an agent's skills as ``name=level`` words; checked here, applied after confirmation."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, agent: dict[str, Any], error: str | None = None, text: str | None = None) -> None:
        super().__init__()
        self.agent = agent
        self.error = error
        self.text = skills_text(agent.get("skills")) if text is None else text

    def compose(self) -> ComposeResult:
        title = Text("Skills of ")
        title.append_text(safe_text(f"{self.agent.get('agent_id')} {self.agent.get('name') or ''}", "bold", limit=60))
        with Vertical(id="skills", classes="dialog"):
            yield Static(title, classes="dialog-title")
            yield Input(self.text, id="skills-input", placeholder="sales=3 support=2 zh=5")
            yield Static(Text(self.error or ""), id="skills-error", classes="error")
            yield Label("name=level (1-5), separated by spaces; leave a skill out to remove it. "
                        "Enter checks and asks to confirm; Esc cancels. Lasts until the server restarts.",
                        classes="hint")

    @on(Input.Submitted, "#skills-input")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            skills = parse_skills(event.value)
        except ValueError as exc:
            self.query_one("#skills-error", Static).update(Text(str(exc)))
            return
        self.dismiss(skills)

    def action_cancel(self) -> None:
        self.dismiss(None)
