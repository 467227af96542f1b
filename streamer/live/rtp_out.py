"""Plain RTP out: one view's encoded frames sent over UDP to an RTP receiver (a Janus Streaming mountpoint).

The fan-out already encodes each (view, codec) once (``streamer.live.fanout.SharedEncoder``); this is one more
subscriber of that encoder, so sending a stream to Janus costs no second encode. Each encoded packet is cut
into RTP payloads by aiortc's own packetisers (the ones its WebRTC senders use: VP8 payload descriptors,
H.264 FU-A/STAP-A) and sent from the encoder thread on a non-blocking UDP socket: a dead or slow receiver
never holds the encoder, the worker or the other viewers (a datagram that cannot be sent is counted, not
retried).

RTCP runs on its own socket on the event loop (``RtcpChannel``): a sender report every second tells Janus
where to send feedback, and the keyframe requests it relays from its viewers (PLI, FIR) reach the shared
encoder, so a monitor that joins through Janus gets a picture at once instead of at the next periodic
keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import av
from aiortc.clock import current_ntp_time
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)

from streamer.live.fanout import Codec

log = logging.getLogger(__name__)

RTCP_PSFB_FIR = 4
"""Full Intra Request (RFC 5104); aiortc names only PLI."""
Address = tuple[str, int]


class RtpOutput:
    """A ``PacketSubscriber`` of a shared encoder that sends every packet as RTP to ``address``.

    ``deliver`` runs on the encoder thread and never blocks. Counters are read by the stats on the loop
    thread (plain ints: a torn read is off by one frame at most)."""

    def __init__(self, codec: Codec, payload_type: int, address: Address, family: int = socket.AF_INET) -> None:
        self.codec: Codec = codec
        self.payload_type = payload_type
        self.address = address
        self.ssrc = random.getrandbits(32)
        self._sequence = random.getrandbits(16)
        self._timestamp_origin = random.getrandbits(32)
        self._packer: Vp8Encoder | H264Encoder = Vp8Encoder() if codec == "vp8" else H264Encoder()
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._lock = threading.Lock()
        self.closed = False
        self.frames_sent = 0
        self.keyframes_sent = 0
        self.packets_sent = 0
        self.bytes_sent = 0
        self.send_errors = 0
        self.last_rtp_timestamp = 0
        self.last_ntp_time = 0

    def deliver(self, packet: av.Packet, keyframe: bool) -> None:
        """Send one encoded frame as RTP packets (encoder thread; never blocks, never raises on the network)."""
        with self._lock:
            if self.closed:
                return
            payloads, timestamp = self._packer.pack(packet)
            rtp_timestamp = (self._timestamp_origin + timestamp) & 0xFFFFFFFF
            for i, payload in enumerate(payloads):
                rtp = RtpPacket(
                    payload_type=self.payload_type,
                    marker=1 if i == len(payloads) - 1 else 0,
                    sequence_number=self._sequence,
                    timestamp=rtp_timestamp,
                    ssrc=self.ssrc,
                    payload=payload,
                )
                self._sequence = (self._sequence + 1) & 0xFFFF
                data = rtp.serialize()
                try:
                    self._socket.sendto(data, self.address)
                except OSError as exc:  # a full buffer or an ICMP error from a receiver that went away
                    self.send_errors += 1
                    if exc.errno not in (errno.EAGAIN, errno.ECONNREFUSED, errno.ENOBUFS) and self.send_errors == 1:
                        log.warning("RTP to %s:%d: %s", *self.address, exc)
                    continue
                self.packets_sent += 1
                self.bytes_sent += len(data)
            self.frames_sent += 1
            if keyframe:
                self.keyframes_sent += 1
            self.last_rtp_timestamp = rtp_timestamp
            self.last_ntp_time = current_ntp_time()

    def sender_report(self) -> bytes:
        """An RTCP sender report for this output (what lets Janus pair RTP time with wall-clock time)."""
        info = RtcpSenderInfo(
            ntp_timestamp=self.last_ntp_time or current_ntp_time(),
            rtp_timestamp=self.last_rtp_timestamp,
            packet_count=self.packets_sent & 0xFFFFFFFF,
            octet_count=self.bytes_sent & 0xFFFFFFFF,
        )
        return bytes(RtcpSrPacket(ssrc=self.ssrc, sender_info=info))

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._socket.close()

    def stats(self) -> dict[str, Any]:
        return {
            "codec": self.codec,
            "frames_sent": self.frames_sent,
            "keyframes_sent": self.keyframes_sent,
            "packets_sent": self.packets_sent,
            "bytes_sent": self.bytes_sent,
            "send_errors": self.send_errors,
        }


def keyframe_requested(data: bytes) -> bool:
    """True when an RTCP datagram carries a picture loss indication or a full intra request."""
    try:
        packets = RtcpPacket.parse(data)
    except ValueError:
        return False
    return any(isinstance(p, RtcpPsfbPacket) and p.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR) for p in packets)


class RtcpChannel(asyncio.DatagramProtocol):
    """The RTCP side of one ``RtpOutput``: sender reports out, keyframe requests in (event loop)."""

    def __init__(self, output: RtpOutput, address: Address, on_keyframe_request: Callable[[], None]) -> None:
        self.output = output
        self.address = address
        self._on_keyframe_request = on_keyframe_request
        self._transport: asyncio.DatagramTransport | None = None
        self.keyframe_requests = 0
        self.last_feedback_s: float | None = None

    @classmethod
    async def open(
        cls, output: RtpOutput, address: Address, on_keyframe_request: Callable[[], None], family: int
    ) -> RtcpChannel:
        loop = asyncio.get_running_loop()
        local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(output, address, on_keyframe_request), local_addr=local, family=family
        )
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.last_feedback_s = time.monotonic()
        if keyframe_requested(data):
            self.keyframe_requests += 1
            self._on_keyframe_request()

    def error_received(self, exc: Exception) -> None:  # ICMP errors while the receiver is away: nothing to do
        pass

    def send_report(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(OSError):
                self._transport.sendto(self.output.sender_report(), self.address)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
