"""The screen pop: what the agent sees when a call is offered, as plain values.

A pop is built from the caller's number (E.164) and, when the IVR identified the caller, a
customer id. It is one of three kinds:

``customer``  exactly one customer: their whole profile (:class:`~screenpop.profile.CustomerProfile`)
``choose``    the number is shared by several customers: the agent picks one
``new``       nobody has this number: a "new contact" pop with a quick-create form

Every kind carries this call's context (queue, wait, IVR path and digits) and the repeat-caller
count: contacts from the same number or customer within the last ``repeat_hours``, not counting
this call. Nothing here does I/O; time-dependent rules take ``now``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from screenpop.profile import CallbackSummary, ContactSummary, CustomerProfile

REPEAT_HOURS = 24.0
OVERDUE_GRACE = dt.timedelta(hours=1)

PopKind = Literal["customer", "choose", "new"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """This call as the ACD offered it."""

    call_id: str
    ani: str | None = None
    display_name: str | None = None
    queue: str | None = None
    queue_name: str | None = None
    waited_seconds: float | None = None
    ivr_path: tuple[dict[str, Any], ...] = ()
    callback_number: str | None = None

    @property
    def route(self) -> tuple[str, ...]:
        return ivr_route(self.ivr_path)

    @property
    def digits(self) -> tuple[str, ...]:
        return ivr_digits(self.ivr_path)


@dataclass(frozen=True, slots=True)
class CustomerCandidate:
    """One of several customers sharing a number (or a search result)."""

    customer_id: int
    external_id: str | None
    name: str
    company: str | None
    tier: str
    numbers: tuple[str, ...] = ()
    blacklisted: bool = False
    do_not_call: bool = False


@dataclass(frozen=True, slots=True)
class ScreenPop:
    kind: PopKind
    number: str | None
    call: CallContext | None = None
    profile: CustomerProfile | None = None
    candidates: tuple[CustomerCandidate, ...] = ()
    recent_calls: int = 0
    repeat_hours: float = REPEAT_HOURS
    number_history: tuple[ContactSummary, ...] = ()
    number_callbacks: tuple[CallbackSummary, ...] = field(default_factory=tuple)

    @property
    def repeat_caller(self) -> bool:
        return self.recent_calls > 0

    @property
    def customer_id(self) -> int | None:
        return self.profile.customer_id if self.profile is not None else None


def pop_kind(candidates: int) -> PopKind:
    return "new" if candidates == 0 else ("customer" if candidates == 1 else "choose")


def choose_pop_kind(*, has_profile: bool, candidates: int) -> PopKind:
    """The kind of pop to show, once the caller's profile (if any) and the number's owners are looked up.

    A loaded profile wins (the IVR may have identified the caller on a shared number). A single
    owner whose profile did not load was deleted between the two look-ups: a new contact, not an
    empty customer pop.
    """
    if has_profile:
        return "customer"
    kind = pop_kind(candidates)
    return "new" if kind == "customer" else kind


def ivr_route(path: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> tuple[str, ...]:
    """The menu nodes the caller went through, in order, each once per visit."""
    route: list[str] = []
    for step in path:
        if not isinstance(step, dict) or step.get("step") != "enter":
            continue
        node = step.get("node")
        if isinstance(node, str) and (not route or route[-1] != node):
            route.append(node)
    return tuple(route)


def ivr_digits(path: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> tuple[str, ...]:
    """What the caller keyed in, one entry per input (sensitive entries arrive already masked)."""
    return tuple(
        str(step["digits"]) for step in path
        if isinstance(step, dict) and step.get("step") == "input" and step.get("digits") not in (None, "")
    )


@dataclass(frozen=True, slots=True)
class AgentCallback:
    """A callback an agent may work: their own ones and the ones for anyone."""

    callback_id: int
    number: str
    customer_id: int | None
    customer_name: str | None
    queue: str | None
    due_from: dt.datetime
    due_until: dt.datetime | None
    status: str
    owner: str | None
    attempts: int
    notes: str | None = None

    def urgency(self, now: dt.datetime) -> str:
        """'overdue', 'due' or 'later'.

        Overdue: past ``due_until``, or (without one) more than an hour past ``due_from``.
        """
        if self.due_from > now:
            return "later"
        deadline = self.due_until or (self.due_from + OVERDUE_GRACE)
        return "overdue" if now > deadline else "due"


@dataclass(frozen=True, slots=True)
class RecentContact:
    """One of an agent's own recent contacts."""

    call_id: str | None
    at: dt.datetime
    direction: str
    ani: str | None
    display_name: str | None
    customer_id: int | None
    customer_name: str | None
    queue: str | None
    outcome: str | None
    disposition: str | None
    notes: str | None
    talk_seconds: float | None
