"""Business hours and holidays, evaluated in the contact center's own time zone.

The caller passes the time; nothing here reads a clock.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_range(text: str) -> tuple[dt.time, dt.time | None]:
    """``"09:00-18:00"`` -> (09:00, 18:00); an end of ``24:00`` is returned as None (end of day)."""
    match = _RANGE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a time range like '09:00-18:00'")
    start = dt.time(int(match.group(1)), int(match.group(2)))
    end_h, end_m = int(match.group(3)), int(match.group(4))
    if end_h == 24 and end_m != 0:
        raise ValueError(f"{text!r}: the latest end is 24:00")
    end = None if end_h == 24 else dt.time(end_h, end_m)
    if end is not None and end <= start:
        raise ValueError(f"{text!r}: the end must be after the start (split ranges that cross midnight)")
    return start, end


class Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date
    name: str = ""
    hours: list[str] = Field(default_factory=list, description="open ranges that day; empty means closed")

    @field_validator("hours")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_range(item)
        return value


class BusinessHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = "Asia/Shanghai"
    weekly: dict[str, list[str]] = Field(
        default_factory=lambda: {d: ["09:00-18:00"] for d in WEEKDAYS[:5]} | {"sat": [], "sun": []}
    )
    holidays: list[Holiday] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai'") from None
        return value

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, ranges in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown day {day!r}; days are {', '.join(WEEKDAYS)}")
            for item in ranges:
                parse_range(item)
        return value

    @model_validator(mode="after")
    def _unique_holidays(self) -> BusinessHours:
        seen: set[dt.date] = set()
        for holiday in self.holidays:
            if holiday.date in seen:
                raise ValueError(f"holiday {holiday.date} is listed twice")
            seen.add(holiday.date)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def ranges_on(self, day: dt.date) -> list[str]:
        for holiday in self.holidays:
            if holiday.date == day:
                return holiday.hours
        return self.weekly.get(WEEKDAYS[day.weekday()], [])

    def holiday_on(self, day: dt.date) -> Holiday | None:
        return next((h for h in self.holidays if h.date == day), None)

    def is_open(self, at: dt.datetime) -> bool:
        """True when ``at`` (timezone-aware) falls inside an open range of its local day."""
        if at.tzinfo is None:
            raise ValueError("is_open needs a timezone-aware datetime")
        local = at.astimezone(self.zone)
        now = local.time()
        for item in self.ranges_on(local.date()):
            start, end = parse_range(item)
            if start <= now and (end is None or now < end):
                return True
        return False

    def next_opening(self, at: dt.datetime, horizon_days: int = 31) -> dt.datetime | None:
        """The next moment the center opens after ``at`` (aware, in the center's zone), or None."""
        local = at.astimezone(self.zone)
        for offset in range(horizon_days + 1):
            day = local.date() + dt.timedelta(days=offset)
            for item in sorted(self.ranges_on(day)):
                start, _ = parse_range(item)
                candidate = dt.datetime.combine(day, start, tzinfo=self.zone)
                if candidate > local:
                    return candidate
        return None
