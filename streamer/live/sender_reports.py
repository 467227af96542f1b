"""When a publisher captured what it sends: RTCP sender reports, and one clock for a stream's sound and picture.

A WebRTC publisher stamps audio and video with RTP timestamps that start at random values and run at
their own rates; its RTCP sender reports (SR) tie each stream's RTP clock to one wall clock of the sender's
(the clock it captured with, for a browser; the one it muxed with, for FFmpeg).
Without them a receiver can only go by arrival, and aiortc's receivers (1.16.0) hold audio four packets
(80 ms) and video one frame before handing them over, so by arrival the sound would be about 50 ms
later than the picture it goes with. ``SenderReports`` keeps the latest SR of one incoming stream;
``CaptureClock`` maps the sender's clock (or a file's timestamps) onto this machine's monotonic clock, so
that sound and picture captured together carry the same ``capture_s``.

aiortc does not hand SRs to the application, and its decoded frames carry RTP timestamps less the first
packet's. ``watch_sender_reports`` wraps the two receiver methods its RTP router calls with each packet for
that receiver, ``_handle_rtcp_packet`` (to note each SR) and ``_handle_rtp_packet`` (to note the first
packet's timestamp, which aiortc's ``TimestampMapper`` takes as its origin); checked against aiortc 1.16.0,
and a test fails if either moves. Without them, or before the first SR arrives, the arrival time is used.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from aiortc.rtp import RtcpSrPacket

log = logging.getLogger(__name__)


class SenderReports:
    """The latest sender report of one incoming RTP stream: its RTP clock tied to the sender's wall clock."""

    def __init__(self, clock_hz: int) -> None:
        self.clock_hz = clock_hz
        self._ntp_s: float | None = None
        self._rtp: int | None = None
        self.origin: int | None = None
        """The first RTP timestamp received: aiortc's frames are stamped from it (``pts = rtp - origin``)."""
        self.count = 0

    def note(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """One SR: ``ntp_timestamp`` in NTP's 32.32 fixed point, ``rtp_timestamp`` in the stream's clock."""
        self._ntp_s = (ntp_timestamp >> 32) + (ntp_timestamp & 0xFFFFFFFF) / 2**32
        self._rtp = rtp_timestamp & 0xFFFFFFFF
        self.count += 1

    def first_packet(self, rtp_timestamp: int) -> None:
        if self.origin is None:
            self.origin = rtp_timestamp & 0xFFFFFFFF

    def sender_time_s(self, pts: int) -> float | None:
        """The sender's wall-clock time of a frame aiortc stamped ``pts`` (in this stream's clock units), or
        None before the first SR."""
        if self._ntp_s is None or self._rtp is None or self.origin is None:
            return None
        delta = (self.origin + int(pts) - self._rtp) & 0xFFFFFFFF
        if delta >= 2**31:  # before the report: RTP timestamps wrap at 2**32
            delta -= 2**32
        return self._ntp_s + delta / self.clock_hz


def watch_sender_reports(receiver: Any, clock_hz: int) -> SenderReports | None:
    """Note the SRs and the first RTP timestamp reaching ``receiver`` (an aiortc RTCRtpReceiver); None, with
    a warning, where this aiortc has no such methods."""
    rtcp = getattr(receiver, "_handle_rtcp_packet", None)
    rtp = getattr(receiver, "_handle_rtp_packet", None)
    if rtcp is None or rtp is None:  # said once at start (``hooks_missing``)
        return None
    reports = SenderReports(clock_hz)

    async def handle_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            reports.note(packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        await rtcp(packet)

    async def handle_rtp(packet: Any, arrival_time_ms: int) -> None:
        reports.first_packet(packet.timestamp)
        await rtp(packet, arrival_time_ms)

    receiver._handle_rtcp_packet = handle_rtcp
    receiver._handle_rtp_packet = handle_rtp
    return reports


def hooks_missing() -> str | None:
    """None when the receiver hooks fit the installed aiortc; else what is missing (logged once at start)."""
    from aiortc import RTCRtpReceiver

    missing = [n for n in ("_handle_rtcp_packet", "_handle_rtp_packet") if not hasattr(RTCRtpReceiver, n)]
    if missing:
        return (
            f"aiortc's RTCRtpReceiver has no {', '.join(missing)} (checked against 1.16.0): a WHIP publisher's sound "
            "is synced to its picture by arrival, about 50 ms late"
        )
    return None


class CaptureClock:
    """Media times (a sender's wall clock, a file's timestamps) on this machine's monotonic clock.

    The offset is the smallest ``arrived_s - media_s`` seen over the last ``window_s``: what arrived with the
    least delay fixes it, so jitter does not move it, and sound and picture on the same media clock keep the
    distance they were captured at. The window lets it follow a sender's clock that drifts against ours."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self._offset_s: float | None = None

    def local_s(self, media_s: float, arrived_s: float) -> float:
        """The capture time on this machine's clock of media stamped ``media_s`` that arrived at ``arrived_s``."""
        sample = arrived_s - media_s
        samples = self._samples
        samples.append((arrived_s, sample))
        if self._offset_s is None or sample < self._offset_s:
            self._offset_s = sample
        if samples[0][0] < arrived_s - self.window_s:
            while samples and samples[0][0] < arrived_s - self.window_s:
                samples.popleft()
            self._offset_s = min(s for _, s in samples)
        return media_s + self._offset_s

    def reset(self) -> None:
        """Forget the offset (a source restarted with new timestamps)."""
        self._samples.clear()
        self._offset_s = None
