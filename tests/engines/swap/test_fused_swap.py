"""The mesh swap's compiled kernels (``engines.swap.fused``) equal the numpy passes they replace.

``MeshSwapper(fused=True)`` (what ``ProcessorConfig(fused=True)``, the default, builds) rasterises the geometry and
interpolates its attributes in one compiled call, and looks the texture up in one compiled pass; ``fused=False``
is the reference (``engines.swap.raster.rasterize``, ``Raster.interpolate``, ``cv2.resize`` + ``cv2.remap``).
Tolerance, on the faces of three shared clips with the morph on (s1's shape): **the same triangle at every
pixel of the geometry raster**, weights, texture coordinates and normals within 1e-5 (float32 rounding: the
kernel evaluates the same float32 expressions; measured <= 1e-6), the morph's warp within 1e-3 px; the rendered
albedo within 2e-3 (linear light 0..1; measured <= 6e-4: ``cv2.remap`` places its samples on a 1/32 px grid,
the kernel exactly) on average under 1e-4 (the uint8 texture is ``cv2.remap``'s on both paths). A wrong kernel
(an axis or a corner swapped, a depth test reversed, a pixel-centre offset) moves whole triangles or every texel
by far more.
The whole frame path (geometry, render, relight, paste) against the numpy passes: tests/engines/test_fused.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.face.topology import face_topology, vertex_normals
from engines.face.tracker import FaceTracker
from engines.identity.store import IdentityStore
from engines.light.sh import mesh_to_camera
from engines.swap import fused, raster
from engines.swap.mesh import MeshSwapper
from engines.swap.raster import Raster, Window, rasterize
from tests.face_helpers import clip_frames

CLIPS = ("d3.mp4", "d10.mp4", "s18.mp4")
FRAMES = 3


@pytest.fixture(scope="module")
def faces_drawn(clips: Path, detector, mesh, store: IdentityStore) -> list[tuple[str, object, object, object]]:  # type: ignore[no-untyped-def]
    """Per clip and frame: (name, identity, numpy geometry, fused geometry), the morph on."""
    identity = store.load("s1")
    out = []
    for clip in CLIPS:
        tracker = FaceTracker(detector, mesh)
        swappers = [MeshSwapper(fused=False), MeshSwapper(fused=True)]
        for i, (image, t_s) in enumerate(clip_frames(clips / clip, FRAMES)):
            faces = tracker.update(image, t_s)
            assert faces, f"{clip} frame {i}: no face"
            drawn = [s.geometry(image, faces[0].landmarks, faces[0].id, t_s, identity, 1.0) for s in swappers]
            assert drawn[0] is not None and drawn[1] is not None
            out.append((f"{clip}#{i}", identity, *drawn))
    return out


def test_the_kernels_constants_are_the_rasterisers() -> None:
    assert fused._EDGE_EPS == raster._EDGE_EPS


def test_fused_geometry_equals_the_numpy_raster_on_shared_clips(faces_drawn) -> None:  # type: ignore[no-untyped-def]
    for name, _, ref, got in faces_drawn:
        assert got.window == ref.window and got.work_size == ref.work_size, name
        assert np.array_equal(got.raster.triangle, ref.raster.triangle), name
        assert np.array_equal(got.raster.pixels, ref.raster.pixels) and np.array_equal(got.raster.tri, ref.raster.tri)
        assert ref.raster.mask.mean() > 0.3, f"{name}: the face covers little of its raster: nothing compared"
        np.testing.assert_allclose(got.raster.weights, ref.raster.weights, atol=1e-5, err_msg=name)
        assert np.array_equal(got.labels_small, ref.labels_small), name
        np.testing.assert_allclose(got.uv_small, ref.uv_small, atol=1e-5, err_msg=name)  # the ring past the outline too
        np.testing.assert_allclose(got.normals_small, ref.normals_small, atol=1e-5, err_msg=name)
        assert ref.warp is not None and got.warp is not None, f"{name}: the morph made no warp"
        assert np.abs(got.warp - ref.warp).max() < 1e-3, name
        assert got.face_box() == ref.face_box(), name


def test_compiled_warp_maps_equal_convertmaps_of_the_float_map(faces_drawn, clips: Path) -> None:  # type: ignore[no-untyped-def]
    """``FaceGeometry.warp_maps(fused=True)`` (one compiled pass from the geometry resolution) against
    ``cv2.convertMaps`` of the window-size float map (``warp``): the same whole pixels and 1/32 px fractions but
    where a position's last float bit lands it across a step (measured: none of ~2.5M entries; bound 0.05%), never
    more than one step; and the warped actor (``MeshSwapper.actor_window``, fused and not) within a level there."""
    images = {}
    for clip in CLIPS:
        for i, (image, _) in enumerate(clip_frames(clips / clip, FRAMES)):
            images[f"{clip}#{i}"] = image
    for name, _, ref, _ in faces_drawn:
        xy_ref, frac_ref = ref.warp_maps(fused=False)
        xy, frac = ref.warp_maps(fused=True)
        assert xy.dtype == np.int16 and frac.dtype == np.uint16 and xy.shape == (*frac.shape, 2), name
        assert frac.shape == (ref.window.height, ref.window.width), name
        pos = xy.astype(np.int64) * 32 + np.stack([frac % 32, frac // 32], axis=-1)
        pos_ref = xy_ref.astype(np.int64) * 32 + np.stack([frac_ref % 32, frac_ref // 32], axis=-1)
        step = np.abs(pos - pos_ref)
        assert step.max() <= 1 and (step > 0).mean() < 5e-4, f"{name}: {(step > 0).sum()} entries moved"
        moved = np.hypot(*(pos_ref / 32.0 - np.indices(frac.shape)[::-1].transpose(1, 2, 0)).transpose(2, 0, 1))
        assert moved.max() > 1.0, f"{name}: the morph moved nothing: nothing compared"
        image = images[name]
        warped = [MeshSwapper(fused=f).actor_window(image, ref) for f in (False, True)]
        out = np.zeros_like(warped[0])
        assert MeshSwapper(fused=True).actor_window(image, ref, out=out) is out
        assert np.abs(warped[1].astype(int) - warped[0]).max() <= 1 and np.array_equal(out, warped[1]), name


def test_fused_render_equals_the_remap_on_shared_clips(faces_drawn) -> None:  # type: ignore[no-untyped-def]
    measured = []
    for name, identity, ref, _ in faces_drawn:
        swappers = [MeshSwapper(fused=False), MeshSwapper(fused=True)]
        albedo = [s.render(ref, identity, "albedo") for s in swappers]
        diff = np.abs(albedo[1] - albedo[0])
        measured.append(f"{name}: albedo max {diff.max():.5f} mean {diff.mean():.7f}")
        assert albedo[1].dtype == np.float32 and albedo[1].shape == (*ref.work_size, 3), name
        assert (albedo[0] > 0.05).mean() > 0.3, f"{name}: little of the face rendered: nothing compared"
        assert diff.max() <= 2e-3 and diff.mean() < 1e-4, measured[-1]
    print("\n".join(measured))


def test_fused_raster_equals_rasterize_on_overlapping_random_meshes() -> None:
    """Random triangles over each other, each flat at its own depth (the nearer wins; at equal depth the earlier),
    partly outside the raster, one degenerate, corners on pixel centres: the same triangle and weights at every
    pixel."""
    rng = np.random.default_rng(3)
    for trial in range(8):
        xy = rng.uniform(-6, 36, (40, 3, 2))
        xy[:4] = np.round(xy[:4])  # corners exactly on pixel centres: the edge slack decides
        depth = rng.integers(0, 6, (40, 1, 1)).repeat(3, axis=1).astype(np.float64)  # ties between triangles
        v = np.concatenate([xy, depth], axis=2).reshape(-1, 3).astype(np.float32)
        tris = np.arange(120).reshape(40, 3)
        tris[5] = (15, 15, 16)  # degenerate: never drawn
        ref = rasterize(v, tris, Window(0, 0, 31, 23))
        drawn = fused.geometry_raster(v, tris, np.arange(40, dtype=np.int8), np.ones((120, 5), np.float32), (23, 31))
        tri, bary, values, normals, labels, uv = drawn[:6]
        got = Raster.from_dense(Window(0, 0, 31, 23), tri, bary, tris, (drawn.pixels, drawn.tri, drawn.weights))
        assert ref.pixels.size > 300, trial
        assert np.array_equal(got.triangle, ref.triangle), trial
        assert np.array_equal(got.pixels, ref.pixels) and np.array_equal(got.tri, ref.tri), trial
        np.testing.assert_allclose(got.weights, ref.weights, atol=1e-5)
        np.testing.assert_allclose(got.bary, ref.bary, atol=1e-5)
        assert np.array_equal(labels, np.where(ref.mask, ref.triangle, -1)), trial
        np.testing.assert_allclose(values[ref.mask], 1.0, atol=1e-5)  # weights sum to one: ones stay one
        np.testing.assert_allclose(normals[ref.mask], 1.0 / np.sqrt(3), atol=1e-5)  # (1, 1, 1) at unit length
        assert not values[~ref.mask].any() and not normals[~ref.mask].any()


def test_fused_vertex_normals_equal_numpys_on_a_real_face(faces_drawn) -> None:  # type: ignore[no-untyped-def]
    tris = face_topology().all_triangles
    for name, _, ref, _ in faces_drawn[::3]:
        expected = mesh_to_camera(vertex_normals(ref.landmarks, tris))
        np.testing.assert_allclose(fused.vertex_normals_camera(ref.landmarks, tris), expected, atol=1e-6, err_msg=name)
    flat = np.zeros((3, 3))  # a degenerate mesh: the fallback normal, toward the camera
    assert np.array_equal(fused.vertex_normals_camera(flat, np.array([[0, 1, 2]])), [[0, 0, 1]] * 3)


def test_fused_raster_of_a_mesh_outside_its_raster_is_empty() -> None:
    topo = face_topology()
    v = np.concatenate([topo.uv * 50 + 100, np.zeros((len(topo.uv), 1))], axis=1)  # far right of a 20x20 raster
    attrs = np.zeros((len(v), 5), np.float32)
    drawn = fused.geometry_raster(v, topo.all_triangles, topo.labels, attrs, (20, 20))
    tri, bary, labels, uv = drawn.triangle, drawn.bary, drawn.labels, drawn.uv
    assert (tri == -1).all() and (labels == -1).all() and not bary.any() and not uv.any() and not drawn.pixels.size
    assert Raster.from_dense(Window(0, 0, 20, 20), tri, bary, topo.all_triangles).pixels.size == 0


def test_fused_kernels_refuse_what_they_cannot_draw() -> None:
    with pytest.raises(ValueError, match="5 channels|C >= 5"):
        fused.geometry_raster(np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros(1, np.int8), np.zeros((3, 2)), (4, 4))
    with pytest.raises(ValueError, match="float32"):
        fused.render_texture(np.zeros((2, 2, 2), np.float32), np.zeros((4, 4, 3), np.uint8), (4, 4), (0, 4, 0, 4))


def test_the_relight_looking_the_albedo_up_equals_the_relight_of_the_rendered_albedo(faces_drawn) -> None:  # type: ignore[no-untyped-def]
    """``relight_face(albedo_lookup=...)`` (the relight stage's path on numpy's compiled kernels: the albedo looked up
    pixel by pixel inside the relight's pass, ``fused.relight_rendered``) draws the same face, to the bit, as the
    relight of the albedo ``MeshSwapper.render`` draws first — compiled and not — under a light that shades the face
    unevenly, on the faces of three shared clips (a texel off by one, or the box's edge, shows in hundreds of
    pixels)."""
    from engines.light.relight import relight_face

    light = np.zeros((9, 3))
    light[0], light[2], light[3] = 1.2, 0.4, -0.5  # ambient, from above and from one side
    for name, identity, _, geometry in faces_drawn:
        swapper = MeshSwapper(fused=True)
        actor = np.full((*geometry.work_size, 3), 90, np.uint8)
        covered = geometry.labels() >= 0
        albedo = swapper.render(geometry, identity, "albedo")
        lookup = swapper.albedo_lookup(geometry, identity)
        looked_up = relight_face(actor, geometry.normals_small, covered, light, light, fused=True, albedo_lookup=lookup)
        for fused_kernels in (True, False):
            drawn = relight_face(actor, geometry.normals_small, covered, light, light, albedo, fused=fused_kernels)
            if fused_kernels:
                assert np.array_equal(looked_up, drawn), f"{name}: {(looked_up != drawn).any(axis=2).sum()} pixels"
            else:  # numpy's passes: within a level of the compiled ones (tests/engines/test_fused.py)
                assert np.abs(looked_up.astype(np.int16) - drawn).max() <= 2, name
        assert (looked_up != actor).any(axis=2).mean() > 0.3, f"{name}: little of the face relit: nothing compared"
        unlit = relight_face(actor, geometry.normals_small, covered, light, light, fused=False, albedo_lookup=lookup)
        assert np.abs(unlit.astype(np.int16) - looked_up).max() <= 2, f"{name}: the lookup drawn first differs"
