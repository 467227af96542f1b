"""The vectorised rasteriser: coverage, barycentric weights, depth order, windows and clipping."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines.raster import Window, rasterize
from engines.topology import face_topology
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


def test_interpolating_positions_gives_pixel_centres_on_a_real_face(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    _, landmarks = photo_mesh(detector, mesh, faces / "obama.jpg")
    topo = face_topology()
    x0, y0 = int(landmarks[:, 0].min()) - 5, int(landmarks[:, 1].min()) - 5
    win = Window(x0, y0, int(np.ptp(landmarks[:, 0])) + 10, int(np.ptp(landmarks[:, 1])) + 10)
    r = rasterize(landmarks, topo.all_triangles, win)  # with the eye and mouth fills: no holes
    pos = r.interpolate(landmarks[:, :2])
    rows, cols = np.nonzero(r.mask)
    np.testing.assert_allclose(pos[rows, cols, 0], cols + x0, atol=2e-3)
    np.testing.assert_allclose(pos[rows, cols, 1], rows + y0, atol=2e-3)
    # Coverage agrees with OpenCV filling the same triangles (edges may differ by a pixel).
    ref = np.zeros((win.height, win.width), np.uint8)
    pts = np.round((landmarks[:, :2] - (x0, y0)) * 16).astype(np.int32)
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
