"""Person segmentation around a face (opt-in occlusion handling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.compose.occlusion import OcclusionConfig, OcclusionMasks, PersonSegmenter
from engines.processor import FaceProcessor, ProcessorConfig
from engines.runtime import load_model
from engines.settings import ProcessSettings
from engines.swap.raster import Window
from tests.face_helpers import clip_frames


def test_face_is_person_and_the_background_beside_it_is_not(tracker, models_dir: Path, clips: Path) -> None:  # type: ignore[no-untyped-def]
    frames = clip_frames(clips / "d3.mp4", 3)
    faces = [tracker.update(image, t) for image, t in frames][-1]
    image = frames[-1][0]
    face = faces[0]
    masks = OcclusionMasks(
        PersonSegmenter(load_model(models_dir / "selfie_segmentation.tflite")), OcclusionConfig(every=2)
    )
    x1, y1, x2, y2 = face.box.astype(int)
    window = Window(x1, y1, x2 - x1, y2 - y1)
    vis = masks.visibility(image, face.id, face.box, window)
    assert vis.shape == (window.height, window.width) and vis.dtype == np.float32
    assert vis.mean() > 0.95  # the face itself is the person
    # The wall to the right of the face (d3: a plain background) is not the person.
    side = Window(min(image.shape[1] - 40, x2 + 40), y1, 30, y2 - y1)
    assert masks.visibility(image, face.id, face.box, side).mean() < 0.2
    masks.forget(set())
    assert masks.masks._last == {}


def test_processor_with_occlusion(models_dir: Path, clips: Path, faces: Path, tmp_path: Path) -> None:
    from engines.identity.store import IdentityStore

    store = IdentityStore(tmp_path / "ids", models_dir)
    store.enroll("s1", [faces / "s1.jpg"])
    proc = FaceProcessor.from_models(models_dir, ProcessorConfig(occlusion=OcclusionConfig(every=1)), store)
    assert proc.occlusion is not None
    for image, t in clip_frames(clips / "d3.mp4", 3):
        result = proc.process(image, t, ProcessSettings(identity="s1"))
        assert result.failed_stage is None
        assert np.abs(result.image.astype(int) - image.astype(int)).max() > 20
