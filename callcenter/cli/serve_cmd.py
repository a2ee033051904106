"""``callcenter serve``: run the contact center."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from callcenter.clock import utcnow
from callcenter import bootstrap
from callcenter.cli import app, console, err_console, state
from callcenter.errors import CallCenterError
from callcenter.loop_health import LoopHealth


def _status(server: bootstrap.Server, *notes: str) -> Table:
    center = server.center
    table = Table(title=f"{server.settings.center.name}: live", title_justify="left", expand=False)
    for column in ("queue", "waiting", "longest wait", "entered", "answered", "abandoned", "SL"):
        table.add_column(column, justify="right" if column != "queue" else "left")
    for qid in server.settings.queues:
        st = center.engine.queue_stats(qid, center.now().timestamp())
        table.add_row(qid, str(st.waiting), f"{st.longest_wait:.0f}s", str(st.entered), str(st.answered),
                      str(st.abandoned), "—" if st.sl1 is None else f"{st.sl1:.0%}")
    states: dict[str, int] = {}
    for agent in server.settings.agents:
        state_name = center.engine.agent_state(agent)[0]
        states[state_name] = states.get(state_name, 0) + 1
    table.caption = (
        f"calls in progress {len(center.calls)} · agents "
        + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        + f" · workers {server.pool.describe()}, {server.pool.free_legs()} free legs"
        + f" · arrived {center.counters['arrived']}, refused {center.counters['refused_source']},"
        + f" blocked {center.counters['blocked']}"
    )
    if server.front is not None:
        front = server.front.counters
        table.caption += (f" · front {'up' if server.front.alive else 'DOWN'}: forbidden {front['forbidden']},"
                          f" malformed {front['malformed']}, flood sources {front['flood_sources']},"
                          f" restarts {front['restarts']}")
    for note in notes:
        if note:
            table.caption += f"\n{note}"
    return table


def _workers_line(pool) -> str:
    """``4 worker(s)``, or for an elastic pool ``4 worker slots, elastic: 1 running, 3 stopped``."""
    if not pool.elastic:
        return f"{len(pool.workers)} worker(s)"
    return f"{len(pool.slots)} worker slots, elastic: {pool.describe().removesuffix(' (elastic)')}"


@app.command("serve")
def serve(
    ctx: typer.Context,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=256,
                                                   help="A fixed pool of this many media workers (default: "
                                                        "sip.workers; 0 there: elastic, up to max_legs / 4).")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", min=1,
                                                      help="Stop after this many seconds (tests, demos).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status table.")] = False,
) -> None:
    """Run the contact center: SIP media workers, IVR, queues and agents, with every contact recorded.

    Callers reach sip.listen_address:sip.port. With the SIP front (sip.front, Kamailio when
    installed) the media workers listen on sip.worker_base_port and up behind it; without it the
    first worker listens on sip.port and the next ones on the following ports. Agents with auto_login are available at once. Stop with Ctrl-C: calls in progress are hung up
    and their records closed.

    kill -USR1 <pid> prints one "loop-health {json}" line: the control loop's lag (p50, p99, max in
    ms) and its CPU since the previous one.
    """
    settings = state(ctx).settings
    prompts = Path(settings.ivr.prompts_dir) / "moh.wav"
    if not prompts.exists():
        raise CallCenterError(f"no prompts in {settings.ivr.prompts_dir}: run 'callcenter prompts build' first")
    asyncio.run(_serve(settings, workers, duration, quiet))


@app.command("demo-calls")
def demo_calls(
    ctx: typer.Context,
    duration: Annotated[float, typer.Option("--duration", min=5, help="How long new callers arrive, in seconds; "
                                            "the calls in progress then finish.")] = 90,
    rate: Annotated[float, typer.Option("--rate", min=0.01, max=5, help="New callers per second.")] = 0.25,
    talk: Annotated[float, typer.Option("--talk", min=1, max=600, help="Seconds each caller stays on after keying.")] = 15,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=64, help="Media workers.")] = None,
    desk_pin: Annotated[str, typer.Option("--desk-pin", help="PIN the simulated desks log in with "
                                          "(config/loopback.toml: 1234).")] = "1234",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same callers in the same order.")] = 42,
) -> None:
    """Run the contact center with simulated callers, agent phones (SIPp) and agent desks, and watch calls flow.

    Every auto-login agent whose phone is a loopback SIP URI gets a simulated phone that answers
    and a simulated desk (a CTI client) that saves a disposition after each call. Callers present
    the numbers of demo customers from the database (about 15% unknown numbers; one VIP, one
    blacklisted), arrive at --rate, key through the IVR (sales, general) and talk for --talk
    seconds. Log in as one of the agents from a console and the desk hands that agent over to
    you. Use it with config/loopback.toml. At the end, the contacts recorded and what the desks
    saw are summarised.
    """
    from callcenter.db.demo import demo_callers
    from callcenter.traffic import Traffic, mix_callers

    settings = state(ctx).settings
    if not (Path(settings.ivr.prompts_dir) / "moh.wav").exists():
        raise CallCenterError(f"no prompts in {settings.ivr.prompts_dir}: run 'callcenter prompts build' first")
    db = bootstrap.database(settings)
    try:
        pool = demo_callers(db, seed=seed)
    finally:
        db.dispose()
    if not pool.history:
        err_console.print("no customers with history in the database: callers will be unknown numbers "
                          "(load some with 'callcenter demo-data')", highlight=False)
    first = [(c.number, c.name) for c in (pool.vip, pool.blacklisted, *pool.unknown[:1]) if c is not None]
    callers = mix_callers([(c.number, c.name) for c in pool.history], [c.number for c in pool.unknown],
                          first=first, seed=seed)
    traffic = Traffic(settings, rate=rate, talk_ms=int(talk * 1000), callers=callers)
    if workers is None:
        # Each caller holds two legs for about the IVR (~25 s) plus the talk time; 4 legs a worker.
        workers = max(bootstrap.worker_count(settings), -(-int(rate * (talk + 25) * 2) // 4) + 1)
    started = utcnow()
    desk = _DeskPlan(pin=desk_pin, seed=seed, config=state(ctx).config_path, wind_down=talk + 30)
    asyncio.run(_serve(settings, workers, duration, False, traffic, desk))
    _summary(settings, started, desk.desks)


@dataclass
class _DeskPlan:
    """How demo-calls runs the simulated desks; after the run, ``desks`` holds them and what they saw."""

    pin: str
    seed: int
    config: str | None  # the configuration file, to tell people how to open a console on this center
    wind_down: float  # at most this long for calls in progress to finish once callers stop arriving
    desks: Any = None


def _summary(settings, since, desks=None) -> None:
    from callcenter.db.interactions import SqlInteractionStore

    db = bootstrap.database(settings)
    counts = SqlInteractionStore(db).outcomes_since(since)
    db.dispose()
    table = Table(title="Contacts recorded during the demo", title_justify="left")
    table.add_column("outcome")
    table.add_column("contacts", justify="right")
    for outcome, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(Text(outcome or "in progress"), str(count))
    console.print(table)
    if desks is None:
        return
    t = desks.tally
    seen = Table(title="What the simulated desks saw", title_justify="left")
    seen.add_column("")
    seen.add_column("calls", justify="right")
    rows = [
        ("screen pops", len(t.pops)),
        ("  a known customer", t.known),
        ("    with orders", t.with_orders),
        ("    with an open case", sum(1 for p in t.pops.values() if p.kind == "customer" and p.open_cases)),
        ("    VIP", t.count(kind="customer", vip=True)),
        ("  several customers on the number", t.count(kind="choose")),
        ("  unknown caller", t.count(kind="new")),
    ]
    for code, count in t.dispositions.most_common():
        rows.append((f"disposition {code}", count))
    rows += [("callbacks scheduled", t.callbacks)]
    if t.earlier:
        rows.append(("earlier calls still owed, disposed at login", t.earlier))
    if t.refused:
        rows.append(("dispositions refused by the server", t.refused))
    for label, count in rows:
        seen.add_row(Text(label), str(count))
    handed = [aid for aid, d in desks.desks.items() if d.state == "handed over"]
    failed = [f"{aid} ({d.detail})" for aid, d in desks.desks.items() if d.state == "failed"]
    notes = []
    if handed:
        notes.append(f"handed over to a console: {', '.join(handed)}")
    if failed:
        notes.append(f"could not log in: {', '.join(failed)}")
    seen.caption = "; ".join(notes) or None
    console.print(seen)


async def _serve(settings, workers: int | None, duration: float | None, quiet: bool, traffic=None,
                 desk: _DeskPlan | None = None) -> None:
    server = bootstrap.Server(settings, workers=workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    health = LoopHealth()
    health_task = asyncio.create_task(health.run(), name="loop-health")
    loop.add_signal_handler(signal.SIGUSR1, lambda: err_console.print(
        f"loop-health {json.dumps(health.report())}", highlight=False, markup=False, soft_wrap=True))
    try:
        await server.start()
    except Exception as exc:
        await server.stop()
        raise CallCenterError(f"the server could not start: {exc}") from None
    desks = None
    if traffic is not None:
        phones = traffic.start_phones()
        if server.front is not None:
            host, port = server.address.rsplit(":", 1)
            traffic.start_callers([(host, int(port))])
        else:
            traffic.start_callers([(w.address, w.port) for w in server.pool.workers])
        if desk is not None and phones:
            from callcenter.demo_desk import SimulatedDesks

            desks = desk.desks = SimulatedDesks(server.cti.url, phones, desk.pin, seed=desk.seed)
            desks.start()
            config = f"--config {desk.config} " if desk.config else ""
            err_console.print(f"simulated phones and desks for agents {', '.join(phones)}; callers at "
                              f"{traffic.rate:g}/s. Take agent {phones[0]}'s calls yourself: "
                              f"callcenter {config}agent --agent {phones[0]}", highlight=False, markup=False)
        else:
            err_console.print(f"simulated phones for agents {', '.join(phones) or '(none)'}; "
                              f"callers at {traffic.rate:g}/s", highlight=False)
    front = f" behind Kamailio (pid {server.front.pid})" if server.front is not None else ""
    err_console.print(
        f"[green]✓[/] serving on sip:{server.address} with {_workers_line(server.pool)}{front}, "
        f"consoles at {server.cti.url}; Ctrl-C stops", highlight=False,
    )
    live = None if quiet or not console.is_terminal else Live(_status(server), console=console, refresh_per_second=2)
    note = ""

    def refresh() -> None:
        if live is not None:
            live.update(_status(server, desks.describe() if desks is not None else "", note))

    async def watch(seconds: float | None, done=lambda: False) -> None:
        """Until Ctrl-C, ``seconds`` pass (None: forever) or ``done()``, refreshing the live status."""
        deadline = loop.time() + seconds if seconds is not None else None
        while not stop.is_set() and (deadline is None or loop.time() < deadline) and not done():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
            refresh()

    def settled() -> bool:
        """Every caller gone, and every call the desks took has its disposition."""
        owed = any(server.center.owed_list(aid) for aid in desks.active_agents()) if desks is not None else False
        return traffic.callers_done and not server.center.calls and not owed and not (desks and desks.busy)

    try:
        with live if live is not None else contextlib.nullcontext():
            await watch(duration)
            if traffic is not None and not stop.is_set():
                wind_down = desk.wind_down if desk is not None else 30
                note = f"winding down: no new callers; calls in progress finish (at most {wind_down:g} s)"
                traffic.stop_callers()
                await watch(wind_down, settled)
    finally:
        if desks is not None:
            await desks.stop()
        if traffic is not None:
            errors = traffic.caller_errors() if not server.center.counters["arrived"] else ""
            traffic.stop()
            if errors:
                err_console.print(f"no caller got through; SIPp said:\n{errors}", highlight=False, markup=False)
        await server.stop()
        health_task.cancel()
    err_console.print(f"stopped: {server.center.counters['arrived']} call(s) handled", highlight=False)
