"""One caller's walk through the menu: a state machine from events to actions.

``session = IvrSession(menu, call)``; ``session.start(now)`` and ``session.handle(event, now)``
return the actions to carry out. Nothing here reads a clock or does I/O: timers are
``StartTimer`` actions answered by ``TimedOut`` events, lookups are ``Lookup`` actions answered
by ``LookupCompleted`` events. The same events at the same times always give the same actions.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ivr.actions import (
    Action,
    Collect,
    Hangup,
    Lookup,
    Play,
    RequestCallback,
    RouteToQueue,
    SetLanguage,
    StartTimer,
    Transfer,
    to_jsonable,
)
from ivr.errors import SessionError
from ivr.events import (
    DTMF_KEYS,
    CallerHungUp,
    CallInfo,
    CallStarted,
    DigitReceived,
    DigitsEntered,
    Event,
    LookupCompleted,
    PromptFinished,
    TimedOut,
)
from ivr.hours import BusinessHours
from ivr.menu import (
    CallbackNode,
    CallerNode,
    CollectNode,
    HangupNode,
    HoursNode,
    IvrMenu,
    LanguageNode,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    TransferNode,
    fill_template,
    parse_prompt_item,
)
from ivr.ports import AccountBalance, CallerRecord, OrderStatus, WarrantyStatus
from ivr.speech import FRAGMENTS, SpeechError, say_date, say_digits, say_money, say_number, say_time

# Variables each lookup sets (besides the ones a collect node names); the checker uses this list.
LOOKUP_VARIABLES: dict[str, tuple[str, ...]] = {
    "caller": ("caller.tier", "caller.customer_id"),
    "order_status": ("order.number", "order.status", "order.amount", "order.currency", "order.date", "order.items"),
    "warranty": ("warranty.serial", "warranty.order", "warranty.product", "warranty.end", "warranty.status"),
    "balance": ("account.balance", "account.amount", "account.currency", "account.status", "account.credit_limit"),
    "callback": ("callback.due", "callback.number"),
}


# ------------------------------------------------------------------------------ validation


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by card and many order numbers: the last digit checks the rest."""
    if len(digits) < 2 or not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mod11_valid(digits: str) -> bool:
    """Mod 11 with weights 2,3,4,5,6,7 repeating from the digit left of the check digit.

    The check digit is ``(11 - sum % 11) % 11``; numbers whose check would be 10 are not issued,
    so they never validate.
    """
    if len(digits) < 2 or not digits.isdigit():
        return False
    payload, check = digits[:-1], int(digits[-1])
    total = sum(int(char) * (2 + index % 6) for index, char in enumerate(reversed(payload)))
    expected = (11 - total % 11) % 11
    return expected < 10 and expected == check


def parse_hhmm(digits: str) -> dt.time | None:
    if len(digits) != 4 or not digits.isdigit():
        return None
    hour, minute = int(digits[:2]), int(digits[2:])
    if hour > 23 or minute > 59:
        return None
    return dt.time(hour, minute)


_CHECKS = {"luhn": luhn_valid, "mod11": mod11_valid, "hhmm": lambda d: parse_hhmm(d) is not None}

# Keys typed ahead are kept up to this many (or one whole collect entry and its terminator, if
# longer): enough for a caller who knows several menu levels, while a caller leaning on the
# keypad during a long greeting cannot grow the buffer or the call's path without bound.
TYPE_AHEAD_KEYS = 20


# --------------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class PathStep:
    """One thing that happened on the caller's way through the menu."""

    at: dt.datetime
    node: str | None
    step: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "node": self.node, "step": self.step, **to_jsonable(self.detail)}


@dataclass(frozen=True, slots=True)
class IvrRecord:
    """What the IVR did with one call, for the interaction row (``ivr_path``), screen pop and reports."""

    call_id: str
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    language: str
    outcome: str | None
    customer_id: int | None
    tier: str | None
    steps: tuple[PathStep, ...]
    variables: dict[str, Any]
    final_action: Action | None

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "language": self.language,
            "outcome": self.outcome,
            "customer_id": self.customer_id,
            "tier": self.tier,
            "path": [step.to_json() for step in self.steps],
            "variables": to_jsonable(self.variables),
            "final_action": to_jsonable(self.final_action),
        }


# --------------------------------------------------------------------------------- session

_OUTCOMES = {RouteToQueue: "queued", Transfer: "transferred"}


class IvrSession:
    """The IVR for one call.

    ``hours`` are the center's business hours (``Settings.hours``); ``language`` the starting
    prompt language (``Settings.ivr.default_language``; default: the menu's first language).
    """

    def __init__(
        self,
        menu: IvrMenu,
        call: CallInfo,
        *,
        hours: BusinessHours | None = None,
        language: str | None = None,
    ):
        self.menu = menu
        self.call = call
        self.hours = hours if hours is not None else BusinessHours()
        self.language = language or menu.languages[0]
        self.caller: CallerRecord | None = None
        self.variables: dict[str, Any] = {}
        self.ended = False
        self.outcome: str | None = None
        self.final_action: Action | None = None
        self.started_at: dt.datetime | None = None
        self.ended_at: dt.datetime | None = None
        self.node: str | None = None
        self.digits = ""
        self._phase = "new"  # new | caller_lookup | running | ended
        self._path: list[PathStep] = []
        self._sensitive: set[str] = set()
        self._attempts = 0
        self._steps = 0
        self._limit_hit = False
        self._play: int | None = None
        self._timer: int | None = None
        self._timer_kind: str | None = None
        self._timer_deadline: dt.datetime | None = None
        self._lookup: int | None = None
        self._menus: list[str] = []  # menu nodes entered, for the back key
        self._ids = 0
        self._typed: list[str] = []  # keys typed ahead during a play node, for the next menu or collect
        self._typed_into_entry = False  # the collect entry under way began with keys typed ahead
        longest = max(
            (n.max_length + (1 if n.terminator else 0) for n in menu.menus.values() if isinstance(n, CollectNode)),
            default=0,
        )
        self.type_ahead_limit = max(TYPE_AHEAD_KEYS, longest)

    # ------------------------------------------------------------------ public surface

    @property
    def path(self) -> tuple[PathStep, ...]:
        return tuple(self._path)

    def path_json(self) -> list[dict[str, Any]]:
        """The ``ivr_path`` column: one JSON object per step."""
        return [step.to_json() for step in self._path]

    def record(self) -> IvrRecord:
        visible = {k: v for k, v in self.variables.items() if k not in self._sensitive}
        return IvrRecord(
            call_id=self.call.call_id,
            started_at=self.started_at,
            ended_at=self.ended_at,
            language=self.language,
            outcome=self.outcome,
            customer_id=self.caller.customer_id if self.caller else None,
            tier=self.caller.tier if self.caller else None,
            steps=self.path,
            variables=visible,
            final_action=self.final_action,
        )

    @property
    def waiting_for(self) -> str | None:
        """``caller_lookup``, ``lookup``, ``prompt``, ``digits`` or None once ended.

        ``digits`` while a prompt plays means a key stops it (barge-in, or type-ahead during a play
        node): the driver stops the playback at the key, and no ``PromptFinished`` is needed.
        """
        if self.ended or self._phase == "new":
            return None
        if self._phase == "caller_lookup":
            return "caller_lookup"
        if self._lookup is not None:
            return "lookup"
        if self._play is not None:
            node = self._current()
            if isinstance(node, (MenuNode, CollectNode)) and self._barge_in(node):
                return "digits"
            if isinstance(node, PlayNode) and self._interruptible(node):
                return "digits"
            return "prompt"
        return "digits"

    @property
    def typed_ahead(self) -> str:
        """Keys typed ahead and not yet taken by a menu or collect node."""
        return "".join(self._typed)

    @property
    def timer(self) -> tuple[int, dt.datetime] | None:
        """The running timer (id, deadline), if any."""
        if self._timer is None or self._timer_deadline is None:
            return None
        return self._timer, self._timer_deadline

    def start(self, now: dt.datetime) -> list[Action]:
        self._check_time(now)
        if self._phase != "new":
            return []
        self.started_at = now
        out: list[Action] = [SetLanguage(self.language)]
        self._record(now, None, "start", caller=self.call.caller, dialed=self.call.dialed, language=self.language)
        if self.menu.caller.lookup and self.call.caller:
            self._phase = "caller_lookup"
            self._lookup = self._next_id()
            out.append(Lookup(self._lookup, "caller", key=self.call.caller))
            self._start_timer(now, self.menu.caller.timeout, "caller", out)
        else:
            self._phase = "running"
            self._goto(self.menu.start, now, out)
        return out

    def handle(self, event: Event, now: dt.datetime) -> list[Action]:
        self._check_time(now)
        if isinstance(event, CallStarted):
            return self.start(now)
        if self._phase == "new":
            raise SessionError("call start(now) (or send CallStarted) before other events")
        if self.ended:
            return []
        out: list[Action] = []
        if isinstance(event, CallerHungUp):
            self._record(now, self.node, "caller_hung_up")
            self._end(now, "abandoned", None)
            return out
        if self._phase == "running" and self._over_time(now):
            self._limit(now, out, "max_seconds")
            return out
        if isinstance(event, DigitsEntered):
            for digit in event.digits:
                if self.ended:
                    break
                out += self._digit(digit, now)
        elif isinstance(event, DigitReceived):
            out += self._digit(event.digit, now)
        elif isinstance(event, PromptFinished):
            self._prompt_finished(event.play_id, now, out)
        elif isinstance(event, TimedOut):
            self._timed_out(event.timer_id, now, out)
        elif isinstance(event, LookupCompleted):
            self._lookup_completed(event, now, out)
        return out

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _check_time(now: dt.datetime) -> None:
        if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
            raise SessionError("the IVR needs timezone-aware datetimes")

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _record(self, now: dt.datetime, node: str | None, step: str, **detail: Any) -> None:
        self._path.append(PathStep(now, node, step, {k: v for k, v in detail.items() if v is not None}))

    def _current(self) -> Any:
        return self.menu.menus.get(self.node) if self.node else None

    def _barge_in(self, node: Any) -> bool:
        return bool(self.menu.setting(node, "barge_in"))

    def _type_ahead(self, node: Any) -> bool:
        return bool(self.menu.setting(node, "type_ahead"))

    def _interruptible(self, node: PlayNode) -> bool:
        """A key during this play node is kept and cuts the prompt short (Asterisk's ``Background()``)."""
        return self._type_ahead(node) and self._barge_in(node)

    def _discard_typed(self, now: dt.datetime) -> None:
        if self._typed:
            self._record(now, self.node, "type_ahead", discarded=len(self._typed))
            self._typed.clear()

    def _over_time(self, now: dt.datetime) -> bool:
        return (
            not self._limit_hit
            and self.started_at is not None
            and (now - self.started_at).total_seconds() > self.menu.limits.max_seconds
        )

    def _start_timer(self, now: dt.datetime, seconds: float, kind: str, out: list[Action]) -> None:
        self._timer = self._next_id()
        self._timer_kind = kind
        self._timer_deadline = now + dt.timedelta(seconds=seconds)
        out.append(StartTimer(self._timer, seconds, self._timer_deadline))

    def _stop_timer(self) -> None:
        self._timer = self._timer_kind = self._timer_deadline = None

    def _end(self, now: dt.datetime, outcome: str, action: Action | None) -> None:
        self.ended = True
        self._phase = "ended"
        self.outcome = outcome
        self.final_action = action
        self.ended_at = now
        self._play = None
        self._lookup = None
        self._typed.clear()
        self._stop_timer()
        detail = to_jsonable(action) if action is not None else {}
        self._record(now, self.node, "end", outcome=outcome, action=detail or None)

    def _finish(self, action: Action, now: dt.datetime, out: list[Action], outcome: str | None = None) -> None:
        out.append(action)
        if outcome is None:
            outcome = action.reason if isinstance(action, Hangup) else _OUTCOMES.get(type(action), "ended")
        self._end(now, outcome, action)

    def _limit(self, now: dt.datetime, out: list[Action], which: str) -> None:
        self._record(now, self.node, "limit", limit=which)
        self._stop_timer()
        self._play = self._lookup = None
        self._discard_typed(now)  # keys meant for the menu the caller was in, not for where the limit sends them
        if self._limit_hit or self.menu.limits.on_limit is None:
            self._finish(Hangup("failed"), now, out)
            return
        self._limit_hit = True
        self._steps = 0
        self._goto(self.menu.limits.on_limit, now, out)

    # ------------------------------------------------------------------ prompts

    def _expand(self, items: list[str]) -> tuple[list[str], list[str]]:
        """Prompt ids and their texts for the current language; unset values are skipped."""
        table = self.menu.prompts.get(self.language, {})
        ids: list[str] = []
        texts: list[str] = []
        for item in items:
            kind, value, names = parse_prompt_item(item)
            if kind == "prompt":
                ids.append(value)
                texts.append(table.get(value, value))
            elif kind == "template":
                filled = fill_template(value, self.variables)
                if filled is not None and filled in table:
                    ids.append(filled)
                    texts.append(table[filled])
            else:
                fragments = self._say(value, names[0])
                ids += fragments
                words = FRAGMENTS.get(self.language, {})
                texts.append(("" if self.language == "zh" else " ").join(words.get(f, f) for f in fragments))
        return ids, [t for t in texts if t]

    def _say(self, kind: str, name: str) -> list[str]:
        value = self.variables.get(name)
        if value is None or self.language not in FRAGMENTS:
            return []
        try:
            if kind == "digits":
                return say_digits(str(value), self.language)
            if kind == "number":
                return say_number(int(value), self.language)
            if kind == "money":
                prefix = name.rsplit(".", 1)[0] if "." in name else ""
                currency = str(self.variables.get(f"{prefix}.currency") or "CNY") if prefix else "CNY"
                return say_money(Decimal(str(value)), currency, self.language)
            if kind == "date":
                if isinstance(value, dt.datetime):
                    value = value.astimezone(self.hours.zone).date() if value.tzinfo else value.date()
                if isinstance(value, str):
                    value = dt.date.fromisoformat(value)
                return say_date(value, self.language)
            if kind == "time":
                if isinstance(value, dt.datetime) and value.tzinfo:
                    value = value.astimezone(self.hours.zone)
                if isinstance(value, str):
                    value = parse_hhmm(value) or dt.time.fromisoformat(value)
                return say_time(value, self.language)
        except (SpeechError, ValueError, TypeError, InvalidOperation):
            return []
        return []

    def _play_items(self, items: list[str], out: list[Action], *, barge_in: bool = False) -> bool:
        ids, texts = self._expand(items)
        if not ids:
            return False
        self._play = self._next_id()
        joiner = "" if self.language == "zh" else " "
        out.append(Play(self._play, tuple(ids), self.language, joiner.join(texts), barge_in))
        return True

    def _play_once(self, items: list[str], out: list[Action]) -> None:
        """A prompt nobody waits for (before a terminal action)."""
        if self._play_items(items, out):
            self._play = None

    # ------------------------------------------------------------------ moving between nodes

    def _goto(self, target: str | None, now: dt.datetime, out: list[Action]) -> None:
        while target is not None and not self.ended:
            self._steps += 1
            if self._steps > self.menu.limits.max_steps:
                self._limit(now, out, "max_steps")
                return
            node = self.menu.menus.get(target)
            if node is None:
                self._record(now, target, "error", message="no such node")
                self._finish(Hangup("failed"), now, out)
                return
            self.node = target
            self.digits = ""
            self._attempts = 0
            self._play = None
            self._lookup = None
            self._stop_timer()
            self._record(now, target, "enter", type=node.type)
            if isinstance(node, MenuNode) and (not self._menus or self._menus[-1] != target):
                self._menus.append(target)
            target = self._run(node, now, out)

    def _run(self, node: Any, now: dt.datetime, out: list[Action]) -> str | None:
        if isinstance(node, (MenuNode, CollectNode)):
            self._prompt_for_input(node, [], now, out)
            return None
        if isinstance(node, PlayNode):
            if self._typed and self._interruptible(node):
                # the caller has already answered what comes next: a prompt they could cut short is not started
                self._record(now, self.node, "type_ahead", skipped=True, buffered=len(self._typed))
                return node.next
            return None if self._play_items(node.prompt, out, barge_in=self._interruptible(node)) else node.next
        if isinstance(node, LookupNode):
            return self._start_lookup(node, now, out)
        if isinstance(node, HoursNode):
            return self._hours(node, now)
        if isinstance(node, LanguageNode):
            if node.language != self.language:
                self.language = node.language
                out.append(SetLanguage(node.language))
            self._record(now, self.node, "language", language=node.language)
            return node.next
        if isinstance(node, CallerNode):
            return self._caller_branch(node, now)
        if isinstance(node, QueueNode):
            self._route(node, now, out)
            return None
        if isinstance(node, CallbackNode):
            return self._callback(node, now, out)
        if isinstance(node, TransferNode):
            self._play_once(node.prompt, out)
            self._finish(Transfer(node.destination), now, out)
            return None
        if isinstance(node, HangupNode):
            self._play_once(node.prompt, out)
            self._finish(Hangup(node.reason), now, out)
            return None
        raise SessionError(f"unknown node kind {type(node).__name__}")  # pragma: no cover

    # ------------------------------------------------------------------ input nodes

    def _prompt_for_input(self, node: MenuNode | CollectNode, before: list[str], now: dt.datetime, out: list[Action]) -> None:
        self.digits = ""
        self._typed_into_entry = False
        if isinstance(node, MenuNode):
            timeout = self.menu.setting(node, "timeout")
            out.append(Collect(None, 1, 1, None, timeout, 0.0))
        else:
            out.append(
                Collect(
                    node.variable,
                    node.min_length,
                    node.max_length,
                    node.terminator or None,
                    self.menu.setting(node, "first_digit_timeout"),
                    self.menu.setting(node, "inter_digit_timeout"),
                )
            )
        if self._typed:
            if self._type_ahead(node):
                self._take_typed(node, now, out)
                return
            self._discard_typed(now)
        if not self._play_items([*before, *node.prompt], out, barge_in=self._barge_in(node)):
            self._wait_for_first_key(node, now, out)

    def _take_typed(self, node: MenuNode | CollectNode, now: dt.datetime, out: list[Action]) -> None:
        """Hand the keys typed ahead to the input node just entered, without playing its prompt.

        The prompt is not started at all rather than started and stopped at once: the caller has
        answered it already, and even a fraction of a second of a menu they skipped sounds like the
        IVR ignored the key (Asterisk's ``Background()`` + ``WaitExten()`` behave the same way).
        A key that takes the caller to another input node leaves the rest for that node, so a caller
        who knows the tree can type several levels at once.
        """
        while self._typed and not self.ended and self._current() is node and self._play is None:
            digit = self._typed.pop(0)
            if isinstance(node, MenuNode):
                self._menu_key(node, digit, now, out, typed_ahead=True)
            else:
                self._typed_into_entry = True
                self._collect_key(node, digit, now, out)

    def _wait_for_first_key(self, node: MenuNode | CollectNode, now: dt.datetime, out: list[Action]) -> None:
        if isinstance(node, MenuNode):
            self._start_timer(now, self.menu.setting(node, "timeout"), "menu", out)
        else:
            self._start_timer(now, self.menu.setting(node, "first_digit_timeout"), "first", out)

    def _digit(self, digit: str, now: dt.datetime) -> list[Action]:
        out: list[Action] = []
        if len(digit) != 1 or digit not in DTMF_KEYS or self._phase != "running" or self._lookup is not None:
            return out
        node = self._current()
        if isinstance(node, PlayNode):
            self._keep_typed(node, digit, now, out)
            return out
        if not isinstance(node, (MenuNode, CollectNode)):
            return out
        if self._play is not None:
            if not self._barge_in(node):
                return out
            self._play = None  # barge-in: the driver stops the prompt
        if isinstance(node, MenuNode):
            self._menu_key(node, digit, now, out)
        else:
            self._collect_key(node, digit, now, out)
        return out

    def _keep_typed(self, node: PlayNode, digit: str, now: dt.datetime, out: list[Action]) -> None:
        """A key during a play node: kept for the next menu or collect, and with barge-in it ends the prompt.

        The path records that a key was kept, not which: the key may turn out to be the first of
        a ``sensitive`` entry, which is only known when a collect node takes it.
        """
        if self._play is None or not self._type_ahead(node) or len(self._typed) >= self.type_ahead_limit:
            return
        self._typed.append(digit)
        barge = self._barge_in(node)
        self._record(now, self.node, "type_ahead", buffered=len(self._typed), barge_in=True if barge else None)
        if barge:
            self._play = None  # the driver stops the prompt (Play.barge_in)
            self._goto(node.next, now, out)

    def _menu_key(
        self, node: MenuNode, digit: str, now: dt.datetime, out: list[Action], *, typed_ahead: bool = False
    ) -> None:
        self._stop_timer()
        ahead = True if typed_ahead else None
        target = node.options.get(digit)
        if target is not None:
            self._record(now, self.node, "input", digits=digit, typed_ahead=ahead)
            self._goto(target, now, out)
        elif digit == self.menu.setting(node, "repeat_key"):
            self._record(now, self.node, "repeat", typed_ahead=ahead)
            self._prompt_for_input(node, [], now, out)
        elif digit == self.menu.setting(node, "back_key") and len(self._menus) > 1:
            self._menus.pop()
            previous = self._menus.pop()
            self._record(now, self.node, "back", target=previous, typed_ahead=ahead)
            self._goto(previous, now, out)
        else:
            self._failure(node, "invalid", now, out, digits=digit, typed_ahead=ahead)

    def _collect_key(self, node: CollectNode, digit: str, now: dt.datetime, out: list[Action]) -> None:
        self._stop_timer()
        if node.terminator and digit == node.terminator:
            self._finish_collect(node, now, out)
            return
        self.digits += digit
        if len(self.digits) >= node.max_length:
            self._finish_collect(node, now, out)
        else:
            self._start_timer(now, self.menu.setting(node, "inter_digit_timeout"), "inter", out)

    def _valid_entry(self, node: CollectNode, entry: str) -> bool:
        if not node.min_length <= len(entry) <= node.max_length:
            return False
        if node.pattern is not None and not re.fullmatch(node.pattern, entry):
            return False
        if node.pattern is None and not entry.isdigit():
            return False
        return node.check is None or _CHECKS[node.check](entry)

    def _shown(self, node: CollectNode, entry: str) -> str:
        return "*" * len(entry) if node.sensitive else entry

    def _finish_collect(self, node: CollectNode, now: dt.datetime, out: list[Action]) -> None:
        entry = self.digits
        ahead = True if self._typed_into_entry else None
        if not self._valid_entry(node, entry):
            self._failure(node, "invalid", now, out, digits=self._shown(node, entry), typed_ahead=ahead)
            return
        self.variables[node.variable] = entry
        if node.sensitive:
            self._sensitive.add(node.variable)
        self._record(now, self.node, "input", variable=node.variable, digits=self._shown(node, entry), typed_ahead=ahead)
        self._goto(node.next, now, out)

    def _failure(self, node: MenuNode | CollectNode, kind: str, now: dt.datetime, out: list[Action], **detail: Any) -> None:
        self._attempts += 1
        self._record(now, self.node, kind, attempt=self._attempts, **detail)
        # keys typed ahead after a wrong one were typed blind; the caller should hear the menu now
        self._discard_typed(now)
        if self._attempts > self.menu.setting(node, "retries"):
            target = self.menu.setting(node, "on_failure")
            self._record(now, self.node, "retries_exhausted", target=target)
            if target is None:
                self._finish(Hangup("failed"), now, out)
            else:
                self._goto(target, now, out)
            return
        before = self.menu.setting(node, "invalid_prompt" if kind == "invalid" else "timeout_prompt")
        self._prompt_for_input(node, list(before), now, out)

    def _prompt_finished(self, play_id: int, now: dt.datetime, out: list[Action]) -> None:
        if play_id != self._play:
            return
        self._play = None
        node = self._current()
        if isinstance(node, (MenuNode, CollectNode)):
            self._wait_for_first_key(node, now, out)
        elif isinstance(node, PlayNode):
            self._goto(node.next, now, out)

    def _timed_out(self, timer_id: int, now: dt.datetime, out: list[Action]) -> None:
        if timer_id != self._timer:
            return
        kind = self._timer_kind
        self._stop_timer()
        node = self._current()
        if kind == "caller":
            self._record(now, None, "caller_lookup", timed_out=True)
            self._lookup = None
            self._phase = "running"
            self._goto(self.menu.start, now, out)
        elif kind == "lookup" and isinstance(node, LookupNode):
            self._lookup = None
            self._record(now, self.node, "lookup", kind=node.lookup, timed_out=True)
            self._goto(node.failed or node.not_found, now, out)
        elif kind == "menu" and isinstance(node, MenuNode):
            self._failure(node, "timeout", now, out)
        elif kind == "first" and isinstance(node, CollectNode):
            self._failure(node, "timeout", now, out)
        elif kind == "inter" and isinstance(node, CollectNode):
            self._finish_collect(node, now, out)

    # ------------------------------------------------------------------ lookups

    def _start_lookup(self, node: LookupNode, now: dt.datetime, out: list[Action]) -> str | None:
        customer_id = self.caller.customer_id if self.caller else None
        key = None
        if node.lookup == "balance":
            if customer_id is None:
                self._record(now, self.node, "lookup", kind=node.lookup, found=False, reason="caller not identified")
                return node.not_found
        else:
            value = self.variables.get(node.input or "")
            if value is None:
                self._record(now, self.node, "lookup", kind=node.lookup, found=False, reason=f"{node.input} not set")
                return node.not_found
            key = str(value)
        self._lookup = self._next_id()
        by = node.by if node.lookup == "warranty" else None
        out.append(Lookup(self._lookup, node.lookup, key=key, by=by, customer_id=customer_id))
        self._play_once(node.prompt, out)
        self._start_timer(now, node.timeout, "lookup", out)
        return None

    def _lookup_completed(self, event: LookupCompleted, now: dt.datetime, out: list[Action]) -> None:
        if event.request_id != self._lookup:
            return
        self._lookup = None
        self._stop_timer()
        if self._phase == "caller_lookup":
            self._phase = "running"
            result = event.result if isinstance(event.result, CallerRecord) and event.error is None else None
            self.caller = result
            if result is not None:
                self.variables["caller.tier"] = result.tier
                self.variables["caller.customer_id"] = result.customer_id
            self._record(
                now,
                None,
                "caller_lookup",
                found=result is not None,
                customer_id=result.customer_id if result else None,
                tier=result.tier if result else None,
                blacklisted=result.blacklisted if result else None,
                error=event.error,
            )
            target = self.menu.start
            if result is not None and result.blacklisted and self.menu.caller.blacklisted:
                target = self.menu.caller.blacklisted
            self._goto(target, now, out)
            return
        node = self._current()
        if not isinstance(node, LookupNode):
            return
        if event.error is not None:
            self._record(now, self.node, "lookup", kind=node.lookup, error=event.error)
            self._goto(node.failed or node.not_found, now, out)
            return
        stored = self._store_result(node.lookup, event.result, now)
        self._record(now, self.node, "lookup", kind=node.lookup, found=stored is not None, result=stored)
        self._goto(node.found if stored is not None else node.not_found, now, out)

    def _store_result(self, kind: str, result: Any, now: dt.datetime) -> dict[str, Any] | None:
        values: dict[str, Any]
        if kind == "order_status" and isinstance(result, OrderStatus):
            values = {
                "order.number": result.order_number,
                "order.status": result.status,
                "order.amount": result.amount,
                "order.currency": result.currency,
                "order.date": result.ordered_at,
                "order.items": result.items,
            }
        elif kind == "warranty" and isinstance(result, WarrantyStatus):
            today = now.astimezone(self.hours.zone).date()
            status = "unknown" if result.warranty_end is None else ("active" if result.warranty_end >= today else "expired")
            values = {
                "warranty.serial": result.serial_number,
                "warranty.order": result.order_number,
                "warranty.product": result.product,
                "warranty.end": result.warranty_end,
                "warranty.status": status,
            }
        elif kind == "balance" and isinstance(result, AccountBalance):
            balance = Decimal(result.balance)
            status = "owing" if balance > 0 else ("credit" if balance < 0 else "clear")
            values = {
                "account.balance": balance,
                "account.amount": abs(balance),
                "account.currency": result.currency,
                "account.status": status,
                "account.credit_limit": result.credit_limit,
            }
        else:
            return None
        self.variables.update(values)
        return {k.split(".", 1)[1]: v for k, v in values.items()}

    # ------------------------------------------------------------------ branches

    def _hours(self, node: HoursNode, now: dt.datetime) -> str:
        hours = node.hours or self.hours
        local = now.astimezone(hours.zone)
        holiday = hours.holiday_on(local.date())
        is_open = hours.is_open(now)
        self._record(now, self.node, "hours", open=is_open, holiday=(holiday.name or str(holiday.date)) if holiday else None)
        if is_open:
            return node.open
        if holiday is not None and node.holiday is not None:
            return node.holiday
        return node.closed

    def _caller_branch(self, node: CallerNode, now: dt.datetime) -> str:
        caller = self.caller
        if caller is None:
            target, why = node.unknown, "unknown"
        elif caller.blacklisted and node.blacklisted is not None:
            target, why = node.blacklisted, "blacklisted"
        elif caller.tier in node.tiers:
            target, why = node.tiers[caller.tier], f"tier {caller.tier}"
        else:
            target, why = node.known or node.unknown, "known"
        self._record(now, self.node, "caller", branch=why)
        return target

    def _tier_priority(self, node: QueueNode | None, base: int) -> int:
        table = (node.tier_priority if node is not None else None)
        if table is None:
            table = self.menu.defaults.tier_priority
        tier = self.caller.tier if self.caller else None
        return max(base, table.get(tier, base)) if tier else base

    def _route(self, node: QueueNode, now: dt.datetime, out: list[Action]) -> None:
        tier = self.caller.tier if self.caller else None
        tier_queue = node.tier_queue if node.tier_queue is not None else self.menu.defaults.tier_queue
        queue = tier_queue.get(tier, node.queue) if tier else node.queue
        skills = dict(node.skills)
        if node.language_skill:
            skills[self.language] = max(skills.get(self.language, 0), node.language_skill)
        self._play_once(node.prompt, out)
        self._finish(RouteToQueue(queue, self._tier_priority(node, node.priority), skills), now, out)

    def _callback(self, node: CallbackNode, now: dt.datetime, out: list[Action]) -> str | None:
        number = self.variables.get(node.number_variable) if node.number_variable else None
        number = number or self.call.caller
        if not number:
            self._record(now, self.node, "callback", problem="no number")
            if node.no_number is not None:
                return node.no_number
            self._finish(Hangup("failed"), now, out)
            return None
        due: dt.datetime | None = None
        if node.at == "next_opening":
            due = self.hours.next_opening(now)
            if due is None:
                return self._callback_outside_hours(node, now, out, "no opening ahead")
        elif node.at is not None:
            chosen = parse_hhmm(str(self.variables.get(node.at) or ""))
            if chosen is None:
                return self._callback_outside_hours(node, now, out, f"{node.at} is not a time")
            local = now.astimezone(self.hours.zone)
            due = dt.datetime.combine(local.date(), chosen, tzinfo=self.hours.zone)
            if due <= local:
                due += dt.timedelta(days=1)
            if not self.hours.is_open(due):
                if node.outside_hours is not None:
                    self._record(now, self.node, "callback", problem="outside hours", chosen=due)
                    return node.outside_hours
                due = self.hours.next_opening(due)
                if due is None:
                    return self._callback_outside_hours(node, now, out, "no opening ahead")
        self.variables["callback.due"] = due
        self.variables["callback.number"] = number
        customer_id = self.caller.customer_id if self.caller else None
        out.append(
            RequestCallback(
                node.queue,
                number,
                keep_place=node.keep_place,
                due=due,
                customer_id=customer_id,
                priority=self._tier_priority(None, 5),
            )
        )
        self._record(now, self.node, "callback", queue=node.queue, keep_place=node.keep_place, due=due)
        self._play_once(node.confirm, out)
        self._finish(Hangup("callback_requested"), now, out)
        return None

    def _callback_outside_hours(self, node: CallbackNode, now: dt.datetime, out: list[Action], why: str) -> str | None:
        self._record(now, self.node, "callback", problem=why)
        if node.outside_hours is not None:
            return node.outside_hours
        self._finish(Hangup("failed"), now, out)
        return None
