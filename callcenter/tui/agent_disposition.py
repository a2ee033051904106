"""The agent console's disposition form, bound to one call, and the picker of calls still owed one.

Checked before sending with the same rules the server refuses with (``callcenter.dispositions``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, OptionList, RadioButton, RadioSet, Static, TextArea
from textual.widgets.option_list import Option

from callcenter.dispositions import (
    bad_number,
    callback_number,
    callback_time_problem,
    check_disposition,
    rules_from_wire,
)
from callcenter.tui.agent_screens import _when
from screenpop.numbers import display
from screenpop.render import safe_text

# ----------------------------------------------------------------------------- disposition


@dataclass(frozen=True, slots=True)
class DispositionChoice:
    """What the agent filled in for one call: the code, notes, and an optional callback (``disposition.save``)."""

    call_id: str
    code: str
    notes: str
    callback: dict[str, Any] | None

    def request(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"call_id": self.call_id, "code": self.code, "notes": self.notes or None}
        if self.callback:
            fields["callback"] = self.callback
        return fields


class DispositionForm(Widget):
    """Code, notes, callback (date, time, number, only me or anyone), checked before it is sent.

    The server checks the same rules again; its refusal comes back into ``error``.
    """

    DEFAULT_CSS = "DispositionForm { height: auto; }"

    class Submitted(Message):
        def __init__(self, form: DispositionForm, choice: DispositionChoice) -> None:
            super().__init__()
            self.form = form
            self.choice = choice

    def __init__(self, codes: list[dict[str, Any]], *, call_id: str, notes: str, number: str | None, zone: str,
                 region: str, now: dt.datetime, previous: DispositionChoice | None = None, error: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.call_id = call_id
        self.codes = codes
        self.rules = rules_from_wire(codes)
        self.notes = notes
        self.number = number or ""
        self.zone = ZoneInfo(zone)
        self.phone_region = region
        self.now = now
        self.previous = previous
        self.error = error

    def compose(self) -> ComposeResult:
        local = self.now.astimezone(self.zone) + dt.timedelta(hours=1)
        local = local.replace(minute=(local.minute // 15) * 15, second=0, microsecond=0)
        options = []
        for d in self.codes:
            label = Text(d.get("label") or d["code"])
            label.append(f"  ({d['code']})", style="dim")
            if d.get("requires_note"):
                label.append("  note", style="yellow")
            if d.get("requires_callback"):
                label.append("  callback", style="cyan")
            options.append(Option(label, id=d["code"]))
        callback = (self.previous.callback if self.previous else None) or {}
        due = callback.get("due_from")
        if due:
            local = dt.datetime.fromisoformat(due).astimezone(self.zone)
        yield Label("Outcome")
        yield OptionList(*options, id="dp-code")
        yield Label("Notes")
        yield TextArea(self.previous.notes if self.previous else self.notes, id="dp-notes")
        yield Checkbox("Schedule a callback", bool(callback), id="dp-callback")
        with Horizontal(id="dp-when"):
            yield Input(local.strftime("%Y-%m-%d"), id="dp-date", max_length=10, placeholder="YYYY-MM-DD")
            yield Input(local.strftime("%H:%M"), id="dp-time", max_length=5, placeholder="HH:MM")
            yield Input(callback.get("number") or self.number, id="dp-number", max_length=64, placeholder="number")
        with RadioSet(id="dp-owner"):
            yield RadioButton("Only me", value=callback.get("owner", "me") == "me", id="dp-me")
            yield RadioButton("Anyone", value=callback.get("owner") == "anyone", id="dp-anyone")
        yield Static(safe_text(self.error or ""), id="dp-error", classes="error")
        with Horizontal(classes="buttons"):
            yield Button("Save  (Ctrl+S)", id="dp-save", variant="primary")

    def on_mount(self) -> None:
        codes = self.query_one("#dp-code", OptionList)
        wanted = self.previous.code if self.previous else None
        index = next((i for i, d in enumerate(self.codes) if d["code"] == wanted), 0)
        if self.codes:
            codes.highlighted = index
        codes.focus()

    def _code(self) -> str | None:
        codes = self.query_one("#dp-code", OptionList)
        if codes.highlighted is None:
            return None
        return codes.get_option_at_index(codes.highlighted).id

    def check(self) -> DispositionChoice | str:
        """The choice, or what is wrong with it (the server's own rules, from :mod:`callcenter.dispositions`)."""
        code = self._code()
        if code is None:
            return "Pick an outcome."
        notes = self.query_one("#dp-notes", TextArea).text.strip()
        wants_callback = self.query_one("#dp-callback", Checkbox).value
        number = self.query_one("#dp-number", Input).value.strip()
        problem = check_disposition(code, notes, {"number": number} if wants_callback else None, self.rules)
        if problem is not None:
            return problem
        callback = None
        if wants_callback:
            date_text = self.query_one("#dp-date", Input).value.strip()
            time_text = self.query_one("#dp-time", Input).value.strip()
            try:
                day = dt.date.fromisoformat(date_text)
                hour, minute = (int(x) for x in time_text.split(":"))
                local = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=self.zone)
            except ValueError:
                return "callback: give the date as YYYY-MM-DD and the time as HH:MM"
            problem = callback_time_problem(local, self.now)
            if problem is not None:
                return problem
            e164 = callback_number(number, self.phone_region)
            if e164 is None:
                return bad_number(number)
            owner = "anyone" if self.query_one("#dp-anyone", RadioButton).value else "me"
            callback = {"number": e164, "due_from": local.isoformat(),
                        "due_until": (local + dt.timedelta(hours=2)).isoformat(), "owner": owner}
        return DispositionChoice(call_id=self.call_id, code=code, notes=notes, callback=callback)

    def submit(self) -> None:
        outcome = self.check()
        if isinstance(outcome, str):
            self.query_one("#dp-error", Static).update(safe_text(outcome))
            return
        self.post_message(self.Submitted(self, outcome))

    @on(Button.Pressed, "#dp-save")
    def _save(self) -> None:
        self.submit()


class DispositionScreen(ModalScreen[DispositionChoice | None]):
    """The disposition form of one call, named in its title; Esc postpones it (the call stays in the owed list).

    Dismissed once: a second Ctrl+S or Esc while it closes does nothing (it never reaches another form).
    """

    BINDINGS = [Binding("ctrl+s", "save", "Save"), Binding("escape", "cancel", "Later")]

    def __init__(self, codes: list[dict[str, Any]], *, call_label: Text, call_id: str, **form: Any) -> None:
        super().__init__()
        self.codes = codes
        self.call_label = call_label
        self.call_id = call_id
        self.form_options = form
        self._answered = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="disposition", classes="dialog tall"):
            title = Text("Wrap-up: ", style="bold")
            title.append_text(self.call_label)
            title.append(f"  · call {self.call_id[:12]}", style="dim")
            yield Static(title, classes="dialog-title")
            yield DispositionForm(self.codes, call_id=self.call_id, **self.form_options)

    def _close(self, result: DispositionChoice | None) -> None:
        if not self._answered:
            self._answered = True
            self.dismiss(result)

    @on(DispositionForm.Submitted)
    def _submitted(self, event: DispositionForm.Submitted) -> None:
        self._close(event.choice)

    def action_save(self) -> None:
        if not self._answered:
            self.query_one(DispositionForm).submit()

    def action_cancel(self) -> None:
        self._close(None)


class OwedPicker(ModalScreen[str | None]):
    """Several calls owe a disposition: pick which one to give now (oldest first). Dismisses its call id."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, calls: list[Any], *, region: str, zone: dt.tzinfo) -> None:
        super().__init__()
        self.calls = calls
        self.phone_region = region
        self.zone = zone

    def compose(self) -> ComposeResult:
        options = []
        for call in self.calls:
            number = call.callback or call.ani or "withheld"
            if number.startswith("+"):
                number = display(number, self.phone_region)
            label = Text(_when(call.ended_at, self.zone) if call.ended_at else "earlier", style="dim")
            label.append("  ")
            label.append_text(safe_text(number, limit=30))
            if call.display_name:
                label.append("  ")
                label.append_text(safe_text(call.display_name, limit=40))
            if call.queue:
                label.append(f"  {call.queue}", style="dim")
            options.append(Option(label, id=call.call_id))
        with Vertical(id="owed", classes="dialog"):
            yield Label(f"Dispositions owed: {len(self.calls)}. Which call?", classes="dialog-title")
            yield OptionList(*options, id="owed-list")
            yield Label("Enter opens its form, Esc cancels", classes="hint")

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
