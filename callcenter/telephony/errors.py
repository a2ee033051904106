"""The telephony package's exceptions: one root, :class:`TelephonyError`."""

from __future__ import annotations

from callcenter.errors import CallCenterError

__all__ = ["TelephonyError"]


class TelephonyError(CallCenterError):
    """Base of every error defined in :mod:`callcenter.telephony` (the workers and their pool)."""
