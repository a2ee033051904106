"""The Kamailio front's configuration, generated from ours (pure: no I/O, no clock).

:class:`FrontPlan` holds what the front needs to know: where it listens, the media workers behind
it (one dispatcher destination each, with the load it may send there), who may call in, and the
flood threshold. :func:`kamailio_cfg` and :func:`dispatcher_list` turn a plan into the two files
Kamailio reads; :func:`parse_log_line` reads back the one-line reports the generated script writes
on stderr (``CCFRONT <event> key=value ...``).

What the generated script does, in order, for every request:

1. **pike**: a source address sending more than ``pike_density`` requests in 2 s is dropped until
   it calms down (first detection reported as ``flood``). The workers' own addresses are exempt.
2. ``Max-Forwards`` (483 at zero).
3. **trunk allow-list**: a request whose source is neither a worker nor inside ``trunk_allow``
   gets 403 (reported as ``forbidden``).
4. **sanity**: malformed requests get the sanity module's 4xx before any worker sees them
   (reported as ``malformed``).
5. In-dialog requests follow the Record-Route (``loose_route``); a trunk may only reach a worker
   this way, never relay elsewhere. BYE releases the call's load.
6. A new INVITE gets ``X-Src-Addr`` (the trunk's address, for the control process's allow-list
   check; a copy sent by the caller is removed), a Record-Route, and goes to the least-loaded
   worker that has room (dispatcher algorithm 10, ``maxload`` = conversations per worker). No
   worker with room: 503 with ``Retry-After`` (reported as ``blocked reason=full``).
7. A worker that answers 408, 486, 488 or 5xx, or does not answer at all, hands the call to the
   next worker with room, up to ``failover_limit`` workers in all (on 486, 5xx or no answer it is
   also marked inactive until its next OPTIONS probe succeeds, at most a second). When none is
   left, the caller gets 503 with ``Retry-After`` (``blocked reason=exhausted``). The load is
   confirmed on the 200 OK and released on BYE or on the final failure.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DISPATCHER_SET", "LOG_MARK", "SOURCE_HEADER", "Destination", "FrontPlan", "FrontReport",
    "dispatcher_list", "kamailio_cfg", "parse_log_line", "sanity_checks",
]

DISPATCHER_SET = 1
LOG_MARK = "CCFRONT"
SOURCE_HEADER = "X-Src-Addr"
"""Header the front adds to every new INVITE: the address (``ip:port``) the request came from."""

# sanity module checks: R-URI SIP version (1), R-URI scheme (2), required headers (4), CSeq method
# (32) and value (64), Content-Length (128), Expires (256), Proxy-Require (512), parseable URIs
# (1024), duplicated tags (4096), first Via (16384). Digest checks are left out: nobody
# authenticates here.
_SANITY_CHECKS = 1 + 2 + 4 + 32 + 64 + 128 + 256 + 512 + 1024 + 4096 + 16384
_SANITY_URIS = 1 + 2 + 4  # Request-URI, From, To
_MODULES = (
    "kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "xlog",
    "sanity", "ctl", "jsonrpcs", "dialog", "dispatcher", "pike", "ipops",
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


def _report(event: str, **fields: str) -> str:
    body = " ".join(f"{k}={v}" for k, v in fields.items())
    return f'xlog("L_NOTICE", "{LOG_MARK} {event} {body}\\n");'


def kamailio_cfg(plan: FrontPlan) -> str:
    """The complete ``kamailio.cfg`` for ``plan``."""
    listen_host = f"[{plan.listen_address}]" if ":" in plan.listen_address else plan.listen_address
    checks, uri_checks = sanity_checks()
    modules = "\n".join(f'loadmodule "{m}.so"' for m in _MODULES)
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
debug=2
log_stderror=yes
log_prefix=""
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
			{_report("forbidden", src="$si:$sp", method=_hexa("rm"))}
			sl_send_reply("403", "Forbidden");
		}}
		exit;
	}}

	if (!sanity_check("{checks}", "{uri_checks}")) {{
		# the sanity module has sent its 4xx reply already
		{_report("malformed", src="$si:$sp")}
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
	if ((t_branch_timeout() && !t_branch_replied()) || t_check_status("486|5[0-9][0-9]")) {{
		# Down, or full (its 503/486): out of the rotation until its next OPTIONS probe answers
		# (at most a second). A worker that refuses sheds its load here, so it would otherwise be
		# the least loaded and draw every new call. Not on 488: that is about the caller's offer.
		ds_mark_dst("ip");
	}}
	if (t_check_status("408|486|488|5[0-9][0-9]") || t_branch_timeout()) {{
		# ds_next_dst() drops the current entry: only call it when another one exists, or the
		# load of the current one could no longer be released
		if ($xavp(_dsdst_[1]=>uri) != $null) {{
			if (ds_next_dst()) {{
				t_on_failure("FAILOVER");
				t_on_reply("INVITE_REPLY");
				route(RELAY);
				exit;
			}}
		}}
		ds_load_unset();
		{_report("blocked", reason="exhausted", status="$T_reply_code", **call)}
		append_to_reply("Retry-After: {plan.retry_after}\\r\\n");
		t_reply("503", "Service Unavailable");
		exit;
	}}
	ds_load_unset();
}}
"""


@dataclass(frozen=True)
class FrontReport:
    """One ``CCFRONT`` line from Kamailio's stderr, decoded."""

    event: str
    fields: dict[str, str]


# Only the script's own xlog lines: at the start, or after Kamailio's "N(pid) NOTICE: <script>: "
# prefix, so a core message that quotes network text cannot pass for a report.
_LINE = re.compile(r"^(?:\s*\d+\(\d+\) NOTICE: <script>: )?" + LOG_MARK + r" ([a-z_]+)((?: [a-z_]+=[^ ]*)*)\s*$")
_HEXA = {"ci", "ani", "dnis", "method"}


def parse_log_line(line: str) -> FrontReport | None:
    """The report carried by a Kamailio log line, or None for any other line.

    Values that come from the network (Call-ID, From and Request-URI users, method) are written
    hex-encoded by the script, so a hostile value cannot forge fields; they are decoded here
    (invalid UTF-8 replaced).
    """
    match = _LINE.match(line)
    if not match:
        return None
    fields: dict[str, str] = {}
    for item in match.group(2).split():
        key, _, value = item.partition("=")
        if key in _HEXA:
            try:
                value = bytes.fromhex(value).decode("utf-8", "replace")
            except ValueError:
                value = ""
        fields[key] = value
    return FrontReport(match.group(1), fields)
