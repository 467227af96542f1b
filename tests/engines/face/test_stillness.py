"""Repeated frames give repeated output; the first frame of a face is colour-matched like the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.compose.watermark import WatermarkConfig
from engines.face.stillness import StillFaceHold, StillnessConfig
from engines.identity.store import IdentityStore
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings
from tests.face_helpers import clip_frames


@pytest.fixture(scope="module")
def d10(clips: Path) -> list[tuple[np.ndarray, float]]:
    return clip_frames(clips / "d10.mp4", 8)


def _processor(models_dir: Path, store: IdentityStore, stillness: StillnessConfig | None) -> FaceProcessor:
    config = ProcessorConfig(watermark=WatermarkConfig(enabled=False), stillness=stillness)
    return FaceProcessor.from_models(models_dir, config, store)


def _noisy(image: np.ndarray, seed: int) -> np.ndarray:
    """The same picture through another encode: +-1 level of noise."""
    noise = np.random.default_rng(seed).integers(-1, 2, image.shape)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def test_a_repeated_frame_keeps_the_face_where_it_was(models_dir: Path, store: IdentityStore, d10) -> None:  # type: ignore[no-untyped-def]
    settings = ProcessSettings(identity="s1")
    held = _processor(models_dir, store, StillnessConfig())
    loose = _processor(models_dir, store, None)
    (image, t), (moved, t_moved) = d10[0], d10[3]
    runs = {}
    for name, proc in (("held", held), ("loose", loose)):
        first = proc.process(image, t, settings)
        again = [proc.process(_noisy(image, k), t + (k + 1) / 30.0, settings) for k in range(4)]
        runs[name] = (first, again)
    first, again = runs["held"]
    for result in again:
        np.testing.assert_array_equal(result.faces[0].landmarks, first.faces[0].landmarks)
    x1, y1, x2, y2 = first.faces[0].box.astype(int)

    def change(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a[y1:y2, x1:x2].astype(float) - b[y1:y2, x1:x2]).mean())

    held_change = np.mean([change(a.image, b.image) for a, b in zip([first, *again], again, strict=False)])
    first_loose, again_loose = runs["loose"]
    loose_change = np.mean(
        [change(a.image, b.image) for a, b in zip([first_loose, *again_loose], again_loose, strict=False)]
    )
    # The input changes by the noise only (~0.7 levels): the held face adds little to it, the loose one more.
    assert held_change < 1.0 and held_change < loose_change
    # A real change (three frames later, the head and mouth moved) takes the new landmarks at once.
    after = held.process(moved, t_moved + 1.0, settings)
    assert np.abs(after.faces[0].landmarks - first.faces[0].landmarks).max() > 1.0


def test_hold_compares_with_the_frame_the_geometry_came_from(d10, detector, mesh) -> None:  # type: ignore[no-untyped-def]
    """Slow drift, each step under the threshold, is still followed: the reference is the frame the held
    geometry was taken from, not the previous frame."""
    from engines.face.tracker import FaceTracker

    image, t = d10[0]
    face = FaceTracker(detector, mesh).update(image, t)[0]
    hold = StillFaceHold(StillnessConfig(threshold_levels=0.8))
    assert hold.apply(image, (face,))[0] is face
    other = type(face)(**{**face.__dict__, "landmarks": face.landmarks + 5.0})
    steps = 0
    for k in range(1, 30):
        brighter = np.clip(np.round(image + 0.3 * k), 0, 255).astype(np.uint8)  # 0.3 level more each step
        out = hold.apply(brighter, (other,))[0]
        if out is other:
            break
        steps += 1
        np.testing.assert_array_equal(out.landmarks, face.landmarks)
    assert 1 <= steps <= 3  # held while within 0.8 levels of the frame the geometry came from
    hold.forget(set())
    assert hold.apply(image, (other,))[0] is other  # forgotten: nothing held


def test_the_first_frame_of_a_face_is_colour_matched(models_dir: Path, store: IdentityStore, d10) -> None:  # type: ignore[no-untyped-def]
    """No one-frame pop when a face appears: the first output is as close to the second as the input is."""
    proc = _processor(models_dir, store, StillnessConfig())
    settings = ProcessSettings(identity="s1")
    (a, ta), (b, tb) = d10[0], d10[1]
    out_a, out_b = proc.process(a, ta, settings), proc.process(b, tb, settings)
    x1, y1, x2, y2 = out_a.faces[0].box.astype(int)
    change_out = float(np.abs(out_a.image[y1:y2, x1:x2].astype(float) - out_b.image[y1:y2, x1:x2]).mean())
    change_in = float(np.abs(a[y1:y2, x1:x2].astype(float) - b[y1:y2, x1:x2]).mean())
    assert change_out < change_in + 2.0, (change_out, change_in)
