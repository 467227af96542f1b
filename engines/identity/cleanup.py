"""Cleaning an enrollment photo's face texture: what is not the person's skin, and what is the photo's, goes.

A photo's unwrapped face carries more than the person: a microphone or a hand in front of the chin, hair
or background at the sides where the mesh's outline runs past the face, hair over the forehead, the
flash's specular highlights, the photo's grain. Each would be painted onto every frame of the actor,
following the mesh — a grey blob on a chin, a shiny spot that stays whatever the stage light, grain that
shimmers as the face moves. Here, per photo and before the photos are merged
(``engines.identity.enroll.build_texture``):

- **occluders**: what is not skin and reaches in from the face's outline. Skin is judged against the
  photo's own cheeks: along the sides above the cheekbones, darker or of another hue (hair, background);
  below them only another hue or much less colour (a microphone, a sleeve) — a beard is darker but of the
  skin's hue, and stays. Brows, eyes and lips are never taken. A fringe over the forehead is only taken
  with ``CleanupConfig.fringe`` (see there). Occluded texels are filled in the de-lit domain — from the
  mirrored texel on the other side of the face where that is clean skin, else from a smooth continuation
  of the skin around them (push-pull) — and relit with the photo's own shading;
- **specular highlights**: skin brighter than its neighbourhood by more than ``highlight_ratio`` after the
  photo's light is divided out is pulled down to that level;
- **grain**: non-local means at a strength set by the noise measured on the photo's own skin.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.topology import EYE_OPENING, FEATURE, LEFT_BROW, LIPS, MOUTH_OPENING, RIGHT_BROW, SKIN, face_topology
from engines.light.sh import linear_to_srgb, srgb_to_linear
from engines.swap.texture import fill_holes, texture_canonical_y, texture_labels, texture_raster


@dataclass(frozen=True)
class CleanupConfig:
    occluders: bool = True
    """Find what is not skin reaching in from the face's outline (objects in front of the lower face; hair or
    background at the sides, with ``sides``) and fill it with skin."""
    sides: bool = True
    fringe: bool = False
    """Also fill hair hanging over the forehead from the top (a fringe). Off by default: measured with a face
    recogniser, s1.jpg's fringe carries much of her likeness (mean cosine of the swap to her photo 0.55 ->
    0.40 without it); with it, the fringe is painted onto the actor's forehead (a visible limit)."""
    highlights: bool = True
    """Pull specular highlights down to the surrounding skin's level."""
    denoise: bool = True
    """Remove the photo's grain (non-local means, strength from the skin's own noise)."""
    hair_darker: float = 25.0
    """L* (0-255 scale) below the cheeks' at which a forehead texel may be hair ..."""
    hair_tint: float = 14.0
    """... or a*b* distance from the cheeks' hue."""
    object_chroma: float = 0.45
    object_hue_deg: float = 40.0
    """Below the mouth, colour less saturated than this share of the skin's, or of a hue this far from it,
    is an object (a microphone); a beard, dark but of the skin's hue, stays."""
    highlight_ratio: float = 1.2
    """De-lit brightness over the neighbourhood's at which skin starts to count as a highlight."""


FOREHEAD_TOP_Y = -0.9
"""Canonical height (eye-corner distances, y down) of the top of the forehead: hair reaches in from here."""
ABOVE_BROWS_Y = -0.6
"""Hair is looked for above this height (the brows themselves are a feature and always kept)."""
SIDE_X = 0.62
"""Hair along the sides is looked for this far from the face's middle (the outer eye corners are at 0.5)."""
SIDE_HAIR_Y = 0.35
"""Down to this height (the mouth), hair hanging along the sides of the face is looked for by darkness
or hue; lower down (and anywhere else on the outline below ``LOWER_Y``) only by hue (a beard stays)."""
LOWER_Y = -0.1


@dataclass(frozen=True)
class Cleaned:
    texture: np.ndarray
    """(T, T, 3) uint8 BGR."""
    occluded: np.ndarray
    """(T, T) float32 0..1: how much of each texel was filled in (hair, objects)."""


def clean_texture(
    texture: np.ndarray, weight: np.ndarray, shading_bgr: np.ndarray | None, config: CleanupConfig | None = None
) -> Cleaned:
    """Clean one photo's unwrapped face (``engines.swap.texture.unwrap``): see the module docstring.

    ``shading_bgr``: (T, T, 3) linear shading of the photo's light per texel, or None (then the texture's
    own smooth brightness stands in for it)."""
    cfg = config or CleanupConfig()
    size = texture.shape[0]
    labels = texture_labels(size)
    # Texels the photo saw well enough to clean; occluders are looked for on everything it saw at all (hair
    # at the far edge of a turned face is seen at a grazing angle, and shows when the actor turns).
    face = (labels >= 0) & (weight > 0.05)
    seen = (labels >= 0) & (weight > 0.005)
    lin = srgb_to_linear(texture.astype(np.float32) / 255.0).astype(np.float32)
    shade = _luma_shading(lin, face, shading_bgr)
    albedo = lin / shade[..., None]
    changed = face.copy()
    occluded = np.zeros((size, size), np.float32)
    if cfg.denoise:
        albedo = _denoise(albedo, labels, face)
    if cfg.occluders:
        occluded = _occluders(texture, albedo, labels, seen, cfg)
        if occluded.max() > 0.0:
            albedo = _fill_from_skin(albedo, occluded, (labels == SKIN) & face & (occluded < 0.05) & (weight > 0.2))
            changed |= seen & (occluded > 0.0)
    if cfg.highlights:
        albedo = _flatten_highlights(albedo, labels, face, cfg.highlight_ratio)
    out = linear_to_srgb(np.clip(albedo * shade[..., None], 0.0, 1.0)) * 255.0
    cleaned = np.where(changed[..., None], np.round(out), texture.astype(np.float32))
    return Cleaned(np.clip(cleaned, 0, 255).astype(np.uint8), occluded)


_LUMA_BGR = np.array([0.0722, 0.7152, 0.2126], dtype=np.float32)


def _luma_shading(lin: np.ndarray, face: np.ndarray, shading_bgr: np.ndarray | None) -> np.ndarray:
    """(T, T) positive brightness of the photo's light per texel, about 1 on the face."""
    if shading_bgr is not None:
        luma = np.asarray(shading_bgr, np.float32) @ _LUMA_BGR
    else:
        w = face.astype(np.float32)
        sigma = lin.shape[0] / 16.0
        norm = np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-3)
        luma = cv2.GaussianBlur((lin @ _LUMA_BGR) * w, (0, 0), sigma) / norm
    typical = float(np.median(luma[face])) if face.any() else 1.0
    return np.maximum(luma / max(typical, 1e-6), 0.05).astype(np.float32)


def _lab(albedo: np.ndarray, face: np.ndarray) -> np.ndarray:
    """L*a*b* (OpenCV 8-bit scale, float) of the de-lit texture, exposed so the cheeks sit at mid-grey."""
    level = float(np.median((albedo @ _LUMA_BGR)[face])) if face.any() else 1.0
    srgb = linear_to_srgb(np.clip(albedo * (0.35 / max(level, 1e-6)), 0.0, 1.0)).astype(np.float32)
    return cv2.cvtColor(srgb, cv2.COLOR_BGR2LAB) * np.array([255.0 / 100.0, 1.0, 1.0], np.float32) + np.array(
        [0.0, 128.0, 128.0], np.float32
    )


def _occluders(
    texture: np.ndarray, albedo: np.ndarray, labels: np.ndarray, face: np.ndarray, cfg: CleanupConfig
) -> np.ndarray:
    size = albedo.shape[0]
    y = texture_canonical_y(size)
    keep = brow_mask(size) | (labels == LIPS) | (labels == EYE_OPENING) | (labels == MOUTH_OPENING)
    cheeks = face & (labels == SKIN) & (y > -0.3) & (y < 0.3)
    if cheeks.sum() < 50:
        return np.zeros((size, size), np.float32)
    # Hair: darker than the cheeks or of another hue, on the photo's pixels (a forehead and the temples are
    # lit much like the cheeks; hair is much darker, or yellower or greyer). The brows are kept.
    raw = cv2.cvtColor(texture, cv2.COLOR_BGR2LAB).astype(np.float32)
    reference = np.median(raw[cheeks], axis=0)
    darker = reference[0] - raw[..., 0]
    tint = np.linalg.norm(raw[..., 1:] - reference[1:], axis=2)
    hairy = (darker > cfg.hair_darker) | (tint > cfg.hair_tint)
    lab_ab = _lab(albedo, face)[..., 1:] - 128.0
    skin_ab = np.median(lab_ab[cheeks], axis=0)
    chroma, skin_chroma = np.linalg.norm(lab_ab, axis=2), float(np.linalg.norm(skin_ab))
    hue_cos = (lab_ab @ skin_ab) / np.maximum(chroma * skin_chroma, 1e-6)
    foreign = (chroma < cfg.object_chroma * skin_chroma) | (hue_cos < np.cos(np.radians(cfg.object_hue_deg)))
    # What reaches in from the face's outline: hair from the top of the forehead (only with ``fringe``); hair
    # or background along the sides down to the mouth; lower down only what is not of the skin's hue.
    edge = face & (cv2.dilate((~face).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    free = face & ~keep
    found_mask = np.zeros((size, size), bool)
    if cfg.fringe:
        found_mask |= _connected(free & (y < ABOVE_BROWS_Y) & hairy, face & (y < FOREHEAD_TOP_Y))
    x = texture_canonical_x(size)
    upper = (y >= ABOVE_BROWS_Y) & (y < SIDE_HAIR_Y) & (np.abs(x) > SIDE_X)
    if cfg.sides:
        found_mask |= _connected(free & upper & hairy, edge & upper)
    found_mask |= _connected(free & (y >= LOWER_Y) & foreign, edge & (y >= LOWER_Y))
    found = found_mask.astype(np.float32)
    if not found.any():
        return found
    grown = cv2.dilate(found, np.ones((7, 7), np.uint8))
    soft = cv2.GaussianBlur(grown, (0, 0), size / 160.0)
    return np.clip(np.maximum(soft, found), 0.0, 1.0).astype(np.float32)


def _connected(candidate: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The parts of ``candidate`` (after a small opening) that touch ``seed``."""
    opened = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, components = cv2.connectedComponents(opened, connectivity=8)
    touching = np.unique(components[(opened > 0) & seed])
    return np.isin(components, touching[touching > 0])


def _fill_from_skin(albedo: np.ndarray, occluded: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Occluded texels take the mirrored texel where that is clean skin, else the surrounding skin's
    smooth continuation; blended by how occluded they are."""
    size = albedo.shape[0]
    around = fill_holes(albedo, source.astype(np.float32))
    mx, my = mirror_map(size)
    mirrored = cv2.remap(albedo, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mirror_ok = cv2.remap(source.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mirror_ok = np.clip((mirror_ok - 0.5) * 4.0, 0.0, 1.0) * (mx >= 0)
    # The mirrored skin keeps its detail but is brought to the level of the skin around the hole.
    level = cv2.GaussianBlur(mirrored, (0, 0), size / 64.0) + 1e-4
    mirrored = mirrored * (cv2.GaussianBlur(around, (0, 0), size / 64.0) / level)
    fill = around + mirror_ok[..., None] * (mirrored - around)
    return (albedo + occluded[..., None] * (fill - albedo)).astype(np.float32)


def _flatten_highlights(albedo: np.ndarray, labels: np.ndarray, face: np.ndarray, ratio: float) -> np.ndarray:
    """De-lit skin brighter than ``ratio`` times its neighbourhood's brightness is brought down to it (a soft
    ramp over the next 0.15, so the edge of a highlight does not show)."""
    size = albedo.shape[0]
    skin = face & ((labels == SKIN) | (labels == FEATURE))
    w = skin.astype(np.float32)
    luma = albedo @ _LUMA_BGR
    sigma = size / 48.0
    local = cv2.GaussianBlur(luma * w, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-3)
    excess = luma / np.maximum(local, 1e-4)
    strength = np.clip((excess - ratio) / 0.15, 0.0, 1.0) * w
    strength = cv2.GaussianBlur(strength, (0, 0), size / 256.0)
    target = np.minimum(excess, ratio)
    scale = (target / np.maximum(excess, 1e-4)) ** strength
    return (albedo * scale[..., None]).astype(np.float32)


def _denoise(albedo: np.ndarray, labels: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Non-local means at a strength set by the noise measured on the skin (grainy photos get more)."""
    level = float(np.median((albedo @ _LUMA_BGR)[face])) if face.any() else 1.0
    scale = 0.35 / max(level, 1e-6)
    srgb = np.clip(linear_to_srgb(np.clip(albedo * scale, 0.0, 1.0)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(srgb, cv2.COLOR_BGR2GRAY).astype(np.float32)
    skin = face & (labels == SKIN)
    if skin.sum() < 100:
        return albedo
    # Noise sigma from the median absolute Laplacian on skin (Immerkaer-style estimate, robust to edges).
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    sigma = float(np.median(np.abs(lap[skin]))) * 1.4826 / np.sqrt(20.0)
    h = float(np.clip(1.1 * sigma, 0.0, 12.0))
    if h < 1.0:
        return albedo
    clean = cv2.fastNlMeansDenoisingColored(srgb, None, h, h, 5, 15)
    lin = srgb_to_linear(clean.astype(np.float32) / 255.0) / scale
    unclipped = face & (albedo.max(axis=2) * scale < 0.98)  # what the 8-bit copy clipped keeps its own value
    return np.where(unclipped[..., None], lin, albedo).astype(np.float32)


@functools.cache
def brow_mask(size: int) -> np.ndarray:
    """(size, size) bool: the brows (their contours filled, grown by a little), which are never filled in."""
    uv = face_topology().uv * size - 0.5
    mask = np.zeros((size, size), np.uint8)
    for brow in (RIGHT_BROW, LEFT_BROW):
        cv2.fillPoly(mask, [np.round(uv[list(brow)] * 4).astype(np.int32)], 1, shift=2)
    grow = max(1, size // 100)
    out = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(bool)
    out.setflags(write=False)
    return out


@functools.cache
def texture_canonical_x(size: int) -> np.ndarray:
    """(size, size) float32: each texel's side-to-side position on the canonical face (eye-corner distances)."""
    x = texture_raster(size).interpolate(face_topology().canonical[:, 0], fill=np.inf)
    x.setflags(write=False)
    return x


@functools.cache
def mirror_map(size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each texel, the texel at the same place on the other side of the face (``cv2.remap`` maps;
    -1 outside the layout). The mesh's own symmetry gives it: each vertex's mirror is the vertex nearest to
    its reflection on the canonical face, and a texel's mirror has the same barycentric weights in the
    mirrored triangle."""
    topo = face_topology()
    canon = topo.canonical.astype(np.float64)
    reflected = canon * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(reflected[:, None, :] - canon[None, :, :], axis=2)
    mirror = d.argmin(axis=1)
    raster = texture_raster(size)
    tris = raster.triangles[raster.tri]
    uv = topo.uv[mirror[tris]]  # (N, 3, 2)
    pos = np.einsum("nk,nkc->nc", raster.weights, uv) * size - 0.5
    flat_x = np.full(size * size, -1.0, np.float32)
    flat_y = np.full(size * size, -1.0, np.float32)
    flat_x[raster.pixels], flat_y[raster.pixels] = pos[:, 0], pos[:, 1]
    mx, my = flat_x.reshape(size, size), flat_y.reshape(size, size)
    for arr in (mx, my):
        arr.setflags(write=False)
    return mx, my
