"""The vectorised rasteriser: coverage, barycentric weights, depth order, windows and clipping."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines.face.topology import face_topology
from engines.swap.raster import _EDGE_EPS, Raster, Window, rasterize
from tests.face_helpers import photo_mesh


def _reference_inside(v: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: barycentric weights of every pixel centre in one triangle, and a 'clearly inside' mask."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    (ax, ay), (bx, by), (cx, cy) = v[:, :2]
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    wa = ((bx - xs) * (cy - ys) - (by - ys) * (cx - xs)) / area
    wb = ((cx - xs) * (ay - ys) - (cy - ys) * (ax - xs)) / area
    wc = 1 - wa - wb
    weights = np.stack([wa, wb, wc], axis=-1)
    return weights, weights.min(axis=-1)


def test_single_triangle_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        v = rng.uniform(-5, 45, size=(3, 3))
        r = rasterize(v, np.array([[0, 1, 2]]), Window(0, 0, 40, 40))
        weights, margin = _reference_inside(v, 40, 40)
        clear_in, clear_out = margin > 1e-3, margin < -1e-3
        assert r.mask[clear_in].all()
        assert not r.mask[clear_out].any()
        np.testing.assert_allclose(r.bary[clear_in], weights[clear_in], atol=1e-5)


def _centre_errors(r, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Per covered pixel: how far the interpolated vertex positions land from the pixel's centre, and the
    most the rasteriser's geometry allows there.

    Inside a triangle the weights are exact (float32 rounding: ~1e-5 px). A pixel within the edge slack
    (``_EDGE_EPS`` in barycentric units, so no pixel on a shared edge is missed by both triangles) has
    its weights clipped to [0, 1] and renormalised, which moves it by at most ``2 * _EDGE_EPS`` times the
    triangle's longest edge. The bound is that, plus 1e-4 px for rounding; it scales with each
    triangle, so no runtime's landmark values can land a correct raster outside it."""
    x0, y0 = r.window.x0, r.window.y0
    local = vertices[:, :2].astype(np.float64) - (x0, y0)  # window-local: rounding relative to ~100 px
    pos = r.interpolate(local)
    rows, cols = np.nonzero(r.mask)
    err = np.hypot(pos[rows, cols, 0] - cols, pos[rows, cols, 1] - rows)
    corners = local[r.triangles]
    longest = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
    return err, 2 * _EDGE_EPS * longest[r.triangle[rows, cols]] + 1e-4


def test_interpolating_positions_gives_pixel_centres_on_a_real_face(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    _, landmarks = photo_mesh(detector, mesh, faces / "obama.jpg")
    topo = face_topology()
    rng = np.random.default_rng(7)
    # The real face, then the same face moved by sub-pixel amounts in float32 (what another runtime's
    # landmarks look like): the property is geometric and must hold for all of them.
    for trial in range(8):
        jitter = rng.uniform(-0.5, 0.5, landmarks.shape) if trial else 0.0
        lm = (landmarks.astype(np.float64) + jitter).astype(np.float32)
        x0, y0 = int(lm[:, 0].min()) - 5, int(lm[:, 1].min()) - 5
        win = Window(x0, y0, int(np.ptp(lm[:, 0])) + 10, int(np.ptp(lm[:, 1])) + 10)
        r = rasterize(lm, topo.all_triangles, win)  # with the eye and mouth fills: no holes
        err, bound = _centre_errors(r, lm)
        assert (err <= bound).all(), f"trial {trial}: {(err > bound).sum()} pixels off, worst {err.max():.2e} px"
        assert np.median(err) < 1e-4, "inside the triangles the weights are exact"
    # The check can fail: the same raster with its weights rotated by one vertex, or read half a pixel off,
    # lands far outside the bound.
    rotated = Raster(r.window, r.pixels, r.tri, np.roll(r.weights, 1, axis=1), r.triangles)
    assert (_centre_errors(rotated, lm)[0] > _centre_errors(rotated, lm)[1]).mean() > 0.9
    shifted = Raster(Window(x0, y0, win.width, win.height), r.pixels, r.tri, r.weights, r.triangles)
    half = lm.copy()
    half[:, 0] += 0.5
    assert (_centre_errors(shifted, half)[0] > _centre_errors(shifted, half)[1]).mean() > 0.9
    # Coverage agrees with OpenCV filling the same triangles (edges may differ by a pixel).
    ref = np.zeros((win.height, win.width), np.uint8)
    pts = np.round((lm[:, :2] - (x0, y0)) * 16).astype(np.int32)
    for tri in pts[topo.all_triangles]:  # one by one: fillPoly of many polygons would XOR overlaps
        cv2.fillConvexPoly(ref, tri, 1, lineType=cv2.LINE_8, shift=4)
    ref_b = ref.astype(bool)
    iou = (r.mask & ref_b).sum() / (r.mask | ref_b).sum()
    assert iou > 0.98
    interior = cv2.erode(ref, np.ones((3, 3), np.uint8)).astype(bool)
    assert r.mask[interior].all()  # no holes between triangles
    assert r.coverage > 0.5


def test_nearest_triangle_wins_whatever_the_order() -> None:
    near = np.array([[0, 0, -5.0], [20, 0, -5.0], [0, 20, -5.0]])
    far = np.array([[2, 2, 3.0], [30, 2, 3.0], [2, 30, 3.0]])
    v = np.concatenate([near, far])
    for tris in (np.array([[0, 1, 2], [3, 4, 5]]), np.array([[3, 4, 5], [0, 1, 2]])):
        r = rasterize(v, tris, Window(0, 0, 32, 32))
        depth = r.interpolate(v[:, 2])
        assert depth[5, 5] == -5.0  # inside both: the near one
        assert depth[20, 8] == 3.0  # only the far one
        near_id = int(np.nonzero((tris == 0).any(axis=1))[0][0])
        assert r.triangle[5, 5] == near_id


def test_window_offset_and_clipping() -> None:
    v = np.array([[100.0, 100.0], [140.0, 100.0], [100.0, 140.0]])
    tri = np.array([[0, 1, 2]])
    full = rasterize(v, tri, Window(90, 90, 60, 60))
    part = rasterize(v, tri, Window(120, 95, 30, 20))  # only a corner of the triangle
    np.testing.assert_array_equal(part.mask, full.mask[5:25, 30:60])
    assert not rasterize(v, tri, Window(0, 0, 50, 50)).mask.any()  # window misses it
    assert rasterize(v, tri, Window(0, 0, 0, 10)).triangle.shape == (10, 0)


def test_degenerate_and_back_facing_triangles() -> None:
    v = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [0.0, 10.0]])
    assert not rasterize(v, np.array([[0, 1, 2]]), Window(0, 0, 25, 25)).mask.any()  # zero area
    assert not rasterize(v, np.zeros((0, 3), int), Window(0, 0, 25, 25)).mask.any()
    clockwise = np.array([[0, 1, 3]])  # on screen, y down: (0,0) -> (10,0) -> (0,10) is clockwise
    counter = np.array([[0, 3, 1]])
    assert rasterize(v, clockwise, Window(0, 0, 25, 25), cull_back_faces=True).mask.any()
    assert not rasterize(v, counter, Window(0, 0, 25, 25), cull_back_faces=True).mask.any()
    assert rasterize(v, counter, Window(0, 0, 25, 25)).mask.any()
