"""The supervisor dashboard's modes (one ``Screen`` each, switched with ``App.MODES``) and its dialogs.

Each mode draws from the app's :class:`~callcenter.tui.supervisor_model.SupervisorModel` in
``render_model(change)``; ``change`` names the queues and agents the last push touched, so a
table updates only those rows (500 agents stay cheap). What a key asks of the app (open a
queue, step to the next, force a state, edit skills) is a message nested in the screen that
posts it, handled by the app, as the agent console's dialogs do. Every string that came from a
caller (numbers, display names) is a ``rich.text.Text`` made by ``safe_text``: shown as typed,
never parsed as markup, control characters made visible.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from callcenter.clock import parse_time
from callcenter.tui.center_clock import center_time
from callcenter.tui.supervisor_model import (
    AGENT_COLUMNS,
    AMBER,
    RED,
    STRATEGY_WORDS,
    VERDICT_WORDS,
    alert,
    caller_text,
    longest_wait,
    percent,
    seconds_text,
    skills_text,
    verdict_text,
    words,
)
from screenpop.numbers import display
from screenpop.render import safe_text
from screenpop.text import STATE_LABELS, format_duration

if TYPE_CHECKING:
    from callcenter.tui.supervisor_console import SupervisorApp

ALERT_STYLE = {AMBER: "bold black on dark_orange", RED: "bold white on red3"}
STATE_STYLE = {
    "available": "green", "reserved": "magenta", "on_call": "bold blue", "wrap_up": "cyan",
    "not_ready": "yellow", "logged_out": "dim",
}


def _number(value: str | None, region: str) -> str:
    if not value:
        return "withheld"
    return display(value, region) if value.startswith("+") else value


def caller_cell(call: dict[str, Any] | None, region: str) -> Text:
    """The caller as typed: number, then the display name in quotes (never markup)."""
    if not call:
        return Text("")
    shown = dict(call)
    shown["ani"] = _number(call.get("ani"), region)
    return safe_text(caller_text(shown), limit=60)


def _signature(cells: list[Text]) -> tuple:
    return tuple((c.plain, str(c.style), tuple(c.spans)) for c in cells)


class RowTable:
    """A ``DataTable`` of one column whose rows are positions, not records.

    Each row is one line of fixed-width fields joined into a single ``Text``. Why: ``DataTable``
    forgets every cached row whenever any cell changes and then renders each visible cell
    through Rich again; one cell per row makes that repaint about ten times cheaper, which is
    what keeps a 500-agent view responsive under a stream of pushes. Rows are positions, so a
    new order or new values rewrite only the lines that differ, and rows are added or removed
    only when the count changes (never a clear and rebuild). ``keys`` maps positions to records.
    """

    SEPARATOR = "  "

    def __init__(self, table: DataTable, columns: list[tuple[str, str, int]]) -> None:
        self.table = table
        self.columns = [key for key, _, _ in columns]
        self.widths = [width for _, _, width in columns]
        header = self.join([Text(title, style="bold") for _, title, _ in columns])
        table.add_column(header, key="row", width=header.cell_len)
        self.keys: list[str] = []
        self._cells: list[list[Text]] = []
        self._sigs: list[tuple] = []

    def join(self, cells: list[Text]) -> Text:
        line = Text()
        last = len(cells) - 1
        for n, (cell, width) in enumerate(zip(cells, self.widths)):
            field = cell.copy()
            field.truncate(width, overflow="ellipsis", pad=True)
            line.append_text(field)
            if n < last:
                line.append(self.SEPARATOR, style=cells[-1].style)
        return line

    def sync(self, keys: list[str], build, only: set[str] | None = None) -> None:
        """Show the records ``keys`` in that order; ``build(key)`` gives a record's cells. With
        ``only``, a record that stays at its position is rebuilt only if it is in ``only``."""
        table = self.table
        for i, key in enumerate(keys):
            if i < len(self.keys) and self.keys[i] == key and only is not None and key not in only:
                continue
            cells = build(key)
            sig = _signature(cells)
            if i < len(self._sigs):
                if self._sigs[i] != sig:
                    table.update_cell(f"r{i}", "row", self.join(cells))
                    self._sigs[i], self._cells[i] = sig, cells
            else:
                table.add_row(self.join(cells), key=f"r{i}")
                self._sigs.append(sig)
                self._cells.append(cells)
        for i in range(len(self._sigs) - 1, len(keys) - 1, -1):
            table.remove_row(f"r{i}")
        del self._sigs[len(keys):]
        del self._cells[len(keys):]
        self.keys = list(keys)

    def set_cell(self, key: str, column: str, cell: Text) -> None:
        """Rewrite one field of the record ``key`` if it is shown and differs (ticking times)."""
        try:
            i = self.keys.index(key)
        except ValueError:
            return
        c = self.columns.index(column)
        sig = (cell.plain, str(cell.style), tuple(cell.spans))
        if self._sigs[i][c] != sig:
            cells = list(self._cells[i])
            cells[c] = cell
            self._cells[i] = cells
            self._sigs[i] = (*self._sigs[i][:c], sig, *self._sigs[i][c + 1:])
            self.table.update_cell(f"r{i}", "row", self.join(cells))

    def selected(self) -> str | None:
        row = self.table.cursor_row
        return self.keys[row] if self.keys and 0 <= row < len(self.keys) else None


class ModeScreen(Screen):
    """A mode of the dashboard: the top bar, its own content, the footer."""

    app: SupervisorApp
    MODE = ""

    def compose(self) -> ComposeResult:
        yield Static(Text(""), classes="topbar")
        yield from self.content()
        yield Footer()

    def content(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        self.render_model(None)

    def render_topbar(self) -> None:
        for bar in self.query(".topbar"):
            bar.update(self.app.topbar(), layout=False)  # one line, always

    def render_model(self, change: dict[str, Any] | None) -> None:
        """Redraw from the model; ``change`` is None for everything."""
        self.render_topbar()

    def tick(self) -> None:
        """Once a second: waits and times in state grow."""
        self.render_topbar()


# ----------------------------------------------------------------------------- wallboard

WALL_COLUMNS = [("status", "●", 5), ("queue", "Queue", 18), ("waiting", "Waiting", 7), ("longest", "Longest", 7),
                ("sl1", "SL answered", 11), ("sl2", "SL offered", 10), ("target", "Target", 10), ("asa", "ASA", 5),
                ("aht", "AHT", 5), ("offered", "Offered", 7), ("answered", "Answered", 8),
                ("abandoned", "Abandoned", 9), ("available", "Avail", 5), ("on_call", "On call", 7),
                ("wrap_up", "Wrap", 4), ("not_ready", "Not rdy", 7)]


class WallboardScreen(ModeScreen):
    """Every queue on one table, coloured by its alert level; Enter opens the queue's detail."""

    MODE = "wallboard"
    BINDINGS = [Binding("enter", "open_queue", "Queue detail")]

    class QueueOpened(Message):
        """Enter on a queue's row: the app shows that queue's detail."""

        def __init__(self, queue_id: str) -> None:
            super().__init__()
            self.queue_id = queue_id

    _alerts_shown = ""

    def content(self) -> ComposeResult:
        yield Static(Text(""), id="wall-summary")
        table = DataTable(id="wall-table", cursor_type="row", zebra_stripes=False)
        self.rows = RowTable(table, WALL_COLUMNS)
        yield table
        yield Static(Text(""), id="wall-alerts")

    def _row(self, queue: dict[str, Any], now: dt.datetime) -> list[Text]:
        level, _ = alert(queue, self.app.model.thresholds, now)
        style = ALERT_STYLE.get(level, "")
        agents = queue.get("agents") or {}
        wait = longest_wait(queue, now)
        target = f"{percent(queue.get('sl_target'))} in {queue.get('sl_seconds', 0):.0f}s"
        values = [
            {"ok": "OK", AMBER: "AMBER", RED: "RED"}[level], queue.get("name") or queue.get("queue"),
            str(queue.get("waiting", 0)), format_duration(wait) if wait else "—", percent(queue.get("sl1")),
            percent(queue.get("sl2")), target, seconds_text(queue.get("asa")), seconds_text(queue.get("aht")),
            str(queue.get("offered", 0)), str(queue.get("answered", 0)), str(queue.get("abandoned", 0)),
            str(agents.get("available", 0)), str(agents.get("on_call", 0) + agents.get("reserved", 0)),
            str(agents.get("wrap_up", 0)), str(agents.get("not_ready", 0)),
        ]
        cells = [safe_text(v, style, limit=40) for v in values]
        if not style:
            cells[0].stylize("green")
        return cells

    def render_model(self, change: dict[str, Any] | None) -> None:
        super().render_model(change)
        model, now = self.app.model, self.app.server_now()
        only = None if change is None else set(change.get("queues") or ())
        self.rows.sync(list(model.queues), lambda qid: self._row(model.queues[qid], now), only)
        self._summary(now)

    def _summary(self, now: dt.datetime) -> None:
        model = self.app.model
        t = model.totals()
        line = Text()
        line.append(f" Waiting {t['waiting']} ", style="bold")
        line.append(f"  Blocked today {model.counters.get('blocked', 0)}",
                    style="bold red" if model.counters.get("blocked") else "")
        line.append(" (turned away, all workers full)", style="dim")
        repairs = model.counters.get("repairs", 0)
        line.append(f"   Repairs today {repairs}", style="bold yellow" if repairs else "")
        offline = sum(1 for a in model.agents.values() if a.get("phone") == "offline" and a.get("state") != "logged_out")
        if offline:
            line.append(f"   Phones offline {offline}", style="bold red")
        line.append(f"   Agents: {t['available']} available · {t['on_call'] + t['reserved']} on call · "
                    f"{t['wrap_up']} wrap-up · {t['not_ready']} not ready · {t['logged_out']} logged out")
        line.append("   Enter: queue detail", style="dim")  # the table's own Enter hides it from the footer
        self.query_one("#wall-summary", Static).update(line, layout=False)
        notes = Text()
        for qid, q in model.queues.items():
            level, reasons = alert(q, model.thresholds, now)
            if level != "ok":
                notes.append(f" {level.upper()} ", style=ALERT_STYLE[level])
                notes.append(" ")
                notes.append_text(safe_text(q.get("name") or qid, "bold", limit=40))
                notes.append(": " + "; ".join(reasons) + "\n")
        if not notes.plain:
            notes.append("All queues within target.", style="green")
        if notes.plain != self._alerts_shown:  # a new layout only when the number of lines changes
            lines = notes.plain.count("\n")
            self.query_one("#wall-alerts", Static).update(notes, layout=lines != self._alerts_shown.count("\n"))
            self._alerts_shown = notes.plain

    def tick(self) -> None:
        super().tick()
        model, now = self.app.model, self.app.server_now()
        waiting = {qid for qid, q in model.queues.items() if q.get("waiting") or q.get("ringing")}
        if waiting:  # only the rows whose longest wait grows
            self.rows.sync(list(model.queues), lambda qid: self._row(model.queues[qid], now), waiting)
        self._summary(now)

    def action_open_queue(self) -> None:
        queue = self.rows.selected()
        if queue is not None:
            self.post_message(self.QueueOpened(queue))

    @on(DataTable.RowSelected, "#wall-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_queue()


# ----------------------------------------------------------------------------- agents

AGENT_WIDTHS = {"agent": 8, "name": 18, "state": 10, "reason": 15, "in_state": 8, "caller": 40, "queue": 12,
                "calls": 5, "aht": 6, "occupancy": 9, "owed": 5, "phone": 8}


class AgentPicked(Message):
    """An action asked for on one agent of the list; ``agent`` is its row as the server sent it."""

    def __init__(self, agent: dict[str, Any]) -> None:
        super().__init__()
        self.agent = agent


class AgentsScreen(ModeScreen):
    """Every agent: state, reason, time in state, caller, calls, AHT, occupancy, dispositions owed; sort, filter, act."""

    MODE = "agents"
    BINDINGS = [
        Binding("o", "sort", "Sort by next"),
        Binding("r", "reverse", "Reverse"),
        Binding("slash", "filter", "Filter"),
        Binding("f", "force_state", "Force state"),
        Binding("k", "skills", "Skills"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    class ForceStateRequested(AgentPicked):
        """``f`` on an agent: the app asks for the state, confirms it and sends it to the server."""

    class SkillsRequested(AgentPicked):
        """``k`` on an agent: the app opens the skills editor, confirms and sends the change."""

    def __init__(self) -> None:
        super().__init__()
        self.sort = "agent"
        self.reverse = False
        self.filter_text = ""

    def content(self) -> ComposeResult:
        yield Static(Text(""), id="agents-status")
        yield Input(placeholder="filter: words in id, name, state, reason, queue, caller (Enter applies, Esc clears)",
                    id="agents-filter", classes="hidden", disabled=True)
        table = DataTable(id="agents-table", cursor_type="row", zebra_stripes=True)
        self.rows = RowTable(table, [(key, title, AGENT_WIDTHS[key]) for key, title in AGENT_COLUMNS])
        yield table

    def _row(self, agent: dict[str, Any], now: dt.datetime) -> list[Text]:
        model = self.app.model
        state = agent.get("state") or "logged_out"
        call = agent.get("call") or {}
        in_state = model.time_in_state(agent, now)
        occ = agent.get("occupancy")
        return [
            safe_text(agent.get("agent_id"), "bold"), safe_text(agent.get("name"), limit=30),
            Text(STATE_LABELS.get(state, state), style=STATE_STYLE.get(state, "")),
            safe_text(words(agent.get("reason")), limit=20),
            Text(format_duration(in_state) if state != "logged_out" else ""),
            caller_cell(call, model.region), safe_text(call.get("queue") or "", limit=20),
            Text(str(agent.get("calls") or 0)), Text(seconds_text(agent.get("aht")) if agent.get("calls") else "—"),
            Text(percent(occ) if occ is not None else "—"),
            # dispositions the agent still owes (a pending wrap-up list, not a failure)
            Text(str(agent.get("owed") or 0), style="bold cyan" if agent.get("owed") else "dim"),
            # a registering phone's state; a fixed phone cannot tell
            Text("offline", style="bold red") if agent.get("phone") == "offline" else
            Text("online", style="green") if agent.get("phone") == "online" else Text("—", style="dim"),
        ]

    def _status(self) -> None:
        title = dict(AGENT_COLUMNS)[self.sort]
        line = Text(f" {len(self.rows.keys)} of {len(self.app.model.agents)} agents · sorted by {title}"
                    f"{' (reversed)' if self.reverse else ''}")
        if self.filter_text:
            line.append(" · filter: ")
            line.append_text(safe_text(self.filter_text, "bold", limit=60))
        line.append("   o sort · r reverse · / filter · f force state · k skills", style="dim")
        self.query_one("#agents-status", Static).update(line, layout=False)

    def render_model(self, change: dict[str, Any] | None) -> None:
        super().render_model(change)
        model, now = self.app.model, self.app.server_now()
        view = model.agents_view(sort=self.sort, reverse=self.reverse, text=self.filter_text, now=now)
        only = None if change is None else set(change.get("agents") or ())
        self.rows.sync([a["agent_id"] for a in view], lambda aid: self._row(model.agents[aid], now), only)
        self._status()

    def tick(self) -> None:
        super().tick()
        if self.sort == "in_state":
            self.render_model(None)
            return
        table = self.query_one("#agents-table", DataTable)
        model, now = self.app.model, self.app.server_now()
        # Only the rows on screen: times in state grow for every agent, but 500 rows are not all visible.
        first = max(0, int(table.scroll_y) - 2)
        for key in self.rows.keys[first:first + table.size.height + 4]:
            agent = model.agents.get(key)
            if agent is None or agent.get("state") == "logged_out":
                continue
            self.rows.set_cell(key, "in_state", Text(format_duration(model.time_in_state(agent, now))))

    def selected_agent(self) -> dict[str, Any] | None:
        key = self.rows.selected()
        return self.app.model.agents.get(key) if key is not None else None

    def action_sort(self) -> None:
        ids = [c for c, _ in AGENT_COLUMNS]
        self.sort = ids[(ids.index(self.sort) + 1) % len(ids)]
        self.render_model(None)

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.render_model(None)

    def action_filter(self) -> None:
        box = self.query_one("#agents-filter", Input)
        box.disabled = False
        box.remove_class("hidden")
        box.focus()

    @on(Input.Submitted, "#agents-filter")
    def _filtered(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        if not self.filter_text:
            event.input.add_class("hidden")
            event.input.disabled = True
        self.query_one("#agents-table", DataTable).focus()
        self.render_model(None)

    def action_clear_filter(self) -> None:
        box = self.query_one("#agents-filter", Input)
        box.value = ""
        box.add_class("hidden")
        box.disabled = True
        self.filter_text = ""
        self.query_one("#agents-table", DataTable).focus()
        self.render_model(None)

    def _ask_for(self, message: type[AgentPicked]) -> None:
        agent = self.selected_agent()
        if agent is None:
            self.app.notify("Pick an agent first (arrow keys).", markup=False)
            return
        self.post_message(message(agent))

    def action_force_state(self) -> None:
        self._ask_for(self.ForceStateRequested)

    def action_skills(self) -> None:
        self._ask_for(self.SkillsRequested)


# ----------------------------------------------------------------------------- queue detail

CALLER_COLUMNS = [("pos", "#"), ("caller", "Caller"), ("status", "Status"), ("waited", "Waited"),
                  ("priority", "Priority"), ("skills", "Needs"), ("relax", "Relaxed")]


class QueueScreen(ModeScreen):
    """One queue's callers: those ringing at an agent, then those waiting in service order, and why
    no agent has taken the oldest. The counts above the list are counted from its rows."""

    MODE = "queue"
    BINDINGS = [Binding("left_square_bracket", "queue(-1)", "Prev queue"),
                Binding("right_square_bracket", "queue(1)", "Next queue")]

    class Shown(Message):
        """The mode came to the front: the app loads the queue's detail."""

    class Stepped(Message):
        """``[`` or ``]``: the app moves to the previous or next queue, redraws ``screen``, loads the detail."""

        def __init__(self, screen: QueueScreen, step: int) -> None:
            super().__init__()
            self.screen = screen
            self.step = step

    def __init__(self) -> None:
        super().__init__()
        self.detail: dict[str, Any] | None = None

    def content(self) -> ComposeResult:
        yield Static(Text(""), id="queue-title")
        table = DataTable(id="callers-table", cursor_type="row", zebra_stripes=True)
        for key, title in CALLER_COLUMNS:
            table.add_column(title, key=key)
        yield table
        with VerticalScroll(id="why-pane"):
            yield Static(Text(""), id="why")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.post_message(self.Shown())

    def action_queue(self, step: int) -> None:
        self.post_message(self.Stepped(self, step))

    def show(self, detail: dict[str, Any] | None) -> None:
        self.detail = detail
        self.render_model(None)

    def tick(self) -> None:
        self.render_model(None)  # the waits grow

    def render_model(self, change: dict[str, Any] | None) -> None:
        super().render_model(change)
        if change is not None:
            return  # title and rows are drawn together when the server's detail comes (asked for on each change)
        model, now = self.app.model, self.app.server_now()
        qid = self.app.queue_id
        queue = model.queues.get(qid or "", {})
        table = self.query_one("#callers-table", DataTable)
        detail = self.detail if self.detail and self.detail.get("queue") == qid else None
        cursor = table.cursor_row  # kept across the once-a-second redraw
        table.clear()
        why = self.query_one("#why", Static)
        if detail is None:
            ringing = int(queue.get("ringing") or 0)
            self._title(queue, qid, max(0, int(queue.get("waiting") or 0) - ringing), ringing,
                        int(queue.get("callbacks_waiting") or 0))
            why.update(Text("Loading…", style="dim"))
            return
        ringing_agents = model.ringing_at(qid or "")
        for agent in ringing_agents:
            call = agent.get("call") or {}
            status = Text("ringing at ")
            status.append_text(safe_text(f"{agent.get('agent_id')} {agent.get('name') or ''}".strip(), limit=30))
            status.append(f" for {format_duration(model.time_in_state(agent, now))}")
            table.add_row(Text(""), caller_cell(call, model.region), status, Text("—"), Text(""), Text(""), Text(""),
                          key=f"ringing:{call.get('call_id')}")
        callers = detail.get("callers") or []
        for c in callers:
            since = c.get("since")
            waited = c.get("waited")
            if isinstance(since, str):
                moment = parse_time(since)
                waited = (now - moment).total_seconds() if moment else waited
            caller = caller_cell({"ani": c.get("callback") or c.get("ani"), "display_name": c.get("display_name")},
                                 model.region)
            if c.get("callback"):
                caller = Text("callback ").append_text(caller)
            status = Text("callback request" if c.get("callback") else "waiting")
            needs = safe_text(skills_text(c.get("skills")) or "any agent", limit=40)
            table.add_row(Text(str(c.get("position"))), caller, status, Text(format_duration(waited)),
                          Text(str(c.get("priority"))), needs, Text(str(c.get("relax_step") or "")), key=c.get("call_id"))
        callbacks = sum(1 for c in callers if c.get("callback"))
        total = detail.get("waiting")
        more = (f" (the first {len(callers)} of {total} are listed)"
                if isinstance(total, int) and total > len(callers) else "")
        self._title(queue, qid, len(callers) - callbacks, len(ringing_agents), callbacks, more)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False, scroll=False)
        why.update(self._why(detail, len(ringing_agents)))

    def _title(self, queue: dict[str, Any], qid: str | None, waiting: int, ringing: int, callbacks: int,
               more: str = "") -> None:
        title = Text()
        title.append_text(safe_text(queue.get("name") or qid or "no queue", "bold", limit=40))
        title.append(f"  ({qid})  waiting {waiting}, ringing {ringing}, callbacks {callbacks}{more}   [ ] other queue")
        self.query_one("#queue-title", Static).update(title, layout=False)

    def _why(self, detail: dict[str, Any], ringing: int) -> Text:
        why = detail.get("why")
        text = Text()
        if not why:
            if ringing:
                text.append(f"No caller is waiting for an agent: {ringing} ringing at an agent (listed above).",
                            style="green")
            else:
                text.append("Nobody is waiting.", style="green")
            return text
        model = self.app.model
        oldest = next((c for c in detail.get("callers") or () if c.get("call_id") == why.get("call_id")), {})
        since = parse_time(oldest.get("since"))
        text.append("Why the oldest caller", style="bold")
        if since is not None:
            text.append(f" (waiting since {center_time(since, self.app.zone, '%H:%M:%S')})", style="bold")
        text.append(" is still waiting", style="bold")
        need = skills_text(why.get("requirement")) or "no skills"
        strategy = STRATEGY_WORDS.get(str(why.get("strategy")), words(why.get("strategy")))
        text.append(f"  (routing: {strategy}, needs {need}, relax step {why.get('relax_step')})\n")
        summary = why.get("summary") or {}
        if not summary:
            text.append("No agent is a member of this queue.\n", style="bold red")
        else:
            text.append("  " + ", ".join(f"{n} {VERDICT_WORDS.get(code, words(code))}" for code, n in sorted(
                summary.items(), key=lambda kv: -kv[1])) + "\n")

        def queue_name(queue: str) -> str:
            return str(model.queues.get(queue, {}).get("name") or queue)

        for v in (why.get("verdicts") or [])[:40]:
            text.append(f"  {v.get('agent_id')}", style="bold")
            name = model.agents.get(v.get("agent_id"), {}).get("name")
            if name:
                text.append(" ")
                text.append_text(safe_text(name, limit=30))
            text.append(": ")
            text.append_text(safe_text(verdict_text(v, queue_name), limit=100))
            text.append("\n")
        more = len(why.get("verdicts") or []) - 40
        if more > 0:
            text.append(f"  … and {more} more\n", style="dim")
        return text
