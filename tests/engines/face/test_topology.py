"""The derived mesh topology: a clean triangulation with real eye and mouth holes, and regions that sit
where they should on a real face."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from engines.face import topology as T
from engines.face.landmarks import NUM_LANDMARKS
from engines.swap.raster import Window, rasterize
from tests.face_helpers import photo_mesh


def _edges(tris: np.ndarray) -> Counter[tuple[int, int]]:
    c: Counter[tuple[int, int]] = Counter()
    for a, b, d in tris:
        for u, v in ((a, b), (b, d), (d, a)):
            c[(min(u, v), max(u, v))] += 1
    return c


def _area(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = (points[tris[:, k]] for k in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def test_triangulation_is_a_clean_surface() -> None:
    topo = T.face_topology()
    allt = topo.all_triangles
    assert 800 <= len(topo.triangles) <= 950
    assert allt.min() >= 0 and allt.max() < NUM_LANDMARKS
    assert len({tuple(sorted(t)) for t in allt.tolist()}) == len(allt)  # no duplicates
    assert (_area(topo.uv, allt) > 0).all()  # all clockwise in the layout
    assert max(_edges(allt).values()) <= 2  # every edge borders at most two triangles
    assert len(np.unique(allt)) == NUM_LANDMARKS  # every point is on the surface
    assert topo.uv.min() >= 0.0 and topo.uv.max() <= 1.0


def test_openings_are_exact_holes_filled_by_the_fills() -> None:
    topo = T.face_topology()
    face_edges = _edges(topo.triangles)
    for contour in (T.RIGHT_EYE, T.LEFT_EYE, T.LIPS_INNER):
        for i, a in enumerate(contour):
            b = contour[(i + 1) % len(contour)]
            assert face_edges[(min(a, b), max(a, b))] == 1, f"contour edge {a}-{b} is not a hole border"
    eyes = _area(topo.uv, topo.eye_triangles).sum() / 2
    expected = T.polygon_area(topo.uv[list(T.RIGHT_EYE)]) + T.polygon_area(topo.uv[list(T.LEFT_EYE)])
    assert abs(eyes - expected) / expected < 1e-3
    mouth = _area(topo.uv, topo.mouth_triangles).sum() / 2
    assert abs(mouth - T.polygon_area(topo.uv[list(T.LIPS_INNER)])) / mouth < 1e-3
    # All triangles together tile the face oval.
    total = _area(topo.uv, topo.all_triangles).sum() / 2
    assert abs(total - T.polygon_area(topo.uv[list(T.FACE_OVAL)])) / total < 0.01


def test_regions_sit_on_a_real_face(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """On the frontal obama.jpg: eye openings around the detector's eye keypoints, the mouth opening
    between the mouth corners, everything inside the oval."""
    image, lm = photo_mesh(detector, mesh, faces / "obama.jpg")
    det = max(detector.detect(image), key=lambda d: d.width)
    topo = T.face_topology()
    win = Window(0, 0, image.shape[1], image.shape[0])
    r = rasterize(lm, topo.all_triangles, win)
    region = topo.region_of(r.triangle)
    iod = float(np.linalg.norm(det.points[1] - det.points[0]))
    for eye, point in ((T.RIGHT_EYE, det.points[0]), (T.LEFT_EYE, det.points[1])):
        centre = lm[list(eye), :2].mean(axis=0)
        assert np.linalg.norm(centre - point) < 0.15 * iod
        x, y = np.round(centre).astype(int)
        assert region[y, x] == 1
    mouth_centre = lm[list(T.LIPS_INNER), :2].mean(axis=0)
    assert np.linalg.norm(mouth_centre - (det.points[3] + det.points[4]) / 2) < 0.15 * iod
    assert region[int(round(mouth_centre[1])), int(round(mouth_centre[0]))] == 2  # he smiles: teeth show
    nose = np.round(lm[1, :2]).astype(int)
    assert region[nose[1], nose[0]] == 0
    oval = lm[list(T.FACE_OVAL), :2]
    assert _area(oval, np.array([[0, 9, 18], [0, 18, 27]])).min() > 0  # the oval runs clockwise on screen
    covered = r.mask.sum()
    assert abs(covered - T.polygon_area(oval)) / covered < 0.05


def test_vertex_normals_point_out_of_the_surface(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    _, lm = photo_mesh(detector, mesh, faces / "obama.jpg")
    topo = T.face_topology()
    n = T.vertex_normals(lm, topo.all_triangles)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    assert n[1, 2] < -0.8  # nose tip faces the camera
    assert n[234, 0] < -0.5  # subject's right cheek edge (image left) faces image left
    assert n[454, 0] > 0.5
    assert n[10, 1] < -0.2  # top of the forehead faces up (y down in the image)
    # On a sphere the normals are radial.
    u, v = np.meshgrid(np.linspace(0.2, np.pi - 0.2, 12), np.linspace(-1.2, 1.2, 12))
    pts = np.stack([np.cos(u) * np.cos(v), np.sin(v), -np.sin(u) * np.cos(v)], axis=-1).reshape(-1, 3)
    sphere_uv = pts[:, :2]
    tris = T.delaunay(sphere_uv)
    sn = T.vertex_normals(pts, tris)
    interior = (np.abs(u.ravel() - np.pi / 2) < 1.0) & (np.abs(v.ravel()) < 0.9)
    cos = (sn * pts).sum(axis=1)[interior]
    assert cos.min() > 0.97


def test_frontalise_undoes_pose_scale_and_position() -> None:
    canonical = T.face_topology().canonical.astype(np.float64)
    np.testing.assert_allclose(T.frontalise(canonical), canonical, atol=2e-3)
    angle = np.radians(25.0)
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    moved = 180.0 * canonical @ rot.T + np.array([300.0, 200.0, 5.0])
    np.testing.assert_allclose(T.frontalise(moved), canonical, atol=2e-3)


def test_mirror_vertices_swap_the_sides() -> None:
    """Each eye's and brow's contour maps onto the other's, and a frontal mesh flipped left to right through the
    map lands on itself within a few hundredths of its width (the vertex nearest each reflected one: the measured
    canonical face is not exactly symmetric, so a few points, e.g. at the mouth corners, land on a neighbour)."""
    mirror = T.mirror_vertices()
    assert set(mirror[list(T.LEFT_EYE)]) == set(T.RIGHT_EYE) and set(mirror[list(T.RIGHT_EYE)]) == set(T.LEFT_EYE)
    assert set(mirror[list(T.LEFT_BROW)]) == set(T.RIGHT_BROW)
    canon = T.face_topology().canonical.astype(np.float64)
    flipped = canon[mirror] * np.array([-1.0, 1.0, 1.0])
    scale = float(np.ptp(canon[:, 0]))
    assert np.abs(flipped - canon).max() < 0.05 * scale
