"""Composition root: the one place that builds adapters from settings and hands them out."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from callcenter.clock import utcnow
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


def worker_count(settings: Settings, legs_per_worker: int = 4) -> int:
    """Explicit ``sip.workers``, or enough 4-leg workers for ``sip.max_legs`` (an elastic pool's slots)."""
    return settings.sip.workers or max(1, -(-settings.sip.max_legs // legs_per_worker))


def worker_sizing(settings: Settings):
    """The elastic pool's rules from ``sip.*`` (``sip.workers = 0``)."""
    from callcenter.telephony.sizing import SizingRules

    sip = settings.sip
    return SizingRules(spare_legs=sip.spare_legs, idle_retire_seconds=sip.worker_idle_retire_seconds,
                       lead_seconds=sip.worker_lead_seconds)


def front_kind(settings: Settings) -> str:
    """The SIP front as run: ``"kamailio"`` or ``"none"`` (``sip.front = "auto"``: Kamailio when installed)."""
    from callcenter.front import resolve_front

    return resolve_front(settings.sip.front)


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
    """Everything ``callcenter serve`` runs, built from settings: workers, the call flow, the records.

    With the SIP front (``sip.front``), Kamailio listens on ``sip.listen_address:sip.port`` and the
    workers on ``sip.worker_base_port`` and up; without it, the workers start at ``sip.port``.
    ``sip.workers = 0`` (and no ``workers`` given) with the front makes the pool elastic; without the
    front it stays fixed, because callers reach the workers' own ports.
    """

    def __init__(self, settings: Settings, *, workers: int | None = None) -> None:
        import ipaddress
        from pathlib import Path

        from callcenter.core.contact_center import ContactCenter
        from callcenter.cti.server import CtiServer
        from callcenter.db.directory import SqlCustomerDirectory
        from callcenter.db.interactions import SqlInteractionStore
        from callcenter.db.selfservice import SqlSelfService
        from callcenter.errors import ConfigError
        from callcenter.queue_log_file import FileQueueLog
        from callcenter.telephony.pool import WorkerPool

        self.settings = settings
        sip = settings.sip
        count = workers or worker_count(settings)
        self.front_kind = front_kind(settings)
        self.front = None
        if self.front_kind == "kamailio":
            last = sip.worker_base_port + count - 1
            if sip.worker_base_port <= sip.port <= last:
                raise ConfigError(f"sip.port {sip.port} is one of the media workers' ports ({sip.worker_base_port}-{last}) "
                                  "behind the SIP front: move sip.worker_base_port")
            if ipaddress.ip_address(sip.listen_address).is_unspecified:
                raise ConfigError(f"sip.listen_address {sip.listen_address!r}: the SIP front and its workers need one "
                                  "concrete address (their media is offered on it), e.g. '192.0.2.10'")
        self.db = database(settings)
        elastic = workers is None and sip.workers == 0 and self.front_kind == "kamailio"
        self.pool = WorkerPool(
            count,
            address=sip.listen_address,
            base_port=sip.worker_base_port if self.front_kind == "kamailio" else sip.port,
            rtp_start=sip.rtp_port_start,
            sizing=worker_sizing(settings) if elastic else None,
            worker_args=("--clock-rate", str(sip.media_clock_rate)),
        )
        if self.front_kind == "kamailio":
            from callcenter.front import KamailioFront

            self.front = KamailioFront(
                listen_address=sip.listen_address, port=sip.port, workers=lambda: self.pool.workers,
                max_load=sip.front_max_load or self.pool.legs // 2, trunk_allow=sip.trunk_allow,
                pike_density=sip.front_pike_density, on_report=self._front_report,
            )
            self.pool.on_retiring = self.front.withdraw  # out of the list before it stops
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
            clock=utcnow,
            notifier=self.cti,
            front_address=self.front.address if self.front is not None else None,
        )
        self.cti.bind(self.center)

    @property
    def address(self) -> str:
        """``ip:port`` where callers reach the center: the front, or the first worker without one."""
        if self.front is not None:
            return self.front.address
        first = self.pool.workers[0]
        return f"{first.address}:{first.port}"

    def _front_report(self, report) -> None:
        """A caller the front turned away (every worker full) is a blocked call, like a worker's refusal."""
        from callcenter.front import blocked_call

        event = blocked_call(report)
        if event is not None:
            self.pool.note_turned_away()  # demand an elastic pool sizes for
            self.pool.events.put_nowait(event)

    async def start(self) -> None:
        from callcenter.db.agents import sync_agents

        sync_agents(self.db, self.settings.agents)  # interactions refer to agents by id
        await self.pool.start()
        if self.front is not None:
            try:
                await self.front.start()
            except BaseException:
                await self.pool.stop()
                raise
        await self.center.start()
        await self.cti.start()

    async def stop(self) -> None:
        if self.front is not None:
            await self.front.stop_following_workers()  # workers stopping now are not failures
        await self.cti.stop()
        await self.center.stop()
        await self.pool.stop()  # the workers' BYEs to callers go through the front: it stops last
        if self.front is not None:
            await self.front.stop()
        self.db.dispose()
