"""The photo's expression taken out of the identity's face shape: a smile is not the person's face.

An identity's face shape (its photos' frontalised meshes, averaged) drives the swap's geometry morph: the
actor's face is moved toward it, relative to the actor's own average shape, so expressions stay the
actor's. A photo of a broad smile puts a smile into that shape — mouth corners far apart and raised —
and the morph then holds every frame of the actor in it: a closed, talking mouth stretched into the
photo's grin, the smile borrowed.

``smile_amount`` reads how much a shape smiles from the two things a smile does to the mouth: it widens it
(mouth corners about 0.75-0.8 eye-corner distances apart in the shared smiling photos, 0.49-0.6 in the
neutral photos and the clips' average faces) and raises its corners above the lips' middle (0.07-0.1
against 0.0-0.05). Both must show: a wide mouth with level corners is a wide mouth. ``neutral_shape``
moves the mouth corners back toward a neutral width and height by that amount and lets the lips and
the skin around follow smoothly (a discrete harmonic field over the mesh, as the swap's own opening
match does); the lips' own shape and thickness, and everything farther than ``REACH`` from the mouth,
stay the photo's.
"""

from __future__ import annotations

import functools

import numpy as np

from engines.face.topology import LIPS_OUTER, face_topology, vertex_adjacency

MOUTH_CORNERS = (61, 291, 78, 308)
"""Outer and inner mouth corners: subject's right outer, left outer, right inner, left inner."""
LIP_MIDDLE = (0, 17, 13, 14)
"""The lips' middle points (outer top and bottom, inner top and bottom): the corners are measured from them."""
NEUTRAL_WIDTH = 0.58
"""Mouth width (outer corners, eye-corner distances) a smile is taken back to at most."""
SMILE_WIDTH = (0.62, 0.74)
"""Mouth widths scored 0 and 1 for a smile ..."""
SMILE_RAISE = (0.035, 0.07)
"""... and the corners' height above the lips' middle scored 0 and 1 (eye-corner distances)."""
NEUTRAL_RAISE = 0.02
"""Height of a neutral mouth's corners above the lips' middle."""
REACH = 0.75
"""How far from the mouth's middle (eye-corner distances) moving the corners drags the skin ..."""
NOSE_BOTTOM_Y = 0.12
"""... below the nose (canonical height, y down): the nose stays where it is."""
GRIN_LIP = 0.1
"""Share of a smiling photo's lip gap (inner lips' middle, 13 to 14) closed by lowering its upper lip, in proportion
to ``smile_amount`` (at most ``GRIN_LIP_MAX``): a grin raises the upper lip off the teeth as well as dropping the
jaw. Left where the photo had it, the upper lip sat a grin's height under the nose in the identity's shape:
roop_source.jpg's philtrum (nose tip 2 to the upper lip's middle 0) 0.097 eye-corner distances, obama.jpg's and
alex-lacamoire.png's 0.114-0.120, against 0.138-0.180 for the shared photos that do not smile (biden, woman, t1,
lin-manuel-miranda) and 0.14-0.18 for the clips' actors; the swap's opening match then closed the mouth by raising
the *lower* lip to it (``engines.swap.mesh._match_openings``), so every frame drew the actor's mouth that much higher
on the face (d0.mp4 x roop_source.jpg: its mouth corners in the skin over the actor's upper lip as he smiled, that
region's darkest tenth 25 L* under the face against his 11, over the clip's bound on 8 of 30 frames; 1.5 mm lower,
none). Not more: the recogniser compares the swap with the grinning photo, and its likeness fell with every share
tried — half the gap (0.06 at most) cost roop_source.jpg 0.04-0.09 of cosine, from the brows down 0.08-0.17; a fifth
(0.03) 0.01-0.05, from the brows down up to 0.07 (BENCHMARKS.md, issue 21). 0: the upper lip stays (the lower lip
closes it all)."""
GRIN_LIP_MAX = 0.03
"""... and at most this far (eye-corner distances, about 3 mm: a wide-open laugh's gap is mostly the jaw's)."""


def smile_amount(shape: np.ndarray) -> float:
    """0 (neutral) .. 1 (a broad smile) for a frontalised (468, 3) face shape (``topology.frontalise``)."""
    c = np.asarray(shape, np.float64)
    width = float(np.linalg.norm(c[291, :2] - c[61, :2]))
    raise_ = float((c[0, 1] + c[17, 1]) / 2.0 - (c[61, 1] + c[291, 1]) / 2.0)
    wide = np.clip((width - SMILE_WIDTH[0]) / (SMILE_WIDTH[1] - SMILE_WIDTH[0]), 0.0, 1.0)
    raised = np.clip((raise_ - SMILE_RAISE[0]) / (SMILE_RAISE[1] - SMILE_RAISE[0]), 0.0, 1.0)
    return float(min(wide, raised))


def neutral_shape(shape: np.ndarray, grin_lip: float = GRIN_LIP) -> np.ndarray:
    """``shape`` with its smile taken out by ``smile_amount`` (see the module docstring), and ``grin_lip`` of its
    lips' gap closed by lowering the upper lip (``GRIN_LIP``); a new array."""
    c = np.asarray(shape, np.float64).copy()
    amount = smile_amount(c)
    if amount <= 0.0:
        return c.astype(np.float32)
    middle = c[list(LIP_MIDDLE)].mean(axis=0)
    width = float(np.linalg.norm(c[291, :2] - c[61, :2]))
    shrink = 1.0 - amount * (1.0 - min(NEUTRAL_WIDTH / width, 1.0))
    raise_ = float((c[0, 1] + c[17, 1]) / 2.0 - (c[61, 1] + c[291, 1]) / 2.0)
    lower = amount * max(raise_ - NEUTRAL_RAISE, 0.0)
    moves = []
    for corner in MOUTH_CORNERS:
        target = c[corner].copy()
        target[0] = middle[0] + (c[corner, 0] - middle[0]) * shrink
        target[1] += lower
        moves.append(target - c[corner])
    c += _corner_operator() @ np.asarray(moves)
    drop = amount * min(grin_lip * max(float(c[14, 1] - c[13, 1]), 0.0), GRIN_LIP_MAX)
    if drop > 0.0:
        # The upper lip down by ``drop``, the corners (between the lips) half as far, the skin between it and the
        # nose following; the lower lip, the nose and everything beyond ``REACH`` stay.
        upper, _ = _lips()
        down = np.zeros((len(upper) + len(MOUTH_CORNERS), 3))
        down[: len(upper), 1] = drop
        down[len(upper) :, 1] = 0.5 * drop
        c += _upper_lip_operator() @ down
    return c.astype(np.float32)


@functools.cache
def _lips() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The upper and the lower lip's vertices (within the outer lip contour on the template, above and below the
    inner lips' middle), the mouth corners in neither."""
    import cv2

    topo = face_topology()
    contour = topo.uv[list(LIPS_OUTER)].astype(np.float32).reshape(-1, 1, 2)
    stomion = float(topo.canonical[[13, 14], 1].mean())
    upper: list[int] = []
    lower: list[int] = []
    for i, (u, v) in enumerate(topo.uv):
        if i in MOUTH_CORNERS or cv2.pointPolygonTest(contour, (float(u), float(v)), True) < -1e-6:
            continue
        (upper if topo.canonical[i, 1] < stomion else lower).append(i)
    return tuple(upper), tuple(lower)


@functools.cache
def _upper_lip_operator() -> np.ndarray:
    """(468, U + 4) weights spreading the upper lip's vertices' and then the mouth corners' displacements over the
    mesh: those driven, the lower lip, the nose and everything beyond ``REACH`` pinned, every other vertex the mean
    of its neighbours (a discrete harmonic field)."""
    upper, lower = _lips()
    return _harmonic_operator(tuple(upper) + MOUTH_CORNERS, lower)


@functools.cache
def _corner_operator() -> np.ndarray:
    """(468, 4) weights spreading the four corners' displacements over the mesh: the corners driven, the
    lips' middle points, the nose and everything beyond ``REACH`` pinned, every other vertex the mean of its
    neighbours (a discrete harmonic field)."""
    return _harmonic_operator(MOUTH_CORNERS, LIP_MIDDLE)


def _harmonic_operator(driven: tuple[int, ...], held: tuple[int, ...]) -> np.ndarray:
    """(468, len(driven)) weights spreading the ``driven`` vertices' displacements over the mesh: ``held``, the nose
    and everything beyond ``REACH`` from the lips' middle pinned, every other vertex the mean of its neighbours (a
    discrete harmonic field); read-only."""
    canon = face_topology().canonical.astype(np.float64)
    n = canon.shape[0]
    middle = canon[list(LIP_MIDDLE), :2].mean(axis=0)
    far = (np.linalg.norm(canon[:, :2] - middle, axis=1) > REACH) | (canon[:, 1] < NOSE_BOTTOM_Y)
    pinned = (set(np.flatnonzero(far).tolist()) | set(held)) - set(driven)
    free = np.array(sorted(set(range(n)) - pinned - set(driven)))
    laplacian = np.eye(n) - vertex_adjacency()
    weights = np.zeros((n, len(driven)))
    weights[np.array(driven), np.arange(len(driven))] = 1.0
    rhs = -laplacian[np.ix_(free, np.array(driven))]
    weights[free] = np.linalg.solve(laplacian[np.ix_(free, free)], rhs)
    weights.setflags(write=False)
    return weights
