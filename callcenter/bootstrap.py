"""Composition root: the one place that builds adapters from settings and hands them out."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from callcenter.config import Settings
from callcenter.db import Database


def database(settings: Settings, *, check_schema: bool = True) -> Database:
    """The configured database; by default refuses to work on one that is not migrated."""
    db = Database(settings.database.url, echo=settings.database.echo)
    if check_schema:
        db.check_schema()
    return db


def center_zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.hours.timezone)


def now() -> dt.datetime:
    """Wall-clock time for the I/O edges; the pure packages always receive it as an argument."""
    return dt.datetime.now(dt.UTC)
