"""The SIP front: Kamailio in front of the media workers, configured from ours and supervised.

- :mod:`callcenter.front.plan` (pure): :class:`FrontPlan` and the generated ``kamailio.cfg`` and
  dispatcher list; the parsers of the reports and counters the routing script keeps for the
  supervisor.
- :mod:`callcenter.front.kamailio` (asyncio): :class:`KamailioFront`, the supervised Kamailio
  child process, kept in step with the worker pool.
- :mod:`callcenter.front.phones` (pure): agent phones registering at the front: :class:`PhonesPlan`,
  credentials (:func:`ha1`), the events (:class:`PhoneEvent`) and bindings (:class:`Binding`).

See docs/sip-front.md.
"""

from callcenter.front.kamailio import INSTALL_HINT, FrontError, KamailioFront, blocked_call, find_kamailio, resolve_front
from callcenter.front.phones import Binding, PhoneEvent, PhonesPlan, check_credentials, ha1
from callcenter.front.plan import (
    MAX_MESSAGE, SOURCE_HEADER, Destination, FrontPlan, FrontReport, dispatcher_list, kamailio_cfg, parse_counters,
    parse_report,
)

__all__ = [
    "INSTALL_HINT", "MAX_MESSAGE", "SOURCE_HEADER", "Binding", "Destination", "FrontError", "FrontPlan",
    "FrontReport", "KamailioFront", "PhoneEvent", "PhonesPlan", "blocked_call", "check_credentials",
    "dispatcher_list", "find_kamailio", "ha1", "kamailio_cfg", "parse_counters", "parse_report", "resolve_front",
]
