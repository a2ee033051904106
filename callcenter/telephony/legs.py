"""What a media worker keeps about each leg, prompt playback and recording, and the few helpers its
parts share. No pjsua2 here: the objects it holds are pjsua2's, created by the worker."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from callcenter.core import telephony_protocol as p
from callcenter.telephony.errors import TelephonyError

__all__ = ["Leg", "Playback", "Recording", "Refused", "SharedLoop", "monotonic", "pj_reason"]


def monotonic() -> float:
    return time.monotonic()


class Refused(TelephonyError):
    """A command that cannot be carried out; becomes CommandFailed."""


def pj_reason(exc: Exception) -> str:
    """The message of a ``pjsua2.Error`` (which keeps it in ``reason``) or of any exception."""
    return p.clean_text(getattr(exc, "reason", "") or str(exc), p.TEXT)


@dataclass
class Playback:
    id: str
    files: tuple[str, ...]
    loop: bool
    index: int = 0
    token: int = 0
    player: object | None = None  # the _Player playing files[index]
    shared: str | None = None  # a looped file heard from the worker's one player of it (SharedLoop)


@dataclass
class SharedLoop:
    """One looping player of a file (hold music) that every leg holding on this worker hears.

    Decoded and clocked once per worker instead of once per caller, like FreeSWITCH's
    ``local_stream``: a caller joins the music where it is, not at its start.
    """

    path: str
    player: object
    listeners: set[str] = field(default_factory=set)


@dataclass
class Recording:
    conversation: str
    path: str
    legs: tuple[str, ...]
    recorder: object
    started: float


@dataclass
class Leg:
    id: str
    incoming: bool
    created: float
    state: str = "new"  # arriving, answering, calling, early, confirmed, ending, refused
    peer: str | None = None
    answered_at: float | None = None
    deadline: float | None = None  # decision deadline (incoming) or ring timeout (outgoing)
    ringing_sent: bool = False
    media_active: bool = False
    end_cause: str | None = None
    end_status: int | None = None
    end_reason: str | None = None
    playback: Playback | None = None
    bridged: set[str] = field(default_factory=set)
    waiting: list[p.Command] = field(default_factory=list)  # commands held until media is up
    # Dead-call detection (worker._check_rtp): RTP is expected only while the far end sends to us
    # (not while it holds us with sendonly/inactive, nor when it said recvonly).
    audio_index: int = 0  # the call's audio media index, for getStreamStat
    rx_watch: bool = False
    rx_packets: int | None = None  # the stream's received RTP packet count at the last check
    rx_at: float = 0.0  # when that count last moved (or the watch began)

    @property
    def sip_state(self) -> str:
        """The state named after pjsip's INVITE session states, for a leg listing (Pong.legs)."""
        return _SIP_STATES.get(self.state, self.state)


_SIP_STATES = {"arriving": "incoming", "answering": "connecting", "calling": "calling", "early": "early",
               "confirmed": "confirmed", "ending": "disconnecting"}
