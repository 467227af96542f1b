"""The per-face stages on the torch backend equal the numpy stages through the whole FaceProcessor.

``ProcessorConfig(stages="torch")`` runs the swap's texture lookup, relight and blend (colour gains, apply
gains, the colour transfer, the seam's gains, the resizes, the composite, ``relight_window``) as torch ops on
the processor's device, the frame drawn on that device; the default on a CPU is numpy. Here the torch ops run
on CPU tensors (``make test-gpu``: on CUDA) and each output frame is compared with the numpy processor's on the
same frames of three shared clips.

Tolerance, over each clip's frames under each setting (uint8, before the watermark): **at most 2 levels of 255
at 99.8% of the pixels, under 0.05 levels on average, and at most 32 anywhere**. From the per-op bounds of
``tests/engines/test_torch_ops.py`` chained as the blend chains them: the relit face (1 level; the gains within
1e-9, apply_gains and the composite exact on equal inputs) scaled up to the window (1 level: cv2's fixed-point
bilinear against float32) gives 1-2 levels where the face is drawn; the black-and-white identity's colour
transfer up to 2 more (cv2's fixed-point blur; a Cb level is 1.77 levels of blue). The mean: the upscale's
0.10-0.13 levels on the window, over a face that covers a fifth of the frame or less. The few pixels past 2
are the seam correction's (``engines.compose.seam``): its field is measured from the face, and a pixel one
level apart there can cross the skin test at the edge of the skin, which moves the local gain by up to 0.5
where few skin pixels share the blur (measured up to 0.48 on d3). Measured on CPU (the first 3-6 frames): over
99.9% within 2 (one frame alone 99.73%: hence 99.8%, not 99.9%), mean <= 0.039, max 20. A wrong stage (a
channel swapped, the gains applied twice or not at all, a misplaced paste) moves most of a face by many levels
and fails the first two bounds.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.compose.watermark import WatermarkConfig
from engines.identity.store import IdentityStore
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings, RelightTarget
from tests.engines.test_torch_ops import DEVICES  # cpu, and cuda marked gpu (skipped without CUDA)
from tests.face_helpers import clip_frames, enrolled_store, processed_frames

CLIPS = ("d3.mp4", "d10.mp4", "s18.mp4")
FRAMES = 3  # the light and gains are smoothed over frames: frames 2-3 carry each path's own state
SETTINGS = {
    "swap": ProcessSettings(identity="s1"),  # relit to the actor's light, the colour gains folded into it
    # A chosen light: the colour match against the relit actor, the person around the face relit (numpy, downloaded
    # and uploaded on the torch path), the actor's relit face under the swap.
    "swap-key-light": ProcessSettings(identity="s1", relight_target=RelightTarget("direction", direction=(1, 0, 0.3))),
    "black-and-white": ProcessSettings(identity="bw"),  # the actor's colour taken into a grey identity
    "swap-unrelit": ProcessSettings(identity="s1", relight=False),  # the texture, colour matched in a pass of its own
}
NEAR_LEVELS, NEAR_SHARE, MAX_LEVELS, MEAN_LEVELS = 2, 0.998, 32, 0.05
MEAN_LEVELS_GREY = 0.06
"""The black-and-white identity's mean: its skin level is moved to the actor's by a gain in linear light
(``ChromaConfig.level``), which brightens the grey face on d3 and scales the two paths' differences upstream with it
(d3's mean 0.044 before that gain, 0.053 with it at 91a5642, 0.043 after the stages upstream changed; d10 and s18
0.03-0.04 and 0.008)."""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> IdentityStore:
    """s1, and obama's photo made grey (a black-and-white identity)."""
    photos = tmp_path_factory.mktemp("photos")
    image = cv2.imread(str(faces / "obama.jpg"))
    assert image is not None
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert cv2.imwrite(str(photos / "bw.png"), grey)
    (photos / "s1.jpg").write_bytes((faces / "s1.jpg").read_bytes())
    ids = enrolled_store(tmp_path_factory.mktemp("ids") / "identities", photos, models_dir, ("s1.jpg", "bw.png"))
    assert ids.load("bw").monochrome
    return ids


@pytest.fixture(scope="module")
def frames(clips: Path) -> dict[str, list[tuple[np.ndarray, float]]]:
    return {clip: clip_frames(clips / clip, FRAMES) for clip in CLIPS}


@pytest.mark.parametrize("device", DEVICES)
def test_torch_stages_equal_numpy_stages_on_shared_clips(
    device: str,
    store: IdentityStore,
    frames: dict[str, list[tuple[np.ndarray, float]]],
    models_dir: Path,
) -> None:
    unmarked = WatermarkConfig(enabled=False)  # the mark is the same numpy step after the download on both
    measured: list[str] = []
    for clip, clip_frames_ in frames.items():
        for name, settings in SETTINGS.items():
            numpy_proc = FaceProcessor.from_models(models_dir, ProcessorConfig(watermark=unmarked), store)
            torch_proc = FaceProcessor.from_models(
                models_dir, ProcessorConfig(device=device, stages="torch", watermark=unmarked), store
            )
            assert (numpy_proc.frame_path, torch_proc.frame_path) == ("numpy", f"torch-{device}")
            expected = processed_frames(numpy_proc, clip_frames_, settings)
            got = processed_frames(torch_proc, clip_frames_, settings)
            diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
            changed = np.abs(expected.astype(np.int16) - np.stack([f for f, _ in clip_frames_])).max(axis=-1) > 8
            near = float((diff.max(axis=-1) <= NEAR_LEVELS).mean())
            measured.append(f"{clip}/{name}: max {diff.max()}, <= {NEAR_LEVELS}: {near:.5f}, mean {diff.mean():.4f}")
            assert changed.mean() > 0.005, f"{clip}/{name}: the swap drew (almost) nothing: nothing compared"
            mean_levels = MEAN_LEVELS_GREY if name == "black-and-white" else MEAN_LEVELS
            assert diff.max() <= MAX_LEVELS and near >= NEAR_SHARE and diff.mean() < mean_levels, measured[-1]
    print("\n".join(measured))
