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


def worker_count(settings: Settings, legs_per_worker: int = 4) -> int:
    """Explicit ``sip.workers``, or enough 4-leg workers for ``sip.max_legs``."""
    return settings.sip.workers or max(1, -(-settings.sip.max_legs // legs_per_worker))


def ivr_menu(settings: Settings):
    """The IVR menu, without the language choice when ``ivr.ask_language`` is false."""
    from callcenter.prompts import load_menu
    from ivr.menu import LanguageNode

    menu = load_menu(settings.ivr.menu_file).menu
    if not settings.ivr.ask_language:
        start = next(
            (node_id for node_id, node in menu.menus.items()
             if isinstance(node, LanguageNode) and node.language == settings.ivr.default_language),
            None,
        )
        if start is not None:
            menu = menu.model_copy(update={"start": start})
    return menu


class Server:
    """Everything ``callcenter serve`` runs, built from settings: workers, the call flow, the records."""

    def __init__(self, settings: Settings, *, workers: int | None = None) -> None:
        from pathlib import Path

        from callcenter.core.contact_center import ContactCenter
        from callcenter.cti.server import CtiServer
        from callcenter.db.customers import SqlCustomerDirectory
        from callcenter.db.interactions import SqlInteractionStore
        from callcenter.db.selfservice import SqlSelfService
        from callcenter.queue_log_file import FileQueueLog
        from callcenter.telephony.pool import WorkerPool

        self.settings = settings
        self.db = database(settings)
        sip = settings.sip
        self.pool = WorkerPool(
            workers or worker_count(settings),
            address=sip.listen_address,
            base_port=sip.port,
            rtp_start=sip.rtp_port_start,
        )
        self.store = SqlInteractionStore(self.db)
        self.cti = CtiServer(settings, directory=SqlCustomerDirectory(self.db, region=settings.center.default_region))
        self.center = ContactCenter(
            settings=settings,
            menu=ivr_menu(settings),
            telephony=self.pool,
            store=self.store,
            selfservice=SqlSelfService(self.db, timezone=settings.hours.timezone),
            prompts_dir=Path(settings.ivr.prompts_dir),
            queue_log=FileQueueLog(sip.queue_log) if sip.queue_log else None,
            recordings_dir=Path(settings.recording.directory) if settings.recording.enabled else None,
            clock=now,
            notifier=self.cti,
        )
        self.cti.bind(self.center)

    async def start(self) -> None:
        from callcenter.db.agents import sync_agents

        sync_agents(self.db, self.settings.agents)  # interactions refer to agents by id
        await self.pool.start()
        await self.center.start()
        await self.cti.start()

    async def stop(self) -> None:
        await self.cti.stop()
        await self.center.stop()
        await self.pool.stop()
        self.db.dispose()
