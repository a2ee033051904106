"""``callcenter supervisor``: the supervisor's dashboard, keyboard first, connected over CTI.

Five modes, one key each: the wallboard (every queue, amber then red as it slips), the agents
(sortable, filterable, with actions), one queue's waiting callers and why the oldest waits, the
last hour's trends, and Erlang C staffing. The server pushes coalesced updates; the dashboard
never polls. It only changes what the server told it to, and redraws only the rows that changed.

Supervisor actions (force a state, log an agent out, change skills) go to the server after a
confirmation; the server carries them out through the ACD and writes them to the audit log with
this supervisor's id. A dropped link is re-established on its own and the dashboard reloads.
"""

from __future__ import annotations

import datetime as dt
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import App
from textual.binding import Binding

from callcenter.clock import utcnow
from callcenter.cti.client import AgentLink
from callcenter.cti.errors import CtiError, CtiRequestError
from callcenter.tui import cti_link
from callcenter.tui.agent_screens import ConfirmScreen, HelpScreen
from callcenter.tui.center_clock import center_time
from callcenter.tui.supervisor_charts import StaffingScreen, TrendsScreen
from callcenter.tui.supervisor_dialogs import ForceStateScreen, SkillsScreen
from callcenter.tui.supervisor_model import OK, SupervisorModel, skills_text, state_text, words
from callcenter.tui.supervisor_screens import ALERT_STYLE, AgentsScreen, ModeScreen, QueueScreen, WallboardScreen
from screenpop.render import safe_text

_LINK_STYLE = {"up": "green", "connecting": "yellow", "down": "bold red", "failed": "bold red"}

HELP_ROWS = [
    ("1", "Wallboard: every queue, alerts, blocked calls", "any time"),
    ("2", "Agents: state, time in state, caller, calls, AHT, occupancy", "any time"),
    ("3", "Queue detail: waiting callers and why the oldest waits", "any time"),
    ("4", "Trends: waiting, service level, arrivals over the last hour", "any time"),
    ("5", "Staffing: Erlang C agents needed against those logged in", "any time"),
    ("Enter", "Open the selected queue's detail", "wallboard"),
    ("[ / ]", "Previous / next queue (trends: also all queues)", "queue, trends"),
    ("o", "Sort by the next column (the status line says which)", "agents"),
    ("r", "Reverse the sort", "agents"),
    ("/", "Filter agents by words (id, name, state, reason, queue, caller); Esc clears", "agents"),
    ("f", "Force the selected agent ready, not ready (reason) or logged out; you confirm", "agents"),
    ("k", "Change the selected agent's skills and levels; you confirm", "agents"),
    ("?", "This help", "any time"),
    ("Ctrl+Q", "Quit the dashboard (nothing changes on the server)", "any time"),
]

MODE_NAMES = {"wallboard": "Wallboard", "agents": "Agents", "queue": "Queue", "trends": "Trends",
              "staffing": "Staffing"}


class SupervisorApp(App[str | None]):
    """The dashboard. Exits with a message (and return code 1) when the login is refused."""

    CSS_PATH = "supervisor_console.tcss"
    TITLE = "Supervisor"
    ENABLE_COMMAND_PALETTE = False
    MODES = {"wallboard": WallboardScreen, "agents": AgentsScreen, "queue": QueueScreen, "trends": TrendsScreen,
             "staffing": StaffingScreen}
    DEFAULT_MODE = "wallboard"
    BINDINGS = [
        Binding("1", "mode('wallboard')", "Wallboard"),
        Binding("2", "mode('agents')", "Agents"),
        Binding("3", "mode('queue')", "Queue"),
        Binding("4", "mode('trends')", "Trends"),
        Binding("5", "mode('staffing')", "Staffing"),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    LinkChanged = cti_link.LinkChanged
    LoggedIn = cti_link.LoggedIn
    EventReceived = cti_link.EventReceived

    def __init__(
        self,
        *,
        url: str,
        supervisor_id: str,
        pin: str,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        tick: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = SupervisorModel(supervisor_id)
        self.clock = clock
        self.monotonic = monotonic
        self.tick_seconds = tick
        self.link = AgentLink(
            url, supervisor_id, pin, ssl_context=ssl_context, role="supervisor",
            client="callcenter-supervisor",
            on_event=lambda message: self.post_message(self.EventReceived(message)),
            on_login=lambda data: self.post_message(self.LoggedIn(data)),
            on_status=lambda status, detail: self.post_message(self.LinkChanged(status, detail)),
        )
        self.queue_id: str | None = None
        self.trend_queue: str | None = None
        self._change: dict[str, Any] | None = {}
        self._render_pending = False
        self._pending_marks: list[float] = []
        self.latencies: deque[float] = deque(maxlen=100_000)
        """Seconds from the oldest change in an update (server side) to its paint here (same host only)."""
        self.arrivals: deque[float] = deque(maxlen=100_000)
        """Seconds from that change to the update being handled here, before drawing."""
        self.renders = 0
        self._blocked_toast = -1e9
        self.render_seconds: deque[float] = deque(maxlen=100_000)

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self.sub_title = self.model.supervisor_id
        self.run_link()
        self.set_interval(self.tick_seconds, self._tick)

    @work(exclusive=True, group="link")
    async def run_link(self) -> None:
        await self.link.run()

    async def action_quit(self) -> None:
        await self.link.stop()
        self.exit(None)

    async def on_unmount(self) -> None:
        await self.link.stop()

    def server_now(self) -> dt.datetime:
        return self.model.now(self.clock())

    # ------------------------------------------------------------------ link messages

    @on(LinkChanged)
    def _link_changed(self, message: LinkChanged) -> None:
        self.model.link, self.model.link_detail = message.status, message.detail
        if message.status == "failed" and self.model.logins == 0:
            detail = message.detail
            if "role" in detail:
                detail += ". This dashboard is for supervisors: agents use `callcenter agent`."
            self.exit(f"login refused: {detail}", return_code=1)
            return
        if message.status == "down" and self.model.logins:
            self.notify(f"CTI link lost ({message.detail}); reconnecting…", severity="warning", markup=False)
        self._render_topbar()

    @on(LoggedIn)
    def _logged_in(self, message: LoggedIn) -> None:
        data = message.data
        role = (data.get("agent") or {}).get("role")
        if role != "supervisor":  # a server that does not check the role itself
            self.exit(f"login refused: {self.model.supervisor_id} has the {role} role, not supervisor. "
                      "This dashboard is for supervisors: agents use `callcenter agent`.", return_code=1)
            return
        self.model.on_login(data)
        self.title = f"Supervisor · {self.model.center}" if self.model.center else "Supervisor"
        self.sub_title = f"{self.model.supervisor_id} {self.model.name}"
        if self.model.logins > 1:
            self.notify("Reconnected: reloading the dashboard", markup=False)
        self._render_topbar()  # the clock: the center's zone is known now
        self.load_snapshot()

    @work(exclusive=True, group="snapshot")
    async def load_snapshot(self) -> None:
        try:
            data = await self.link.request("supervisor.snapshot")
        except CtiError as exc:
            self.notify(f"Could not load the dashboard: {exc}", severity="error", markup=False)
            return
        self.model.on_snapshot(data, self.clock())
        if self.queue_id not in self.model.queues:  # start on the busiest queue
            busiest = max(self.model.queues.values(), key=lambda q: q.get("waiting") or 0, default=None)
            self.queue_id = busiest["queue"] if busiest else None
        self._schedule_render(None)
        mode = self.current_mode
        if mode == "queue":
            self.load_queue_detail()
        elif mode == "trends":
            self.load_trends()

    @on(EventReceived)
    def _event(self, message: EventReceived) -> None:
        event = message.event
        kind = event.get("type")
        if kind == "supervisor.update":
            change = self.model.on_update(event, self.clock())
            if isinstance(event.get("changed_mono"), (int, float)):
                self._pending_marks.append(float(event["changed_mono"]))
                self.arrivals.append(time.monotonic() - float(event["changed_mono"]))
            self._schedule_render(change)
            mode = self.current_mode
            if mode == "queue" and self.queue_id in change["queues"]:
                self.load_queue_detail()
            elif mode == "trends" and change["staffing"]:
                self.load_trends()
        elif kind == "call.blocked":
            now = self.monotonic()
            if now - self._blocked_toast >= 5:  # one toast per burst; the wallboard counts them all
                self._blocked_toast = now
                self.notify(f"Callers are being turned away ({event.get('status')} {event.get('reason') or ''}): "
                            "every worker is full", severity="warning", markup=False, timeout=4)
        elif kind == "session.closed":
            self.notify(f"The server closed this session: {event.get('reason')}", severity="warning", markup=False)

    # ------------------------------------------------------------------ rendering (coalesced)

    def _schedule_render(self, change: dict[str, Any] | None) -> None:
        """Merge ``change`` into what is waiting to be drawn; draw once after the queued messages."""
        if change is None or self._change is None:
            self._change = None
        else:
            merged = self._change
            merged.setdefault("queues", set()).update(change.get("queues") or ())
            merged.setdefault("agents", set()).update(change.get("agents") or ())
            merged["counters"] = merged.get("counters", False) or change.get("counters", False)
            merged["staffing"] = merged.get("staffing", False) or change.get("staffing", False)
        if not self._render_pending:
            self._render_pending = True
            self.call_later(self._render)

    def _main(self) -> ModeScreen | None:
        try:
            screen = self.screen_stack[0]
        except Exception:
            return None
        return screen if isinstance(screen, ModeScreen) else None

    def _render(self) -> None:
        self._render_pending = False
        change, self._change = self._change, {}
        marks, self._pending_marks = self._pending_marks, []
        screen = self._main()
        if screen is None or not self.model.loaded:
            return
        started = time.perf_counter()
        screen.render_model(change)
        self.render_seconds.append(time.perf_counter() - started)
        self.renders += 1
        if marks:
            self.call_after_refresh(self._painted, min(marks))

    def _painted(self, changed_mono: float) -> None:
        self.latencies.append(time.monotonic() - changed_mono)  # CLOCK_MONOTONIC: comparable with the server's

    def _render_topbar(self) -> None:
        screen = self._main()
        if screen is not None:
            screen.render_topbar()

    def _tick(self) -> None:
        screen = self._main()
        if screen is not None and self.model.loaded:
            screen.tick()
        elif screen is not None:
            screen.render_topbar()

    def topbar(self) -> Text:
        m = self.model
        now = self.server_now()
        bar = Text()
        bar.append(" SUPERVISOR ", style="bold white on dark_blue")
        bar.append(" ")
        for mode, name in MODE_NAMES.items():
            key = list(MODE_NAMES).index(mode) + 1
            bar.append(f" {key} {name} ", style="reverse bold" if mode == self.current_mode else "dim")
        bar.append(f"   {center_time(now, self.zone, '%H:%M:%S')}", style="bold")
        if m.loaded:
            worst = m.worst(now)
            if worst != OK:
                bar.append("  ")
                bar.append(f" {worst.upper()} ", style=ALERT_STYLE[worst])
            blocked = m.counters.get("blocked", 0)
            bar.append(f"  blocked {blocked}", style="bold red" if blocked else "dim")
        bar.append("   link ")
        bar.append(m.link, style=_LINK_STYLE.get(m.link, ""))
        if m.link != "up" and m.link_detail:
            bar.append(" ")
            bar.append_text(safe_text(m.link_detail, "dim", limit=60))
        elif not m.loaded and m.link == "up":
            bar.append("  loading…", style="dim")
        return bar

    @property
    def zone(self) -> dt.tzinfo:
        """The center's zone (``hours.timezone``, sent at login): every time of day is shown in it."""
        try:
            return ZoneInfo(self.model.timezone)
        except Exception:
            return dt.UTC

    # ------------------------------------------------------------------ modes and queues

    def action_mode(self, mode: str) -> None:
        self.switch_mode(mode)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(HELP_ROWS))

    def show_queue(self, queue_id: str) -> None:
        self.queue_id = queue_id
        self.trend_queue = queue_id
        self.switch_mode("queue")

    @on(WallboardScreen.QueueOpened)
    def _queue_opened(self, message: WallboardScreen.QueueOpened) -> None:
        self.show_queue(message.queue_id)

    @on(QueueScreen.Shown)
    def _queue_shown(self) -> None:
        self.load_queue_detail()

    @on(QueueScreen.Stepped)
    def _queue_stepped(self, message: QueueScreen.Stepped) -> None:
        self.step_queue(message.step, allow_all=False)
        message.screen.render_model(None)
        self.load_queue_detail()

    @on(TrendsScreen.Shown)
    def _trends_shown(self) -> None:
        self.load_trends()

    @on(TrendsScreen.Stepped)
    def _trends_stepped(self, message: TrendsScreen.Stepped) -> None:
        self.step_queue(message.step, allow_all=True)
        self.load_trends()

    def step_queue(self, step: int, *, allow_all: bool) -> None:
        ids: list[str | None] = list(self.model.queue_ids())
        if allow_all:
            ids = [None, *ids]
            current = self.trend_queue
        else:
            current = self.queue_id
        if not ids:
            return
        index = ids.index(current) if current in ids else 0
        chosen = ids[(index + step) % len(ids)]
        if allow_all:
            self.trend_queue = chosen
        else:
            self.queue_id = chosen

    @work(exclusive=True, group="detail")
    async def load_queue_detail(self) -> None:
        if self.queue_id is None or self.model.link != "up":
            return
        try:
            data = await self.link.request("queue.detail", queue=self.queue_id)
        except CtiError as exc:
            self.notify(f"Queue detail: {exc}", severity="warning", markup=False)
            return
        screen = self._main()
        if isinstance(screen, QueueScreen):
            screen.show(data)

    @work(exclusive=True, group="trends")
    async def load_trends(self) -> None:
        if self.model.link != "up":
            return
        fields = {"queue": self.trend_queue} if self.trend_queue else {}
        try:
            data = await self.link.request("supervisor.trends", **fields)
        except CtiError as exc:
            self.notify(f"Trends: {exc}", severity="warning", markup=False)
            return
        screen = self._main()
        if isinstance(screen, TrendsScreen):
            screen.show(data)

    # ------------------------------------------------------------------ actions

    def _who(self, agent: dict[str, Any]) -> str:
        return f"{agent.get('agent_id')} {safe_text(agent.get('name') or '', limit=40).plain}".strip()

    @on(AgentsScreen.ForceStateRequested)
    def _force_state_requested(self, message: AgentsScreen.ForceStateRequested) -> None:
        self.force_state(message.agent)

    @on(AgentsScreen.SkillsRequested)
    def _skills_requested(self, message: AgentsScreen.SkillsRequested) -> None:
        self.edit_skills(message.agent)

    @work(exclusive=True, group="dialog")
    async def force_state(self, agent: dict[str, Any]) -> None:
        choice = await self.push_screen_wait(ForceStateScreen(agent, self.model.not_ready_reasons))
        if choice is None:
            return
        state, reason = choice
        what = {"ready": "ready", "not_ready": state_text("not_ready", reason),
                "logged_out": "logged out of the ACD"}[state]
        question = (f"Set agent {self._who(agent)} {what}?\n"
                    f"They are {state_text(agent.get('state'), agent.get('reason'))} now. "
                    "This is recorded in the audit log under your id.")
        if not await self.push_screen_wait(ConfirmScreen(question)):
            return
        fields: dict[str, Any] = {"agent_id": agent["agent_id"], "state": state}
        if reason:
            fields["reason"] = reason
        try:
            data = await self.link.request("agent.force_state", **fields)
        except CtiRequestError as exc:
            self.notify(f"Not changed: {exc.message}", severity="warning", markup=False, timeout=8)
            return
        except CtiError as exc:
            self.notify(f"Not changed: {exc}", severity="error", markup=False, timeout=8)
            return
        done = state_text(data.get("state"), data.get("reason"))
        if data.get("pending"):
            self.notify(f"Agent {agent['agent_id']} goes not ready ({words(data['pending'])}) after the current call",
                        markup=False)
        else:
            self.notify(f"Agent {agent['agent_id']} is now {done}", markup=False)

    @work(exclusive=True, group="dialog")
    async def edit_skills(self, agent: dict[str, Any]) -> None:
        error, text = None, None
        while True:
            skills = await self.push_screen_wait(SkillsScreen(agent, error, text))
            if skills is None:
                return
            question = (f"Change the skills of agent {self._who(agent)}?\n"
                        f"  from: {skills_text(agent.get('skills')) or '(none)'}\n"
                        f"  to:   {skills_text(skills) or '(none)'}\n"
                        "This is recorded in the audit log under your id.")
            if not await self.push_screen_wait(ConfirmScreen(question)):
                return
            try:
                data = await self.link.request("agent.set_skills", agent_id=agent["agent_id"], skills=skills)
            except CtiRequestError as exc:
                error, text = f"Not changed: {exc.message}", skills_text(skills)
                continue
            except CtiError as exc:
                self.notify(f"Not changed: {exc}", severity="error", markup=False)
                return
            self.notify(f"Agent {agent['agent_id']} skills: {skills_text(data.get('skills')) or '(none)'}",
                        markup=False)
            return
