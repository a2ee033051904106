"""The one exception root of the ACD package and its specialisations."""

from __future__ import annotations

__all__ = [
    "AcdError",
    "SettingsError",
    "UnknownQueue",
    "UnknownAgent",
    "UnknownCall",
    "UnknownReason",
    "InvalidEvent",
    "TimeWentBackwards",
    "SnapshotError",
]


class AcdError(Exception):
    """Base of every error raised by :mod:`acd`."""


class SettingsError(AcdError, ValueError):
    """The engine settings are inconsistent; the message names the key path."""


class UnknownQueue(AcdError, KeyError):
    """An event or query named a queue that is not configured."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else "unknown queue"


class UnknownAgent(AcdError, KeyError):
    """An event or query named an agent that is not configured."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown agent"


class UnknownCall(AcdError, KeyError):
    """A query named a call the engine does not hold (events report this as ``EventRejected``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown call"


class UnknownReason(AcdError, ValueError):
    """A not-ready reason code that is not in the configured list."""


class InvalidEvent(AcdError, ValueError):
    """An event whose fields are malformed (bad priority, skill level out of 1-5, unknown type)."""


class TimeWentBackwards(AcdError, ValueError):
    """``now`` passed to the engine is earlier than the time it has already reached."""


class SnapshotError(AcdError, ValueError):
    """A snapshot cannot be restored (wrong format or does not match the settings)."""
