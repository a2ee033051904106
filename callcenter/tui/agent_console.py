"""``callcenter agent``: the agent's console, keyboard first, connected to the server over CTI.

The top bar shows the agent's state as the server has it (Available, Not ready with its reason,
Ringing, On call with the talk time, Wrap-up with its time) and the link. When a call is offered
the phone rings and, at the same moment, the screen pop appears: this call (queue, wait, IVR route
and keys) above the customer's whole picture, or a choice when several customers share the number,
or a new-contact pop. Call controls, notes, the disposition form, callbacks, search and recent
contacts are each one key away; every key is in the footer and in the help (``?``).

A dropped link is re-established on its own: the console logs in again and the server sends the
state and the call back. Nothing here touches a call directly, so a console crash never ends one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import ssl
import time
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Label, RichLog, Static, TextArea

from callcenter.clock import parse_time, server_offset, utcnow
from callcenter.cti.client import AgentLink
from callcenter.cti.errors import CtiConnectionError, CtiError, CtiRequestError
from callcenter.tui import cti_link
from callcenter.tui.agent_disposition import DispositionScreen, OwedPicker
from callcenter.tui.agent_lists import CallbacksScreen, ProfileScreen, RecentScreen, SearchScreen
from callcenter.tui.agent_model import AgentModel, CallView
from callcenter.tui.agent_screens import (
    ConfirmScreen,
    CustomerPicker,
    HelpScreen,
    QuickCreateScreen,
    ReasonPicker,
    TransferPicker,
)
from callcenter.tui.center_clock import CenterClock, CenterHeader, center_time
from screenpop.numbers import display
from screenpop.pop import CallContext
from screenpop.render import render_call_context, render_pop, safe_text
from screenpop.text import format_duration
from screenpop.wire import WireError, profile_from_wire

_STATE_STYLE = {
    "available": "bold black on green",
    "not_ready": "bold black on yellow",
    "reserved": "bold white on magenta",
    "on_call": "bold white on blue",
    "wrap_up": "bold black on cyan",
    "logged_out": "bold white on grey37",
}
_KEY_LABELS = {"question_mark": "?", "ctrl+q": "^q", "escape": "esc"}
_LINK_STYLE = {"up": "green", "connecting": "yellow", "down": "bold red", "failed": "bold red"}

# (key, action, when it works) for the help screen; the footer shows the same keys.
HELP_ROWS = [
    ("r", "Ready: take calls (a queue that needs the disposition first opens its form)", "not ready, wrap-up"),
    ("n", "Not ready, with a reason (ringing: gives the call back; on a call: after it)",
     "available, ringing, on a call, wrap-up"),
    ("h", "Hang up", "on a call"),
    ("o", "Hold / resume", "on a call"),
    ("t", "Blind transfer to a queue or an agent", "on a call"),
    ("e", "Write notes (Esc leaves the notes); they go with the call's disposition", "any time"),
    ("d", "Disposition: outcome, notes, callback, for one call you owe it for (a list when several)",
     "dispositions owed"),
    ("w", "More wrap-up time (queues that allow extensions)", "wrap-up"),
    ("p", "Pick the customer (shared number)", "when the pop offers a choice"),
    ("a", "New contact: create the caller", "when the number is unknown"),
    ("c", "My callbacks (due, overdue); d dials one", "any time"),
    ("s", "Find a customer by number, id or name", "any time"),
    ("l", "My recent contacts", "any time"),
    ("x", "Log out of the ACD (end of shift) and quit", "not on a call"),
    ("?", "This help", "any time"),
    ("Ctrl+Q", "Quit the console (calls go on)", "any time"),
    ("Ctrl+S", "Save, in the disposition and new-contact forms", "in those forms"),
    ("Esc", "Close a dialog / leave the notes", "in dialogs, notes"),
]

_AGENT_ACTIONS = {"ready", "not_ready", "hang_up", "hold", "transfer", "notes", "dispose", "pick_customer",
                  "add_contact", "callbacks", "recent", "extend_wrap_up"}
_SERVER_ACTIONS_ANY_ROLE = {"search", "logout"}
_SERVER_ACTIONS = _AGENT_ACTIONS | _SERVER_ACTIONS_ANY_ROLE


class PopPane(RichLog):
    """The screen pop, drawn once into lines (Textual's line API) at the pane's width.

    Showing a pop then costs one rich render and a repaint of the visible lines; a widget that
    sizes itself to its content would render the whole pop again to measure its height and lay
    the screen out anew. Drawn again only when the pane's width changes.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, auto_scroll=False, **kwargs)
        self._shown: RenderableType | None = None
        self._drawn_width = 0

    def show(self, renderable: RenderableType) -> None:
        self._shown = renderable
        self._draw()

    def _draw(self) -> None:
        self.clear()
        if self._shown is None:
            return
        width = self.scrollable_content_region.width
        self._drawn_width = width
        self.write(self._shown, width=width if width > 0 else None, expand=True)
        self.scroll_home(animate=False, immediate=True)

    def on_resize(self, event) -> None:
        if self._shown is not None and self.scrollable_content_region.width != self._drawn_width:
            self._draw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_style = None

    @property
    def rich_style(self):
        """Worked out from the styles of every ancestor: once per style change, not once per line painted."""
        style = getattr(self, "_line_style", None)
        if style is None:
            style = self._line_style = super().rich_style
        return style


class AgentConsoleApp(App[str | None]):
    """The agent's console. Exits with a message (and return code 1) when the login is refused."""

    CSS_PATH = "agent_console.tcss"
    TITLE = "Agent console"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("r", "ready", "Ready"),
        Binding("n", "not_ready", "Not ready"),
        Binding("h", "hang_up", "Hang up"),
        Binding("o", "hold", "Hold"),
        Binding("t", "transfer", "Transfer"),
        Binding("e", "notes", "Notes"),
        Binding("d", "dispose", "Dispose"),
        Binding("w", "extend_wrap_up", "More time"),
        Binding("p", "pick_customer", "Pick customer"),
        Binding("a", "add_contact", "New contact"),
        Binding("c", "callbacks", "Callbacks"),
        Binding("s", "search", "Search"),
        Binding("l", "recent", "Recent"),
        Binding("x", "logout", "Log out"),
        Binding("question_mark", "help", "Help"),
        Binding("escape", "leave_notes", "Leave notes", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    LinkChanged = cti_link.LinkChanged
    LoggedIn = cti_link.LoggedIn
    EventReceived = cti_link.EventReceived

    def __init__(
        self,
        *,
        url: str,
        agent_id: str,
        pin: str,
        ssl_context: ssl.SSLContext | None = None,
        not_ready_reason: str | None = None,
        phone: str | None = None,
        monotonic=time.monotonic,
    ) -> None:
        super().__init__()
        self.model = AgentModel(agent_id)
        self.monotonic = monotonic
        self.link = AgentLink(
            url, agent_id, pin, ssl_context=ssl_context, not_ready_reason=not_ready_reason, phone=phone,
            on_event=lambda message: self.post_message(self.EventReceived(message)),
            on_login=lambda data: self.post_message(self.LoggedIn(data)),
            on_status=lambda status, detail: self.post_message(self.LinkChanged(status, detail)),
        )
        self.server_offset = dt.timedelta(0)
        self.pop_painted: dict[str, float] = {}
        self._notes_call: str | None = None
        self._loading_notes = False
        self._notes_timer = None
        self._keys_shown: tuple = ()
        self._pop_shown: tuple | None = None
        self._form_open = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield CenterHeader(self.server_now, lambda: self.zone)
        yield Static(Text("connecting…"), id="statebar")
        with Horizontal(id="main"):
            yield PopPane(id="pop-pane")
            with Vertical(id="side"):
                yield Label("Notes  (e writes, Esc leaves)", id="notes-label")
                yield TextArea(id="notes", soft_wrap=True, show_line_numbers=False)
                yield Static(Text(""), id="call-info")
        yield Static(Text(""), id="keys")

    def on_mount(self) -> None:
        self.sub_title = self.model.agent_id
        self.query_one(PopPane).show(self._idle())
        self.call_after_refresh(self._refresh_keys)
        # Everything built so far lives as long as the app: keep the collector from walking it on
        # every pass, which would otherwise land in the middle of painting a pop.
        gc.freeze()
        self.run_link()
        self.set_interval(1.0, self._tick)

    @work(exclusive=True, group="link")
    async def run_link(self) -> None:
        await self.link.run()

    async def action_quit(self) -> None:
        await self.link.stop()
        self.exit(None)

    async def on_unmount(self) -> None:
        await self.link.stop()

    # ------------------------------------------------------------------ time

    def server_now(self) -> dt.datetime:
        return utcnow() + self.server_offset

    def _learn_server_time(self, stamp: Any) -> None:
        offset = server_offset(stamp, utcnow())
        if offset is not None:
            self.server_offset = offset

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.model.timezone)
        except Exception:
            return ZoneInfo("UTC")

    # ------------------------------------------------------------------ link messages

    @on(LinkChanged)
    def _link_changed(self, message: LinkChanged) -> None:
        was = self.model.link
        self.model.link, self.model.link_detail = message.status, message.detail
        if message.status == "failed" and self.model.logins == 0:
            self.exit(f"login refused: {message.detail}", return_code=1)
            return
        if message.status == "down" and self.model.logins and was == "up":
            self.notify(f"CTI link lost ({message.detail}); reconnecting…", severity="warning", markup=False)
        if message.status == "failed":
            self.notify(f"Logged out: {message.detail}", severity="error", timeout=30, markup=False)
        self._refresh_all()

    @on(LoggedIn)
    def _logged_in(self, message: LoggedIn) -> None:
        data = message.data
        snapshot = data.get("snapshot") or {}
        self._learn_server_time(snapshot.get("server_time"))
        had_call = self.model.call.call_id if self.model.call else None
        self.model.on_login(data, self.monotonic())
        self.title = f"Agent console · {self.model.center}" if self.model.center else "Agent console"
        for clock in self.query(CenterClock):
            clock.refresh()  # the center's zone is known now
        self.sub_title = f"{self.model.agent_id} {self.model.name} ({self.model.role})"
        current = self.model.call or self.model.wrap_call
        if current is not None and current.call_id != had_call:
            self._load_notes(current)
        if self.model.logins > 1:
            self.notify("Reconnected: state and call restored from the server", markup=False)
        if self.model.role == "supervisor":
            self.notify("Supervisor login: this console takes no calls; search and look-ups work.", markup=False)
        self._refresh_all()
        if self.model.disposition_blocks:
            self.offer_disposition(self.model.wrap.get("owed_call"))

    @on(EventReceived)
    def _event(self, message: EventReceived) -> None:
        event = message.event
        self._learn_server_time(event.get("at"))
        change = self.model.on_event(event, self.monotonic())
        kind = event.get("type")
        if change == "offer":
            call = self.model.call
            self._load_notes(call)
            self.bell()
            if self.screen is not self.screen_stack[0]:  # a dialog covers the pop: say it in a toast too
                self.notify(f"Incoming call: {self._caller_plain(call)}", title="Ringing", markup=False, timeout=8)
        elif change == "pop":
            self._render_pop()
            call_id = event.get("call_id")
            self.call_after_refresh(self._pop_on_screen, call_id)
        elif change == "ended" and kind in ("call.ended", "call.transferred"):
            self.offer_disposition(event.get("call_id"))
        elif kind == "session.closed":
            self.notify(f"The server closed this session: {event.get('reason')}", severity="warning", markup=False)
        if change == "offer":
            # The pop usually follows within milliseconds: paint it once rather than a placeholder
            # first; if it is late, show the call's context meanwhile.
            self._refresh_all(pop=False)
            call_id = self.model.call.call_id
            self.set_timer(0.15, lambda: self._placeholder(call_id))
        elif change is not None:
            self._refresh_all(pop=change != "pop")
        if kind in ("call.ended", "call.offer_cancelled", "call.transferred") and self.model.call is None:
            # Between calls the console has time: a full collection now (a few ms) makes one less
            # likely to fall in the middle of drawing the next pop (where it costs 15-30 ms).
            self.call_after_refresh(gc.collect)

    def _placeholder(self, call_id: str) -> None:
        call = self.model.owns(call_id)
        if call is not None and call.pop is None:
            self._render_pop()

    def _pop_on_screen(self, call_id: str) -> None:
        self.pop_painted[call_id] = time.monotonic()  # system-wide on Linux: comparable with the server's

    # ------------------------------------------------------------------ rendering

    def _caller_plain(self, call: CallView | None) -> str:
        if call is None:
            return ""
        number = call.callback or call.ani or "withheld"
        if number.startswith("+"):
            number = display(number, self.model.region)
        name = f" “{call.display_name}”" if call.display_name else ""
        return safe_text(f"{number}{name}", limit=80).plain

    def _idle(self) -> RenderableType:
        state = self.model.state
        if state == "available":
            hint = "No call. You are ready: the next call rings here. n: not ready, ? for help."
        elif state == "wrap_up":
            hint = "No call. Wrap-up: d for the disposition, r to be ready, ? for help."
        elif self.model.link != "up":
            hint = f"Not connected: {self.model.link_detail or self.model.link}"
        else:
            hint = "No call. Press r to be ready, ? for help."
        return Text(hint, style="dim")

    def _statebar(self) -> Text:
        m = self.model
        bar = Text()
        bar.append(f" {m.label.upper()} ", style=_STATE_STYLE.get(m.state, "reverse"))
        elapsed = format_duration(m.elapsed(self.monotonic()), pad_minutes=True)
        if elapsed:
            bar.append(f" {elapsed}", style="bold")
        call = m.call
        if call is not None:
            bar.append("   ☎ ")
            bar.append_text(safe_text(self._caller_plain(call), "bold"))
            if call.queue:
                bar.append("  queue ")
                bar.append_text(safe_text(call.queue))
            if call.held:
                bar.append("  ON HOLD", style="bold yellow")
        if m.state == "wrap_up":
            bar.append_text(self._wrap_text())
        if m.owed:
            count = len(m.owed)
            bar.append(f"   {count} disposition{'s' if count > 1 else ''} owed (d)", style="bold cyan")
        bar.append("   link ")
        bar.append(m.link, style=_LINK_STYLE.get(m.link, ""))
        if m.link != "up" and m.link_detail:
            bar.append(" ")
            bar.append_text(safe_text(m.link_detail, "dim", limit=100))
        return bar

    def _wrap_text(self) -> Text:
        """How the wrap-up ends: at a time (with extensions left), or when the disposition is saved."""
        wrap = self.model.wrap or {}
        if wrap.get("owed_call"):
            return Text("   ends when the disposition is saved", style="cyan")
        until = parse_time(wrap.get("until"))
        if until is None:
            return Text("")
        left = max(0.0, (until - self.server_now()).total_seconds())
        text = Text(f"   next call in {format_duration(left, pad_minutes=True)}", style="cyan")
        if wrap.get("extensions_left"):
            text.append("  (w: more time)", style="dim")
        return text

    def _call_info(self) -> Text:
        call = self._shown_call()
        if call is None:
            return Text("")
        info = Text(f"call {call.call_id[:12]}  {call.phase}", style="dim")
        if call.waited is not None:
            info.append(f"  waited {format_duration(call.waited, pad_minutes=True)}", style="dim")
        return info

    def _shown_call(self) -> CallView | None:
        """The call on screen: the current one, else in wrap-up the one just ended (when its pop is known)."""
        m = self.model
        if m.call is not None:
            return m.call
        wrap = m.wrap_call
        if wrap is not None and m.state == "wrap_up" and (wrap.pop is not None or wrap.pop_error):
            return wrap
        return None

    def _render_pop(self) -> None:
        call = self._shown_call()
        view = self._main("#pop-pane", PopPane)
        if view is None:
            return
        # Each update costs a layout pass: skip it when the pane would show the same thing again.
        shown = (call.call_id, id(call.pop), call.pop_error) if call is not None else None
        if shown == self._pop_shown and shown is not None and call.pop is not None:
            return
        idle = ("idle", self.model.state, self.model.link, self.model.link_detail)
        if shown is None and self._pop_shown == idle:
            return
        self._pop_shown = shown if shown is not None else idle
        if call is None:
            view.show(self._idle())
            return
        if call.pop is not None:
            view.show(render_pop(call.pop, now=self.server_now(), region=self.model.region, zone=self.zone))
            return
        context = CallContext(call_id=call.call_id, ani=call.callback or call.ani, display_name=call.display_name,
                              queue=call.queue, waited_seconds=call.waited)
        note = Text(call.pop_error or "Looking up the caller…", style="bold red" if call.pop_error else "dim")
        view.show(Group(render_call_context(context, region=self.model.region), note))

    def _main(self, selector: str, kind: type[Widget]) -> Widget | None:
        """A widget of the main screen, whatever dialog is on top; None while it is built or torn down."""
        try:
            return self.screen_stack[0].query_one(selector, kind)
        except (NoMatches, IndexError):
            return None

    def _refresh_all(self, pop: bool = True) -> None:
        statebar, info = self._main("#statebar", Static), self._main("#call-info", Static)
        if statebar is None or info is None:
            return
        statebar.update(self._statebar(), layout=False)
        info.update(self._call_info(), layout=False)
        if pop:
            self._render_pop()
        # The key line, after the screen with the news (a ringing call, its pop) has been painted.
        self.call_after_refresh(self._refresh_keys)

    def _refresh_keys(self) -> None:
        """The keys that work now, on the bottom line.

        A line of text rather than Textual's footer: that one rebuilds a widget per key whenever
        the keys change (idle, ringing, on a call…), a layout pass long enough to hold up a pop.
        """
        keys = tuple(self.check_action(b.action, ()) for b in self.BINDINGS)
        if keys == self._keys_shown:
            return
        bar = self._main("#keys", Static)
        if bar is None:
            return
        self._keys_shown = keys
        line = Text(no_wrap=True, overflow="ellipsis")
        for binding, shown in zip(self.BINDINGS, keys):
            if binding.show and shown:
                line.append(f" {_KEY_LABELS.get(binding.key, binding.key)} ", style="bold reverse")
                line.append(f" {binding.description}  ")
        bar.update(line, layout=False)

    def _tick(self) -> None:
        statebar = self._main("#statebar", Static)
        if statebar is not None:
            statebar.update(self._statebar(), layout=False)

    # ------------------------------------------------------------------ which keys work now

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that do nothing now are left out of the footer (the help lists them all)."""
        m = self.model
        if action not in _SERVER_ACTIONS:
            return True
        if m.link != "up":
            return False
        if action in _AGENT_ACTIONS and m.role != "agent":
            return False
        call = m.call
        connected = call is not None and call.phase == "connected"
        pop = (call or m.wrap_call).pop if (call or m.wrap_call) else None
        rules = {
            "ready": m.state in ("not_ready", "wrap_up", "logged_out"),
            "not_ready": m.state in ("available", "reserved", "wrap_up", "on_call", "logged_out"),
            "hang_up": connected,
            "hold": connected,
            "transfer": connected,
            "notes": True,
            "dispose": m.needs_disposition,
            "extend_wrap_up": m.state == "wrap_up" and bool((m.wrap or {}).get("extensions_left")),
            "pick_customer": pop is not None and pop.kind == "choose",
            "add_contact": pop is not None and pop.kind == "new",
            "logout": m.state not in ("reserved", "on_call"),
        }
        return bool(rules.get(action, True))

    # ------------------------------------------------------------------ requests

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """One CTI request on the agent's link (used by the dialogs too)."""
        return await self.link.request(kind, **fields)

    @work(group="requests")
    async def send(self, kind: str, done: str | None = None, **fields: Any) -> dict[str, Any] | None:
        try:
            data = await self.request(kind, **fields)
        except CtiRequestError as exc:
            self.notify(f"{kind}: {exc.message}", severity="warning", markup=False)
            return None
        except CtiError as exc:
            self.notify(f"{kind}: {exc}", severity="error", markup=False)
            return None
        if done:
            self.notify(done, markup=False)
        return data

    def action_ready(self) -> None:
        if self.model.disposition_blocks:
            self.notify("This queue needs the disposition before the next call.", markup=False)
            self.run_disposition((self.model.wrap or {}).get("owed_call"))
            return
        if self.model.state == "wrap_up":
            self.send("state.end_wrap_up")
        else:
            self.send("state.ready")

    @work(exclusive=True, group="dialog")
    async def action_not_ready(self) -> None:
        reason = await self.push_screen_wait(ReasonPicker(self.model.not_ready_reasons))
        if reason:
            after = " after this call" if self.model.state == "on_call" else ""
            self.send("state.not_ready", done=f"Not ready{after}: {reason.replace('_', ' ')}", reason=reason)

    def action_hang_up(self) -> None:
        call = self.model.call
        if call is not None:
            self.send("call.hangup", call_id=call.call_id)

    def action_hold(self) -> None:
        call = self.model.call
        if call is not None:
            self.send("call.unhold" if call.held else "call.hold", call_id=call.call_id)

    @work(exclusive=True, group="dialog")
    async def action_transfer(self) -> None:
        call = self.model.call
        if call is None:
            return
        target = await self.push_screen_wait(TransferPicker(self.model.queues, self.model.agents))
        if target:
            self.send("call.transfer", done=f"Transferred to {target}", call_id=call.call_id, target=target)

    def action_notes(self) -> None:
        self.query_one("#notes", TextArea).focus()

    def action_leave_notes(self) -> None:
        if self.focused is self.query_one("#notes", TextArea):
            self.query_one("#pop-pane").focus()

    def action_dispose(self) -> None:
        self.run_disposition()

    def action_extend_wrap_up(self) -> None:
        self.send("state.extend_wrap_up", done="More wrap-up time")

    @work(exclusive=True, group="dialog")
    async def action_logout(self) -> None:
        question = "Log out of the ACD? You will get no calls until you log in again."
        if self.model.owed:
            count = len(self.model.owed)
            question = f"You still owe {count} disposition{'s' if count > 1 else ''} (d). " + question
        if not await self.push_screen_wait(ConfirmScreen(question)):
            return
        try:
            await self.request("logout")
        except CtiError as exc:
            self.notify(f"Log out: {exc}", severity="warning", markup=False)
            return
        await self.link.stop()
        self.exit("logged out")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(HELP_ROWS))

    @work(exclusive=True, group="dialog")
    async def action_callbacks(self) -> None:
        await self.push_screen_wait(CallbacksScreen(self.request, region=self.model.region, zone=self.model.timezone,
                                                    dial_blocked=self._dial_blocked))

    def _dial_blocked(self) -> str | None:
        """Dialling ends a wrap-up: the call it is for needs its disposition first."""
        if self.model.state == "wrap_up" and self.model.wrap_call is not None:
            return "save the disposition of the last call first (Esc, then d)"
        return None

    @work(exclusive=True, group="dialog")
    async def action_recent(self) -> None:
        customer_id = await self.push_screen_wait(
            RecentScreen(self.request, region=self.model.region, zone=self.model.timezone))
        if customer_id is not None:
            await self.push_screen_wait(ProfileScreen(self.request, customer_id, region=self.model.region,
                                                      zone=self.model.timezone, now=self.server_now()))

    @work(exclusive=True, group="dialog")
    async def action_search(self) -> None:
        customer_id = await self.push_screen_wait(
            SearchScreen(self.request, region=self.model.region, zone=self.model.timezone))
        if customer_id is not None:
            await self.push_screen_wait(ProfileScreen(self.request, customer_id, region=self.model.region,
                                                      zone=self.model.timezone, now=self.server_now()))

    # ------------------------------------------------------------------ the caller's identity

    def _pop_call(self) -> CallView | None:
        call = self.model.call or self.model.wrap_call
        return call if call is not None and call.pop is not None else None

    def _show_profile(self, call: CallView, profile_data: Any) -> None:
        try:
            profile = profile_from_wire(profile_data)
        except WireError as exc:
            self.notify(f"unreadable customer: {exc}", severity="error", markup=False)
            return
        call.pop = dataclasses.replace(call.pop, kind="customer", profile=profile, candidates=())
        call.customer_id = profile.customer_id
        self._refresh_all()

    @work(exclusive=True, group="dialog")
    async def action_pick_customer(self) -> None:
        call = self._pop_call()
        if call is None or call.pop.kind != "choose":
            return
        customer_id = await self.push_screen_wait(CustomerPicker(call.pop.candidates, self.model.region))
        if customer_id is None:
            return
        try:
            data = await self.request("customer.link", call_id=call.call_id, customer_id=customer_id)
        except CtiError as exc:
            self.notify(f"Could not record the customer: {exc}", severity="warning", markup=False)
            return
        self._show_profile(call, data.get("profile"))

    @work(exclusive=True, group="dialog")
    async def action_add_contact(self) -> None:
        call = self._pop_call()
        if call is None or call.pop.kind != "new":
            return
        error = None
        while True:
            new = await self.push_screen_wait(QuickCreateScreen(call.pop.number or call.ani, self.model.region, error))
            if new is None:
                return
            try:
                data = await self.request("customer.create", call_id=call.call_id,
                                          **{k: v for k, v in dataclasses.asdict(new).items() if v})
            except CtiRequestError as exc:
                error = exc.message
                continue
            except CtiError as exc:
                error = str(exc)
                continue
            self.notify(f"Customer #{data.get('customer_id')} created", markup=False)
            self._show_profile(call, data.get("profile"))
            return

    # ------------------------------------------------------------------ notes and disposition

    def _load_notes(self, call: CallView | None) -> None:
        notes = self.query_one("#notes", TextArea)
        text = call.notes if call is not None else ""
        if call is not None and not text and self._notes_call is None and notes.text.strip():
            call.notes = text = notes.text  # typed before the call came: it belongs to this call
        if notes.text != text:
            self._loading_notes = True
            notes.load_text(text)
            self._loading_notes = False
        self._notes_call = call.call_id if call is not None else None

    @on(TextArea.Changed, "#notes")
    def _notes_changed(self, event: TextArea.Changed) -> None:
        if self._loading_notes:
            return
        call = self.model.owns(self._notes_call)
        if call is None:
            return
        call.notes = event.text_area.text
        if self._notes_timer is not None:
            self._notes_timer.stop()
        self._notes_timer = self.set_timer(0.8, self._save_notes)

    def _save_notes(self) -> None:
        call = self.model.owns(self._notes_call)
        if call is not None and self.model.link == "up" and not call.disposed:
            self.send("call.notes", call_id=call.call_id, text=call.notes[:4000])

    def offer_disposition(self, call_id: str | None) -> None:
        """A call just ended: open its form unless another dialog is in the way (then it waits in the list)."""
        if call_id is None or call_id not in self.model.owed or self.screen is not self.screen_stack[0]:
            self._refresh_all(pop=False)
            return
        self.run_disposition(call_id)

    @work(group="disposition")
    async def run_disposition(self, call_id: str | None = None) -> None:
        """One form at a time, bound to one call id from the moment it opens; Esc leaves it in the list."""
        if self._form_open or self.model.role != "agent" or not self.model.owed:
            return
        self._form_open = True
        try:
            if call_id is None or call_id not in self.model.owed:
                call_id = next(iter(self.model.owed)) if len(self.model.owed) == 1 else await self.push_screen_wait(
                    OwedPicker(list(self.model.owed.values()), region=self.model.region, zone=self.zone))
            call = self.model.owed.get(call_id) if call_id else None
            if call is None:
                return
            await self._dispose(call)
        finally:
            self._form_open = False
            self._refresh_all(pop=False)

    async def _dispose(self, call: CallView) -> None:
        if self._notes_call == call.call_id:
            call.notes = self.query_one("#notes", TextArea).text
        label = safe_text(self._caller_plain(call) or call.call_id[:12])
        if call.ended_at is not None:
            label.append(f"  ended {center_time(call.ended_at, self.zone, '%H:%M')}", style="dim")
        previous, error = None, None
        while True:
            choice = await self.push_screen_wait(DispositionScreen(
                self.model.dispositions, call_label=label, call_id=call.call_id, notes=call.notes,
                number=call.callback or call.ani, zone=self.model.timezone, region=self.model.region,
                now=self.server_now(), previous=previous, error=error))
            if choice is None:
                owed = len(self.model.owed)
                self.notify(f"Disposition postponed: {owed} owed, press d when ready.", markup=False)
                return
            try:
                data = await self.request("disposition.save", **choice.request())
            except CtiRequestError as exc:
                if "already has your disposition" in exc.message:
                    self.model.mark_disposed(call.call_id)
                    self.notify(exc.message, severity="warning", markup=False)
                    return
                previous, error = choice, exc.message
                continue
            except CtiConnectionError as exc:
                previous, error = choice, f"not saved, the link is down: {exc}"
                continue
            self.model.mark_disposed(call.call_id)
            if isinstance(data.get("owed"), list):
                self.model.set_owed(data["owed"])
            if self._notes_call == call.call_id:
                self._load_notes(self.model.call)
            saved = "Disposition saved" + (" with a callback" if data.get("callback") else "")
            self.notify(saved, markup=False)
            self._refresh_all()
            return
