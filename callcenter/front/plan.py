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

With ``phones`` (a :class:`~callcenter.front.phones.PhonesPlan`), agent phones register here too:
REGISTER from ``phones.allow`` with digest auth (HA1 per user, from a file in the run directory),
failures counted and blocked, bindings in memory, kept alive with OPTIONS, every change pushed to
the control process over evapi; a new INVITE from a worker goes to the phone registered as its
Request-URI user, at the address it registered from (see ``route[REGISTRAR]`` and
``route[PHONE_CALL]`` in the generated script, and docs/sip-front.md "Agent phones").
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.front.phones import CREDENTIALS_TABLE, EVENT_TAG, PhonesPlan

__all__ = [
    "CALL_QUEUE", "COUNTED_EVENTS", "DISPATCHER_SET", "EVENT_QUEUE", "FRONT_HEADROOM", "LATE_OFFER_EXTRA",
    "MAX_MESSAGE", "PHONE_COUNTED_EVENTS", "REPORT_EVENTS", "SOURCE_HEADER", "TAG_ALLOWANCE", "WORKER_MAX_PACKET",
    "Destination", "FrontPlan", "FrontReport", "dispatcher_list", "kamailio_cfg", "parse_counters", "parse_report",
    "sanity_checks",
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
PHONE_COUNTED_EVENTS = ("auth_failed", "auth_blocked")
"""The same for phones (only with ``phones``): failed authentications, REGISTERs refused while blocked."""
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
_PHONE_MODULES = ("db_text", "htable", "usrloc", "registrar", "auth", "nathelper", "evapi")
_SIPPING_BFLAG = 7
"""Any branch flag: nathelper sends SIP OPTIONS (not 4 zero bytes) only when one is configured."""


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
    phones: PhonesPlan | None = None
    """Agent phones registering here; None: the front only relays calls to the workers."""

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
        if self.phones is not None and not self.phones.event_token:
            raise ValueError("phones.event_token is empty: events would go to any local client")

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

    @property
    def credentials_path(self) -> Path:
        """The phones' credentials (user -> HA1), a db_text table loaded into htable ``ccphones`` at start."""
        return self.run_dir / CREDENTIALS_TABLE


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
    assert event in COUNTED_EVENTS + PHONE_COUNTED_EVENTS
    return f'update_stat("{STAT_PREFIX}{event}", "+1");'


def _report(event: str, **fields: str) -> str:
    """Script line queueing one report; values from the network must be given hex-encoded."""
    body = " ".join(f"{k}={v}" for k, v in fields.items())
    return f'mq_add("{REPORT_EVENTS[event]}", "{event}", "{body}");'


def _event(kind: str, **fields: str) -> str:
    """Script line pushing one phone event to the evapi clients that sent the token (values from
    the network must be given hex-encoded)."""
    body = " ".join(f"{k}={v}" for k, v in fields.items())
    return f'evapi_multicast("{kind} {body}", "{EVENT_TAG}");'


def _binding_event(kind: str, profile: str, index: str | None, expires: str) -> str:
    at = f"[{index}]" if index else ""
    return _event(kind, user=f"$(ulc({profile}=>aor){{s.encode.hexa}})",
                  contact=f"$(ulc({profile}=>addr){at}{{s.encode.hexa}})",
                  received=f"$(ulc({profile}=>received){at}{{s.encode.hexa}})", expires=expires,
                  ua=f"$(ulc({profile}=>user_agent){at}{{s.encode.hexa}})")


def _phone_parts(plan: FrontPlan) -> dict[str, str]:
    """The pieces of the script for agent phones, each inserted where the script names it; all empty
    without ``plan.phones`` (the script is then exactly the one without phones)."""
    ph = plan.phones
    if ph is None:
        return dict.fromkeys(("modules", "stats", "params", "classify", "allowed", "register", "call", "dialog",
                              "keepalive", "routes"), "")
    nets = ",".join(str(ipaddress.ip_network(n, strict=False)) for n in ph.allow)
    realm = ph.domain
    ds = DISPATCHER_SET
    nat_sdp = 'has_body("application/sdp") && nat_uac_test("8") && nat_uac_test("256")'
    stats = "".join(f'\nmodparam("statistics", "variable", "{STAT_PREFIX}{e}")' for e in PHONE_COUNTED_EVENTS)
    blocked_source = _event("blocked", user="", contact="", received="$(si{s.encode.hexa})",
                            expires=str(ph.auth_block_seconds), ua="")
    blocked_user = _event("blocked", user="$(au{s.encode.hexa})", contact="", received="$(si{s.encode.hexa})",
                          expires=str(ph.auth_block_seconds), ua="")
    params = f"""

# agent phones: registrar in memory, credentials (HA1) from {plan.credentials_path.name}, keep-alive
# OPTIONS to every binding, failed authentications counted, events to the control process (evapi)
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "use_domain", 0)
modparam("usrloc", "timer_interval", {min(10, ph.keepalive_interval)})
modparam("registrar", "min_expires", {ph.min_expires})
modparam("registrar", "max_expires", {ph.max_expires})
modparam("registrar", "default_expires", {ph.max_expires})
modparam("registrar", "max_contacts", {ph.max_contacts})
modparam("registrar", "case_sensitive", 1)
modparam("registrar", "received_avp", "$avp(cc_rcv)")
modparam("nathelper", "received_avp", "$avp(cc_rcv)")
modparam("nathelper", "natping_interval", {ph.keepalive_interval})
modparam("nathelper", "ping_nated_only", 0)
modparam("nathelper", "sipping_bflag", {_SIPPING_BFLAG})
modparam("nathelper", "sipping_from", "{ph.keepalive_from}")
modparam("nathelper", "keepalive_timeout", {ph.keepalive_timeout})
modparam("nathelper", "append_sdp_oldmediaip", 0)
# a nonce is good for the Request-URI and source address it was issued to (a captured REGISTER
# replayed from elsewhere is challenged again)
modparam("auth", "auth_checks_register", 9)
modparam("htable", "db_url", "text://{plan.run_dir}")
modparam("htable", "htable", "ccphones=>size=10;dbtable={plan.credentials_path.name}")
modparam("htable", "htable", "ccfail=>size=8;autoexpire={ph.auth_block_seconds};initval=0")
modparam("htable", "htable", "ccblock=>size=8;autoexpire={ph.auth_block_seconds}")
modparam("evapi", "bind_addr", "127.0.0.1:{ph.event_port}")
modparam("evapi", "netstring_format", 1)
modparam("evapi", "max_clients", 16)"""
    classify = """$var(phone) = 0;
	if (is_method("REGISTER")) {
		$var(phone) = 1;
	} else if (has_totag() && $dlg_var(cc_phone) == "1") {
		# in a call to an agent's phone (its BYE, a re-INVITE)
		$var(phone) = 2;
	}
	"""
    allowed = f' && ($var(phone) == 0 || !is_in_subnet("$si", "{nets}"))'
    register = """

	if (is_method("REGISTER")) {
		route(REGISTRAR);
		exit;
	}"""
    call = f"""

	if (ds_is_from_list("{ds}")) {{
		# a worker dials an agent's phone registered here
		route(PHONE_CALL);
	}}"""
    dialog = f"""		if ($var(phone) == 2) {{
			if (ds_is_from_list("{ds}")) {{
				# towards an agent's phone: at the address it answered from
				if ($du == $null) {{
					handle_ruri_alias();
				}}
				if (is_method("INVITE")) {{
					t_on_reply("PHONE_REPLY");
				}}
			}} else {{
				force_rport();
				if (is_present_hf("Contact")) {{
					add_contact_alias();
				}}
				if ({nat_sdp}) {{
					fix_nated_sdp("2");
				}}
			}}
			# no dispatcher load to release: not a call the front placed on a worker
			route(RELAY);
		}}
"""
    keepalive = f"""		# answers to the keep-alive OPTIONS sent to agent phones go on to nathelper, which takes them
		if (is_method("OPTIONS") && $fu == "{ph.keepalive_from}") {{
			return;
		}}
"""
    routes = f"""
route[REGISTRAR] {{
	# Agent phones: from phones.allow only (the trunk allow-list does not apply), with the digest
	# credentials of the AOR they register.
	if (!is_in_subnet("$si", "{nets}")) {{
		{_count("forbidden")}
		sl_send_reply("403", "Forbidden");
		exit;
	}}
	# answers go where the request came from, not to a private Via
	force_rport();
	if ($sht(ccblock=>ip:$si) != $null || $sht(ccblock=>user:$tU) != $null) {{
		# blocked after repeated failures: refused whatever the credentials until the block expires
		{_count("auth_blocked")}
		sl_send_reply("403", "Forbidden");
		exit;
	}}
	if (!has_credentials("{realm}")) {{
		www_challenge("{realm}", "1");
		exit;
	}}
	# One set of credentials, of a known user, for its own AOR. The HA1 is looked up by $au, which
	# reads Proxy-Authorization first: a second header could pair one user's HA1 with another name.
	if ($hdrc(Authorization) != 1 || $hdrc(Proxy-Authorization) != 0 || $au != $tU
			|| $sht(ccphones=>$au) == $null) {{
		route(AUTH_FAILED);
	}}
	# HA1 (flag 1); the auth user must be the To and From user (check 1): a phone cannot register
	# or unregister another agent's AOR
	if (!pv_auth_check("{realm}", "$sht(ccphones=>$au)", "1", "1")) {{
		$var(auth) = $rc;
		if ($var(auth) == -4 || $var(auth) == -6) {{
			# a stale nonce (one from before a restart, or of another source) or a reused one
			www_challenge("{realm}", "17");
			exit;
		}}
		route(AUTH_FAILED);
	}}
	$sht(ccfail=>user:$au) = $null;
	# reached at its source address: a Contact with a private address is a phone behind NAT
	fix_nated_register();
	$var(before) = 0;
	if (reg_fetch_contacts("location", "$tu", "before")) {{
		$var(before) = $(ulc(before=>count));
	}}
	save("location", "0x02");
	$var(saved) = $rc;
	if ($var(saved) == -2) {{
		# more bindings than phones.max_contacts for this AOR
		sl_send_reply("403", "Too Many Contacts");
		exit;
	}}
	# the registrar's answer: 200 with the bindings, or its own error
	reg_send_reply();
	if ($var(saved) > 0) {{
		route(PHONE_EVENTS);
	}}
	exit;
}}

route[PHONE_EVENTS] {{
	# What this REGISTER changed, read back from the location table: the bindings it removed, and
	# those it added or refreshed (they carry its Call-ID and CSeq).
	$var(after) = 0;
	if (reg_fetch_contacts("location", "$tu", "after")) {{
		$var(after) = $(ulc(after=>count));
	}}
	$var(i) = 0;
	while ($var(i) < $var(before)) {{
		$var(gone) = 1;
		$var(j) = 0;
		while ($var(j) < $var(after)) {{
			if ($(ulc(after=>ruid)[$var(j)]) == $(ulc(before=>ruid)[$var(i)])) {{
				$var(gone) = 0;
			}}
			$var(j) = $var(j) + 1;
		}}
		if ($var(gone) == 1) {{
			{_binding_event("unregistered", "before", "$var(i)", "0")}
		}}
		$var(i) = $var(i) + 1;
	}}
	$var(j) = 0;
	while ($var(j) < $var(after)) {{
		if ($(ulc(after=>callid)[$var(j)]) == $ci && $(ulc(after=>cseq)[$var(j)]) == $cs) {{
			$var(expires) = $(ulc(after=>expires)[$var(j)]) - $Ts;
			{_binding_event("registered", "after", "$var(j)", "$var(expires)")}
		}}
		$var(j) = $var(j) + 1;
	}}
}}

route[AUTH_FAILED] {{
	# A wrong password, an unknown user or another user's AOR: counted per source address and per
	# known username; at the limit the source or the user is blocked for phones.auth_block_seconds.
	{_count("auth_failed")}
	if ($shtinc(ccfail=>ip:$si) >= {ph.source_limit}) {{
		$sht(ccblock=>ip:$si) = 1;
		$sht(ccfail=>ip:$si) = $null;
		{blocked_source}
	}}
	if ($au != $null && $sht(ccphones=>$au) != $null) {{
		if ($shtinc(ccfail=>user:$au) >= {ph.auth_failures}) {{
			$sht(ccblock=>user:$au) = 1;
			$sht(ccfail=>user:$au) = $null;
			{blocked_user}
		}}
	}}
	sl_send_reply("403", "Forbidden");
	exit;
}}

route[PHONE_CALL] {{
	# A worker dials an agent's phone (sip:USER@<front>): every binding of USER, each at the address
	# its REGISTER came from.
	if (!lookup("location")) {{
		sl_send_reply("480", "Temporarily Unavailable");
		exit;
	}}
	record_route();
	dlg_manage();
	$dlg_var(cc_phone) = "1";
	t_on_reply("PHONE_REPLY");
	t_on_failure("PHONE_FAILED");
	route(RELAY);
}}

onreply_route[PHONE_REPLY] {{
	# From an agent's phone: a Contact that is not where the reply came from gets an alias of that
	# address (handle_ruri_alias sends the worker's ACK, BYE and re-INVITEs there), and a private
	# media address becomes that address too, so the worker's RTP reaches the phone.
	if (is_present_hf("Contact")) {{
		add_contact_alias();
	}}
	if ({nat_sdp}) {{
		fix_nated_sdp("2");
	}}
}}

failure_route[PHONE_FAILED] {{
	# the phone's final answer (busy, declined, no answer) goes back to the worker as it is
	exit;
}}

event_route[usrloc:contact-expired] {{
	# not refreshed in time, or no answer to the keep-alives for phones.keepalive_timeout
	{_binding_event("expired", "exp", None, "0")}
}}

event_route[evapi:connection-new] {{
	# a client slot keeps the tag of its previous client: a new one starts without
	evapi_set_tag("new");
}}

event_route[evapi:message-received] {{
	# Events go only to clients that sent the token. Anything else leaves the client without a tag
	# (it receives nothing): evapi_close() here leaves the connection's watcher behind in 5.6, and
	# the next client on that descriptor blocked the dispatcher, events and all.
	if ($evapi(msg) == "{ph.event_token}") {{
		evapi_set_tag("{EVENT_TAG}");
		evapi_multicast("ready", "{EVENT_TAG}");
	}} else {{
		evapi_set_tag("new");
	}}
}}
"""
    return dict(modules="".join(f'\nloadmodule "{m}.so"' for m in _PHONE_MODULES), stats=stats, params=params,
                classify=classify, allowed=allowed, register=register, call=call, dialog=dialog,
                keepalive=keepalive, routes=routes)


def kamailio_cfg(plan: FrontPlan) -> str:
    """The complete ``kamailio.cfg`` for ``plan``."""
    listen_host = f"[{plan.listen_address}]" if ":" in plan.listen_address else plan.listen_address
    checks, uri_checks = sanity_checks()
    modules = "\n".join(f'loadmodule "{m}.so"' for m in _MODULES)
    stats = "\n".join(f'modparam("statistics", "variable", "{STAT_PREFIX}{e}")' for e in COUNTED_EVENTS)
    subnets = _subnets(plan)
    allowed = f'is_in_subnet("$si", "{subnets}")' if subnets else "0"
    call = dict(ci=_hexa("ci"), ani=_hexa("fU"), dnis=_hexa("rU"), src="$si:$sp")
    ph = _phone_parts(plan)
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
{modules}{ph["modules"]}

modparam("ctl", "binrpc", "unix:{plan.control_socket}")
modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "{plan.rpc_socket}")
modparam("jsonrpcs", "dgram_mode", 0600)
modparam("jsonrpcs", "pretty_format", 0)

# reports for the supervisor, fetched over the JSON-RPC socket (mqueue.fetch)
modparam("mqueue", "mqueue", "name={CALL_QUEUE};size={REPORT_QUEUE_SIZE}")
modparam("mqueue", "mqueue", "name={EVENT_QUEUE};size={REPORT_QUEUE_SIZE}")
{stats}{ph["stats"]}

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
modparam("dispatcher", "reload_delta", 0){ph["params"]}

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
	}}{ph["register"]}

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
	}}{ph["call"]}

	route(DISPATCH);
}}

route[REQINIT] {{{pike}

	if (!mf_process_maxfwd_header("10")) {{
		sl_send_reply("483", "Too Many Hops");
		exit;
	}}

	{ph["classify"]}if (!ds_is_from_list("{DISPATCHER_SET}") && !{allowed}{ph["allowed"]}) {{
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
{ph["dialog"]}		if (is_method("BYE")) {{
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
{ph["keepalive"]}		drop;
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
{ph["routes"]}"""


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
    """The script's counters (``forbidden``, ``malformed``, ``too_large``; with phones ``auth_failed`` and
    ``auth_blocked``) in a ``stats.get_statistics`` result for ``script:`` (lines like
    ``script:ccfront_forbidden = 3``); others are ignored."""
    counters: dict[str, int] = {}
    for line in result if isinstance(result, list) else []:
        match = _STAT.match(line) if isinstance(line, str) else None
        if match and match.group(1) in COUNTED_EVENTS + PHONE_COUNTED_EVENTS:
            counters[match.group(1)] = int(match.group(2))
    return counters
