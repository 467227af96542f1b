"""What a neural renderer (``engines.train.neural_render``, model kind ``dnr``) sees of a face, without torch.

The renderer's input is the actor's mesh, not the actor's pixels, so it is not a DFM: each face crop's tracked
mesh is rasterised over the mesh swap's texture layout (``uv_maps``, the mesh swap's rasteriser), giving each pixel
its texture coordinates, and the exported graph renders the person there (inputs ``uv`` and ``covered``, output
``face``). The rendered face then takes the actor's colour statistics inside the mesh (``colour_match``: its light
is its footage's). Training (``engines.train.neural_render``) and the live swap
(``engines.swap.learned.NeuralRenderSwapper``) both use these, so a live face looks like what the renderer
learned.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engines.face.landmarks import NUM_LANDMARKS
from engines.face.topology import face_topology
from engines.swap.raster import Window, rasterize

UV_NAME, COVERED_NAME, FACE_NAME = "uv", "covered", "face"
"""The exported renderer's inputs and output (``engines.train.neural_render.export_onnx``)."""

SHAPE_KEY = "stageswap.shape"
"""The exported renderer's metadata entry holding its person's face shape (``engines.train.shape``): JSON, 468
``[x, y, z]`` in the frontal frame (``engines.face.topology.frontalise``). The swap morphs the actor's mesh toward
it as the mesh swap does toward an identity's; a model without it (exported before) renders on the actor's mesh."""

OUTLINE = 1 / 64
"""The renderer learns nothing within this share of the crop's side of the drawn mesh's outline (2 px at 128):
there a crop mixes the face with the wall behind it, so training leaves it out (``engines.train.neural_render``),
and what the renderer draws there is untrained: the swap does not draw it (``drawn``), the actor's face stays."""

_TO_YCC = np.array([[0.114, 0.587, 0.299], [0.5, -0.331264, -0.168736], [-0.081312, -0.418688, 0.5]], np.float32)
"""BGR -> (Y, Cb, Cr), offsets left out (they cancel in a mean/spread transfer); the training's own matrix."""
_FROM_YCC = np.linalg.inv(_TO_YCC).astype(np.float32)

CHROMA_SPREAD = (0.8, 1.25)
"""How far ``colour_match`` may stretch or shrink the rendered face's Cb and Cr spread toward the actor's. The
means move all the way (the actor's light and skin tone), but a made-up face's chroma spread can be far larger
than the trained person's (d10's actress: Cb 1.4x Obama's render): stretched that much, the render's greyish
upper lids turned a grey-lilac patch. Luma's spread still follows the actor (her contrast is her light's)."""


LIDS_KEPT = 0.85
"""The swap keeps the actor's upper lids (``upper_lids``) this share of the way from the lid's edge to the brow's
lower edge. The renderer draws the trained person's lids greyish over a wide-eyed actor's much larger lids (d10):
a grey patch from the eye to the brow that the colour match cannot take out. 0: it draws them."""


def upper_lids(crop_landmarks: np.ndarray, resolution: int, reach: float = LIDS_KEPT) -> np.ndarray:
    """(R, R) float32 0..1: the upper lids from the eye opening's upper edge ``reach`` of the way to the brow's
    lower edge, edge blurred over about a pixel and a half at 128 px; ``crop_landmarks`` (468, 2+, crop px)."""
    from engines.face.topology import LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE

    lids = np.zeros((resolution, resolution), np.float32)
    if reach <= 0:
        return lids
    lm = np.asarray(crop_landmarks, np.float64)[:, :2]
    for eye, brow in ((RIGHT_EYE, RIGHT_BROW), (LEFT_EYE, LEFT_BROW)):
        lid = lm[[eye[0], *eye[9:], eye[8]]]  # a corner, the upper lid, the other corner
        under = lm[list(brow[5:])]  # the brow's lower edge
        nearest = ((lid[:, None] - under[None]) ** 2).sum(axis=-1).argmin(axis=1)
        top = lid + reach * (under[nearest] - lid)
        cv2.fillPoly(lids, [np.round(np.concatenate([lid, top[::-1]])).astype(np.int32)], 1.0)
    return cv2.GaussianBlur(lids, (0, 0), 1.5 * resolution / 128)


def spread_ratio(ratio: np.ndarray) -> np.ndarray:
    """Per (Y, Cb, Cr) channel, the reference's spread over the face's, on the last axis: luma's as it is, the
    chroma channels' bounded to ``CHROMA_SPREAD``."""
    out = np.array(ratio, dtype=np.float32, copy=True)
    out[..., 1:] = np.clip(out[..., 1:], *CHROMA_SPREAD)
    return out


def uv_maps(landmarks: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Per face crop, where each pixel lies in the mesh swap's texture layout.

    ``landmarks`` (N, 468, 2 or 3) in crop pixels (a faceset's, at ``resolution``; only x and y are used). Returns
    ``uv`` (N, R, R, 2) float32 (0..1, u right, v down; 0 where no triangle) and ``covered`` (N, R, R) float32 (1
    where a triangle of the mesh, its eye and mouth fills included, is drawn). A faceset keeps no depth, so the
    nearer of two overlapping triangles is found by their winding: only triangles facing the camera are drawn
    (the far cheek folded behind the nose of a turned head faces away); live faces are drawn the same way, so
    they look like what the renderer was trained on.
    """
    topo = face_topology()
    tris = topo.all_triangles
    lm = np.asarray(landmarks, np.float64)
    n = lm.shape[0]
    uv = np.zeros((n, resolution, resolution, 2), np.float32)
    covered = np.zeros((n, resolution, resolution), np.float32)
    window = Window(0, 0, resolution, resolution)
    for i in range(n):
        raster = rasterize(lm[i, :, :2], tris, window, cull_back_faces=True)
        uv[i] = raster.interpolate(topo.uv)
        covered[i] = raster.mask
    return uv, covered


def drawn(covered: np.ndarray, resolution: int) -> np.ndarray:
    """Where the swap draws the rendered face: ``covered`` (R, R) float32 0/1 less ``OUTLINE`` along its outline
    (the crop's border counts as outside)."""
    px = max(1, round(OUTLINE * resolution))
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.erode(covered, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0.0)


def colour_match(face: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``face`` (R, R, 3) float32 BGR 0..1 with the YCbCr mean and luma spread of ``reference`` (same shape)
    inside ``mask`` (R, R) 0..1, its chroma spread scaled toward the reference's within ``CHROMA_SPREAD``; clipped
    to 0..1. The training's ``engines.train.neural_render.colour_match`` is its twin."""
    w = mask.reshape(-1, 1).astype(np.float32)
    total = max(float(w.sum()), 1.0)

    def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = x.reshape(-1, 3).astype(np.float32) @ _TO_YCC.T
        mean = (y * w).sum(axis=0) / total
        std = np.sqrt(np.maximum((((y - mean) ** 2) * w).sum(axis=0) / total, 1e-6))
        return y, mean, std

    y, m_face, s_face = stats(face)
    _, m_ref, s_ref = stats(reference)
    ratio = spread_ratio(s_ref / s_face)
    out = y * ratio + (m_ref - m_face * ratio) * chroma_shift_weight(y[:, :1], m_face[0], m_ref[0], ratio[0])
    return np.clip(out @ _FROM_YCC.T, 0.0, 1.0).reshape(face.shape).astype(np.float32)


CHROMA_SHIFT_MAX = 1.5
"""``chroma_shift_weight``'s bound: a highlight takes at most this many times the face's mean chroma shift."""


def chroma_shift_weight(luma: np.ndarray, m_face: float, m_ref: float, ratio: float) -> np.ndarray:
    """(..., 3) per pixel: how much of the colour match's mean shift each of (Y, Cb, Cr) takes: all of it for luma;
    for chroma the pixel's matched luma over the face's mean, within 0..``CHROMA_SHIFT_MAX``. A skin tone's shift is
    a tint of the light and the skin, which scales with how bright the pixel is; added in full to the renderer's
    dark, grey brows it turned them teal on an actress paler and less red than the trained person (d10: the mean
    moved to more blue and less red)."""
    matched = (luma - m_face) * ratio + m_ref
    weight = np.clip(matched / max(float(m_ref), 1e-3), 0.0, CHROMA_SHIFT_MAX)
    return np.concatenate([np.ones_like(weight), weight, weight], axis=-1).astype(np.float32)


def read_shape(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The face shape stored in the renderer ``path`` (``SHAPE_KEY``: (468, 3) float32), or None when it has
    none. ModelError when the entry is there but is not 468 finite points."""
    import onnx

    from engines.errors import ModelError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a damaged file fails its sha256 check first; this is the last line of defence
        raise ModelError(f"cannot read {path}: {exc}") from exc
    text = next((p.value for p in model.metadata_props if p.key == SHAPE_KEY), None)
    if text is None:
        return None
    try:
        shape = np.asarray(json.loads(text), np.float32)
    except ValueError as exc:
        raise ModelError(f"{path}: its {SHAPE_KEY} is not JSON: {exc}") from exc
    if shape.shape != (NUM_LANDMARKS, 3) or not np.isfinite(shape).all():
        raise ModelError(f"{path}: its {SHAPE_KEY} is {shape.shape}, not {NUM_LANDMARKS} finite [x, y, z] points")
    return shape


def write_shape(source: str | os.PathLike[str], target: str | os.PathLike[str], shape: np.ndarray) -> None:
    """The renderer ``source`` with ``shape`` (468, 3) stored as its ``SHAPE_KEY`` (replacing one there), written to
    ``target`` (may be ``source``) under a temporary name first. The graph itself is unchanged."""
    import onnx

    arr = np.asarray(shape, np.float64)
    if arr.shape != (NUM_LANDMARKS, 3) or not np.isfinite(arr).all():
        raise ValueError(f"a face shape is {NUM_LANDMARKS} finite [x, y, z] points, not {arr.shape}")
    model = onnx.load(str(source))
    kept = [p for p in model.metadata_props if p.key != SHAPE_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = SHAPE_KEY, json.dumps(np.round(arr, 5).tolist(), separators=(",", ":"))
    out = Path(target)
    tmp = out.with_name(f".{out.name}.shape-tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


SHADING_SIGMA = 1 / 10
"""``shading_match``'s scale: the light's pattern over the face is taken from the actor below detail of about this
share of the crop's side (a Gaussian's sigma: 12.8 px at 128, about a quarter of an eye-corner distance). Finer
took the trained person's own mid-scale shading (cheekbones, folds) with the light: d13 x obama.jpg with the shape,
60 frames, cosine 0.45 unmatched, 0.44 at 1/5, 0.43 at 1/10, 0.40 at 1/16; d10's artifact p50 13.5, 10.4, 8.4,
9.3 (the shadowed cheek and the pale jaw rim; BENCHMARKS.md, issue 19). 0: not matched."""
SHADING_GAIN = (0.67, 1.5)
"""How far ``shading_match`` may brighten or darken a point of the rendered face."""


def _weighted_blur(weight: np.ndarray, px: float) -> Callable[[np.ndarray], np.ndarray]:
    """A Gaussian average at ``px`` (pixels) of an (R, R) or (R, R, C) image over ``weight`` (R, R) only: each
    pixel's neighbours weighted by ``weight`` and normalised by the blurred weight (held off zero far from it)."""
    blurred = cv2.GaussianBlur(weight, (0, 0), px)
    norm = np.maximum(blurred, max(float(blurred.max()), 1e-6) * 1e-3)

    def smooth(x: np.ndarray) -> np.ndarray:
        if x.ndim == 2:
            return cv2.GaussianBlur(x * weight, (0, 0), px) / norm
        out = cv2.GaussianBlur(x * weight[..., None], (0, 0), px).reshape(x.shape[0], x.shape[1], -1)
        return out / norm[..., None]

    return smooth


def shading_match(
    face: np.ndarray, actor: np.ndarray, mask: np.ndarray, crop_landmarks: np.ndarray, sigma: float = SHADING_SIGMA
) -> np.ndarray:
    """``face`` (R, R, 3) float32 BGR 0..1 with the actor's (same shape) light pattern: each pixel scaled by the
    actor's smooth luma over the face's (both averaged inside ``mask`` less the eye and mouth openings of
    ``crop_landmarks``, at ``sigma``), within ``SHADING_GAIN``. The renderer draws its footage's light (one side
    of the face in shadow in Obama_speaking); the colour match moves only the face's mean and spread, so that
    shadow stayed on every actor's cheek, and the actor's skin at the outline met it as a pale rim."""
    from engines.face.topology import LEFT_EYE, LIPS_INNER, RIGHT_EYE

    if sigma <= 0:
        return face
    res = face.shape[0]
    lm = np.asarray(crop_landmarks, np.float64)[:, :2]
    openings = np.zeros((res, res), np.float32)
    cv2.fillPoly(openings, [np.round(lm[list(c)]).astype(np.int32) for c in (RIGHT_EYE, LEFT_EYE, LIPS_INNER)], 1.0)
    smooth = _weighted_blur((mask * (1.0 - openings)).astype(np.float32), sigma * res)

    def smooth_luma(x: np.ndarray) -> np.ndarray:
        return smooth((x.reshape(-1, 3) @ _TO_YCC[0]).reshape(res, res).astype(np.float32))

    gain = np.clip((smooth_luma(actor) + 0.02) / (smooth_luma(face) + 0.02), *SHADING_GAIN)
    return np.clip(face * gain[..., None], 0.0, 1.0).astype(np.float32)


TONE_SIGMA = SHADING_SIGMA
"""``tone_match``'s scale, as ``SHADING_SIGMA``: finer would take the actor's own features' colour (her lips,
her eye make-up) into the skin around them. 0: not matched."""
TONE_GAIN_MAX = 1.5
"""``tone_match``: a pixel takes at most this many times the local a*, b* offset (in proportion to its L* over the
smooth L* around it, as ``chroma_shift_weight``)."""


def tone_match(
    face: np.ndarray, actor: np.ndarray, mask: np.ndarray, crop_landmarks: np.ndarray, sigma: float = TONE_SIGMA
) -> np.ndarray:
    """``face`` (R, R, 3) float32 BGR 0..1 with the actor's (same shape) skin tone across the face: each pixel's
    a*, b* (CIE L*a*b*; L* is kept) moved by the actor's smooth a*, b* less the face's, both averaged over the skin
    (``mask`` less the eyes, lips and brows of ``crop_landmarks``) at ``sigma``, in proportion to the pixel's L*
    over the face's smooth L* (dark brows and lashes take little; 0..``TONE_GAIN_MAX``). ``colour_match`` moves
    only the face's mean, over brows, eyes and lips too, and ``shading_match`` only its light: the trained person's
    own tone pattern stayed. Obama_speaking's forehead is more yellow than his cheeks where d10's actress's is
    pinker, and the luma-scaled mean shift took the most red from her bright forehead: a pale grey-green band
    under the hairline (a* 11-12 against her 16-17) and grey-green eye rings (BENCHMARKS.md, issue 19)."""
    from engines.face.topology import LEFT_BROW, LEFT_EYE, LIPS_OUTER, RIGHT_BROW, RIGHT_EYE

    if sigma <= 0:
        return face
    res = face.shape[0]
    lm = np.asarray(crop_landmarks, np.float64)[:, :2]
    features = np.zeros((res, res), np.float32)
    polys = [np.round(lm[list(c)]).astype(np.int32) for c in (RIGHT_EYE, LEFT_EYE, LIPS_OUTER, RIGHT_BROW, LEFT_BROW)]
    cv2.fillPoly(features, polys, 1.0)
    smooth = _weighted_blur((mask * (1.0 - features)).astype(np.float32), sigma * res)
    lab_face = cv2.cvtColor(np.ascontiguousarray(face, np.float32), cv2.COLOR_BGR2LAB)
    lab_actor = cv2.cvtColor(np.ascontiguousarray(actor, np.float32), cv2.COLOR_BGR2LAB)
    s_face, s_actor = smooth(lab_face), smooth(lab_actor)
    scale = np.clip(lab_face[..., :1] / np.maximum(s_face[..., :1], 1.0), 0.0, TONE_GAIN_MAX)
    out = lab_face.copy()
    out[..., 1:] += (s_actor[..., 1:] - s_face[..., 1:]) * scale
    return np.clip(cv2.cvtColor(out, cv2.COLOR_LAB2BGR), 0.0, 1.0).astype(np.float32)
