"""The CTI package's exceptions: one root, :class:`CtiError`."""

from __future__ import annotations

from typing import Any

from callcenter.errors import CallCenterError


class CtiError(CallCenterError):
    """Anything that went wrong on the CTI link."""


class CtiConnectionError(CtiError):
    """The server cannot be reached, or the connection dropped while a request was waiting."""


class CtiRequestError(CtiError):
    """The server answered a request with an error frame."""

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data or {}

    def __str__(self) -> str:
        return self.message


class CtiAuthError(CtiRequestError):
    """Login refused: unknown agent or wrong PIN, locked after failures, or an unsupported protocol."""


class CtiServerError(CtiError):
    """The CTI server cannot start: a bad listen address, an unreadable certificate, a port in use."""
