"""The rules of a disposition (``[dispositions]`` and the callback it may schedule), in one place.

The server refuses a disposition with these messages, and the agent console checks the same
rules before it sends one, so the agent reads the same words whichever side finds the problem.
Each check returns the problem as a message for the agent, or None when the rule is met.
Pure: plain values in (the current time included), no clock read, no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from screenpop.numbers import normalize

# A callback this little in the past is still taken: the form's default time and the clocks of
# the console and the server may be a few minutes apart.
PAST_GRACE = dt.timedelta(minutes=5)
CALLBACK_OWNERS = ("me", "anyone")


class Rule(Protocol):
    """One code's rule: ``config.DispositionConfig`` on the server, :class:`DispositionRule` in a console."""

    @property
    def label(self) -> str: ...

    @property
    def requires_note(self) -> bool: ...

    @property
    def requires_callback(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class DispositionRule:
    """A code's rule as a console receives it in the login reply."""

    label: str
    requires_note: bool = False
    requires_callback: bool = False


def rules_to_wire(rules: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[dispositions]`` as the login reply sends them to consoles (read back by :func:`rules_from_wire`)."""
    return [{"code": code, "label": d.label, "requires_note": d.requires_note,
             "requires_callback": d.requires_callback, "outcome": getattr(d, "outcome", None)}
            for code, d in rules.items()]


def rules_from_wire(codes: Iterable[Mapping[str, Any]]) -> dict[str, DispositionRule]:
    """The login reply's ``dispositions`` list as code -> rule, in the server's order (label: the code if none)."""
    return {str(d["code"]): DispositionRule(label=str(d.get("label") or d["code"]),
                                            requires_note=bool(d.get("requires_note")),
                                            requires_callback=bool(d.get("requires_callback")))
            for d in codes}


def unknown_code_problem(code: str, rules: Mapping[str, Rule]) -> str | None:
    """A code that ``[dispositions]`` does not define, with the ones it does."""
    if code in rules:
        return None
    return f"unknown disposition code {code!r}; known: {', '.join(rules)}"


def check_disposition(code: str, notes: str | None, callback: Mapping[str, Any] | None,
                      rules: Mapping[str, Rule]) -> str | None:
    """The code's rules, in this order: a known code, its note, its callback, the callback's number.

    ``callback`` is the callback asked for (None for none); only its ``number`` is looked at
    here, its time and owner have checks of their own below.
    """
    problem = unknown_code_problem(code, rules)
    if problem is not None:
        return problem
    rule = rules[code]
    if rule.requires_note and not (notes or "").strip():
        return f"{rule.label}: a note is required"
    if rule.requires_callback and not callback:
        return f"{rule.label}: schedule a callback (number and time)"
    if callback and not callback.get("number"):
        return "a callback needs a number"
    return None


def callback_number(number: str, region: str) -> str | None:
    """The callback number as E.164, or None when it is not a phone number.

    Lenient (any possible number, not only those the metadata knows): it was typed by an agent
    or came from the caller's own ID.
    """
    parsed = normalize(number, region, strict=False)
    return None if parsed is None else parsed.e164


def bad_number(number: str) -> str:
    """What to say when :func:`callback_number` finds no phone number in ``number``."""
    return f"callback: {number[:40]!r} is not a phone number"


def callback_time_problem(when: dt.datetime, now: dt.datetime) -> str | None:
    """A callback due before now (beyond :data:`PAST_GRACE`); both times timezone-aware."""
    if when < now - PAST_GRACE:
        return "callback: the time is in the past"
    return None


def callback_window_problem(due_from: dt.datetime, due_until: dt.datetime | None) -> str | None:
    """A window that closes before it opens (no end: open-ended, always fine)."""
    if due_until is not None and due_until <= due_from:
        return "callback: due_until must be after due_from"
    return None


def callback_owner_problem(owner: str | None) -> str | None:
    """Who may take the callback: ``me`` (the default, None) or ``anyone``."""
    if (owner or "me") not in CALLBACK_OWNERS:
        return "callback: 'owner' must be 'me' or 'anyone'"
    return None
