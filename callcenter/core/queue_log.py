"""Queue events in Asterisk's queue_log vocabulary and line format, so existing report tools read them.

Line format: ``epoch|callid|queuename|agent|event|data1|data2|data3``; the meaning of the data
fields per event follows Asterisk's documentation (e.g. CONNECT: holdtime|bridged channel|ringtime).
"""

from __future__ import annotations

import datetime as dt

ENTERQUEUE = "ENTERQUEUE"
CONNECT = "CONNECT"
COMPLETECALLER = "COMPLETECALLER"
COMPLETEAGENT = "COMPLETEAGENT"
ABANDON = "ABANDON"
EXITWITHTIMEOUT = "EXITWITHTIMEOUT"
EXITWITHKEY = "EXITWITHKEY"
EXITEMPTY = "EXITEMPTY"
RINGNOANSWER = "RINGNOANSWER"
AGENTLOGIN = "AGENTLOGIN"
AGENTLOGOFF = "AGENTLOGOFF"
PAUSE = "PAUSE"
UNPAUSE = "UNPAUSE"
RINGCANCELED = "RINGCANCELED"
ATTENDEDTRANSFER = "ATTENDEDTRANSFER"
BLINDTRANSFER = "BLINDTRANSFER"

EVENTS = (
    ENTERQUEUE, CONNECT, COMPLETECALLER, COMPLETEAGENT, ABANDON, EXITWITHTIMEOUT, EXITWITHKEY, EXITEMPTY,
    RINGNOANSWER, AGENTLOGIN, AGENTLOGOFF, PAUSE, UNPAUSE, RINGCANCELED, BLINDTRANSFER,
)


def _field(value: object) -> str:
    """Fields are pipe-separated single lines: caller-controlled text must not add fields or lines."""
    text = "" if value is None else str(value)
    return text.replace("|", "/").replace("\r", " ").replace("\n", " ")


def line(at: dt.datetime, call_id: str | None, queue: str | None, agent: str | None, event: str, *data: object) -> str:
    fields = [str(int(at.timestamp())), _field(call_id or "NONE"), _field(queue or "NONE"), _field(agent or "NONE"),
              event, *(_field(d) for d in data)]
    return "|".join(fields)


CLOSING = frozenset({COMPLETECALLER, COMPLETEAGENT, ABANDON, EXITWITHTIMEOUT, EXITWITHKEY, EXITEMPTY,
                     BLINDTRANSFER})
"""Events that end a call in queue_log: each call that entered a queue gets exactly one of them."""
