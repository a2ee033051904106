"""CTI: the WebSocket JSON link between the contact center and the agents' and supervisors' consoles.

The only package that imports ``websockets``. The protocol is described in ``docs/cti-protocol.md``;
:mod:`callcenter.cti.protocol` is its executable half (message names, limits, error codes).
"""

from callcenter.cti.errors import CtiAuthError, CtiConnectionError, CtiError, CtiRequestError, CtiServerError
from callcenter.cti.protocol import PROTOCOL_VERSION

__all__ = [
    "PROTOCOL_VERSION",
    "CtiError",
    "CtiConnectionError",
    "CtiRequestError",
    "CtiAuthError",
    "CtiServerError",
]
