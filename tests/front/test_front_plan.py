"""The generated Kamailio configuration (key lines), the reports read back from its queues, how
``sip.front`` is resolved, the run folders, and the control process's allow-list behind the front."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest

from callcenter.config import load
from callcenter.core.contact_center import ContactCenter
from callcenter.core.ports import InMemoryContactStore
from callcenter.front import (
    Destination, FrontError, FrontPlan, blocked_call, dispatcher_list, kamailio_cfg, parse_counters, parse_report,
    resolve_front,
)
from callcenter.front import kamailio as front_kamailio
from callcenter.prompts import load_menu
from callcenter.core import telephony_protocol as tp
from callcenter.telephony.pool import FakeTelephony
from ivr.ports import InMemorySelfService
from tests.conftest import SAMPLE_CONFIG
from tests.front.front_support import REPO, require_kamailio

WORKERS = (Destination("w1", "10.0.0.5", 5070, "w1.1"), Destination("w2", "10.0.0.5", 5071, "w2.3"))


def plan(tmp_path: Path, **changes) -> FrontPlan:
    values = dict(listen_address="10.0.0.5", port=5060, workers=WORKERS, run_dir=tmp_path,
                  trunk_allow=("203.0.113.0/24", "198.51.100.7"), pike_density=120, max_load=2)
    values.update(changes)
    return FrontPlan(**values)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


# ------------------------------------------------------------------------------ the files


def test_dispatcher_list_has_one_probed_destination_per_worker_with_its_load_id_and_max_load(tmp_path):
    text = dispatcher_list(plan(tmp_path))
    entries = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert entries == [
        "1 sip:10.0.0.5:5070 8 0 duid=w1.1;maxload=2",
        "1 sip:10.0.0.5:5071 8 0 duid=w2.3;maxload=2",
    ]


def test_config_listens_where_we_said_and_keeps_its_files_in_the_run_directory(tmp_path):
    cfg = lines(kamailio_cfg(plan(tmp_path)))
    assert "listen=udp:10.0.0.5:5060" in cfg
    assert f'rundir="{tmp_path}"' in cfg  # 'rundir' in 5.6 ('runtime_dir' is a parse error there)
    assert "disable_tcp=yes" in cfg and "log_stderror=yes" in cfg
    assert f'modparam("dispatcher", "list_file", "{tmp_path / "dispatcher.list"}")' in cfg
    assert f'modparam("ctl", "binrpc", "unix:{tmp_path / "kamailio_ctl"}")' in cfg
    assert f'modparam("jsonrpcs", "dgram_socket", "{tmp_path / "kamailio_rpc.sock"}")' in cfg


def test_config_dispatches_new_invites_by_call_load_with_failover_and_probing(tmp_path):
    cfg = lines(kamailio_cfg(plan(tmp_path)))
    assert 'if (!ds_select_dst("1", "10", "8")) {' in cfg  # at most 8 workers per call: tm has 12 branches
    assert 'modparam("dispatcher", "flags", 2)' in cfg  # failover list kept
    assert 'modparam("dispatcher", "ds_hash_size", 9)' in cfg  # algorithm 10 needs the load table
    assert 'modparam("dispatcher", "ds_ping_interval", 1)' in cfg
    assert 'modparam("dispatcher", "ds_probing_mode", 1)' in cfg
    assert 'modparam("dispatcher", "reload_delta", 0)' in cfg  # a restarted worker is listed again at once
    assert 'modparam("tm", "fr_timer", 2000)' in cfg
    assert "record_route();" in cfg and "if (loose_route()) {" in cfg


def test_config_keeps_the_load_bookkeeping_of_algorithm_10(tmp_path):
    text = kamailio_cfg(plan(tmp_path))
    reply = text[text.index("onreply_route[INVITE_REPLY]"):]
    assert re.search(r'if \(status =~ "\^2\[0-9\]\[0-9\]\$"\) \{\s+ds_load_update\(\);', reply)
    within = text[text.index("route[WITHINDLG]"):text.index("route[DISPATCH]")]
    assert re.search(r'if \(is_method\("BYE"\)\) \{\s+ds_load_update\(\);', within)
    failure = text[text.index("failure_route[FAILOVER]"):]
    assert failure.count("ds_load_unset();") == 3  # cancelled, given up, any other final failure
    assert 't_check_status("408|486|488|5[0-9][0-9]")' in failure
    # ds_next_dst() only when another destination exists (else the load could not be released)
    guard = failure.index("if ($var(give_up) == 0 && $xavp(_dsdst_[1]=>uri) != $null) {")
    assert guard < failure.index("if (ds_next_dst()) {") < failure.index("ds_load_unset();\n\t\tif (t_check_status")
    # full or failing: inactive until probing says otherwise (else, having shed its load, it draws every call)
    assert '} else if (t_check_status("486|5[0-9][0-9]")) {' in failure
    assert failure.index('ds_mark_dst("ip");') < failure.index("if (ds_next_dst()) {")
    # no answer at all: never marked (a caller could send what no worker reads), one failover at most
    silent = failure[failure.index("if (t_branch_timeout() && !t_branch_replied()) {"):failure.index("} else if")]
    assert "ds_mark_dst" not in silent and "$var(give_up) = 1;" in silent and "$avp(cc_silent) = 1;" in silent


def test_config_answers_503_with_retry_after_when_no_worker_has_room(tmp_path):
    text = kamailio_cfg(plan(tmp_path, retry_after=7))
    dispatch = text[text.index("route[DISPATCH]"):text.index("route[RELAY]")]
    assert 'append_to_reply("Retry-After: 7\\r\\n");' in dispatch and 't_reply("503", "Service Unavailable");' in dispatch
    assert 'mq_add("ccfront_calls", "blocked", "reason=full ci=$(ci{s.encode.hexa}) ' in dispatch
    failure = text[text.index("failure_route[FAILOVER]"):]
    # only workers that were full make a blocked call; any other end is the call's own failure
    full = failure[failure.index('if (t_check_status("486|503")) {'):failure.index("} else {")]
    assert 'mq_add("ccfront_calls", "blocked", "reason=exhausted status=$T_reply_code' in full
    assert 't_reply("503", "Service Unavailable");' in full
    assert 'mq_add("ccfront_calls", "failed", "status=$T_reply_code' in failure[failure.index("} else {"):]


def test_reports_go_to_queues_never_to_the_log(tmp_path):
    text = kamailio_cfg(plan(tmp_path))
    assert "xlog" not in text and "CCFRONT" not in text
    assert 'modparam("mqueue", "mqueue", "name=ccfront_calls;size=10000")' in text
    for event in ("forbidden", "malformed", "too_large"):
        assert f'modparam("statistics", "variable", "ccfront_{event}")' in text
        assert f'update_stat("ccfront_{event}", "+1");' in text
    assert 'modparam("mqueue", "mqueue", "name=ccfront_events;size=10000")' in text
    assert 'modparam("jsonrpcs", "dgram_mode", 0600)' in text  # fetched only through the private socket
    assert "exit_timeout=2" in text


def test_config_answers_513_to_what_a_worker_could_not_read(tmp_path):
    text = kamailio_cfg(plan(tmp_path, max_message=3000))
    reqinit = text[text.index("route[REQINIT]"):text.index("route[WITHINDLG]")]
    order = [reqinit.index(x) for x in ("is_in_subnet", 'if ($ml > 3000 && !ds_is_from_list("1")) {',
                                        "sanity_check(")]
    assert order == sorted(order)
    assert 'sl_send_reply("513", "Message Too Large");' in reqinit
    dispatch = text[text.index("route[DISPATCH]"):text.index("route[RELAY]")]
    # the From tag is copied into the Record-Route: beyond 100 characters it counts twice; an INVITE
    # without an offer gets the worker's full offer in the answer
    check = dispatch.index("if ($ml + $(ft{s.len}) > 3100\n\t\t\t|| (!has_body() && $ml > 2300)) {")
    assert check < dispatch.index("record_route();")
    assert 'update_stat("ccfront_too_large", "+1");' in dispatch


def test_config_checks_sources_pike_sanity_and_marks_the_callers_address(tmp_path):
    text = kamailio_cfg(plan(tmp_path))
    reqinit = text[text.index("route[REQINIT]"):text.index("route[WITHINDLG]")]
    order = [reqinit.index(x) for x in ("pike_check_req()", "mf_process_maxfwd_header", "is_in_subnet", "sanity_check(")]
    assert order == sorted(order)
    assert 'if (!ds_is_from_list("1")) {' in reqinit  # the workers are exempt from pike
    assert 'is_in_subnet("$si", "203.0.113.0/24,198.51.100.7/32")' in reqinit
    assert 'sl_send_reply("403", "Forbidden");' in reqinit
    assert 'sanity_check("22503", "7")' in reqinit
    assert 'modparam("pike", "reqs_density_per_unit", 120)' in text
    dispatch = text[text.index("route[DISPATCH]"):]
    assert dispatch.index('remove_hf("X-Src-Addr");') < dispatch.index('insert_hf("X-Src-Addr: $si:$sp\\r\\n");')
    # trunks may only reach a worker through the route set, never relay elsewhere
    assert 'if (!ds_is_from_list("1", "2", "$var(target)")) {' in text
    assert "if (!t_check_trans()) {\n\t\tdrop;" in text  # stray replies are not forwarded


def test_pike_off_and_empty_allow_list(tmp_path):
    text = kamailio_cfg(plan(tmp_path, pike_density=0, trunk_allow=()))
    assert "pike_check_req()" not in text and "pike is off" in text
    assert 'if (!ds_is_from_list("1") && !0) {' in text  # nobody but the workers


def test_ipv6_addresses_are_bracketed(tmp_path):
    p = plan(tmp_path, listen_address="2001:db8::5", workers=(Destination("w1", "2001:db8::5", 5070),),
             trunk_allow=("2001:db8::/64",))
    assert "listen=udp:[2001:db8::5]:5060" in kamailio_cfg(p)
    assert "1 sip:[2001:db8::5]:5070 8 0 duid=w1;maxload=2" in dispatcher_list(p)
    assert p.address == "[2001:db8::5]:5060"


@pytest.mark.parametrize("changes, message", [
    ({"workers": ()}, "at least one worker"),
    ({"listen_address": "front.example"}, "does not appear to be an IPv4 or IPv6 address"),
    ({"workers": (Destination("w1", "10.0.0.5", 5070), Destination("w1", "10.0.0.5", 5071))}, "unique"),
    ({"workers": (Destination("w1", "10.0.0.5", 5060),)}, "front's own address"),
    ({"workers": (Destination("w 1", "10.0.0.5", 5070),)}, "may only use"),
    ({"trunk_allow": ("everyone",)}, "does not appear to be an IPv4 or IPv6 network"),
    ({"max_load": 0}, "max_load"),
    ({"failover_limit": 12}, "failover_limit"),
    ({"run_dir": Path('/tmp/"x')}, "quotes"),
])
def test_plan_refuses_what_kamailio_would_choke_on(tmp_path, changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        plan(tmp_path, **changes)


def test_kamailio_accepts_the_generated_configuration(tmp_path):
    binary = require_kamailio()
    p = plan(tmp_path, listen_address="127.0.0.1",
             workers=(Destination("w1", "127.0.0.1", 5070, "w1.1"), Destination("w2", "127.0.0.1", 5071, "w2.1")))
    p.config_path.write_text(kamailio_cfg(p))
    p.dispatcher_path.write_text(dispatcher_list(p))
    result = subprocess.run([binary, "-c", "-f", str(p.config_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- the reports


def test_reports_are_parsed_and_network_values_decoded():
    report = parse_report("blocked", "reason=full ci=31323340782e6f7267 ani=3c7363726970743e20e69d8e dnis=34303030 "
                                     "src=203.0.113.9:5060")
    assert report.event == "blocked"
    assert report.fields == {"reason": "full", "ci": "123@x.org", "ani": "<script> 李", "dnis": "4000",
                             "src": "203.0.113.9:5060"}
    event = blocked_call(report)
    assert isinstance(event, tp.CallRefused) and event.worker == "front" and event.status == 503
    assert (event.call_id, event.ani, event.dnis, event.remote_address) == ("123@x.org", "<script> 李", "4000",
                                                                            "203.0.113.9:5060")
    assert "all workers full" in event.reason


def test_a_forged_report_inside_a_value_cannot_add_fields_and_only_full_workers_make_blocked_calls():
    # Values from the network are hex in the script's reports, so spaces or '=' cannot appear raw.
    assert parse_report("blocked", "reason=full ani=zz dnis=4000").fields["ani"] == ""
    assert parse_report("blocked", "reason=full ani=a b=c d") is None
    assert parse_report("nonsense", "src=1.2.3.4:5") is None
    exhausted = parse_report("blocked", "reason=exhausted status=486 ci= ani= dnis= src=1.2.3.4:5")
    assert "last status 486" in blocked_call(exhausted).reason
    for event, value in (("flood", "src=1.2.3.4"), ("failed", "status=408 ci= ani= dnis= src=1.2.3.4:5")):
        report = parse_report(event, value)
        assert report is not None and blocked_call(report) is None, event
    # refusals that need no record are counters, never reports
    assert parse_report("forbidden", "src=1.2.3.4:5") is None


def test_counters_are_read_from_the_statistics_rpc():
    result = ["script:ccfront_forbidden = 3", "script:ccfront_too_large = 12", "script:ccfront_malformed = 0",
              "script:other = 9", "core:rcv_requests = 40", "script:ccfront_unknown = 1", 7]
    assert parse_counters(result) == {"forbidden": 3, "too_large": 12, "malformed": 0}
    assert parse_counters({"error": 1}) == {}


# ------------------------------------------------------------------------------ run folders


def test_a_run_folder_is_removed_only_once_its_server_is_gone(tmp_path):
    live, fd = front_kamailio._make_run_dir(tmp_path)
    dead, dead_fd = front_kamailio._make_run_dir(tmp_path)
    os.close(dead_fd)  # what the kernel does when a server is killed
    other = tmp_path / "unrelated"
    other.mkdir()
    try:
        assert front_kamailio.remove_stale_run_dirs(tmp_path) == [dead]
        assert live.exists() and not dead.exists() and other.exists()
        assert oct(live.stat().st_mode & 0o777) == "0o700"
    finally:
        os.close(fd)
    assert front_kamailio.remove_stale_run_dirs(tmp_path) == [live]


# ---------------------------------------------------------------------------- sip.front


def test_front_setting_is_resolved_from_what_is_installed(monkeypatch):
    assert resolve_front("none") == "none"
    monkeypatch.setattr(front_kamailio, "find_kamailio", lambda: None)
    assert resolve_front("auto") == "none"
    with pytest.raises(FrontError, match="apt-get install kamailio"):
        resolve_front("kamailio")
    monkeypatch.setattr(front_kamailio, "find_kamailio", lambda: "/usr/sbin/kamailio")
    assert resolve_front("auto") == "kamailio" and resolve_front("kamailio") == "kamailio"


def test_server_settings_that_cannot_work_behind_the_front_are_refused(tmp_path, monkeypatch):
    from callcenter import bootstrap
    from callcenter.errors import ConfigError

    monkeypatch.setattr(front_kamailio, "find_kamailio", lambda: "/usr/sbin/kamailio")
    clash = load(REPO / "config" / "loopback.toml", environ={}, overrides=[
        "sip.front=kamailio", "sip.port=5071", "sip.worker_base_port=5070", "sip.workers=2",
        f"database.url=sqlite:///{tmp_path / 'x.db'}"]).settings
    with pytest.raises(ConfigError, match=r"sip.port 5071 is one of the media workers' ports \(5070-5071\)"):
        bootstrap.Server(clash)
    anywhere = load(REPO / "config" / "loopback.toml", environ={}, overrides=[
        "sip.front=kamailio", "sip.listen_address=0.0.0.0", f"database.url=sqlite:///{tmp_path / 'x.db'}"]).settings
    with pytest.raises(ConfigError, match="concrete address"):
        bootstrap.Server(anywhere)


# ------------------------------------------------------------- allow-list behind the front


class _Center:
    def __init__(self, front_address: str | None) -> None:
        settings = load(SAMPLE_CONFIG, environ={}, overrides=['sip.trunk_allow=["203.0.113.0/24"]']).settings
        self.fake = FakeTelephony(workers=8)
        self.arrivals = 0
        self.cc = ContactCenter(
            settings=settings, menu=load_menu(REPO / "config/ivr.toml").menu, telephony=self.fake,
            store=InMemoryContactStore(), selfservice=InMemorySelfService(), prompts_dir=Path("/prompts"),
            front_address=front_address,
        )

    async def outcome(self, remote: str, headers: dict[str, str]) -> str:
        before = len(self.fake.sent(tp.RejectCall))
        self.arrivals += 1
        self.fake.arrive(remote_address=remote, headers=headers, worker=f"w{self.arrivals}")
        for _ in range(10):
            await asyncio.sleep(0.005)
        rejected = self.fake.sent(tp.RejectCall)[before:]
        return "403" if rejected and rejected[0].status == 403 else "accepted"


async def test_behind_the_front_the_caller_address_comes_from_its_header():
    center = _Center(front_address="10.0.0.5:5060")
    await center.cc.start()
    try:
        assert await center.outcome("10.0.0.5:5060", {"X-Src-Addr": "203.0.113.9:5060"}) == "accepted"
        assert await center.outcome("10.0.0.5:5060", {"x-src-addr": "203.0.113.10:5080"}) == "accepted"
        assert await center.outcome("10.0.0.5:5060", {"X-Src-Addr": "192.0.2.1:5060"}) == "403"
        assert await center.outcome("10.0.0.5:5060", {}) == "403"  # the front always sets it: fail closed
        # Anyone else (past the front, straight to a worker) is judged by its own address, header or not.
        assert await center.outcome("192.0.2.1:5060", {"X-Src-Addr": "203.0.113.9:5060"}) == "403"
        assert await center.outcome("10.0.0.5:5099", {"X-Src-Addr": "203.0.113.9:5060"}) == "403"
        assert await center.outcome("203.0.113.7:5060", {}) == "accepted"
        assert center.cc.counters["refused_source"] == 4
    finally:
        await center.cc.stop()


async def test_without_the_front_the_header_means_nothing():
    center = _Center(front_address=None)
    await center.cc.start()
    try:
        assert await center.outcome("10.0.0.5:5060", {"X-Src-Addr": "203.0.113.9:5060"}) == "403"
        assert await center.outcome("203.0.113.7:5060", {}) == "accepted"
    finally:
        await center.cc.stop()


async def test_behind_the_front_only_the_fronts_refusals_are_blocked_callers():
    """A worker's 503 to the front is a failover (the front tries the next worker), not a lost caller."""
    center = _Center(front_address="10.0.0.5:5060")
    store = center.cc.store
    await center.cc.start()
    try:
        center.fake.inject(tp.CallRefused(worker="w1", call_id="a", ani="13800138000", dnis="4000",
                                          remote_address="10.0.0.5:5060", status=503, reason="no room"))
        center.fake.inject(tp.CallRefused(worker="front", call_id="b", ani="13800138001", dnis="4000",
                                          remote_address="203.0.113.9:5060", status=503,
                                          reason="all workers full (SIP front)"))
        # Straight to a worker, not through the front: that caller really was turned away.
        center.fake.inject(tp.CallRefused(worker="w2", call_id="c", ani="13800138002", dnis="4000",
                                          remote_address="203.0.113.7:5060", status=503, reason="no room"))
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert center.cc.counters["worker_refused"] == 1
        assert center.cc.counters["blocked"] == 2
        blocked = sorted(row["ani"] for row in store.rows.values() if row["outcome"] == "blocked")
        assert blocked == ["13800138001", "13800138002"]
    finally:
        await center.cc.stop()
