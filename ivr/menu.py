"""The menu file model (``config/ivr.toml``): pydantic models, parsing and key-path errors.

Format reference: ``docs/ivr.md``. Every node is a table under ``[menus.ID]`` whose ``type``
(default ``menu``) picks its kind. Parsing checks shapes and values; cross references
(targets, queues, prompts, reachability) are the checker's job (:mod:`ivr.check`), so one run
reports all of them at once.
"""

from __future__ import annotations

import re
import tomllib
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from ivr.errors import MenuError
from ivr.hours import BusinessHours
from ivr.ports import TIERS
from ivr.speech import SAY_KINDS

NODE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
PROMPT_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
VARIABLE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DOTTED = r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?"
_SAY_ITEM = re.compile(r"^\{(" + "|".join(SAY_KINDS) + r"):(" + _DOTTED + r")\}$")
_TEMPLATE_ITEM = re.compile(r"^(?=[a-z{])(?:[a-z0-9_]|\{" + _DOTTED + r"\})+$")
_PLACEHOLDER = re.compile(r"\{(" + _DOTTED + r")\}")
DTMF = "0123456789*#"


# ------------------------------------------------------------------------------ prompt items


def parse_prompt_item(item: str) -> tuple[str, str, tuple[str, ...]]:
    """``welcome`` -> ("prompt", "welcome", ()); ``{money:order.amount}`` -> ("say", "money", ("order.amount",));
    ``order_status_{order.status}`` -> ("template", "order_status_{order.status}", ("order.status",)).

    Raises ValueError for anything else.
    """
    if PROMPT_ID.match(item):
        return ("prompt", item, ())
    match = _SAY_ITEM.match(item)
    if match:
        return ("say", match.group(1), (match.group(2),))
    if _TEMPLATE_ITEM.match(item) and "{" in item:
        return ("template", item, tuple(_PLACEHOLDER.findall(item)))
    raise ValueError(
        f"{item!r} is not a prompt item: use a prompt id (welcome), a spoken value "
        f"({{digits:VAR}}, {{number:VAR}}, {{money:VAR}}, {{date:VAR}}, {{time:VAR}}) or a prompt id "
        f"with a variable in it (order_status_{{order.status}})"
    )


def fill_template(item: str, values: dict[str, Any]) -> str | None:
    """Substitute ``{var}`` placeholders; None when a variable is unset. Values are made id-safe."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None:
            missing = True
            return ""
        return re.sub(r"[^a-z0-9_]", "_", str(value).lower())

    text = _PLACEHOLDER.sub(substitute, item)
    return None if missing else text


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _prompt_item(value: str) -> str:
    parse_prompt_item(value)
    return value


PromptItem = Annotated[str, AfterValidator(_prompt_item)]
PromptList = Annotated[list[PromptItem], BeforeValidator(_as_list)]


def _node_id(value: str) -> str:
    if not isinstance(value, str) or not NODE_ID.match(value):
        raise ValueError(f"{value!r} is not a node id (letters, digits, '_' or '-', starting with a letter)")
    return value


Target = Annotated[str, BeforeValidator(_node_id)]


def _dtmf(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1 or value not in DTMF:
        raise ValueError(f"{value!r} is not a DTMF key (one of 0-9, * or #)")
    return value


DtmfKey = Annotated[str, BeforeValidator(_dtmf)]


def _switch(value: Any) -> bool:
    # pydantic would take "yes", "off" or 1 for a bool; a switch in a menu file is TOML true or false
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false (no quotes), not {value!r}")
    return value


Switch = Annotated[bool, BeforeValidator(_switch)]
Seconds = Annotated[float, Field(gt=0, le=300)]
Priority = Annotated[int, Field(ge=0, le=10)]
SkillLevel = Annotated[int, Field(ge=1, le=5)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Node(_Model):
    label: str = Field("", description="a short description shown by the simulator and the checker")


def _variable(value: str) -> str:
    if not VARIABLE.match(value):
        raise ValueError(f"{value!r} is not a variable name (lower-case letters, digits and '_')")
    return value


def _tiers(value: dict[str, Any]) -> dict[str, Any]:
    for key in value:
        if key not in TIERS:
            raise ValueError(f"unknown tier {key!r}; tiers are {', '.join(TIERS)}")
    return value


VariableName = Annotated[str, AfterValidator(_variable)]


# ----------------------------------------------------------------------------------- nodes


class MenuNode(_Node):
    """Play a prompt and branch on one key."""

    type: Literal["menu"] = "menu"
    prompt: PromptList
    options: dict[DtmfKey, Target] = Field(min_length=1)
    timeout: Seconds | None = None
    retries: int | None = Field(None, ge=0, le=10)
    invalid_prompt: PromptList | None = None
    timeout_prompt: PromptList | None = None
    on_failure: Target | None = None
    repeat_key: DtmfKey | None = None
    back_key: DtmfKey | None = None
    barge_in: bool | None = None
    type_ahead: Switch | None = Field(None, description="take keys typed ahead at once instead of playing the prompt")


class CollectNode(_Node):
    """Collect several keys into a variable, validate them, then go on."""

    type: Literal["collect"]
    prompt: PromptList
    variable: VariableName
    min_length: int = Field(1, ge=1, le=32)
    max_length: int = Field(16, ge=1, le=32)
    terminator: DtmfKey | Literal[""] = "#"
    first_digit_timeout: Seconds | None = None
    inter_digit_timeout: Seconds | None = None
    pattern: str | None = Field(None, description="regular expression the whole entry must match")
    check: Literal["luhn", "mod11", "hhmm"] | None = None
    sensitive: bool = Field(False, description="keep the digits out of the call's path record")
    next: Target
    retries: int | None = Field(None, ge=0, le=10)
    invalid_prompt: PromptList | None = None
    timeout_prompt: PromptList | None = None
    on_failure: Target | None = None
    barge_in: bool | None = None
    type_ahead: Switch | None = Field(None, description="take keys typed ahead at once instead of playing the prompt")

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _lengths(self) -> CollectNode:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} is above max_length {self.max_length}")
        if self.check == "hhmm" and not self.min_length <= 4 <= self.max_length:
            raise ValueError("check = 'hhmm' needs 4 digits: make min_length <= 4 <= max_length")
        return self


class PlayNode(_Node):
    """Say something (prompts and looked-up values), then go on.

    With ``type_ahead`` (default on) keys pressed while it plays are kept for the next menu or
    collect node, and with ``barge_in`` (default on) the first of them also cuts it short: callers
    who know the menu need not sit through the greeting. Switch either off for a notice every
    caller must hear in full.
    """

    type: Literal["play"]
    prompt: PromptList = Field(min_length=1)
    next: Target
    type_ahead: Switch | None = Field(None, description="keep keys pressed while it plays for the next menu")
    barge_in: bool | None = Field(None, description="with type_ahead: a key also stops the prompt")


class LookupNode(_Node):
    """Ask the self-service port and branch on the answer."""

    type: Literal["lookup"]
    lookup: Literal["order_status", "warranty", "balance"]
    input: str | None = Field(None, description="variable holding the key (not used by 'balance')")
    by: Literal["order", "serial"] = Field("order", description="warranty: the key is an order or a serial number")
    prompt: PromptList = Field(default_factory=list, description="played while waiting")
    timeout: Seconds = 5.0
    found: Target
    not_found: Target
    failed: Target | None = Field(None, description="the lookup failed or timed out; default: not_found")

    @model_validator(mode="after")
    def _input(self) -> LookupNode:
        if self.lookup != "balance" and not self.input:
            raise ValueError(f"lookup {self.lookup!r} needs input = VARIABLE (the key to look up)")
        if self.input is not None:
            _variable(self.input)
        return self


class HoursNode(_Node):
    """Branch on business hours (the center's, or this node's own ``hours``)."""

    type: Literal["hours"]
    open: Target
    closed: Target
    holiday: Target | None = Field(None, description="closed because of a holiday; default: closed")
    hours: BusinessHours | None = None


class LanguageNode(_Node):
    """Switch the prompt language, then go on."""

    type: Literal["language"]
    language: str
    next: Target


class CallerNode(_Node):
    """Branch on who is calling (the caller-ID lookup made when the call started)."""

    type: Literal["caller"]
    blacklisted: Target | None = None
    tiers: Annotated[dict[str, Target], AfterValidator(_tiers)] = Field(default_factory=dict)
    known: Target | None = Field(None, description="a customer not matched by tiers; default: unknown")
    unknown: Target


class QueueNode(_Node):
    """Route to an ACD queue (ends the IVR)."""

    type: Literal["queue"]
    queue: str
    priority: Priority = 5
    skills: dict[str, SkillLevel] = Field(default_factory=dict, description="required skills {skill = level}")
    language_skill: int = Field(0, ge=0, le=5, description="also require the caller's language at this level (0: no)")
    tier_priority: Annotated[dict[str, Priority], AfterValidator(_tiers)] | None = None
    tier_queue: Annotated[dict[str, str], AfterValidator(_tiers)] | None = None
    prompt: PromptList = Field(default_factory=list)


class CallbackNode(_Node):
    """Request a callback: keep the caller's place in the queue, or at a time (ends the IVR)."""

    type: Literal["callback"]
    queue: str
    keep_place: bool = False
    at: str | None = Field(None, description="'next_opening' or a variable with HHMM the caller entered")
    number_variable: str | None = Field(None, description="variable with a number the caller entered")
    confirm: PromptList = Field(default_factory=list)
    outside_hours: Target | None = Field(None, description="the chosen time is outside business hours")
    no_number: Target | None = Field(None, description="no number to call back (caller ID withheld)")

    @model_validator(mode="after")
    def _when(self) -> CallbackNode:
        if self.keep_place == (self.at is not None):
            raise ValueError("give exactly one of keep_place = true or at = 'next_opening' | VARIABLE")
        if self.at not in (None, "next_opening"):
            _variable(self.at)
        if self.number_variable is not None:
            _variable(self.number_variable)
        return self


class TransferNode(_Node):
    """Transfer the call elsewhere (ends the IVR)."""

    type: Literal["transfer"]
    destination: str = Field(pattern=r"^(sips?:[^\s]+|\+?[0-9*#]{2,32})$")
    prompt: PromptList = Field(default_factory=list)


class HangupNode(_Node):
    """Say goodbye and hang up (ends the IVR)."""

    type: Literal["hangup"]
    prompt: PromptList = Field(default_factory=list)
    reason: Literal["self_service", "closed", "blacklisted", "failed"] = "self_service"

    @field_validator("reason", mode="before")
    @classmethod
    def _old_blocked(cls, value: Any) -> Any:
        # "blocked" is the front's word for "every worker full"; a blacklisted caller is its own outcome
        return "blacklisted" if value == "blocked" else value


Node = Annotated[
    Union[
        MenuNode, CollectNode, PlayNode, LookupNode, HoursNode, LanguageNode, CallerNode, QueueNode, CallbackNode,
        TransferNode, HangupNode,
    ],
    Field(discriminator="type"),
]
NODE_TYPES = ("menu", "collect", "play", "lookup", "hours", "language", "caller", "queue", "callback", "transfer", "hangup")
TERMINAL_TYPES = ("queue", "callback", "transfer", "hangup")
INPUT_TYPES = ("menu", "collect", "play", "lookup")  # nodes that wait for the caller or the driver


# ------------------------------------------------------------------------------- top level


class Defaults(_Model):
    """Values every node uses unless it sets its own."""

    timeout: Seconds = 6.0
    retries: int = Field(2, ge=0, le=10)
    invalid_prompt: PromptList = Field(default_factory=list)
    timeout_prompt: PromptList = Field(default_factory=list)
    on_failure: Target | None = Field(None, description="after the last retry; unset: hang up")
    repeat_key: DtmfKey | None = Field(None, description="key that plays a menu again")
    back_key: DtmfKey | None = Field(None, description="key that returns to the previous menu")
    barge_in: bool = True
    type_ahead: Switch = True
    first_digit_timeout: Seconds = 8.0
    inter_digit_timeout: Seconds = 4.0
    tier_priority: Annotated[dict[str, Priority], AfterValidator(_tiers)] = Field(default_factory=dict)
    tier_queue: Annotated[dict[str, str], AfterValidator(_tiers)] = Field(default_factory=dict)


class CallerSettings(_Model):
    lookup: bool = Field(True, description="look the caller ID up in the customer database when the call starts")
    timeout: Seconds = 3.0
    blacklisted: Target | None = Field(None, description="where blacklisted callers go instead of start")


class Limits(_Model):
    max_steps: int = Field(60, ge=5, le=1000, description="nodes a caller may pass through")
    max_seconds: float = Field(900, gt=0, le=7200, description="time a caller may spend in the IVR")
    on_limit: Target | None = Field(None, description="where a caller over a limit goes; unset: hang up")


class IvrMenu(_Model):
    """A whole menu file."""

    version: Literal[1] = 1
    start: Target
    voices: dict[str, str] = Field(default_factory=lambda: {"zh": "cmn", "en": "en"})
    defaults: Defaults = Field(default_factory=Defaults)
    caller: CallerSettings = Field(default_factory=CallerSettings)
    limits: Limits = Field(default_factory=Limits)
    prompts: dict[str, dict[str, str]] = Field(min_length=1)
    menus: dict[str, Node] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("menus"), dict):
            menus = {}
            for key, node in data["menus"].items():
                if isinstance(node, dict) and "type" not in node:
                    node = {"type": "menu", **node}
                menus[key] = node
            data = {**data, "menus": menus}
        return data

    @field_validator("menus")
    @classmethod
    def _ids(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            _node_id(key)
        return value

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for language, table in value.items():
            if not re.match(r"^[a-z]{2,3}$", language):
                raise ValueError(f"{language!r} is not a language code such as 'zh' or 'en'")
            for key, text in table.items():
                if not PROMPT_ID.match(key):
                    raise ValueError(f"prompts.{language}.{key}: prompt ids use lower-case letters, digits and '_'")
                if not text.strip():
                    raise ValueError(f"prompts.{language}.{key}: the text is empty")
        return value

    @property
    def languages(self) -> list[str]:
        return list(self.prompts)

    def setting(self, node: Any, name: str) -> Any:
        """The node's own value, or the one from ``[defaults]``."""
        value = getattr(node, name, None)
        return getattr(self.defaults, name) if value is None else value


# --------------------------------------------------------------------------------- parsing


def _key_path(loc: tuple[Any, ...], tree: dict[str, Any]) -> str:
    parts = [str(p) for p in loc]
    # a node's fields are reported under its type tag by pydantic (menus.main.menu.prompt)
    if len(parts) >= 3 and parts[0] == "menus":
        menus = tree.get("menus") if isinstance(tree, dict) else None
        node = menus.get(parts[1]) if isinstance(menus, dict) else None
        node_type = node.get("type", "menu") if isinstance(node, dict) else None
        if parts[2] == node_type:
            del parts[2]
    return ".".join(p for p in parts if p != "[key]")


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (see docs/ivr.md for the keys of this table)"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown node type {error['ctx']['tag']!r} (types: {', '.join(NODE_TYPES)})"
    if kind == "union_tag_not_found":
        return "a node needs a type"
    return str(error["msg"]).removeprefix("Value error, ")


def parse_menu(tree: dict[str, Any], source: str = "ivr.toml") -> IvrMenu:
    """Validate a parsed TOML tree; problems raise :class:`MenuError` with key paths."""
    try:
        return IvrMenu.model_validate(tree)
    except ValidationError as exc:
        problems = [(_key_path(tuple(e["loc"]), tree), _message(e)) for e in exc.errors()]
        raise MenuError(source, problems) from None


def parse_menu_text(text: str, source: str = "ivr.toml") -> IvrMenu:
    """Parse TOML text (no file access); syntax errors become :class:`MenuError` too."""
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MenuError(source, [("", f"TOML syntax error: {exc}")]) from None
    return parse_menu(tree, source)
