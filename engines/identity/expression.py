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

from engines.face.topology import face_topology, vertex_adjacency

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


def smile_amount(shape: np.ndarray) -> float:
    """0 (neutral) .. 1 (a broad smile) for a frontalised (468, 3) face shape (``topology.frontalise``)."""
    c = np.asarray(shape, np.float64)
    width = float(np.linalg.norm(c[291, :2] - c[61, :2]))
    raise_ = float((c[0, 1] + c[17, 1]) / 2.0 - (c[61, 1] + c[291, 1]) / 2.0)
    wide = np.clip((width - SMILE_WIDTH[0]) / (SMILE_WIDTH[1] - SMILE_WIDTH[0]), 0.0, 1.0)
    raised = np.clip((raise_ - SMILE_RAISE[0]) / (SMILE_RAISE[1] - SMILE_RAISE[0]), 0.0, 1.0)
    return float(min(wide, raised))


def neutral_shape(shape: np.ndarray) -> np.ndarray:
    """``shape`` with its smile taken out by ``smile_amount`` (see the module docstring); a new array."""
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
    return c.astype(np.float32)


@functools.cache
def _corner_operator() -> np.ndarray:
    """(468, 4) weights spreading the four corners' displacements over the mesh: the corners driven, the
    lips' middle points, the nose and everything beyond ``REACH`` pinned, every other vertex the mean of its
    neighbours (a discrete harmonic field)."""
    canon = face_topology().canonical.astype(np.float64)
    n = canon.shape[0]
    middle = canon[list(LIP_MIDDLE), :2].mean(axis=0)
    far = (np.linalg.norm(canon[:, :2] - middle, axis=1) > REACH) | (canon[:, 1] < NOSE_BOTTOM_Y)
    driven = list(MOUTH_CORNERS)
    pinned = (set(np.flatnonzero(far).tolist()) | set(LIP_MIDDLE)) - set(driven)
    free = np.array(sorted(set(range(n)) - pinned - set(driven)))
    laplacian = np.eye(n) - vertex_adjacency()
    weights = np.zeros((n, len(driven)))
    weights[np.array(driven), np.arange(len(driven))] = 1.0
    rhs = -laplacian[np.ix_(free, np.array(driven))]
    weights[free] = np.linalg.solve(laplacian[np.ix_(free, free)], rhs)
    weights.setflags(write=False)
    return weights
