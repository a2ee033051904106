"""Bare pjsua2 reference: one pjsua2 process, no control plane, answering calls and playing a WAV to each.

Run:  .venv/bin/python bench/pjsua_reference.py [--mode default|worker|bridged|all] [--idle-seconds 10]
                                               [--hold-seconds 30] [--calls 4] [--rate 1]

What our media workers cost per call leg is only meaningful next to what pjsua2 itself costs on the
same machine. This script runs the smallest program that does the workers' job: one pjsua2 endpoint
(``python bench/pjsua_reference.py ua ...``, the same wheel as the workers, at most 4 calls per
process) that answers every incoming call with 200 and plays a looping 8 kHz WAV (SIPp's sample
speech) to it through its own player, until the caller hangs up (or, ``--mode bridged``, bridges the
calls two by two). No IPC, no admission, no IVR, no database: what is left when our layers are
taken away.

A SIPp caller (``bench/scenarios/caller_media.xml``: offers PCMU, streams SIPp's sample speech to the
UA with ``rtp_stream`` for the whole call, so RTP flows both ways) places ``--calls`` calls at
``--rate`` per second. The figures, from ``/proc/<pid>/stat`` (utime + stime of all the UA's
threads) as a percentage of one core:

- ``idle_cpu_pct``: the UA before any call, over ``--idle-seconds``;
- ``calls_cpu_pct``: the UA while all ``--calls`` calls are up (2 s after the last one reported
  media), over ``--hold-seconds``;
- ``cpu_per_leg_pct``: (``calls_cpu_pct`` - ``idle_cpu_pct``) / calls, the same rule as the
  workers' ``worker_cpu_per_leg_pct`` in ``bench/sip_load.py``;
- ``rtp_in_per_leg_pps``: RTP packets per second per call that reached SIPp's media port during the
  window (about 50 when the WAV plays: 20 ms packets), counted from the port's drops (see
  ``bench/rtp_audio.py``).

Three set-ups (``--mode``, default all three):

- ``default``: pjsua2's stock media settings (media I/O queue and its thread, 16 kHz conference,
  echo canceller with 200 ms tail, VAD), the null sound device from the start, and a 10 ms
  ``libHandleEvents`` loop: how the workers ran before issue 15, and what the idle figures in that
  issue were measured with.
- ``worker``: the settings the media worker is moving to: ``medConfig.hasIoqueue = False``,
  ``medConfig.threadCnt = 0``, ``clockRate = sndClockRate = 8000``, ``ecTailLen = 0``, ``noVad``,
  ``sndAutoCloseTime = -1``, no sound device while idle (``setNoDev``) and the null sound device only
  while calls are up (plus 2 s), a ``libHandleEvents`` wait of 100 ms with calls and 1 s without.
- ``bridged``: the ``worker`` settings, but no WAV: the calls are bridged two by two through the
  conference bridge, both ways (``startTransmit`` each way), as a worker bridges a caller and an
  agent; each call hears the other's SIPp speech. The closest pjsua2 gets to the workers' media job
  without our layers.

All run with ``uaConfig.threadCnt = 0`` and ``mainThreadOnly`` (one thread drives pjsua2, as in the
workers). Prints one line per mode and, last, one JSON object with every mode's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import itertools
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
TICK = os.sysconf("SC_CLK_TCK")
MODES = ("default", "worker", "bridged")
LINGER_S = 2.0  # worker mode: the null sound device stays on this long after the last call (as the worker)


# ----------------------------------------------------------------------------- the pjsua2 UA

def run_ua(args: argparse.Namespace) -> int:
    """The reference UA: prints JSON lines (``ready``, ``calls`` with ``up`` whenever it changes) on stdout."""
    import pjsua2 as pj

    worker_mode = args.mode in ("worker", "bridged")
    bridged = args.mode == "bridged"
    active: set[int] = set()  # calls whose media is connected (to a player, or to their partner)
    waiting: list[int] = []  # bridged: a call with media and no partner yet
    inbox: list[tuple[str, int]] = []
    calls: dict[int, Any] = {}  # our own id -> Call: the only strong reference (pitfall 1: never pjsua's id)
    players: dict[int, Any] = {}
    seq = itertools.count(1)
    stop = threading.Event()

    def say(**event: Any) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    class Call(pj.Call):
        def __init__(self, account, call_id: int, key: int) -> None:
            super().__init__(account, call_id)
            self.key = key

        def onCallState(self, prm) -> None:  # noqa: N802
            try:
                if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                    inbox.append(("gone", self.key))
                    calls.pop(self.key, None)  # drop the reference inside DISCONNECTED (pitfall 1)
            except Exception as exc:  # noqa: BLE001 - a traceback would keep the call alive (pitfall 3)
                sys.stderr.write(f"onCallState: {exc!r}\n")

        def onCallMediaState(self, prm) -> None:  # noqa: N802
            try:
                ci = self.getInfo()
                if any(m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE for m in ci.media):
                    inbox.append(("media", self.key))
            except Exception as exc:  # noqa: BLE001
                sys.stderr.write(f"onCallMediaState: {exc!r}\n")

    clock = {"on": not worker_mode, "until": 0.0}

    class Account(pj.Account):
        def onIncomingCall(self, prm) -> None:  # noqa: N802
            try:
                key = next(seq)
                call = Call(self, prm.callId, key)
                calls[key] = call
                if not clock["on"]:  # the conference clock starts before the call's media is added
                    ep.audDevManager().setNullDev()
                    clock["on"] = True
                op = pj.CallOpParam()
                op.statusCode = 200
                call.answer(op)
            except Exception as exc:  # noqa: BLE001
                sys.stderr.write(f"onIncomingCall: {exc!r}\n")

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 4
    cfg.uaConfig.userAgent = f"pjsua2-reference-{args.mode}"
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    if worker_mode:
        med = cfg.medConfig
        med.hasIoqueue = False
        med.threadCnt = 0
        med.clockRate = 8000
        med.sndClockRate = 8000
        med.channelCount = 1
        med.audioFramePtime = 20
        med.ecTailLen = 0
        med.noVad = True
        med.sndAutoCloseTime = -1
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = args.port
    tcfg.boundAddress = args.address
    tcfg.publicAddress = args.address
    transport = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    if worker_mode:
        ep.audDevManager().setNoDev()
        for codec, prio in (("PCMU/8000/1", 250), ("PCMA/8000/1", 249), ("G722/16000/1", 248)):
            with contextlib.suppress(pj.Error):
                ep.codecSetPriority(codec, prio)
    else:
        ep.audDevManager().setNullDev()
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:reference@{args.address}:{args.port}"
    acfg.sipConfig.transportId = transport
    mt = acfg.mediaConfig.transportConfig
    mt.port = args.rtp_start
    mt.portRange = 40
    mt.boundAddress = args.address
    mt.publicAddress = args.address
    acfg.natConfig.iceEnabled = False
    acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
    acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
    account = Account()
    account.create(acfg, True)

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.readline():
                pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    say(event="ready", pid=os.getpid(), mode=args.mode, port=args.port)
    up = -1
    try:
        while not stop.is_set():
            if worker_mode:
                ep.libHandleEvents(100 if calls else 1000)
            else:
                ep.libHandleEvents(10)
            while inbox:
                what, key = inbox.pop(0)
                if what == "media" and key in calls and key not in active:
                    active.add(key)
                    if bridged:  # two calls at a time bridged both ways, as a worker bridges caller and agent
                        partner = next((k for k in waiting if k in calls), None)
                        waiting.clear()
                        if partner is None:
                            waiting.append(key)
                        else:
                            calls[key].getAudioMedia(-1).startTransmit(calls[partner].getAudioMedia(-1))
                            calls[partner].getAudioMedia(-1).startTransmit(calls[key].getAudioMedia(-1))
                        continue
                    # Referenced while it plays (pitfall 5), and only from ``players``: a local name
                    # would keep the last one alive past libDestroy.
                    players[key] = pj.AudioMediaPlayer()
                    players[key].createPlayer(args.wav, 0)  # 0: loops at the end of the file
                    players[key].startTransmit(calls[key].getAudioMedia(-1))
                elif what == "gone":
                    active.discard(key)
                    players.pop(key, None)  # pjsua_player_destroy, here in the loop, not in a callback
            now = time.monotonic()
            if worker_mode:
                if calls:
                    clock["until"] = now + LINGER_S
                elif clock["on"] and now >= clock["until"]:
                    ep.audDevManager().setNoDev()
                    clock["on"] = False
            if len(active) != up:
                up = len(active)
                say(event="calls", up=up, calls=len(calls))
    finally:
        with contextlib.suppress(Exception):
            ep.hangupAllCalls()
        end = time.monotonic() + 2.0
        while calls and time.monotonic() < end:
            ep.libHandleEvents(20)
        inbox.clear()
        players.clear()
        calls.clear()
        account.shutdown()
        del account
        gc.collect()  # no Call may be alive at libDestroy (pitfall 2)
        ep.libDestroy()
        say(event="stopped")
    return 0


# ----------------------------------------------------------------------------- the driver

def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def sipp_counts(folder: Path) -> dict[str, int]:
    files = sorted(folder.glob("*_.csv"))
    if not files:
        return {}
    rows = list(csv.reader(files[-1].read_text(errors="replace").splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    row = dict(zip(rows[0], rows[-1]))
    out = {}
    names = (("created", "TotalCallCreated"), ("successful", "SuccessfulCall(C)"), ("failed", "FailedCall(C)"))
    for key, name in names:
        with contextlib.suppress(ValueError):
            out[key] = int(row.get(name, "0") or 0)
    return out


def measure(mode: str, folder: Path, audio: dict[str, Path], *, ua_port: int, rtp_start: int, sipp_port: int,
            media_port: int, idle_s: float = 10.0, hold_s: float = 30.0, calls: int = 4, rate: float = 1.0,
            register: Callable[[subprocess.Popen], Any] = lambda p: p,
            status: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Start the UA in ``mode``, measure it idle, then with ``calls`` calls up; return the figures."""
    from rtp_audio import udp_drops

    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"mode": mode, "calls": calls, "idle_window_s": idle_s, "window_s": hold_s,
                              "idle_cpu_pct": None, "calls_cpu_pct": None, "cpu_per_leg_pct": None,
                              "rtp_in_per_leg_pps": None, "ok": 0, "failed": 0, "notes": []}
    log = open(folder / f"ua-{mode}.log", "w")  # noqa: SIM115 - closed below
    ua = register(subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "ua", "--mode", mode, "--port", str(ua_port),
         "--rtp-start", str(rtp_start), "--wav", str(audio["wav"])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True))
    events: queue.Queue = queue.Queue()
    state = {"up": 0, "min_up": None}

    def read() -> None:
        assert ua.stdout
        for line in ua.stdout:
            with contextlib.suppress(ValueError):
                ev = json.loads(line)
                if ev.get("event") == "calls":
                    state["up"] = ev["up"]
                    if state["min_up"] is not None:
                        state["min_up"] = min(state["min_up"], ev["up"])
                events.put(ev)

    threading.Thread(target=read, daemon=True).start()
    sipp_proc = None
    try:
        try:
            ready = events.get(timeout=60)
        except queue.Empty:
            ready = {}
        if ready.get("event") != "ready":
            result["notes"].append("! the UA did not start (see ua-*.log)")
            return result
        time.sleep(2.0)
        status(f"pjsua2 reference ({mode}): idle {idle_s:g} s")
        c0, t0 = cpu_seconds(ua.pid), time.monotonic()
        time.sleep(idle_s)
        c1, t1 = cpu_seconds(ua.pid), time.monotonic()
        if c0 is not None and c1 is not None:
            result["idle_cpu_pct"] = 100 * (c1 - c0) / (t1 - t0)
        ramp = calls / rate
        talk_ms = int((ramp + 4 + hold_s + 4) * 1000)
        sipp_dir = folder / f"sipp-{mode}"
        sipp_dir.mkdir(parents=True, exist_ok=True)
        sipp_proc = register(subprocess.Popen(
            ["sipp", "-sf", str(SCENARIOS / "caller_media.xml"), "-i", "127.0.0.1", "-p", str(sipp_port),
             "-mi", "127.0.0.1", "-mp", str(media_port), "-m", str(calls), "-l", str(calls), "-r", f"{rate:g}",
             "-rp", "1000", "-d", str(talk_ms), "-nostdin", "-trace_err", "-trace_stat", "-fd", "1",
             "-timeout", f"{int(talk_ms / 1000 + ramp + 60)}s", "-s", "100",
             "-key", "caller_stream", f"{audio['ulaw']},-1,0", f"127.0.0.1:{ua_port}"],
            cwd=sipp_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        status(f"pjsua2 reference ({mode}): {calls} calls at {rate:g}/s")
        deadline = time.monotonic() + ramp + 20
        while state["up"] < calls and time.monotonic() < deadline and sipp_proc.poll() is None:
            time.sleep(0.1)
        if state["up"] < calls:
            result["notes"].append(f"! only {state['up']} of {calls} calls came up")
        else:
            time.sleep(2.0)
            status(f"pjsua2 reference ({mode}): {calls} calls up, measuring {hold_s:g} s")
            state["min_up"] = state["up"]
            d0, c0, t0 = udp_drops(media_port), cpu_seconds(ua.pid), time.monotonic()
            time.sleep(hold_s)
            d1, c1, t1 = udp_drops(media_port), cpu_seconds(ua.pid), time.monotonic()
            if state["min_up"] < calls:
                result["notes"].append(f"! calls fell to {state['min_up']} during the window")
            if c0 is not None and c1 is not None:
                result["calls_cpu_pct"] = 100 * (c1 - c0) / (t1 - t0)
                if result["idle_cpu_pct"] is not None:
                    result["cpu_per_leg_pct"] = (result["calls_cpu_pct"] - result["idle_cpu_pct"]) / calls
            if d0 is not None and d1 is not None:
                result["rtp_in_per_leg_pps"] = (d1 - d0) / (t1 - t0) / calls
                if result["rtp_in_per_leg_pps"] < 25:
                    result["notes"].append(f"! only {result['rtp_in_per_leg_pps']:.0f} RTP packets/s per call "
                                           "reached SIPp: is the WAV playing?")
        end = time.monotonic() + talk_ms / 1000 + 30
        while sipp_proc.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
        if sipp_proc.poll() is None:
            result["notes"].append("! SIPp still running at its time limit")
        counts = sipp_counts(sipp_dir)
        result["ok"], result["failed"] = counts.get("successful", 0), counts.get("failed", 0)
        if result["ok"] != calls or result["failed"]:
            result["notes"].append(f"! SIPp: {result['ok']} ok, {result['failed']} failed of {calls}")
        return result
    finally:
        for proc in (sipp_proc, ua):
            if proc is not None and proc.poll() is None:
                if proc is ua:
                    with contextlib.suppress(OSError):
                        ua.stdin.close()  # the UA hangs up and destroys the library
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        ua.wait(10)
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        if ua.returncode not in (0, None):
            result["notes"].append(f"! the UA exited with rc {ua.returncode}")
        log.close()


def describe(r: dict[str, Any]) -> str:
    def f(v: float | None, spec: str = ".2f") -> str:
        return "—" if v is None else format(v, spec)

    return (f"{'✓' if not any(n.startswith('!') for n in r['notes']) else '✗'} pjsua2 reference ({r['mode']}): "
            f"idle {f(r['idle_cpu_pct'])}% of a core, {r['calls']} calls {f(r['calls_cpu_pct'])}%, "
            f"{f(r['cpu_per_leg_pct'], '.3f')}% per leg above idle, "
            f"RTP to SIPp {f(r['rtp_in_per_leg_pps'], '.0f')}/s per call, SIPp {r['ok']} ok / {r['failed']} failed"
            + (f" — {'; '.join(n.lstrip('! ') for n in r['notes'])}" if r["notes"] else ""))


# ----------------------------------------------------------------------------- standalone

def _free_ports(size: int) -> int:
    for _ in range(500):
        base = random.randrange(30000, 60000 - size)
        try:
            for port in range(base, base + size):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command")
    ua = sub.add_parser("ua", help="(internal) the pjsua2 UA itself")
    ua.add_argument("--mode", choices=MODES, required=True)
    ua.add_argument("--address", default="127.0.0.1")
    ua.add_argument("--port", type=int, required=True)
    ua.add_argument("--rtp-start", type=int, required=True)
    ua.add_argument("--wav", required=True)
    ap.add_argument("--mode", choices=(*MODES, "all"), default="all")
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--hold-seconds", type=float, default=30.0)
    ap.add_argument("--calls", type=int, default=4, help="calls held at once (the wheel allows 4)")
    ap.add_argument("--rate", type=float, default=1.0, help="new calls per second")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    if args.command == "ua":
        return run_ua(args)
    import shutil
    import tempfile

    sys.path.insert(0, str(HERE))
    from rtp_audio import write_audio

    if not shutil.which("sipp"):
        raise SystemExit("SIPp is missing: apt-get install sip-tester")
    tmp = Path(tempfile.mkdtemp(prefix="cc-pjref-"))
    results = []
    try:
        audio = write_audio(tmp / "audio")
        for mode in (MODES if args.mode == "all" else (args.mode,)):
            base = _free_ports(48)
            r = measure(mode, tmp / mode, audio, ua_port=base, rtp_start=base + 2, sipp_port=base + 44,
                        media_port=base + 45, idle_s=args.idle_seconds, hold_s=args.hold_seconds, calls=args.calls,
                        rate=args.rate, status=lambda s: print(s, file=sys.stderr, flush=True))
            print(describe(r), flush=True)
            results.append(r)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"files in {tmp}", file=sys.stderr)
    print(json.dumps({r["mode"]: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                      for r in results}))
    return 0 if all(not any(n.startswith("!") for n in r["notes"]) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
