"""Audio for the SIP benchmarks' long calls, and a count of the RTP that reaches SIPp.

SIPp's ``play_pcap_audio`` plays a capture once; a caller or agent phone that talks for minutes uses
SIPp's ``rtp_stream`` instead, which loops a raw G.711 file from the media port (``-mp``). The files
are made from SIPp's own sample (``/usr/share/sip-tester/g711a.pcap``: 7 s of speech, PCMA, 30 ms
packets): its payloads as raw PCMA, the same converted to PCMU (G.711 A-law decoded, mu-law
encoded), and as an 8 kHz 16-bit WAV for a player.

SIPp never reads its media port unless ``-rtp_echo`` is given, so every RTP packet sent to it waits
in the socket's receive queue until that is full and is then dropped: the ``drops`` column of
``/proc/net/udp`` for that port counts, after the first few hundred, every packet that arrived.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path

SAMPLE_PCAP = Path("/usr/share/sip-tester/g711a.pcap")


def pcap_payloads(path: Path = SAMPLE_PCAP, payload_type: int = 8) -> bytes:
    """The RTP payloads of ``payload_type`` in a classic pcap file (Ethernet or Linux cooked capture), in order."""
    data = path.read_bytes()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    link = struct.unpack(endian + "I", data[20:24])[0]
    skip = {1: 14, 113: 16}.get(link)
    if skip is None:
        raise ValueError(f"{path}: link type {link} not handled")
    out = bytearray()
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[skip:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        rtp = ip[(ip[0] & 0x0F) * 4 + 8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != payload_type:
            continue
        head = 12 + 4 * (rtp[0] & 0x0F)
        if rtp[0] & 0x10 and len(rtp) >= head + 4:  # header extension
            head += 4 + 4 * struct.unpack("!H", rtp[head + 2:head + 4])[0]
        out += rtp[head:]
    return bytes(out)


def alaw_to_linear(a: int) -> int:
    """G.711 A-law byte to a 16-bit sample (the reference decoder)."""
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def linear_to_ulaw(sample: int) -> int:
    """16-bit sample to a G.711 mu-law byte (the reference encoder)."""
    value = sample >> 2
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, 8159) + 0x21
    seg = 0
    for seg, end in enumerate((0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)):  # noqa: B007
        if value <= end:
            break
    else:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


ALAW_TO_ULAW = bytes(linear_to_ulaw(alaw_to_linear(a)) for a in range(256))


def write_audio(folder: Path) -> dict[str, Path]:
    """``alaw`` (raw PCMA), ``ulaw`` (raw PCMU) and ``wav`` (8 kHz 16-bit mono) files of SIPp's sample speech."""
    folder.mkdir(parents=True, exist_ok=True)
    alaw = pcap_payloads()
    if len(alaw) < 8000:
        raise ValueError(f"{SAMPLE_PCAP}: less than a second of PCMA audio")
    files = {"alaw": folder / "speech.alaw", "ulaw": folder / "speech.ulaw", "wav": folder / "speech.wav"}
    files["alaw"].write_bytes(alaw)
    files["ulaw"].write_bytes(alaw.translate(ALAW_TO_ULAW))
    with wave.open(str(files["wav"]), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", alaw_to_linear(a)) for a in alaw))
    return files


def udp_drops(port: int) -> int | None:
    """Datagrams dropped so far by the IPv4 UDP socket bound to ``port`` (``/proc/net/udp``), None if none is."""
    try:
        rows = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    for row in rows:
        cols = row.split()
        if len(cols) >= 13 and int(cols[1].rsplit(":", 1)[1], 16) == port:
            return int(cols[12])
    return None
