"""The supervisor dashboard's view of the center, apart from the widgets: server data in, rows out.

It is changed only by what the server says: the ``supervisor.snapshot`` reply (everything) and
``supervisor.update`` events (only the rows that changed). Times that grow by themselves (the
oldest caller's wait, an agent's time in state) are kept as the server's timestamps and worked
out against the server's clock, so they tick on screen between updates and agree across
dashboards. Alerts, sorting and filtering are plain functions here. No Textual: tests use dicts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callcenter.clock import parse_time, server_offset
from screenpop.text import STATE_LABELS, format_duration
OK, AMBER, RED = "ok", "amber", "red"
_ORDER = {RED: 2, AMBER: 1, OK: 0}

# (column id, title) of the agents view; sorting cycles through these
AGENT_COLUMNS = [
    ("agent", "Agent"), ("name", "Name"), ("state", "State"), ("reason", "Reason"), ("in_state", "In state"),
    ("caller", "Caller"), ("queue", "Queue"), ("calls", "Calls"), ("aht", "AHT"), ("occupancy", "Occupancy"),
    ("owed", "Owed"), ("phone", "Phone"),
]
_STATE_RANK = {"on_call": 0, "reserved": 1, "wrap_up": 2, "available": 3, "not_ready": 4, "logged_out": 5}

# People's words for the machine values the server sends; the data keeps the codes.
STATE_WORDS = {
    "logged_out": "logged out",
    "available": "available",
    "reserved": "ringing",
    "on_call": "on a call",
    "wrap_up": "in wrap-up",
    "not_ready": "not ready",
}
STRATEGY_WORDS = {
    "longest_idle": "longest idle first",
    "round_robin": "round robin",
    "fewest_calls": "fewest calls first",
    "least_talk_time": "least talk time first",
}
VERDICT_WORDS = {  # the ACD's verdict codes, as counted in the summary of why a caller waits
    "chosen": "offered this call",
    "candidate": "free to take it",
    "logged_out": "logged out",
    "not_member": "not in this queue",
    "missing_skill": "missing a skill",
    "level_too_low": "skill level too low",
    "not_ready": "not ready",
    "wrap_up": "in wrap-up",
    "busy_in_other_queue": "busy with another queue's call",
    "on_call": "on a call",
    "reserved": "ringing with another call",
    "missed_this_call": "let this call ring out",
}


def words(code: Any) -> str:
    """A code as words (``no_answer`` -> ``no answer``), for codes with no wording of their own."""
    return str(code or "").replace("_", " ")


def state_text(state: str | None, reason: str | None = None) -> str:
    """An agent's state as a person says it: ``on a call``, ``not ready (lunch)``."""
    text = STATE_WORDS.get(state or "", words(state))
    if state == "not_ready" and reason:
        text += f" ({words(reason)})"
    return text


_CALL_ID = re.compile(r"\b[0-9a-f]{32}\b")
_CODES = re.compile(r"\b(" + "|".join(sorted(STATE_WORDS, key=len, reverse=True)) + r")\b")


def verdict_text(verdict: dict[str, Any], queue_name: Callable[[str], str] = str) -> str:
    """Why one agent has not taken the call, in people's words.

    The ACD's detail is written for logs (state codes, call ids, strategy keys); its few facts are
    picked out here and said again, so the supervisor reads ``busy with a call of queue Sales``
    rather than ``on_call with 3f2a... from sales``.
    """
    code = str(verdict.get("verdict") or "")
    detail = str(verdict.get("detail") or "")
    if code == "chosen":
        return "talking to this caller" if detail.startswith("answered") else "phone ringing with this caller"
    if code == "candidate":
        rank = verdict.get("rank")
        return f"free and qualified, next in line (#{rank})" if rank else "free and qualified"
    if code == "logged_out":
        return "logged out"
    if code == "not_member":
        m = re.fullmatch(r"logged in to (.*), not \S+", detail)
        if m and m.group(1) != "no queue":
            others = ", ".join(queue_name(q) for q in m.group(1).split(", "))
            return f"logged in to other queues only ({others})"
        return "not logged in to this queue"
    if code == "missing_skill":
        m = re.fullmatch(r"lacks skill (\S+) \(needs (\d+)\)", detail)
        if m:
            return f"lacks the skill {m.group(1)} (needs level {m.group(2)})"
    if code == "level_too_low":
        m = re.fullmatch(r"(\S+) level (\d+) < (\d+)", detail)
        if m:
            return f"{m.group(1)} at level {m.group(2)}, needs {m.group(3)}"
    if code == "not_ready":
        m = re.fullmatch(r"not ready \((.*)\)", detail)
        return state_text("not_ready", m.group(1) if m and m.group(1) != "None" else None)
    if code == "wrap_up":
        return state_text("wrap_up")
    if code == "busy_in_other_queue":
        m = re.fullmatch(r"(\S+) with \S+ from (\S+)", detail)
        if m:
            busy = "phone ringing with" if m.group(1) == "reserved" else "busy with"
            return f"{busy} a call of queue {queue_name(m.group(2))}"
        return "busy with a call of another queue"
    if code == "on_call":
        return "on a call of this queue"
    if code == "reserved":
        return "phone ringing with another call of this queue"
    if code == "missed_this_call":
        return "let this call ring out; the others are tried first"
    said = _CODES.sub(lambda m: STATE_WORDS[m.group(1)], _CALL_ID.sub("a call", detail))
    return f"{words(code)}: {said}" if said else words(code)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def seconds_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}s"


@dataclass(frozen=True)
class Thresholds:
    wait_amber_seconds: float = 60
    wait_red_seconds: float = 180
    sl_red_margin: float = 0.1

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Thresholds:
        data = data or {}
        return cls(**{k: float(data[k]) for k in ("wait_amber_seconds", "wait_red_seconds", "sl_red_margin")
                      if isinstance(data.get(k), (int, float))})


def longest_wait(queue: dict[str, Any], now: dt.datetime) -> float:
    """The oldest caller's wait now (0 when nobody waits)."""
    since = parse_time(queue.get("oldest_since"))
    if since is None or not (queue.get("waiting") or queue.get("ringing")):
        return 0.0
    return max(0.0, (now - since).total_seconds())


def alert(queue: dict[str, Any], thresholds: Thresholds, now: dt.datetime) -> tuple[str, list[str]]:
    """``(level, reasons)``: amber below the service-level target or past the amber wait, red
    further below (``sl_red_margin``) or past the red wait. The service level compared is the
    stricter one: answered within the threshold over answered + abandoned."""
    level, reasons = OK, []
    sl, target = queue.get("sl2"), queue.get("sl_target")
    if isinstance(sl, (int, float)) and isinstance(target, (int, float)) and sl < target:
        level = RED if sl < target - thresholds.sl_red_margin else AMBER
        reasons.append(f"service level {percent(sl)} < target {percent(target)}")
    wait = longest_wait(queue, now)
    if wait > thresholds.wait_amber_seconds:
        red = wait > thresholds.wait_red_seconds
        if red or level == OK:
            level = RED if red else AMBER
        reasons.append(f"oldest caller waiting {format_duration(wait)}")
    return level, reasons


def caller_text(call: dict[str, Any] | None) -> str:
    if not call:
        return ""
    number = call.get("ani") or "withheld"
    name = call.get("display_name")
    return f"{number} “{name}”" if name else str(number)


@dataclass
class SupervisorModel:
    supervisor_id: str
    name: str = ""
    center: str = ""
    timezone: str = "UTC"
    region: str = "CN"
    link: str = "connecting"
    link_detail: str = ""
    logins: int = 0
    loaded: bool = False
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    staffing: dict[str, dict[str, Any]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    not_ready_reasons: list[str] = field(default_factory=list)
    server_offset: dt.timedelta = dt.timedelta(0)
    updates: int = 0

    # ------------------------------------------------------------------ in

    def on_login(self, data: dict[str, Any]) -> None:
        agent = data.get("agent") or {}
        self.name = str(agent.get("name") or "")
        self.center = str(data.get("center") or "")
        self.timezone = str(data.get("timezone") or "UTC")
        self.region = str(data.get("region") or "CN")
        self.not_ready_reasons = list(data.get("not_ready_reasons") or [])
        self.logins += 1

    def learn_time(self, stamp: Any, local_now: dt.datetime) -> None:
        offset = server_offset(stamp, local_now)
        if offset is not None:
            self.server_offset = offset

    def on_snapshot(self, data: dict[str, Any], local_now: dt.datetime) -> None:
        self.learn_time(data.get("server_time"), local_now)
        self.queues = {q["queue"]: q for q in data.get("queues") or []}
        self.agents = {a["agent_id"]: a for a in data.get("agents") or []}
        self.staffing = {s["queue"]: s for s in data.get("staffing") or []}
        self.counters = dict(data.get("counters") or {})
        self.thresholds = Thresholds.of(data.get("thresholds"))
        if data.get("not_ready_reasons"):
            self.not_ready_reasons = list(data["not_ready_reasons"])
        self.loaded = True

    def on_update(self, event: dict[str, Any], local_now: dt.datetime) -> dict[str, set[str] | bool]:
        """Apply a ``supervisor.update``; returns what changed: queue ids, agent ids, counters, staffing."""
        self.learn_time(event.get("server_time"), local_now)
        self.updates += 1
        queues = {q["queue"] for q in event.get("queues") or () if isinstance(q, dict) and "queue" in q}
        for row in event.get("queues") or ():
            if isinstance(row, dict) and row.get("queue") in queues:
                self.queues[row["queue"]] = row
        agents = set()
        for row in event.get("agents") or ():
            if isinstance(row, dict) and "agent_id" in row:
                self.agents[row["agent_id"]] = row
                agents.add(row["agent_id"])
        counters = False
        if isinstance(event.get("counters"), dict) and event["counters"] != self.counters:
            self.counters = dict(event["counters"])
            counters = True
        staffing = False
        if isinstance(event.get("staffing"), list):
            self.staffing = {s["queue"]: s for s in event["staffing"] if isinstance(s, dict) and "queue" in s}
            staffing = True
        return {"queues": queues, "agents": agents, "counters": counters, "staffing": staffing}

    # ------------------------------------------------------------------ out

    def now(self, local_now: dt.datetime) -> dt.datetime:
        return local_now + self.server_offset

    def queue_ids(self) -> list[str]:
        return list(self.queues)

    def totals(self) -> dict[str, int]:
        """Across queues: waiting; across agents (each counted once): states."""
        out = {"waiting": sum(int(q.get("waiting") or 0) for q in self.queues.values())}
        for state in STATE_LABELS:
            out[state] = 0
        for a in self.agents.values():
            out[a.get("state", "logged_out")] = out.get(a.get("state", "logged_out"), 0) + 1
        return out

    def worst(self, now: dt.datetime) -> str:
        levels = [alert(q, self.thresholds, now)[0] for q in self.queues.values()]
        return max(levels, key=_ORDER.__getitem__, default=OK)

    def ringing_at(self, queue: str) -> list[dict[str, Any]]:
        """Agents whose phone rings with a caller of ``queue``, longest ringing first.

        Those callers have left the ACD's waiting list but not the queue: the queue detail lists
        them from here, so its counts and its rows agree."""
        rows = [a for a in self.agents.values()
                if (a.get("call") or {}).get("phase") == "ringing" and (a.get("call") or {}).get("queue") == queue]
        return sorted(rows, key=lambda a: (str(a.get("since") or ""), str(a.get("agent_id"))))

    def time_in_state(self, agent: dict[str, Any], now: dt.datetime) -> float | None:
        since = parse_time(agent.get("since"))
        return None if since is None else max(0.0, (now - since).total_seconds())

    def agent_matches(self, agent: dict[str, Any], text: str) -> bool:
        """Every word of ``text`` appears in the agent's id, name, state, reason, queues or caller."""
        if not text.strip():
            return True
        call = agent.get("call") or {}
        hay = " ".join(str(x) for x in (
            agent.get("agent_id"), agent.get("name"), agent.get("state"), STATE_LABELS.get(agent.get("state"), ""),
            state_text(agent.get("state")),
            agent.get("reason") or "", " ".join(agent.get("queues") or ()), call.get("queue") or "",
            f"phone {agent.get('phone')}" if agent.get("phone") in ("online", "offline") else "",
            caller_text(call),
        )).lower()
        return all(word in hay for word in text.lower().split())

    def sort_value(self, agent: dict[str, Any], column: str, now: dt.datetime) -> tuple:
        call = agent.get("call") or {}
        value: Any
        if column == "agent":
            value = agent.get("agent_id") or ""
        elif column == "name":
            value = (agent.get("name") or "").lower()
        elif column == "state":
            value = _STATE_RANK.get(agent.get("state"), 9)
        elif column == "reason":
            value = agent.get("reason") or ""
        elif column == "in_state":
            value = self.time_in_state(agent, now) or 0.0
        elif column == "caller":
            value = caller_text(call)
        elif column == "queue":
            value = call.get("queue") or ""
        else:
            value = agent.get(column)
        missing = value is None or value == ""
        return (missing, value if not missing else 0, agent.get("agent_id") or "")

    def agents_view(self, *, sort: str = "agent", reverse: bool = False, text: str = "",
                    now: dt.datetime) -> list[dict[str, Any]]:
        """Agents that match ``text``, sorted by ``sort`` (empty values last either way)."""
        rows = [a for a in self.agents.values() if self.agent_matches(a, text)]
        present = [a for a in rows if not self.sort_value(a, sort, now)[0]]
        missing = [a for a in rows if self.sort_value(a, sort, now)[0]]
        present.sort(key=lambda a: self.sort_value(a, sort, now), reverse=reverse)
        missing.sort(key=lambda a: a.get("agent_id") or "")
        return present + missing


def parse_skills(text: str) -> dict[str, int]:
    """``"sales=3 support=2"`` (or commas) as a dict; raises ValueError with a message for the user."""
    out: dict[str, int] = {}
    for part in text.replace(",", " ").split():
        name, sep, level = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{part!r}: write each skill as name=level, e.g. sales=3")
        try:
            number = int(level)
        except ValueError:
            raise ValueError(f"{part!r}: the level must be a whole number from 1 to 5") from None
        if not 1 <= number <= 5:
            raise ValueError(f"{part!r}: the level must be from 1 to 5 (leave a skill out to remove it)")
        if name in out:
            raise ValueError(f"{name!r} is given twice")
        out[name] = number
    return out


def skills_text(skills: dict[str, int] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted((skills or {}).items()))
