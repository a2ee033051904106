"""The Kamailio front's configuration, generated from ours (pure: no I/O, no clock).

:class:`FrontPlan` holds what the front needs to know: where it listens, the media workers behind
it (one dispatcher destination each, with the load it may send there), who may call in, and the
flood threshold. :func:`kamailio_cfg` and :func:`dispatcher_list` turn a plan into the two files
Kamailio reads; :func:`parse_report` reads back one of the reports the generated script queues
(mqueues ``ccfront_calls`` and ``ccfront_events``) and :func:`parse_counters` the counters it keeps
(statistics ``ccfront_*``), both fetched over the private JSON-RPC socket.

Reports never travel through Kamailio's log: the log also carries text from the network (a message
Kamailio cannot parse is logged line by line), so a line there can be forged by anyone who can send
a datagram. Only the routing script can add to an mqueue or a statistic, and only the supervisor,
through a socket in the run directory (mode 700), can read them. Refusals that need no record
(403, 513, 4xx) are only counted: a flood of them costs the supervisor one RPC per poll.

What the generated script does, in order, for every request:

1. **pike**: a source address sending more than ``pike_density`` requests in 2 s is dropped until
   it calms down (first detection reported as ``flood``). The workers' own addresses are exempt.
2. ``Max-Forwards`` (483 at zero).
3. **trunk allow-list**: a request whose source is neither a worker nor inside ``trunk_allow``
   gets 403 (counted as ``forbidden``).
4. **size**: a request longer than ``max_message`` bytes gets 513 at once (counted: ``too_large``): a worker
   reads and writes at most :data:`WORKER_MAX_PACKET` bytes per message; it would drop or misread
   the rest, or be unable to answer. A new INVITE also counts a long From tag twice and has less
   room without SDP (its answer would carry the worker's offer).
5. **sanity**: malformed requests get the sanity module's 4xx before any worker sees them
   (counted as ``malformed``).
6. In-dialog requests follow the Record-Route (``loose_route``); a trunk may only reach a worker
   this way, never relay elsewhere. BYE releases the call's load.
7. A new INVITE gets ``X-Src-Addr`` (the trunk's address, for the control process's allow-list
   check; a copy sent by the caller is removed), a Record-Route, and goes to the least-loaded
   worker that has room (dispatcher algorithm 10, ``maxload`` = conversations per worker). No
   worker with room: 503 with ``Retry-After`` (reported as ``blocked reason=full``).
8. A worker that answers 408, 486, 488 or 5xx hands the call to the next worker with room, up to
   ``failover_limit`` workers in all; on 486 or 5xx it is also marked inactive until its next
   OPTIONS probe succeeds (at most a second). A worker that does not answer at all is not marked
   (an INVITE no worker can read must not take workers out: probing finds a dead one) and the
   call fails over once at most. When no worker is left: the workers were full (486/503) is
   503 with ``Retry-After`` (``blocked reason=exhausted``); anything else is the call's own
   failure (``failed``, the worker's answer or tm's 408 goes back). The load is confirmed on the
   200 OK and released on BYE or on the final failure.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CALL_QUEUE", "COUNTED_EVENTS", "DISPATCHER_SET", "EVENT_QUEUE", "FRONT_HEADROOM", "LATE_OFFER_EXTRA",
    "MAX_MESSAGE", "REPORT_EVENTS", "SOURCE_HEADER", "TAG_ALLOWANCE", "WORKER_MAX_PACKET", "Destination",
    "FrontPlan", "FrontReport", "dispatcher_list", "kamailio_cfg", "parse_counters", "parse_report", "sanity_checks",
]

DISPATCHER_SET = 1
SOURCE_HEADER = "X-Src-Addr"
"""Header the front adds to every new INVITE: the address (``ip:port``) the request came from."""

WORKER_MAX_PACKET = 4000
"""Bytes of a SIP message a worker reads or writes (pjsip's PJSIP_MAX_PKT_LEN in the pjsua2-python
wheel, measured): a longer INVITE is cut there and dropped unanswered or refused as bad SDP, and an
answer that would be longer is never sent."""
FRONT_HEADROOM = 700
"""Bytes between the longest request the front accepts and :data:`WORKER_MAX_PACKET`. The worker's
200 OK repeats the INVITE's Via, From, To, Call-ID and CSeq plus the front's Via, Record-Route and
``received`` and adds its own Contact, Allow, Supported and SDP answer: measured 445 bytes more
than the INVITE as it left the caller (IPv4, short From tag); IPv6 addresses add about 160, a
From tag up to :data:`TAG_ALLOWANCE` characters 100."""
MAX_MESSAGE = WORKER_MAX_PACKET - FRONT_HEADROOM
"""Longest request the front accepts (bytes); longer ones get 513 at once."""
TAG_ALLOWANCE = 100
"""Characters of From tag the headroom covers (the Record-Route repeats it); a longer tag's excess
counts towards :data:`MAX_MESSAGE` for a new INVITE."""
LATE_OFFER_EXTRA = 700
"""Less room for an INVITE without SDP: the worker's 200 OK then carries its full offer (every
codec), measured 600 bytes longer than an answer."""
CALL_QUEUE = "ccfront_calls"
"""mqueue of the callers the front turned away (``blocked``, ``failed``): records, never crowded out."""
EVENT_QUEUE = "ccfront_events"
"""mqueue of the sources found flooding (``flood``, once per detection)."""
REPORT_QUEUE_SIZE = 10000
"""Reports each queue keeps until fetched; beyond that the oldest goes (a flood cannot eat shm)."""
REPORT_EVENTS = {"blocked": CALL_QUEUE, "failed": CALL_QUEUE, "flood": EVENT_QUEUE}
COUNTED_EVENTS = ("forbidden", "malformed", "too_large")
"""Refusals only counted (statistics ``ccfront_<event>``): nothing about them is worth a record."""
STAT_PREFIX = "ccfront_"

# sanity module checks: R-URI SIP version (1), R-URI scheme (2), required headers (4), CSeq method
# (32) and value (64), Content-Length (128), Expires (256), Proxy-Require (512), parseable URIs
# (1024), duplicated tags (4096), first Via (16384). Digest checks are left out: nobody
# authenticates here.
_SANITY_CHECKS = 1 + 2 + 4 + 32 + 64 + 128 + 256 + 512 + 1024 + 4096 + 16384
_SANITY_URIS = 1 + 2 + 4  # Request-URI, From, To
_MODULES = (
    "kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "textops", "siputils",
    "sanity", "ctl", "jsonrpcs", "dialog", "dispatcher", "pike", "ipops", "mqueue", "statistics",
)


def sanity_checks() -> tuple[int, int]:
    """The (message checks, URI checks) bit sums passed to ``sanity_check``."""
    return _SANITY_CHECKS, _SANITY_URIS


@dataclass(frozen=True)
class Destination:
    """One media worker as a dispatcher destination."""

    name: str
    address: str
    port: int
    duid: str = ""
    """Kamailio's id for the destination's call load (default: the name). A new id for a restarted
    worker keeps loads counted for the calls of its previous life off the new one."""

    @property
    def load_id(self) -> str:
        return self.duid or self.name

    @property
    def uri(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"sip:{host}:{self.port}"


@dataclass(frozen=True)
class FrontPlan:
    """Everything the generated Kamailio configuration depends on."""

    listen_address: str
    port: int
    workers: tuple[Destination, ...]
    run_dir: Path
    max_load: int = 2
    trunk_allow: tuple[str, ...] = ("127.0.0.1/32",)
    pike_density: int = 300
    children: int = 4
    probe_interval: int = 1
    transaction_timeout_ms: int = 2000
    invite_timeout_ms: int = 120000
    retry_after: int = 5
    failover_limit: int = 8
    """Workers one INVITE may be offered to (the first and the fail-overs); tm allows 12 branches."""
    shm_mb: int = 64
    pkg_mb: int = 8
    max_message: int = MAX_MESSAGE
    exit_timeout: int = 2
    """Seconds Kamailio keeps relaying after SIGINT (its parent died) before its children are killed:
    time for the workers' own BYEs to their callers."""
    extra_exempt: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.listen_address)
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a UDP port")
        if not self.workers:
            raise ValueError("the front needs at least one worker behind it")
        names = [w.name for w in self.workers]
        if len(set(names)) != len(names):
            raise ValueError("worker names must be unique")
        for w in self.workers:
            for value in (w.name, w.load_id):
                if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", value):
                    raise ValueError(f"worker name or load id {value!r} may only use letters, digits, '_', '.', '-'")
            ipaddress.ip_address(w.address)
            if (w.address, w.port) == (self.listen_address, self.port):
                raise ValueError(f"worker {w.name} cannot listen on the front's own address {w.address}:{w.port}")
        for item in self.trunk_allow:
            ipaddress.ip_network(item, strict=False)
        if self.max_load < 1:
            raise ValueError("max_load must be at least 1")
        if self.pike_density < 0:
            raise ValueError("pike_density cannot be negative")
        if not 1 <= self.children <= 64:
            raise ValueError("children must be 1-64")
        if not 1 <= self.failover_limit <= 10:
            raise ValueError("failover_limit must be 1-10 (tm allows 12 branches per transaction)")
        if not 1024 <= self.max_message <= 65000:
            raise ValueError("max_message must be 1024-65000 bytes")
        if not 1 <= self.exit_timeout <= 60:
            raise ValueError("exit_timeout must be 1-60 s")
        if '"' in str(self.run_dir) or "\n" in str(self.run_dir):
            raise ValueError("the run directory path cannot contain quotes or newlines")

    @property
    def address(self) -> str:
        """``ip:port`` the front sends from: what a worker sees as the remote address."""
        host = f"[{self.listen_address}]" if ":" in self.listen_address else self.listen_address
        return f"{host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "kamailio.cfg"

    @property
    def dispatcher_path(self) -> Path:
        return self.run_dir / "dispatcher.list"

    @property
    def control_socket(self) -> Path:
        """binrpc socket, for ``kamcmd -s unix:PATH`` by hand."""
        return self.run_dir / "kamailio_ctl"

    @property
    def rpc_socket(self) -> Path:
        """JSON-RPC datagram socket, used by the supervisor."""
        return self.run_dir / "kamailio_rpc.sock"


def dispatcher_list(plan: FrontPlan) -> str:
    """The dispatcher list file: one probed destination per worker, with its ``duid`` and ``maxload``."""
    lines = [
        "# callcenter: media workers behind the SIP front (generated; edits are overwritten)",
        "# setid destination flags priority attributes",
    ]
    for w in plan.workers:
        # flags 8: probed with OPTIONS from the start
        lines.append(f"{DISPATCHER_SET} {w.uri} 8 0 duid={w.load_id};maxload={plan.max_load}")
    return "\n".join(lines) + "\n"


def _subnets(plan: FrontPlan) -> str:
    return ",".join(str(ipaddress.ip_network(n, strict=False)) for n in plan.trunk_allow)


def _hexa(pv: str) -> str:
    return f"$({pv}{{s.encode.hexa}})"


def _count(event: str) -> str:
    """Script line counting one refusal that needs no record."""
    assert event in COUNTED_EVENTS
    return f'update_stat("{STAT_PREFIX}{event}", "+1");'


def _report(event: str, **fields: str) -> str:
    """Script line queueing one report; values from the network must be given hex-encoded."""
    body = " ".join(f"{k}={v}" for k, v in fields.items())
    return f'mq_add("{REPORT_EVENTS[event]}", "{event}", "{body}");'


def kamailio_cfg(plan: FrontPlan) -> str:
    """The complete ``kamailio.cfg`` for ``plan``."""
    listen_host = f"[{plan.listen_address}]" if ":" in plan.listen_address else plan.listen_address
    checks, uri_checks = sanity_checks()
    modules = "\n".join(f'loadmodule "{m}.so"' for m in _MODULES)
    stats = "\n".join(f'modparam("statistics", "variable", "{STAT_PREFIX}{e}")' for e in COUNTED_EVENTS)
    subnets = _subnets(plan)
    allowed = f'is_in_subnet("$si", "{subnets}")' if subnets else "0"
    call = dict(ci=_hexa("ci"), ani=_hexa("fU"), dnis=_hexa("rU"), src="$si:$sp")
    pike = (
        f"""
	if (!ds_is_from_list("{DISPATCHER_SET}")) {{
		pike_check_req();
		$var(pike) = $rc;
		if ($var(pike) < 0) {{
			if ($var(pike) == -2) {{
				{_report("flood", src="$si")}
			}}
			exit;
		}}
	}}"""
        if plan.pike_density > 0
        else "\n\t# pike is off (sip.front_pike_density = 0)"
    )
    return f"""#!KAMAILIO
#
# callcenter SIP front: generated by `callcenter serve` from the [sip] settings, rewritten at
# every start. Edit config/callcenter.toml instead (see docs/sip-front.md).
#
# Listens on udp:{listen_host}:{plan.port}. Media workers behind it: {len(plan.workers)}, at most
# {plan.max_load} call(s) each. Trunks allowed: {subnets or "(none)"}.

####### global parameters
# The log is for people only: it quotes network text. Reports go through the mqueues below.
debug=2
log_stderror=yes
log_prefix=""
exit_timeout={plan.exit_timeout}
memdbg=5
memlog=5
children={plan.children}
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
listen=udp:{listen_host}:{plan.port}
rundir="{plan.run_dir}"
server_signature=no
server_header="Server: callcenter-front"
user_agent_header="User-Agent: callcenter-front"
sip_warning=0

####### modules
{modules}

modparam("ctl", "binrpc", "unix:{plan.control_socket}")
modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "{plan.rpc_socket}")
modparam("jsonrpcs", "dgram_mode", 0600)
modparam("jsonrpcs", "pretty_format", 0)

# reports for the supervisor, fetched over the JSON-RPC socket (mqueue.fetch)
modparam("mqueue", "mqueue", "name={CALL_QUEUE};size={REPORT_QUEUE_SIZE}")
modparam("mqueue", "mqueue", "name={EVENT_QUEUE};size={REPORT_QUEUE_SIZE}")
{stats}

# dialogs are tracked only to hang up the callers of a worker that died
modparam("dialog", "profiles_with_value", "worker")
modparam("dialog", "default_timeout", 43200)
modparam("dialog", "enable_stats", 0)

modparam("tm", "fr_timer", {plan.transaction_timeout_ms})
modparam("tm", "fr_inv_timer", {plan.invite_timeout_ms})
modparam("tm", "auto_inv_100", 1)

modparam("rr", "enable_full_lr", 0)
modparam("rr", "append_fromtag", 1)

modparam("sanity", "autodrop", 0)

modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", {max(plan.pike_density, 1)})
modparam("pike", "remove_latency", 4)

modparam("dispatcher", "list_file", "{plan.dispatcher_path}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "xavp_dst", "_dsdst_")
modparam("dispatcher", "xavp_ctx", "_dsctx_")
modparam("dispatcher", "ds_hash_size", 9)
modparam("dispatcher", "ds_hash_expire", 14400)
modparam("dispatcher", "ds_hash_initexpire", 60)
modparam("dispatcher", "ds_hash_check_interval", 10)
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:front@{listen_host}:{plan.port}")
modparam("dispatcher", "ds_ping_interval", {plan.probe_interval})
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_timer_mode", 1)
# dispatcher.add/remove count as reloads, by default at most one per 5 s: a worker back right after
# it died would wait. The supervisor sends them one at a time, never concurrently.
modparam("dispatcher", "reload_delta", 0)

####### routing

request_route {{
	route(REQINIT);

	# retransmissions are answered by the transaction they belong to
	if (!is_method("ACK")) {{
		if (t_precheck_trans()) {{
			t_check_trans();
			exit;
		}}
		t_check_trans();
	}}

	if (has_totag()) {{
		route(WITHINDLG);
		exit;
	}}

	if (is_method("CANCEL")) {{
		if (t_check_trans()) {{
			route(RELAY);
		}}
		exit;
	}}

	if (is_method("ACK")) {{
		# ACK of a negative reply is absorbed by its transaction; a stray one is dropped
		if (t_check_trans()) {{
			route(RELAY);
		}}
		exit;
	}}

	if (is_method("OPTIONS")) {{
		# keep-alive from a trunk
		sl_send_reply("200", "OK");
		exit;
	}}

	if (!is_method("INVITE")) {{
		append_to_reply("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO\\r\\n");
		sl_send_reply("405", "Method Not Allowed");
		exit;
	}}

	route(DISPATCH);
}}

route[REQINIT] {{{pike}

	if (!mf_process_maxfwd_header("10")) {{
		sl_send_reply("483", "Too Many Hops");
		exit;
	}}

	if (!ds_is_from_list("{DISPATCHER_SET}") && !{allowed}) {{
		if (!is_method("ACK")) {{
			{_count("forbidden")}
			sl_send_reply("403", "Forbidden");
		}}
		exit;
	}}

	# A worker reads and writes at most {WORKER_MAX_PACKET} bytes: what it could not read whole, or
	# answer, is refused here at once. The workers' own requests (a BYE that repeats a long From)
	# are theirs to size.
	if ($ml > {plan.max_message} && !ds_is_from_list("{DISPATCHER_SET}")) {{
		if (!is_method("ACK")) {{
			{_count("too_large")}
			sl_send_reply("513", "Message Too Large");
		}}
		exit;
	}}

	if (!sanity_check("{checks}", "{uri_checks}")) {{
		# the sanity module has sent its 4xx reply already
		{_count("malformed")}
		exit;
	}}
}}

route[WITHINDLG] {{
	if (loose_route()) {{
		if (!ds_is_from_list("{DISPATCHER_SET}")) {{
			# from a trunk: only towards a worker, never relayed elsewhere
			if ($du != $null) {{
				$var(target) = $du;
			}} else {{
				$var(target) = $ru;
			}}
			if (!ds_is_from_list("{DISPATCHER_SET}", "2", "$var(target)")) {{
				if (!is_method("ACK")) {{
					sl_send_reply("403", "Forbidden");
				}}
				exit;
			}}
		}}
		if (is_method("BYE")) {{
			ds_load_update();
		}}
		route(RELAY);
		exit;
	}}
	if (is_method("ACK")) {{
		if (t_check_trans()) {{
			route(RELAY);
		}}
		exit;
	}}
	sl_send_reply("404", "Not Here");
	exit;
}}

route[DISPATCH] {{
	# The worker's answer must fit too: the Record-Route added below repeats the From tag (beyond
	# {TAG_ALLOWANCE} characters it counts twice), and without an offer here the answer carries one.
	if ($ml + $(ft{{s.len}}) > {plan.max_message + TAG_ALLOWANCE}
			|| (!has_body() && $ml > {plan.max_message - LATE_OFFER_EXTRA})) {{
		{_count("too_large")}
		sl_send_reply("513", "Message Too Large");
		exit;
	}}
	remove_hf("{SOURCE_HEADER}");
	insert_hf("{SOURCE_HEADER}: $si:$sp\\r\\n");
	record_route();
	dlg_manage();
	if (!ds_select_dst("{DISPATCHER_SET}", "10", "{plan.failover_limit}")) {{
		t_newtran();
		{_report("blocked", reason="full", **call)}
		append_to_reply("Retry-After: {plan.retry_after}\\r\\n");
		t_reply("503", "Service Unavailable");
		exit;
	}}
	t_on_failure("FAILOVER");
	t_on_reply("INVITE_REPLY");
	route(RELAY);
}}

route[RELAY] {{
	if (!t_relay()) {{
		sl_reply_error();
	}}
	exit;
}}

reply_route {{
	# only replies to our own transactions; a stray one (say, with a forged Via) is not forwarded
	if (!t_check_trans()) {{
		drop;
	}}
}}

onreply_route[INVITE_REPLY] {{
	if (status =~ "^2[0-9][0-9]$") {{
		ds_load_update();
		# the dialog belongs to the worker that answered (to hang up its callers if it dies)
		if (!is_in_profile("worker", "$si:$sp")) {{
			set_dlg_profile("worker", "$si:$sp");
		}}
	}}
}}

failure_route[FAILOVER] {{
	if (t_is_canceled()) {{
		ds_load_unset();
		exit;
	}}
	$var(give_up) = 0;
	if (t_branch_timeout() && !t_branch_replied()) {{
		# No answer at all: a worker that hangs or died, or an INVITE it could not read. Not
		# marked inactive: a caller must not be able to take workers out (OPTIONS probing finds a
		# dead one within about 2 s). One such failover per call: what one worker cannot read,
		# the next cannot either.
		if ($avp(cc_silent) != $null) {{
			$var(give_up) = 1;
		}}
		$avp(cc_silent) = 1;
	}} else if (t_check_status("486|5[0-9][0-9]")) {{
		# Full (its 503/486), or failing: out of the rotation until its next OPTIONS probe answers
		# (at most a second). A worker that refuses sheds its load here, so it would otherwise be
		# the least loaded and draw every new call. Not on 488: that is about the caller's offer.
		ds_mark_dst("ip");
	}}
	if (t_check_status("408|486|488|5[0-9][0-9]") || t_branch_timeout()) {{
		# ds_next_dst() drops the current entry: only call it when another one exists, or the
		# load of the current one could no longer be released
		if ($var(give_up) == 0 && $xavp(_dsdst_[1]=>uri) != $null) {{
			if (ds_next_dst()) {{
				t_on_failure("FAILOVER");
				t_on_reply("INVITE_REPLY");
				route(RELAY);
				exit;
			}}
		}}
		ds_load_unset();
		if (t_check_status("486|503")) {{
			# the workers were full: a blocked call
			{_report("blocked", reason="exhausted", status="$T_reply_code", **call)}
			append_to_reply("Retry-After: {plan.retry_after}\\r\\n");
			t_reply("503", "Service Unavailable");
		}} else {{
			# the call's own failure (no answer, its offer refused, an error): the worker's reply,
			# or tm's 408, goes back to the caller
			{_report("failed", status="$T_reply_code", **call)}
		}}
		exit;
	}}
	ds_load_unset();
}}
"""


@dataclass(frozen=True)
class FrontReport:
    """One report of the routing script, decoded."""

    event: str
    fields: dict[str, str]


_FIELD = re.compile(r"^([a-z_]+)=([^ ]*)$")
_HEXA = {"ci", "ani", "dnis", "method"}


def parse_report(event: str, value: str) -> FrontReport | None:
    """The report in one mqueue item (key ``event``, value ``k=v ...``), or None if it is not one.

    Values that come from the network (Call-ID, From and Request-URI users, method) are queued
    hex-encoded by the script, so a hostile value cannot add fields; they are decoded here
    (invalid UTF-8 replaced).
    """
    if event not in REPORT_EVENTS or not isinstance(value, str):
        return None
    fields: dict[str, str] = {}
    for item in value.split():
        match = _FIELD.match(item)
        if not match:
            return None
        key, text = match.groups()
        if key in _HEXA:
            try:
                text = bytes.fromhex(text).decode("utf-8", "replace")
            except ValueError:
                text = ""
        fields[key] = text
    return FrontReport(event, fields)


_STAT = re.compile(r"^script:" + STAT_PREFIX + r"([a-z_]+) = (\d+)$")


def parse_counters(result: object) -> dict[str, int]:
    """The script's counters (``forbidden``, ``malformed``, ``too_large``) in a ``stats.get_statistics``
    result for ``script:`` (lines like ``script:ccfront_forbidden = 3``); others are ignored."""
    counters: dict[str, int] = {}
    for line in result if isinstance(result, list) else []:
        match = _STAT.match(line) if isinstance(line, str) else None
        if match and match.group(1) in COUNTED_EVENTS:
            counters[match.group(1)] = int(match.group(2))
    return counters
