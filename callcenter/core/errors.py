"""Errors of the call flow: one root, each refusal a message meant for the person who asked."""

from __future__ import annotations

from callcenter.errors import CallCenterError

__all__ = ["CoreError", "DispositionRefused", "RequestRefused", "SupervisorActionRefused"]


class CoreError(CallCenterError, ValueError):
    """Root of the call flow's errors (also a ``ValueError``: each is input the center cannot take)."""


class RequestRefused(CoreError):
    """An agent request (dial, transfer) that cannot be carried out now; the message is for the agent."""


class DispositionRefused(CoreError):
    """A disposition that breaks a rule of ``[dispositions]``; the message is for the agent."""


class SupervisorActionRefused(CoreError):
    """A supervisor action that cannot be carried out now; nothing changed; the message says why."""
