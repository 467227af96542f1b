"""Unwrapping a photo's face into texture space: which texels the photo saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.swap.texture import unwrap
from tests.face_helpers import photo_mesh

PHOTOS = (
    "s1.jpg",
    "roop_source.jpg",
    "lin-manuel-miranda.png",
    "obama.jpg",
    "biden.jpg",
    "t1.jpg",
    "woman.png",
    "alex-lacamoire.png",
)


def _isolated_hidden(weight: np.ndarray, facing: np.ndarray) -> int:
    """Front-facing texels marked hidden while both neighbours (left and right, or above and below) are seen."""
    hidden = facing & (weight == 0)
    seen = weight > 0
    across = hidden[:, 1:-1] & seen[:, :-2] & seen[:, 2:]
    down = hidden[1:-1] & seen[:-2] & seen[2:]
    return int(across.sum() + down.sum())


def test_the_visibility_test_leaves_no_stripes_on_the_face(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """Where the photo sees the surface edge-on (the sides of the face, under the nose) its depth changes by
    more than the tolerance from one photo pixel to the next. Compared with the nearest pixel's depth,
    texels flipped between seen and hidden from one to the next: stripes of "hidden" skin whose low coverage
    showed the actor through the swapped face in a serrated, flickering edge (t1.jpg: 446 isolated hidden
    texels, all eight photos 1055). Compared with the farthest of the four pixels around them, they do not."""
    counts = {}
    for name in PHOTOS:
        image, lm = photo_mesh(detector, mesh, faces / name)
        u = unwrap(image, lm)
        counts[name] = _isolated_hidden(u.weight, -u.normals[..., 2] > 0.1)
    assert max(counts.values()) <= 40 and sum(counts.values()) <= 100, counts


def test_what_the_nose_hides_stays_hidden(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """s1.jpg's face turned 55 degrees (its mesh rotated about the vertical axis): the cheek behind the nose
    is hidden, in one piece, and the near cheek is seen."""
    image, lm = photo_mesh(detector, mesh, faces / "s1.jpg")
    centre = lm.mean(axis=0)
    a = np.deg2rad(55.0)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]], np.float32)
    turned = (lm - centre) @ rot.T + centre
    u = unwrap(image, turned)
    facing = -u.normals[..., 2] > 0.1
    hidden = facing & (u.weight == 0)
    assert hidden.sum() > 500  # the far side of the nose shadows a patch of cheek
    # One piece, not stripes: almost every hidden texel has a hidden neighbour on both sides along a row or a column.
    inner = hidden[1:-1, 1:-1]
    solid = (hidden[1:-1, :-2] & hidden[1:-1, 2:]) | (hidden[:-2, 1:-1] & hidden[2:, 1:-1])
    assert (inner & solid).sum() > 0.8 * inner.sum()
    # What faces the camera squarely is seen.
    square = -u.normals[..., 2] > 0.6
    assert (u.weight[square] > 0).mean() > 0.99
