"""The call flow: feeds telephony events into ivr/ and acd/ and turns their actions into commands and records.

Pure of I/O libraries: it reaches telephony, the contact store and the consoles only through the ports in
:mod:`callcenter.core.ports`. The face loads nothing but the errors, so a media worker that imports
:mod:`callcenter.core.telephony_protocol` does not load the call flow; ``ContactCenter`` lives in
:mod:`callcenter.core.contact_center`.
"""

from callcenter.core.errors import CoreError, DispositionRefused, RequestRefused, SupervisorActionRefused

__all__ = ["CoreError", "DispositionRefused", "RequestRefused", "SupervisorActionRefused"]
