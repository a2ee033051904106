"""Helpers for the SIP front tests: tools present, free ports, SIPp callers that follow the
Record-Route, and a contact center (``bootstrap.Server``) run in the test's event loop with Kamailio
in front of its workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.front import INSTALL_HINT, find_kamailio

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOOPBACK = REPO / "config" / "loopback.toml"
AGENT_SCENARIOS = REPO / "tests" / "telephony" / "scenarios"
RFC4475 = Path(os.environ.get("CALLCENTER_TEST_RFC4475", REPO / "tests" / "data" / "rfc4475"))
PCAPS = Path("/usr/share/sip-tester")
PIN_HASH = "scrypt$16384$8$1$eToSEyRepz8/B7kSvgrVHA==$k8q9Slthdu3HBTs/msj+qrqaj7f11Iwjdbu3EQSmOXs="


# ------------------------------------------------------------------------------------ tools


def require_kamailio() -> str:
    path = find_kamailio()
    if not path:
        raise AssertionError(f"Kamailio is not installed: {INSTALL_HINT} (make test does)")
    return path


def require_sipp() -> str:
    path = shutil.which("sipp") or ("/usr/bin/sipp" if os.path.exists("/usr/bin/sipp") else None)
    if not path:
        raise AssertionError("SIPp is not installed: apt-get install sip-tester (make test does)")
    return path


def require_pjsua2() -> None:
    probe = subprocess.run([sys.executable, "-c", "import pjsua2"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        raise AssertionError(f"pjsua2 is not importable (pip install pjsua2-python): {probe.stderr.strip()[-300:]}")


def pcap(name: str) -> str:
    path = PCAPS / name
    if not path.exists():
        raise AssertionError(f"SIPp's {name} not found in {PCAPS}: apt-get install sip-tester")
    return str(path)


# ------------------------------------------------------------------------------------ ports

_taken: set[int] = set()


def _free(port: int, host: str = "127.0.0.1") -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_block(size: int, low: int = 40000, high: int = 60000) -> int:
    """First port of ``size`` consecutive ports free now (UDP and TCP), never handed out twice."""
    for _ in range(500):
        base = random.randrange(low, high - size) // 2 * 2
        ports = range(base, base + size)
        if any(x in _taken for x in ports):
            continue
        if all(_free(x) for x in ports):
            _taken.update(ports)
            return base
    raise RuntimeError(f"no block of {size} free ports")


# ------------------------------------------------------------------------- SIPp scenarios

_INVITE = """
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-i
      From: "[display]" <sip:[ani]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[ani]@[local_ip]:[local_port]>
      Max-Forwards: 70
      {extra}Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=sendrecv
"""


def caller_scenario(path: Path, *, hold_ms: int, key_after_ms: int | None = None, extra_header: str = "") -> Path:
    """A caller that follows the Record-Route (SIPp's built-in uac does not).

    INVITE; a 503 is acknowledged and logged ``REFUSED``; a 200 is acknowledged through the
    route set and logged ``ANSWERED``. With ``key_after_ms`` it plays ``[key_pcap]`` (RFC 4733)
    that long after the answer. Then it stays on for ``hold_ms``: a BYE from the network meanwhile
    is answered and logged ``BYE_IN``; otherwise it sends BYE itself (``HUNGUP`` on 200).
    Keys: ``-key ani N -key display NAME [-key key_pcap FILE]``; ``-s`` is the dialled number.
    Run with ``-trace_logs`` to get the log lines.
    """
    key = ""
    if key_after_ms is not None:
        key = f"""
  <pause milliseconds="{key_after_ms}"/>
  <nop>
    <action>
      <exec play_pcap_audio="[key_pcap]"/>
    </action>
  </nop>"""
    extra = f"{extra_header}\n      " if extra_header else ""
    text = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="caller through the SIP front">
  <send retrans="500">
    <![CDATA[
{_INVITE.format(extra=extra)}
    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="503" optional="true" next="refused"/>
  <recv response="200" rtd="true" rrs="true" timeout="30000"/>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[display]" <sip:[ani]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Contact: <sip:[ani]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <nop>
    <action>
      <log message="ANSWERED [call_id]"/>
    </action>
  </nop>
{key}
  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[ani]@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <nop next="done">
    <action>
      <log message="BYE_IN [call_id]"/>
    </action>
  </nop>

  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[display]" <sip:[ani]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 3 BYE
      [routes]
      Contact: <sip:[ani]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" timeout="10000"/>
  <nop next="done">
    <action>
      <log message="HUNGUP [call_id]"/>
    </action>
  </nop>

  <label id="refused"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-i
      From: "[display]" <sip:[ani]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <nop>
    <action>
      <log message="REFUSED [call_id]"/>
    </action>
  </nop>

  <label id="done"/>
</scenario>
"""
    path.write_text(text)
    return path


def flood_scenario(path: Path) -> Path:
    """INVITE, then whatever answer (or none within 2 s): one-shot calls for floods."""
    text = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="INVITE flood">
  <send>
    <![CDATA[
{_INVITE.format(extra="")}
    ]]>
  </send>
  <recv response="100" optional="true" timeout="2000" ontimeout="done"/>
  <recv response="403" optional="true" next="done"/>
  <recv response="486" optional="true" next="done"/>
  <recv response="503" timeout="2000" ontimeout="done" next="done"/>
  <label id="done"/>
</scenario>
"""
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ SIPp


@dataclass
class SippRun:
    """One SIPp process, bounded by ``-m`` and ``-timeout``, always killable."""

    proc: subprocess.Popen
    workdir: Path
    name: str

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    async def finished(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"SIPp {self.name} did not finish in {timeout:g} s:\n{self.report()}")
            await asyncio.sleep(0.2)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_lines(self) -> list[str]:
        return [line for f in sorted(self.workdir.glob("*_logs.log")) for line in f.read_text(errors="replace").splitlines()]

    def outcomes(self) -> Counter:
        """How many calls were ANSWERED, REFUSED, BYE_IN, HUNGUP (from the scenario's log lines)."""
        return Counter(line.split()[0] for line in self.log_lines() if line.strip())

    def stats(self) -> dict[str, int]:
        files = sorted(self.workdir.glob("*_.csv"))
        if not files:
            return {}
        lines = files[-1].read_text().strip().splitlines()
        row = dict(zip(lines[0].split(";"), lines[-1].split(";")))
        return {"successful": int(row.get("SuccessfulCall(C)", 0) or 0), "failed": int(row.get("FailedCall(C)", 0) or 0)}

    def report(self) -> str:
        errors = "".join(p.read_text(errors="replace")[-2500:] for p in self.workdir.glob("*error*"))
        return f"[{self.name}] stats={self.stats()} outcomes={dict(self.outcomes())}\n{errors}"


class Sipps:
    """Starts SIPp processes for one test; :meth:`close` kills any still running."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: list[SippRun] = []

    def start(self, name: str, scenario: Path | str, *, remote: str | None = None, calls: int, rate: float | None = None,
              limit: int | None = None, keys: dict[str, str] | None = None, service: str = "4000",
              timeout: float = 120, source_ip: str = "127.0.0.1", port: int | None = None,
              rate_period_ms: int | None = None, extra: list[str] | None = None) -> SippRun:
        workdir = self.root / name
        workdir.mkdir(parents=True, exist_ok=True)
        port = port or free_block(1)
        media = free_block(8)
        args = [require_sipp(), "-sf", str(scenario), "-i", source_ip, "-p", str(port), "-mi", source_ip,
                "-mp", str(media), "-m", str(calls), "-timeout", f"{int(timeout)}s", "-nostdin", "-trace_err",
                "-trace_stat", "-fd", "1", "-trace_logs", "-s", service, "-max_recv_loops", "5000",
                "-max_sched_loops", "5000"]
        if rate is not None:
            args += ["-r", f"{rate:g}"]
        if rate_period_ms is not None:
            args += ["-rp", str(rate_period_ms)]
        if limit is not None:
            args += ["-l", str(limit)]
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        args += extra or []
        if remote is not None:
            args.append(remote)
        proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        run = SippRun(proc, workdir, name)
        self.runs.append(run)
        return run

    def close(self) -> None:
        for run in self.runs:
            run.kill()


# ---------------------------------------------------------------------- the contact center


def settings_tree(*, port: int, worker_base_port: int, prompts: Path, database_url: str, workdir: Path,
                  agent_port: int | None, agents: int = 5, rtp_start: int | None = None, **sip) -> dict:
    """config/loopback.toml with the front on free ports, ``agents`` agents whose phones are one SIPp UAS."""
    tree = tomllib.loads(LOOPBACK.read_text())
    tree["sip"].update({
        "port": port, "worker_base_port": worker_base_port, "front": "kamailio",
        "queue_log": str(workdir / "queue_log"),
        "rtp_port_start": rtp_start if rtp_start is not None else 10000 + random.randrange(0, 25) * 1000,
        "rtp_port_end": 65000,
        "rtp_timeout_seconds": 120,  # SIPp callers send RTP only while a pcap plays; some hold silent longer
        **sip,
    })
    tree["database"]["url"] = database_url
    for queue in tree["queues"].values():  # phones with nobody at a desk: timed wrap-up, not until disposed
        queue["after_call_work"] = "timed"
    tree["ivr"].update({"prompts_dir": str(prompts), "menu_file": str(REPO / "config" / "ivr.toml")})
    tree["cti"]["listen"] = f"ws://127.0.0.1:{free_block(1)}"
    template = tree["agents"]["1001"]
    tree["agents"] = {}
    for n in range(agents):
        agent = dict(template)
        agent.update(name=f"Agent {2001 + n}", pin_hash=PIN_HASH,
                     phone=f"sip:{2001 + n}@127.0.0.1:{agent_port or 9}", auto_login=agent_port is not None)
        tree["agents"][str(2001 + n)] = agent
    return tree


@dataclass
class Center:
    """A contact center served from the test's event loop, with every telephony event recorded."""

    server: object
    events: list = field(default_factory=list)

    @property
    def front(self):
        return self.server.front

    @property
    def pool(self):
        return self.server.pool

    @property
    def address(self) -> str:
        return self.server.address

    def arrived(self) -> Counter:
        from callcenter.core import telephony_protocol as p

        return Counter(e.worker for e in self.events if isinstance(e, p.CallArrived))

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def rows(self) -> list:
        from sqlalchemy import select

        from callcenter.db.models import Interaction

        with self.server.db.session() as s:
            return list(s.scalars(select(Interaction).order_by(Interaction.id)))

    async def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.describe()}")
            await asyncio.sleep(0.2)

    def describe(self) -> str:
        front = self.server.front
        return (f"arrived={dict(self.arrived())} center={self.server.center.counters} "
                f"front={front.counters if front else None}\nkamailio log:\n{front.log_text()[-3000:] if front else ''}")


class _TapQueue(asyncio.Queue):
    def __init__(self, record: list) -> None:
        super().__init__()
        self._record = record

    def put_nowait(self, item) -> None:
        self._record.append(item)
        super().put_nowait(item)


@contextlib.asynccontextmanager
async def running_center(tree: dict, *, workers: int):
    """``bootstrap.Server`` for ``tree`` (database migrated first), started and always stopped."""
    from callcenter import bootstrap
    from callcenter.config import validate
    from callcenter.db import Database
    from callcenter.db.migrate import upgrade

    settings = validate(tree, "test settings")
    db = Database(settings.database.url)
    upgrade(db)
    db.dispose()
    server = bootstrap.Server(settings, workers=workers)
    center = Center(server)
    server.pool.events = _TapQueue(center.events)
    try:
        await server.start()
        yield center
    finally:
        await server.stop()


def worker_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "callcenter.telephony.worker"], capture_output=True, text=True)
    return {int(x) for x in out.stdout.split()}


def process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return True
