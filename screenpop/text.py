"""Words and formats every screen shares: durations and agent state labels.

Here, in the pure presentation package, because everything that shows text to people can
import it: the consoles, the command line, the CTI server, core, and the pop rendering
itself (a pure package may not import the application package). Standard library only.
"""

from __future__ import annotations

from typing import Literal

# An agent's state (acd's AGENT_STATES, in that order) as the consoles label it.
STATE_LABELS = {
    "logged_out": "Logged out",
    "available": "Available",
    "reserved": "Ringing",
    "on_call": "On call",
    "wrap_up": "Wrap-up",
    "not_ready": "Not ready",
}


def format_duration(seconds: float | None, *, hours: Literal["auto", "always"] = "auto",
                    pad_minutes: bool = False, missing: str = "") -> str:
    """Whole seconds as ``m:ss``, or ``h:mm:ss`` from an hour on; ``missing`` for None.

    ``hours="always"``: ``0:05:07`` (report columns that line up); ``pad_minutes``: ``05:07``
    (a timer that keeps its width as it ticks). A negative duration (clocks a little apart)
    shows as zero rather than as a nonsense time.
    """
    if seconds is None:
        return missing
    seconds = max(0, int(seconds))
    whole_hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if whole_hours or hours == "always":
        return f"{whole_hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}" if pad_minutes else f"{minutes}:{secs:02d}"
