"""Simulated callers and agent phones with SIPp, to watch the contact center work on loopback.

Used by ``callcenter demo-calls`` (and so by ``make demo``). SIPp (Debian ``sip-tester``) plays both
sides: one UAS per agent phone, and caller streams that key their way through the IVR. Callers
present the numbers and names of demo customers (see :func:`mix_callers`), so the agents' screen
pops show real customer histories.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from callcenter.config import Settings
from callcenter.core.contact_center import dialable
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


CSV_UNSAFE = set(';"\\<>')  # would end a SIPp field, the quoted display name or the From header


def display_field(name: str | None, limit: int = 40) -> str:
    """A name as the quoted display name of a From header (with its trailing space), or "" for none.

    Names are data from the customer database: characters that would break out of the quoted
    string, the header or SIPp's CSV field, and control characters, are dropped.
    """
    if not name:
        return ""
    kept = "".join(ch for ch in name if ch not in CSV_UNSAFE and not unicodedata.category(ch).startswith("C"))
    kept = " ".join(kept.split())[:limit]
    return f'"{kept}" ' if kept else ""


Caller = tuple[str, str | None]  # (number, display name or None)


def mix_callers(known: Sequence[Caller], unknown: Sequence[str], *, first: Sequence[Caller] = (), length: int = 400,
                unknown_share: float = 0.15, seed: int = 42) -> list[Caller]:
    """The order in which simulated callers call: ``first`` early on, then known customers (each
    calling again now and then, as real customers do) with about ``unknown_share`` unknown numbers."""
    rng = random.Random(f"callers:{seed}")
    known, unknown = list(known), list(unknown)
    rng.shuffle(known)
    out: list[Caller] = []
    k = u = 0
    for _ in range(length):
        if unknown and (not known or rng.random() < unknown_share):
            out.append((unknown[u % len(unknown)], None))
            u += 1
        elif known:
            out.append(known[k % len(known)])
            k += 1
    for n, caller in enumerate(first):  # spread over the first callers, whichever stream they fall on
        out.insert(min(len(out), 1 + 3 * n), caller)
    return out


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
    callers: list[Caller] = field(default_factory=list)  # in calling order: see mix_callers
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="callcenter-traffic-")))
    procs: list[subprocess.Popen] = field(default_factory=list)
    caller_procs: list[subprocess.Popen] = field(default_factory=list)

    def _run(self, name: str, args: list[str]) -> subprocess.Popen:
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen([_sipp(), *args, "-nostdin", "-trace_err"], cwd=folder,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _caller_scenario(self) -> Path:
        """The IVR caller with its number and display name taken from each call's CSV line."""
        text = (SCENARIOS / "caller_ivr.xml").read_text(encoding="iso-8859-1")
        if '"[display]" <sip:[ani]@' not in text:
            raise CallCenterError(f"{SCENARIOS / 'caller_ivr.xml'}: no From header to give callers their numbers")
        path = self.workdir / "caller_ivr_numbers.xml"
        path.write_text(text.replace('"[display]" ', "[field1]").replace("[ani]", "[field0]"), encoding="iso-8859-1")
        return path

    def _caller_file(self, name: str, callers: list[Caller]) -> Path:
        lines = ["SEQUENTIAL"] + [f"{number};{display_field(display)}" for number, display in callers]
        path = self.workdir / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

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
        scenario = self._caller_scenario()
        for n in range(streams):
            key = self.keys[n % len(self.keys)]
            host, port = targets[n % len(targets)]
            name = {"*": "star", "#": "pound"}.get(key, key)
            # Stream n takes every streams-th caller of the mix, so the mix's order holds overall.
            mine = [(number, display) for number, display in self.callers[n::streams]
                    if dialable(number)] or [(f"+8613{800138000 + n * 1111}", None)]
            self.caller_procs.append(self._run(f"callers-{n}-{name}", [
                "-sf", str(scenario), "-inf", str(self._caller_file(f"callers-{n}", mine)),
                "-i", sip.listen_address, "-p", str(_free_port(sip.listen_address)),
                "-r", f"{per_stream:g}", "-d", str(self.talk_ms), "-s", "4008001234",
                "-key", "key_pcap", _pcap(f"dtmf_2833_{name}.pcap"),
                f"{host}:{port}",
            ]))

    def stop_callers(self) -> None:
        """No new callers; the ones on the line finish their calls (SIPp's soft exit)."""
        for proc in self.caller_procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass

    def caller_errors(self, limit: int = 600) -> str:
        """What SIPp logged about callers that gave up (read before :meth:`stop` removes the folder)."""
        logs = sorted(self.workdir.glob("callers-*/*_errors.log"))
        return "\n".join(log.read_text(errors="replace")[:limit] for log in logs).strip()

    @property
    def callers_done(self) -> bool:
        return all(proc.poll() is not None for proc in self.caller_procs)

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
