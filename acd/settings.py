"""Engine settings: plain frozen dataclasses mirroring ``callcenter.config``.

They can be built from the application's configuration models (``from_config``) without this
package importing ``callcenter``: the conversion reads attributes by name, so any object with
the same fields works (a pydantic model, a dataclass, a ``types.SimpleNamespace``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from acd.errors import SettingsError

__all__ = [
    "STRATEGIES",
    "WHEN_NO_AGENTS",
    "FINAL_TREATMENTS",
    "DEFAULT_NOT_READY_REASONS",
    "PHONE_OFFLINE",
    "OverflowSettings",
    "QueueSettings",
    "AgentSettings",
    "AcdSettings",
    "normalize_skills",
]

STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "least_talk_time")
WHEN_NO_AGENTS = ("join", "refuse", "overflow")
# After-call work (Genesys's modes): a fixed time; a fixed time the agent may extend; until the
# disposition is saved; none (the agent is available at once, the disposition stays owed).
AFTER_CALL_WORK = ("timed", "timed_extendable", "until_disposed", "optional")
FINAL_TREATMENTS = ("callback", "voicemail", "hangup")
DEFAULT_NOT_READY_REASONS = ("break", "lunch", "training", "meeting", "after_call_work", "no_answer")
PHONE_OFFLINE = "phone_offline"
"""The reason an agent whose phone is not registered is not ready (always known: the center sets it)."""
_QUEUE_TARGET = re.compile(r"^queue:([A-Za-z0-9_.-]+)$")


def normalize_skills(skills: Mapping[str, int] | Iterable[tuple[str, int]] | None, where: str = "skills") -> dict[str, int]:
    """Return ``{skill: level}`` sorted by skill name; levels must be integers 1-5."""
    if skills is None:
        return {}
    items = skills.items() if isinstance(skills, Mapping) else skills
    out: dict[str, int] = {}
    for name, level in items:
        if not isinstance(name, str) or not name:
            raise SettingsError(f"{where}: skill names must be non-empty strings, got {name!r}")
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
            raise SettingsError(f"{where}.{name}: level must be an integer from 1 to 5, got {level!r}")
        out[name] = level
    return dict(sorted(out.items()))


def _number(value: Any, where: str, *, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{where}: must be a finite number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = "above" if strict else "at least"
        raise SettingsError(f"{where}: must be {relation} {minimum:g}, got {value!r}")
    return float(value)


def _get(obj: Any, name: str, default: Any) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


_ABSENT = object()


def _given(cls: type, config: Any) -> dict[str, Any]:
    """The fields of dataclass ``cls`` that ``config`` sets (attributes or mapping keys): defaults live in ``cls`` only."""
    found = {f.name: _get(config, f.name, _ABSENT) for f in fields(cls)}
    return {name: value for name, value in found.items() if value is not _ABSENT}


@dataclass(frozen=True, slots=True)
class OverflowSettings:
    """Where a call goes after ``after_seconds`` of waiting (or at once when it cannot join).

    ``target`` is ``"queue:NAME"``, ``"callback"`` (offer the caller a callback that keeps their
    place), ``"voicemail"`` or ``"hangup"``.
    """

    after_seconds: float = 600.0
    target: str = "callback"

    def __post_init__(self) -> None:
        object.__setattr__(self, "after_seconds", _number(self.after_seconds, "overflow.after_seconds", strict=True))
        if not isinstance(self.target, str) or not (self.target in FINAL_TREATMENTS or _QUEUE_TARGET.match(self.target)):
            raise SettingsError(
                f"overflow.target: must be 'queue:NAME', 'callback', 'voicemail' or 'hangup', got {self.target!r}"
            )

    @property
    def target_queue(self) -> str | None:
        """The queue id for a ``queue:NAME`` target, else ``None``."""
        match = _QUEUE_TARGET.match(self.target)
        return match.group(1) if match else None

    def to_dict(self) -> dict[str, Any]:
        return {"after_seconds": self.after_seconds, "target": self.target}


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Routing rules of one queue (see ``QueueConfig`` in the application configuration)."""

    strategy: str = "longest_idle"
    service_level_seconds: float = 20.0
    service_level_target: float = 0.8
    max_length: int = 0
    overflow: OverflowSettings | None = None
    when_no_agents: str = "join"
    leave_when_empty: bool = False
    wrapup_seconds: float = 30.0
    after_call_work: str = "timed"
    wrapup_extension_seconds: float = 30.0
    wrapup_max_extensions: int = 2
    ring_timeout_seconds: float = 15.0
    required_skills: Mapping[str, int] = field(default_factory=dict)
    relax_after_seconds: tuple[float, ...] = ()
    announce_every_seconds: float = 0.0
    short_abandon_seconds: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise SettingsError(f"strategy: must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.when_no_agents not in WHEN_NO_AGENTS:
            raise SettingsError(f"when_no_agents: must be one of {', '.join(WHEN_NO_AGENTS)}, got {self.when_no_agents!r}")
        sets = object.__setattr__
        sets(self, "service_level_seconds", _number(self.service_level_seconds, "service_level_seconds", strict=True))
        target = _number(self.service_level_target, "service_level_target", strict=True)
        if target > 1:
            raise SettingsError(f"service_level_target: must be a fraction in (0, 1], got {target!r}")
        sets(self, "service_level_target", target)
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 0:
            raise SettingsError(f"max_length: must be a whole number >= 0 (0 = unlimited), got {self.max_length!r}")
        if isinstance(self.overflow, Mapping):
            sets(self, "overflow", OverflowSettings(**self.overflow))
        elif self.overflow is not None and not isinstance(self.overflow, OverflowSettings):
            raise SettingsError(f"overflow: expected OverflowSettings or None, got {type(self.overflow).__name__}")
        if self.when_no_agents == "overflow" and self.overflow is None:
            raise SettingsError("when_no_agents: 'overflow' needs an overflow target")
        sets(self, "leave_when_empty", bool(self.leave_when_empty))
        sets(self, "wrapup_seconds", _number(self.wrapup_seconds, "wrapup_seconds"))
        if self.after_call_work not in AFTER_CALL_WORK:
            raise SettingsError(f"after_call_work: must be one of {', '.join(AFTER_CALL_WORK)}, "
                                f"got {self.after_call_work!r}")
        sets(self, "wrapup_extension_seconds", _number(self.wrapup_extension_seconds, "wrapup_extension_seconds",
                                                       strict=True))
        if isinstance(self.wrapup_max_extensions, bool) or not isinstance(self.wrapup_max_extensions, int) \
                or self.wrapup_max_extensions < 0:
            raise SettingsError(f"wrapup_max_extensions: must be a whole number >= 0, got {self.wrapup_max_extensions!r}")
        sets(self, "ring_timeout_seconds", _number(self.ring_timeout_seconds, "ring_timeout_seconds", strict=True))
        sets(self, "required_skills", normalize_skills(self.required_skills, "required_skills"))
        relax = tuple(_number(v, "relax_after_seconds", strict=True) for v in self.relax_after_seconds)
        if any(b <= a for a, b in zip(relax, relax[1:])):
            raise SettingsError(f"relax_after_seconds: must be increasing, e.g. [30, 90], got {list(relax)}")
        sets(self, "relax_after_seconds", relax)
        sets(self, "announce_every_seconds", _number(self.announce_every_seconds, "announce_every_seconds"))
        if self.short_abandon_seconds is not None:
            sets(self, "short_abandon_seconds", _number(self.short_abandon_seconds, "short_abandon_seconds"))
        sets(self, "name", str(self.name or ""))

    @property
    def short_abandon_threshold(self) -> float:
        """Abandons at or below this wait are "short" (defaults to the service-level threshold)."""
        return self.service_level_seconds if self.short_abandon_seconds is None else self.short_abandon_seconds

    @classmethod
    def from_config(cls, config: Any) -> QueueSettings:
        """Build from a ``QueueConfig``-shaped object (attributes or mapping keys); what it lacks keeps the defaults above."""
        given = _given(cls, config)
        overflow = given.get("overflow")
        if overflow is not None and not isinstance(overflow, OverflowSettings):
            given["overflow"] = OverflowSettings(**_given(OverflowSettings, overflow))
        if "required_skills" in given:
            given["required_skills"] = dict(given["required_skills"] or {})
        if "relax_after_seconds" in given:
            given["relax_after_seconds"] = tuple(given["relax_after_seconds"] or ())
        if "name" in given:
            given["name"] = given["name"] or ""
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "service_level_seconds": self.service_level_seconds,
            "service_level_target": self.service_level_target,
            "max_length": self.max_length,
            "overflow": self.overflow.to_dict() if self.overflow else None,
            "when_no_agents": self.when_no_agents,
            "leave_when_empty": self.leave_when_empty,
            "wrapup_seconds": self.wrapup_seconds,
            "after_call_work": self.after_call_work,
            "wrapup_extension_seconds": self.wrapup_extension_seconds,
            "wrapup_max_extensions": self.wrapup_max_extensions,
            "ring_timeout_seconds": self.ring_timeout_seconds,
            "required_skills": dict(self.required_skills),
            "relax_after_seconds": list(self.relax_after_seconds),
            "announce_every_seconds": self.announce_every_seconds,
            "short_abandon_seconds": self.short_abandon_seconds,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueueSettings:
        return cls.from_config(data)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """One agent: skills (level 1-5) and the queues it joins at login."""

    skills: Mapping[str, int] = field(default_factory=dict)
    queues: tuple[str, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "skills", normalize_skills(self.skills))
        queues = self.queues
        if isinstance(queues, str):
            raise SettingsError(f"queues: expected a list of queue ids, got the string {queues!r}")
        object.__setattr__(self, "queues", tuple(dict.fromkeys(queues)))
        object.__setattr__(self, "name", str(self.name or ""))

    @classmethod
    def from_config(cls, config: Any) -> AgentSettings:
        return cls(
            skills=dict(_get(config, "skills", {}) or {}),
            queues=tuple(_get(config, "queues", ()) or ()),
            name=_get(config, "name", "") or "",
        )

    def to_dict(self) -> dict[str, Any]:
        return {"skills": dict(self.skills), "queues": list(self.queues), "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentSettings:
        return cls.from_config(data)


@dataclass(frozen=True, slots=True)
class AcdSettings:
    """Everything the engine needs: queues, agents, not-ready reasons and the missed-offer limit."""

    queues: Mapping[str, QueueSettings]
    agents: Mapping[str, AgentSettings] = field(default_factory=dict)
    not_ready_reasons: tuple[str, ...] = DEFAULT_NOT_READY_REASONS
    max_missed_offers: int = 2

    def __post_init__(self) -> None:
        queues: dict[str, QueueSettings] = {}
        for qid, queue in dict(self.queues).items():
            if not isinstance(qid, str) or not qid:
                raise SettingsError(f"queues: ids must be non-empty strings, got {qid!r}")
            if isinstance(queue, Mapping):
                queue = _prefixed(f"queues.{qid}", QueueSettings.from_dict, queue)
            if not isinstance(queue, QueueSettings):
                raise SettingsError(f"queues.{qid}: expected QueueSettings, got {type(queue).__name__}")
            queues[qid] = queue
        if not queues:
            raise SettingsError("queues: at least one queue is needed")
        agents: dict[str, AgentSettings] = {}
        for aid, agent in dict(self.agents).items():
            if not isinstance(aid, str) or not aid:
                raise SettingsError(f"agents: ids must be non-empty strings, got {aid!r}")
            if isinstance(agent, Mapping):
                agent = _prefixed(f"agents.{aid}", AgentSettings.from_dict, agent)
            if not isinstance(agent, AgentSettings):
                raise SettingsError(f"agents.{aid}: expected AgentSettings, got {type(agent).__name__}")
            for i, qid in enumerate(agent.queues):
                if qid not in queues:
                    known = ", ".join(sorted(queues))
                    raise SettingsError(f"agents.{aid}.queues.{i}: queue {qid!r} does not exist (known: {known})")
            agents[aid] = agent
        for qid, queue in queues.items():
            target = queue.overflow.target_queue if queue.overflow else None
            if target is not None:
                if target not in queues:
                    raise SettingsError(f"queues.{qid}.overflow.target: queue {target!r} does not exist")
                if target == qid:
                    raise SettingsError(f"queues.{qid}.overflow.target: a queue cannot overflow to itself")
        reasons = tuple(dict.fromkeys(self.not_ready_reasons))
        if isinstance(self.not_ready_reasons, str) or not all(isinstance(r, str) and r for r in reasons):
            raise SettingsError("not_ready_reasons: must be a list of non-empty strings")
        if "no_answer" not in reasons:
            raise SettingsError("not_ready_reasons: must include 'no_answer' (used after missed offers)")
        missed = self.max_missed_offers
        if isinstance(missed, bool) or not isinstance(missed, int) or missed < 1:
            raise SettingsError(f"max_missed_offers: must be a whole number >= 1, got {missed!r}")
        object.__setattr__(self, "queues", queues)
        object.__setattr__(self, "agents", agents)
        object.__setattr__(self, "not_ready_reasons", reasons)

    @classmethod
    def from_config(cls, settings: Any) -> AcdSettings:
        """Build from the application's ``Settings`` (``.queues``, ``.agents``, ``.acd``)."""
        acd = _get(settings, "acd", None)
        queues = {qid: _prefixed(f"queues.{qid}", QueueSettings.from_config, q) for qid, q in dict(_get(settings, "queues", {})).items()}
        agents = {aid: _prefixed(f"agents.{aid}", AgentSettings.from_config, a) for aid, a in dict(_get(settings, "agents", {})).items()}
        reasons = tuple(_get(acd, "not_ready_reasons", DEFAULT_NOT_READY_REASONS)) if acd is not None else DEFAULT_NOT_READY_REASONS
        return cls(
            queues=queues,
            agents=agents,
            not_ready_reasons=reasons if PHONE_OFFLINE in reasons else (*reasons, PHONE_OFFLINE),
            max_missed_offers=_get(acd, "max_missed_offers", 2) if acd is not None else 2,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "queues": {qid: q.to_dict() for qid, q in self.queues.items()},
            "agents": {aid: a.to_dict() for aid, a in self.agents.items()},
            "not_ready_reasons": list(self.not_ready_reasons),
            "max_missed_offers": self.max_missed_offers,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AcdSettings:
        return cls(
            queues={qid: _prefixed(f"queues.{qid}", QueueSettings.from_dict, q) for qid, q in data.get("queues", {}).items()},
            agents={aid: _prefixed(f"agents.{aid}", AgentSettings.from_dict, a) for aid, a in data.get("agents", {}).items()},
            not_ready_reasons=tuple(data.get("not_ready_reasons", DEFAULT_NOT_READY_REASONS)),
            max_missed_offers=data.get("max_missed_offers", 2),
        )


def _prefixed(prefix: str, build: Any, value: Any) -> Any:
    try:
        return build(value)
    except SettingsError as exc:
        raise SettingsError(f"{prefix}.{exc}") from None
    except TypeError as exc:
        raise SettingsError(f"{prefix}: {exc}") from None
