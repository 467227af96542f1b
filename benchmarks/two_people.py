"""A two-person clip made from two shared single-person clips side by side (never committed: made from ../shared
when a test or benchmark runs), with the right-hand person leaving the frame for a while and coming back.

The left half is d3.mp4 (a woman, neutral light), the right half d10.mp4 (another woman, heavy make-up): two
people of a similar look, so telling them apart is the recogniser's work and not the position's. While the
right-hand performer is "away" their half shows a flat grey wall. ``scale`` resizes the whole frame (2.5 makes
it 2560x1280; 1.40625 makes it 1440x720: 720p height).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

LEFT_CLIP = "d3.mp4"
RIGHT_CLIP = "d10.mp4"
LEFT_PERFORMER_FRAMES = (150, 354)
"""Frames of the left clip the left performer is enrolled from (the two-person clip uses frames before these)."""
RIGHT_PERFORMER_FRAMES = (200, 448)


@dataclass(frozen=True)
class TwoPeople:
    frames: int = 120
    away: tuple[int, int] | None = (60, 90)
    """Frames [start, end) in which the right-hand performer is out of frame (None: always there)."""
    scale: float = 1.0
    hd: bool = False
    """1280x720 (each half 640x640, letterboxed): the 720p frame the cost goal is stated for (``scale`` ignored)."""

    def right_present(self, index: int) -> bool:
        return self.away is None or not self.away[0] <= index < self.away[1]


def two_people(clips: Path, spec: TwoPeople) -> Iterator[tuple[int, np.ndarray, float]]:
    """(index, BGR frame, time in s) of the two-person clip: 30 fps, 1024x512 times ``spec.scale`` (or 720p)."""
    from streamer.record.media import VideoReader

    with VideoReader(clips / LEFT_CLIP) as left, VideoReader(clips / RIGHT_CLIP) as right:
        for i, (a, b) in enumerate(zip(left.frames(), right.frames(), strict=False)):
            if i >= spec.frames:
                return
            side = b.image if spec.right_present(i) else np.full_like(b.image, 128)
            image = np.hstack([a.image, side])
            if spec.hd:
                image = cv2.copyMakeBorder(cv2.resize(image, (1280, 640)), 40, 40, 0, 0, cv2.BORDER_CONSTANT)
            elif spec.scale != 1.0:
                image = cv2.resize(image, None, fx=spec.scale, fy=spec.scale, interpolation=cv2.INTER_LINEAR)
            yield i, image, i / 30.0


def enrollment_frames(clips: Path, clip: str, frames: tuple[int, int], every: int = 10) -> Iterator[np.ndarray]:
    """Frames of a shared clip to enroll its person from (every ``every``-th in ``frames``)."""
    from streamer.record.media import VideoReader

    with VideoReader(clips / clip) as reader:
        for i, frame in enumerate(reader.frames()):
            if i >= frames[1]:
                return
            if i >= frames[0] and (i - frames[0]) % every == 0:
                yield frame.image


def write_two_people(clips: Path, spec: TwoPeople, path: Path) -> Path:
    """The two-person clip as an H.264 file at ``path`` (for the CLI and the service's file source)."""
    import av

    with av.open(str(path), "w") as out:
        stream = None
        for _, image, _ in two_people(clips, spec):
            if stream is None:
                stream = out.add_stream("libx264", rate=30)
                stream.width, stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "preset": "veryfast"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: stream.height, : stream.width]), "bgr24")
            out.mux(stream.encode(frame))
        if stream is not None:
            out.mux(stream.encode(None))
    return path


def performer_descriptors(clips: Path, tracker: Any, describer: Any) -> dict[str, np.ndarray]:
    """The two performers' descriptors ("left", "right": every 10th frame of their own clips, from frames the
    two-person clip does not use), as ``stageswap performers add`` would describe them. ``tracker``: a
    ``FaceTracker``; ``describer``: a ``FaceDescriber``."""
    out = {}
    for name, clip, frames in (
        ("left", LEFT_CLIP, LEFT_PERFORMER_FRAMES),
        ("right", RIGHT_CLIP, RIGHT_PERFORMER_FRAMES),
    ):
        found = []
        for image in enrollment_frames(clips, clip, frames):
            tracker.reset()  # each frame on its own, like a photo
            faces = tracker.update(image, 0.0)
            if faces:
                found.append(describer.describe(image, faces[0].landmarks))
        out[name] = np.stack(found)
    return out
