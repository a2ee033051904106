"""Helpers for the IVR tests: small menus from TOML text and a driver that plays the telephony side."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from ivr import (
    AccountBalance,
    Action,
    CallerRecord,
    CallInfo,
    InMemorySelfService,
    IvrMenu,
    IvrSession,
    Lookup,
    LookupCompleted,
    OrderStatus,
    Play,
    PromptFinished,
    StartTimer,
    TimedOut,
    WarrantyStatus,
    parse_menu_text,
    run_lookup,
)
from ivr.events import DigitReceived
from ivr.hours import BusinessHours

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_10AM = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)  # a Monday, open
SUNDAY_10AM = dt.datetime(2026, 11, 1, 10, 0, tzinfo=SHANGHAI)  # closed all day

PROMPT_IDS = (
    "hello", "menu", "sub", "bye", "invalid", "silence", "wait", "enter", "ok", "to_queue", "closed", "holiday",
    "vip", "gold", "known", "new", "blocked", "status_shipped", "status_delivered", "status_cancelled",
    "status_placed", "status_paid", "status_returned", "amount", "confirm", "sorry",
)


def menu(body: str, *, head: str = 'start = "main"', languages: tuple[str, ...] = ("en",)) -> IvrMenu:
    """A menu from TOML node tables; every id in PROMPT_IDS gets a text in each language."""
    tables = []
    for language in languages:
        lines = [f"[prompts.{language}]"] + [f'{pid} = "{language}:{pid}"' for pid in PROMPT_IDS]
        tables.append("\n".join(lines))
    text = textwrap.dedent(head) + "\n" + textwrap.dedent(body) + "\n" + "\n\n".join(tables) + "\n"
    return parse_menu_text(text, "test.toml")


def demo_port() -> InMemorySelfService:
    return InMemorySelfService(
        callers={
            "+8613900000001": CallerRecord(1, "Standard Sun", "standard"),
            "+8613900000002": CallerRecord(2, "Gold Gao", "gold"),
            "+8613900000003": CallerRecord(3, "Vip Wei", "vip", language="en"),
            "+8613900000004": CallerRecord(4, "Bad Bai", "standard", blacklisted=True),
        },
        orders={
            "12345674": OrderStatus("SO12345674", "shipped", Decimal("123.45"), "CNY", dt.date(2026, 10, 1), 2),
        },
        warranties=[
            WarrantyStatus("1234567890", "12345674", "Air conditioner", dt.date(2027, 1, 31)),
            WarrantyStatus("5555555555", "99999", "Television", dt.date(2025, 1, 31)),
        ],
        balances={2: AccountBalance(2, Decimal("88.50"))},
    )


class Driver:
    """Plays the telephony side for a session: finishes prompts, answers lookups, fires timers."""

    def __init__(
        self,
        menu_: IvrMenu,
        *,
        caller: str | None = None,
        port: InMemorySelfService | None = None,
        now: dt.datetime = MONDAY_10AM,
        hours: BusinessHours | None = None,
        language: str | None = None,
        auto_prompts: bool = True,
        auto_lookups: bool = True,
    ):
        self.session = IvrSession(menu_, CallInfo("call-1", caller=caller), hours=hours, language=language)
        self.port = port if port is not None else demo_port()
        self.now = now
        self.auto_prompts = auto_prompts
        self.auto_lookups = auto_lookups
        self.actions: list[Action] = []
        self.timer: StartTimer | None = None
        self.playing: list[Play] = []
        self.lookups: list[Lookup] = []

    # -- sending
    def start(self) -> list[Action]:
        return self._process(self.session.start(self.now))

    def send(self, event, *, after: float = 0.0) -> list[Action]:
        self.now += dt.timedelta(seconds=after)
        return self._process(self.session.handle(event, self.now))

    def press(self, keys: str, *, gap: float = 0.5) -> list[Action]:
        out: list[Action] = []
        for key in keys:
            out += self.send(DigitReceived(key), after=gap)
        return out

    def time_out(self) -> list[Action]:
        assert self.timer is not None, "no timer is running"
        timer, self.timer = self.timer, None
        self.now = max(self.now, timer.deadline)
        return self._process(self.session.handle(TimedOut(timer.timer_id), self.now))

    def finish_prompt(self) -> list[Action]:
        play = self.playing.pop(0)
        return self.send(PromptFinished(play.play_id), after=1)

    def answer_lookup(self, **kwargs) -> list[Action]:
        lookup = self.lookups.pop(0)
        return self.send(LookupCompleted(lookup.request_id, **kwargs), after=0.2)

    # -- bookkeeping
    def _process(self, actions: list[Action]) -> list[Action]:
        out = list(actions)
        self.actions += actions
        pending = []
        for action in actions:
            if isinstance(action, StartTimer):
                self.timer = action
            elif isinstance(action, Play):
                self.playing.append(action)
            elif isinstance(action, Lookup):
                self.lookups.append(action)
        if self.session.ended:
            self.timer = None
        if self.auto_lookups:
            while self.lookups:
                pending.append(run_lookup(self.port, self.lookups.pop(0)))
        if self.auto_prompts:
            while self.playing:
                pending.append(PromptFinished(self.playing.pop(0).play_id))
        for event in pending:
            self.now += dt.timedelta(seconds=0.5)
            out += self._process(self.session.handle(event, self.now))
        return out

    # -- looking
    def of(self, kind: type) -> list:
        return [a for a in self.actions if isinstance(a, kind)]

    def last(self, kind: type):
        found = self.of(kind)
        assert found, f"no {kind.__name__} among {self.actions}"
        return found[-1]

    def prompts(self) -> list[str]:
        return [p for play in self.of(Play) for p in play.prompts]

    def steps(self, name: str) -> list[dict]:
        return [s for s in self.session.path_json() if s["step"] == name]
