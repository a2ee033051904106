"""Pure outbound dialling logic: may a lead be dialled now, and why not. No I/O, no clock reads."""

from dialer.errors import DialerError, RulesError
from dialer.policy import (
    ABANDON_LOCKOUT, BLACKLISTED, DIAL, DNC_FLAG, DNC_LIST, DNC_REQUESTED, FREQUENCY_DAY, FREQUENCY_GAP, HOLIDAY,
    OUTSIDE_HOURS, REASONS, UNKNOWN_ZONE, Attempt, CallingRules, Decision, Lead, decide,
)

__all__ = [
    "ABANDON_LOCKOUT", "BLACKLISTED", "DIAL", "DNC_FLAG", "DNC_LIST", "DNC_REQUESTED", "FREQUENCY_DAY",
    "FREQUENCY_GAP", "HOLIDAY", "OUTSIDE_HOURS", "REASONS", "UNKNOWN_ZONE", "Attempt", "CallingRules", "Decision",
    "DialerError", "Lead", "RulesError", "decide",
]
