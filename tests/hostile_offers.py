"""Hostile SDP offers for the offer-limit tests and benchmarks/bench_offers.py (issue 18).

The probe that found the stall sent a WHEP offer of about 65 KB with ~580 m-lines, all in one BUNDLE group:
aiortc made a transceiver, codecs and an answer section for each, seconds of work on the event loop. These
are made from a real aiortc offer (its ICE credentials, fingerprint and codecs), its media section repeated.
"""

from __future__ import annotations

import asyncio
import re

from aiortc import RTCConfiguration, RTCPeerConnection


async def _aiortc_offer(direction: str, audio: bool) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction=direction)
    if audio:
        pc.addTransceiver("audio", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def real_offer(direction: str = "recvonly", audio: bool = False) -> str:
    """An offer as aiortc makes it: one video m-line (and one audio), BUNDLE, host candidates."""
    return asyncio.run(_aiortc_offer(direction, audio))


def split_sections(sdp: str) -> tuple[str, list[str]]:
    """The session part and each media section of an SDP text."""
    parts = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    return parts[0], parts[1:]


def many_mlines_offer(base: str, count: int = 580) -> str:
    """``base`` with ``count`` video m-lines in one BUNDLE group: its first section whole, then small ones
    (one codec, no candidates) with the ICE and DTLS attributes said once at session level, as the probe's
    were (580 in about 65 KB)."""
    session, sections = split_sections(base)
    video = next(s for s in sections if s.startswith("m=video"))
    shared = [line for line in video.splitlines() if line.startswith(("a=ice-", "a=fingerprint:sha-256", "a=setup"))]
    direction = next(line for line in video.splitlines() if line in ("a=recvonly", "a=sendonly", "a=sendrecv"))
    codec = re.search(r"^a=rtpmap:(\d+) VP8/90000\r?$", video, flags=re.MULTILINE)
    assert codec is not None, "the base offer has no VP8"
    pt = codec.group(1)
    small = [
        f"m=video 9 UDP/TLS/RTP/SAVPF {pt}\r\n{direction}\r\na=mid:{i}\r\na=rtcp-mux\r\na=rtpmap:{pt} VP8/90000\r\n"
        for i in range(1, count)
    ]
    session = re.sub(r"^a=group:BUNDLE.*$", "a=group:BUNDLE " + " ".join(map(str, range(count))), session, flags=re.M)
    session = session.replace("t=0 0", "c=IN IP4 0.0.0.0\r\nt=0 0")
    session = session.replace("a=msid-semantic", "\r\n".join(shared) + "\r\na=msid-semantic")
    return session + video + "".join(small)


def many_candidates_offer(base: str, count: int = 100, first_port: int = 40000) -> str:
    """``base`` with ``count`` host candidates on TEST-NET-1 (192.0.2.0/24: nobody's) in its first section
    (priorities falling with their number) and none of its own."""
    session, sections = split_sections(base)
    candidates = "".join(
        f"a=candidate:{i} 1 udp {2130706431 - i} 192.0.2.{1 + i % 250} {first_port + i} typ host\r\n"
        for i in range(count)
    )
    bare = ["".join(ln for ln in s.splitlines(keepends=True) if not ln.startswith("a=candidate")) for s in sections]
    return session + bare[0] + candidates + "".join(bare[1:])
