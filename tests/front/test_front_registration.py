"""Agent phones registering at the SIP front: the plan and the parsers (pure), then real Kamailio
with SIPp phones and raw REGISTERs on loopback.

Each live test starts its own :class:`KamailioFront` (no workers behind it: one fake destination,
or a SIPp standing in for a worker) on free ports in 15000-17000 and stops it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcenter.front import KamailioFront
from callcenter.front.phones import (
    Binding, NetstringDecoder, PhoneEvent, PhonesPlan, check_credentials, credentials_table, encode_netstring, ha1,
    parse_phone_event, parse_ul_aors, parse_ul_bindings,
)
from callcenter.front.plan import Destination, FrontPlan, kamailio_cfg, parse_counters
from tests.front.front_support import HERE, free_block, require_kamailio, require_sipp

SCENARIOS = HERE / "scenarios"
REALM = "center"
PASSWORDS = {"1001": "alpha-secret", "1002": "bravo-secret", "1003": "charlie-secret"}
CREDENTIALS = {user: ha1(user, REALM, password) for user, password in PASSWORDS.items()}
WORKERS = (Destination("w1", "10.0.0.5", 5070, "w1.1"),)


def ports(size: int = 1) -> int:
    return free_block(size, 15000, 17000)


# ==================================================================================== pure


def phones_plan(**changes) -> PhonesPlan:
    values = dict(domain=REALM, event_port=15999, event_token="t" * 32)
    values.update(changes)
    return PhonesPlan(**values)


def front_plan(tmp_path: Path, **phones) -> FrontPlan:
    return FrontPlan(listen_address="10.0.0.5", port=5060, workers=WORKERS, run_dir=tmp_path,
                     phones=phones_plan(**phones))


@pytest.mark.parametrize("changes, message", [
    (dict(domain='ce"nter'), "host name"),
    (dict(domain=""), "host name"),
    (dict(event_port=0), "TCP port"),
    (dict(event_token="short"), "event_token"),
    (dict(event_token="x" * 31 + '"'), "event_token"),
    (dict(allow=()), "empty"),
    (dict(allow=("10.0.0.0/33",)), "10.0.0.0/33"),
    (dict(min_expires=120, max_expires=60), "expires"),
    (dict(min_expires=0), "expires"),
    (dict(max_contacts=0), "max_contacts"),
    (dict(keepalive_interval=20, keepalive_timeout=20), "keepalive_timeout"),
    (dict(keepalive_interval=0), "keepalive_interval"),
    (dict(auth_failures=0), "auth_failures"),
    (dict(auth_block_seconds=0), "auth_block_seconds"),
])
def test_phones_plan_refuses_what_would_break_the_script(changes, message):
    with pytest.raises(ValueError, match=message):
        phones_plan(**changes)


def test_a_front_with_phones_needs_its_event_token(tmp_path):
    with pytest.raises(ValueError, match="event_token"):
        FrontPlan(listen_address="10.0.0.5", port=5060, workers=WORKERS, run_dir=tmp_path,
                  phones=phones_plan(event_token=""))
    assert phones_plan(source_auth_failures=0).source_limit == 5
    assert phones_plan(source_auth_failures=50).source_limit == 50


def test_without_phones_the_script_knows_nothing_of_them(tmp_path):
    cfg = kamailio_cfg(FrontPlan(listen_address="10.0.0.5", port=5060, workers=WORKERS, run_dir=tmp_path))
    for word in ("registrar", "usrloc", "evapi", "htable", "nathelper", "REGISTER", "$var(phone)", "auth"):
        assert word not in cfg, word


def test_the_script_authenticates_phones_against_ha1_for_their_own_aor(tmp_path):
    cfg = kamailio_cfg(front_plan(tmp_path, allow=("192.0.2.0/24",), auth_failures=4, source_auth_failures=40,
                                  auth_block_seconds=90))
    lines = [line.strip() for line in cfg.splitlines()]
    register = cfg[cfg.index("route[REGISTRAR]"):cfg.index("route[PHONE_EVENTS]")]
    # only from phones.allow, whatever the trunk allow-list says
    assert 'if (!is_in_subnet("$si", "192.0.2.0/24")) {' in register
    # challenge without credentials, HA1 (flag 1) checked, auth user = To and From user (check 1)
    assert 'www_challenge("center", "1");' in register
    assert 'if (!pv_auth_check("center", "$sht(ccphones=>$au)", "1", "1")) {' in register
    assert "$hdrc(Authorization) != 1 || $hdrc(Proxy-Authorization) != 0 || $au != $tU" in register
    # an unknown user never reaches pv_auth_check with an empty HA1
    assert register.index("$sht(ccphones=>$au) == $null") < register.index("pv_auth_check")
    assert 'save("location", "0x02");' in register and 'sl_send_reply("403", "Too Many Contacts");' in register
    assert "fix_nated_register();" in register and "force_rport();" in register
    failed = cfg[cfg.index("route[AUTH_FAILED]"):cfg.index("route[PHONE_CALL]")]
    assert "if ($shtinc(ccfail=>ip:$si) >= 40) {" in failed and "if ($shtinc(ccfail=>user:$au) >= 4) {" in failed
    assert 'modparam("htable", "htable", "ccblock=>size=8;autoexpire=90")' in lines
    assert 'modparam("htable", "htable", "ccphones=>size=10;dbtable=phones.htable")' in lines
    assert f'modparam("htable", "db_url", "text://{tmp_path}")' in lines
    assert 'modparam("usrloc", "db_mode", 0)' in lines and 'modparam("registrar", "max_contacts", 3)' in lines
    assert 'modparam("nathelper", "ping_nated_only", 0)' in lines  # every binding, not only natted ones
    assert 'modparam("nathelper", "sipping_from", "sip:keepalive@center")' in lines
    assert 'modparam("evapi", "bind_addr", "127.0.0.1:15999")' in lines


def test_phone_events_carry_network_values_hex_encoded_and_only_to_token_holders(tmp_path):
    cfg = kamailio_cfg(front_plan(tmp_path))
    relays = re.findall(r'evapi_\w+\("([^"]*)"', cfg)
    assert relays and not re.search(r"evapi_relay\(", cfg)  # never to every client
    for body in relays:
        for value in re.findall(r"=(\S+)", body):
            assert value.endswith("{s.encode.hexa})") or re.fullmatch(r"\d+|\$var\(\w+\)|", value), (body, value)
    assert all(tag == "ccfront" for tag in re.findall(r'evapi_multicast\("[^"]*", "([^"]*)"\)', cfg))
    # the token is compared in the script and nowhere else; a wrong one is never closed (see plan.py)
    assert cfg.count("t" * 32) == 1 and 'if ($evapi(msg) == "' + "t" * 32 + '") {' in cfg
    code = [line.strip() for line in cfg.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in code if "evapi_close" in line] and 'evapi_set_tag("new");' in code


def test_kamailio_accepts_the_script_with_phones(tmp_path):
    binary = require_kamailio()
    p = front_plan(tmp_path)
    p.config_path.write_text(kamailio_cfg(p))
    p.dispatcher_path.write_text("1 sip:10.0.0.5:5070 8 0 duid=w1.1;maxload=2\n")
    p.credentials_path.write_text(credentials_table(CREDENTIALS))
    result = subprocess.run([binary, "-c", "-f", str(p.config_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_credentials_are_ha1_for_names_that_cannot_name_another_aor():
    assert ha1("1001", "center", "x") == hashlib.md5(b"1001:center:x").hexdigest()
    assert check_credentials({"1001": "A" * 32}) == {"1001": "a" * 32}
    for user in ("", "10:01", "100%31", "1001@center", "a b", "\\x", "x" * 65):
        with pytest.raises(ValueError, match="username"):
            check_credentials({user: "a" * 32})
    with pytest.raises(ValueError, match="HA1"):
        check_credentials({"1001": "secret"})
    table = credentials_table({"1002": "b" * 32, "1001": "a" * 32}).splitlines()
    assert table == ["key_name(str) key_type(int) value_type(int) key_value(str)",
                     f"1001:0:0:{'a' * 32}", f"1002:0:0:{'b' * 32}"]


def _hex(text: str) -> str:
    return text.encode().hex()


def test_events_are_decoded_and_a_hostile_value_cannot_add_fields():
    ua = 'Evil" expires=99999 user=31303032'
    message = (f"registered user={_hex('1001')} contact={_hex('sip:1001@192.168.1.50:5060')} "
               f"received={_hex('sip:203.0.113.9:40001')} expires=3599 ua={_hex(ua)}").encode()
    assert parse_phone_event(message) == PhoneEvent("registered", "1001", "sip:1001@192.168.1.50:5060",
                                                    "203.0.113.9:40001", 3599, ua)
    blocked = parse_phone_event(f"blocked user= contact= received={_hex('192.0.2.7')} expires=60 ua=")
    assert blocked == PhoneEvent("blocked", "", "", "192.0.2.7", 60, "")
    assert parse_phone_event(f"expired user={_hex('1001')} received={_hex('sip:[2001:db8::1]:5060;transport=udp')}"
                             " expires=0").received == "[2001:db8::1]:5060"
    for bad in (b"ready", b"hijacked user=31", b"registered user=1001 contact=sip:x", b"registered user=zz",
                b"registered expires=", "registered user=31 \u2028".encode()):
        assert parse_phone_event(bad) is None, bad


def test_the_event_stream_is_split_into_netstrings():
    decoder = NetstringDecoder()
    stream = encode_netstring(b"ready") + encode_netstring(b"registered user=31") + b"5:ab"
    assert decoder.feed(stream[:3]) == []
    assert decoder.feed(stream[3:]) == [b"ready", b"registered user=31"]
    assert decoder.feed(b"cde,") == [b"abcde"]
    for broken in (b"x5:abcde,", b"3:abcd", b"99999999999:"):
        with pytest.raises(ValueError):
            NetstringDecoder().feed(broken)
    with pytest.raises(ValueError, match="limit"):
        NetstringDecoder(limit=10).feed(b"11:")


def test_the_location_table_is_read_from_the_rpc_results():
    # as Kamailio 5.6 answers ul.dump brief and ul.lookup
    assert parse_ul_aors({"Domains": [{"Domain": {"Domain": "location", "Size": 1024, "AoRs": [
        {"AoR": "1001"}, {"AoR": "1002"}], "Stats": {"Records": 2, "Max-Slots": 1}}}]}) == ["1001", "1002"]
    contact = {"Address": "sip:1001@192.168.1.50:5060", "Expires": 598, "Q": -1, "Call-ID": "1-16339@127.0.0.1",
               "CSeq": 2, "User-Agent": "SIPp phone 1001", "Received": "sip:127.0.0.1:15601", "Path": "[not set]",
               "Last-Keepalive": 1796695318}
    result = {"AoR": "1001", "Contacts": [{"Contact": contact}, {"Contact": {**contact, "Expires": "deleted"}},
                                          {"Contact": {**contact, "Expires": "expired", "User-Agent": "[not set]"}}]}
    assert parse_ul_bindings("1001", result) == [
        Binding("1001", "sip:1001@192.168.1.50:5060", "127.0.0.1:15601", 598, "SIPp phone 1001", "1-16339@127.0.0.1",
                1796695318),
        Binding("1001", "sip:1001@192.168.1.50:5060", "127.0.0.1:15601", 0, "", "1-16339@127.0.0.1", 1796695318),
    ]
    assert parse_counters(["script:ccfront_auth_failed = 7", "script:ccfront_auth_blocked = 2"]) == {
        "auth_failed": 7, "auth_blocked": 2}


# ========================================================================== live helpers


@dataclass
class FakeWorker:
    name: str
    address: str
    port: int
    alive: bool = True
    generation: int = 1


@dataclass
class Phones:
    """A front with phones, and everything it reported."""

    front: KamailioFront
    worker_port: int
    events: list[PhoneEvent] = field(default_factory=list)
    resyncs: list[dict] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.front.port

    def record(self, event: PhoneEvent) -> None:
        self.events.append(event)
        self.arrivals.append(time.monotonic())

    def of(self, kind: str, user: str | None = None) -> list[PhoneEvent]:
        return [e for e in self.events if e.kind == kind and (user is None or e.user == user)]

    async def wait_for(self, condition, timeout: float, what: str) -> float:
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\nevents={self.events}\n"
                                     f"counters={self.front.counters}\nlog:\n{self.front.log_text()[-3000:]}")
            await asyncio.sleep(0.02)
        return time.monotonic() - start


@contextlib.asynccontextmanager
async def phone_front(*, trunk_allow=("127.0.0.1/32",), pike_density: int = 300, sweep: float = 60.0, **phones):
    require_kamailio()
    worker_port = ports()
    phones.setdefault("keepalive_interval", 20)
    phones.setdefault("keepalive_timeout", 60)
    plan = PhonesPlan(domain=REALM, event_port=ports(), **phones)
    recorded: Phones | None = None
    front = KamailioFront(
        listen_address="127.0.0.1", port=ports(), workers=lambda: [FakeWorker("w1", "127.0.0.1", worker_port)],
        trunk_allow=trunk_allow, pike_density=pike_density, phones=plan, credentials=CREDENTIALS,
        on_phone_event=lambda e: recorded.record(e), on_phone_resync=lambda t: recorded.resyncs.append(t),
        phone_sweep_interval=sweep, report_interval=0.1)
    recorded = Phones(front, worker_port)
    await front.start()
    try:
        await recorded.wait_for(lambda: front.phone_events_connected and recorded.resyncs, 10, "the event socket")
        yield recorded
    finally:
        await front.stop()


class RawPhone:
    """REGISTERs written by hand over UDP, with digest auth (qop=auth), for what SIPp cannot send."""

    def __init__(self, front: tuple[str, int], source: str = "127.0.0.1") -> None:
        self.front = front
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.setblocking(False)
        self.source, self.port = self.sock.getsockname()
        self.call_id = f"raw-{secrets.token_hex(6)}@{source}"
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, aor: str, *, contacts: list[str] | None = None, expires: int = 600,
                authorization: str = "", extra: str = "", user_agent: str | None = "raw phone") -> bytes:
        self.cseq += 1
        contacts = [f"<sip:{aor}@{self.source}:{self.port}>"] if contacts is None else contacts
        head = (f"REGISTER sip:{REALM} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.source}:{self.port};rport;branch=z9hG4bK{secrets.token_hex(8)}\r\n"
                f"From: <sip:{aor}@{REALM}>;tag=raw{self.port}\r\nTo: <sip:{aor}@{REALM}>\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} REGISTER\r\nMax-Forwards: 70\r\n"
                + "".join(f"Contact: {c}\r\n" for c in contacts)
                + f"Expires: {expires}\r\n" + (f"User-Agent: {user_agent}\r\n" if user_agent else "")
                + (f"Authorization: {authorization}\r\n" if authorization else "") + extra
                + "Content-Length: 0\r\n\r\n")
        return head.encode()

    async def send(self, message: bytes, timeout: float = 2.0) -> tuple[int | None, str]:
        """Send ``message``; the final answer to it (status and whole text), or (None, "")."""
        loop = asyncio.get_running_loop()
        cseq = re.search(rb"CSeq: (\d+)", message).group(1).decode()
        self.sock.sendto(message, self.front)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            text = data.decode("utf-8", "replace")
            match = re.match(r"SIP/2\.0 (\d{3})", text)
            if match and f"CSeq: {cseq} REGISTER" in text and int(match.group(1)) >= 200:
                return int(match.group(1)), text
        return None, ""

    async def register(self, aor: str, password: str | None, *, auth_user: str | None = None,
                       **kw) -> tuple[int | None, str]:
        """REGISTER; on 401, again with credentials for ``auth_user`` (default ``aor``) if a password is given."""
        status, text = await self.send(self.request(aor, **kw))
        if status != 401 or password is None:
            return status, text
        challenge = dict(re.findall(r'(\w+)="([^"]*)"', re.search(r"WWW-Authenticate: Digest (.*)", text).group(1)))
        user = auth_user or aor
        uri = f"sip:{REALM}"
        cnonce, nc = secrets.token_hex(4), "00000001"
        ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1(user, challenge['realm'], password)}:{challenge['nonce']}:{nc}:{cnonce}:auth:"
                               f"{ha2}".encode()).hexdigest()
        authorization = (f'Digest username="{user}", realm="{challenge["realm"]}", nonce="{challenge["nonce"]}", '
                         f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')
        return await self.send(self.request(aor, authorization=authorization, **kw))


def sipp(workdir: Path, scenario: str, *args: str, port: int, remote: str | None, source: str = "127.0.0.1",
         inf: list[tuple[str, str, str]] | None = None) -> subprocess.Popen:
    """A SIPp process in its own folder (logs there), in its own session so it can always be killed."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [require_sipp(), "-sf", str(SCENARIOS / scenario), "-i", source, "-p", str(port), "-nostdin",
               "-trace_logs", "-trace_err", "-timeout", "60s", *args]
    if inf is not None:
        (workdir / "users.csv").write_text("SEQUENTIAL\n" + "".join(";".join(row) + "\n" for row in inf))
        command += ["-inf", "users.csv"]
    if remote:
        command.append(remote)
    return subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def sipp_log(workdir: Path) -> list[str]:
    return [line for f in sorted(workdir.glob("*_logs.log")) for line in f.read_text().split("\n") if line]


def sipp_errors(workdir: Path) -> str:
    return "".join(f.read_text(errors="replace")[-2000:] for f in workdir.glob("*_errors.log"))


async def finished(proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            kill(proc)
            raise AssertionError(f"SIPp did not finish in {timeout:g} s")
        await asyncio.sleep(0.05)
    return proc.returncode


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for proc in started:
            kill(proc)


def register_args(contact_host: str, contact_port: int, *, expires: int = 600, then: str = "stay",
                  stay_ms: int = 0) -> list[str]:
    return ["-key", "domain", REALM, "-key", "contact_host", contact_host, "-key", "contact_port", str(contact_port),
            "-key", "expires", str(expires), "-key", "then", then, "-d", str(stay_ms), "-m", "1", "-aa"]


def row(user: str, password: str | None = None, auth_user: str | None = None) -> tuple[str, str, str]:
    return user, auth_user or user, PASSWORDS[user] if password is None else password


# ============================================================================== live tests

@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_phone_registers_with_digest_auth_and_the_control_process_hears_it_at_once(tmp_path, processes):
    async with phone_front() as ph:
        port = ports()
        phone = sipp(tmp_path / "phone", "register_phone.xml", *register_args("127.0.0.1", port, then="unregister",
                                                                              stay_ms=2000),
                     port=port, remote="127.0.0.1:%d" % ph.front.port, inf=[row("1001")])
        processes.append(phone)
        await ph.wait_for(lambda: "REGISTERED 1001" in sipp_log(tmp_path / "phone"), 10, "the 200")
        seen = time.monotonic()
        await ph.wait_for(lambda: ph.of("registered", "1001"), 1.0, "the registered event")
        print(f"\nregistered event {max(0.0, ph.arrivals[0] - seen) * 1000:.0f} ms after SIPp logged its 200")
        (event,) = ph.of("registered")
        assert event == PhoneEvent("registered", "1001", f"sip:1001@127.0.0.1:{port}", f"127.0.0.1:{port}", 600,
                                   "SIPp phone 1001")
        table = await ph.front.registrations()
        assert list(table) == ["1001"] and table["1001"][0].received == f"127.0.0.1:{port}"
        assert table["1001"][0].user_agent == "SIPp phone 1001" and 595 <= table["1001"][0].expires <= 600

        assert await finished(phone, 20) == 0, sipp_errors(tmp_path / "phone")
        assert "UNREGISTERED 1001" in sipp_log(tmp_path / "phone")
        await ph.wait_for(lambda: ph.of("unregistered", "1001"), 1.0, "the unregistered event")
        assert ph.of("unregistered")[0].contact == f"sip:1001@127.0.0.1:{port}"
        assert await ph.front.registrations() == {}
        assert ph.front.counters["auth_failed"] == 0


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_missing_credentials_get_401_and_a_wrong_password_403_after_the_challenge(tmp_path, processes):
    async with phone_front() as ph:
        raw = RawPhone(ph.address)
        try:
            status, text = await raw.register("1001", None)
            assert status == 401 and 'WWW-Authenticate: Digest realm="center"' in text and 'qop="auth"' in text
            assert (await raw.register("1001", "wrong"))[0] == 403
            assert (await raw.register("1009", "whatever"))[0] == 403  # no such user
            status, _ = await raw.register("1001", PASSWORDS["1001"], user_agent=None)
            assert status == 200
            await ph.wait_for(lambda: ph.of("registered", "1001"), 1.0, "the registered event")
            assert ph.of("registered")[0].user_agent == ""
        finally:
            raw.close()
        # SIPp's own digest (the [authentication] keyword) with a wrong password
        port = ports()
        wrong = sipp(tmp_path / "wrong", "register_phone.xml", *register_args("127.0.0.1", port), port=port,
                     remote=f"127.0.0.1:{ph.front.port}", inf=[row("1002", "not-it")])
        processes.append(wrong)
        await finished(wrong, 20)
        assert sipp_log(tmp_path / "wrong") == ["FORBIDDEN 1002"], sipp_errors(tmp_path / "wrong")
        await ph.wait_for(lambda: ph.front.counters["auth_failed"] == 3, 3, "3 failures counted")
        assert list(await ph.front.registrations()) == ["1001"]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_repeated_failures_block_the_user_and_the_source_until_the_block_expires():
    async with phone_front(auth_failures=5, auth_block_seconds=3) as ph:
        attacker, elsewhere = RawPhone(ph.address), RawPhone(ph.address, "127.0.0.2")
        try:
            for _ in range(5):
                assert (await attacker.register("1001", "guess"))[0] == 403
            blocked_at = time.monotonic()
            await ph.wait_for(lambda: len(ph.of("blocked")) == 2, 2, "user and source blocked")
            assert {(e.user, e.received, e.expires) for e in ph.of("blocked")} == {
                ("1001", "127.0.0.1", 3), ("", "127.0.0.1", 3)}
            # the right password changes nothing now: for this user from anywhere, from this source for anyone
            assert (await attacker.register("1001", PASSWORDS["1001"]))[0] == 403
            assert (await elsewhere.register("1001", PASSWORDS["1001"]))[0] == 403
            assert (await attacker.register("1002", PASSWORDS["1002"]))[0] == 403
            assert (await elsewhere.register("1002", PASSWORDS["1002"]))[0] == 200
            await ph.wait_for(lambda: ph.front.counters["auth_blocked"] >= 3, 2, "blocked REGISTERs counted")
            # htable expiry counts whole seconds: a block of N s ends N to N + 1 s after it began
            await asyncio.sleep(max(0.0, 4.1 - (time.monotonic() - blocked_at)))
            assert (await attacker.register("1001", PASSWORDS["1001"]))[0] == 200
            assert sorted(await ph.front.registrations()) == ["1001", "1002"]
        finally:
            attacker.close()
            elsewhere.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_phone_cannot_register_or_unregister_another_agents_aor():
    async with phone_front() as ph:
        owner, other = RawPhone(ph.address), RawPhone(ph.address)
        try:
            assert (await owner.register("1001", PASSWORDS["1001"]))[0] == 200
            # 1002's own credentials, naming 1001's AOR: to unregister it, to add a binding, to clear it all
            assert (await other.register("1001", PASSWORDS["1002"], auth_user="1002", expires=0))[0] == 403
            assert (await other.register("1001", PASSWORDS["1002"], auth_user="1002"))[0] == 403
            assert (await other.register("1001", PASSWORDS["1002"], auth_user="1002", contacts=["*"],
                                         expires=0))[0] == 403
            table = await ph.front.registrations()
            assert [b.received for b in table["1001"]] == [f"127.0.0.1:{owner.port}"]
            await ph.wait_for(lambda: ph.front.counters["auth_failed"] == 3, 2, "3 failures counted")
            assert not ph.of("unregistered")
            # its owner can
            assert (await owner.register("1001", PASSWORDS["1001"], contacts=["*"], expires=0))[0] == 200
            await ph.wait_for(lambda: ph.of("unregistered", "1001"), 1, "the unregistered event")
        finally:
            owner.close()
            other.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_more_contacts_than_allowed_and_a_huge_contact_list_are_refused():
    async with phone_front(max_contacts=3) as ph:
        raw = RawPhone(ph.address)
        try:
            many = [f"<sip:1001@192.168.1.{n}:5060>" for n in range(4)]
            status, text = await raw.register("1001", PASSWORDS["1001"], contacts=many)
            assert (status, text.split("\r\n")[0]) == (403, "SIP/2.0 403 Too Many Contacts")
            assert await ph.front.registrations() == {}
            assert (await raw.register("1001", PASSWORDS["1001"], contacts=many[:3]))[0] == 200
            assert len((await ph.front.registrations())["1001"]) == 3
            await ph.wait_for(lambda: len(ph.of("registered")) == 3, 1, "one event per binding")
            # one more, in a REGISTER of its own: still over the limit
            assert (await raw.register("1001", PASSWORDS["1001"], contacts=many[3:]))[0] == 403
            huge = [f"<sip:1001@192.168.{n // 250}.{n % 250}:5060>" for n in range(150)]
            status, _ = await raw.send(raw.request("1001", contacts=huge))
            assert status == 513  # before any credentials are even looked at
            assert len((await ph.front.registrations())["1001"]) == 3
        finally:
            raw.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_register_flood_from_one_address_is_cut_by_pike_while_other_phones_register(tmp_path, processes):
    async with phone_front(pike_density=10) as ph:
        flood = RawPhone(ph.address)
        answered = sent = 0
        try:
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                for _ in range(10):
                    flood.sock.sendto(flood.request("1001"), ph.address)
                    sent += 1
                await asyncio.sleep(0.02)
                while True:
                    try:
                        answered += flood.sock.recv(65535).startswith(b"SIP/2.0 ")
                    except BlockingIOError:
                        break
            port = ports()
            other = sipp(tmp_path / "other", "register_phone.xml", *register_args("127.0.0.2", port), port=port,
                         source="127.0.0.2", remote=f"127.0.0.1:{ph.front.port}", inf=[row("1002")])
            processes.append(other)
            assert await finished(other, 20) == 0, sipp_errors(tmp_path / "other")
        finally:
            flood.close()
        print(f"\nREGISTER flood: {sent} sent, {answered} answered")
        assert answered < sent / 4, (answered, sent)
        await ph.wait_for(lambda: ph.front.counters["flood_sources"] >= 1, 3, "the flood reported")
        assert list(await ph.front.registrations()) == ["1002"]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("hangs_up", ["worker", "phone"])
async def test_a_phone_behind_nat_is_called_at_its_source_address_with_its_media_address_rewritten(
        tmp_path, processes, hangs_up):
    # 127.0.0.1 is no trunk here: the phone's BYE passes only as part of the call the front tracks
    async with phone_front(trunk_allow=("127.0.0.2/32",)) as ph:
        front = f"127.0.0.1:{ph.front.port}"
        port = ports()
        register = sipp(tmp_path / "register", "register_phone.xml", *register_args("192.168.1.50", 5060),
                        port=port, remote=front, inf=[row("1001")])
        processes.append(register)
        assert await finished(register, 20) == 0, sipp_errors(tmp_path / "register")
        (binding,) = (await ph.front.registrations())["1001"]
        assert (binding.contact, binding.received) == ("sip:1001@192.168.1.50:5060", f"127.0.0.1:{port}")

        # the phone listens where it registered from (the NAT's public side)
        phone = sipp(tmp_path / "phone", "phone_answer.xml", "-key", "user", "1001", "-key", "contact_host",
                     "192.168.1.50", "-key", "contact_port", "5060", "-key", "then",
                     "hangup" if hangs_up == "phone" else "wait", "-m", "1", port=port, remote=None)
        processes.append(phone)
        await asyncio.sleep(0.3)
        worker = sipp(tmp_path / "worker", "worker_dials_phone.xml", "-s", "1001", "-aa", "-m", "1",
                      port=ph.worker_port, remote=front)
        processes.append(worker)
        assert await finished(worker, 30) == 0, sipp_errors(tmp_path / "worker")
        assert await finished(phone, 30) == 0, sipp_errors(tmp_path / "phone")
        answered = next(line for line in sipp_log(tmp_path / "worker") if line.startswith("ANSWERED"))
        # the phone's SDP said 192.168.1.50; the worker sends RTP where the phone's packets come from
        assert answered == f"ANSWERED 127.0.0.1 sip:1001@192.168.1.50:5060;alias=127.0.0.1~{port}~1", answered
        if hangs_up == "phone":
            assert [line.split()[0] for line in sipp_log(tmp_path / "phone")] == ["ANSWERED", "HUNGUP"]
            assert [line.split()[0] for line in sipp_log(tmp_path / "worker")] == ["ANSWERED", "BYE_IN"]
        else:
            assert [line.split()[0] for line in sipp_log(tmp_path / "phone")] == ["ANSWERED", "BYE_IN"]
            assert [line.split()[0] for line in sipp_log(tmp_path / "worker")] == ["ANSWERED", "HUNGUP"]

        # a user with no binding: 480, seen by the worker
        nobody = sipp(tmp_path / "nobody", "worker_dials_phone.xml", "-s", "1003", "-aa", "-m", "1",
                      port=ph.worker_port, remote=front)
        processes.append(nobody)
        await finished(nobody, 20)
        assert [line.split()[0] for line in sipp_log(tmp_path / "nobody")] == ["UNAVAILABLE"]
        # from 127.0.0.1, neither worker nor trunk: a new INVITE or a BYE of no call of ours is refused
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(2)
            mine = sock.getsockname()[1]
            for method, to_tag in (("INVITE", ""), ("BYE", ";tag=made-up")):
                sock.sendto((f"{method} sip:1001@127.0.0.1:{ph.front.port} SIP/2.0\r\n"
                             f"Via: SIP/2.0/UDP 127.0.0.1:{mine};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                             f"From: <sip:x@127.0.0.1>;tag=x\r\nTo: <sip:1001@127.0.0.1>{to_tag}\r\n"
                             f"Call-ID: stray-{method}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
                             f"Content-Length: 0\r\n\r\n").encode(), ph.address)
                assert sock.recv(65535).startswith(b"SIP/2.0 403 "), method


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_phone_that_stops_answering_keepalives_is_removed_and_reported_expired(tmp_path, processes):
    async with phone_front(keepalive_interval=1, keepalive_timeout=3) as ph:
        front = f"127.0.0.1:{ph.front.port}"
        alive_port, dead_port = ports(), ports()
        # both answer the front's OPTIONS (-aa) while they run; one is killed after registering
        alive = sipp(tmp_path / "alive", "register_phone.xml", *register_args("127.0.0.1", alive_port,
                                                                              expires=3600, stay_ms=60000),
                     port=alive_port, remote=front, inf=[row("1001")])
        dead = sipp(tmp_path / "dead", "register_phone.xml", *register_args("127.0.0.1", dead_port, expires=3600,
                                                                            stay_ms=60000),
                    port=dead_port, remote=front, inf=[row("1002")])
        processes += [alive, dead]
        await ph.wait_for(lambda: len(ph.of("registered")) == 2, 10, "both registered")
        await asyncio.sleep(2)
        kill(dead)
        killed = time.monotonic()
        await ph.wait_for(lambda: ph.of("expired"), 25, "the expired event")
        took = time.monotonic() - killed
        print(f"\nphone gone: binding removed {took:.1f} s after its last keep-alive answer could have come")
        (event,) = ph.of("expired")
        assert (event.user, event.received) == ("1002", f"127.0.0.1:{dead_port}")
        assert 3 <= took <= 20, took  # keepalive_timeout, then about 10 s more in usrloc
        table = await ph.front.registrations()
        assert list(table) == ["1001"] and time.time() - table["1001"][0].last_keepalive < 3, table
        assert alive.poll() is None


def read_messages(sock: socket.socket, seconds: float) -> list[bytes]:
    """Every evapi message ``sock`` receives within ``seconds``."""
    decoder, messages = NetstringDecoder(), []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except (socket.timeout, BlockingIOError):
            break
        if not data:
            break
        messages += decoder.feed(data)
    return messages


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_event_clients_without_the_token_receive_nothing():
    async with phone_front() as ph:
        port = ph.front.phones.event_port
        silent = socket.create_connection(("127.0.0.1", port))
        wrong = socket.create_connection(("127.0.0.1", port))
        wrong.sendall(encode_netstring(b"guessed-token-guessed-token"))
        later = socket.create_connection(("127.0.0.1", port))  # sends the token only after the wrong one failed
        listener = socket.create_connection(("127.0.0.1", port))
        listener.sendall(encode_netstring(ph.front.phones.event_token.encode()))
        raw = RawPhone(ph.address)
        try:
            await asyncio.sleep(0.3)
            later.sendall(encode_netstring(b"nope") + encode_netstring(ph.front.phones.event_token.encode()))
            await asyncio.sleep(0.3)
            assert (await raw.register("1001", PASSWORDS["1001"]))[0] == 200
            await ph.wait_for(lambda: ph.of("registered"), 1, "the event at the supervisor")
            await asyncio.sleep(0.5)
            for sock in (silent, wrong):
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    print(sock.recv(65535))
            # a client with the token gets it (it was sent), so the others were left out
            for client in (listener, later):
                assert any(m.startswith(b"registered user=") for m in read_messages(client, 2.0))
            assert ph.front.phone_events_connected  # and the supervisor's own connection is unharmed
        finally:
            for sock in (silent, wrong, later, listener):
                sock.close()
            raw.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_credentials_change_in_the_running_front_without_a_restart():
    async with phone_front() as ph:
        pid = ph.front.pid
        one, two = RawPhone(ph.address), RawPhone(ph.address)
        try:
            assert (await one.register("1001", PASSWORDS["1001"]))[0] == 200
            assert (await two.register("1004", "delta-secret"))[0] == 403
            changed = {**CREDENTIALS, "1004": ha1("1004", REALM, "delta-secret"), "1002": ha1("1002", REALM, "new")}
            del changed["1001"]
            await ph.front.set_credentials(changed)
            assert (await two.register("1004", "delta-secret"))[0] == 200
            assert (await two.register("1002", PASSWORDS["1002"]))[0] == 403
            assert (await two.register("1002", "new"))[0] == 200
            # 1001 is no agent any more: its binding is gone and it cannot register again
            assert sorted(await ph.front.registrations()) == ["1002", "1004"]
            assert (await one.register("1001", PASSWORDS["1001"]))[0] == 403
            assert ph.front.pid == pid and ph.front.counters["restarts"] == 0
            text = ph.front.plan.credentials_path.read_text()
            assert "1004:0:0:" in text and "\n1001:" not in text
            assert oct(ph.front.plan.credentials_path.stat().st_mode & 0o777) == "0o600"
            assert oct(ph.front.plan.config_path.stat().st_mode & 0o777) == "0o600"  # it holds the event token
        finally:
            one.close()
            two.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_after_kamailio_restarts_events_resume_and_the_table_is_resynced():
    async with phone_front(sweep=1.0) as ph:
        raw = RawPhone(ph.address)
        try:
            assert (await raw.register("1001", PASSWORDS["1001"]))[0] == 200
            await ph.wait_for(lambda: any("1001" in t for t in ph.resyncs), 3, "the sweep seeing the binding")
            connections = ph.front.counters["phone_event_connections"]
            os.kill(ph.front.pid, signal.SIGKILL)
            await ph.wait_for(lambda: ph.front.counters["restarts"] == 1 and ph.front.alive, 15, "the restart")
            await ph.wait_for(lambda: ph.front.counters["phone_event_connections"] == connections + 1, 10,
                              "the event socket again")
            # the new Kamailio started with no binding (memory only): the supervisor put back what it knew
            await ph.wait_for(lambda: ph.front.counters["phones_restored"] == 1, 3, "the binding restored")
            await ph.wait_for(lambda: "1001" in ph.resyncs[-1], 3, "the restored table handed on")
            (binding,) = ph.resyncs[-1]["1001"]
            assert binding.received == f"127.0.0.1:{raw.port}" and 590 <= binding.expires <= 600, binding
            assert (await raw.register("1001", PASSWORDS["1001"]))[0] == 200  # credentials loaded from the file
            await ph.wait_for(lambda: len(ph.of("registered", "1001")) == 2, 1, "the event after the restart")
            assert len((await ph.front.registrations())["1001"]) == 1  # refreshed, not doubled
        finally:
            raw.close()
