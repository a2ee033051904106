"""Supervisor dashboard benchmark: event-to-screen latency and responsiveness with 500 agents, 50 queues.

Run:  .venv/bin/python bench/supervisor_bench.py [--seconds 60] [--warmup 20] [--rate 5] [--agents 500] [--queues 50]

Two processes on this machine:

* the **server** (this script with ``--serve``): the real call flow (``ContactCenter``: IVR, ACD,
  records in a migrated SQLite database through the writer thread) and the real CTI server on
  loopback. Only the media workers are replaced, by a traffic generator that plays the callers
  and the agents' phones: Poisson arrivals spread over the queues, each caller keys through a
  generated two-level IVR menu to its queue, agents' phones answer after 0.5-2 s, talk times
  are exponential (mean ``--aht``), impatient callers hang up (exponential patience), and a few
  agents a second go on a break and come back. The same model as ``acd/simulation.py``, in real
  time, so the ACD, the supervisors' feed and the database see live traffic.
* the **dashboard**: ``SupervisorApp`` headless (Textual's ``run_test``) logged in over CTI as
  the supervisor, switching between the wallboard and the agents view (500 rows).

Figures: event-to-screen latency per update (``changed_mono`` in each ``supervisor.update``, the
server's CLOCK_MONOTONIC at the oldest change it carries, against the dashboard's CLOCK_MONOTONIC
just after the screen was refreshed: same host, same clock), pushes per second, render time per
update, the dashboard loop's lag (a 50 ms timer's lateness), and key-press-to-screen time for
mode switches under load. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SUPERVISOR, PIN = "9001", "9999"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# ----------------------------------------------------------------------------- the server side


def write_config(folder: Path, agents: int, queues: int, seed: int) -> tuple[Path, Path]:
    from callcenter.security import hash_pin

    rng = random.Random(seed)
    qids = [f"q{i:02d}" for i in range(1, queues + 1)]
    pin_hash = hash_pin(PIN)
    lines = [
        '[center]\nname = "Benchmark center"\n',
        f'[database]\nurl = "sqlite:///{folder / "bench.db"}"\n',
        '[cti]\nlisten = "ws://127.0.0.1:0"\n',
        f'[ivr]\nmenu_file = "{folder / "ivr.toml"}"\nfallback_queue = "q01"\nask_language = false\n',
        '[hours]\ntimezone = "UTC"\n[hours.weekly]\n' + "".join(f'{d} = ["00:00-24:00"]\n' for d in
                                                                   ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
        '[acd]\nnot_ready_reasons = ["break", "lunch", "no_answer"]\nmax_missed_offers = 5\n',
        '[supervisor]\nwait_amber_seconds = 30\nwait_red_seconds = 90\n',
    ]
    for qid in qids:
        lines.append(f'[queues.{qid}]\nname = "Queue {qid[1:]}"\nservice_level_seconds = 20\nwrapup_seconds = 5\n'
                     'ring_timeout_seconds = 10\nannounce_every_seconds = 0\n')
    for i in range(1, agents + 1):
        member = sorted(rng.sample(qids, 3))
        lines.append(f'[agents.a{i:04d}]\nname = "Agent {i}"\npin_hash = "{pin_hash}"\n'
                     f'phone = "sip:a{i:04d}@127.0.0.1:5090"\nqueues = {json.dumps(member)}\nauto_login = true\n')
    lines.append(f'[agents.{SUPERVISOR}]\nname = "Bench supervisor"\npin_hash = "{pin_hash}"\n'
                 f'phone = "sip:{SUPERVISOR}@127.0.0.1:5099"\nrole = "supervisor"\n')
    config = folder / "callcenter.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    groups = math.ceil(queues / 10)
    menu = ['version = 1\nstart = "pick"\n[defaults]\ntimeout = 6\nretries = 1\non_failure = "n01"\n'
            '[caller]\nlookup = false\n[limits]\nmax_steps = 20\nmax_seconds = 120\non_limit = "n01"\n',
            '[menus.pick]\nprompt = "pick"\noptions = { ' + ", ".join(f'{g + 1} = "g{g + 1}"' for g in range(groups))
            + " }\n"]
    for g in range(groups):
        options = {}
        for d in range(10):
            n = g * 10 + d + 1
            if n <= queues:
                options[str(d)] = f"n{n:02d}"
        menu.append(f'[menus.g{g + 1}]\nprompt = "pick"\noptions = {{ '
                    + ", ".join(f'{k} = "{v}"' for k, v in options.items()) + " }\n")
    for n, qid in enumerate(qids, 1):
        menu.append(f'[menus.n{n:02d}]\ntype = "queue"\nqueue = "{qid}"\npriority = 1\n')
    menu.append('[prompts.zh]\npick = "press a digit"\n[prompts.en]\npick = "press a digit"\n')
    (folder / "ivr.toml").write_text("\n".join(menu), encoding="utf-8")
    return config, folder / "ivr.toml"


def traffic_telephony(rate: float, aht: float, patience: float, queues: int, seed: int):
    """The media workers' stand-in: callers, IVR keys, phones that answer, talk and hang up."""
    from callcenter.core import telephony_protocol as tp
    from callcenter.telephony.pool import FakeTelephony

    class Traffic(FakeTelephony):
        def __init__(self) -> None:
            super().__init__(workers=64, legs=64)
            self.rng = random.Random(seed)
            self.ended: set[str] = set()
            self.peer: dict[str, str] = {}
            self.stats = {"arrived": 0, "answered_by_phone": 0, "abandoned": 0, "pauses": 0}
            self.loop: asyncio.AbstractEventLoop | None = None

        def later(self, delay: float, event) -> None:
            self.loop.call_later(delay, self._deliver, event)

        def _deliver(self, event) -> None:
            leg = getattr(event, "leg", None)
            if leg is not None and leg in self.ended:
                return
            if isinstance(event, tp.LegEnded):
                self.ended.add(event.leg)
            worker = self.worker_of(leg) if leg else None
            self.inject(dataclasses.replace(event, worker=worker or "w1"))

        def send(self, command, *, worker=None):
            command_id = super().send(command, worker=worker)
            if isinstance(command, tp.PlayPrompts) and not command.loop:
                self.later(0.03, tp.PlaybackFinished(leg=command.leg, playback=command_id, completed=True))
            elif isinstance(command, tp.Hangup) and command.leg not in self.ended:
                self.later(0.01, tp.LegEnded(leg=command.leg, cause="local_hangup"))
            return command_id

        def dial(self, uri, *, peer=None, caller_id="", display_name="", timeout=30.0, worker=None):
            leg = super().dial(uri, peer=peer, caller_id=caller_id, display_name=display_name, timeout=timeout,
                               worker=worker)
            if peer:
                self.peer[leg] = peer
            self.later(self.rng.uniform(0.5, 2.0), tp.LegAnswered(leg=leg))
            talk = self.rng.expovariate(1 / aht) + 2.0
            self.loop.call_later(talk, self._talked, leg)
            return leg

        def _talked(self, agent_leg: str) -> None:
            caller = self.peer.pop(agent_leg, None)
            if caller and caller not in self.ended:
                self._deliver(tp.LegEnded(leg=caller, cause="remote_bye"))

        async def callers(self, queue_count: int) -> None:
            n = 0
            while True:
                await asyncio.sleep(self.rng.expovariate(rate))
                worker = self.pick_worker(2)
                if worker is None:
                    continue
                n += 1
                q = self.rng.randrange(queue_count)
                leg = self.arrive(ani=f"+8613{n:09d}", display_name=f"Caller {n}", worker=worker,
                                  remote_address="127.0.0.1:5099")
                self.stats["arrived"] += 1
                group, digit = divmod(q, 10)
                self.later(0.4, tp.DigitReceived(leg=leg, digit=str(group + 1), method="rfc4733"))
                self.later(0.8, tp.DigitReceived(leg=leg, digit=str(digit), method="rfc4733"))
                self.loop.call_later(0.8 + self.rng.expovariate(1 / patience), self._maybe_abandon, leg)

        def _maybe_abandon(self, leg: str) -> None:
            if leg not in self.ended and leg not in self.peer.values():
                self.stats["abandoned"] += 1
                self._deliver(tp.LegEnded(leg=leg, cause="remote_bye"))

    return Traffic()


async def serve(args) -> None:
    from callcenter.config import load
    from callcenter.core.contact_center import ContactCenter
    from callcenter.cti.server import CtiServer
    from callcenter.db import Database, upgrade
    from callcenter.db.agents import sync_agents
    from callcenter.db.interactions import SqlInteractionStore
    from callcenter.prompts import load_menu
    from ivr.ports import InMemorySelfService

    folder = Path(args.folder)
    config, menu_file = write_config(folder, args.agents, args.queues, args.seed)
    settings = load(config, environ={}).settings
    db = Database(settings.database.url)
    upgrade(db)
    sync_agents(db, settings.agents)
    telephony = traffic_telephony(args.rate, args.aht, args.patience, args.queues, args.seed)
    telephony.loop = asyncio.get_running_loop()
    cti = CtiServer(settings)
    center = ContactCenter(settings=settings, menu=load_menu(menu_file).menu, telephony=telephony,
                           store=SqlInteractionStore(db), selfservice=InMemorySelfService(),
                           prompts_dir=folder / "prompts", notifier=cti)
    cti.bind(center)
    acd_events = 0
    handle = center.engine.handle

    def counted(event, now):
        nonlocal acd_events
        acd_events += 1
        return handle(event, now)

    center.engine.handle = counted
    await center.start()
    await cti.start()
    print(json.dumps({"url": cti.url}), flush=True)
    rng = random.Random(args.seed + 1)
    agents = [a for a, c in settings.agents.items() if c.role == "agent"]

    async def pauses() -> None:  # a few agents a second take a break or come back
        while True:
            await asyncio.sleep(rng.expovariate(args.pauses))
            agent = rng.choice(agents)
            state = center.engine.agent_state(agent)[0]
            if state == "not_ready":
                center.ready(agent)
            elif state in ("available", "wrap_up"):
                center.not_ready(agent, "break")
            telephony.stats["pauses"] += 1

    tasks = [asyncio.create_task(telephony.callers(args.queues)), asyncio.create_task(pauses())]
    started = time.monotonic()
    cpu0 = time.process_time()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until the dashboard is done
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu0
    for task in tasks:
        task.cancel()
    waiting = sum(center.engine.queue_stats(q).waiting for q in settings.queues)
    states: dict[str, int] = {}
    for a in agents:
        s = center.engine.agent_state(a)[0]
        states[s] = states.get(s, 0) + 1
    print(json.dumps({"server": {"seconds": round(elapsed, 1), "acd_events": acd_events,
                                 "acd_events_per_s": round(acd_events / elapsed, 1), "pushes": cti.feed.pushed,
                                 "cpu_percent": round(100 * cpu / elapsed, 1), "waiting_now": waiting,
                                 "agent_states": states, **telephony.stats}}), flush=True)
    await cti.stop()
    await center.stop()
    db.dispose()


# ----------------------------------------------------------------------------- the dashboard side


async def drive_dashboard(url: str, seconds: float, warmup: float) -> dict:
    from callcenter.tui.supervisor_console import SupervisorApp

    app = SupervisorApp(url=url, supervisor_id=SUPERVISOR, pin=PIN)
    lags: list[float] = []
    keys: list[tuple[str, float]] = []
    async with app.run_test(headless=True, size=(200, 60)) as pilot:
        for _ in range(1000):
            if app.model.loaded:
                break
            await asyncio.sleep(0.02)
        if not app.model.loaded:
            raise SystemExit("the dashboard did not load")
        expected = [time.perf_counter()]

        def beat() -> None:  # the dashboard loop's lateness: a 50 ms timer
            now = time.perf_counter()
            lags.append(max(0.0, now - expected[0]))
            expected[0] = now + 0.05

        expected[0] = time.perf_counter() + 0.05
        app.set_interval(0.05, beat)
        print(f"dashboard loaded: {len(app.model.queues)} queues, {len(app.model.agents)} agents; "
              f"warming up {warmup:g} s", file=sys.stderr)
        await asyncio.sleep(warmup)
        app.latencies.clear()
        app.arrivals.clear()
        app.render_seconds.clear()
        lags.clear()
        updates0, renders0 = app.model.updates, app.renders
        by_mode: dict[str, list[float]] = {"wallboard": [], "agents": []}
        started = time.perf_counter()
        cycle = ["2", "1"]
        i = 0
        while time.perf_counter() - started < seconds:
            key = cycle[i % 2]
            i += 1
            mode = "agents" if key == "2" else "wallboard"
            t0 = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            keys.append((mode, time.perf_counter() - t0))
            before = len(app.latencies)
            await asyncio.sleep(5)
            by_mode[mode].extend(list(app.latencies)[before:])
        elapsed = time.perf_counter() - started
        latencies = list(app.latencies)
        arrivals = list(app.arrivals)
        renders = list(app.render_seconds)
        result = {
            "seconds": round(elapsed, 1),
            "updates_per_s": round((app.model.updates - updates0) / elapsed, 2),
            "renders_per_s": round((app.renders - renders0) / elapsed, 2),
            "latency_ms": {"n": len(latencies), "p50": round(percentile(latencies, 50) * 1000, 1),
                           "p99": round(percentile(latencies, 99) * 1000, 1),
                           "max": round(max(latencies) * 1000, 1) if latencies else None},
            "latency_ms_by_mode": {m: {"n": len(v), "p50": round(percentile(v, 50) * 1000, 1),
                                       "p99": round(percentile(v, 99) * 1000, 1),
                                       "max": round(max(v) * 1000, 1) if v else None} for m, v in by_mode.items()},
            "arrival_ms": {"p50": round(percentile(arrivals, 50) * 1000, 1),
                           "p99": round(percentile(arrivals, 99) * 1000, 1),
                           "max": round(max(arrivals) * 1000, 1) if arrivals else None},
            "render_ms": {"p50": round(percentile(renders, 50) * 1000, 2), "p99": round(percentile(renders, 99) * 1000, 2),
                          "max": round(max(renders) * 1000, 2) if renders else None},
            "loop_lag_ms": {"p50": round(percentile(lags, 50) * 1000, 1), "p99": round(percentile(lags, 99) * 1000, 1),
                            "max": round(max(lags) * 1000, 1) if lags else None},
            "key_to_screen_ms": {m: {"p50": round(percentile([t for k, t in keys if k == m], 50) * 1000, 1),
                                     "max": round(max([t for k, t in keys if k == m] or [math.nan]) * 1000, 1)}
                                 for m in ("wallboard", "agents")},
            "agents_on_screen": len(app.model.agents), "queues_on_screen": len(app.model.queues),
        }
        await app.action_quit()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="measured time")
    parser.add_argument("--warmup", type=float, default=20, help="traffic before measuring")
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5.0, help="calls per second")
    parser.add_argument("--aht", type=float, default=60.0, help="mean talk seconds")
    parser.add_argument("--patience", type=float, default=90.0, help="mean seconds a caller waits before hanging up")
    parser.add_argument("--pauses", type=float, default=2.0, help="agent breaks (or returns) per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args))
        return
    with tempfile.TemporaryDirectory(prefix="cc-supbench-") as folder:
        command = [sys.executable, __file__, "--serve", "--folder", folder, *sys.argv[1:]]
        server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            first = json.loads(server.stdout.readline())
            print(f"server up at {first['url']}: {args.agents} agents, {args.queues} queues, "
                  f"{args.rate:g} calls/s, AHT {args.aht:g} s", file=sys.stderr)
            dash = asyncio.run(drive_dashboard(first["url"], args.seconds, args.warmup))
            server.stdin.write("done\n")
            server.stdin.flush()
            report = json.loads(server.stdout.readline())["server"]
        finally:
            if server.poll() is None:
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
    lat = dash["latency_ms"]
    print(f"server: {report['acd_events_per_s']} ACD events/s, {report['arrived']} callers, "
          f"{report['abandoned']} abandoned, {report['pauses']} agent pauses, {report['pushes']} pushes, "
          f"CPU {report['cpu_percent']}%, waiting at the end {report['waiting_now']}, states {report['agent_states']}")
    print(f"dashboard: {dash['agents_on_screen']} agents, {dash['queues_on_screen']} queues; "
          f"{dash['updates_per_s']} updates/s, {dash['renders_per_s']} renders/s")
    print(f"event-to-screen latency: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms "
          f"over {lat['n']} updates")
    arr = dash["arrival_ms"]
    print(f"  of which change-to-dashboard (coalescing, server, network, queueing): p50 {arr['p50']} ms, "
          f"p99 {arr['p99']} ms, max {arr['max']} ms")
    for mode, figures in dash["latency_ms_by_mode"].items():
        print(f"  on {mode}: p50 {figures['p50']} ms, p99 {figures['p99']} ms, max {figures['max']} ms (n={figures['n']})")
    print(f"render per update: p50 {dash['render_ms']['p50']} ms, p99 {dash['render_ms']['p99']} ms, "
          f"max {dash['render_ms']['max']} ms")
    print(f"dashboard loop lag (50 ms timer): p50 {dash['loop_lag_ms']['p50']} ms, p99 {dash['loop_lag_ms']['p99']} ms, "
          f"max {dash['loop_lag_ms']['max']} ms")
    for mode, figures in dash["key_to_screen_ms"].items():
        print(f"key to screen, switch to {mode}: p50 {figures['p50']} ms, max {figures['max']} ms")
    print(json.dumps({
        "agents": args.agents, "queues": args.queues, "calls_per_s": args.rate,
        "acd_events_per_s": report["acd_events_per_s"], "updates_per_s": dash["updates_per_s"],
        "latency_p50_ms": lat["p50"], "latency_p99_ms": lat["p99"], "latency_max_ms": lat["max"],
        "render_p99_ms": dash["render_ms"]["p99"], "loop_lag_p99_ms": dash["loop_lag_ms"]["p99"],
        "key_to_agents_p50_ms": dash["key_to_screen_ms"]["agents"]["p50"],
        "server_cpu_percent": report["cpu_percent"],
    }))


if __name__ == "__main__":
    main()
