"""Spherical-harmonics relighting: the maths, the estimation, time smoothing, targets, the per-pixel relight
(numpy and torch, which must agree), the ONNX export, and relighting real faces from the shared photos."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engines.errors import InputError
from engines.light.relight import (
    FaceRelighter,
    LightTracker,
    estimate_sh,
    hdri_sh,
    relight_face,
    target_sh,
)
from engines.light.relight_torch import SHRelight, SHRelightAlbedo
from engines.light.sh import (
    constant_sh,
    directional_sh,
    equirect_directions,
    face_mean,
    hemisphere_mean,
    linear_to_srgb,
    mesh_to_camera,
    sh_basis,
    sh_from_flat,
    sh_to_flat,
    shading,
    srgb_to_linear,
)
from engines.settings import RelightTarget, apply_patch


def sphere(size: int = 120, radius: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame normals of a sphere filling a square window (zero outside) and its mask."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(c, c)
    x, y = x / radius, -y / radius  # image rows go down, camera y goes up
    r2 = x * x + y * y
    mask = r2 < 1.0
    z = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    n = np.stack([x, y, z], axis=-1) * mask[..., None]
    return n.astype(np.float32), mask


def render(albedo_rgb: np.ndarray, normals: np.ndarray, mask: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """Albedo x shading, encoded to a BGR uint8 image (black outside the mask)."""
    e = np.clip(shading(sh, normals), 0.0, None)
    lin = albedo_rgb * e * mask[..., None]
    return np.round(linear_to_srgb(lin)[..., ::-1] * 255.0).astype(np.uint8)


def random_front_normals(n: int, seed: int = 0) -> np.ndarray:
    """Normals spread like a face's: the camera-facing hemisphere, denser toward the camera."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2]) + 0.6
    return v / np.linalg.norm(v, axis=1, keepdims=True)


KEY_A = directional_sh((-0.5, 0.4, 0.8), 0.9, (1.0, 1.0, 1.0), 0.35)
KEY_B = directional_sh((0.8, 0.1, 0.6), 1.1, (1.0, 0.8, 0.6), 0.25)


# ------------------------------------------------------------------------------------------------ maths


def test_sh_basis_is_orthonormal_over_the_sphere() -> None:
    dirs, d_omega = equirect_directions(256, 512)
    basis = sh_basis(dirs).reshape(-1, 9)
    gram = (basis * d_omega.reshape(-1, 1)).T @ basis
    np.testing.assert_allclose(gram, np.eye(9), atol=2e-3)


def test_directional_light_matches_a_clamped_cosine_lamp() -> None:
    n = random_front_normals(5000)
    n = np.concatenate([n, -n])  # the whole sphere
    d = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    sh = directional_sh(d, 1.5, (1.0, 0.5, 0.25), 0.2)
    exact = 0.2 + 1.5 * np.maximum(n @ d, 0.0)[:, None] * np.array([1.0, 0.5, 0.25])
    err = np.abs(shading(sh, n) - exact)
    # Order 2 keeps the clamped cosine to within ~0.1 of its peak (Ramamoorthi and Hanrahan 2001).
    assert err[:, 0].max() < 0.1 * 1.5 * 1.06
    assert err[:, 0].mean() < 0.05
    # The brightest normal is the light's direction.
    assert np.linalg.norm(n[np.argmax(shading(sh, n)[:, 0])] - d) < 0.1


def test_constant_light_and_hemisphere_mean() -> None:
    sh = constant_sh((0.2, 0.5, 1.0))
    np.testing.assert_allclose(shading(sh, random_front_normals(50)), np.tile([0.2, 0.5, 1.0], (50, 1)), atol=1e-12)
    np.testing.assert_allclose(hemisphere_mean(sh), [0.2, 0.5, 1.0])
    # The analytic hemisphere mean equals the measured mean over camera-facing normals.
    dirs, d_omega = equirect_directions(256, 512)
    front = dirs[..., 2] > 0
    e = shading(KEY_B, dirs[front])
    measured = (e * d_omega[front][:, None]).sum(0) / d_omega[front].sum()
    np.testing.assert_allclose(hemisphere_mean(KEY_B), measured, rtol=2e-3)


def test_mesh_frame_to_camera_frame() -> None:
    # Mesh/image frame: y down, z away from the camera. A forehead normal facing the camera and tilted up:
    mesh = np.array([[0.0, -0.6, -0.8], [1.0, 0.0, 0.0]])
    cam = mesh_to_camera(mesh)
    np.testing.assert_allclose(cam, [[0.0, 0.6, 0.8], [1.0, 0.0, 0.0]], atol=1e-7)
    # A rotation (det +1): handedness is kept.
    np.testing.assert_allclose(np.linalg.det(np.diag([1.0, -1.0, -1.0])), 1.0)


def test_sh_flat_round_trip_and_srgb() -> None:
    flat = tuple(float(i) for i in range(27))
    sh = sh_from_flat(flat)
    assert sh.shape == (9, 3) and sh[0, 1] == 9.0  # G's first coefficient is the 10th number
    assert sh_to_flat(sh) == flat
    with pytest.raises(ValueError):
        sh_from_flat(flat[:26])
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-9)
    assert abs(float(srgb_to_linear(np.array(0.5))) - 0.214) < 1e-3


# ------------------------------------------------------------------------------------------------ estimation


def test_estimate_recovers_the_light_despite_outliers() -> None:
    rng = np.random.default_rng(1)
    n = random_front_normals(4000, seed=2)
    albedo = np.array([0.55, 0.38, 0.3]) * (1 + 0.05 * rng.normal(size=(4000, 1)))
    colours = albedo * np.clip(shading(KEY_A, n), 0, None)
    dirty = colours.copy()
    out = rng.random(4000) < 0.12  # eyes, brows, beard (dark) and highlights (bright)
    dirty[out] = np.where(rng.random((out.sum(), 1)) < 0.5, 0.02, 0.95)
    truth = np.clip(shading(KEY_A, n), 0, None) * np.array([0.55, 0.38, 0.3])

    def shading_error(sh: np.ndarray) -> float:
        return float(np.abs(shading(sh, n) - truth).mean() / truth.mean())

    clean_err = shading_error(estimate_sh(colours, n))
    robust_err = shading_error(estimate_sh(dirty, n))
    naive_err = shading_error(estimate_sh(dirty, n, trim=None))
    assert clean_err < 0.03
    assert robust_err < 0.05
    assert naive_err > 2 * robust_err  # the trimming pass is what removes the outliers


def test_estimate_with_albedo_returns_the_absolute_light() -> None:
    rng = np.random.default_rng(3)
    n = random_front_normals(3000, seed=4)
    albedo = rng.uniform(0.2, 0.8, size=(3000, 3))
    colours = albedo * np.clip(shading(KEY_B, n), 0, None)
    sh = estimate_sh(colours, n, albedo=albedo)
    err = np.abs(shading(sh, n) - np.clip(shading(KEY_B, n), 0, None)).mean()
    assert err < 0.02 * float(hemisphere_mean(KEY_B).mean())


def test_estimate_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 9"):
        estimate_sh(np.ones((5, 3)), random_front_normals(5))
    with pytest.raises(ValueError, match="normals"):
        estimate_sh(np.ones((50, 3)), random_front_normals(40))
    # NaN samples are ignored, not propagated.
    n = random_front_normals(500)
    c = np.clip(shading(KEY_A, n), 0, None)
    c[::7] = np.nan
    assert np.isfinite(estimate_sh(c, n)).all()


# ------------------------------------------------------------------------------------------------ time


def test_light_tracker_smooths_follows_and_resets() -> None:
    rng = np.random.default_rng(5)
    tracker = LightTracker(time_constant_s=0.3)
    raw, smooth = [], []
    for i in range(300):
        noisy = KEY_A * (1 + 0.1 * rng.normal())
        raw.append(noisy[0, 0])
        smooth.append(tracker.update(noisy, i / 30)[0, 0])
    assert np.std(smooth[30:]) < 0.3 * np.std(raw[30:])
    # A step (a lamp switched) is followed within about three time constants.
    for i in range(300, 330):
        out = tracker.update(KEY_B, i / 30)
    np.testing.assert_allclose(out, KEY_B, atol=0.05 * np.abs(KEY_B).max())
    # Time going backwards (a new clip) or a long gap starts over.
    np.testing.assert_allclose(tracker.update(KEY_A, 0.0), KEY_A)
    tracker.update(KEY_B, 0.1)
    np.testing.assert_allclose(tracker.update(KEY_A, 5.0), KEY_A)
    # A broken estimate does not poison the state.
    np.testing.assert_allclose(tracker.update(np.full((9, 3), np.nan), 5.03), KEY_A)


# ------------------------------------------------------------------------------------------------ targets


def test_match_target_is_the_measured_light() -> None:
    np.testing.assert_allclose(target_sh(RelightTarget(), KEY_A, None), KEY_A)


def test_absolute_targets_take_the_measured_exposure() -> None:
    measured = KEY_A * np.array([0.6, 0.4, 0.3])  # light x the face's mean albedo
    exposure = face_mean(measured)
    flat = sh_to_flat(KEY_B)
    got = target_sh(RelightTarget(mode="sh", sh=flat), measured, None)
    np.testing.assert_allclose(got, KEY_B * exposure[None, :])
    direction = RelightTarget(mode="direction", direction=(1.0, 0.0, 0.0), intensity=1.0, ambient=0.0)
    got = target_sh(direction, measured, None)
    right, left = shading(got, np.array([[1.0, 0, 0], [-1.0, 0, 0]]))
    assert (right > 0.9 * exposure).all() and (np.abs(left) < 0.1 * exposure).all()
    # A white target whose face mean is 1 keeps the exposure.
    np.testing.assert_allclose(
        face_mean(target_sh(RelightTarget(mode="sh", sh=sh_to_flat(constant_sh(1.0))), measured, None)), exposure
    )


def write_equirect(path: Path, bright_lon_deg: float, bright_lat_deg: float = 0.0) -> None:
    """An 8-bit equirectangular image, dim grey with one bright warm patch at (longitude, latitude)."""
    h, w = 64, 128
    img = np.full((h, w, 3), 20, np.uint8)
    u = int((bright_lon_deg / 360.0 + 0.5) * w)
    v = int((0.5 - bright_lat_deg / 180.0) * h)
    cv2.circle(img, (u, v), 8, (200, 230, 255), -1)  # BGR: warm
    assert cv2.imwrite(str(path), img)


def test_hdri_target_lights_from_where_the_image_is_bright(tmp_path: Path) -> None:
    write_equirect(tmp_path / "stage-left.png", bright_lon_deg=60.0)  # right of centre: the picture's right
    target = RelightTarget(mode="hdri", hdri="stage-left")
    sh = target_sh(target, constant_sh(1.0), tmp_path)
    right, left = shading(sh, np.array([[0.8, 0.0, 0.6], [-0.8, 0.0, 0.6]]))
    assert right[0] > 1.5 * left[0]
    assert right[0] > right[2]  # warm: more red than blue
    lum = float(face_mean(sh) @ np.array([0.2126, 0.7152, 0.0722]))
    assert abs(lum - 1.0) < 1e-6  # normalised to the measured exposure
    # Same file: cached; the explicit suffix finds it too.
    np.testing.assert_allclose(
        target_sh(RelightTarget(mode="hdri", hdri="stage-left.png"), constant_sh(1.0), tmp_path), sh
    )
    info = hdri_sh.cache_info()
    target_sh(target, constant_sh(1.0), tmp_path)
    assert hdri_sh.cache_info().hits > info.hits


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "/abs", "UPPER", "", "x" * 80])
def test_hdri_names_cannot_leave_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError):
        target_sh(RelightTarget(mode="hdri", hdri=name), constant_sh(1.0), tmp_path)


def test_hdri_errors_say_why(tmp_path: Path) -> None:
    write_equirect(tmp_path / "wall.png", 0.0)
    with pytest.raises(InputError, match=r"no HDRI named 'nope'.*available: wall.png"):
        target_sh(RelightTarget(mode="hdri", hdri="nope"), constant_sh(1.0), tmp_path)
    with pytest.raises(InputError, match="HDRI folder"):
        target_sh(RelightTarget(mode="hdri", hdri="wall"), constant_sh(1.0), None)
    cv2.imwrite(str(tmp_path / "square.png"), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="twice as wide"):
        target_sh(RelightTarget(mode="hdri", hdri="square"), constant_sh(1.0), tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="cannot read"):
        target_sh(RelightTarget(mode="hdri", hdri="broken"), constant_sh(1.0), tmp_path)
    cv2.imwrite(str(tmp_path / "black.png"), np.zeros((64, 128, 3), np.uint8))
    with pytest.raises(InputError, match="black"):
        target_sh(RelightTarget(mode="hdri", hdri="black"), constant_sh(1.0), tmp_path)


def test_settings_patch_reaches_the_target() -> None:
    from engines.settings import ProcessSettings

    s = apply_patch(ProcessSettings(), {"relight_target": {"mode": "direction", "direction": [0, 0, 5], "ambient": 0}})
    sh = target_sh(s.relight_target, constant_sh(1.0), None)
    front = shading(sh, np.array([[0.0, 0.0, 1.0]]))[0]
    np.testing.assert_allclose(front, 1.0, atol=0.07)  # a frontal lamp of intensity 1 at the facing normal


# ------------------------------------------------------------------------------------------------ per pixel


def test_ratio_relight_turns_light_a_into_light_b() -> None:
    n, mask = sphere()
    albedo = np.array([0.6, 0.42, 0.33])
    img_a = render(albedo, n, mask, KEY_A)
    img_b = render(albedo, n, mask, KEY_B)
    out = relight_face(img_a, n, mask, KEY_A, KEY_B, shading_grid_px=None)
    lit = mask & (np.clip(shading(KEY_A, n), 0, None)[..., 0] > 0.1)
    err = np.abs(out.astype(int) - img_b.astype(int))[lit]
    base = np.abs(img_a.astype(int) - img_b.astype(int))[lit]
    assert err.mean() < 1.0 and np.percentile(err, 99) <= 3
    assert base.mean() > 15  # the two lights really differ
    # Same light in and out: nothing changes.
    same = relight_face(img_a, n, mask, KEY_A, KEY_A)
    assert np.abs(same.astype(int) - img_a.astype(int)).max() <= 1


def test_albedo_relight_and_the_mask() -> None:
    n, mask = sphere()
    albedo_rgb = np.array([0.5, 0.4, 0.3])
    albedo_bgr = np.broadcast_to(albedo_rgb[::-1], n.shape).astype(np.float32)
    canvas = np.full(n.shape, 77, np.uint8)
    out = relight_face(canvas, n, mask, KEY_A, KEY_B, albedo=albedo_bgr, shading_grid_px=None)
    expected = render(albedo_rgb, n, mask, KEY_B)
    assert np.abs(out.astype(int) - expected.astype(int))[mask].max() <= 2
    assert (out[~mask] == 77).all()  # nothing painted outside the mask
    # A half-weight mask blends half-way.
    half = relight_face(canvas, n, mask.astype(np.float32) * 0.5, KEY_A, KEY_B, albedo=albedo_bgr)
    mid_lin = (srgb_to_linear(np.full(3, 77 / 255.0)) + srgb_to_linear(expected / 255.0)) / 2  # in linear light
    assert np.abs(half.astype(float) - linear_to_srgb(mid_lin) * 255.0)[mask].mean() < 1.0


def test_coarse_shading_grid_is_close_to_per_pixel() -> None:
    n, mask = sphere(300)
    img = render(np.array([0.6, 0.45, 0.35]), n, mask, KEY_A)
    exact = relight_face(img, n, mask, KEY_A, KEY_B, shading_grid_px=None)
    fast = relight_face(img, n, mask, KEY_A, KEY_B)  # default grid
    d = np.abs(exact.astype(int) - fast.astype(int))[mask]
    assert d.mean() < 0.5 and np.percentile(d, 99) <= 3
    # A coarse normal grid given directly gives the same picture.
    from engines.light.relight import _coarse_normals

    grid = _coarse_normals(n, (96, 96))
    via_grid = relight_face(img, grid, mask, KEY_A, KEY_B)
    assert np.abs(via_grid.astype(int) - fast.astype(int))[mask].mean() < 0.5


def test_relight_refuses_mismatched_shapes() -> None:
    n, mask = sphere(40)
    img = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        relight_face(img.astype(np.float32), n, mask, KEY_A, KEY_B)
    with pytest.raises(ValueError, match="mask"):
        relight_face(img, n, mask[:30], KEY_A, KEY_B)
    with pytest.raises(ValueError, match="normals"):
        relight_face(img, np.zeros((50, 40, 3), np.float32), mask, KEY_A, KEY_B)
    with pytest.raises(ValueError, match="albedo"):
        relight_face(img, n, mask, KEY_A, KEY_B, albedo=np.ones((10, 10, 3), np.float32))
    # Every 8-bit value survives the trip to linear light and back (pixels the mask leaves alone).
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    flat, inside = np.zeros((16, 16, 3), np.float32), np.full((16, 16), 0.0, np.float32)
    inside[0, 0] = inside[15, 15] = 1.0  # the mask's box is the whole window, its weight zero inside
    kept = relight_face(ramp, flat, inside, KEY_A, KEY_B) == ramp
    assert kept.all(axis=2).sum() >= 254
    # An empty mask returns the window untouched.
    assert (relight_face(img + 9, n, np.zeros((40, 40)), KEY_A, KEY_B) == 9).all()


# ------------------------------------------------------------------------------------------------ torch / ONNX


def _torch_inputs(img: np.ndarray, n: np.ndarray, mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple:
    return (
        torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0),
        torch.from_numpy(n.transpose(2, 0, 1)[None].copy()),
        torch.from_numpy(mask[None, None].astype(np.float32)),
        torch.from_numpy(a[None].astype(np.float32)),
        torch.from_numpy(b[None].astype(np.float32)),
    )


def test_torch_module_equals_the_numpy_path() -> None:
    n, mask = sphere(100)
    img = render(np.array([0.6, 0.45, 0.35]), n, mask, KEY_A)
    img[mask] = np.clip(img[mask].astype(int) + np.random.default_rng(0).integers(-20, 20, img[mask].shape), 0, 255)
    expected = relight_face(img, n, mask, KEY_A, KEY_B, shading_grid_px=None)
    with torch.no_grad():
        got = SHRelight()(*_torch_inputs(img, n, mask, KEY_A, KEY_B))[0].numpy().transpose(1, 2, 0) * 255.0
    d = np.abs(got - expected)
    assert d.max() <= 1.0 and d.mean() < 0.3
    # With an albedo.
    albedo = np.broadcast_to(np.array([0.3, 0.4, 0.5], np.float32), n.shape).copy()
    expected = relight_face(img, n, mask, KEY_A, KEY_B, albedo=albedo, shading_grid_px=None)
    image, normals, weight, _, target = _torch_inputs(img, n, mask, KEY_A, KEY_B)
    with torch.no_grad():
        relit = SHRelightAlbedo()(
            image, normals, weight, target, torch.from_numpy(albedo.transpose(2, 0, 1)[None].copy())
        )
    got = relit[0].numpy().transpose(1, 2, 0) * 255.0
    assert np.abs(got - expected).max() <= 1.0


@pytest.mark.parametrize("use_albedo", [False, True])
def test_onnx_export_runs_in_onnxruntime(tmp_path: Path, use_albedo: bool) -> None:
    import onnx
    import onnxruntime as ort

    from engines.catalogue import RELIGHT, RELIGHT_ALBEDO
    from engines.runtime.export import export_onnx

    engine = RELIGHT_ALBEDO if use_albedo else RELIGHT
    path = export_onnx(engine, engine.factory(None), tmp_path / "sh_relight.onnx")
    model = onnx.load(str(path))
    assert model.ir_version <= 10
    assert {o.domain: o.version for o in model.opset_import}.get("", 0) == 17
    module = (SHRelightAlbedo() if use_albedo else SHRelight()).eval()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(module.input_names)
    assert [o.name for o in session.get_outputs()] == ["relit"]
    for batch, h, w in ((1, 96, 80), (3, 57, 131)):  # faces, height and width are dynamic
        inputs = module.example_inputs(batch, h, w)
        with torch.no_grad():
            expected = module(*inputs).numpy()
        got = session.run(None, {k: v.numpy() for k, v in zip(module.input_names, inputs, strict=True)})[0]
        assert got.shape == (batch, 3, h, w)
        np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.gpu
def test_torch_module_on_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    module = SHRelight()
    inputs = module.example_inputs(4, 256, 200)
    with torch.no_grad():
        cpu = module(*inputs)
        gpu = module.cuda()(*(t.cuda() for t in inputs)).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------------ per face


def test_face_relighter_keeps_light_per_face_and_forgets() -> None:
    n, mask = sphere(80)
    img = render(np.array([0.6, 0.45, 0.35]), n, mask, KEY_A)
    relighter = FaceRelighter()
    target = RelightTarget(mode="direction", direction=(0.8, 0.1, 0.6), intensity=1.1, colour=(1, 0.8, 0.6))
    first = relighter.relight(1, 0.0, img, n, mask, target)
    assert first is not None
    # Measured light is the albedo-scaled KEY_A: relighting back to "match" changes nothing.
    same = relighter.relight(1, 1 / 30, img, n, mask, RelightTarget())
    assert same is not None and np.abs(same.image.astype(int) - img.astype(int)).max() <= 2
    # No skin visible and no history: nothing to do; with history: the last light is reused.
    empty = np.zeros_like(mask)
    assert relighter.relight(2, 0.0, img, n, empty, target) is None
    reuse = relighter.relight(1, 2 / 30, img, n, empty, target)
    assert reuse is not None
    relighter.forget([2])
    assert relighter.relight(1, 3 / 30, img, n, empty, target) is None
    # Bad targets are input errors, not crashes.
    with pytest.raises(InputError):
        relighter.relight(1, 0.1, img, n, mask, RelightTarget(mode="hdri", hdri="missing"))


def test_relighting_changes_the_light_direction_not_the_face() -> None:
    """The lit side moves with the target; the average colour of the face stays close (units are right)."""
    n, mask = sphere(100)
    img = render(np.array([0.6, 0.45, 0.35]), n, mask, KEY_A)
    relighter = FaceRelighter()
    out_right = relighter.relight(1, 0.0, img, n, mask, RelightTarget(mode="direction", direction=(1, 0, 0.4)))
    out_left = relighter.relight(2, 0.0, img, n, mask, RelightTarget(mode="direction", direction=(-1, 0, 0.4)))
    assert out_right is not None and out_left is not None
    half = n.shape[1] // 2
    r_lum = out_right.image.astype(float).mean(axis=2)
    l_lum = out_left.image.astype(float).mean(axis=2)
    right_side, left_side = mask[:, half:], mask[:, :half]
    assert r_lum[:, half:][right_side].mean() > 1.3 * r_lum[:, :half][left_side].mean()
    assert l_lum[:, :half][left_side].mean() > 1.3 * l_lum[:, half:][right_side].mean()
    assert math.isclose(r_lum[mask].mean(), l_lum[mask].mean(), rel_tol=0.1)


# ------------------------------------------------------------------------------------------------ real faces


def test_face_mean_weights_match_the_canonical_face() -> None:
    from engines.face.topology import face_topology
    from engines.light.sh import FACE_MEAN_WEIGHTS

    topo = face_topology()
    v = topo.canonical.astype(np.float64)
    a, b, c = (v[topo.triangles[:, k]] for k in range(3))
    normals = np.cross(c - a, b - a)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    screen_area = np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    measured = (sh_basis(mesh_to_camera(normals)) * screen_area[:, None]).sum(0) / screen_area.sum()
    np.testing.assert_allclose(FACE_MEAN_WEIGHTS, measured, atol=0.01)


@pytest.fixture(scope="module")
def obama(faces: Path) -> np.ndarray:
    img = cv2.imread(str(faces / "obama.jpg"))
    assert img is not None
    return img


def test_pixel_normals_of_a_tracked_face_face_the_camera(obama: np.ndarray, tracker) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.eval_relight_synthetic import _window_around
    from engines.face.landmarks import LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER
    from engines.light.relight import grid_size, pixel_normals

    lm = tracker.update(obama, 0.0)[0].landmarks
    window = _window_around(lm, obama.shape)
    n, covered = pixel_normals(lm, window)
    assert n.shape == (window.height, window.width, 3) and covered.mean() > 0.5
    length = np.linalg.norm(n[covered], axis=1)
    np.testing.assert_allclose(length, 1.0, atol=1e-4)
    assert (n[covered][:, 2] > 0).mean() > 0.97  # facing the camera (z toward it)
    assert (n[~covered] == 0).all()

    def at(index: int, dx: float = 0.0) -> np.ndarray:
        x = int(lm[index, 0] - window.x0 + dx)
        y = int(lm[index, 1] - window.y0)
        return n[y, x]

    eye_gap = float(lm[LEFT_EYE_OUTER, 0] - lm[RIGHT_EYE_OUTER, 0])
    # Outside the outer eye corners the face turns away: left in the picture points left (x < 0), right points right.
    assert at(RIGHT_EYE_OUTER, -0.15 * eye_gap)[0] < -0.3
    assert at(LEFT_EYE_OUTER, 0.15 * eye_gap)[0] > 0.3
    assert at(NOSE_TIP)[2] > 0.8
    # Forehead tilts up (y > 0 in the camera frame), under the chin down.
    assert at(10)[1] > 0.2 or n[int(lm[10, 1] - window.y0) + 5, int(lm[10, 0] - window.x0)][1] > 0.2
    assert at(152)[1] < -0.2 or n[int(lm[152, 1] - window.y0) - 5, int(lm[152, 0] - window.x0)][1] < -0.2
    # The coarse grid is the per-pixel field, sampled.
    grid, grid_cov = pixel_normals(lm, window, grid_px=64)
    assert grid.shape[:2][::-1] == grid_size(window.width, window.height, 64)
    up = cv2.resize(grid, (window.width, window.height), interpolation=cv2.INTER_LINEAR)
    inner = cv2.erode(covered.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    assert np.median(np.linalg.norm(up[inner] - n[inner], axis=1)) < 0.05


def test_relight_alone_on_the_actors_own_face(obama: np.ndarray, tracker) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.eval_relight_synthetic import _window_around
    from engines.face.topology import face_topology
    from engines.light.relight import SHADING_GRID_PX, pixel_normals
    from engines.swap.raster import rasterize

    lm = tracker.update(obama, 0.0)[0].landmarks
    window = _window_around(lm, obama.shape)
    crop = obama[window.slices]
    normals, _ = pixel_normals(lm, window, grid_px=SHADING_GRID_PX)
    mask = rasterize(lm, face_topology().triangles, window).mask
    relighter = FaceRelighter()
    same = relighter.relight(1, 0.0, crop, normals, mask, RelightTarget())
    assert same is not None
    assert np.abs(same.image.astype(int) - crop.astype(int)).max() <= 2  # match: the light it has
    lamp = RelightTarget(mode="direction", direction=(-1.0, 0.0, 0.3), intensity=1.0, ambient=0.2)
    side = relighter.relight(1, 1 / 30, crop, normals, mask, lamp)
    assert side is not None
    ratio = side.image.astype(float).mean(axis=2) / np.maximum(crop.astype(float).mean(axis=2), 1.0)
    cx = int(lm[1, 0] - window.x0)  # the nose divides the face
    left, right = mask.copy(), mask.copy()
    left[:, cx:] = False
    right[:, :cx] = False
    assert np.median(ratio[left]) > 1.4 * np.median(ratio[right])  # lit from the picture's left
    assert (side.image[~mask] == crop[~mask]).all()


def test_synthetic_relight_meets_the_acceptance_on_a_real_face(obama: np.ndarray, tracker) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.eval_relight_synthetic import ACCEPT_RATIO, LIGHT_PAIRS, prepare_face, run_case

    face = prepare_face(obama, tracker)
    pair = LIGHT_PAIRS[1]
    result = run_case(face, pair, tracker)
    assert result.ratio <= ACCEPT_RATIO
    assert result.mse["oracle"] < 0.01 * result.mse["baseline"]  # exact inputs: only 8-bit rounding left
    assert result.dssim["relit"] < 0.5 * result.dssim["baseline"]
    # The measure can fail: relighting to the wrong light (B's mirror image) is far from the B render.
    mirrored = pair.b * np.array([1, 1, 1, -1, -1, 1, 1, -1, 1])[:, None]  # x -> -x
    wrong = run_case(face, pair, tracker, relight_to=mirrored)
    assert wrong.ratio > ACCEPT_RATIO
