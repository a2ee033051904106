"""Simulated callers and agent phones with SIPp, to watch the contact center work on loopback.

Used by ``callcenter demo-calls`` (and so by ``make demo``). SIPp (Debian ``sip-tester``) plays both
sides: one UAS per agent phone, and caller streams that key their way through the IVR.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from callcenter.config import Settings
from callcenter.errors import CallCenterError

SCENARIOS = Path(__file__).with_name("scenarios")
PCAP_DIRS = (Path("/usr/share/sip-tester"), Path("/usr/share/doc/sip-tester/pcap"))


def _sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise CallCenterError("SIPp is not installed: apt-get install sip-tester (make demo does it)")
    return path


def _pcap(name: str) -> str:
    for folder in PCAP_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    raise CallCenterError(f"SIPp's {name} was not found in {', '.join(map(str, PCAP_DIRS))}: reinstall sip-tester")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def phone_address(uri: str) -> tuple[str, int] | None:
    """``sip:1001@127.0.0.1:5101`` -> ("127.0.0.1", 5101); None when it is not a loopback phone."""
    parsed = urlparse(uri.replace("sip:", "sip://", 1))
    host, port = parsed.hostname, parsed.port
    if host is None or port is None or not host.startswith("127."):
        return None
    return host, port


@dataclass
class Traffic:
    """Agent phones for every auto-login agent with a loopback phone, and caller streams."""

    settings: Settings
    rate: float = 0.3
    talk_ms: int = 12000
    keys: tuple[str, ...] = ("1", "0")  # sales, general
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="callcenter-traffic-")))
    procs: list[subprocess.Popen] = field(default_factory=list)

    def _run(self, name: str, args: list[str]) -> None:
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        self.procs.append(subprocess.Popen([_sipp(), *args, "-nostdin", "-trace_err"], cwd=folder,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True))

    def start_phones(self) -> list[str]:
        started = []
        audio = _pcap("g711a.pcap")
        for agent_id, agent in self.settings.agents.items():
            address = phone_address(agent.phone)
            if not agent.auto_login or address is None:
                continue
            host, port = address
            self._run(f"phone-{agent_id}", ["-sf", str(SCENARIOS / "agent_phone.xml"), "-i", host, "-p", str(port),
                                            "-mi", host, "-key", "audio_pcap", audio])
            started.append(agent_id)
        return started

    def start_callers(self, targets: list[tuple[str, int]]) -> None:
        """Caller streams spread over ``targets`` (the SIP front, or each worker when there is none)."""
        sip = self.settings.sip
        streams = max(len(self.keys), len(targets))
        per_stream = self.rate / streams
        for n in range(streams):
            key = self.keys[n % len(self.keys)]
            host, port = targets[n % len(targets)]
            name = {"*": "star", "#": "pound"}.get(key, key)
            self._run(f"callers-{n}-{name}", [
                "-sf", str(SCENARIOS / "caller_ivr.xml"), "-i", sip.listen_address, "-p", str(_free_port(sip.listen_address)),
                "-r", f"{per_stream:g}", "-d", str(self.talk_ms), "-s", "4008001234",
                "-key", "key_pcap", _pcap(f"dtmf_2833_{name}.pcap"),
                "-key", "ani", f"13{800138000 + n * 1111}", "-key", "display", f"Demo caller {n + 1}",
                f"{host}:{port}",
            ])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)
