"""Face alignment for learned swap models: the crop a model was trained on, and the way back.

Learned swappers see a face in a fixed framing at their own resolution and return a face in the same
framing; the result has to land on the actor's face again pixel for pixel. An ``Alignment`` is one
similarity transform (rotation, uniform scale, translation) from frame pixels to crop pixels, so the
way back is exact: its inverse.

Two framings:

- ``align_points5``: the ArcFace 5-point template (eye centres, nose tip, mouth corners), what
  ArcFace-style recognisers and inswapper-style swappers are trained on. The template is defined at 112
  pixels; other resolutions scale it the way those models' tooling does (multiples of 112 scale it,
  others scale the 128-pixel variant, which sits 8/128 of the side further right).
- ``align_mesh``: a DeepFaceLab/DeepFaceLive-style whole-face crop from the 468-point mesh: the mesh is
  fitted to stageswap's canonical face (points that move with expression left out, so talking does not
  shake the crop) and the crop is ``coverage`` face widths wide around the face's centre.

Pixel convention: OpenCV's (pixel centres at integer coordinates), as ``cv2.warpAffine`` uses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from engines.errors import InputError
from engines.face.geometry import similarity_fit

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
"""The ArcFace template at 112x112: subject's right eye (image left), left eye, nose tip, right and left
mouth corners — the order of ``TrackedFace.points5``."""

MIN_SIZE, MAX_SIZE = 16, 2048
"""Crop sides accepted (pixels)."""

DFM_COVERAGE = 2.2
"""Default whole-face crop side in face widths (about DeepFaceLive's default face coverage)."""


def arcface_template(size: int) -> np.ndarray:
    """(5, 2) float64: the ArcFace 5-point template for a ``size`` x ``size`` crop."""
    _check_size(size)
    if size % 112 == 0:
        return ARCFACE_112 * (size / 112.0)
    ratio = size / 128.0
    out = ARCFACE_112 * ratio
    out[:, 0] += 8.0 * ratio
    return out


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform taking ``src`` points (N, 2) closest to ``dst`` (N, 2), least squares.

    ``engines.face.geometry.similarity_fit`` in the plane, refusing points that cannot be aligned."""
    s = np.asarray(src, dtype=np.float64)[:, :2]
    d = np.asarray(dst, dtype=np.float64)[:, :2]
    if s.shape != d.shape or s.shape[0] < 2:
        raise InputError(f"similarity needs two matching point sets of at least 2 points, got {s.shape}, {d.shape}")
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise InputError("alignment points are not finite")
    if float(((s - s.mean(axis=0)) ** 2).sum()) / len(s) < 1e-12:
        raise InputError("alignment points coincide: no face to align")
    scale, rot, shift = similarity_fit(s, d)
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = shift
    return m


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine applying ``inner`` then ``outer``."""
    a = np.vstack([np.asarray(outer, np.float64), [0.0, 0.0, 1.0]])
    b = np.vstack([np.asarray(inner, np.float64), [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) float64 points mapped by the 2x3 affine ``m``."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    return p @ np.asarray(m, np.float64)[:, :2].T + np.asarray(m, np.float64)[:, 2]


@dataclass(frozen=True)
class Alignment:
    """A face's crop: ``matrix`` maps frame pixels to the ``size`` x ``size`` crop's pixels."""

    matrix: np.ndarray
    size: int

    @functools.cached_property
    def inverse(self) -> np.ndarray:
        """2x3: crop pixels to frame pixels."""
        return cv2.invertAffineTransform(np.asarray(self.matrix, np.float64))

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel."""
        return float(np.sqrt(abs(np.linalg.det(np.asarray(self.matrix)[:, :2]))))

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The face cut out of ``image`` (frame pixels) at the crop's size; black outside the frame.

        A crop much smaller than the face is taken from a pre-blurred frame region (area-like sampling):
        a bilinear lookup that skips pixels would alias fine texture into the model's input."""
        src = image
        m = np.asarray(self.matrix, np.float64)
        if self.scale < 0.5:
            src, m = _prefiltered(image, m, self.size)
        return cv2.warpAffine(
            src, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        return transform_points(self.matrix, points)

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        return transform_points(self.inverse, points)

    def paste(self, crop: np.ndarray, target_from_frame: np.ndarray, target_size: tuple[int, int]) -> np.ndarray:
        """``crop`` (crop pixels, any channel count) warped back into a target image whose pixels are
        ``target_from_frame`` (2x3) of frame pixels, ``target_size`` = (height, width); 0 outside the crop."""
        h, w = target_size
        m = compose(target_from_frame, self.inverse)
        return cv2.warpAffine(
            crop, m, (int(w), int(h)), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )


def border_ramp(size: int, feather_fraction: float) -> np.ndarray:
    """(size, size) float32: 1 inside the crop, falling smoothly to 0 over ``feather_fraction`` of the side
    at its border, so a pasted crop never shows its square edge."""
    _check_size(size)
    idx = np.arange(size, dtype=np.float32)
    edge = np.minimum(idx, size - 1 - idx) + 0.5
    t = np.clip(edge / max(feather_fraction * size, 1.0), 0.0, 1.0)
    ramp = t * t * (3.0 - 2.0 * t)
    return np.minimum(ramp[:, None], ramp[None, :]).astype(np.float32)


def align_points5(points5: np.ndarray, size: int) -> Alignment:
    """The ArcFace-template crop of the face with these 5 points (frame pixels, ``points5`` order)."""
    pts = np.asarray(points5, dtype=np.float64)
    if pts.shape[0] != 5 or pts.ndim != 2 or pts.shape[1] < 2:
        raise InputError(f"ArcFace alignment needs 5 points, got an array of shape {pts.shape}")
    return Alignment(similarity(pts, arcface_template(size)), size)


def align_mesh(landmarks: np.ndarray, size: int, coverage: float = DFM_COVERAGE, y_offset: float = 0.0) -> Alignment:
    """The whole-face crop of the face with these 468 landmarks (frame pixels): ``coverage`` face widths
    wide, centred on the face (moved down by ``y_offset`` crop sides; negative: up)."""
    from engines.face.landmarks import NUM_LANDMARKS

    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] != NUM_LANDMARKS:
        raise InputError(f"mesh alignment needs {NUM_LANDMARKS} landmarks, got an array of shape {lm.shape}")
    if not 0.5 <= coverage <= 8.0:
        raise InputError(f"face coverage must be between 0.5 and 8, got {coverage}")
    _check_size(size)
    rigid, canonical, centre, width = _mesh_template()
    to_canonical = similarity(lm[rigid, :2], canonical[rigid])
    side = coverage * width
    origin = centre - side / 2.0 + np.array([0.0, y_offset * side])
    # canonical -> crop: (c - origin) * size / side (pixel centres: the crop spans -0.5 .. size - 0.5)
    k = size / side
    to_crop = np.array([[k, 0.0, -origin[0] * k - 0.5], [0.0, k, -origin[1] * k - 0.5]])
    return Alignment(compose(to_crop, to_canonical), size)


@functools.cache
def _mesh_template() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(rigid point indices, canonical (468, 2), face centre (2,), face width) of stageswap's canonical face.

    Rigid: everything above the mouth except the eyelids and brows (they move with expression)."""
    from engines.face.topology import LEFT_BROW, LEFT_EYE, LIPS_INNER, LIPS_OUTER, RIGHT_BROW, RIGHT_EYE, face_topology

    canonical = face_topology().canonical[:, :2].astype(np.float64)
    mouth_top = float(canonical[list(LIPS_OUTER), 1].min())
    moving = set(LIPS_OUTER + LIPS_INNER + RIGHT_EYE + LEFT_EYE + RIGHT_BROW + LEFT_BROW)
    rigid = np.array([i for i in range(len(canonical)) if i not in moving and canonical[i, 1] < mouth_top])
    lo, hi = canonical.min(axis=0), canonical.max(axis=0)
    return rigid, canonical, (lo + hi) / 2.0, float(hi[0] - lo[0])


def _prefiltered(image: np.ndarray, m: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A blurred copy of the frame region the crop reads (and ``m`` re-based onto it), for down-sampling."""
    inv = cv2.invertAffineTransform(m)
    corners = transform_points(inv, np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64))
    h, w = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, w))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, h))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 3, 0, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 3, 0, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image, m
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    sigma = 0.5 * (1.0 / max(scale, 1e-6) - 1.0)
    region = cv2.GaussianBlur(image[y0:y1, x0:x1], (0, 0), sigma) if sigma > 0.3 else image[y0:y1, x0:x1]
    shift = np.array([[1.0, 0.0, float(x0)], [0.0, 1.0, float(y0)]])
    return region, compose(m, shift)


def _check_size(size: int) -> None:
    if not isinstance(size, int | np.integer) or not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise InputError(f"crop size must be an integer between {MIN_SIZE} and {MAX_SIZE} pixels, got {size!r}")
