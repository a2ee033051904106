"""Caller keys: turning whatever a trunk or a spreadsheet says into E.164, with ``phonenumbers``.

Caller IDs are untrusted text: anything that is not a readable number gives None, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

_SIP_URI = re.compile(r"^(?:sips?|tel):([^@;>]+)", re.IGNORECASE)
_MAX_RAW = 64
_NUMBER_TYPES = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.VOIP: "voip",
}


@dataclass(frozen=True, slots=True)
class NormalizedNumber:
    e164: str
    kind: str


def caller_digits(raw: str) -> str:
    """The user part of a SIP/tel URI, or the text itself, stripped of visual separators."""
    text = raw.strip()
    match = _SIP_URI.match(text)
    if match:
        text = match.group(1)
    return re.sub(r"[\s().\-/]", "", text)


def normalize(raw: str | None, default_region: str, *, strict: bool = True) -> NormalizedNumber | None:
    """E.164 for a number written any common way (``+86 139 1234 5678``, ``0086...``, ``021-...``).

    ``strict`` demands a valid number for its region (imports); caller IDs from a trunk use
    ``strict=False`` and accept any possible number, since carriers send numbers that the
    metadata does not know yet.
    """
    if not raw or len(raw) > _MAX_RAW:
        return None
    text = caller_digits(raw)
    if not text or not re.fullmatch(r"\+?\d{3,20}", text):
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, default_region)
    except NumberParseException:
        return None
    # number_type() is what is_valid_number() computes anyway: one metadata walk instead of three.
    number_type = phonenumbers.number_type(parsed)
    valid = number_type != PhoneNumberType.UNKNOWN
    if strict and not valid:
        return None
    if not strict and not phonenumbers.is_possible_number(parsed):
        return None
    return NormalizedNumber(
        e164=phonenumbers.format_number(parsed, PhoneNumberFormat.E164),
        kind=_NUMBER_TYPES.get(number_type, "other"),
    )


def display(e164: str, default_region: str) -> str:
    """National format for numbers of the home region, international for the rest."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except NumberParseException:
        return e164
    if phonenumbers.region_code_for_number(parsed) == default_region:
        return phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL)
