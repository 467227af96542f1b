"""The face mesh's topology: triangles, texture layout and named regions of the 468 points.

The tracker gives 468 points per face; the swap, relighting and blending need them as a surface. This
module derives that surface from stageswap's own canonical face (``engines/face/_face_layout.py``, measured
by ``tools/derive_face_layout.py``): the canonical face is unwrapped onto a vertical cylinder (so the
cheeks, which a frontal projection squashes, keep a fair share of texture), and that layout is
Delaunay-triangulated. Triangles whose centroid falls outside the face oval are dropped; those inside
an eye contour or the inner-lip contour (the canonical face has eyes and mouth open) are kept apart as
*fills*, so the swap can leave the actor's eyes and mouth interior alone or cover them on request.

Region index lists (face oval, eye contours, lips) follow the 468-point topology; ``tests/test_topology.py``
draws them on a photo for people to check. Orientation: subject's right is image left.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.landmarks import LEFT_EYE_OUTER, NUM_LANDMARKS, RIGHT_EYE_OUTER, face_axes

FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
"""The face's outline, clockwise on screen from the top of the forehead."""
RIGHT_EYE: tuple[int, ...] = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
"""The subject's right eye opening (image left): lower lid from the outer corner, then upper lid back."""
LEFT_EYE: tuple[int, ...] = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
LIPS_OUTER: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
)  # fmt: skip
LIPS_INNER: tuple[int, ...] = (
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
)  # fmt: skip
"""The mouth opening: where teeth and tongue show."""
RIGHT_BROW: tuple[int, ...] = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW: tuple[int, ...] = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)

SKIN, EYE_OPENING, MOUTH_OPENING, FEATURE, LIPS = 0, 1, 2, 3, 4
"""Triangle labels (``Topology.labels``); -1 marks pixels no triangle covers."""

CYLINDER_DEPTH = 1.0
"""Distance of the unwrap cylinder's axis behind the face's farthest point, in eye-corner distances."""
TEXTURE_MARGIN = 0.02
"""Empty border of the texture layout (fraction of the side), so bilinear lookups stay inside."""


@dataclass(frozen=True)
class Topology:
    """The surface of the 468-point mesh.

    ``triangles`` (T, 3) cover the face inside the oval without the eye and mouth openings;
    ``eye_triangles`` and ``mouth_triangles`` fill those openings. All are wound clockwise on screen for a
    face seen from the front (x right, y down). ``uv`` (468, 2) is every point's texture coordinate in
    0..1 (u right, v down); ``canonical`` (468, 3) the mean frontal face it was made from.
    """

    canonical: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray
    eye_triangles: np.ndarray
    mouth_triangles: np.ndarray

    @property
    def all_triangles(self) -> np.ndarray:
        """Face, then eye fills, then mouth fill: one list, so one raster labels every region."""
        return np.concatenate([self.triangles, self.eye_triangles, self.mouth_triangles])

    @functools.cached_property
    def labels(self) -> np.ndarray:
        """Per triangle of ``all_triangles``: ``LIPS`` (inside the outer lip contour), ``FEATURE`` (touching
        the brows, lips or eyelid contours: not skin-coloured), ``SKIN``, ``EYE_OPENING`` or
        ``MOUTH_OPENING`` (int8, read-only)."""
        features = np.zeros(NUM_LANDMARKS, dtype=bool)
        features[list(set(RIGHT_EYE + LEFT_EYE + LIPS_OUTER + LIPS_INNER + RIGHT_BROW + LEFT_BROW))] = True
        face = np.where(features[self.triangles].any(axis=1), FEATURE, SKIN)
        lips = _inside(self.uv[list(LIPS_OUTER)], self.uv[self.triangles].mean(axis=1))
        face = np.where(lips, LIPS, face)
        out = np.concatenate(
            [face, np.full(len(self.eye_triangles), EYE_OPENING), np.full(len(self.mouth_triangles), MOUTH_OPENING)]
        ).astype(np.int8)
        out.setflags(write=False)
        return out

    def region_of(self, triangle_index: np.ndarray) -> np.ndarray:
        """For indices into ``all_triangles``: 0 face, 1 eye opening, 2 mouth opening, -1 none."""
        t = np.asarray(triangle_index)
        n_face, n_eye = len(self.triangles), len(self.eye_triangles)
        region = np.full(t.shape, -1, dtype=np.int8)
        region[t >= 0] = 0
        region[t >= n_face] = 1
        region[t >= n_face + n_eye] = 2
        return region


def frontal_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face's own frame: centre (3,), rotation (3, 3) whose columns are the face's axes in the mesh's
    frame, and scale (the outer-eye-corner distance). ``frontalise`` is ``(p - centre) @ rot / scale``."""
    p = np.asarray(landmarks, dtype=np.float64)
    rot = face_axes(p)
    centre = p.mean(axis=0)
    q = (p - centre) @ rot
    scale = float(np.linalg.norm(q[LEFT_EYE_OUTER] - q[RIGHT_EYE_OUTER]))
    return centre, rot, max(scale, 1e-12)


def frontalise(landmarks: np.ndarray, frame: tuple[np.ndarray, np.ndarray, float] | None = None) -> np.ndarray:
    """A (468, 3) mesh in the face's own frame: centred, rotated frontal and upright, scaled so the outer
    eye corners are 1 apart. x runs from the subject's right eye to the left, y from forehead to chin,
    z away from the camera (the mesh's own axes, as in ``engines.face.landmarks.head_pose``). ``frame``:
    ``frontal_frame(landmarks)`` where the caller has it already (None: computed here)."""
    centre, rot, scale = frame if frame is not None else frontal_frame(landmarks)
    return (np.asarray(landmarks, dtype=np.float64) - centre) @ rot / scale


def cylinder_layout(canonical: np.ndarray, axis_depth: float = CYLINDER_DEPTH) -> np.ndarray:
    """Texture coordinates (468, 2) in 0..1: the face unwrapped onto a vertical cylinder behind it."""
    x, y, z = canonical[:, 0], canonical[:, 1], canonical[:, 2]
    axis_z = float(z.max()) + axis_depth
    radius = axis_z - float(z.min())
    u = radius * np.arctan2(x, axis_z - z)
    uv = np.stack([u, y], axis=1)
    lo = uv.min(axis=0)
    span = float((uv.max(axis=0) - lo).max())
    return (TEXTURE_MARGIN + (uv - lo) / span * (1.0 - 2 * TEXTURE_MARGIN)).astype(np.float32)


def delaunay(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (T, 3) of 2D points, wound clockwise with y down (OpenCV's Subdiv2D)."""
    pts = np.asarray(points, dtype=np.float64)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    scaled = ((pts - lo) / float((hi - lo).max()) * 4096.0 + 8.0).astype(np.float32)
    subdiv = cv2.Subdiv2D((0, 0, 4112, 4112))
    index: dict[tuple[float, float], int] = {}
    for i, (px, py) in enumerate(scaled):
        key = (float(px), float(py))
        if key in index:
            raise ValueError(f"points {index[key]} and {i} coincide")
        index[key] = i
        subdiv.insert(key)
    tris = []
    for t in subdiv.getTriangleList():
        ids = [index.get((float(t[2 * k]), float(t[2 * k + 1]))) for k in range(3)]
        if None not in ids:  # triangles touching Subdiv2D's virtual outer vertices are not ours
            tris.append(ids)
    out = np.asarray(tris, dtype=np.int32)
    return orient_clockwise(out, pts)


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    """Whether segments p1-p2 and q1-q2 cross at a point interior to both."""

    def side(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    d1, d2 = side(q1, q2, p1), side(q1, q2, p2)
    d3, d4 = side(p1, p2, q1), side(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def enforce_edges(triangles: np.ndarray, points: np.ndarray, edges: list[tuple[int, int]]) -> np.ndarray:
    """Flip edges until every ``edges`` pair is an edge of the triangulation (a constrained triangulation,
    for contours such as the lips that plain Delaunay may cut across). Runs once, at import."""
    tris = [list(map(int, t)) for t in triangles]
    for a, b in edges:
        for _ in range(64):
            if any(a in t and b in t for t in tris):
                break
            flipped = False
            for i, t in enumerate(tris):
                if a not in t:
                    continue
                c, d = (v for v in t if v != a)
                if not _segments_cross(points[a], points[b], points[c], points[d]):
                    continue
                j = next(k for k, u in enumerate(tris) if k != i and c in u and d in u)
                q = next(v for v in tris[j] if v not in (c, d))
                if not _segments_cross(points[a], points[q], points[c], points[d]):
                    continue  # the quad is not convex: flipping would fold it
                tris[i], tris[j] = [a, q, c], [q, a, d]
                flipped = True
                break
            if not flipped:
                # The crossing edge is not next to ``a``: walk from ``b`` instead.
                a, b = b, a
        else:
            raise ValueError(f"cannot make {a}-{b} an edge of the triangulation")
    return orient_clockwise(np.asarray(tris, dtype=np.int32), points)


def orient_clockwise(triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Reorder each triangle's corners so it is clockwise on screen (positive area with y down)."""
    a, b, c = (points[triangles[:, k], :2] for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    out = triangles.copy()
    flip = area < 0
    out[flip, 1], out[flip, 2] = triangles[flip, 2], triangles[flip, 1]
    return out


def _inside(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) > 0 for x, y in points])


@functools.cache
def face_topology() -> Topology:
    """The topology of the 468-point mesh (computed once per process; immutable arrays)."""
    from engines.face._face_layout import CANONICAL_FACE  # generated data; imported here so the tool can bootstrap it

    canonical = np.asarray(CANONICAL_FACE, dtype=np.float64)
    if canonical.shape != (NUM_LANDMARKS, 3):
        raise ValueError(f"canonical face has shape {canonical.shape}, expected ({NUM_LANDMARKS}, 3)")
    uv = cylinder_layout(canonical)
    contours = (RIGHT_EYE, LEFT_EYE, LIPS_INNER, LIPS_OUTER, FACE_OVAL)
    tris = enforce_edges(delaunay(uv), uv, [(c[i], c[(i + 1) % len(c)]) for c in contours for i in range(len(c))])
    centroids = uv[tris].mean(axis=1)
    in_oval = _inside(uv[list(FACE_OVAL)], centroids)
    in_eye = _inside(uv[list(RIGHT_EYE)], centroids) | _inside(uv[list(LEFT_EYE)], centroids)
    in_mouth = _inside(uv[list(LIPS_INNER)], centroids)
    topo = Topology(
        canonical=canonical.astype(np.float32),
        uv=uv,
        triangles=tris[in_oval & ~in_eye & ~in_mouth],
        eye_triangles=tris[in_oval & in_eye],
        mouth_triangles=tris[in_oval & in_mouth],
    )
    for arr in (topo.canonical, topo.uv, topo.triangles, topo.eye_triangles, topo.mouth_triangles):
        arr.setflags(write=False)
    return topo


@functools.cache
def mirror_vertices() -> np.ndarray:
    """Per vertex, its mirror image on the other side of the face (468,) int (read-only): the vertex nearest to
    its reflection on the canonical face. A face flipped left to right is the mesh ``flipped[mirror_vertices()]``."""
    canon = face_topology().canonical.astype(np.float64)
    reflected = canon * np.array([-1.0, 1.0, 1.0])
    out = np.linalg.norm(reflected[:, None, :] - canon[None, :, :], axis=2).argmin(axis=1)
    out.setflags(write=False)
    return out


@functools.cache
def vertex_adjacency() -> np.ndarray:
    """(468, 468) row-normalised adjacency of the mesh's vertices (read-only): ``A @ v`` averages each
    vertex's neighbours."""
    tris = face_topology().all_triangles
    adj = np.zeros((NUM_LANDMARKS, NUM_LANDMARKS), dtype=np.float64)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        adj[tris[:, a], tris[:, b]] = 1.0
        adj[tris[:, b], tris[:, a]] = 1.0
    adj /= np.maximum(adj.sum(axis=1, keepdims=True), 1.0)
    adj.setflags(write=False)
    return adj


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit per-vertex normals (V, 3) of a mesh, area-weighted, in the vertices' own frame.

    For the tracker's landmarks (x right, y down, z away from the camera) and this module's clockwise
    triangles, a surface facing the camera gets a normal with negative z (pointing at the camera).
    """
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    face_n = np.cross(c - a, b - a)  # length = twice the area: larger triangles weigh more
    acc = np.zeros_like(v)
    for k in range(3):
        for axis in range(3):
            acc[:, axis] += np.bincount(t[:, k], weights=face_n[:, axis], minlength=len(v))
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    fallback = np.array([0.0, 0.0, -1.0])
    out = np.where(norm > 1e-12, acc / np.maximum(norm, 1e-12), fallback)
    return out.astype(np.float32)


def polygon_area(points: np.ndarray) -> float:
    """Area of a closed polygon (shoelace), in the points' units squared."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def face_scale_px(landmarks: np.ndarray) -> float:
    """A face-size unit in pixels: the outer-eye-corner distance (3D), never below 1."""
    d = landmarks[LEFT_EYE_OUTER] - landmarks[RIGHT_EYE_OUTER]
    return max(1.0, math.sqrt(float(np.dot(d, d))))
