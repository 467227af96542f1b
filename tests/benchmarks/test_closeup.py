"""The benchmarks' close-up: a fixed crop in which the face fills 60% of the height, inside the frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.closeup import closeup_crop, face_boxes
from streamer.record.media import VideoReader


def test_the_face_of_a_shared_clip_fills_60_percent_of_the_closeup(clips: Path, models_dir: Path) -> None:
    with VideoReader(clips / "s18.mp4") as reader:
        frames = [f.image for _, f in zip(range(20), reader.frames(), strict=False)]
    h0, w0 = frames[0].shape[:2]
    boxes = face_boxes(frames[::5], models_dir)
    crop = closeup_crop((w0, h0), boxes, 16 / 9)
    assert crop.x0 >= 0 and crop.x0 + crop.width <= w0 and crop.y0 >= 0 and crop.y0 + crop.height <= h0
    assert abs(crop.width / crop.height - 16 / 9) < 0.01
    out = crop.apply(frames[10], (1280, 720))
    assert out.shape == (720, 1280, 3)
    found = face_boxes([out], models_dir)[0]
    assert 0.5 <= (found[3] - found[1]) / 720 <= 0.7, "the face is about 60% of the frame height"


def test_a_crop_too_large_for_the_frame_shrinks_to_fit_and_the_face_fills_more() -> None:
    boxes = np.array([[300.0, 100.0, 560.0, 500.0]])  # a face 400 px high in a 720 x 1280 portrait frame
    crop = closeup_crop((720, 1280), boxes, 16 / 9)
    assert crop.width <= 720 and crop.x0 == 0 and abs(crop.width / crop.height - 16 / 9) < 0.01
    assert 400 / crop.height > 0.6
