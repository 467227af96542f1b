"""Enrolling from footage (engines/identity/footage.py, issue 21 item 6) on d10.mp4, an expressive actress: the
frames picked carry no expression (eyes and brows as she usually holds them, not only closed lips), and
merged they keep the sharpest frame's detail instead of averaging it away. The likeness these buy (the
evaluation's recogniser, an identity enrolled from the clip swapped onto another clip) is in BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.identity.footage import FootageConfig, PickedFrame, expression_measures, pick_frames
from engines.identity.store import Identity, IdentityStore
from streamer.record.media import VideoReader

EXPRESSIVE = (320, 400)
"""d10's frames picked before the eyes and brows were judged: brows raised, eyes wide (and a frown)."""
GLANCE = 442
"""d10's frame picked beside 44 before the gaze was judged: eyes wide and looking aside, brows knit (its eyes'
opening and brows' height alone passed)."""


D10 = tuple[list[PickedFrame], dict[int, np.ndarray], dict[int, np.ndarray]]


@pytest.fixture(scope="module")
def d10(clips: Path, detector, mesh) -> D10:
    """The frames picked from d10.mp4, the tracked raw mesh of its frames ``EXPRESSIVE``, ``GLANCE`` and 44, and
    the images of 44 and ``GLANCE``."""
    from engines.face.tracker import FaceTracker

    tracker = FaceTracker(detector, mesh)
    meshes: dict[int, np.ndarray] = {}
    images: dict[int, np.ndarray] = {}
    count = [0]

    def track(image: np.ndarray, t: float):
        faces = tracker.update(image, t)
        if faces and count[0] in (*EXPRESSIVE, GLANCE, 44):
            meshes[count[0]] = faces[0].raw_landmarks
            if count[0] in (GLANCE, 44):
                images[count[0]] = image.copy()
        count[0] += 1
        return faces

    with VideoReader(clips / "d10.mp4") as reader:
        picked = pick_frames(((f.image, f.time_s) for f in reader.frames()), track, label="d10.mp4")
    return picked, meshes, images


def test_expressive_frames_are_not_picked(d10: D10) -> None:
    """Every frame picked has the eyes' opening and the brows' height within the tolerances of the clip's
    median (closed lips and no smile alone let 320 and 400 in: sharp, frontal, lips closed, eyes wide)."""
    picked, meshes, _ = d10
    cfg = FootageConfig()
    assert any(p.kind == "frontal" for p in picked)
    assert not {p.index for p in picked} & set(EXPRESSIVE), [p.index for p in picked]
    eyes = np.array([p.eyes for p in picked])
    brows = np.array([p.brows for p in picked])
    assert np.ptp(eyes) / eyes.mean() <= 2 * cfg.neutral_eyes and np.ptp(brows) / brows.mean() <= 2 * cfg.neutral_brows
    # The frames left out really differ from the neutral one the picker took (44) by more than the tolerance.
    neutral_eyes, neutral_brows = expression_measures(meshes[44])
    for index in EXPRESSIVE:
        e, b = expression_measures(meshes[index])
        assert (
            max(abs(e / neutral_eyes - 1.0) / cfg.neutral_eyes, abs(b / neutral_brows - 1.0) / cfg.neutral_brows) > 1.0
        )


def test_a_frame_looking_aside_is_not_picked(d10: D10) -> None:
    """``GLANCE`` (sharp, frontal, lips closed, its eyes' opening and brows' height within the tolerances) looks
    aside by more than ``FootageConfig.max_gaze``; 44, which leads, looks at the camera. The first is left out,
    and every frame picked looks at the camera."""
    from engines.compose.iris import gaze_aside

    picked, meshes, images = d10
    limit = FootageConfig().max_gaze
    glance = gaze_aside(images[GLANCE], meshes[GLANCE])
    assert glance is not None and glance > limit, glance
    assert GLANCE not in {p.index for p in picked}, [p.index for p in picked]
    assert picked[0].index == 44, [p.index for p in picked]
    at_camera = gaze_aside(images[44], meshes[44])
    assert at_camera is not None and at_camera < limit / 2, at_camera


def _detail(identity: Identity) -> float:
    """Mean absolute Laplacian of the texture's lightness over the well-seen texels: what blur takes away."""
    grey = cv2.cvtColor(identity.texture, cv2.COLOR_BGR2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    return float(np.abs(lap[identity.coverage > 0.9]).mean())


def test_frames_merged_keep_the_leading_frames_detail(d10: D10, tmp_path: Path, models_dir: Path) -> None:
    """Near-identical frames averaged texel by texel blur the face (its features never land on exactly the same
    texels): d10's frames 44 and ``GLANCE`` (its two picks before the gaze was judged) averaged keep ~80% of one
    frame's detail, and the merged identity was less like her than its sharpest frame alone. Led by the first
    frame (``lead_first``, how ``identities add NAME CLIP`` merges), the detail stays within 15% of it, and the
    identity still sees at least as much of the face."""
    _, _, frames = d10
    store = IdentityStore(tmp_path / "ids", models_dir)
    images = [frames[44], frames[GLANCE]]
    store.enroll("averaged", images, face="largest")
    store.enroll("led", images, face="largest", lead_first=True)
    store.enroll("first", images[:1], face="largest")
    averaged, led, first = (store.load(n) for n in ("averaged", "led", "first"))
    assert _detail(led) >= 0.85 * _detail(first), (_detail(led), _detail(first))
    assert _detail(averaged) < 0.9 * _detail(led), (_detail(averaged), _detail(led))
    assert float(led.coverage.mean()) >= float(first.coverage.mean())


def test_merged_shape_is_the_leads_where_its_texture_is(d10: D10, tmp_path: Path, models_dir: Path) -> None:
    """The texture of frames merged led by the first is the lead's wherever it saw the face, and the identity's
    shape follows it (``engines.identity.enroll.merged_shape``): d10's frames 44 and ``GLANCE``, both frontal,
    merged led by 44 give 44's own neutral mesh to within a small share of how far the frames' plain mean
    (how photos merge, and how the footage merge did) lies from it. The mean moved the lead's features off where
    its texture has them: the merged identity read below its lead frame alone (d3.mp4 0.397 against 0.412,
    BENCHMARKS.md)."""
    from engines.identity.enroll import average_shape

    _, _, frames = d10
    store = IdentityStore(tmp_path / "ids", models_dir)
    store.enroll("led", [frames[44], frames[GLANCE]], face="largest", lead_first=True)
    store.enroll("first", [frames[44]], face="largest")
    led, first = store.load("led"), store.load("first")
    assert len(led.landmarks) == 2
    mean = average_shape(list(led.landmarks))
    off_led = np.linalg.norm(led.canonical - first.canonical, axis=1)
    off_mean = np.linalg.norm(mean - first.canonical, axis=1)
    assert float(np.median(off_mean)) > 0.005, float(np.median(off_mean))  # the two frames' meshes do differ
    assert float(np.median(off_led)) < 0.1 * float(np.median(off_mean)), (np.median(off_led), np.median(off_mean))
    assert float(np.percentile(off_led, 95)) < 0.5 * float(np.percentile(off_mean, 95))
