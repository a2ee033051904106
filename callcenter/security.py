"""Agent PIN hashing with scrypt from the standard library.

Stored form: ``scrypt$N$r$p$salt$hash`` (salt and hash base64), so the cost can be raised later
without invalidating old hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

_N, _R, _P = 2**14, 8, 1
_FORMAT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def hash_pin(pin: str) -> str:
    if not pin:
        raise ValueError("a PIN cannot be empty")
    salt = os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(
        ["scrypt", str(_N), str(_R), str(_P), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def is_pin_hash(value: str) -> bool:
    return bool(_FORMAT.match(value))


def verify_pin(pin: str, stored: str) -> bool:
    match = _FORMAT.match(stored)
    if not match:
        return False
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    salt = base64.b64decode(match.group(4))
    expected = base64.b64decode(match.group(5))
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**26)
    return hmac.compare_digest(digest, expected)


def redact_url(url: str) -> str:
    """Hide the password in a database or redis URL before it reaches a log or a message."""
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)
