"""The screenpop package's exceptions: one root, :class:`ScreenpopError`."""

from __future__ import annotations

__all__ = ["ScreenpopError"]


class ScreenpopError(Exception):
    """Base of every error raised by the ``screenpop`` package."""
