"""What a console's CTI client tells its Textual app: posted from the client's callbacks."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class LinkChanged(Message):
    """The link to the server went up, down or is retrying (``detail`` says why)."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__()
        self.status = status
        self.detail = detail


class LoggedIn(Message):
    """The server accepted the login (again, after a reconnect): ``data`` is its answer."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data


class EventReceived(Message):
    """One event pushed by the server."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event
