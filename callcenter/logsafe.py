"""Network-controlled text made safe for log files and terminals.

Anything a caller can choose (SIP display names, URIs, headers, whole messages quoted by Kamailio
or pjsip) may carry terminal escapes (ESC, BEL), line breaks that forge extra log lines, bidi
overrides or bytes that are not UTF-8. :func:`log_safe` turns it into one printable line: control
and format characters become ``\\x1b``, ``\\u202e`` and the like, undecodable bytes ``\\xNN``, a
backslash ``\\\\`` (so an escape in the output always means one in the input), and the result is
cut to ``limit`` characters. It is for logs; screens have their own (screenpop.render.safe_text).
"""

from __future__ import annotations

import unicodedata

__all__ = ["LOG_LIMIT", "log_safe"]

LOG_LIMIT = 300
"""Characters of network text kept per log line: enough to diagnose, too few to flood a log."""

_ESCAPE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def log_safe(value: object, limit: int = LOG_LIMIT) -> str:
    """``value`` (bytes, str or anything else) as one escaped line of at most ``limit`` characters."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value[: limit * 4 + 4])
        text = raw.decode("utf-8", "surrogateescape")
        total = len(value)
        cut_input = total > len(raw)
    else:
        text = value if isinstance(value, str) else str(value)
        cut_input = len(text) > limit * 4
        text = text[: limit * 4]
    out: list[str] = []
    size = 0
    complete = True
    for ch in text:
        piece = _escape(ch)
        if size + len(piece) > limit:
            complete = False
            break
        out.append(piece)
        size += len(piece)
    if not complete or cut_input:
        return "".join(out) + "…"
    return "".join(out)


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return ch if 0x20 <= code < 0x7F else f"\\x{code:02x}"
    if unicodedata.category(ch) in _ESCAPE_CATEGORIES:
        return f"\\x{code:02x}" if code <= 0xFF else (f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return ch
