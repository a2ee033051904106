"""The SIP front: Kamailio in front of the media workers, configured from ours and supervised.

- :mod:`callcenter.front.plan` (pure): :class:`FrontPlan` and the generated ``kamailio.cfg`` and
  dispatcher list; the parsers of the reports and counters the routing script keeps for the
  supervisor.
- :mod:`callcenter.front.kamailio` (asyncio): :class:`KamailioFront`, the supervised Kamailio
  child process, kept in step with the worker pool.

See docs/sip-front.md.
"""

from callcenter.front.kamailio import INSTALL_HINT, FrontError, KamailioFront, blocked_call, find_kamailio, resolve_front
from callcenter.front.plan import (
    MAX_MESSAGE, SOURCE_HEADER, Destination, FrontPlan, FrontReport, dispatcher_list, kamailio_cfg, parse_counters,
    parse_report,
)

__all__ = [
    "INSTALL_HINT", "MAX_MESSAGE", "SOURCE_HEADER", "Destination", "FrontError", "FrontPlan", "FrontReport",
    "KamailioFront", "blocked_call", "dispatcher_list", "find_kamailio", "kamailio_cfg", "parse_counters",
    "parse_report", "resolve_front",
]
