"""A bounded decoder backlog for aiortc's video receivers: when decoding falls behind, skip to a keyframe.

aiortc's ``RTCRtpReceiver`` hands every complete encoded frame to its decoder thread through an unbounded
``queue.Queue``. Decoding is sequential and has to see every frame (a delta frame needs the one before), so
when the decoder thread is slower than the camera — two cores shared with processing, the fan-out's
encoder and anything else on a stage PC — that queue grows by the difference, and every frame after it
waits longer: latency creeps up by milliseconds every second, which the ring's latest-frame-wins cannot undo
because the ring sits after the decoder (issue 20 measured +2 to +3.8 ms/s on a busy machine).

``DecodeBacklog`` replaces that queue. While the decoder keeps up it is a plain FIFO. When more than
``max_frames`` encoded frames wait, it drops them all (the newest picture wins here too), then takes the next
keyframe to arrive and drops the delta frames before it (a decoder cannot start on them), asking the sender
for a keyframe through aiortc's own picture-loss path (its ``__decoder_error`` event: the receiver sends an
RTCP PLI with the next packet). Every dropped frame is counted in ``dropped``.

Installed with ``bound_decoder(transceiver)`` after the remote description is set and before the receiver
starts (the decoder thread takes the queue object when it starts). The two private names it uses are
checked against aiortc 1.16; ``hooks_missing()`` says when an installed aiortc no longer has them (the
server logs it once, and receivers then keep aiortc's unbounded queue).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

MAX_BACKLOG_FRAMES = 3
"""Encoded frames that may wait for the decoder (100 ms at 30 fps) before the backlog is dropped."""
KEYFRAME_REQUEST_INTERVAL_S = 0.5
"""While waiting for a keyframe, ask for one again this often (a PLI may be lost)."""
_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_ERROR_ATTR = "_RTCRtpReceiver__decoder_error"
_THREAD_ATTR = "_RTCRtpReceiver__decoder_thread"


def is_keyframe(codec_name: str, data: bytes) -> bool:
    """Whether one encoded frame (as aiortc's jitter buffer assembles it) starts a decodable picture.

    VP8: the frame tag's first bit is 0 for a key frame (RFC 6386, 9.1). H.264 (Annex B, as aiortc's
    depayloader writes it): an IDR slice (NAL type 5) or a sequence parameter set (7) is in it. Other codecs
    (VP9, AV1 are not negotiated here) count every frame as a keyframe, so they are never skipped."""
    if not data:
        return False
    name = codec_name.lower()
    if name == "vp8":
        return data[0] & 0x01 == 0
    if name == "h264":
        start = 0
        while True:
            at = data.find(b"\x00\x00\x01", start)
            if at < 0 or at + 3 >= len(data):
                return False
            if data[at + 3] & 0x1F in (5, 7):
                return True
            start = at + 3
    return True


class DecodeBacklog(queue.Queue[Any]):
    """aiortc's decoder queue, bounded: at most ``max_frames`` frames wait; beyond that, skip to a keyframe.

    ``put`` runs on the event loop (aiortc's ``_handle_rtp_packet``), ``get`` on the decoder thread."""

    def __init__(self, max_frames: int = MAX_BACKLOG_FRAMES, request_keyframe: threading.Event | None = None) -> None:
        super().__init__()
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        self.max_frames = max_frames
        self._request_keyframe = request_keyframe
        self._waiting_keyframe = False
        self._requested_s = float("-inf")
        self.dropped = 0
        """Encoded frames dropped, never decoded: the backlog, and the delta frames before the next keyframe."""
        self.skips = 0
        """How many times the backlog overflowed (each drop of a backlog is one)."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # aiortc's end-of-stream marker always goes through
            super().put(item, block, timeout)
            return
        codec, frame = item
        key = is_keyframe(getattr(codec, "name", ""), getattr(frame, "data", b""))
        if self._waiting_keyframe and not key:
            self.dropped += 1
            self._ask_keyframe()
            return
        if not key and self.qsize() >= self.max_frames:
            self.dropped += self._clear()
            self.dropped += 1  # this delta frame cannot be decoded without the ones just dropped
            self.skips += 1
            self._waiting_keyframe = True
            self._ask_keyframe(force=True)
            return
        if key and self.qsize() >= self.max_frames:
            self.dropped += self._clear()  # a keyframe needs nothing before it: decode it next
            self.skips += 1
        self._waiting_keyframe = False
        super().put(item, block, timeout)

    def _clear(self) -> int:
        """Remove every waiting frame (the end marker, if queued, is kept); returns how many were removed."""
        removed = 0
        ended = False
        while True:
            try:
                item = self.get_nowait()
            except queue.Empty:
                break
            if item is None:
                ended = True
            else:
                removed += 1
        if ended:
            super().put(None)
        return removed

    def _ask_keyframe(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._request_keyframe is None or (not force and now - self._requested_s < KEYFRAME_REQUEST_INTERVAL_S):
            return
        self._requested_s = now
        self._request_keyframe.set()  # aiortc sends a PLI with the next packet it receives


def hooks_missing() -> str | None:
    """A sentence when the installed aiortc's receiver lacks what ``bound_decoder`` replaces, else None."""
    from aiortc import RTCRtpReceiver

    source = getattr(RTCRtpReceiver.__init__, "__code__", None)
    names = source.co_names if source is not None else ()
    if not {"_RTCRtpReceiver__decoder_queue", "_RTCRtpReceiver__decoder_error"} <= set(names):
        return (
            "this aiortc's RTCRtpReceiver has no __decoder_queue/__decoder_error: a decoder that falls behind "
            "queues frames (latency grows under load) instead of skipping to a keyframe"
        )
    return None


def bound_decoder(transceiver: Any, max_frames: int = MAX_BACKLOG_FRAMES) -> DecodeBacklog | None:
    """Give a video ``RTCRtpTransceiver``'s receiver a ``DecodeBacklog``; None when it cannot (not video,
    already started, or an aiortc without the names: see ``hooks_missing``)."""
    if transceiver.kind != "video":
        return None
    receiver = transceiver.receiver
    current = getattr(receiver, _QUEUE_ATTR, None)
    error = getattr(receiver, _ERROR_ATTR, None)
    if isinstance(current, DecodeBacklog):
        return current
    if not isinstance(current, queue.Queue) or not isinstance(error, threading.Event):
        return None
    if getattr(receiver, _THREAD_ATTR, None) is not None:
        return None  # the decoder thread already holds the old queue
    backlog = DecodeBacklog(max_frames, error)
    setattr(receiver, _QUEUE_ATTR, backlog)
    return backlog
