"""``callcenter serve``: run the contact center."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.live import Live
from rich.table import Table

from callcenter import bootstrap
from callcenter.cli import app, console, err_console, state
from callcenter.errors import CallCenterError


def _status(server: bootstrap.Server) -> Table:
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
    workers = server.pool.workers
    table.caption = (
        f"calls in progress {len(center.calls)} · agents "
        + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        + f" · workers {sum(w.alive for w in workers)}/{len(workers)} up, {sum(w.free_legs for w in workers)} free legs"
        + f" · arrived {center.counters['arrived']}, refused {center.counters['refused_source']},"
        + f" blocked {center.counters['blocked']}"
    )
    if server.front is not None:
        front = server.front.counters
        table.caption += (f" · front {'up' if server.front.alive else 'DOWN'}: forbidden {front['forbidden']},"
                          f" malformed {front['malformed']}, flood sources {front['flood_sources']},"
                          f" restarts {front['restarts']}")
    return table


@app.command("serve")
def serve(
    ctx: typer.Context,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=256,
                                                   help="Media workers (default: sip.workers or max_legs / 4).")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", min=1,
                                                      help="Stop after this many seconds (tests, demos).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status table.")] = False,
) -> None:
    """Run the contact center: SIP media workers, IVR, queues and agents, with every contact recorded.

    Callers reach sip.listen_address:sip.port. With the SIP front (sip.front, Kamailio when
    installed) the media workers listen on sip.worker_base_port and up behind it; without it the
    first worker listens on sip.port and the next ones on the following ports. Agents with auto_login are available at once. Stop with Ctrl-C: calls in progress are hung up
    and their records closed.
    """
    settings = state(ctx).settings
    prompts = Path(settings.ivr.prompts_dir) / "moh.wav"
    if not prompts.exists():
        raise CallCenterError(f"no prompts in {settings.ivr.prompts_dir}: run 'callcenter prompts build' first")
    asyncio.run(_serve(settings, workers, duration, quiet))


@app.command("demo-calls")
def demo_calls(
    ctx: typer.Context,
    duration: Annotated[float, typer.Option("--duration", min=5, help="How long to run, in seconds.")] = 90,
    rate: Annotated[float, typer.Option("--rate", min=0.01, max=5, help="New callers per second.")] = 0.25,
    talk: Annotated[float, typer.Option("--talk", min=1, max=600, help="Seconds each caller stays on after keying.")] = 15,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=64, help="Media workers.")] = None,
) -> None:
    """Run the contact center with simulated callers and agent phones (SIPp), and watch calls flow.

    Every auto-login agent whose phone is a loopback SIP URI gets a simulated phone that answers;
    callers arrive at --rate, key through the IVR (sales, general, support) and talk for --talk
    seconds. Use it with config/loopback.toml. At the end, the contacts recorded are summarised.
    """
    from callcenter.traffic import Traffic

    settings = state(ctx).settings
    if not (Path(settings.ivr.prompts_dir) / "moh.wav").exists():
        raise CallCenterError(f"no prompts in {settings.ivr.prompts_dir}: run 'callcenter prompts build' first")
    traffic = Traffic(settings, rate=rate, talk_ms=int(talk * 1000))
    if workers is None:
        # Each caller holds two legs for about the IVR (~25 s) plus the talk time; 4 legs a worker.
        workers = max(bootstrap.worker_count(settings), -(-int(rate * (talk + 25) * 2) // 4) + 1)
    started = bootstrap.now()
    asyncio.run(_serve(settings, workers, duration, False, traffic))
    _summary(settings, started)


def _summary(settings, since) -> None:
    from callcenter.db.interactions import SqlInteractionStore

    db = bootstrap.database(settings)
    counts = SqlInteractionStore(db).outcomes_since(since)
    db.dispose()
    table = Table(title="Contacts recorded during the demo", title_justify="left")
    table.add_column("outcome")
    table.add_column("contacts", justify="right")
    for outcome, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(outcome or "in progress", str(count))
    console.print(table)


async def _serve(settings, workers: int | None, duration: float | None, quiet: bool, traffic=None) -> None:
    server = bootstrap.Server(settings, workers=workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except Exception as exc:
        await server.stop()
        raise CallCenterError(f"the server could not start: {exc}") from None
    if traffic is not None:
        phones = traffic.start_phones()
        if server.front is not None:
            host, port = server.address.rsplit(":", 1)
            traffic.start_callers([(host, int(port))])
        else:
            traffic.start_callers([(w.address, w.port) for w in server.pool.workers])
        err_console.print(f"simulated phones for agents {', '.join(phones) or '(none)'}; callers at {traffic.rate:g}/s",
                          highlight=False)
    front = f" behind Kamailio (pid {server.front.pid})" if server.front is not None else ""
    err_console.print(
        f"[green]✓[/] serving on sip:{server.address} with {len(server.pool.workers)} worker(s){front}, "
        f"consoles at {server.cti.url}; Ctrl-C stops", highlight=False,
    )
    try:
        if quiet or not console.is_terminal:
            await asyncio.wait_for(stop.wait(), duration) if duration else await stop.wait()
        else:
            with Live(_status(server), console=console, refresh_per_second=2) as live:
                deadline = loop.time() + duration if duration else None
                while not stop.is_set() and (deadline is None or loop.time() < deadline):
                    try:
                        await asyncio.wait_for(stop.wait(), 0.5)
                    except asyncio.TimeoutError:
                        pass
                    live.update(_status(server))
    except asyncio.TimeoutError:
        pass
    finally:
        if traffic is not None:
            traffic.stop()
        await server.stop()
    err_console.print(f"stopped: {server.center.counters['arrived']} call(s) handled", highlight=False)
