"""A recording's sound: the stream's chunks placed as one unbroken run of samples, in sync with the picture.

Sound arrives in chunks stamped with their media time (``AudioChunk.pts_s``, the clock the frames' ``pts_s``
are on). A file's audio track is a continuous run of samples, so each chunk is placed where its time says,
relative to the recording's first frame: the track starts with that frame (silence before the first chunk,
sound from before it cut off), a chunk within 10 ms of where the last one ended simply continues it (capture
times jitter, sample clocks drift), a gap is filled with silence (lost packets, a publisher that muted) and
an overlap is cut from the chunk's start. So the sound stays within 10 ms of the picture for the whole take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.live.audio import SAMPLE_RATE, SNAP_SAMPLES, AudioChunk, silence

MAX_GAP_S = 10.0
"""A longer gap (sound came back after a long silence) is filled with this much silence at most per chunk."""


@dataclass(frozen=True)
class PlacedSound:
    samples: np.ndarray
    pts: int
    """In 1/48000 s from the recording's first frame."""


class SoundTrack:
    """The sound of one recording (all its views get the same): where each chunk goes (see the module doc)."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        """What clients asked for: ``aac``, ``pcm`` or ``opus`` (``streamer.record.formats.AUDIO_CODECS``)."""
        self._next: int | None = None
        self.silence_s = 0.0
        """Silence put in where sound was missing (gaps, and before the first chunk)."""
        self.cut_s = 0.0
        """Sound cut away: before the first frame, or overlapping what was already placed."""

    @property
    def seconds(self) -> float:
        return 0.0 if self._next is None else self._next / SAMPLE_RATE

    def place(self, chunk: AudioChunk, rel_s: float) -> PlacedSound | None:
        """Where ``chunk``, at ``rel_s`` seconds after the first frame, goes; None if nothing of it is kept."""
        start = round(rel_s * SAMPLE_RATE)
        samples = chunk.samples
        frames = samples.shape[1] // 2
        expected = 0 if self._next is None else self._next
        shift = start - expected
        if self._next is not None and abs(shift) <= SNAP_SAMPLES:
            shift = 0  # continues the last chunk
        if shift < 0:  # before the first frame, or overlapping: cut the front
            cut = min(frames, -shift)
            self.cut_s += cut / SAMPLE_RATE
            samples = samples[:, 2 * cut :]
            if samples.shape[1] == 0:
                return None
        elif shift > 0:  # a gap: silence up to where this chunk starts
            filler = silence(min(shift, round(MAX_GAP_S * SAMPLE_RATE)) / SAMPLE_RATE)
            self.silence_s += filler.shape[1] / 2 / SAMPLE_RATE
            samples = np.concatenate([filler, samples], axis=1)
        self._next = expected + samples.shape[1] // 2
        return PlacedSound(samples, expected)
