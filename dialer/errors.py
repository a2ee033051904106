"""The one exception root of the dialer package."""

from __future__ import annotations

__all__ = ["DialerError", "RulesError"]


class DialerError(Exception):
    """Base of every error raised by :mod:`dialer`."""


class RulesError(DialerError, ValueError):
    """Calling rules that cannot be applied (an unknown time zone, hours that end before they start)."""
