"""The IVR package's exceptions: one root, :class:`IvrError`."""

from __future__ import annotations


class IvrError(Exception):
    """Base of every error raised by the ``ivr`` package."""


class MenuError(IvrError):
    """A menu definition is invalid.

    ``problems`` holds ``(key path, message)`` pairs; the key path is written the way the
    TOML file spells it (``menus.main.options.4``).
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{source}: invalid IVR menu ({count} problem{'s' if count != 1 else ''})"]
        lines += [f"  {path or '(top level)'}: {message}" for path, message in self.problems]
        super().__init__("\n".join(lines))


class SessionError(IvrError):
    """The session was driven wrongly (an event before ``start``, a time without a zone)."""
