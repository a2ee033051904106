"""The agent console's lists from the server (callbacks, recent contacts, search) and the customer profile.

Look-ups run in ``@work(exclusive=True)`` workers; everything that came from callers or imported data is
shown as ``rich.text.Text`` (never parsed as markup).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

from callcenter.clock import parse_time, utcnow
from callcenter.tui.agent_screens import Request, _when
from screenpop.numbers import display
from screenpop.render import render_profile, safe_text
from screenpop.wire import WireError, callback_from_wire, candidate_from_wire, contact_from_wire, profile_from_wire

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
        now = parse_time(data.get("server_time")) or utcnow()
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
