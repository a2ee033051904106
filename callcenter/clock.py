"""Wall-clock helpers shared by the server and the consoles: one reading of the clock, one rule for zones.

The rule everywhere: a time without a zone is UTC (SQLite hands datetimes back naive, and old
rows and peers may omit the offset). Only :func:`utcnow` reads the clock; the pure packages
still receive the time as an argument. Standard library only, so any layer may import it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC (never naive: naive and aware times do not compare)."""
    return dt.datetime.now(dt.UTC)


def assume_utc(moment: dt.datetime) -> dt.datetime:
    """A naive time taken as UTC; an aware one unchanged (its own zone kept for display)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """The same instant expressed in UTC (naive taken as UTC): what is stored and compared."""
    return assume_utc(moment).astimezone(dt.UTC)


def parse_time(value: Any) -> dt.datetime | None:
    """A timestamp from the wire (ISO 8601, naive means UTC), or None when absent or unreadable.

    Lenient on purpose: for times a peer reports. Times a person asks for (a callback) must
    carry their offset and are checked where they are received.
    """
    if not isinstance(value, str):
        return None
    try:
        return assume_utc(dt.datetime.fromisoformat(value))
    except ValueError:
        return None


def server_offset(stamp: Any, local_now: dt.datetime) -> dt.timedelta | None:
    """How far the server's clock (``stamp``, one of its timestamps) is ahead of ours; None if unreadable.

    Consoles add it to their own clock so that waits and timers agree with the server and
    across consoles, whatever the clock of the machine they run on says.
    """
    moment = parse_time(stamp)
    return None if moment is None else moment - local_now
