"""A trained person's face shape, for the swap's geometry morph.

The mesh swap moves the actor's face toward the identity's shape (``engines.swap.mesh``: the identity's
frontalised, expression-neutral mesh against the actor's running average). A neural renderer
(``engines.train.neural_render``) draws its person's texture on whatever mesh it is given: on the actor's own
mesh the face keeps the actor's proportions (eye spacing, nose length, jaw), and a recogniser reads those. So the
renderer's person gets a shape too, made the way an enrolled identity's is (``engines.identity.enroll.average_shape``)
from the faces it was trained on, and stored in the exported model (``engines.swap.neural.SHAPE_KEY``); the swap
morphs the actor's mesh toward it before rendering, as the mesh swap does.

A faceset keeps each face's mesh in two dimensions only (``landmarks.npy``), and frontalising needs the mesh's
depth: the mesh model runs again on each picked crop, seeded from its stored landmarks (no detector), as the
tracker does from one frame to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engines.errors import InputError
from engines.face.landmarks import FaceMesh

MAX_FACES = 48
"""Faces measured per faceset at most, spread evenly over it (the median settles well before that)."""
MAX_POSE_DEG = 20.0
"""Only faces within this yaw and pitch: a turned face's mesh is less sure of the far side's proportions."""
MIN_PRESENCE = 0.9
"""The mesh's face-presence probability below which a crop is not measured (as the faceset's ``occluded``)."""


def faceset_shape(folders: Sequence[Path], mesh: FaceMesh, max_faces: int = MAX_FACES) -> np.ndarray:
    """(468, 3) float32: the person's neutral face shape from the facesets ``folders`` (frontal frame, outer eye
    corners 1 apart; ``average_shape``'s median over up to ``max_faces`` near-frontal faces). InputError when
    none is near-frontal enough to measure."""
    import cv2

    from engines.face.landmarks import roi_from_landmarks
    from engines.identity.enroll import average_shape
    from engines.train.faceset import FACES_DIR, LANDMARKS_FILE, iter_present, read_index

    picked: list[tuple[Path, str, np.ndarray]] = []
    for folder in map(Path, folders):
        index = read_index(folder)
        points = np.load(folder / LANDMARKS_FILE)
        for i, rec in iter_present(folder, index):
            if max(abs(rec.pose_deg[0]), abs(rec.pose_deg[1])) <= MAX_POSE_DEG and i < len(points):
                picked.append((folder, rec.file, points[i]))
    if not picked:
        raise InputError(
            f"no face within {MAX_POSE_DEG:g} degrees of frontal in {', '.join(map(str, folders))}: the trained "
            "person's face shape cannot be measured"
        )
    step = max(1, len(picked) // max_faces)
    meshes = []
    for folder, file, points in picked[::step][:max_faces]:
        image = cv2.imread(str(folder / FACES_DIR / file), cv2.IMREAD_COLOR)
        if image is None:
            continue
        lm = np.asarray(points, np.float64)
        result = None
        for _ in range(2):  # seeded from the stored mesh, then from its own (the tracker's rule)
            result = mesh.infer(image, roi_from_landmarks(lm))
            lm = result.landmarks
        if result is not None and result.presence >= MIN_PRESENCE:
            meshes.append(result.landmarks)
    if not meshes:
        raise InputError(f"the face mesh fits none of the faces picked in {', '.join(map(str, folders))}")
    return average_shape(meshes, neutral=True, median=True)
