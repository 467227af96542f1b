"""The identity's iris colour in the actor's kept eyes (``engines.compose.iris``, issue 21)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.compose.iris import IrisColour, IrisConfig, gaze_aside, identity_iris, tint_irises
from engines.face.landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from engines.face.topology import LEFT_EYE, RIGHT_EYE
from tests.face_helpers import clip_frames, enrolled_store, image_mesh


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path):  # type: ignore[no-untyped-def]
    return enrolled_store(tmp_path_factory.mktemp("ids"), faces, models_dir, ("biden.jpg", "obama.jpg"))


def _opening(shape: tuple[int, ...], landmarks: np.ndarray, contour: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[list(contour), :2] * 16).astype(np.int32)], 1, shift=4)
    return mask > 0


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_BGR2Lab)


def test_blue_eyes_read_bluer_than_brown_ones_and_a_grey_photo_gives_only_lightness(store, faces, models_dir) -> None:  # type: ignore[no-untyped-def]
    biden, obama = store.load("biden"), store.load("obama")
    blue = identity_iris(biden.texture, biden.coverage, biden.monochrome)
    brown = identity_iris(obama.texture, obama.coverage, obama.monochrome)
    assert blue is not None and brown is not None
    assert blue.a is not None and brown.a is not None
    # biden.jpg's eyes are blue-grey, obama.jpg's dark brown: greener-bluer (lower a*).
    assert blue.a < brown.a - 4
    grey = biden.texture.mean(axis=2, keepdims=True).repeat(3, axis=2).astype(np.uint8)
    mono = identity_iris(grey, biden.coverage, True)
    assert mono is not None and mono.a is None and mono.b is None
    assert mono.lightness == pytest.approx(blue.lightness, abs=0.1)


def test_the_actors_iris_takes_the_colour_and_nothing_else_moves(clips, detector, mesh) -> None:
    image = clip_frames(clips / "d10.mp4", 1)[0][0]
    landmarks = image_mesh(detector, mesh, image)
    unit = float(np.linalg.norm(landmarks[LEFT_EYE_OUTER] - landmarks[RIGHT_EYE_OUTER]))
    target = IrisColour(a=-12.0, b=-8.0, lightness=0.3)  # a blue iris, darker than the actress's pale grey one
    out = image.copy()
    tint_irises(out, landmarks, unit, target)
    changed = np.abs(out.astype(int) - image).max(axis=2) > 0
    openings = _opening(image.shape, landmarks, RIGHT_EYE) | _opening(image.shape, landmarks, LEFT_EYE)
    assert changed.any()
    assert not (changed & ~openings).any(), "pixels outside the eye openings changed"
    lab_in, lab_out = _lab(image), _lab(out)
    for contour in (RIGHT_EYE, LEFT_EYE):
        eye = _opening(image.shape, landmarks, contour)
        change = np.abs(out.astype(int) - image).max(axis=2)
        assert (eye & (change > 2)).sum() >= 20, "too little of the iris recoloured"
        moved = eye & (change >= np.percentile(change[eye & (change > 2)], 50))  # the iris, not its ramps
        # The recoloured part moved toward the target's a* (relative to the white of the eye, which stays).
        white = eye & (lab_in[..., 0] >= np.percentile(lab_in[..., 0][eye], 85))
        shift = np.abs(lab_out[white] - lab_in[white]).max(axis=1)
        assert np.percentile(shift, 90) < 0.5 and shift.mean() < 0.3, "the white of the eye changed"
        a_in = float(np.median(lab_in[..., 1][moved] - np.median(lab_in[..., 1][white])))
        a_out = float(np.median(lab_out[..., 1][moved] - np.median(lab_out[..., 1][white])))
        assert abs(a_out - target.a) < 0.6 * abs(a_in - target.a)  # type: ignore[operator]
        # The pupil (the darkest pixels near the iris's centre) keeps its lightness.
        darkest = eye & (lab_in[..., 0] <= np.percentile(lab_in[..., 0][eye], 3))
        assert np.abs(lab_out[..., 0][darkest] - lab_in[..., 0][darkest]).mean() < 3.0


def test_strength_zero_and_closed_eyes_leave_the_frame_alone(clips, detector, mesh) -> None:
    image = clip_frames(clips / "d10.mp4", 1)[0][0]
    landmarks = image_mesh(detector, mesh, image)
    unit = float(np.linalg.norm(landmarks[LEFT_EYE_OUTER] - landmarks[RIGHT_EYE_OUTER]))
    target = IrisColour(a=-12.0, b=-8.0, lightness=0.3)
    out = image.copy()
    tint_irises(out, landmarks, unit, target, IrisConfig(strength=0.0))
    assert np.array_equal(out, image)
    closed = landmarks.copy()
    for contour in (RIGHT_EYE, LEFT_EYE):  # a blink: both lids on the line between the corners
        idx = list(contour)
        a, b = closed[contour[0], :2], closed[contour[8], :2]
        t = np.clip(((closed[idx, :2] - a) @ (b - a)) / float((b - a) @ (b - a)), 0, 1)
        closed[idx, :2] = a + t[:, None] * (b - a)
    tint_irises(out, closed, unit, target)
    assert np.array_equal(out, image)


@pytest.mark.parametrize("colour", [True, False], ids=["colour", "black-and-white"])
def test_the_compiled_tint_equals_numpys_on_shared_clips(clips, detector, mesh, colour: bool) -> None:  # type: ignore[no-untyped-def]
    """``tint_irises(fused=True)`` (``engines.fused.iris_shift`` and ``iris_write``) against numpy's passes on the
    eyes of d3, d10 and s18 (two frames each; a blue iris, a colourless one, half strength once): within a level at
    any pixel (sums and medians in another order, float64 where numpy keeps float32), the same pixels changed but
    for a few at the ramp's edge, and the eyes really recoloured (something to compare)."""
    target = IrisColour(a=-12.0, b=-8.0, lightness=0.3) if colour else IrisColour(None, None, 0.6)
    changed_pixels = 0
    for clip in ("d3.mp4", "d10.mp4", "s18.mp4"):
        for k, (image, _) in enumerate(clip_frames(clips / clip, 2)):
            landmarks = image_mesh(detector, mesh, image)
            unit = float(np.linalg.norm(landmarks[LEFT_EYE_OUTER] - landmarks[RIGHT_EYE_OUTER]))
            config = IrisConfig(strength=0.5 if k else 1.0)
            expected, got = image.copy(), image.copy()
            tint_irises(expected, landmarks, unit, target, config)
            tint_irises(got, landmarks, unit, target, config, fused=True)
            diff = np.abs(got.astype(np.int16) - expected.astype(np.int16)).max(axis=-1)
            moved = np.abs(expected.astype(np.int16) - image).max(axis=-1) > 0
            assert diff.max() <= 1, (clip, k, int(diff.max()))
            assert (moved != (np.abs(got.astype(np.int16) - image).max(axis=-1) > 0)).sum() <= 4, (clip, k)
            changed_pixels += int(moved.sum())
    assert changed_pixels > 300


def test_the_warm_up_compiles_the_signature_the_iris_calls() -> None:
    """``engines.fused.warm_up`` compiles the iris's kernels with twelve placeholder floats (importing
    ``IRIS_LIMITS`` there would be an import circle): the constants must stay twelve floats, or every live
    session's first face with eyes would compile the kernel again (seconds)."""
    from engines import fused
    from engines.compose.iris import IRIS_LIMITS

    fused.warm_up()
    before = set(fused.iris_shift.signatures)
    lab, depth = np.zeros((6, 6, 3), np.float32), np.zeros((6, 6), np.float32)
    fused.iris_shift(lab, depth, 0.5, np.zeros((2, 2), np.float32), (0.0, 0.0, 1.0, True), 1.0, IRIS_LIMITS)
    assert len(IRIS_LIMITS) == 12 and all(isinstance(v, float) for v in IRIS_LIMITS)
    assert set(fused.iris_shift.signatures) == before


def _frame(path: Path, index: int) -> np.ndarray:
    from streamer.record.media import VideoReader

    with VideoReader(path) as reader:
        for i, frame in enumerate(reader.frames()):
            if i == index:
                return frame.image
    raise AssertionError(f"{path.name} has no frame {index}")


def _glance(image: np.ndarray, landmarks: np.ndarray, shift_px: int) -> np.ndarray:
    """``image`` with what each eye opening shows moved ``shift_px`` pixels to the image's left (both eyes the same
    way: a glance aside), the lids and the skin around as they were."""
    out = image.copy()
    for contour in (RIGHT_EYE, LEFT_EYE):
        opening = _opening(image.shape, landmarks, contour)
        ys, xs = np.nonzero(opening)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min() - 2 * shift_px, xs.max() + 1 + 2 * shift_px
        box = image[y0:y1, x0:x1]
        moved = np.roll(box, -shift_px, axis=1)
        inside = opening[y0:y1, x0:x1]
        out[y0:y1, x0:x1][inside] = moved[inside]
    return out


def test_gaze_aside_reads_a_glance_and_not_a_look_at_the_camera(clips, faces, detector, mesh) -> None:  # type: ignore[no-untyped-def]
    """Obama_speaking.mp4's frame 258 and obama.jpg look at the camera: under ``FootageConfig.max_gaze``; frame 208
    of d3.mp4 looks past it (the irises near the openings' corners): above. Frame 258's irises moved sideways by a
    fifth of the eye's width read more (a quarter of that: the lids' dark lashes count into the centre found)."""
    from engines.identity.footage import FootageConfig

    limit = FootageConfig().max_gaze
    at_camera = _frame(clips / "Obama_speaking.mp4", 258)
    lm = image_mesh(detector, mesh, at_camera)
    straight = gaze_aside(at_camera, lm)
    assert straight is not None and straight < 0.6 * limit, straight
    photo = cv2.imread(str(faces / "obama.jpg"))
    assert photo is not None
    photo_gaze = gaze_aside(photo, image_mesh(detector, mesh, photo))
    assert photo_gaze is not None and photo_gaze < 0.6 * limit, photo_gaze
    glancing = _frame(clips / "d3.mp4", 208)
    aside = gaze_aside(glancing, image_mesh(detector, mesh, glancing))
    assert aside is not None and aside > limit, aside
    width = float(np.linalg.norm(lm[RIGHT_EYE[0], :2] - lm[RIGHT_EYE[8], :2]))
    moved = gaze_aside(_glance(at_camera, lm, round(0.2 * width)), lm)
    assert moved is not None and moved > straight + 0.035, (straight, moved)
