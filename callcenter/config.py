"""Configuration: one validated model built from defaults, a TOML file, the environment and flags.

Precedence, lowest first: built-in defaults < file < ``CALLCENTER_*`` environment < command-line
flags. Validation happens once; any problem becomes a :class:`ConfigError` whose message names
the file (or variable or flag), the key path, the bad value and what is allowed. Secret values
are never echoed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from acd.settings import OverflowSettings, QueueSettings
from callcenter.errors import ConfigError
from callcenter.security import is_pin_hash, redact_url
from ivr.hours import BusinessHours

DEFAULT_CONFIG_PATH = Path("config/callcenter.toml")
ENV_PREFIX = "CALLCENTER_"
ENV_CONFIG_FILE = "CALLCENTER_CONFIG"

STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "least_talk_time")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_SECRET_KEYS = {"pin_hash", "password", "token", "secret"}
_URL_KEYS = {"url"}


SkillLevel = Annotated[int, Field(ge=1, le=5, description="skill level, 1 (basic) to 5 (expert)")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _networks(value: list[str]) -> list[str]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an address or network such as '203.0.113.0/24'") from None
    return value


class CenterConfig(_Section):
    name: str = "Demo Contact Center"
    locale: str = Field("zh_CN", description="locale for generated data and formatting, e.g. zh_CN or en_US")
    default_region: str = Field("CN", description="ISO 3166 region used to read numbers written without +CC")
    repeat_caller_hours: float = Field(
        24.0, gt=0, le=2160, description="the screen pop flags a repeat caller who called within this many hours"
    )

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a phone region; use an ISO 3166 code such as 'CN' or 'US'")
        return value


class SipConfig(_Section):
    listen_address: str = "127.0.0.1"
    port: int = Field(5060, ge=1, le=65535)
    worker_base_port: int = Field(5070, ge=1, le=65535, description="first SIP port of the media workers")
    rtp_port_start: int = Field(20000, ge=1024, le=65535)
    rtp_port_end: int = Field(29999, ge=1024, le=65535)
    front: Literal["auto", "kamailio", "none"] = "auto"
    front_max_load: int = Field(
        0, ge=0, le=2, description="calls the front hands one worker at a time; 0: as many as a worker admits (2)"
    )
    front_pike_density: int = Field(
        300, ge=0, le=1_000_000,
        description="requests one source address may send the front in 2 s before its traffic is dropped; 0: no limit",
    )
    workers: int = Field(
        0, ge=0, le=256,
        description="N > 0: a fixed pool of N workers; 0: an elastic pool of up to max_legs / 4 workers (with the front)",
    )
    max_legs: int = Field(16, ge=2, le=4096)
    media_clock_rate: Literal[8000, 16000] = Field(
        8000, description="the media workers' conference clock in Hz: 8000 for G.711 trunks, 16000 for G.722",
    )
    spare_legs: int = Field(
        4, ge=2, le=4096,
        description="elastic pool: free legs always ready for new calls (a caller takes 2: its own and its agent's)",
    )
    worker_idle_retire_seconds: float = Field(
        300.0, ge=1, le=86400, description="elastic pool: a worker with no call for this long is stopped"
    )
    worker_lead_seconds: float = Field(
        2.0, ge=0, le=60,
        description="elastic pool: room kept, beyond spare_legs, for this many seconds of new legs at the recent rate",
    )
    trunk_allow: list[str] = Field(default_factory=lambda: ["127.0.0.1/32"])
    outbound_uri: str = Field(
        "sip:{number}@127.0.0.1:5060", description="where callbacks dial customers; {number} is E.164 without +"
    )
    caller_id: str = Field("4008001234", description="the number customers see on callbacks")
    rtp_timeout_seconds: float = Field(
        30.0, ge=0, le=3600,
        description="a talking leg that receives no RTP for this long is hung up (the far end vanished); 0: never",
    )
    session_expires_seconds: int = Field(
        90, ge=0, le=86400,
        description="SIP session timer (RFC 4028): offered when dialling and used with every peer that supports it, "
                    "so a call whose far end is gone ends by itself; 0: off, else at least 90 (pjsip's minimum)",
    )
    queue_log: str | None = Field("var/queue_log", description="Asterisk-format queue_log file; unset: database only")

    @field_validator("outbound_uri")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{number}" not in value or not re.match(r"^sips?:", value):
            raise ValueError("must be a SIP URI template containing {number}, e.g. 'sip:{number}@trunk.example'")
        return value

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @field_validator("trunk_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _networks(value)

    @field_validator("session_expires_seconds")
    @classmethod
    def _session_expires(cls, value: int) -> int:
        if 0 < value < 90:
            raise ValueError("must be 0 (off) or at least 90: SIP stacks refuse shorter session timers (RFC 4028 "
                             "Min-SE)")
        return value

    @model_validator(mode="after")
    def _rtp_range(self) -> SipConfig:
        if self.rtp_port_end <= self.rtp_port_start:
            raise ValueError("rtp_port_end must be above rtp_port_start")
        if self.workers == 0 and self.spare_legs > self.max_legs:
            raise _CrossReferenceErrors([(("spare_legs",), (
                f"more than max_legs ({self.max_legs}): the elastic pool (workers = 0) can never keep that many "
                "legs free; lower spare_legs or raise max_legs"))])
        return self


class DatabaseConfig(_Section):
    url: str = "sqlite:///var/callcenter.db"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("must start with sqlite:/// or postgresql:// (e.g. postgresql+psycopg://user@host/db)")
        return value


class RedisConfig(_Section):
    url: str | None = Field(None, description="redis://host:port/db; reserved for several nodes, read by nothing yet (live state is in memory)")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value and not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None


class PhonesConfig(_Section):
    """Agents' phones that register at the SIP front (an agent's ``phone`` at ``domain``)."""

    domain: str = Field(
        "center", description="SIP domain and digest realm: a phone registers as sip:USER@domain; an agent whose "
                              "phone is sip:USER@domain is reached wherever that phone registered",
    )
    allow: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0", "::/0"], description="networks phones may register from",
    )
    min_expires: int = Field(60, ge=10, le=3600, description="shortest registration accepted (s)")
    max_expires: int = Field(3600, ge=60, le=86400, description="longest registration granted (s)")
    max_contacts: int = Field(3, ge=1, le=10, description="bindings one phone account may hold at once")
    keepalive_seconds: int = Field(20, ge=5, le=600, description="OPTIONS keepalive to every registered phone")
    keepalive_timeout_seconds: int = Field(
        60, ge=10, le=3600, description="a phone that answers no keepalive for this long is taken offline",
    )
    auth_failures: int = Field(5, ge=1, le=1000, description="failed digest logins before a source or user is blocked")
    auth_block_seconds: int = Field(60, ge=1, le=86400, description="how long such a block lasts")
    offline_not_ready: bool = Field(
        True, description="an agent whose phone goes offline is made not ready (reason phone_offline) at once; "
                          "false: only the sweep does, a few seconds later. Either way no call is offered to it",
    )
    ready_when_back: bool = Field(
        True, description="an agent made not ready because their phone went offline is ready again when it returns",
    )

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?", value):
            raise ValueError("must be a host name such as 'center' or 'pbx.example.com'")
        return value.lower()

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _networks(value)

    @model_validator(mode="after")
    def _expiry(self) -> "PhonesConfig":
        if self.max_expires < self.min_expires:
            raise ValueError("max_expires must be at least min_expires")
        return self


class RepairConfig(_Section):
    """The reconciliation sweep: agent states compared with the workers' legs and the phones' registrations."""

    sweep_seconds: float = Field(2.0, ge=0.5, le=60, description="how often the sweep runs; 0.5-60 s")
    grace_seconds: float = Field(
        3.0, ge=0.5, le=120,
        description="a divergence is repaired once it has lasted this long (events in flight settle first)",
    )
    max_wrap_up_seconds: float = Field(
        1800.0, ge=60, le=86400,
        description="a wrap-up longer than this ends (the disposition stays owed); timed ones end at their time",
    )


class CtiConfig(_Section):
    listen: str = "ws://127.0.0.1:8800"
    certificate: str | None = None
    private_key: str | None = None


class IvrConfig(_Section):
    menu_file: str = "config/ivr.toml"
    prompts_dir: str = "var/prompts"
    languages: list[str] = Field(default_factory=lambda: ["zh", "en"], min_length=1)
    default_language: str = "zh"
    ask_language: bool = Field(True, description="false: callers start in default_language, no language menu")
    fallback_queue: str = Field("general", description="where a caller goes when the IVR cannot continue")

    @model_validator(mode="after")
    def _default_in_languages(self) -> IvrConfig:
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} is not in languages {self.languages}")
        return self


class AcdConfig(_Section):
    not_ready_reasons: list[str] = Field(
        default_factory=lambda: ["break", "lunch", "training", "meeting", "after_call_work", "no_answer"]
    )
    max_missed_offers: int = Field(2, ge=1, le=20, description="ring-no-answers in a row before not ready")


# The routing defaults have one home, the ACD's own settings; the configuration shows them to users.
_QUEUE = QueueSettings()
_OVERFLOW = OverflowSettings()


class Overflow(_Section):
    after_seconds: int = Field(int(_OVERFLOW.after_seconds), ge=1, description="max wait before the overflow applies")
    target: str = Field(_OVERFLOW.target, description="'queue:NAME', 'callback' or 'hangup' (or 'voicemail')")

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if value in ("callback", "hangup", "voicemail") or re.match(r"^queue:[A-Za-z0-9_.-]+$", value):
            return value
        raise ValueError("must be 'queue:NAME', 'callback', 'voicemail' or 'hangup'")


class QueueConfig(_Section):
    name: str = Field("", description="display name; the table key is the queue's id")
    strategy: Literal["longest_idle", "round_robin", "fewest_calls", "least_talk_time"] = _QUEUE.strategy  # type: ignore[assignment]
    service_level_seconds: int = Field(int(_QUEUE.service_level_seconds), ge=1, le=3600)
    service_level_target: float = Field(_QUEUE.service_level_target, gt=0, le=1)
    max_length: int = Field(_QUEUE.max_length, ge=0, description="0 means unlimited")
    overflow: Overflow | None = None
    when_no_agents: Literal["join", "refuse", "overflow"] = _QUEUE.when_no_agents  # type: ignore[assignment]
    leave_when_empty: bool = _QUEUE.leave_when_empty
    wrapup_seconds: int = Field(int(_QUEUE.wrapup_seconds), ge=0, le=3600, description="after-call work time of the timed modes")
    after_call_work: Literal["timed", "timed_extendable", "until_disposed", "optional"] = Field(
        _QUEUE.after_call_work, description="timed: wrap-up for wrapup_seconds; timed_extendable: the agent may extend it; "
        "until_disposed: wrap-up until the disposition is saved; optional: available at once")
    wrapup_extension_seconds: int = Field(int(_QUEUE.wrapup_extension_seconds), ge=1, le=3600, description="one extension (timed_extendable)")
    wrapup_max_extensions: int = Field(_QUEUE.wrapup_max_extensions, ge=0, le=20, description="extensions per wrap-up (timed_extendable)")
    ring_timeout_seconds: int = Field(int(_QUEUE.ring_timeout_seconds), ge=3, le=300)
    required_skills: dict[str, SkillLevel] = Field(default_factory=dict)
    relax_after_seconds: list[int] = Field(
        default_factory=list, description="waits after which every required level drops by one"
    )
    callback_key: str | None = Field("9", description="key a waiting caller presses to be called back instead")

    @field_validator("callback_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value not in "0123456789*#"):
            raise ValueError("must be one key: 0-9, * or #")
        return value
    # The product announces by default; the engine alone (simulations, explanations) does not.
    announce_every_seconds: int = Field(60, ge=0, description="position/estimated-wait announcements; 0 turns off")

    @field_validator("relax_after_seconds")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(value, value[1:])) or any(v <= 0 for v in value):
            raise ValueError("must be positive and increasing, e.g. [30, 90]")
        return value


class RecordingConfig(_Section):
    enabled: bool = False
    directory: str = "var/recordings"


class SupervisorConfig(_Section):
    """The supervisor dashboard's alert thresholds and how often its feed is pushed."""

    wait_amber_seconds: int = Field(60, ge=1, description="a queue turns amber when its oldest caller waits longer")
    wait_red_seconds: int = Field(180, ge=1, description="... and red beyond this")
    sl_red_margin: float = Field(
        0.1, ge=0, le=1, description="amber below the queue's service-level target, red this far below it"
    )
    push_interval: float = Field(
        0.25, ge=0.05, le=1.0, description="seconds: changes are coalesced into at most one push per interval"
    )

    @model_validator(mode="after")
    def _ordered(self) -> "SupervisorConfig":
        if self.wait_red_seconds < self.wait_amber_seconds:
            raise ValueError("wait_red_seconds must be at least wait_amber_seconds")
        return self


class AgentConfig(_Section):
    name: str
    pin_hash: str = Field(description="scrypt hash from 'callcenter agents hash-pin'; never the PIN itself")
    phone: str = Field(
        description="the agent's phone: sip:USER@DOMAIN (phones.domain) for a phone that registers, or the "
                    "fixed SIP URI of a phone that does not, e.g. sip:1001@127.0.0.1:5080",
    )
    skills: dict[str, SkillLevel] = Field(default_factory=dict)
    queues: list[str] = Field(default_factory=list)
    auto_login: bool = False
    role: Literal["agent", "supervisor"] = "agent"

    @field_validator("pin_hash")
    @classmethod
    def _hashed(cls, value: str) -> str:
        if not is_pin_hash(value):
            raise ValueError("must be a PIN hash made by 'callcenter agents hash-pin', not a plain PIN")
        return value

    @field_validator("phone")
    @classmethod
    def _sip_uri(cls, value: str) -> str:
        if not re.match(r"^sips?:[^\s@]+@[^\s]+$", value):
            raise ValueError("must be a SIP URI such as 'sip:1001@127.0.0.1:5080'")
        return value



class DispositionConfig(_Section):
    label: str
    requires_callback: bool = False
    requires_note: bool = False
    outcome: Literal["resolved", "unresolved", "sale", "no_sale", "callback", "other"] = "other"


def _default_queues() -> dict[str, QueueConfig]:
    return {"general": QueueConfig(name="General")}


def _default_dispositions() -> dict[str, DispositionConfig]:
    return {
        "resolved": DispositionConfig(label="Resolved", outcome="resolved"),
        "callback": DispositionConfig(label="Call back", requires_callback=True, outcome="callback"),
        "other": DispositionConfig(label="Other", requires_note=True),
    }


class Settings(_Section):
    """The whole validated configuration."""

    center: CenterConfig = Field(default_factory=CenterConfig)
    sip: SipConfig = Field(default_factory=SipConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    cti: CtiConfig = Field(default_factory=CtiConfig)
    ivr: IvrConfig = Field(default_factory=IvrConfig)
    hours: BusinessHours = Field(default_factory=BusinessHours)
    acd: AcdConfig = Field(default_factory=AcdConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    phones: PhonesConfig = Field(default_factory=PhonesConfig)
    repair: RepairConfig = Field(default_factory=RepairConfig)
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)
    queues: dict[str, QueueConfig] = Field(default_factory=_default_queues)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    dispositions: dict[str, DispositionConfig] = Field(default_factory=_default_dispositions)

    @field_validator("queues", "agents", "dispositions")
    @classmethod
    def _ids(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not _ID.match(key):
                raise ValueError(f"id {key!r} may only use letters, digits, '_', '.', '-' (at most 32)")
        return value

    @field_validator("queues")
    @classmethod
    def _at_least_one_queue(cls, value: dict[str, QueueConfig]) -> dict[str, QueueConfig]:
        if not value:
            raise ValueError("at least one queue is needed")
        return value

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems: list[tuple[tuple[str, ...], str]] = []
        for qid, queue in self.queues.items():
            if queue.overflow and queue.overflow.target.startswith("queue:"):
                target = queue.overflow.target.split(":", 1)[1]
                if target not in self.queues:
                    problems.append((("queues", qid, "overflow", "target"), f"queue {target!r} does not exist"))
                elif target == qid:
                    problems.append((("queues", qid, "overflow", "target"), "a queue cannot overflow to itself"))
            if queue.when_no_agents == "overflow" and queue.overflow is None:
                problems.append((("queues", qid, "when_no_agents"), "'overflow' needs an [overflow] table"))
        for aid, agent in self.agents.items():
            for i, qid in enumerate(agent.queues):
                if qid not in self.queues:
                    known = ", ".join(sorted(self.queues))
                    problems.append((("agents", aid, "queues", str(i)), f"queue {qid!r} does not exist (known: {known})"))
        if self.ivr.fallback_queue not in self.queues:
            known = ", ".join(sorted(self.queues))
            problems.append((("ivr", "fallback_queue"), f"queue {self.ivr.fallback_queue!r} does not exist (known: {known})"))
        if "no_answer" not in self.acd.not_ready_reasons:
            problems.append((("acd", "not_ready_reasons"), "must include 'no_answer' (used after missed offers)"))
        users: dict[str, str] = {}
        for aid in self.agents:
            user = self.phone_user(aid)
            if user is None:
                continue
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}", user):
                problems.append((("agents", aid, "phone"), f"a registering phone's user {user!r} must start with a "
                                                            "letter or digit, then letters, digits, '_', '.', '+', '-' "
                                                            "(at most 32)"))
            elif user in users:
                problems.append((("agents", aid, "phone"), f"sip:{user}@{self.phones.domain} is agent "
                                                            f"{users[user]}'s phone already"))
            users[user] = aid
        if problems:
            raise _CrossReferenceErrors(problems)
        return self

    def phone_user(self, agent_id: str) -> str | None:
        """The SIP user an agent's phone registers as, or None for a fixed phone (not at ``[phones] domain``)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return None
        match = re.fullmatch(r"sips?:([^@;]+)@([^;:>]+)", agent.phone.strip())
        if match is None or match.group(2).lower() != self.phones.domain:
            return None
        return match.group(1)

    def queue_display_name(self, qid: str) -> str:
        queue = self.queues.get(qid)
        return (queue.name if queue and queue.name else qid) if queue else qid


class _CrossReferenceErrors(ConfigError, ValueError):
    """The cross-reference problems of one configuration, carried through pydantic to :func:`validate`.

    A :class:`ValueError` because pydantic turns only that (and ``AssertionError``) raised in a
    validator into a validation error; :func:`validate` unpacks ``problems`` into its message.
    """

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]):
        super().__init__("; ".join(msg for _, msg in problems))
        self.problems = problems


@dataclass
class LoadedConfig:
    """The settings plus where they came from, for messages and for ``config show``."""

    settings: Settings
    path: Path | None
    origins: dict[tuple[str, ...], str] = field(default_factory=dict)


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _parse_override_value(raw: str) -> Any:
    """Lists and tables are written as TOML (``["a", "b"]``); everything else stays a string for pydantic."""
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return raw
    return raw


def env_overrides(environ: Mapping[str, str]) -> dict[tuple[str, ...], tuple[str, Any]]:
    """``CALLCENTER_QUEUES__SALES__STRATEGY=x`` -> {("queues","sales","strategy"): (var name, "x")}.

    Only names with ``__`` are settings; ``CALLCENTER_CONFIG`` names the file.
    """
    found: dict[tuple[str, ...], tuple[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        if any(not part for part in path):
            continue
        found[path] = (name, _parse_override_value(raw))
    return found


def flag_overrides(assignments: list[str]) -> dict[tuple[str, ...], tuple[str, Any]]:
    """``--set queues.sales.strategy=round_robin`` values."""
    found: dict[tuple[str, ...], tuple[str, Any]] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        path = tuple(part.strip() for part in key.split("."))
        if not sep or not all(path):
            raise ConfigError(f"--set {item!r}: write it as KEY.PATH=VALUE, e.g. --set sip.port=5070")
        found[path] = (f"--set {key}", _parse_override_value(raw))
    return found


def _describe_value(path: tuple[str, ...], value: Any) -> str:
    last = path[-1] if path else ""
    if last in _SECRET_KEYS:
        return "(hidden)"
    if last in _URL_KEYS and isinstance(value, str):
        return repr(redact_url(value))
    if isinstance(value, (dict, list)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return repr(value)


def _format_problems(source: str, problems: list[tuple[tuple[str, ...], Any, str]], origins: dict) -> str:
    lines = [f"{source}: invalid configuration ({len(problems)} problem{'s' if len(problems) != 1 else ''})"]
    for path, value, message in problems:
        key = ".".join(path) or "(top level)"
        origin = next((o for p, o in origins.items() if path[: len(p)] == p), None)
        where = f" (from {origin})" if origin else ""
        shown = f" = {_describe_value(path, value)}" if value is not _MISSING else ""
        lines.append(f"  {key}{shown}{where}: {message}")
    lines.append("Fix the file (see the comments in config/callcenter.toml) and run 'callcenter config check'.")
    return "\n".join(lines)


_MISSING = object()


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    node = tree
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return _MISSING
    return node


def _pydantic_message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check the spelling; see config/callcenter.toml for the keys)"
    if error["type"] == "missing":
        return "required key is missing"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def validate(tree: dict[str, Any], source: str, origins: dict[tuple[str, ...], str] | None = None) -> Settings:
    origins = origins or {}
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        problems: list[tuple[tuple[str, ...], Any, str]] = []
        for error in exc.errors():
            context = error.get("ctx", {}).get("error")
            base = tuple(str(part) for part in error["loc"])
            if isinstance(context, _CrossReferenceErrors):
                for path, message in context.problems:
                    problems.append((base + path, _lookup(tree, base + path), message))
                continue
            problems.append((base, _lookup(tree, base), _pydantic_message(error)))
        raise ConfigError(_format_problems(source, problems, origins)) from None


def read_toml(path: Path, *, missing: str = "configuration file not found (copy config/callcenter.toml and edit it)") -> dict[str, Any]:
    """A TOML file as a dict; every way it can fail is a :class:`ConfigError` naming the file."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {missing}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def resolve_config_path(explicit: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get(ENV_CONFIG_FILE):
        return Path(environ[ENV_CONFIG_FILE])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: list[str] | None = None,
) -> LoadedConfig:
    """Build the settings: defaults < file < environment < ``--set`` flags."""
    environ = os.environ if environ is None else environ
    config_path = resolve_config_path(path, environ)
    tree: dict[str, Any] = read_toml(config_path) if config_path else {}
    origins: dict[tuple[str, ...], str] = {}
    for layer in (env_overrides(environ), flag_overrides(overrides or [])):
        for key_path, (origin, value) in layer.items():
            _set_path(tree, key_path, value)
            origins[key_path] = origin
    source = str(config_path) if config_path else "built-in defaults"
    return LoadedConfig(settings=validate(tree, source, origins), path=config_path, origins=origins)
