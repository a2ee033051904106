"""The pre-dial policy: may this lead be dialled now, and if not, why and when again.

Pure: a lead, its contact history, the campaign's calling rules and the current time in; one
:class:`Decision` out. Every decision, dial or skip, carries its reason, so the caller records it
and reports can group the calls not placed by why. The checks run from the most final to the most
temporary (a blacklisted number is reported as blacklisted, not as "outside calling hours"):

1. blacklist, 2. do-not-call (the customer's flag, the center's own list, imported lists, a "do not
call me" disposition in the history: at once), 3. the lockout after an abandoned call (72 h by
default: a customer whose answered call found no agent is not rung again soon), 4. frequency caps
per number (attempts in 24 h, and the gap since the last one), 5. callee-local calling hours and
holidays. The callee's time zones come with the lead (a number's region may span several zones, as
``phonenumbers`` reports them): the number is callable only when it is inside the hours in every one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.errors import RulesError

__all__ = [
    "ABANDON_LOCKOUT", "BLACKLISTED", "DIAL", "DNC_FLAG", "DNC_LIST", "DNC_REQUESTED", "FREQUENCY_DAY",
    "FREQUENCY_GAP", "HOLIDAY", "OUTSIDE_HOURS", "REASONS", "UNKNOWN_ZONE", "Attempt", "CallingRules", "Decision",
    "Lead", "decide",
]

DIAL = "dial"
BLACKLISTED = "blacklisted"
DNC_FLAG = "dnc_customer"
DNC_LIST = "dnc_list"
DNC_REQUESTED = "dnc_requested"
ABANDON_LOCKOUT = "abandon_lockout"
FREQUENCY_DAY = "frequency_day"
FREQUENCY_GAP = "frequency_gap"
OUTSIDE_HOURS = "outside_hours"
HOLIDAY = "holiday"
UNKNOWN_ZONE = "unknown_zone"
REASONS = (DIAL, BLACKLISTED, DNC_FLAG, DNC_LIST, DNC_REQUESTED, ABANDON_LOCKOUT, FREQUENCY_DAY, FREQUENCY_GAP,
           OUTSIDE_HOURS, HOLIDAY, UNKNOWN_ZONE)
"""Every reason a decision may carry; skips are all but :data:`DIAL`."""

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Lead:
    """One number to call, with what is known of it before dialling."""

    number: str
    """E.164."""
    zones: tuple[str, ...] = ()
    """IANA time zones the number may be in (from its region); empty: unknown."""
    customer_id: int | None = None
    blacklisted: bool = False
    do_not_call: bool = False
    """The customer's own do-not-call flag."""


@dataclass(frozen=True)
class Attempt:
    """One earlier contact with the number: when, and how it ended (``answered``, ``no_answer``, ``busy``,
    ``machine``, ``abandoned``, ...); ``disposition`` the agent's code, if any."""

    at: dt.datetime
    outcome: str
    disposition: str | None = None


@dataclass(frozen=True)
class CallingRules:
    """A campaign's rules for when a number may be rung."""

    start: dt.time = dt.time(8, 0)
    end: dt.time = dt.time(21, 0)
    """Callee-local hours: a call may start at ``start`` and must start before ``end``."""
    weekdays: frozenset[int] = frozenset(range(7))
    """Days calls may be made (Monday 0); callee-local."""
    holidays: frozenset[dt.date] = frozenset()
    """Callee-local dates with no calls."""
    max_per_day: int = 3
    """Attempts to one number in any 24 hours."""
    min_gap: dt.timedelta = dt.timedelta(hours=1)
    """Time between two attempts to one number."""
    abandon_lockout: dt.timedelta = dt.timedelta(hours=72)
    """No call to a number for this long after a call to it was abandoned (answered, no agent in time)."""
    dnc_numbers: frozenset[str] = frozenset()
    """The center's own and imported do-not-call lists (E.164)."""
    dnc_dispositions: frozenset[str] = frozenset({"do_not_call"})
    """Disposition codes by which a customer asked not to be called: effective from that moment."""
    fallback_zone: str | None = None
    """Zone used when a lead's zones are unknown; None: such leads are skipped (``unknown_zone``)."""

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise RulesError(f"calling hours end ({self.end}) must be after they start ({self.start})")
        if self.max_per_day < 1:
            raise RulesError("max_per_day must be at least 1")
        if not self.weekdays <= frozenset(range(7)):
            raise RulesError("weekdays are 0 (Monday) to 6 (Sunday)")
        if self.fallback_zone is not None:
            _zone(self.fallback_zone)


@dataclass(frozen=True)
class Decision:
    """Dial, or skip with a reason; ``not_before``: the earliest time the same lead could pass (None: never
    by waiting, e.g. do-not-call)."""

    reason: str
    detail: str = ""
    not_before: dt.datetime | None = None

    @property
    def dial(self) -> bool:
        return self.reason == DIAL


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RulesError(f"unknown time zone {name!r}") from None


def decide(lead: Lead, history: Iterable[Attempt], rules: CallingRules, now: dt.datetime) -> Decision:
    """Whether ``lead`` may be dialled at ``now`` (an aware time), and why not."""
    if now.tzinfo is None:
        raise RulesError("now must be an aware time (UTC)")
    attempts = sorted(history, key=lambda a: a.at)
    if lead.blacklisted:
        return Decision(BLACKLISTED, "the number is blacklisted")
    if lead.do_not_call:
        return Decision(DNC_FLAG, "the customer is flagged do-not-call")
    if lead.number in rules.dnc_numbers:
        return Decision(DNC_LIST, "the number is on a do-not-call list")
    asked = next((a for a in reversed(attempts) if a.disposition in rules.dnc_dispositions), None)
    if asked is not None:
        return Decision(DNC_REQUESTED, f"asked not to be called on {asked.at.isoformat(timespec='minutes')}")
    abandoned = next((a for a in reversed(attempts) if a.outcome == "abandoned"), None)
    if abandoned is not None and now < abandoned.at + rules.abandon_lockout:
        return Decision(ABANDON_LOCKOUT, f"a call to it was abandoned at {abandoned.at.isoformat(timespec='minutes')}",
                        abandoned.at + rules.abandon_lockout)
    recent = [a for a in attempts if now - _DAY < a.at <= now]
    if len(recent) >= rules.max_per_day:
        return Decision(FREQUENCY_DAY, f"{len(recent)} attempts in the last 24 h (at most {rules.max_per_day})",
                        recent[-rules.max_per_day].at + _DAY)
    if attempts and attempts[-1].at <= now < attempts[-1].at + rules.min_gap:
        return Decision(FREQUENCY_GAP, f"last attempt at {attempts[-1].at.isoformat(timespec='minutes')}",
                        attempts[-1].at + rules.min_gap)
    names = lead.zones or ((rules.fallback_zone,) if rules.fallback_zone else ())
    if not names:
        return Decision(UNKNOWN_ZONE, "the callee's time zone is unknown")
    for name in names:
        local = now.astimezone(_zone(name))
        if local.date() in rules.holidays:
            return Decision(HOLIDAY, f"{local.date().isoformat()} is a holiday in {name}", _next_window(names, rules, now))
        if local.weekday() not in rules.weekdays or not rules.start <= local.time() < rules.end:
            return Decision(OUTSIDE_HOURS, f"{local.strftime('%a %H:%M')} in {name} (calls {rules.start:%H:%M}-"
                                           f"{rules.end:%H:%M})", _next_window(names, rules, now))
    return Decision(DIAL, f"callee-local {now.astimezone(_zone(names[0])).strftime('%a %H:%M')} in {names[0]}")


def _open_at(names: tuple[str, ...], rules: CallingRules, at: dt.datetime) -> bool:
    for name in names:
        local = at.astimezone(_zone(name))
        if local.date() in rules.holidays or local.weekday() not in rules.weekdays \
                or not rules.start <= local.time() < rules.end:
            return False
    return True


def _next_window(names: tuple[str, ...], rules: CallingRules, now: dt.datetime) -> dt.datetime | None:
    """The first time, in 15-minute steps over the next 14 days, when every zone is inside the hours."""
    step = dt.timedelta(minutes=15)
    at = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=15 - now.minute % 15)
    for _ in range(14 * 24 * 4):
        if _open_at(names, rules, at):
            return at
        at += step
    return None
