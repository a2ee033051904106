"""The SIP front for real: Kamailio generated and supervised by the contact center, pjsua2 workers
behind it, SIPp callers following the Record-Route, SIPp agent phones.

Every test starts a ``bootstrap.Server`` (front + workers + call flow + SQLite) on free ports in
its own event loop and stops it at the end, pass or fail; SIPp runs are bounded and killed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from callcenter.core import telephony_protocol as p
from tests.front.front_support import (
    AGENT_SCENARIOS, RFC4475, caller_scenario, free_block, pcap, process_alive, require_kamailio,
    require_pjsua2, require_sipp, running_center, settings_tree,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

CALLER_KEYS = {"ani": "13912345678", "display": "Zhang San"}


def require_tools() -> None:
    require_kamailio()
    require_sipp()
    require_pjsua2()


def tree_for(tmp_path: Path, prompts: Path, *, agents: int = 6, with_phones: bool = True, **sip) -> tuple[dict, int | None]:
    agent_port = free_block(1) if with_phones else None
    tree = settings_tree(port=free_block(1), worker_base_port=free_block(8), prompts=prompts,
                         database_url=f"sqlite:///{tmp_path / 'cc.db'}", workdir=tmp_path, agent_port=agent_port,
                         agents=agents, **sip)
    return tree, agent_port


def agent_phones(sipps, port: int, calls: int):
    return sipps.start("agents", AGENT_SCENARIOS / "agent_answer.xml", calls=calls, port=port,
                       keys={"audio_pcap": pcap("g711a.pcap")}, timeout=140)


def ivr_callers(sipps, tmp_path: Path, center, *, name: str, calls: int, hold_ms: int, rate: float = 2,
                source_ip: str = "127.0.0.1"):
    """Callers who key 1 (sales) 8 s into the greeting and stay on ``hold_ms`` after that."""
    scenario = caller_scenario(tmp_path / f"{name}.xml", hold_ms=hold_ms, key_after_ms=8000)
    return sipps.start(name, scenario, remote=center.address, calls=calls, rate=rate, limit=calls,
                       keys={**CALLER_KEYS, "key_pcap": pcap("dtmf_2833_1.pcap")}, timeout=120, source_ip=source_ip)


def plain_callers(sipps, tmp_path: Path, center, *, name: str, calls: int, hold_ms: int, rate: float = 10,
                  source_ip: str = "127.0.0.1", extra_header: str = "", remote: str | None = None):
    """Callers who stay on ``hold_ms`` after the answer (in the IVR) and hang up; a 503 is logged REFUSED."""
    scenario = caller_scenario(tmp_path / f"{name}.xml", hold_ms=hold_ms, extra_header=extra_header)
    return sipps.start(name, scenario, remote=remote or center.address, calls=calls, rate=rate, limit=calls,
                       keys=CALLER_KEYS, timeout=60, source_ip=source_ip)


# ------------------------------------------------------------------------------------- spread


async def test_calls_spread_over_the_workers_and_every_contact_is_recorded(tmp_path, prompts, sipps):
    require_tools()
    tree, agent_port = tree_for(tmp_path, prompts)
    async with running_center(tree, workers=3) as center:
        phones = agent_phones(sipps, agent_port, 6)
        callers = ivr_callers(sipps, tmp_path, center, name="callers", calls=6, hold_ms=3000)
        assert await callers.finished(90) == 0, callers.report() + center.describe()
        assert callers.outcomes()["ANSWERED"] == 6 and callers.outcomes()["HUNGUP"] == 6, callers.report()
        await center.wait_for(lambda: all(r.ended_at for r in center.rows()) and len(center.rows()) == 6, 20,
                              "every contact closed")
        arrived = center.arrived()
        assert sorted(arrived) == ["w1", "w2", "w3"] and set(arrived.values()) == {2}, arrived
        for event in center.of(p.CallArrived):
            # Every call came through the front, which says where it came from.
            assert event.remote_address == center.address
            assert event.headers.get("X-Src-Addr", "").startswith("127.0.0.1:"), event.headers
        rows = center.rows()
        assert [r.outcome for r in rows] == ["answered"] * 6, [(r.outcome, r.agent_id) for r in rows]
        assert all(r.agent_id and r.talk_seconds and r.talk_seconds > 1 for r in rows)
        assert center.server.center.counters["refused_source"] == 0
        loads = await center.front.rpc("dispatcher.list")
        assert all(t["DEST"]["RUNTIME"]["DLGLOAD"] == 0 for t in loads["RECORDS"][0]["SET"]["TARGETS"]), loads
    assert await phones.finished(30) == 0, phones.report()


# -------------------------------------------------------------------------------- worker loss


async def test_a_killed_worker_loses_only_its_calls_and_later_calls_go_to_the_others(tmp_path, prompts, sipps):
    require_tools()
    tree, agent_port = tree_for(tmp_path, prompts, agents=8)
    async with running_center(tree, workers=3) as center:
        center.pool.restart_backoff = (6.0, 30.0)  # keep it down long enough to see where calls go meanwhile
        agent_phones(sipps, agent_port, 12)
        talkers = ivr_callers(sipps, tmp_path, center, name="talkers", calls=4, hold_ms=40000)
        await center.wait_for(lambda: sum(1 for r in center.rows() if r.answered_at) == 4, 60, "4 calls with agents")
        arrived = center.arrived()
        victim = next(name for name, count in arrived.items() if count == 2)
        info = next(w for w in center.pool.workers if w.name == victim)
        victim_legs = {e.leg for e in center.of(p.CallArrived) if e.worker == victim}
        os.kill(info.pid, signal.SIGKILL)

        # Its calls end, are recorded, and their callers get a BYE from the front.
        await center.wait_for(lambda: sum(1 for r in center.rows() if r.outcome == "failed_worker") == 2, 15,
                              "the lost calls recorded")
        await center.wait_for(lambda: talkers.outcomes()["BYE_IN"] == 2, 15, "BYE to the callers of the dead worker")
        assert center.front.counters["workers_removed"] == 1 and center.front.counters["calls_ended"] == 2
        (died,) = center.of(p.WorkerDied)
        assert set(died.legs) >= victim_legs

        # While it is down, new callers go to the others.
        before = center.arrived()
        later = plain_callers(sipps, tmp_path, center, name="later", calls=2, hold_ms=2000, rate=4)
        assert await later.finished(30) == 0, later.report() + center.describe()
        assert later.outcomes()["ANSWERED"] == 2, later.report()
        after = center.arrived()
        assert after[victim] == before[victim] and sum(after.values()) == sum(before.values()) + 2, (before, after)

        # Back again (new generation), it is in the destination list again and takes calls.
        await center.wait_for(lambda: center.front.counters["workers_added"] == 1, 20, "the worker back in the list")
        assert next(w for w in center.pool.workers if w.name == victim).generation == 2
        back = plain_callers(sipps, tmp_path, center, name="back", calls=1, hold_ms=1000)
        assert await back.finished(30) == 0, back.report()
        assert center.arrived()[victim] == before[victim] + 1, center.arrived()
        # The survivors' conversations were not touched.
        assert sum(1 for r in center.rows() if r.answered_at and r.ended_at is None) == 2
        talkers.kill()


# ---------------------------------------------------------------------------------- all full


async def test_when_every_worker_is_full_callers_get_503_at_once_and_count_as_blocked(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False)
    async with running_center(tree, workers=2) as center:
        holders = plain_callers(sipps, tmp_path, center, name="holders", calls=4, hold_ms=25000, rate=10)
        await center.wait_for(lambda: holders.outcomes()["ANSWERED"] == 4, 20, "4 calls up (2 per worker)")
        started = time.monotonic()
        extra = plain_callers(sipps, tmp_path, center, name="extra", calls=5, hold_ms=1000, rate=20)
        assert await extra.finished(20) == 0, extra.report() + center.describe()
        assert time.monotonic() - started < 8, "a refused caller must not wait"
        assert extra.outcomes() == {"REFUSED": 5}, extra.report()
        # the front's reports are fetched every 0.2 s: the last may come just after SIPp ends
        await center.wait_for(lambda: center.front.counters["blocked_full"] == 5, 5, "5 full refusals reported")
        await center.wait_for(lambda: center.server.center.counters["blocked"] == 5, 10, "5 blocked calls counted")
        assert center.arrived() == {"w1": 2, "w2": 2}, "no worker saw the refused calls"
        await center.wait_for(lambda: sum(1 for r in center.rows() if r.outcome == "blocked") == 5, 10, "blocked rows")
        holders.kill()


# ----------------------------------------------------------------------------------- RFC 4475


def _torture_files() -> list[Path]:
    files = sorted(RFC4475.glob("*.dat")) + sorted((RFC4475 / "variants").glob("*.dat"))
    if len(files) < 50:
        raise AssertionError(f"RFC 4475 torture messages not found in {RFC4475} (set CALLCENTER_TEST_RFC4475)")
    return files


# Syntactically invalid requests (RFC 4475 3.1.2) and requests an element must refuse (3.3): none of
# them may reach a worker as a call.
NEVER_A_CALL = {
    "badinv01.dat", "clerr.dat", "ncl.dat", "scalar02.dat", "quotbal.dat", "ltgtruri.dat", "lwsruri.dat",
    "lwsstart.dat", "trws.dat", "badvers.dat", "mismatch01.dat", "insuf.dat", "unkscm.dat", "bext01.dat",
    "multi01.dat", "mcl01.dat", "zeromf.dat",
}


def _call_id(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"call-id", b"i"):
            return value.strip().decode("latin-1")
    return ""


async def test_rfc4475_torture_messages_are_stopped_at_the_front_and_the_server_keeps_serving(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False, front_pike_density=0)
    files = _torture_files()
    # The valid INVITEs among them become calls (answered, never acknowledged): room for those too.
    async with running_center(tree, workers=6) as center:
        host, port = center.address.rsplit(":", 1)
        kamailio_pid = center.front.pid
        # Replies go where each message's Via says (mostly example.com): only what reaches the workers
        # and what the front reports can be checked from here.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for path in files:
                sock.sendto(path.read_bytes(), (host, int(port)))
                await asyncio.sleep(0.02)
        await asyncio.sleep(2)
        arrived_ids = {e.call_id for e in center.of(p.CallArrived)}
        for path in files:
            if path.name in NEVER_A_CALL:
                assert _call_id(path.read_bytes()) not in arrived_ids, f"{path.name} reached a worker"
        assert center.front.counters["malformed"] >= 10, center.describe()
        assert center.front.pid == kamailio_pid and center.front.alive and center.front.counters["restarts"] == 0
        assert not center.of(p.WorkerDied) and all(w.alive and w.generation == 1 for w in center.pool.workers)
        # Still serving.
        after = plain_callers(sipps, tmp_path, center, name="after", calls=2, hold_ms=1000)
        assert await after.finished(30) == 0, after.report() + center.describe()
        assert after.outcomes()["ANSWERED"] == 2


# ----------------------------------------------------------------------------- flood, allow-list


def _invite(port: int, n: int, target: str) -> bytes:
    sdp = (b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           b"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    head = (f"INVITE sip:4000@{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bKflood{n}\r\n"
            f"From: <sip:666@127.0.0.1:{port}>;tag=f{n}\r\nTo: <sip:4000@{target}>\r\n"
            f"Call-ID: flood-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:666@127.0.0.1:{port}>\r\n"
            f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n")
    return head.encode() + sdp


async def test_an_invite_flood_from_one_source_is_cut_while_other_sources_get_through(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False, front_pike_density=4,
                       trunk_allow=["127.0.0.1/32", "127.0.0.2/32"])
    async with running_center(tree, workers=8) as center:
        host, port = center.address.rsplit(":", 1)
        answered = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            mine = sock.getsockname()[1]
            sent = 0
            flood_end = time.monotonic() + 3.0
            other = None
            while time.monotonic() < flood_end:
                for _ in range(20):  # ~400 INVITEs/s
                    sock.sendto(_invite(mine, sent, center.address), (host, int(port)))
                    sent += 1
                if other is None and time.monotonic() > flood_end - 2.0:
                    # mid-flood, a caller from another address
                    other = plain_callers(sipps, tmp_path, center, name="other", calls=2, hold_ms=1000, rate=10,
                                          source_ip="127.0.0.2")
                await asyncio.sleep(0.05)
                while True:
                    try:
                        data = sock.recv(65535)
                    except BlockingIOError:
                        break
                    if data.startswith(b"SIP/2.0 "):
                        answered += 1
        assert other is not None
        assert await other.finished(30) == 0, other.report() + center.describe()
        assert other.outcomes()["ANSWERED"] == 2, other.report()
        assert center.front.counters["flood_sources"] >= 1, center.describe()
        flood_calls = sum(1 for e in center.of(p.CallArrived) if e.call_id.startswith("flood-"))
        # pike lets between 1 and 3 times its density through before cutting the source off
        assert flood_calls <= 12 and answered < sent / 4, (flood_calls, answered, sent)
        assert all(w.alive and w.generation == 1 for w in center.pool.workers)


async def test_a_source_outside_the_trunk_allow_list_gets_403_at_the_front(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False, trunk_allow=["127.0.0.2/32"])
    async with running_center(tree, workers=2) as center:
        outsider = plain_callers(sipps, tmp_path, center, name="outsider", calls=2, hold_ms=500,
                                 extra_header="X-Src-Addr: 127.0.0.2:5060")  # a forged one changes nothing
        assert await outsider.finished(30) != 0
        assert "403" in "".join(p_.read_text(errors="replace") for p_ in outsider.workdir.glob("*error*")) or \
            outsider.stats().get("failed") == 2, outsider.report()
        assert center.front.counters["forbidden"] >= 2
        assert not center.of(p.CallArrived), "no worker saw the outsider"

        insider = plain_callers(sipps, tmp_path, center, name="insider", calls=2, hold_ms=500, source_ip="127.0.0.2")
        assert await insider.finished(30) == 0, insider.report() + center.describe()
        assert insider.outcomes()["ANSWERED"] == 2
        assert center.server.center.counters["refused_source"] == 0

        # Straight to a worker, past the front, with a forged header: the center refuses it itself.
        worker = center.pool.workers[0]
        direct = plain_callers(sipps, tmp_path, center, name="direct", calls=1, hold_ms=500,
                               extra_header="X-Src-Addr: 127.0.0.2:5060", remote=f"{worker.address}:{worker.port}")
        await direct.finished(30)
        await center.wait_for(lambda: center.server.center.counters["refused_source"] == 1, 10, "the direct call refused")


# ------------------------------------------------------------------------------- supervision


async def test_kamailio_is_restarted_when_it_dies_and_stopped_with_the_server(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False)
    async with running_center(tree, workers=2) as center:
        first = center.front.pid
        run_dir = center.front.run_dir
        assert (run_dir / "kamailio.cfg").exists() and (run_dir / "dispatcher.list").exists()
        os.kill(first, signal.SIGKILL)
        await center.wait_for(lambda: center.front.counters["restarts"] == 1 and center.front.alive
                              and center.front.pid != first, 20, "Kamailio restarted")
        await center.wait_for(lambda: _listening(center.address), 10, "the front's port open again")
        calls = plain_callers(sipps, tmp_path, center, name="calls", calls=2, hold_ms=1000)
        assert await calls.finished(30) == 0, calls.report() + center.describe()
        assert calls.outcomes()["ANSWERED"] == 2
        second = center.front.pid
    assert not process_alive(second) and not process_alive(first)
    assert not run_dir.exists()
    assert _port_free(center.address), "Kamailio's children are gone too"


async def test_kamailio_keeps_being_restarted_when_a_restart_fails(tmp_path, prompts, sipps):
    """A restart that cannot even start the binary (upgraded away, run folder cleaned) is retried."""
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False)
    async with running_center(tree, workers=1) as center:
        front = center.front
        binary, first = front.binary, front.pid
        front.restart_backoff = (0.2, 0.5)
        front.binary = str(tmp_path / "no-such-kamailio")
        shutil.rmtree(front.run_dir)
        os.kill(first, signal.SIGKILL)
        await center.wait_for(lambda: not front.alive, 10, "Kamailio gone")
        await asyncio.sleep(1.5)  # several failed attempts
        assert not front.alive
        front.binary = binary  # the package is back
        await center.wait_for(lambda: front.alive and front.pid != first, 20, "Kamailio restarted after failures")
        await center.wait_for(lambda: _listening(center.address), 10, "the front's port open again")


def _listening(address: str) -> bool:
    return not _port_free(address)


def _port_free(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


# ----------------------------------------------------------------------------- callcenter serve


async def test_serve_runs_kamailio_as_its_child_and_stops_it_on_ctrl_c(tmp_path, prompts, sipps):
    require_tools()
    import subprocess
    import sys

    from tests.front.front_support import LOOPBACK, REPO

    port, base = free_block(1), free_block(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["CALLCENTER_DATABASE__URL"] = f"sqlite:///{tmp_path / 'cc.db'}"
    command = [sys.executable, "-m", "callcenter", "--config", str(LOOPBACK)]
    for key, value in {"sip.front": "kamailio", "sip.port": port, "sip.worker_base_port": base, "sip.workers": 2,
                       "sip.rtp_port_start": 10000 + (port % 25) * 1000, "sip.rtp_port_end": 65000,
                       "sip.queue_log": tmp_path / "queue_log",
                       "ivr.prompts_dir": prompts, "ivr.menu_file": REPO / "config" / "ivr.toml",
                       "cti.listen": f"ws://127.0.0.1:{free_block(1)}"}.items():
        command += ["--set", f"{key}={value}"]
    upgrade = subprocess.run([*command, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    server = subprocess.Popen([*command, "serve", "--quiet"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log: list[str] = []
    try:
        loop = asyncio.get_running_loop()
        reader = loop.run_in_executor(None, lambda: [log.append(line) for line in server.stdout])
        deadline = time.monotonic() + 60
        while not any("serving on" in line for line in log):
            assert server.poll() is None and time.monotonic() < deadline, "".join(log)
            await asyncio.sleep(0.2)
        children = subprocess.run(["pgrep", "-P", str(server.pid), "-x", "kamailio"], capture_output=True, text=True)
        (kamailio,) = [int(x) for x in children.stdout.split()]
        calls = sipps.start("calls", caller_scenario(tmp_path / "c.xml", hold_ms=1500), remote=f"127.0.0.1:{port}",
                            calls=2, rate=5, limit=2, keys=CALLER_KEYS, timeout=30)
        assert await calls.finished(40) == 0, calls.report() + "".join(log[-40:])
        assert calls.outcomes()["ANSWERED"] == 2
        server.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert server.returncode == 0, "".join(log[-40:])
        await asyncio.wait_for(reader, 10)
        assert not process_alive(kamailio)
        assert _port_free(f"127.0.0.1:{port}")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
