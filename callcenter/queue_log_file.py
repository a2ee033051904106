"""Appends queue_log lines to a file, for tools that read Asterisk's queue_log."""

from __future__ import annotations

from pathlib import Path


class FileQueueLog:
    """Opened per write, so an external log rotation needs no signal."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
