"""Pure IVR logic: menus, sessions and business hours. No I/O, no clock reads.

A session turns events (``CallStarted``, ``DigitReceived``, ``PromptFinished``, ``TimedOut``,
``LookupCompleted``) into actions (``Play``, ``Collect``, ``StartTimer``, ``RouteToQueue``, ...);
the time of each event is passed in. Menus are parsed from TOML trees (``parse_menu``) and
checked with ``check_menu``. Lookups go through :class:`SelfServicePort`.
"""

from ivr.actions import (
    TERMINAL_ACTIONS,
    Action,
    Collect,
    Hangup,
    Lookup,
    Play,
    RequestCallback,
    RouteToQueue,
    SetLanguage,
    StartTimer,
    Transfer,
    describe,
    to_jsonable,
)
from ivr.check import Finding, check_menu
from ivr.errors import IvrError, MenuError, SessionError
from ivr.events import (
    CallerHungUp,
    CallInfo,
    CallStarted,
    DigitReceived,
    DigitsEntered,
    Event,
    LookupCompleted,
    PromptFinished,
    TimedOut,
)
from ivr.hours import BusinessHours, Holiday
from ivr.menu import IvrMenu, parse_menu, parse_menu_text
from ivr.ports import (
    AccountBalance,
    CallerRecord,
    InMemorySelfService,
    OrderStatus,
    SelfServicePort,
    WarrantyStatus,
    run_lookup,
)
from ivr.session import IvrRecord, IvrSession, PathStep, luhn_valid, mod11_valid
from ivr.speech import FRAGMENTS, SpeechError, say_date, say_digits, say_money, say_number, say_time

__all__ = [
    # session
    "IvrSession",
    "IvrRecord",
    "PathStep",
    "CallInfo",
    # events
    "Event",
    "CallStarted",
    "DigitReceived",
    "DigitsEntered",
    "PromptFinished",
    "TimedOut",
    "LookupCompleted",
    "CallerHungUp",
    # actions
    "Action",
    "Play",
    "Collect",
    "StartTimer",
    "SetLanguage",
    "Lookup",
    "RouteToQueue",
    "RequestCallback",
    "Transfer",
    "Hangup",
    "TERMINAL_ACTIONS",
    "describe",
    "to_jsonable",
    # menus
    "IvrMenu",
    "parse_menu",
    "parse_menu_text",
    "check_menu",
    "Finding",
    # hours
    "BusinessHours",
    "Holiday",
    # lookups
    "SelfServicePort",
    "InMemorySelfService",
    "run_lookup",
    "CallerRecord",
    "OrderStatus",
    "WarrantyStatus",
    "AccountBalance",
    # speech and validation
    "FRAGMENTS",
    "say_number",
    "say_digits",
    "say_money",
    "say_date",
    "say_time",
    "luhn_valid",
    "mod11_valid",
    # errors
    "IvrError",
    "MenuError",
    "SessionError",
    "SpeechError",
]
