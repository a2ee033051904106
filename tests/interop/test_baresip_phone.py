"""The baresip phone against a real registrar: a minimal Kamailio with digest auth on loopback.

Proves what the center's front will rely on: baresip REGISTERs with digest auth through its outbound
proxy, answers by itself, and two phones calling each other through the registrar hear each other
(each one's recording of what it received carries the other's tone).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.interop.baresip_phone import (
    BaresipError, BaresipPhone, wav_energy, wav_frequency, wav_seconds, write_tone_wav,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real-sip")]

KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
_taken: set[int] = set()


def free_block(size: int, low: int, high: int) -> int:
    """First port of ``size`` consecutive ports free now (UDP and TCP), never handed out twice."""
    def free(port: int) -> bool:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    return False
        return True
    for _ in range(500):
        base = random.randrange(low, high - size)
        ports = range(base, base + size)
        if not _taken.intersection(ports) and all(free(p) for p in ports):
            _taken.update(ports)
            return base
    raise RuntimeError(f"no block of {size} free ports in {low}-{high}")


def kamailio_cfg(port: int, run_dir: Path, users: dict[str, str]) -> str:
    """Registrar + proxy: REGISTER needs digest auth (401), a new INVITE too (407), then lookup("location")."""
    credentials = "\n".join(f'    $sht(users=>{u}) = "{p}";' for u, p in users.items())
    return f"""#!KAMAILIO
debug=2
log_stderror=yes
children=2
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
listen=udp:127.0.0.1:{port}
alias="center"
rundir="{run_dir}"
mpath="{KAMAILIO_MODULES}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "htable.so"
loadmodule "ctl.so"
loadmodule "kex.so"
modparam("ctl", "binrpc", "unix:{run_dir}/ctl.sock")
modparam("htable", "htable", "users=>size=4;")
modparam("usrloc", "db_mode", 0)

event_route[htable:mod-init] {{
{credentials}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route() || is_method("ACK")) {{ t_relay(); exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) t_relay(); exit; }}
    if (is_method("REGISTER|INVITE")) {{
        $var(pw) = $sht(users=>$fU);
        if ($var(pw) == $null || !pv_auth_check("$fd", "$var(pw)", "0", "1")) {{
            xlog("L_INFO", "challenge $rm from $fU\\n");
            auth_challenge("$fd", "0");
            exit;
        }}
        consume_credentials();
    }}
    if (is_method("REGISTER")) {{ save("location"); exit; }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    record_route();
    t_relay();
}}
"""


class Registrar:
    """A Kamailio registrar in a temp dir, its whole process group killed on close."""

    def __init__(self, users: dict[str, str]) -> None:
        self.binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        if not os.path.exists(self.binary):
            raise AssertionError("Kamailio is not installed: apt-get install kamailio")
        self.dir = Path(tempfile.mkdtemp(prefix="kam-reg-"))
        self.port = free_block(1, 18000, 19000)
        self.address = f"127.0.0.1:{self.port}"
        self.cfg = self.dir / "kamailio.cfg"
        self.cfg.write_text(kamailio_cfg(self.port, self.dir, users))
        self.log = self.dir / "kamailio.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Registrar:
        check = subprocess.run([self.binary, "-c", "-f", str(self.cfg)], capture_output=True, text=True)
        assert check.returncode == 0, f"Kamailio refused the config:\n{check.stderr[-3000:]}"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([self.binary, "-f", str(self.cfg), "-DD", "-E", "-m", "32", "-M", "4"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 10
        while self.rpc("core.version").returncode != 0:
            assert self.proc.poll() is None, f"Kamailio exited with {self.proc.returncode}:\n{self.log_text()}"
            assert time.monotonic() < deadline, f"Kamailio did not come up:\n{self.log_text()}"
            time.sleep(0.1)
        return self

    def rpc(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kamcmd", "-s", f"unix:{self.dir}/ctl.sock", *command],
                              capture_output=True, text=True, timeout=10)

    def contacts(self) -> str:
        """``ul.dump`` text: one AoR block per registered user, with its contacts."""
        result = self.rpc("ul.dump")
        assert result.returncode == 0, result.stderr
        return result.stdout

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc is not None:
            try:  # children that outlived the main process
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def registrar():
    reg = Registrar(USERS)
    try:
        yield reg.start()
    finally:
        reg.close()


@pytest.fixture
def phone_factory(registrar, tmp_path):
    """Phones on free SIP/RTP ports, each with its own tone and record dir, all stopped at the end."""
    phones: list[BaresipPhone] = []

    def make(user: str, password: str, frequency: float) -> BaresipPhone:
        tone = write_tone_wav(tmp_path / f"{user}-{frequency:g}.wav", frequency, seconds=20)
        rtp = free_block(20, 46000, 48000)
        phone = BaresipPhone(user, password, registrar=registrar.address, domain="center",
                             sip_port=free_block(3, 18000, 19000), rtp_ports=(rtp, rtp + 19),
                             play_wav=tone, record_dir=tmp_path / f"rec-{user}-{len(phones)}")
        phones.append(phone)
        return phone.start()

    try:
        yield make
    finally:
        for phone in phones:
            phone.stop()


def test_register_with_digest_auth(registrar, phone_factory):
    alice = phone_factory("alice", USERS["alice"], 440)
    alice.wait_registered(10)
    dump = registrar.contacts()
    assert "alice" in dump and f"127.0.0.1:{alice.sip_port}" in dump, dump
    assert "challenge REGISTER from alice" in registrar.log_text()  # it really went through a 401

    intruder = phone_factory("bob", "wrong-password", 440)
    with pytest.raises(BaresipError, match="not registered") as refused:
        intruder.wait_registered(10)
    assert "401 Unauthorized" in str(refused.value)
    assert f"127.0.0.1:{intruder.sip_port}" not in registrar.contacts()


def test_call_through_registrar_audio_both_ways(registrar, phone_factory):
    alice = phone_factory("alice", USERS["alice"], 440)
    bob = phone_factory("bob", USERS["bob"], 1000)
    alice.wait_registered(10)
    bob.wait_registered(10)

    alice.dial("sip:bob@center")  # to the outbound proxy: 407, retried with credentials, lookup("location")
    incoming = bob.wait_event("CALL_ESTABLISHED", timeout=10)  # answermode=auto, nobody accepted it
    assert incoming["direction"] == "incoming"
    alice.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(3)  # three seconds of audio each way
    alice.hangup()
    alice.wait_event("CALL_CLOSED", timeout=10)
    bob.wait_event("CALL_CLOSED", timeout=10)  # the BYE reached bob through the record-routed proxy
    assert "challenge INVITE from alice" in registrar.log_text()  # the INVITE went through a 407

    for listener, talker, tone in ((bob, alice, 440), (alice, bob, 1000)):
        [heard] = listener.received_wav()
        seconds, energy, frequency = wav_seconds(heard), wav_energy(heard), wav_frequency(heard)
        detail = f"{listener.user} heard {seconds:.2f} s, RMS {energy:.0f}, {frequency:.0f} Hz from {talker.user}"
        assert seconds > 2.0, detail
        assert energy > 3000, detail  # a -10 dBFS sine is ~7300 RMS; G.711 keeps it
        assert abs(frequency - tone) < tone * 0.05, detail  # the other side's tone, not silence or an echo
