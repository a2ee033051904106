"""The agent console's dialogs: each a ``ModalScreen[T]`` that dismisses with its value.

Screens that need the server get an async ``request(type, **fields)`` callable (the console's CTI
link) and do their look-ups in ``@work(exclusive=True)`` workers, so typing in a search box never
waits on the network. Everything shown that came from callers, customers or imported data is a
``rich.text.Text`` built with ``safe_text`` (never parsed as markup; control characters shown).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from callcenter.tui.center_clock import center_time
from screenpop.numbers import normalize
from screenpop.pop import CustomerCandidate
from screenpop.render import safe_text

Request = Callable[..., Awaitable[dict[str, Any]]]


def _when(moment: dt.datetime | None, zone: dt.tzinfo) -> str:
    return center_time(moment, zone)


# ----------------------------------------------------------------------------- help


class HelpScreen(ModalScreen[None]):
    """Every key of the console, with what it does and when it works.

    The columns are fitted to the table's width whenever the screen is resized, and long cells wrap
    at words (the row grows taller): sized to its longest line, the table would run past the
    dialog's edge and cut its text.
    """

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows
        self._fitted = 0

    def compose(self) -> ComposeResult:
        table = DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="help", classes="dialog wide"):
            yield Label("Keys", classes="dialog-title")
            yield table
            yield Static("Esc closes this help. In a dialog: Tab moves between fields, Esc cancels.",
                         classes="hint")

    def on_mount(self) -> None:
        self._fill(None)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        table = self.query_one(DataTable)
        dialog = self.query_one("#help")
        # What the dialog cannot hold scrolls inside the table instead of running off the screen.
        others = sum(w.outer_size.height + w.styles.margin.height for w in dialog.children if w is not table)
        limit = dialog.styles.max_height
        room = limit.resolve(self.size, self.app.size) if limit else self.size.height
        table.styles.max_height = max(3, int(room) - dialog.styles.gutter.height - others)
        width = table.size.width - table.styles.scrollbar_size_vertical
        if width > 0 and width != self._fitted:
            self._fitted = width
            self._fill(width)

    def _fill(self, width: int | None) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        if width is None:
            table.add_columns("Key", "Action", "When")
        else:
            gaps = 3 * 2 * table.cell_padding
            key = max(Text(k).cell_len for k, _, _ in [("Key", "", ""), *self.rows])
            when = min(max(Text(w).cell_len for _, _, w in [("", "", "When"), *self.rows]), max(12, width // 4))
            table.add_column("Key", width=key)
            table.add_column("Action", width=max(12, width - gaps - key - when))
            table.add_column("When", width=when)
        for key, action, when in self.rows:
            table.add_row(Text(key, style="bold"), Text(action), Text(when, style="dim"), height=None)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y or Enter confirms, n or Esc does not."""

    BINDINGS = [Binding("y,enter", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(Text(self.question), classes="dialog-title")
            yield Label("y / Enter: yes    n / Esc: no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


# ----------------------------------------------------------------------------- pickers


class ReasonPicker(ModalScreen[str | None]):
    """Not-ready reasons from the server's configuration."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, reasons: list[str]) -> None:
        super().__init__()
        self.reasons = [r for r in reasons if r != "no_answer"] or reasons

    def compose(self) -> ComposeResult:
        with Vertical(id="reasons", classes="dialog"):
            yield Label("Not ready: why?", classes="dialog-title")
            yield OptionList(*(Option(Text(r.replace("_", " ")), id=r) for r in self.reasons), id="reason-list")
            yield Label("Enter picks, Esc cancels", classes="hint")

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TransferPicker(ModalScreen[str | None]):
    """Blind transfer targets: the queues, then the other agents. Dismisses ``queue:ID`` or ``agent:ID``."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, queues: list[dict[str, Any]], agents: list[dict[str, Any]]) -> None:
        super().__init__()
        self.queues = queues
        self.agents = agents

    def compose(self) -> ComposeResult:
        options = [Option(Text(f"Queue  {q['name']} ({q['id']})"), id=f"queue:{q['id']}") for q in self.queues]
        options += [Option(Text(f"Agent  {a['name']} ({a['id']})"), id=f"agent:{a['id']}") for a in self.agents]
        with Vertical(id="transfer", classes="dialog"):
            yield Label("Blind transfer to…", classes="dialog-title")
            yield OptionList(*options, id="transfer-list")
            yield Label("Enter transfers, Esc cancels", classes="hint")

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class CustomerPicker(ModalScreen[int | None]):
    """Several customers share the caller's number: the agent says which one is calling."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, candidates: tuple[CustomerCandidate, ...], region: str) -> None:
        super().__init__()
        self.candidates = candidates
        self.phone_region = region

    def compose(self) -> ComposeResult:
        options = []
        for c in self.candidates:
            prompt = Text()
            prompt.append_text(safe_text(c.name, "bold", limit=60))
            if c.company:
                prompt.append("  ·  ")
                prompt.append_text(safe_text(c.company, limit=60))
            prompt.append(f"  [{c.tier}]  #{c.customer_id}", style="dim")
            if c.blacklisted:
                prompt.append("  BLACKLISTED", style="bold red")
            options.append(Option(prompt, id=str(c.customer_id)))
        with Vertical(id="picker", classes="dialog"):
            yield Label("Who is calling?", classes="dialog-title")
            yield OptionList(*options, id="picker-list")
            yield Label("Enter picks and records it on the call, Esc cancels", classes="hint")

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)


# ----------------------------------------------------------------------------- quick create


@dataclass(frozen=True, slots=True)
class NewCustomer:
    name: str
    number: str
    company: str | None
    language: str | None
    email: str | None


class QuickCreateForm(Widget):
    """Name, number, company, language, e-mail for a caller nobody knows yet."""

    DEFAULT_CSS = "QuickCreateForm { height: auto; }"

    class Submitted(Message):
        def __init__(self, form: QuickCreateForm, customer: NewCustomer) -> None:
            super().__init__()
            self.form = form
            self.customer = customer

    def __init__(self, number: str | None, region: str, error: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.number = number or ""
        self.phone_region = region
        self.error = error

    def compose(self) -> ComposeResult:
        yield Label("Name")
        yield Input(id="qc-name", placeholder="full name", max_length=200)
        yield Label("Number")
        yield Input(self.number, id="qc-number", max_length=64)
        yield Label("Company (optional)")
        yield Input(id="qc-company", max_length=200)
        yield Label("Language (optional: zh, en…)")
        yield Input(id="qc-language", max_length=16)
        yield Label("E-mail (optional)")
        yield Input(id="qc-email", max_length=254)
        yield Static(safe_text(self.error or ""), id="qc-error", classes="error")
        with Horizontal(classes="buttons"):
            yield Button("Create  (Ctrl+S)", id="qc-save", variant="primary")
            yield Button("Cancel  (Esc)", id="qc-cancel")

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def submit(self) -> None:
        name = self._value("qc-name")
        number = self._value("qc-number")
        error = None
        if not name:
            error = "A name is needed."
        elif normalize(number, self.phone_region, strict=False) is None:
            error = f"{number!r} is not a phone number."
        if error:
            self.query_one("#qc-error", Static).update(safe_text(error))
            return
        self.post_message(self.Submitted(self, NewCustomer(
            name=name, number=number, company=self._value("qc-company") or None,
            language=self._value("qc-language") or None, email=self._value("qc-email") or None)))

    @on(Button.Pressed, "#qc-save")
    def _save(self) -> None:
        self.submit()

    @on(Input.Submitted)
    def _enter(self) -> None:
        self.submit()


class QuickCreateScreen(ModalScreen[NewCustomer | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Create")]

    def __init__(self, number: str | None, region: str, error: str | None = None) -> None:
        super().__init__()
        self.number = number
        self.phone_region = region
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="quick-create", classes="dialog"):
            yield Label("New contact", classes="dialog-title")
            yield QuickCreateForm(self.number, self.phone_region, self.error)

    @on(QuickCreateForm.Submitted)
    def _submitted(self, event: QuickCreateForm.Submitted) -> None:
        self.dismiss(event.customer)

    @on(Button.Pressed, "#qc-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        self.query_one(QuickCreateForm).submit()
