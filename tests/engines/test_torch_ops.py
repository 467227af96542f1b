"""The torch twins of the per-face stages equal the numpy stages on real faces.

``engines/light/torch_ops.py``, ``engines/compose/torch_ops.py`` and ``engines/swap/torch_ops.py`` are run
on CPU tensors (and on CUDA ones where a GPU exists, under ``make test-gpu``) against the numpy functions
they mirror — imported, not copied, so a change to a numpy stage is checked here too — on faces tracked in
three shared clips, with the inputs the processor gives those stages: the work window, the geometry grid
of normals, the covered mask, the light measured on the face, the blend's alpha, the face mesh.

Tolerance, per stage output (uint8 pictures): **at most 1 level of 255 at any pixel, and under 0.01 levels
on average**. Both sides do the same float32 (gains: float64) arithmetic; what differs is the order of
operations inside a few library calls (cv2's bilinear resize and blend against torch's, numpy's ``power``
against torch's ``pow``), worth about 1e-6, which moves a value across a rounding or table boundary —
one level — at a handful of pixels. A wrong step (a swapped channel, a missed clamp, a different upsampling
convention) changes many pixels by more than one level and fails both bounds. The gains, a mean of up to
4000 pixels, agree within 1e-9 relative. The rasteriser covers the same pixels with the same triangles
(the edge tests and the z-buffer's keys are the same float32 numbers), its weights and anything
interpolated with them within 1e-5. The texture lookup: uint8 by the bound above, float albedo within 1e-6.
The resizes and the colour transfer have their own bounds, stated in their tests; the measured light
(float64 on both sides) agrees within 1e-9.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from engines import resample, torch_resample
from engines.compose import blend, chroma
from engines.compose import torch_ops as compose_t
from engines.face.topology import face_topology, vertex_normals
from engines.face.tracker import FaceTracker
from engines.light import relight
from engines.light import torch_ops as light_t
from engines.light.sh import mesh_to_camera
from engines.resample import shrink
from engines.settings import RelightTarget
from engines.swap import raster
from engines.swap import torch_ops as swap_t
from engines.swap.mesh import FaceGeometry, MeshSwapper
from engines.swap.raster import Window
from tests.face_helpers import clip_frames

CLIPS = ("d3.mp4", "d10.mp4", "s18.mp4")
FRAMES = 34
EVERY = 11  # frames between the faces compared (three per clip)
MAX_LEVELS = 1
MEAN_LEVELS = 0.01


def _cuda_skip() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA GPU (torch.cuda.is_available() is False)"


DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(_cuda_skip() is not None, reason=str(_cuda_skip()))],
    ),
]


@dataclass
class Case:
    name: str
    frame: np.ndarray
    geometry: FaceGeometry
    actor: np.ndarray  # the work window, uint8
    actor_small: np.ndarray  # at geometry resolution
    skin_small: np.ndarray
    covered: np.ndarray
    source: np.ndarray  # (9, 3) RGB light measured on the face
    target: np.ndarray  # (9, 3) a key light from the upper left, in the measured light's units
    alpha: np.ndarray  # the blend's alpha over the window


@pytest.fixture(scope="module")
def cases(clips: Path, detector, mesh) -> list[Case]:  # type: ignore[no-untyped-def]
    swapper = MeshSwapper()
    config = blend.BlendConfig()
    key = RelightTarget(mode="direction", direction=(-0.6, 0.4, 0.7), intensity=1.2, colour=(1.0, 0.9, 0.8))
    out: list[Case] = []
    for clip in CLIPS:
        tracker = FaceTracker(detector, mesh)
        for i, (image, t_s) in enumerate(clip_frames(clips / clip, FRAMES)):
            faces = tracker.update(image, t_s)
            if i % EVERY != EVERY - 1 or not faces:
                continue
            geometry = swapper.geometry(image, faces[0].landmarks, faces[0].id, t_s)
            assert geometry is not None
            actor = geometry.to_work(swapper.actor_window(image, geometry))
            hs, ws = geometry.small_size
            alpha_small = blend.face_alpha_small(geometry, config)
            skin_small = blend.skin_mask(geometry, alpha_small)
            actor_small = shrink(actor, (ws, hs))
            source = relight.measure_light(actor_small, geometry.normals_small, skin_small)
            assert source is not None, f"{clip} frame {i}: no light measured"
            alpha = geometry.to_window(alpha_small)
            alpha = alpha.copy() if alpha is alpha_small else alpha
            blend.cut_openings(alpha, geometry, False, False, config)
            out.append(
                Case(
                    f"{clip}#{i}",
                    image,
                    geometry,
                    actor,
                    actor_small,
                    skin_small,
                    geometry.labels() >= 0,
                    source,
                    relight.target_sh(key, source, None),
                    alpha,
                )
            )
    assert {c.name.split("#")[0] for c in out} == set(CLIPS) and len(out) >= 2 * len(CLIPS)
    return out


def _t(array: np.ndarray, device: str) -> torch.Tensor:
    """A copy on ``device`` (never a view of the case's arrays: ``composite`` writes in place)."""
    return torch.from_numpy(np.array(array, copy=True)).to(device)


def _check(
    name: str,
    expected: np.ndarray,
    got: torch.Tensor,
    differs: list[tuple[str, int, float]],
    mean_levels: float = MEAN_LEVELS,
) -> None:
    actual = got.cpu().numpy()
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, name
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    differs.append((name, int(diff.max()), float(diff.mean())))
    assert diff.max() <= MAX_LEVELS and diff.mean() < mean_levels, f"{name}: max {diff.max()}, mean {diff.mean():.4f}"


@pytest.mark.parametrize("device", DEVICES)
def test_relight_window_equals_relight_face(cases: list[Case], device: str) -> None:
    differs: list[tuple[str, int, float]] = []
    changed = 0
    for c in cases:
        src, tgt = _t(c.source, device), _t(c.target, device)
        normals, covered, window = _t(c.geometry.normals_small, device), _t(c.covered, device), _t(c.actor, device)
        expected = relight.relight_face(c.actor, c.geometry.normals_small, c.covered, c.source, c.target)
        _check(f"{c.name} ratio", expected, light_t.relight_window(window, normals, covered, src, tgt), differs)
        changed += int((expected != c.actor).any(axis=2).sum())
        # The identity's albedo path: a plausible linear albedo (the actor's own colour, a little paler).
        albedo = (relight._U8_TO_LINEAR[c.actor] * 1.1).astype(np.float32)
        expected = relight.relight_face(c.actor, c.geometry.normals_small, c.covered, c.source, c.target, albedo)
        got = light_t.relight_window(window, normals, covered, src, tgt, _t(albedo, device))
        _check(f"{c.name} albedo", expected, got, differs)
        # The colour match's reference: the actor's skin relit at geometry resolution (per-pixel normals).
        skin = c.skin_small
        expected = relight.relight_face(c.actor_small, c.geometry.normals_small, skin, c.source, c.target)
        got = light_t.relight_window(_t(c.actor_small, device), normals, _t(skin, device), src, tgt)
        _check(f"{c.name} small", expected, got, differs)
    assert changed > 1000  # the key light really changed the faces: the comparison is not of copies
    # Both of relight_face's paths were compared: normals on a grid smaller than the window (upsampled), and
    # per pixel (the geometry-resolution windows).
    assert any(c.geometry.normals_small.shape[:2] != c.actor.shape[:2] for c in cases)
    print("relight max/mean levels:", [(n, m, round(a, 5)) for n, m, a in differs])


@pytest.mark.parametrize("device", DEVICES)
def test_colour_match_and_composite_equal_the_blend_stage(cases: list[Case], device: str) -> None:
    differs: list[tuple[str, int, float]] = []
    for c in cases:
        hs, ws = c.geometry.small_size
        face = relight.relight_face(c.actor, c.geometry.normals_small, c.covered, c.source, c.target)
        face_small = shrink(face, (ws, hs))
        expected_gains = blend.colour_gains(face_small, c.actor_small, c.skin_small)
        gains = compose_t.colour_gains(_t(face_small, device), _t(c.actor_small, device), _t(c.skin_small, device))
        assert expected_gains is not None and gains is not None, c.name
        np.testing.assert_allclose(gains.cpu().numpy(), expected_gains, rtol=1e-9, err_msg=c.name)
        assert np.abs(expected_gains - 1.0).max() > 0.01  # the relit face is off the actor's colour: real gains

        expected = blend.apply_gains(face, expected_gains)
        matched = compose_t.apply_gains(_t(face, device), _t(expected_gains, device))
        _check(f"{c.name} gains", expected, matched, differs)

        pasted = c.geometry.to_window(expected)
        expected_frame = c.frame.copy()
        blend.composite(expected_frame, c.geometry, pasted, c.alpha * 0.8)
        frame = _t(c.frame, device)
        compose_t.composite(frame, c.geometry.window, _t(pasted, device), _t(c.alpha * 0.8, device))
        _check(f"{c.name} composite", expected_frame, frame, differs)
        assert (expected_frame != c.frame).any(axis=2).sum() > 1000  # the paste changed the frame
    print("compose max/mean levels:", [(n, m, round(a, 5)) for n, m, a in differs])


def test_colour_gains_none_when_too_little_skin_shows(cases: list[Case]) -> None:
    c = cases[0]
    few = np.zeros_like(c.skin_small)
    few.reshape(-1)[np.flatnonzero(c.skin_small)[:49]] = True
    args = (c.actor_small, c.actor_small, few)
    assert blend.colour_gains(*args) is None
    assert compose_t.colour_gains(*(_t(a, "cpu") for a in args)) is None


def test_the_suite_runs_torch_on_the_threads_it_was_given() -> None:
    """tests/conftest.py gives every library one thread (OMP_NUM_THREADS, unless the caller set it): torch
    honours it, so its OpenMP pool does not spin against the other pytest workers on a few cores."""
    assert torch.get_num_threads() == int(os.environ["OMP_NUM_THREADS"])


def test_relight_window_refuses_what_it_does_not_mirror() -> None:
    window = torch.zeros((200, 200, 3), dtype=torch.uint8)
    normals = torch.zeros((200, 200, 3))
    normals[..., 2] = 1.0
    sh = torch.zeros((9, 3), dtype=torch.float64)
    with pytest.raises(ValueError, match="on a grid of at most 96 px"):
        light_t.relight_window(window, normals, torch.ones((200, 200), dtype=torch.bool), sh, sh)
    with pytest.raises(ValueError, match="uint8 BGR window"):
        light_t.relight_window(window.float(), normals, torch.ones((200, 200), dtype=torch.bool), sh, sh)


@pytest.mark.parametrize("device", DEVICES)
def test_rasterize_equals_the_numpy_rasteriser(cases: list[Case], device: str) -> None:
    """The face mesh drawn over each face's window (frame pixels: up to 400 px across) and at geometry
    resolution, front faces only and all triangles; normals interpolated with the result."""
    triangles = face_topology().all_triangles
    front = face_topology().triangles
    for c in cases:
        lm = c.geometry.landmarks.astype(np.float64)
        g = c.geometry
        hs, ws = g.small_size
        small = lm.copy()
        small[:, 0] = (lm[:, 0] - g.window.x0 + 0.5) * ws / g.window.width - 0.5
        small[:, 1] = (lm[:, 1] - g.window.y0 + 0.5) * hs / g.window.height - 0.5
        normals = mesh_to_camera(vertex_normals(lm, triangles))
        runs = [
            ("window", lm, triangles, g.window, False),
            ("small", small, triangles, Window(0, 0, ws, hs), False),
        ]
        if c.name.endswith(f"#{EVERY - 1}"):  # the enrollment's unwrap: front faces only (once per clip)
            runs.append(("front culled", lm, front, g.window, True))
        for label, vertices, tris, window, cull in runs:
            name = f"{c.name} {label}"
            expected = raster.rasterize(vertices, tris, window, cull_back_faces=cull)
            got = swap_t.rasterize(_t(vertices, device), _t(tris, device), window, cull_back_faces=cull)
            assert expected.pixels.size > 1000, name
            _same_raster(name, expected, got, exact=device == "cpu")
            if not cull:
                np.testing.assert_allclose(
                    got.interpolate(_t(normals, device)).cpu().numpy()[expected.mask],
                    expected.interpolate(normals)[expected.mask],
                    atol=1e-5 if device == "cpu" else 1e-3,
                    err_msg=name,
                )


def _same_raster(name: str, expected: raster.Raster, got: swap_t.TorchRaster, exact: bool) -> None:
    """On the CPU the same pixels, triangles and (within 1e-5) weights. On a GPU, whose compiler may fuse a
    multiply and an add (the last bit of an edge or depth value), at most 0.05% of the covered pixels may
    differ in coverage or triangle — a pixel centre on a shared edge, two triangles' depths tied — and the
    weights agree within 1e-4 where the triangle is the same."""
    tri = got.triangle.cpu().numpy()
    differ = int((tri != expected.triangle).sum())
    allowed = 0 if exact else expected.pixels.size // 2000
    assert differ <= allowed, f"{name}: {differ} of {expected.pixels.size} pixels differ in coverage or triangle"
    same = np.flatnonzero((tri.reshape(-1) == expected.triangle.reshape(-1)) & expected.mask.reshape(-1))
    dense = np.zeros((tri.size, 3), np.float32)
    dense[got.pixels.cpu().numpy()] = got.weights.cpu().numpy()
    np.testing.assert_allclose(
        dense[same], expected.bary.reshape(-1, 3)[same], atol=1e-5 if exact else 1e-4, err_msg=name
    )


@pytest.mark.parametrize("device", DEVICES)
def test_resizes_equal_cv2_and_shrink(cases: list[Case], device: str) -> None:
    """The geometry's maps up to the work window and the window (float: within 1e-4, cv2's bilinear weights
    being rounded a little differently, measured 1.1e-5 at most; labels: exactly)
    and the one downscale, ``shrink``, and a uint8 picture up to the window. cv2 interpolates uint8 in fixed
    point (11-bit weights, intermediate sums shifted down) where these ops interpolate in float32 and round,
    so about one value in eight lands one level apart (measured 0.10-0.13 levels on average): the bound for
    these two is at most 1 level and under 0.2 on average; the area average of ``shrink`` alone is exact."""
    import cv2

    differs: list[tuple[str, int, float]] = []
    for c in cases:
        g = c.geometry
        hs, ws = g.small_size
        h, w = g.work_size
        alpha_small = blend.face_alpha_small(g, blend.BlendConfig())
        window = (g.window.width, g.window.height)
        got = torch_resample.resize_linear(_t(alpha_small, device), window).cpu().numpy()
        np.testing.assert_allclose(got, g.to_window(alpha_small), atol=1e-4, err_msg=c.name)
        got = torch_resample.resize_linear(_t(g.normals_small, device), (w, h)).cpu().numpy()
        np.testing.assert_allclose(got, g.upsample(g.normals_small), atol=1e-4, err_msg=c.name)
        got_labels = torch_resample.resize_nearest(_t(g.labels_small, device), (w, h)).cpu().numpy()
        np.testing.assert_array_equal(got_labels, g.labels(), err_msg=c.name)
        shrunk = resample.shrink(c.actor, (ws, hs))
        _check(f"{c.name} shrink", shrunk, torch_resample.shrink(_t(c.actor, device), (ws, hs)), differs, 0.2)
        up = cv2.resize(c.actor_small, window, interpolation=cv2.INTER_LINEAR)
        _check(f"{c.name} up", up, torch_resample.resize_linear(_t(c.actor_small, device), window), differs, 0.2)
    assert any(c.geometry.small_size != c.actor.shape[:2] for c in cases)  # real resizes, not copies
    print("resize max/mean levels:", [(n, m, round(a, 5)) for n, m, a in differs])


@pytest.mark.parametrize("device", DEVICES)
def test_sample_bilinear_equals_the_texture_lookup(cases: list[Case], device: str) -> None:
    """The identity texture's lookup as ``MeshSwapper.render`` does it: a real face texture (unwrapped from
    another frame of the clip), uint8 and as float linear albedo, sampled at the window's texel positions."""
    from engines.swap.mesh import _remap
    from engines.swap.texture import unwrap

    differs: list[tuple[str, int, float]] = []
    for c in cases:
        texture = unwrap(c.frame, c.geometry.landmarks).texture  # (512, 512, 3) uint8
        albedo = relight._U8_TO_LINEAR[texture]
        texel = c.geometry.upsample(c.geometry.uv_small) * float(texture.shape[0]) - 0.5
        _check(
            f"{c.name} texture",
            _remap(texture, texel),
            swap_t.sample_bilinear(_t(texture, device), _t(texel, device)),
            differs,
        )
        got = swap_t.sample_bilinear(_t(albedo, device), _t(texel, device)).cpu().numpy()
        np.testing.assert_allclose(got, _remap(albedo, texel), atol=1e-6, err_msg=c.name)
        # positions outside the texture: the border is replicated, as cv2's BORDER_REPLICATE
        outside = texel * 1.3 - 40.0
        _check(
            f"{c.name} border",
            _remap(texture, outside),
            swap_t.sample_bilinear(_t(texture, device), _t(outside, device)),
            differs,
        )
    print("texture max/mean levels:", [(n, m, round(a, 5)) for n, m, a in differs])


@pytest.mark.parametrize("device", DEVICES)
def test_measure_light_equals_the_numpy_measurement(cases: list[Case], device: str) -> None:
    """The light fitted to each face's skin (the same samples, the same trimmed float64 solve): within 1e-9."""
    for c in cases:
        args = (c.actor_small, c.geometry.normals_small, c.skin_small)
        colours, normals = relight.skin_samples(*args)
        got_colours, got_normals = light_t.skin_samples(*(_t(a, device) for a in args))
        np.testing.assert_array_equal(got_colours.cpu().numpy(), colours, err_msg=c.name)
        np.testing.assert_array_equal(got_normals.cpu().numpy(), normals, err_msg=c.name)
        got = light_t.measure_light(*(_t(a, device) for a in args))
        assert got is not None, c.name
        np.testing.assert_allclose(got.cpu().numpy(), c.source, rtol=1e-9, atol=1e-12, err_msg=c.name)
    few = np.zeros_like(cases[0].skin_small)
    few.reshape(-1)[np.flatnonzero(cases[0].skin_small)[:40]] = True
    args = (cases[0].actor_small, cases[0].geometry.normals_small, few)
    assert relight.measure_light(*args) is None and light_t.measure_light(*(_t(a, device) for a in args)) is None


@pytest.mark.parametrize("device", DEVICES)
def test_transfer_chroma_equals_the_black_and_white_identitys_colour(cases: list[Case], device: str) -> None:
    """A black-and-white face (the relit face made grey) takes the colour and skin level of the actor's skin
    (``chroma_field``, measured on the host). Its own bound: at most 2 levels and under 0.05 on average — the
    field's upsampling is cv2's in float32 here and torch's there, equal to float rounding, and so are the cube
    root and the matrix product: a value at an encoding table's step may go either way."""
    import cv2

    worst: list[tuple[str, int, float]] = []
    for c in cases:
        relit = relight.relight_face(c.actor, c.geometry.normals_small, c.covered, c.source, c.target)
        grey = cv2.cvtColor(cv2.cvtColor(relit, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        hs, ws = c.geometry.small_size
        field = chroma.chroma_field(c.actor_small, shrink(grey, (ws, hs)), c.geometry, c.skin_small)
        expected = chroma.transfer_chroma(grey, field)
        got = compose_t.transfer_chroma(_t(grey, device), _t(field, device)).cpu().numpy()
        diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
        worst.append((c.name, int(diff.max()), float(diff.mean())))
        assert diff.max() <= 2 and diff.mean() < 0.05, worst[-1]
        assert np.abs(expected.astype(np.int16) - grey).mean() > 1.0  # the actor's colour really came in
    print("transfer_chroma max/mean levels:", [(n, m, round(a, 5)) for n, m, a in worst])


@pytest.mark.parametrize("device", DEVICES)
def test_apply_field_equals_the_seam_correction(cases: list[Case], device: str) -> None:
    """The seam's geometry-resolution gains on the face (``seam.apply_field``): the field measured between the
    relit face and the actor as the blend stage measures it, applied to the work-size face. The bound above: at
    most 1 level, under 0.01 on average (the upsampled gain within float rounding of cv2's, the product in
    float32 rounded half to even as ``cv2.multiply``)."""
    from engines.compose import seam

    worst: list[tuple[str, int, float]] = []
    config = blend.BlendConfig()
    for c in cases:
        relit = relight.relight_face(c.actor, c.geometry.normals_small, c.covered, c.source, c.target)
        feather = blend.outline_feather(c.geometry, config)
        field = seam.seam_field(relit, c.actor_small, c.geometry, feather, config.seam)
        assert field is not None and np.abs(field - 1.0).max() > 0.05, c.name  # a real correction to compare
        expected = seam.apply_field(relit, field)
        got = compose_t.apply_field(_t(relit, device), _t(field, device))
        _check(c.name, expected, got, worst)
    print("apply_field max/mean levels:", [(n, m, round(a, 5)) for n, m, a in worst])
