"""``callcenter ivr simulate``: walk an IVR menu from the terminal, without a phone.

The app is the session's driver: it shows what each ``Play`` says, takes keypad keys
(``0-9 * #``), counts timers down and sends ``TimedOut`` at their deadline, answers ``Lookup``
actions from the self-service port in a worker thread, and shows the final action. The
simulated clock starts at ``start_at`` (``--at``) and runs in real time; ``t`` jumps it to the
running timer's deadline.

Everything shown that came from a caller, the database or the menu file is plain text, never
console markup.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Footer, Header, ProgressBar, RichLog, Static

from ivr import (
    Action,
    BusinessHours,
    CallerHungUp,
    CallInfo,
    DigitReceived,
    Event,
    Hangup,
    IvrMenu,
    IvrRecord,
    IvrSession,
    Lookup,
    LookupCompleted,
    Play,
    PromptFinished,
    RequestCallback,
    RouteToQueue,
    SelfServicePort,
    SetLanguage,
    StartTimer,
    TimedOut,
    Transfer,
    describe,
    run_lookup,
)

KEYPAD = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#")
_KEY_IDS = {"*": "star", "#": "pound"}


@dataclass
class _Playback:
    play_id: int
    text: str
    prompts: tuple[str, ...]
    seconds: float
    barge_in: bool
    ends_at: float | None = None  # monotonic, set when it starts


class IvrSimulatorApp(App[IvrRecord | None]):
    """A caller's view of the IVR. Returns the call's record when it exits."""

    CSS_PATH = "ivr_simulator.tcss"
    TITLE = "IVR simulator"
    BINDINGS = [
        Binding("s", "skip_prompt", "Skip prompt"),
        Binding("t", "time_out", "Time out now"),
        Binding("h", "hang_up", "Hang up"),
        Binding("r", "restart", "New call"),
        Binding("p", "show_path", "Path"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        menu: IvrMenu,
        *,
        call: CallInfo,
        hours: BusinessHours | None = None,
        language: str | None = None,
        port: SelfServicePort | None = None,
        start_at: dt.datetime | None = None,
        seconds_per_char: float = 0.06,
        notice: str | None = None,
    ):
        super().__init__()
        self.notice = notice
        self.menu = menu
        self.call = call
        self.hours = hours or BusinessHours()
        self.language = language
        self.port = port
        self.start_at = start_at
        self.seconds_per_char = seconds_per_char
        self.session: IvrSession | None = None
        self.final_action: Action | None = None
        self.outcome_actions: list[Action] = []
        self._plays: list[_Playback] = []
        self._timer: tuple[int, dt.datetime, float] | None = None
        self._t0 = 0.0
        self._offset = dt.timedelta(0)
        self._base: dt.datetime | None = None
        self._calls = 0

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Static(Text("…"), id="now-playing")
                yield RichLog(id="transcript", wrap=True, markup=False, highlight=False)
            with Vertical(id="right"):
                yield Static(id="status")
                yield Static(Text("no timer"), id="timer")
                yield ProgressBar(id="timer-bar", show_eta=False, show_percentage=False)
                with Grid(id="keypad"):
                    for key in KEYPAD:
                        button = Button(key, id=f"key-{_KEY_IDS.get(key, key)}", classes="key")
                        button.can_focus = False
                        yield button
                yield Static(Text("Keys: 0-9 * #  ·  s skip prompt  ·  t time out  ·  h hang up"), id="help")
                yield Static(Text("call in progress"), id="result")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#now-playing", Static).border_title = "now playing"
        self.set_interval(0.05, self._tick)
        self._new_call()

    # ------------------------------------------------------------------ the simulated clock

    def now(self) -> dt.datetime:
        assert self._base is not None
        return self._base + dt.timedelta(seconds=time.monotonic() - self._t0) + self._offset

    # ------------------------------------------------------------------ driving the session

    def _new_call(self) -> None:
        self._calls += 1
        self._plays.clear()
        self._timer = None
        self._offset = dt.timedelta(0)
        self._t0 = time.monotonic()
        self._base = self.start_at or dt.datetime.now(self.hours.zone)
        self.final_action = None
        self.outcome_actions = []
        call = self.call if self._calls == 1 else CallInfo(f"{self.call.call_id}-{self._calls}", self.call.caller, self.call.dialed)
        self.session = IvrSession(self.menu, call, hours=self.hours, language=self.language)
        log = self.query_one("#transcript", RichLog)
        log.clear()
        caller = call.caller or "withheld"
        log.write(Text(f"☎ call {call.call_id} from {caller} at {self._base.isoformat(timespec='minutes')}", style="bold"))
        if self.notice:
            log.write(Text(f"⚠ {self.notice}", style="yellow"))
        self.query_one("#result", Static).update(Text("call in progress"))
        self.query_one("#result", Static).remove_class("ended")
        self._apply(self.session.start(self.now()))

    def send(self, event: Event, now: dt.datetime | None = None) -> None:
        """Hand one event to the session and carry out what it answers."""
        if self.session is None or self.session.ended:
            return
        self._apply(self.session.handle(event, now or self.now()))

    def _apply(self, actions: list[Action]) -> None:
        log = self.query_one("#transcript", RichLog)
        for action in actions:
            if isinstance(action, Play):
                seconds = min(8.0, max(0.4, len(action.text) * self.seconds_per_char)) if self.seconds_per_char else 0.0
                self._plays.append(_Playback(action.play_id, action.text, action.prompts, seconds, action.barge_in))
                line = Text("🔊 ", style="bold cyan")
                line.append(action.text or " ".join(action.prompts))
                log.write(line)
            elif isinstance(action, StartTimer):
                self._timer = (action.timer_id, action.deadline, action.seconds)
                bar = self.query_one("#timer-bar", ProgressBar)
                bar.update(total=action.seconds, progress=action.seconds)
            elif isinstance(action, Lookup):
                log.write(Text(f"🔎 {describe(action)}", style="magenta"))
                self._lookup(action)
            elif isinstance(action, SetLanguage):
                log.write(Text(f"🌐 language: {action.language}", style="dim"))
            elif isinstance(action, (RouteToQueue, RequestCallback, Transfer, Hangup)):
                log.write(Text(f"➡ {describe(action)}", style="bold green"))
                self.outcome_actions.append(action)
                if isinstance(action, (RouteToQueue, Transfer, Hangup)):
                    self.final_action = action
            else:
                log.write(Text(f"· {describe(action)}", style="dim"))
        if self.session is not None and self.session.ended:
            self._timer = None
            self._show_end()
        self._refresh_status()

    @work(thread=True, exclusive=False, group="lookups")
    def _lookup(self, action: Lookup) -> None:
        if self.port is None:
            answer = LookupCompleted(action.request_id, error="no database connected")
        else:
            answer = run_lookup(self.port, action)
        self.call_from_thread(self._lookup_done, answer)

    def _lookup_done(self, answer: LookupCompleted) -> None:
        log = self.query_one("#transcript", RichLog)
        if answer.error:
            log.write(Text(f"🔎 lookup failed: {answer.error}", style="red"))
        else:
            log.write(Text(f"🔎 {'found' if answer.found else 'not found'}", style="magenta"))
        self.send(answer)

    def _tick(self) -> None:
        if not self.query("#timer"):  # the screen is being torn down (or not built yet): nothing to drive
            return
        now_mono = time.monotonic()
        if self._plays:
            head = self._plays[0]
            if head.ends_at is None:
                head.ends_at = now_mono + head.seconds
                self.query_one("#now-playing", Static).update(Text(head.text or " ".join(head.prompts)))
            if now_mono >= head.ends_at:
                self._plays.pop(0)
                if not self._plays:
                    self.query_one("#now-playing", Static).update(Text("…"))
                self.send(PromptFinished(head.play_id))
        if self._timer is not None:
            timer_id, deadline, seconds = self._timer
            remaining = (deadline - self.now()).total_seconds()
            if remaining <= 0:
                self._timer = None
                self.query_one("#timer", Static).update(Text("timed out", style="yellow"))
                self.query_one("#transcript", RichLog).write(Text("⏱ timed out", style="yellow"))
                self.send(TimedOut(timer_id), max(self.now(), deadline))
            else:
                self.query_one("#timer", Static).update(Text(f"⏱ {remaining:4.1f} s of {seconds:g} s"))
                self.query_one("#timer-bar", ProgressBar).update(total=seconds, progress=remaining)
        elif self.session is not None and not self.session.ended:
            self.query_one("#timer", Static).update(Text("no timer"))

    def press_digit(self, digit: str) -> None:
        if self.session is None or self.session.ended:
            return
        self.query_one("#transcript", RichLog).write(Text(f"⌨ {digit}", style="bold yellow"))
        if self._plays and self._plays[0].barge_in and self.session.waiting_for == "digits":
            self._plays.clear()  # barge-in stops the prompt
            self.query_one("#now-playing", Static).update(Text("…"))
        self.send(DigitReceived(digit))

    # ------------------------------------------------------------------ display

    def _refresh_status(self) -> None:
        session = self.session
        if session is None:
            return
        text = Text()
        text.append("node      ", style="dim")
        text.append(f"{session.node or '-'}\n")
        node = self.menu.menus.get(session.node) if session.node else None
        if node is not None and node.label:
            text.append("          ")
            text.append(f"{node.label}\n", style="italic")
        text.append("language  ", style="dim")
        text.append(f"{session.language}\n")
        text.append("caller    ", style="dim")
        caller = session.caller
        who = f"{caller.name} ({caller.tier}{', blacklisted' if caller.blacklisted else ''})" if caller else "not identified"
        text.append(f"{session.call.caller or 'withheld'} · {who}\n")
        text.append("time      ", style="dim")
        text.append(f"{self.now().astimezone(self.hours.zone).isoformat(timespec='seconds')}\n")
        text.append("waiting   ", style="dim")
        text.append(f"{session.waiting_for or '-'}\n")
        if session.digits:
            text.append("entered   ", style="dim")
            text.append(f"{session.digits}\n")
        for name, value in sorted(session.record().variables.items()):
            text.append(f"{name:<10}", style="dim")
            text.append(f"{value}\n")
        self.query_one("#status", Static).update(text)

    def _show_end(self) -> None:
        session = self.session
        assert session is not None
        result = Text("Call ended: ", style="bold")
        result.append(session.outcome or "?")
        for action in self.outcome_actions:
            result.append("\n")
            result.append(describe(action))
        widget = self.query_one("#result", Static)
        widget.update(result)
        widget.add_class("ended")
        self.query_one("#timer", Static).update(Text("no timer"))
        self.query_one("#transcript", RichLog).write(Text(f"■ {session.outcome}", style="bold"))

    # ------------------------------------------------------------------ input

    def on_key(self, event: events.Key) -> None:
        if event.character and event.character in KEYPAD:
            event.stop()
            self.press_digit(event.character)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        label = str(event.button.label)
        if label in KEYPAD:
            self.press_digit(label)

    def action_skip_prompt(self) -> None:
        if self._plays:
            self._plays[0].ends_at = time.monotonic()

    def action_time_out(self) -> None:
        if self._timer is not None:
            _, deadline, _ = self._timer
            self._offset += max(dt.timedelta(0), deadline - self.now())

    def action_hang_up(self) -> None:
        if self.session is not None and not self.session.ended:
            self.query_one("#transcript", RichLog).write(Text("☎ caller hung up", style="bold"))
            self.send(CallerHungUp())

    def action_restart(self) -> None:
        self._new_call()

    def action_show_path(self) -> None:
        if self.session is None:
            return
        log = self.query_one("#transcript", RichLog)
        for step in self.session.path_json():
            log.write(Text(json.dumps(step, ensure_ascii=False), style="dim"))

    async def action_quit(self) -> None:
        self.exit(self.session.record() if self.session else None)
