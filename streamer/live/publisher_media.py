"""A WHIP publisher's picture and sound on one capture clock, and its sound taken off aiortc's track.

``PublisherClock`` gives each decoded frame and each piece of sound the time it was captured on this
machine's clock: the publisher's RTCP sender reports tie its RTP timestamps to its own wall clock
(``streamer.live.sender_reports``), and one ``CaptureClock`` puts that on ours. Until the first report of a
stream arrives (publishers send one about every second or few), its arrival time stands in.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

from streamer.live.audio import AudioNormaliser
from streamer.live.sender_reports import CaptureClock, SenderReports, watch_sender_reports

log = logging.getLogger(__name__)

VIDEO_CLOCK_HZ = 90_000


class PublisherClock:
    """Capture times of one publisher's frames and sound (see the module doc)."""

    def __init__(self, video: SenderReports | None = None, audio: SenderReports | None = None) -> None:
        self.video = video
        self.audio = audio
        self._clock = CaptureClock()

    @classmethod
    def watch(cls, video_receiver: Any, audio_receiver: Any | None, answer_sdp: str) -> PublisherClock:
        """Follow the sender reports reaching the receivers of a session whose answer is ``answer_sdp``."""
        audio = None
        if audio_receiver is not None:
            audio = watch_sender_reports(audio_receiver, audio_clock_hz(answer_sdp))
        return cls(watch_sender_reports(video_receiver, VIDEO_CLOCK_HZ), audio)

    def captured_s(self, frame: Any, reports: SenderReports | None, arrived_s: float) -> float:
        """When ``frame`` (an aiortc frame, stamped from its stream's first RTP timestamp) was captured."""
        if reports is not None and frame.pts is not None and frame.time_base is not None:
            sender_s = reports.sender_time_s(round(frame.pts * frame.time_base * reports.clock_hz))
            if sender_s is not None:
                return self._clock.local_s(sender_s, arrived_s)
        return arrived_s


def audio_clock_hz(answer_sdp: str) -> int:
    """The RTP clock of the answered audio codec (48000 for Opus)."""
    for media in SessionDescription.parse(answer_sdp).media:
        if media.kind == "audio" and media.rtp.codecs:
            return int(media.rtp.codecs[0].clockRate or 48_000)
    return 48_000


async def drain_audio(stream: Any, track: Any, clock: PublisherClock) -> None:
    """Take the publisher's sound off aiortc's track as it is decoded and hand it to the stream.

    Sound that stops or cannot be decoded ends this task only: the picture is drained on its own."""
    normaliser = AudioNormaliser()
    created_s = stream.created_s
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        now = time.monotonic()
        try:
            captured = clock.captured_s(frame, clock.audio, now)
            chunks = normaliser.chunks(frame, captured - created_s, captured)
        except Exception as exc:  # a frame we cannot convert is skipped, the sound goes on
            log.debug("stream %s: skipping a sound frame: %r", stream.name, exc)
            continue
        for chunk in chunks:
            stream.ingest_audio(chunk)


class RepeatedDecodeErrors(logging.Filter):
    """Lets one of aiortc's "failed to decode" warnings through per ``interval_s`` (it logs one per frame:
    50 a second for a publisher whose sound cannot be decoded) and says how many it held back."""

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last_s = float("-inf")
        self.held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "failed to decode" not in record.getMessage():
            return True
        now = time.monotonic()
        if now - self._last_s < self.interval_s:
            self.held += 1
            return False
        if self.held:
            record.msg = f"{record.msg} (and {self.held} more like it in the last {self.interval_s:g} s)"
        self._last_s, self.held = now, 0
        return True


def quiet_repeated_decode_errors() -> None:
    """Install ``RepeatedDecodeErrors`` on aiortc's receiver logger (once)."""
    logger = logging.getLogger("aiortc.rtcrtpreceiver")
    if not any(isinstance(f, RepeatedDecodeErrors) for f in logger.filters):
        logger.addFilter(RepeatedDecodeErrors())
