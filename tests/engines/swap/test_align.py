"""Alignment for learned models: the ArcFace template at every resolution, the mesh crop, and the way back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import InputError
from engines.face.tracker import TrackedFace
from engines.swap.align import (
    ARCFACE_112,
    Alignment,
    align_mesh,
    align_points5,
    arcface_template,
    border_ramp,
    compose,
    similarity,
)
from tests.face_helpers import clip_frames

CLIPS = ("d3.mp4", "Obama_speaking.mp4", "roop_target_1080p.mp4")
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@pytest.fixture(scope="module")
def tracked(clips: Path, detector, mesh) -> list[tuple[np.ndarray, TrackedFace]]:  # type: ignore[no-untyped-def]
    """One tracked face per shared clip (the 12th frame, after the tracker has settled)."""
    from engines.face.tracker import FaceTracker

    out = []
    for name in CLIPS:
        tracker = FaceTracker(detector, mesh)
        faces: list[TrackedFace] = []
        image = None
        for image, t in clip_frames(clips / name, 12):
            faces = tracker.update(image, t)
        assert faces and image is not None, name
        out.append((image, faces[0]))
    return out


def test_template_at_112_and_128_and_scaled_resolutions() -> None:
    np.testing.assert_allclose(arcface_template(112), ARCFACE_112)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_112 * 2)
    # Not a multiple of 112: the 128-pixel variant (8 px further right), scaled.
    np.testing.assert_allclose(arcface_template(128), ARCFACE_112 + [8.0, 0.0])
    np.testing.assert_allclose(arcface_template(256), (ARCFACE_112 + [8.0, 0.0]) * 2)
    for size in (112, 128, 256, 512):
        t = arcface_template(size)
        assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]  # image-left eye and mouth corner first
        assert 0.3 * size < t[:, 0].mean() < 0.7 * size


def test_similarity_recovers_a_known_transform_and_never_reflects() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 500, (5, 2))
    angle, scale, shift = 0.4, 0.37, np.array([12.5, -40.25])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    m = similarity(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-7)
    mirrored = dst * [-1.0, 1.0]
    assert np.linalg.det(similarity(src, mirrored)[:, :2]) > 0  # the best rotation, not a mirror


@pytest.mark.parametrize("size", [112, 128, 256, 512])
def test_points5_round_trip_on_clips_is_under_a_pixel(tracked, size: int) -> None:  # type: ignore[no-untyped-def]
    """Marks drawn at the face's five points come back where they were after crop -> paste (under 1 px), and
    the crop puts the face's points on the template (within the template's own fit)."""
    for image, face in tracked:
        alignment = align_points5(face.points5, size)
        np.testing.assert_allclose(alignment.to_frame(alignment.to_crop(face.points5)), face.points5, atol=1e-6)
        spread = np.linalg.norm(alignment.to_crop(face.points5) - arcface_template(size), axis=1)
        assert spread.mean() < 0.05 * size  # the face's points sit on the template
        h, w = image.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        sigma = max(2.0, 1.5 / alignment.scale)  # marks larger than a crop pixel survive the round trip
        for x, y in face.points5:
            mark = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)).astype(np.float32)
            marked = np.clip(image.astype(np.float32) + 80.0 * mark[..., None], 0, 255)
            base = alignment.paste(alignment.crop(image.astype(np.float32)), IDENTITY, (h, w))
            back = alignment.paste(alignment.crop(marked), IDENTITY, (h, w))
            diff = np.abs(back - base).sum(axis=2)
            diff[diff < 0.05 * diff.max()] = 0
            centre = np.array([(diff * xx).sum(), (diff * yy).sum()]) / diff.sum()
            assert np.linalg.norm(centre - [x, y]) < 1.0, (size, centre, (x, y))


def test_paste_lands_in_a_work_window(tracked) -> None:  # type: ignore[no-untyped-def]
    """Pasting into a window at another scale (the processor's work size) puts the crop where that window
    sees the frame: the crop's centre maps to the same frame point both ways."""
    image, face = tracked[1]
    alignment = align_points5(face.points5, 128)
    x0, y0, k = 100, 50, 0.5
    to_window = np.array([[k, 0.0, (0.5 - x0) * k - 0.5], [0.0, k, (0.5 - y0) * k - 0.5]])
    ramp = border_ramp(128, 0.1)
    full = alignment.paste(ramp, IDENTITY, image.shape[:2])
    small = alignment.paste(ramp, to_window, (300, 400))
    yy, xx = np.mgrid[0 : full.shape[0], 0 : full.shape[1]]
    centre_full = np.array([(full * xx).sum(), (full * yy).sum()]) / full.sum()
    ys, xs = np.mgrid[0:300, 0:400]
    centre_small = np.array([(small * xs).sum(), (small * ys).sum()]) / small.sum()
    expected = (centre_full - [x0, y0] + 0.5) * k - 0.5
    assert np.linalg.norm(centre_small - expected) < 0.5


def test_mesh_crop_frames_the_whole_face_and_keeps_it_still(tracked, clips: Path, detector, mesh) -> None:  # type: ignore[no-untyped-def]
    """The DFM crop: eyes level, face centred and a face width about 1/coverage of the side; while someone
    talks, the eyes stay put in the crop (the fit leaves the mouth and brows out)."""
    from engines.face.tracker import FaceTracker

    for image, face in tracked:
        alignment = align_mesh(face.landmarks, 224)
        eyes = alignment.to_crop(face.points5[:2])
        assert abs(eyes[0, 1] - eyes[1, 1]) < 0.04 * 224  # level
        assert 0.35 * 224 < eyes[:, 0].mean() < 0.65 * 224  # centred
        assert 0.15 * 224 < eyes[1, 0] - eyes[0, 0] < 0.3 * 224
        crop = alignment.crop(image)
        assert crop.shape == (224, 224, 3) and crop.std() > 10
    tracker = FaceTracker(detector, mesh)
    positions = []
    for image, t in clip_frames(clips / "Obama_speaking.mp4", 40):
        faces = tracker.update(image, t)
        if faces:
            positions.append(align_mesh(faces[0].landmarks, 224).to_crop(faces[0].points5[:2]))
    spread = np.std(np.array(positions), axis=0)
    assert len(positions) >= 30 and float(spread.max()) < 0.01 * 224


def test_crop_downsampling_is_filtered() -> None:
    """A crop much smaller than the face is not aliased: a fine stripe pattern averages to grey."""
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255
    points = arcface_template(112) * 6 + 50  # the face is 6x larger than the crop
    crop = align_points5(points, 112).crop(stripes)
    inner = crop[20:90, 20:90].astype(np.float32)
    assert abs(inner.mean() - 127.5) < 10 and inner.std() < 12


def test_bad_points_and_sizes_are_refused() -> None:
    with pytest.raises(InputError, match="5 points"):
        align_points5(np.zeros((4, 2)), 112)
    with pytest.raises(InputError, match="coincide"):
        align_points5(np.zeros((5, 2)), 112)
    with pytest.raises(InputError, match="not finite"):
        align_points5(np.full((5, 2), np.nan), 112)
    with pytest.raises(InputError, match="crop size"):
        align_points5(arcface_template(112), 8)
    with pytest.raises(InputError, match="468"):
        align_mesh(np.zeros((5, 3)), 224)
    with pytest.raises(InputError, match="coverage"):
        align_mesh(np.random.default_rng(0).uniform(0, 100, (468, 3)), 224, coverage=20.0)


def test_border_ramp_and_compose() -> None:
    ramp = border_ramp(128, 0.1)
    assert ramp[64, 64] == 1.0 and ramp[0, 64] < 0.05 and ramp[64, 127] < 0.05
    a = Alignment(np.array([[2.0, 0.0, 3.0], [0.0, 2.0, -1.0]]), 64)
    np.testing.assert_allclose(compose(a.inverse, a.matrix), IDENTITY, atol=1e-12)
    assert a.scale == pytest.approx(2.0)
    pts = np.array([[1.0, 2.0], [10.0, -3.0]])
    np.testing.assert_allclose(a.to_frame(a.to_crop(pts)), pts)
    assert cv2.invertAffineTransform(a.matrix).shape == (2, 3)
