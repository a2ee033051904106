"""Telephony: media worker processes (the only place that imports ``pjsua2``) and the pool.

``admission`` holds the leg budget and rate limit (pure), ``sizing`` the elastic pool's sizing
policy (pure), ``pool`` the asyncio :class:`~callcenter.telephony.pool.WorkerPool` and its in-memory twin
:class:`~callcenter.telephony.pool.FakeTelephony`, ``worker`` the worker process itself; the
messages they exchange are :mod:`callcenter.core.telephony_protocol`. Importing this package loads
none of them: the names below other than :class:`TelephonyError` are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from callcenter.telephony.errors import TelephonyError

__all__ = [
    "WorkerPool",
    "FakeTelephony",
    "WorkerInfo",
    "SizingRules",
    # errors
    "TelephonyError",
    "WorkerStartError",
]

_ON_FIRST_USE = {
    "WorkerPool": "callcenter.telephony.pool",
    "FakeTelephony": "callcenter.telephony.pool",
    "WorkerInfo": "callcenter.telephony.pool",
    "WorkerStartError": "callcenter.telephony.pool",
    "SizingRules": "callcenter.telephony.sizing",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
