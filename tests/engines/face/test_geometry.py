"""Geometry: crops are upright and round-trip exactly."""

from __future__ import annotations

import math

import numpy as np

from engines.face.geometry import RotatedRect, apply_affine, box_iou, invert_affine


def test_crop_levels_a_tilted_line_and_centres_the_roi() -> None:
    angle = math.radians(-25)
    roi = RotatedRect(cx=300.0, cy=200.0, size=100.0, angle=angle)
    m = roi.to_crop(192)
    # A point along the tilted direction lands straight to the right of the crop centre.
    p = np.array([[300 + 40 * math.cos(angle), 200 + 40 * math.sin(angle)]])
    q = apply_affine(m, p)[0]
    assert np.allclose(apply_affine(m, np.array([[300.0, 200.0]]))[0], [96, 96], atol=1e-6)
    assert abs(q[1] - 96) < 1e-4 and q[0] > 96
    assert abs(q[0] - 96 - 40 * 192 / 100) < 1e-4


def test_affine_round_trip_with_depth() -> None:
    m = RotatedRect(10.5, -3.0, 64.0, 0.7).to_crop(128)
    pts = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32) * 30
    back = apply_affine(invert_affine(m), apply_affine(m, pts))
    assert np.abs(back - pts).max() < 1e-3


def test_box_iou() -> None:
    a = np.array([0, 0, 10, 10.0])
    assert box_iou(a, a) == 1.0
    assert box_iou(a, np.array([20, 20, 30, 30.0])) == 0.0
    assert abs(box_iou(a, np.array([5, 0, 15, 10.0])) - 1 / 3) < 1e-9
