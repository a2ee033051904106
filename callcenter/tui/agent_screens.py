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
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, DataTable, Input, Label, OptionList, RadioButton, RadioSet, Static, TextArea
from textual.widgets.option_list import Option

from callcenter.tui.center_clock import center_time
from screenpop.numbers import display, normalize
from screenpop.pop import CustomerCandidate
from screenpop.render import render_profile, safe_text
from screenpop.wire import WireError, callback_from_wire, candidate_from_wire, contact_from_wire, profile_from_wire

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
        """The choice, or what is wrong with it (the same rules the server applies)."""
        code = self._code()
        rule = next((d for d in self.codes if d["code"] == code), None)
        if rule is None:
            return "Pick an outcome."
        notes = self.query_one("#dp-notes", TextArea).text.strip()
        if rule.get("requires_note") and not notes:
            return f"{rule.get('label') or code}: a note is required."
        wants_callback = self.query_one("#dp-callback", Checkbox).value
        if rule.get("requires_callback") and not wants_callback:
            return f"{rule.get('label') or code}: schedule a callback (date, time, number)."
        callback = None
        if wants_callback:
            date_text = self.query_one("#dp-date", Input).value.strip()
            time_text = self.query_one("#dp-time", Input).value.strip()
            try:
                day = dt.date.fromisoformat(date_text)
                hour, minute = (int(x) for x in time_text.split(":"))
                local = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=self.zone)
            except ValueError:
                return "Callback: give the date as YYYY-MM-DD and the time as HH:MM."
            if local < self.now - dt.timedelta(minutes=5):
                return "Callback: that time is in the past."
            number = self.query_one("#dp-number", Input).value.strip()
            parsed = normalize(number, self.phone_region, strict=False)
            if parsed is None:
                return f"Callback: {number!r} is not a phone number."
            owner = "anyone" if self.query_one("#dp-anyone", RadioButton).value else "me"
            callback = {"number": parsed.e164, "due_from": local.isoformat(),
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


# ----------------------------------------------------------------------------- lists from the server


class _ListScreen(ModalScreen[int | None]):
    """A table filled from the server in a worker; Enter dismisses with the row's customer id."""

    BINDINGS = [Binding("escape", "cancel", "Close"), Binding("f5", "reload", "Reload")]
    TITLE_TEXT = ""

    def __init__(self, request: Request, *, region: str, zone: str) -> None:
        super().__init__()
        self.request = request
        self.phone_region = region
        self.zone = ZoneInfo(zone)
        self.rows: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(self.TITLE_TEXT, classes="dialog-title")
            yield from self.compose_top()
            yield DataTable(id="list", cursor_type="row", zebra_stripes=True)
            yield Static("", id="list-status", classes="hint")

    def compose_top(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.action_reload()

    def status(self, text: str) -> None:
        self.query_one("#list-status", Static).update(Text(text))

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        pass

    def action_cancel(self) -> None:
        self.dismiss(None)


class CallbacksScreen(_ListScreen):
    """My callbacks (and those for anyone), most urgent first; d or Enter dials one now."""

    BINDINGS = [*_ListScreen.BINDINGS, Binding("d", "dial", "Dial now")]
    TITLE_TEXT = "My callbacks"

    class DialRequested(Message):
        def __init__(self, callback_id: int) -> None:
            super().__init__()
            self.callback_id = callback_id

    def __init__(self, request: Request, *, region: str, zone: str,
                 dial_blocked: Callable[[], str | None] = lambda: None) -> None:
        super().__init__(request, region=region, zone=zone)
        self.dial_blocked = dial_blocked  # why dialling cannot start now (asked at each dial), or None

    @work(exclusive=True)
    async def load(self) -> None:
        from callcenter.cti.errors import CtiError

        self.status("loading…")
        try:
            data = await self.request("callbacks.list")
        except CtiError as exc:
            self.status(f"could not load: {exc}")
            return
        try:
            callbacks = [callback_from_wire(c) for c in data.get("callbacks", [])]
        except WireError as exc:
            self.status(f"unreadable answer: {exc}")
            return
        now = dt.datetime.fromisoformat(data.get("server_time")) if data.get("server_time") else dt.datetime.now(dt.UTC)
        order = {"overdue": 0, "due": 1, "later": 2}
        callbacks.sort(key=lambda c: (order[c.urgency(now)], c.due_from))
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns("#", "State", "Due", "Until", "Customer", "Number", "Owner", "Tries", "Notes")
        self.rows = {}
        styles = {"overdue": "bold red", "due": "bold yellow", "later": ""}
        for cb in callbacks:
            urgency = cb.urgency(now)
            key = str(cb.callback_id)
            self.rows[key] = cb
            table.add_row(
                Text(key), Text(urgency, style=styles[urgency]), Text(_when(cb.due_from, self.zone)),
                Text(_when(cb.due_until, self.zone)), safe_text(cb.customer_name or "—", limit=40),
                Text(display(cb.number, self.phone_region)), safe_text(cb.owner or "anyone"), Text(str(cb.attempts)),
                safe_text(cb.notes or "", limit=60), key=key,
            )
        overdue = sum(1 for c in callbacks if c.urgency(now) == "overdue")
        due = sum(1 for c in callbacks if c.urgency(now) == "due")
        self.status(f"{len(callbacks)} callback(s): {overdue} overdue, {due} due now. d dials, Esc closes.")

    def action_dial(self) -> None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None:
            return
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        self.post_message(self.DialRequested(int(key)))

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.post_message(self.DialRequested(int(event.row_key.value)))

    @on(DialRequested)
    def _dial(self, event: DialRequested) -> None:
        self.dial(event.callback_id)

    @work(exclusive=True, group="dial")
    async def dial(self, callback_id: int) -> None:
        from callcenter.cti.errors import CtiError

        blocked = self.dial_blocked()
        if blocked:
            self.status(blocked)
            self.app.notify(f"Dial now: {blocked}", severity="warning", markup=False)
            return

        try:
            data = await self.request("call.dial", callback_id=callback_id)
        except CtiError as exc:
            self.status(f"callback {callback_id}: {exc}")
            self.app.notify(f"Dial now: {exc}", severity="warning", markup=False)
            return
        number = display(data.get("number") or "", self.phone_region)
        self.app.notify(f"Dialling {number}: your phone rings first, then the customer's.", markup=False)
        self.dismiss(None)  # the pop of the customer comes up on the main screen


class RecentScreen(_ListScreen):
    """My last contacts; Enter shows the customer."""

    TITLE_TEXT = "My recent contacts"

    @work(exclusive=True)
    async def load(self) -> None:
        from callcenter.cti.errors import CtiError

        self.status("loading…")
        try:
            data = await self.request("contacts.recent", limit=30)
            contacts = [contact_from_wire(c) for c in data.get("contacts", [])]
        except (CtiError, WireError) as exc:
            self.status(f"could not load: {exc}")
            return
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns("When", "Number", "Caller", "Customer", "Queue", "Outcome", "Disposition", "Notes")
        self.rows = {}
        for i, c in enumerate(contacts):
            key = str(i)
            self.rows[key] = c
            number = display(c.ani, self.phone_region) if c.ani and c.ani.startswith("+") else (c.ani or "—")
            table.add_row(
                Text(_when(c.at, self.zone)), safe_text(number, limit=30),
                safe_text(c.display_name or "", limit=30), safe_text(c.customer_name or "—", limit=30),
                safe_text(c.queue or "—"), safe_text(c.outcome or "—"), safe_text(c.disposition or "—"),
                safe_text(c.notes or "", limit=60), key=key,
            )
        self.status(f"{len(contacts)} contact(s). Enter shows the customer, Esc closes.")

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        contact = self.rows.get(event.row_key.value)
        if contact is not None and contact.customer_id is not None:
            self.dismiss(contact.customer_id)
        else:
            self.status("no customer is recorded for that contact")


class SearchScreen(_ListScreen):
    """Customers by number (any format), id, or name; Enter shows the customer."""

    TITLE_TEXT = "Find a customer"
    BINDINGS = [Binding("down", "to_results", "To the results", show=False)]

    def compose_top(self) -> ComposeResult:
        yield Input(id="search-query", placeholder="number, customer id, or name (start of it)", max_length=100)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Id", "Name", "Company", "Tier", "Numbers")
        self.query_one("#search-query", Input).focus()
        self.status("type, then Enter; ↓ to the results, Enter shows one")

    def action_reload(self) -> None:
        self.search(self.query_one("#search-query", Input).value)

    def action_to_results(self) -> None:
        """↓ from the query moves to the first result, where Enter shows it (the table keeps its own ↓)."""
        table = self.query_one(DataTable)
        if table.row_count:
            table.focus()
            table.move_cursor(row=0)

    @on(Input.Submitted, "#search-query")
    def _submitted(self, event: Input.Submitted) -> None:
        self.search(event.value)

    @on(Input.Changed, "#search-query")
    def _changed(self, event: Input.Changed) -> None:
        if len(event.value.strip()) >= 3:
            self.search(event.value, pause=0.25)

    @work(exclusive=True)
    async def search(self, query: str, pause: float = 0.0) -> None:
        import asyncio

        from callcenter.cti.errors import CtiError

        query = query.strip()
        if not query:
            return
        if pause:
            await asyncio.sleep(pause)  # typing goes on: this worker is replaced by the next one
        self.status("searching…")
        try:
            data = await self.request("customer.search", query=query, limit=30)
            found = [candidate_from_wire(c) for c in data.get("customers", [])]
        except (CtiError, WireError) as exc:
            self.status(f"search failed: {exc}")
            return
        table = self.query_one(DataTable)
        table.clear()
        self.rows = {}
        for c in found:
            key = str(c.customer_id)
            self.rows[key] = c
            table.add_row(Text(key), safe_text(c.name, "bold", limit=40), safe_text(c.company or "", limit=40),
                          Text(c.tier), Text(", ".join(display(n, self.phone_region) for n in c.numbers[:3])), key=key)
        self.status(f"{len(found)} customer(s) for {query!r}" if found else f"nobody found for {query!r}")

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(int(event.row_key.value))


class ProfileScreen(ModalScreen[None]):
    """One customer's whole picture (from search or recent contacts)."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, request: Request, customer_id: int, *, region: str, zone: str, now: dt.datetime) -> None:
        super().__init__()
        self.request = request
        self.customer_id = customer_id
        self.phone_region = region
        self.zone = ZoneInfo(zone)
        self.now = now

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide", id="profile"):
            yield Static(Text(f"loading customer {self.customer_id}…"), id="profile-view")

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        from callcenter.cti.errors import CtiError

        view = self.query_one("#profile-view", Static)
        try:
            data = await self.request("customer.get", customer_id=self.customer_id)
            profile = profile_from_wire(data["profile"])
        except (CtiError, WireError, KeyError) as exc:
            view.update(Text(f"customer {self.customer_id}: {exc}"))
            return
        view.update(render_profile(profile, now=self.now, region=self.phone_region, zone=self.zone))

    def action_close(self) -> None:
        self.dismiss(None)
