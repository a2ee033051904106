"""The consoles' header: title and a clock in the center's time zone (``hours.timezone``), zone shown.

Agents and supervisors may sit anywhere; what they read (callback times, waits since, the clock)
must be the center's time, not the time of the machine the console runs on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.widgets import Header
from textual.widgets._header import HeaderClockSpace, HeaderIcon, HeaderTitle

from callcenter.clock import assume_utc

Now = Callable[[], dt.datetime]
Zone = Callable[[], dt.tzinfo]


def center_time(moment: dt.datetime | None, zone: dt.tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment as the center's local time with its zone (``2026-11-24 15:30 CST``); ``—`` when unknown."""
    if moment is None:
        return "—"
    local = assume_utc(moment).astimezone(zone)
    return f"{local.strftime(fmt)} {local.tzname() or ''}".rstrip()


class CenterClock(HeaderClockSpace):
    """``14:03:12 CST``: the server's time in the center's zone, ticking every second."""

    DEFAULT_CSS = """
    CenterClock {
        background: $foreground-darken-1 5%;
        color: $foreground;
        text-opacity: 85%;
        content-align: center middle;
        width: 16;
    }
    """

    def __init__(self, now: Now, zone: Zone) -> None:
        super().__init__()
        self._now = now
        self._zone = zone

    def on_mount(self) -> None:
        self.set_interval(1, self.refresh, name="center clock")

    def render(self) -> RenderResult:
        return Text(center_time(self._now(), self._zone(), "%H:%M:%S"))


class CenterHeader(Header):
    """Textual's header with :class:`CenterClock` in place of the machine's clock."""

    def __init__(self, now: Now, zone: Zone, **kwargs) -> None:
        super().__init__(show_clock=False, **kwargs)
        self._clock_now = now
        self._clock_zone = zone

    def compose(self) -> ComposeResult:
        yield HeaderIcon().data_bind(Header.icon)
        yield HeaderTitle()
        yield CenterClock(self._clock_now, self._clock_zone)
