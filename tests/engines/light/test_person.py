"""Relighting the whole person (engines.light.person): silhouette normals, the detail layer carried, and on a
real clip the hair, neck and ears relit with the face while the background keeps its exposure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.compose.watermark import WatermarkConfig
from engines.light.person import (
    Neck,
    PersonLightConfig,
    neck_normals,
    relight_window,
    shading_ratio,
    silhouette_normals,
)
from engines.light.sh import directional_sh, srgb_to_linear
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings, RelightTarget
from tests.face_helpers import clip_frames


def test_an_inflated_disc_faces_out_at_its_rim_and_the_camera_at_its_centre() -> None:
    yy, xx = np.mgrid[0:101, 0:101]
    disc = ((xx - 50) ** 2 + (yy - 50) ** 2 <= 40**2).astype(np.float32)
    n = silhouette_normals(disc, radius_px=30.0, smooth_px=2.0)
    assert np.allclose(np.linalg.norm(n, axis=2), 1.0, atol=1e-4)
    assert n[50, 50, 2] > 0.99  # the centre faces the camera
    assert n[50, 12, 0] < -0.6 and n[50, 88, 0] > 0.6  # left rim faces left, right rim right (x right)
    assert n[12, 50, 1] > 0.6 and n[88, 50, 1] < -0.6  # top faces up (camera y up), bottom down


def test_the_neck_is_a_cylinder_under_the_jaw_turned_with_the_head() -> None:
    cfg = PersonLightConfig()
    eye_px = 40.0
    # An upright head: the neck's axis at x=50 from y=20 down; the chin 20 px below the jaw's level.
    grid_to_frame = np.eye(3)
    n, w = neck_normals(Neck((50.0, 20.0), (0.0, 1.0), 25.0, 20.0), grid_to_frame, (101, 121), eye_px, cfg)
    row = 45  # below the chin
    assert n[row, 50, 2] > 0.95 and abs(n[row, 50, 0]) < 0.05  # the middle faces the camera
    assert n[row, 72, 0] > 0.6 and n[row, 28, 0] < -0.6  # its right side faces right, its left side left
    assert n[row, 50, 1] < 0  # leaning forward, its front faces slightly down
    assert w[row, 50] == pytest.approx(1.0) and w[row, 95] == 0.0  # full on the neck, nothing past 1.2 radii
    assert w[120, 50] == 0.0 and w[5, 50] == 0.0  # nothing at the chest or above the jaw's level
    # The head rolled 30 degrees: the normals turn with the axis.
    down = (np.sin(np.radians(-30)), np.cos(np.radians(-30)))
    n2, _ = neck_normals(Neck((50.0, 20.0), down, 25.0, 20.0), grid_to_frame, (101, 121), eye_px, cfg)
    side = np.array([down[1], -down[0]])  # image right of the axis
    p = np.array([50.0, 20.0]) + 30.0 * np.array(down) + 20.0 * side
    cam_side = np.array([side[0], -side[1]])
    assert n2[round(p[1]), round(p[0]), :2] @ cam_side > 0.6


def test_the_brightening_limit_holds_the_luminance_and_keeps_the_colour_change() -> None:
    # A warm light from the left, relit to a white one from the right: normals facing right get far more light.
    n = np.zeros((1, 3, 3), np.float32)
    n[0, :, 0], n[0, :, 2] = [-0.6, 0.0, 0.9], [0.8, 1.0, 0.44]
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    src = directional_sh((-0.8, 0.2, 0.6), 1.0, (1.0, 0.8, 0.6), 0.2)
    tgt = directional_sh((0.8, 0.2, 0.6), 1.0, (1.0, 1.0, 1.0), 0.2) * 0.85
    ratio, free = shading_ratio(n, src, tgt, 2.5), shading_ratio(n, src, tgt, 100.0)
    lum = ratio[0] @ np.array([0.0722, 0.7152, 0.2126])
    assert free[0, 2] @ np.array([0.0722, 0.7152, 0.2126]) > 3.0  # far more light there than the limit allows
    assert lum[2] == pytest.approx(2.5, rel=1e-3)  # so it is limited in luminance
    assert np.allclose(ratio[0, 2] / free[0, 2], ratio[0, 2, 1] / free[0, 2, 1], rtol=1e-4)  # colour kept
    assert free[0, 1, 0] > 1.1 * free[0, 1, 2]  # (the colour change: warm to white, blue gains more than red)
    assert np.allclose(shading_ratio(n, src, src, 2.5), 1.0, atol=1e-5)  # the measured light: no change


def test_relight_window_keeps_the_grain_and_is_a_no_op_at_ratio_one() -> None:
    rng = np.random.default_rng(1)
    flat = np.full((120, 160, 3), 120.0) + rng.normal(0.0, 4.0, (120, 160, 1))
    window = np.clip(flat, 0, 255).astype(np.uint8)
    same = relight_window(window, np.ones((12, 16, 3), np.float32), detail_px=2.0)
    assert np.array_equal(same, window)
    darker = relight_window(window, np.full((12, 16, 3), 0.5, np.float32), detail_px=2.0)
    grain_in = float(np.std(window[20:-20, 20:-20, 1].astype(float)))
    grain_out = float(np.std(darker[20:-20, 20:-20, 1].astype(float)))
    assert darker[..., 1].mean() < window[..., 1].mean() - 20  # half the light: darker
    assert abs(grain_out / grain_in - 1.0) < 0.1  # the grain stays at the input's level
    with pytest.raises(ValueError):
        relight_window(window.astype(np.float32), np.ones((2, 2, 3), np.float32), 2.0)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def relit(models_dir: Path, clips: Path) -> dict[str, np.ndarray]:
    """d13 (a close-up with ears, neck and a ceiling behind) relit with a key light from camera right."""
    config = ProcessorConfig(light_time_constant_s=0.0, watermark=WatermarkConfig(enabled=False))
    person = FaceProcessor.from_models(models_dir, config)
    face_only = FaceProcessor.from_models(models_dir, ProcessorConfig(**{**config.__dict__, "person_light": None}))
    assert person.person_masks is not None and face_only.person_masks is None
    target = RelightTarget(mode="direction", direction=(0.8, 0.25, 0.55), ambient=0.3)
    settings = ProcessSettings(swap=False, relight_target=target)
    frames = clip_frames(clips / "d13.mp4", 6)
    for image, t in frames:
        out = person.process(image, t, settings)
        only = face_only.process(image, t, settings)
    assert out.failed_stage is None and only.failed_stage is None and out.faces
    lm = out.faces[0].landmarks
    return {"input": frames[-1][0], "person": out.image, "face_only": only.image, "landmarks": lm}


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)


def test_the_ears_and_neck_are_relit_with_the_face(relit: dict[str, np.ndarray]) -> None:
    lm = relit["landmarks"]
    span = float(np.ptp(lm[:, 0]))
    chin_x, chin_y = (int(v) for v in lm[152, :2])
    # The neck: below the chin. The far side's ear: beyond the face's left edge (camera left: away from the light).
    neck = (
        slice(chin_y + int(0.25 * span), chin_y + int(0.45 * span)),
        slice(chin_x - int(0.15 * span), chin_x + int(0.15 * span)),
    )
    left = int(lm[:, 0].min())
    ear = (
        slice(int(lm[234, 1]) - int(0.1 * span), int(lm[234, 1]) + int(0.1 * span)),
        slice(left - int(0.12 * span), left - 2),
    )
    cheek = (
        slice(int(lm[234, 1]) - int(0.1 * span), int(lm[234, 1]) + int(0.1 * span)),
        slice(left + int(0.05 * span), left + int(0.2 * span)),
    )
    y_in, y_person, y_face = (_luma(relit[k]) for k in ("input", "person", "face_only"))
    # The shadowed cheek darkens under both; the ear beside it only when the person is relit.
    assert y_person[cheek].mean() < y_in[cheek].mean() - 10 and y_face[cheek].mean() < y_in[cheek].mean() - 10
    assert y_person[ear].mean() < y_in[ear].mean() - 8
    assert abs(y_face[ear].mean() - y_in[ear].mean()) < 2
    assert np.abs(y_person[neck] - y_in[neck]).mean() > 3 and np.array_equal(
        relit["face_only"][neck], relit["input"][neck]
    )


def test_the_neck_turns_to_a_side_light_like_the_cheeks(relit: dict[str, np.ndarray]) -> None:
    # Key light from camera right: the neck's right half must brighten against its left half as the face's right
    # cheek does against its left. The silhouette alone gives the neck (inside the outline, between jaw and
    # collar) normals facing the camera and an even change: the face-only relight and that both fail this.
    lm = relit["landmarks"]
    span = float(np.ptp(lm[:, 0]))
    chin_x, chin_y = (int(v) for v in lm[152, :2])
    rows = slice(chin_y + int(0.05 * span), chin_y + int(0.2 * span))
    left, right = slice(chin_x - int(0.22 * span), chin_x - 2), slice(chin_x + 2, chin_x + int(0.22 * span))
    cheeks = slice(int(lm[1, 1]), int(lm[152, 1]) - int(0.1 * span))
    c_left = slice(int(lm[234, 0]) + int(0.1 * span), int(lm[1, 0]) - int(0.1 * span))
    c_right = slice(int(lm[1, 0]) + int(0.1 * span), int(lm[454, 0]) - int(0.1 * span))

    def turn(key: str, r: slice, a: slice, b: slice) -> float:
        """How much brighter side ``b`` got against side ``a`` (ratio of ratios of mean luma)."""
        y_in, y_out = _luma(relit["input"]), _luma(relit[key])
        return float((y_out[r, b].mean() / y_out[r, a].mean()) / (y_in[r, b].mean() / y_in[r, a].mean()))

    face_turn = turn("person", cheeks, c_left, c_right)
    neck_turn = turn("person", rows, left, right)
    assert face_turn > 1.3
    assert neck_turn > 1.25, (face_turn, neck_turn)
    assert abs(turn("face_only", rows, left, right) - 1.0) < 0.02


def test_the_grain_of_the_cheeks_stays_at_the_input_s_level(relit: dict[str, np.ndarray]) -> None:
    # The shadowed cheek (camera left) and the lit one: fine detail (luma minus a 1.5 px blur) as strong as the
    # input's. Scaled with the shading (a ratio on every pixel), the shadowed cheek's would shrink with it.
    lm = relit["landmarks"]
    span = float(np.ptp(lm[:, 0]))
    rows = slice(int(lm[1, 1]), int(lm[152, 1]) - int(0.15 * span))
    cheeks = (
        (rows, slice(int(lm[234, 0]) + int(0.08 * span), int(lm[61, 0]) - int(0.05 * span))),
        (rows, slice(int(lm[291, 0]) + int(0.05 * span), int(lm[454, 0]) - int(0.08 * span))),
    )

    def grain(key: str, cheek: tuple[slice, slice]) -> float:
        y = _luma(relit[key])
        return float(np.mean((y - cv2.GaussianBlur(y, (0, 0), 1.5))[cheek] ** 2))

    y_in, y_out = _luma(relit["input"]), _luma(relit["person"])
    shadowed, lit = cheeks
    assert y_out[shadowed].mean() < 0.8 * y_in[shadowed].mean()  # a fifth darker: scaled, the grain would shrink
    for cheek in cheeks:
        assert abs(grain("person", cheek) / grain("input", cheek) - 1.0) < 0.06, (
            grain("person", cheek),
            grain("input", cheek),
        )


def test_the_background_keeps_its_exposure(relit: dict[str, np.ndarray]) -> None:
    # d13's top corners are the ceiling, far from the person: untouched.
    h, w = relit["input"].shape[:2]
    for corner in ((slice(0, h // 10), slice(0, w // 8)), (slice(0, h // 10), slice(w - w // 8, w))):
        assert np.array_equal(relit["person"][corner], relit["input"][corner])


def test_a_hard_side_light_leaves_the_face_and_the_neck_alike(models_dir: Path, clips: Path) -> None:
    # s18 frame 20: a hard window light from camera left on face and neck alike (side light -1.1 on both). Relit to
    # a light from above, face and neck must lose it together (the real-image check of issue 24: their gap may grow
    # by at most SIDE_GAP over the input's). With the z-like terms of band 2 (xz, yz, 3z^2-1) penalised as lightly
    # as xy, the light measured on the face put part of the window light in xz: the face kept a third of it while
    # the neck, whose normals have smaller z, lost all of it (gap 0.44 against 0.03 + 0.3).
    from benchmarks.eval_relight_real import DIRECTIONS, SIDE_GAP, Frame, checks, relight

    config = ProcessorConfig(light_time_constant_s=0.0, stillness=None, watermark=WatermarkConfig(enabled=False))
    proc = FaceProcessor.from_models(models_dir, config)
    frame = Frame(proc, clips / "s18.mp4", 20)
    target = RelightTarget(mode="direction", direction=DIRECTIONS["top"], intensity=1.0, ambient=0.3)
    c = checks(frame, relight(proc, frame.image, frame.t, target))
    assert c["side_face_in"] < -0.8 and c["side_neck_in"] < -0.8  # the window light, on both
    gap, gap_in = abs(c["side_face"] - c["side_neck"]), abs(c["side_face_in"] - c["side_neck_in"])
    assert gap <= gap_in + SIDE_GAP, (c["side_face"], c["side_neck"], gap_in)
    # Taken off both, not left on both: each keeps under half of the input's side light.
    assert abs(c["side_face"]) < 0.5 * abs(c["side_face_in"]) and abs(c["side_neck"]) < 0.5 * abs(c["side_neck_in"])


def test_the_skin_under_the_nose_keeps_the_face_s_colour(relit: dict[str, np.ndarray]) -> None:
    # Facing down, the skin under the nose shows normals the face barely has: each channel's light extrapolates there
    # on its own, and on d13 green and blue fell to their floor while red did not — a key from the right turned it
    # blue-green (its blue share x1.8 with the person relight, green up by half with the face-only one). Its colour
    # must change as the cheeks' does (the lights' change of colour): ``relight.bound_colour``, in both.
    lm = relit["landmarks"]
    r = max(3, int(0.04 * float(np.ptp(lm[:, 0]))))

    def share_change(key: str, point: int) -> np.ndarray:
        x, y = int(lm[point, 0]), int(lm[point, 1])
        shares = []
        for image in (relit["input"], relit[key]):
            rgb = srgb_to_linear(image[y - r : y + r, x - r : x + r, ::-1] / 255.0).reshape(-1, 3).mean(axis=0)
            shares.append(rgb / rgb.sum())
        return shares[1] / shares[0]

    for key in ("person", "face_only"):
        cheeks = np.mean([share_change(key, p) for p in (50, 280)], axis=0)  # MediaPipe's cheek points
        for point in (94, 19, 2):  # under the nose tip, over the lip
            change = share_change(key, point)
            assert np.all(change < 1.2 * cheeks), (key, point, change, cheeks)
