"""The seam at the mask's outline: the swapped face's low frequencies matched to the actor's skin near its edge.

The colour match (``blend.colour_gains``) moves the face's *mean* skin colour to the actor's. A face is not
one colour: a photo's forehead may be darker or warmer than its cheeks where the actor's is pale and shiny,
and at the outline, where the alpha ramps from the swapped face to the actor, such a local difference shows
as a band of another tone where the swap ends (issue 21: the forehead's top on d10 x roop_source).

The same holds inside the outline wherever the identity's photos give way to the actor (``seen``: the photo's
fringe, left out of the identity, shows the actor's forehead from the brows up; the face's tone must meet it
there without a step).

This correction is a gradient-domain-like blend restricted to the low frequencies: per channel, in linear
light, the ratio of the actor's to the face's skin heavily blurred (a normalised convolution over pixels that
are skin in both: the actor's hair or the photo's hair at the outline count for neither side), applied in full
at the outline (and at such an edge inside it) and faded to nothing a little inside it. Near the edge the
face takes the actor's local tone, so the ramp mixes like with like; the identity's detail (freckles, brows,
lashes, lips) is a high frequency and stays; the middle of the face (its features, its likeness) is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.topology import FEATURE, SKIN
from engines.light.sh import srgb_to_linear
from engines.swap.mesh import FaceGeometry, padded_mask


@dataclass(frozen=True)
class SeamConfig:
    reach: float = 0.15
    """How far inside the outline's ramp the correction fades out (eye-corner distances, beyond the ramp's
    own width, which is 0.25 on the forehead and 0.08 at the jaw: ``BlendConfig``); 0 turns it off."""
    blur: float = 0.12
    """Standard deviation of the blur that keeps only the low frequencies (eye-corner distances): wider than a
    freckle or a wrinkle, narrower than the forehead."""
    skin_range: float = 1.6
    """A pixel counts as skin when its luminance is within this factor of its side's median skin luminance
    (hair, brows and deep shadows are outside it)."""
    max_ratio: float = 2.0
    """Largest local correction per channel (and smallest, as its inverse)."""


SEEN_EDGE = 0.5
"""Coverage (0..1) at which the identity's face counts as ending inside the outline: the middle of the blend's
``seen_low``..``seen_high`` ramp."""

HOLE_MIN = 0.2
"""Narrowest part left to the actor inside the outline (eye-corner distances) that counts as an edge."""

_U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_U8_TO_LINEAR.setflags(write=False)
_LUMA_BGR = np.array([0.0722, 0.7152, 0.2126], np.float32)
_LUMA_BGR.setflags(write=False)  # read-only, as the compiled kernels were compiled for (``engines.fused.warm_up``)
_GAMMA = 2.2


def seam_field(
    face_bgr: np.ndarray,
    actor_small: np.ndarray,
    geometry: FaceGeometry,
    feather: np.ndarray,
    config: SeamConfig | None = None,
    seen: np.ndarray | None = None,
    fused: bool = False,
) -> np.ndarray | None:
    """(h, w, 3) float32 linear-light gains at half the geometry resolution (1 where nothing changes; the field
    is smooth, and a quarter of the pixels costs a quarter of the time), or None when the correction is off or
    too little skin shows.

    ``face_bgr``: the face to paste, uint8 BGR at any size (its working size); ``actor_small`` what it is matched
    to, uint8 BGR at geometry resolution; ``feather`` (hs, ws) the outline ramp's width per geometry pixel
    (eye-corner distances: ``blend.outline_feather``); ``seen`` (hs, ws) the identity photos' coverage
    (``MeshSwapper.coverage_small``): where it is low the actor shows inside the outline (a photo's fringe left
    out, the far side of a turned photo), and the face meets the actor's skin there too.

    ``fused``: the per-pixel arithmetic between OpenCV's resizes, blurs and distance transform in two compiled
    loops (``engines.fused.seam_weights``, ``seam_gains``: ~25 numpy calls were ~0.4 ms of CPU a face); the same
    float32 expressions, within 1e-5 (the logarithm's and exponential's last bits)."""
    cfg = config or SeamConfig()
    if cfg.reach <= 0.0:
        return None
    labels, feather = geometry.labels_small[::2, ::2], feather[::2, ::2]
    h, w = labels.shape
    unit = geometry.face_scale_px * w / geometry.window.width  # eye-corner distance in these pixels
    if seen is not None:
        labels = _features_at_coverage_edge_as_skin(labels, seen, unit)
    covered = labels >= 0
    skin = labels == SKIN
    if int(skin.sum()) < 30:
        return None
    face_half = cv2.resize(face_bgr, (w, h), interpolation=cv2.INTER_AREA)
    actor_half = cv2.resize(actor_small, (w, h), interpolation=cv2.INTER_AREA)
    sigma = max(cfg.blur * unit, 0.5)
    if fused:
        from engines import fused as kernels  # numba's import on the first face, not at start-up

        labels = np.ascontiguousarray(labels)
        count, wf, face_w, actor_w = kernels.seam_weights(
            face_half, actor_half, labels, SKIN, _U8_TO_LINEAR, _LUMA_BGR, cfg.skin_range
        )
        if count < 30:
            return None
        blurred_w = cv2.GaussianBlur(wf, (0, 0), sigma)
        face_mean = cv2.GaussianBlur(face_w, (0, 0), sigma)
        actor_mean = cv2.GaussianBlur(actor_w, (0, 0), sigma)
        inside = np.ascontiguousarray(_inside(covered, seen, unit))  # the layout warm_up compiled for
        return kernels.seam_gains(
            blurred_w,
            face_mean,
            actor_mean,
            inside,
            np.ascontiguousarray(feather),
            labels,
            unit,
            cfg.reach,
            cfg.max_ratio,
        )
    face_lin, actor_lin = _U8_TO_LINEAR[face_half], _U8_TO_LINEAR[actor_half]
    weight = skin & _near_median(face_lin, skin, cfg.skin_range) & _near_median(actor_lin, skin, cfg.skin_range)
    if int(weight.sum()) < 30:
        return None
    wf = weight.astype(np.float32)
    blurred_w = cv2.GaussianBlur(wf, (0, 0), sigma)
    face_mean = cv2.GaussianBlur(face_lin * wf[..., None], (0, 0), sigma)
    actor_mean = cv2.GaussianBlur(actor_lin * wf[..., None], (0, 0), sigma)
    # How sure the neighbourhood's tone is: none under 5% skin, full from 20%. A hard cut-off made the field
    # jump (by up to ``max_ratio``) where a pixel or two more or less of skin crossed it.
    known = np.clip((blurred_w - 0.05) / 0.15, 0.0, 1.0)
    ratio = np.clip(actor_mean / np.maximum(face_mean, 1e-4), 1.0 / cfg.max_ratio, cfg.max_ratio)
    log_ratio = np.log(ratio) * known[..., None]  # raised to the power ``known``, and below to ``fade``
    # Full at the outline (and where the photos' coverage ends inside it), none beyond the ramp's width plus
    # ``reach`` inside it.
    inside = _inside(covered, seen, unit)
    t = np.clip(inside / np.maximum((feather + cfg.reach) * unit, 1e-3), 0.0, 1.0)
    fade = (1.0 - t * t * (3.0 - 2.0 * t)) * covered
    return np.exp(log_ratio * fade[..., None]).astype(np.float32)


def _inside(covered: np.ndarray, seen: np.ndarray | None, unit: float) -> np.ndarray:
    """(h, w) float32 at half the geometry resolution: each pixel's distance inside the face's outline, or inside
    where the photos' coverage ends (``seen`` at geometry resolution; ``unit``: an eye-corner distance in these
    pixels), wherever that comes first."""
    drawn = covered
    if seen is not None:
        # Only where a broad part is left to the actor: a nostril the photo did not see is not an edge.
        k = max(3, int(round(HOLE_MIN * unit)) | 1)
        low = cv2.morphologyEx((seen[::2, ::2] < SEEN_EDGE).astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
        drawn = covered & (low == 0)
    inside: np.ndarray = cv2.distanceTransform(padded_mask(drawn), cv2.DIST_L2, 3)[1:-1, 1:-1]
    return inside


COVERAGE_EDGE_REACH = 0.3
"""How far from where the photos' coverage ends inside the outline (eye-corner distances) the features' skin counts as
skin for the tone match (``_features_at_coverage_edge_as_skin``) ..."""
COVERAGE_EDGE_INSIDE = 0.3
"""... where that part reaches this far inside the outline (eye-corner distances; the forehead's ramp is 0.25 wide)."""


def _features_at_coverage_edge_as_skin(labels: np.ndarray, seen: np.ndarray, unit: float) -> np.ndarray:
    """``labels`` (half the geometry resolution) with the features near a broad part left to the actor inside the
    outline (``seen``: a photo's fringe left out) labelled skin: there the coverage ends at the brows' lower edge,
    and the skin between the brows and the lids is labelled a feature (the brows' and lids' band): with no skin
    sampled, the identity's face met the actor's paler brow bone as a step under the brows (d10.mp4 x s1.jpg). The
    brows and lashes stay out all the same: only pixels near the skin's median luminance on both sides are sampled."""
    k = max(3, int(round(HOLE_MIN * unit)) | 1)
    opened = cv2.morphologyEx((seen[::2, ::2] < SEEN_EDGE).astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    # Only a part left to the actor well inside the outline: every photo's coverage thins out along the outline
    # itself, and there the features are not under the brows (the swap of a photo without a fringe is unchanged).
    inside = cv2.distanceTransform(padded_mask(labels >= 0), cv2.DIST_L2, 3)[1:-1, 1:-1]
    low = ((opened > 0) & (inside > COVERAGE_EDGE_INSIDE * unit)).astype(np.uint8)
    if not low.any():
        return labels
    r = max(1, int(round(COVERAGE_EDGE_REACH * unit)))
    near = cv2.dilate(low, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    out: np.ndarray = np.where(near & (labels == FEATURE), SKIN, labels).astype(labels.dtype)
    return out


def _near_median(linear: np.ndarray, skin: np.ndarray, factor: float) -> np.ndarray:
    """Pixels whose luminance is within ``factor`` of the median over ``skin``."""
    luma = linear @ _LUMA_BGR
    median = float(np.median(luma[skin]))
    return (luma > median / factor) & (luma < median * factor)


def apply_field(face_bgr: np.ndarray, field_small: np.ndarray) -> np.ndarray:
    """``face_bgr`` (uint8, the face's working size) times the linear-light ``field_small`` (``seam_field``),
    upsampled. A gain in linear light is the gain to the power 1 / 2.2 on sRGB codes (exact for a pure gamma,
    within 2 levels for sRGB's toe): one multiply on the codes, no conversion of the face (17x cheaper)."""
    h, w = face_bgr.shape[:2]
    gain = cv2.resize(np.power(field_small, 1.0 / _GAMMA, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    out: np.ndarray = cv2.multiply(face_bgr, gain, dtype=cv2.CV_8U)
    return out
