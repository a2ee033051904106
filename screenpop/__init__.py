"""Pure screen-pop logic: caller-key normalisation, customer-360 assembly and rich rendering."""

from screenpop.errors import ScreenpopError
from screenpop.numbers import display, normalize
from screenpop.pop import (
    REPEAT_HOURS,
    AgentCallback,
    CallContext,
    CustomerCandidate,
    PopKind,
    RecentContact,
    ScreenPop,
    choose_pop_kind,
    pop_kind,
)
from screenpop.profile import (
    CallbackSummary,
    CaseSummary,
    ContactSummary,
    CustomerProfile,
    OrderLine,
    OrderSummary,
)
from screenpop.render import render_call_context, render_pop, render_profile, safe_text
from screenpop.text import STATE_LABELS, format_duration
from screenpop.wire import (
    WireError,
    callback_from_wire,
    candidate_from_wire,
    contact_from_wire,
    pop_from_wire,
    profile_from_wire,
    to_wire,
)

__all__ = [
    # caller numbers
    "normalize",
    "display",
    # the pop
    "ScreenPop",
    "CallContext",
    "CustomerCandidate",
    "AgentCallback",
    "RecentContact",
    "PopKind",
    "pop_kind",
    "choose_pop_kind",
    "REPEAT_HOURS",
    # the customer profile
    "CustomerProfile",
    "OrderSummary",
    "OrderLine",
    "CaseSummary",
    "ContactSummary",
    "CallbackSummary",
    # rendering
    "safe_text",
    "render_profile",
    "render_pop",
    "render_call_context",
    # words and formats every screen shares
    "format_duration",
    "STATE_LABELS",
    # the CTI wire form
    "to_wire",
    "pop_from_wire",
    "profile_from_wire",
    "candidate_from_wire",
    "callback_from_wire",
    "contact_from_wire",
    # errors
    "ScreenpopError",
    "WireError",
]
