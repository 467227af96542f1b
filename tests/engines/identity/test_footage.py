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


@pytest.fixture(scope="module")
def d10(clips: Path, detector, mesh) -> tuple[list[PickedFrame], dict[int, np.ndarray]]:  # type: ignore[no-untyped-def]
    """The frames picked from d10.mp4, and the tracked raw mesh of its frames ``EXPRESSIVE`` and 44."""
    from engines.face.tracker import FaceTracker

    tracker = FaceTracker(detector, mesh)
    meshes: dict[int, np.ndarray] = {}
    count = [0]

    def track(image: np.ndarray, t: float):  # type: ignore[no-untyped-def]
        faces = tracker.update(image, t)
        if faces and count[0] in (*EXPRESSIVE, 44):
            meshes[count[0]] = faces[0].raw_landmarks
        count[0] += 1
        return faces

    with VideoReader(clips / "d10.mp4") as reader:
        picked = pick_frames(((f.image, f.time_s) for f in reader.frames()), track, label="d10.mp4")
    return picked, meshes


def test_expressive_frames_are_not_picked(d10: tuple[list[PickedFrame], dict[int, np.ndarray]]) -> None:
    """Every frame picked has the eyes' opening and the brows' height within the tolerances of the clip's
    median (closed lips and no smile alone let 320 and 400 in: sharp, frontal, lips closed, eyes wide)."""
    picked, meshes = d10
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


def _detail(identity: Identity) -> float:
    """Mean absolute Laplacian of the texture's lightness over the well-seen texels: what blur takes away."""
    grey = cv2.cvtColor(identity.texture, cv2.COLOR_BGR2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    return float(np.abs(lap[identity.coverage > 0.9]).mean())


def test_frames_merged_keep_the_leading_frames_detail(
    d10: tuple[list[PickedFrame], dict[int, np.ndarray]], tmp_path: Path, models_dir: Path
) -> None:
    """Near-identical frames averaged texel by texel blur the face (its features never land on exactly the same
    texels): d10's two picks averaged keep ~80% of one frame's detail, and the merged identity was less like
    her than its sharpest frame alone. Led by the first frame (``lead_first``, how ``identities add NAME CLIP``
    merges), the detail stays within 15% of it, and the identity still sees at least as much of the face."""
    picked, _ = d10
    assert len(picked) >= 2
    store = IdentityStore(tmp_path / "ids", models_dir)
    images = [p.image for p in picked]
    store.enroll("averaged", images, face="largest")
    store.enroll("led", images, face="largest", lead_first=True)
    store.enroll("first", images[:1], face="largest")
    averaged, led, first = (store.load(n) for n in ("averaged", "led", "first"))
    assert _detail(led) >= 0.85 * _detail(first), (_detail(led), _detail(first))
    assert _detail(averaged) < 0.9 * _detail(led), (_detail(averaged), _detail(led))
    assert float(led.coverage.mean()) >= float(first.coverage.mean())
