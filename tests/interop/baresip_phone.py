"""A real softphone for interop tests: Debian's baresip 1.0.0 in a private config directory.

No tty, no sound card, no DNS: baresip is driven over its ``ctrl_tcp`` socket (JSON in netstrings:
commands in, UA events out), sends a WAV file (``aufile`` source; 1.0.0 has no ``aufile`` player
and ends the call when the file runs out, so the file must outlast the call) and records with the
``sndfile`` filter, which writes ``dump-<time>-enc.wav`` (sent) and ``dump-<time>-dec.wav``
(received, only the packets that arrived) to ``record_dir`` and closes them when the call ends.
The names have a one-second resolution: give every phone its own ``record_dir``.

Ports: SIP on ``sip_port`` (UDP and TCP) and ``sip_port + 1`` (1.0.0 also listens TLS there),
ctrl_tcp on ``sip_port + 2`` unless ``ctrl_port`` is given, RTP in ``rtp_ports``.

``register=False`` makes a phone that neither registers nor uses the outbound proxy (a caller
that dials a trunk address such as ``sip:4000@127.0.0.1:PORT`` straight). DTMF: ``send_dtmf``
(menu's ``sndcode``, which exists only during a call) sends RFC 4733 telephone-events, the only
way 1.0.0 has (no SIP INFO, no in-band tones).
"""

from __future__ import annotations

import array
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

MODULES_DIR = "/usr/lib/baresip/modules"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BaresipError(AssertionError):
    """The phone did not do what was asked (a test failure, with baresip's log attached)."""


def require_baresip() -> str:
    path = shutil.which("baresip") or ("/usr/bin/baresip" if os.path.exists("/usr/bin/baresip") else None)
    if not path:
        raise AssertionError("baresip is not installed: apt-get install baresip")
    return path


class BaresipPhone:
    """One SIP account on one baresip process; use as a context manager so the process always ends."""

    def __init__(self, user: str, password: str, *, registrar: str = "127.0.0.1:5060", domain: str = "center",
                 sip_port: int, rtp_ports: tuple[int, int], play_wav: Path, record_dir: Path,
                 ctrl_port: int | None = None, regint: int = 60, codecs: str = "PCMU,PCMA",
                 address: str = "127.0.0.1", register: bool = True) -> None:
        self.user, self.password, self.registrar, self.domain = user, password, registrar, domain
        self.sip_port, self.rtp_ports, self.ctrl_port = sip_port, rtp_ports, ctrl_port or sip_port + 2
        self.play_wav, self.record_dir = Path(play_wav).resolve(), Path(record_dir).resolve()
        self.regint, self.codecs, self.address = regint, codecs, address
        self.register = register
        self.aor = f"sip:{user}@{domain}"
        self.events: list[dict] = []
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None
        self._responses: dict[str, dict] = {}
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._tokens = itertools.count(1)
        self._log_text = ""

    # ------------------------------------------------------------------ configuration

    def account_line(self) -> str:
        # outbound= is the proxy every request goes to (REGISTER and INVITE); the realm comes from the challenge.
        # Without registering: regint=0 (no REGISTER at all) and no proxy, a dialled URI is reached directly.
        if re.search(r"[\s;]", self.password):
            # libre's parameter decoder ends a value at white space or ';': "a b" would be sent as "a"
            raise ValueError(f"baresip 1.0.0 cannot take this password in an account line: {self.password!r}")
        route = f';outbound="sip:{self.registrar}";regint={self.regint}' if self.register else ";regint=0"
        return (f"<sip:{self.user}@{self.domain}>;auth_pass={self.password}{route}"
                f";answermode=auto;audio_codecs={self.codecs};ptime=20")

    def config_text(self) -> str:
        if "," in str(self.play_wav) or "," in str(self.record_dir):
            raise ValueError("baresip splits device names at commas: use paths without one")
        return "\n".join([
            "poll_method epoll",
            f"sip_listen {self.address}:{self.sip_port}",
            f"net_interface {self.address}",  # else SDP offers the default route's address, not loopback
            "call_local_timeout 60",
            "call_max_calls 4",
            f"audio_source aufile,{self.play_wav}",  # no audio_player/alert: no player module, none used
            "audio_buffer 20-160",
            f"rtp_ports {self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "jitter_buffer_delay 1-10",
            "rtcp_mux no",
            f"module_path {MODULES_DIR}",
            "module g711.so",
            "module aufile.so",
            "module sndfile.so",
            "module_tmp account.so",  # reads the accounts file of this directory
            "module_app menu.so",  # the commands: dial, hangup, reginfo...
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen {self.address}:{self.ctrl_port}",
            f"snd_path {self.record_dir}",
            "ringback_disabled yes",
            "statmode_default off",  # else menu rewrites a status line in the log every 100 ms
            "",
        ])

    # ------------------------------------------------------------------ process

    def start(self, timeout: float = 10.0) -> BaresipPhone:
        binary = require_baresip()
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"baresip-{self.user}-"))
        (self.dir / "config").write_text(self.config_text())
        (self.dir / "accounts").write_text(self.account_line() + "\n")
        (self.dir / "contacts").write_text("")
        log = open(self.dir / "baresip.log", "wb")
        try:
            # HOME too: a module that ignores -f must not write into the real home directory
            self.proc = subprocess.Popen([binary, "-f", str(self.dir)], cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "HOME": str(self.dir)})
        finally:
            log.close()
        try:
            self._connect(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BaresipError(f"baresip exited with {self.proc.returncode} at start\n{self.log_text()}")
            try:
                self._sock = socket.create_connection((self.address, self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(f"baresip's ctrl_tcp did not come up in {timeout:g} s\n{self.log_text()}")
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, args=(self._sock,), name=f"baresip-{self.user}",
                                        daemon=True)
        self._reader.start()

    def _read(self, sock: socket.socket) -> None:
        """Split the stream into netstrings ``LEN:JSON,``; responses by token, events in order."""
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while (colon := buf.find(b":")) > 0 and len(buf) >= colon + 2 + int(buf[:colon]):
                size = int(buf[:colon])
                message = json.loads(buf[colon + 1:colon + 1 + size] or b"{}")
                buf = buf[colon + 2 + size:]
                with self._cond:
                    if message.get("response"):
                        self._responses[message.get("token", "")] = message
                    elif message.get("event"):
                        self.events.append(message)
                    self._cond.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        """Quit (un-REGISTER), then kill whatever is left of the process; idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            if self._sock is not None:
                try:
                    self.command("quit", timeout=1.0)
                except (BaresipError, OSError):
                    pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout)
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        if self._reader is not None:
            self._reader.join(timeout)
            self._reader = None
        if self.dir is not None:
            self._log_text = self.log_text()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> BaresipPhone:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        if self.dir is None:
            return self._log_text
        try:
            return ANSI.sub("", (self.dir / "baresip.log").read_text(errors="replace"))
        except OSError:
            return ""

    # ------------------------------------------------------------------ control

    def command(self, name: str, params: str | None = None, timeout: float = 5.0) -> str:
        """Run a long command (as typed after '/' in the console) and return its text output."""
        token = str(next(self._tokens))
        message = {"command": name, "token": token, **({"params": params} if params is not None else {})}
        payload = json.dumps(message).encode()
        self._sock.sendall(b"%d:%s," % (len(payload), payload))
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses or self.proc.poll() is not None, timeout):
                raise BaresipError(f"no answer to {name!r} in {timeout:g} s\n{self.log_text()}")
            response = self._responses.pop(token, None)
        if response is None:
            raise BaresipError(f"baresip exited during {name!r}\n{self.log_text()}")
        if not response.get("ok"):
            raise BaresipError(f"{name!r} failed: {response.get('data')}\n{self.log_text()}")
        return ANSI.sub("", response.get("data", ""))

    def wait_event(self, *types: str, timeout: float = 10.0, after: int = 0) -> dict:
        """The first event of one of ``types`` at index ``after`` or later of ``self.events``."""
        def found() -> dict | None:
            return next((e for e in self.events[after:] if e.get("type") in types), None)
        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None or self.proc.poll() is not None, timeout):
                raise BaresipError(f"no {'/'.join(types)} in {timeout:g} s; events: "
                                   f"{[e.get('type') for e in self.events]}\n{self.log_text()}")
            event = found()
        if event is None:
            raise BaresipError(f"baresip exited waiting for {'/'.join(types)}\n{self.log_text()}")
        return event

    def registration(self) -> str:
        """The status column of ``reginfo`` for this account: 'OK', a failure code, or 'zzz' (not yet)."""
        for line in self.command("reginfo").splitlines():  # "> sip:alice@center   OK  Expires 60s"
            words = line.lstrip("> ").split()
            if words and words[0] == self.aor:
                return words[1] if len(words) > 1 else ""
        return ""

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Poll ``reginfo``: REGISTER_OK/FAIL may have been sent before ctrl_tcp had a client to send it to.

        'ERR' (a final failure such as a 401 to our credentials, or a 408) fails at once.
        """
        deadline = time.monotonic() + timeout
        while (status := self.registration()) != "OK":
            failed = [e for e in self.events if e.get("type") == "REGISTER_FAIL"]
            if failed or status == "ERR" or time.monotonic() > deadline:
                raise BaresipError(f"{self.aor} not registered (reginfo {status!r}, "
                                   f"{failed[-1].get('param') if failed else 'no failure event'})\n{self.log_text()}")
            time.sleep(0.1)

    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def hangup(self) -> None:
        self.command("hangup")

    def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        """Key ``digits`` in the current call, as RFC 4733 events (one ``sndcode`` per digit: start, then end).

        ``sndcode`` is one of menu's in-call commands: outside a call ctrl_tcp answers that it does
        not know it (a BaresipError). baresip logs ``audio: send DTMF digit`` for each.
        """
        for n, digit in enumerate(digits):
            if digit not in "0123456789*#ABCD":
                raise ValueError(f"not a DTMF digit: {digit!r}")
            if n:
                time.sleep(gap)
            self.command("sndcode", digit)

    def recordings(self, direction: str) -> list[Path]:
        return sorted(self.record_dir.glob(f"dump-*-{direction}.wav"))

    def received_wav(self) -> list[Path]:
        """What the phone decoded from the network, one file per call (complete once the call closed)."""
        return self.recordings("dec")

    def sent_wav(self) -> list[Path]:
        return self.recordings("enc")


# ---------------------------------------------------------------------- audio helpers


def read_samples(path: Path) -> tuple[array.array, int]:
    """16-bit mono samples and the rate of a WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono, got {w.getsampwidth() * 8}-bit x{w.getnchannels()}")
        samples = array.array("h", w.readframes(w.getnframes()))
        rate = w.getframerate()
    if sys.byteorder == "big":
        samples.byteswap()
    return samples, rate


def wav_energy(path: Path) -> float:
    """RMS of the samples, in 16-bit units (a -10 dBFS sine is about 7300, silence 0)."""
    samples, _ = read_samples(path)
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def wav_frequency(path: Path) -> float:
    """Dominant frequency of a pure tone, from its zero crossings: tells whose tone arrived."""
    samples, rate = read_samples(path)
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings * rate / (2 * len(samples)) if samples else 0.0


def wav_windows(path: Path, window: float = 0.25) -> list[tuple[float, float, float]]:
    """``(start s, RMS, frequency)`` of consecutive windows: what was heard when, in a file with several parts."""
    samples, rate = read_samples(path)
    size = max(1, int(window * rate))
    out = []
    for start in range(0, len(samples) - size + 1, size):
        part = samples[start:start + size]
        rms = math.sqrt(sum(s * s for s in part) / size)
        crossings = sum(1 for a, b in zip(part, part[1:]) if (a < 0) != (b < 0))
        out.append((start / rate, rms, crossings * rate / (2 * size)))
    return out


def tone_run(path: Path, frequency: float, *, min_rms: float = 3000, tolerance: float = 0.05,
             window: float = 0.25) -> tuple[float, float, float]:
    """The longest stretch of ``frequency`` (within ``tolerance``, at least ``min_rms``) in a recording:
    ``(start s, seconds, mean RMS)``; (0, 0, 0) when the tone is not there at all."""
    best = (0.0, 0.0, 0.0)
    run: list[tuple[float, float, float]] = []
    for item in wav_windows(path, window) + [(0.0, 0.0, 0.0)]:  # a sentinel closes the last run
        if item[1] >= min_rms and abs(item[2] - frequency) <= frequency * tolerance:
            run.append(item)
            continue
        if run and len(run) * window > best[1]:
            best = (run[0][0], len(run) * window, sum(r[1] for r in run) / len(run))
        run = []
    return best


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def write_tone_wav(path: Path, frequency: float = 440.0, seconds: float = 20.0, dbfs: float = -10.0,
                   rate: int = 8000) -> Path:
    """A sine as baresip's aufile needs it for G.711: 8 kHz mono 16-bit little-endian."""
    amplitude = 32767 * 10 ** (dbfs / 20)
    samples = array.array("h", (round(amplitude * math.sin(2 * math.pi * frequency * n / rate))
                                for n in range(int(seconds * rate))))
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return Path(path)
