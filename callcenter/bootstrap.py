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
            rtp_timeout=sip.rtp_timeout_seconds,
            session_expires=sip.session_expires_seconds,
        )
        self.phone_users = {aid: user for aid in settings.agents if (user := settings.phone_user(aid)) is not None}
        if self.phone_users and self.front_kind != "kamailio":
            raise ConfigError(
                f"agent(s) {', '.join(sorted(self.phone_users))} have phones that register (sip:USER@"
                f"{settings.phones.domain}), which needs the SIP front: set sip.front = 'kamailio' (apt-get install "
                "kamailio kamailio-extra-modules) or give them fixed phone URIs")
        self._credentials_seen: tuple | None = None
        if self.front_kind == "kamailio":
            from callcenter.front import KamailioFront

            self.front = KamailioFront(
                listen_address=sip.listen_address, port=sip.port, workers=lambda: self.pool.workers,
                max_load=sip.front_max_load or self.pool.legs // 2, trunk_allow=sip.trunk_allow,
                pike_density=sip.front_pike_density, on_report=self._front_report,
                **self._phone_options(settings),
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
            reconcile=True,
        )
        self.cti.bind(self.center)
        self._tasks: list = []

    @property
    def address(self) -> str:
        """``ip:port`` where callers reach the center: the front, or the first worker without one."""
        if self.front is not None:
            return self.front.address
        first = self.pool.workers[0]
        return f"{first.address}:{first.port}"

    def _phone_options(self, settings: Settings) -> dict:
        """The front's part for registering phones (none when no agent's phone registers)."""
        if not self.phone_users:
            return {}
        import socket

        from callcenter.front.phones import PhonesPlan

        ph = settings.phones
        with socket.socket() as probe:  # a free loopback port for the front's event socket
            probe.bind(("127.0.0.1", 0))
            event_port = probe.getsockname()[1]
        plan = PhonesPlan(domain=ph.domain, event_port=event_port, allow=tuple(ph.allow), min_expires=ph.min_expires,
                          max_expires=ph.max_expires, max_contacts=ph.max_contacts,
                          keepalive_interval=ph.keepalive_seconds, keepalive_timeout=ph.keepalive_timeout_seconds,
                          auth_failures=ph.auth_failures, auth_block_seconds=ph.auth_block_seconds)
        return {"phones": plan, "credentials": self._load_credentials(), "on_phone_event": self._phone_event,
                "on_phone_resync": self._phones_resync}

    def _load_credentials(self) -> dict[str, str]:
        """HA1 per SIP user from the database; agents without a usable one are told how to set it."""
        import logging

        from callcenter.db.agents import sip_credentials, sip_credentials_version

        log = logging.getLogger("callcenter.server")
        found, stale = sip_credentials(self.db, self.phone_users, self.settings.phones.domain)
        self._credentials_seen = sip_credentials_version(self.db)
        missing = sorted(aid for aid, user in self.phone_users.items() if user not in found)
        if missing:
            log.warning("agent(s) %s have no SIP password for realm %s%s: their phones cannot register until "
                        "'callcenter agents set-sip-password ID' is run", ", ".join(missing), self.settings.phones.domain,
                        f" (stored for another realm or user: {', '.join(stale)})" if stale else "")
        return found

    async def _follow_credentials(self, interval: float = 3.0) -> None:
        """A password set while the server runs reaches the front within ``interval`` seconds, no restart."""
        import asyncio
        import logging

        from callcenter.db.agents import sip_credentials_version

        log = logging.getLogger("callcenter.server")
        while True:
            await asyncio.sleep(interval)
            try:
                version = await asyncio.to_thread(sip_credentials_version, self.db)
                if version != self._credentials_seen:
                    credentials = await asyncio.to_thread(self._load_credentials)
                    await self.front.set_credentials(credentials)
                    log.info("SIP passwords changed: %d phone account(s) now at the front", len(credentials))
            except Exception as exc:  # the database or the front away for a moment: next round
                log.warning("could not refresh the SIP passwords: %s", exc)

    def _phone_event(self, event) -> None:
        """A registration change the front reported, as it happened."""
        import logging

        if event.kind == "registered":
            self.center.phone_registered(event.user, event.contact, received=event.received, expires=event.expires,
                                         user_agent=event.user_agent)
        elif event.kind in ("unregistered", "expired"):
            self.center.phone_unregistered(event.user, event.contact or None, why=event.kind)
        elif event.kind == "blocked":
            logging.getLogger("callcenter.server").warning(
                "SIP front: phone sign-ins blocked for %d s after repeated wrong passwords (user %r, from %s)",
                event.expires, event.user[:40], event.received[:60])

    def _phones_resync(self, table) -> None:
        """The front's whole location table: the truth that replaces what events built."""
        import datetime as dt

        from callcenter.core.devices import Binding

        now = utcnow()
        self.center.phones_synced({
            user: [Binding(b.contact, b.received, now + dt.timedelta(seconds=b.expires) if b.expires else None,
                           b.user_agent) for b in bindings]
            for user, bindings in table.items()})

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
        if self.front is not None and self.phone_users:
            import asyncio

            self._tasks.append(asyncio.create_task(self._follow_credentials(), name="sip-credentials"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.front is not None:
            await self.front.stop_following_workers()  # workers stopping now are not failures
        await self.cti.stop()
        await self.center.stop()
        await self.pool.stop()  # the workers' BYEs to callers go through the front: it stops last
        if self.front is not None:
            await self.front.stop()
        self.db.dispose()
