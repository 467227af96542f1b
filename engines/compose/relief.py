"""The actor's own relief shading around the nose: the photo's nostril, philtrum and sidewall shadows taken out.

An identity's albedo still holds some of its photo's shading where the photo's light model has no terms for the
face's relief: the nostrils' cavities and the shadow the nose casts on the skin under it, the nose's sidewalls
(ambient occlusion beside the bridge), the folds beside the nostrils. The de-lighting divides the photo's light
out only within ``SHADING_RANGE`` there (``engines.identity.store.Identity.albedo``: dividing by all of it
over-brightened), and the enrollment's cavity lift, which would fill them from the skin around, is off by
default (it cost likeness: the nostrils went with the shadows). So every frame is drawn with the *photo's*
under-nose shadow, whatever the actor's nose and light: a grey-photo's dark philtrum and nostrils on an actor lit
evenly by a ring light read 24 L* from the actor's there (d10 x biden_gray, ``benchmarks/artifacts.py``); a
photo's dark nose sidewalls on a flat-lit nose, 16 (d10 x s1).

Here, per face and frame, the swapped face's local pattern of brightness in those zones is replaced by the
actor's: in each image (the face as it will be pasted, and the actor under the same light, morphed to the same
mesh), the brightness relative to the skin *around* the zone (a broad, normalised blur over the skin outside
it), and the gain that gives the face the actor's relative brightness::

    gain = (actor / actor's surroundings) / (face / face's surroundings)

raised to the zone's weight (1 under the nose and in the nostrils, ``ReliefConfig.nose`` on the nose,
``ReliefConfig.folds`` in the folds, soft-edged), and taken in part: ``ReliefConfig.lift`` of a brightening (the
photo's shadow), ``ReliefConfig.deepen`` of a darkening (the actor's; none by default), for likeness (see there).
Under the nose each channel's departure from that brightness is the actor's too (``ReliefConfig.colour``): a photo's
nostril shadow is redder than its skin, and relit it was an orange-red smudge at the nose's base (d13 x obama) — as
far as the brightness went (``ReliefConfig.colour_dark``): where the face keeps its own brightness over the actor's
dark, red nostril creases it keeps its colour too (taken in full, they drew orange rims on its lit skin). The
face keeps its own level and colour there (its surroundings': the identity's skin tone), and where the photo's
shadow is darker than the actor's there it moves toward the actor's: the shadow the actor's nose casts under this
light, the actor's sidewalls. Both images carry the same model shading (the face is relit with the light measured
on the actor, on the same normals), so it cancels: only what the model could not explain — the photo's cavities in
the face, the actor's in the actor — is exchanged.
The identity's nostrils stay darker than the skin (a recogniser knows a face by them); lifting the photo's
shadows at enrollment instead (``CleanupConfig.cavities``) left none and cost likeness.

The same exchange runs on the skin around the eyes (``ReliefConfig.sockets``): a photo's eye sockets carry its light's
shadow (and a smile's raised lower lids) or a highlight on the orbit's rim that the light model does not explain, and
they were drawn around every frame's eyes. There the face takes the actor's relative brightness both ways, a darkening
only as far as down to the face's own skin around (the actor's eye make-up or shaded sockets are not drawn on the
identity), and its relative colour as far.

A black-and-white identity takes the gains on its lightness, before the actor's colour is given to it
(``engines.stages.blend``): a gain on the coloured face would scale the colour taken from the actor too (an
orange rim where a grey photo's shadow was lifted); and its own deepest shadows there are brought up to
``ReliefConfig.shadow_floor_monochrome`` of its skin around them (a print's toe as much as the person).

It works at the geometry resolution (a gain field, applied with the seam's as the face is pasted: one host
computation, no pass of its own on any backend): the shading's scale, what ``benchmarks/artifacts.py`` measures
at; finer detail (skin grain, a moustache's hairs) stays the identity's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import cv2
import numpy as np

from engines.face.topology import FEATURE, SKIN, face_topology
from engines.light.sh import srgb_to_linear
from engines.swap.mesh import FaceGeometry
from engines.swap.texture import texture_canonical_x, texture_canonical_y, texture_labels

_U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_U8_TO_LINEAR.setflags(write=False)
_LUMA_BGR = np.array([0.0722, 0.7152, 0.2126], np.float32)
_LUMA_BGR.setflags(write=False)  # read-only, as the compiled kernels were compiled for (``engines.fused.warm_up``)


@dataclass(frozen=True)
class ReliefConfig:
    strength: float = 1.0
    """How much of the actor's relative brightness the zones take (0: off, the photo's shading stays)."""
    nose: float = 0.5
    """Weight on the nose (bridge and sidewalls; all of it: d13 x s1's likeness -0.02 more, d10 x s1's nose 9.5 ->
    7.8) ..."""
    folds: float = 0.5
    """... and in the folds beside the nose and the mouth (under the nose and in the nostrils: 1). A photo lit from
    above keeps its folds' shadow in its albedo (biden.jpg): drawn on an evenly lit actor it was a dark furrow down
    the cheek, the worst region of d0.mp4 x biden.jpg (within the bound on 37% of 30 frames; 100% at 0.5) and of
    s18.mp4 x a grey biden (70% -> 100%). Its likeness cost, at the edge of the runs' own movement (~0.01-0.02):
    obama.jpg's, whose folds are his, -0.008 to -0.017 on five clips (-0.02 to -0.04 at 1), others -0.013 to +0.007
    (BENCHMARKS.md, issue 21)."""
    sockets: float = 0.5
    """... and on the skin around each eye (``socket_map``: beside and under the eye, not the lids, the lash lines or
    the brows). A photo's eye sockets are darker than its cheeks where its light left them in shade or a smile pushed
    the lower lids up, and lighter where its light caught the orbit's rim; the de-lighting has no term for the
    sockets' depth, so both were drawn as albedo around every frame's eyes: obama.jpg on d0.mp4's flat-lit actor a
    dark ring around his left eye (that ring's median 9.5 L*a*b* units darker than his, the worst region of every
    frame, over the clip's bound of 8), a grey biden.jpg's lit temple beside it (its brightest tenth 7.9 over his).
    Taken both ways (``lift``, ``sockets_deepen``), as far as the actor's relative brightness, never darker than the
    face's own skin around (``relief_field``): the actor's darker sockets (eye make-up, a socket in shade) stay hers.

    Half: the recogniser knows a face partly by its eye region, and the whole exchange gave it the actor's there
    (with this zone off s1.jpg read 0.056 more like her from the brows down on d10.mp4 and Obama_speaking.mp4, the
    largest single clean-up cost of 20 toggled; BENCHMARKS.md, issue 21). Half away from the nose's bridge
    (``sockets_inner`` beside it): on four clips x four identities every pair within the artifact bound on as many
    frames as with all of it or more, likeness +0.004 of cosine on average, from the brows down +0.008 (s1.jpg on
    Obama_speaking.mp4 +0.023, a grey biden.jpg +0.010-0.014)."""
    sockets_inner: float = 1.0
    """... and on the sockets' skin beside the nose's bridge (``SOCKETS_INNER``), which the artifact measure's nose
    region shares: half there too won s1.jpg twice as much likeness (d10.mp4 +0.047 from the brows down) but left
    d0.mp4 x s1.jpg's nose, where her photo's nose shading meets her sockets, over the bound on 8 more of 30 frames
    (within 77% -> 50%; BENCHMARKS.md, issue 21)."""
    sockets_deepen: float = 0.6
    """Share of a darkening taken on the sockets' skin (``deepen`` elsewhere): a photo's highlight there goes as far as
    a shadow does (``lift``). A darkening stops at the face's own skin around (``relief_field``), so this takes the
    photo's highlights only; not stopped there, it drew d10.mp4's eye make-up on the identity (roop_source.jpg's
    likeness there 0.36 -> 0.31)."""
    sockets_colour: float = 1.0
    """Share of the actor's relative colour taken on the sockets' skin, as far as the brightness went (``colour`` under
    the nose): the skin around an actor's eyes is often of another colour than the face's (d10.mp4's 7 b* units bluer:
    the thin skin under the eyes, her make-up's tint), which the photo's does not have (obama.jpg's is his face's);
    without it that ring was d10 x obama's worst region, 7.2 units off at the median and made yellower by the lift
    (8.9)."""
    around: float = 0.25
    """Standard deviation (eye-corner distances) of the blur that gives each image's level around the zones."""
    max_ratio: float = 4.0
    """Largest gain (and smallest, as its inverse)."""
    lift: float = 0.6
    """Share of a brightening (the photo's shadow darker than the actor's there) taken ...

    Not all of it: a face recogniser knows a face partly by its nostrils and the shading around its nose, and
    judged against the photo (its shadows included) the whole exchange cost 0.02-0.13 of mean cosine (d10 x s1
    0.58 -> 0.45, x obama 0.43 -> 0.35); 0.6 of a brightening and none of a darkening -0.04 to +0.01 (d13 x s1
    the most: its actor's moustache), while taking half or more of the photo's shadow out where it was the worst
    region (d10 x s1 under the nose 16 -> 8, d10 x a grey biden 25 -> 14; BENCHMARKS.md, issue 21)."""
    deepen: float = 0.0
    """... and of a darkening (the actor's nostrils, shadow or moustache darker than the face's there): none by
    default — 0.2 of it cost d13 x s1 (a moustached actor) 0.02 more of likeness and bought no region back (before a
    darkening stopped at the face's own skin around: since, it takes only a face brighter than that)."""
    colour: float = 1.0
    """Share of the actor's relative colour taken under the nose (0: the face's own, a photo's reddish nostril
    shadow included). Not on the nose: there the colour around it (the identity's cheeks, a blush) would tint it."""
    colour_dark: float = 1.5
    """... and in the share of the brightness's way the exchange went there: a photo shadow lifted by ``lift`` takes
    ``lift`` of the actor's relative colour, where the actor is darker it takes ``deepen`` of it from this many
    times darker on (from ``lift`` at an equal brightness: a ramp, no step in colour where the ratio crosses 1).
    Taken in full whatever the brightness did, the actor's nostrils and its nose wings' creases, darker and more
    saturated than its skin, put their colour on the face's lit skin there: orange rims at the nostrils' wings and
    a blue patch under a nostril (d13 and d10 close-ups x roop_source.jpg), and on a photo shadow left 0.4 as dark
    the actor's lit skin's colour read olive (BENCHMARKS.md, issue 21)."""
    shadow_floor: float = 0.0
    """Least relative brightness the face keeps in the zones after the exchange (its own, relative to its skin around
    them; 0: none, the default for colour photos): a deeper shadow of the photo is brought up to it, its shape kept
    ..."""
    shadow_floor_monochrome: float = 0.4
    """... and for a black-and-white identity (``relief_field``'s ``monochrome``): a print's deepest shadows are its
    tone curve's toe as much as the person. A grey biden.jpg's nostril and philtrum shadow, left 0.4 as dark by the
    exchange, was the worst region of Obama_speaking x it on half the frames (within the artifact bound 52.8% of 36,
    100% with this floor; the recogniser's cosine to the photo -0.002). Its own shadow brought up, not the actor's
    taken further: left at most 1.25x darker than the actor's there (``lift`` past it) it read 100% too, but the face
    came closer to the actor (cosine to him +0.04, closer to the identity on 100% -> 75% of 60 frames). Until the
    grey identity took the actor's skin lightness in L*a*b* (``engines.compose.chroma``), the colour step had
    lightened those shadows by accident: a strong colour added to a dark pixel at a kept luma raised its L* (88.3%
    then; BENCHMARKS.md, issue 21)."""
    skin_range: float = 1.8
    """Around the zones, only pixels within this factor of the skin's median luminance count (brows, a beard's
    edge, hair and the background at the outline do not)."""


KNOWN_FROM, KNOWN_RAMP = 0.002, 0.01
"""The level around a pixel is known from this much weight of reference skin within the blur, fully this much more."""
ZONE_TEXELS = 256
"""The zones are drawn in texture space at this size (cached) and looked up through the face's texture coordinates."""
UNDER_NOSE = (0.36, -0.08, 0.23)
"""|x| under, y between (canonical, eye-corner distances; y down): the nostrils (the nose's base at 0.10) and the
skin under them down to above the lip (0.26)."""
NOSE = (0.2, -0.34, -0.02)
"""|x| under, y between: the nose's bridge and sidewalls, from between the eyes to the nostrils' wings."""
FOLDS = (0.2, 0.6, -0.05, 0.6)
"""|x| between the first two, y between the last two: the folds beside the nostrils and the mouth."""
AROUND_STEP = 4
"""The levels around the zones are blurred on a grid this many times coarser than the geometry raster (a
sixteenth of its pixels). The blur is a quarter of an eye-corner distance, ~14 pixels of a 128 px raster whatever
the face's size: at a step of 2 (until issue 20's twelfth session) a ~55-tap kernel across a grid ~55 pixels wide,
twice a face (~0.15 ms of a close-up's ~1 ms field); at 4, sigma ~3.4 grid pixels, the field within a level of it
(s18 and d3, 27 frames each: at most 1 level in the output, on 0.3-1.8% of the face's pixels)."""
ZONE_SOFTNESS = 0.025
"""The zones' edges are blurred over this many eye-corner distances (no step where the gain ends)."""
SOCKETS = (0.35, -0.37, 0.32, 0.23)
"""The eye sockets' skin: an ellipse around each eye, |x| and y of its centre and its radii (canonical, eye-corner
distances; the eyes' corners at |x| 0.0-0.5 ... 0.5, the lids' line at y -0.38, the brows' lower edge at -0.5), a
little wider than the ring ``benchmarks/artifacts.py`` judges (centre 0.35, -0.38, radii 0.27, 0.2) so that the
zone's soft edge falls outside it. Skin only: the lids, the lash lines and the brows are the identity's features."""
SOCKETS_INNER = (0.15, 0.25)
"""|x| (canonical) up to which the sockets' weight is ``ReliefConfig.sockets_inner``, and from which ``sockets`` (a
ramp between): the nose's bridge beside the inner eye corners (``benchmarks/artifacts.py``'s nose region reaches |x|
0.17). Half from 0.12 on, d0.mp4 x s1.jpg's nose (its worst region) went over the bound on one frame more of 30."""
SOCKET_CLEAR = 0.03
"""The sockets' weight fades out over this many eye-corner distances before the lids (the lower lash line, the
identity's eye shape, is not lifted)."""


@functools.cache
def zone_maps(size: int = ZONE_TEXELS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(under the nose, the nose, the folds): (size, size) float32 0..1 texture-space weights, soft-edged, none on
    the lips, the lids and the openings (the identity's features). Cached, read-only."""
    labels = texture_labels(size)
    x = np.abs(texture_canonical_x(size))
    y = texture_canonical_y(size)
    inside = np.isfinite(x) & np.isfinite(y) & ((labels == SKIN) | (labels == FEATURE))
    x, y = np.where(inside, x, 9.0), np.where(inside, y, 9.0)
    under = (x < UNDER_NOSE[0]) & (y > UNDER_NOSE[1]) & (y < UNDER_NOSE[2])
    nose = (x < NOSE[0]) & (y > NOSE[1]) & (y <= NOSE[2]) & (labels == SKIN)  # not the lids at the inner corners
    folds = (x > FOLDS[0]) & (x < FOLDS[1]) & (y > FOLDS[2]) & (y < FOLDS[3]) & ~under & ~nose
    # Blurred in texture space with the canonical face's units on each axis (the layout is not square to it).
    topo = face_topology()
    per_unit = size * np.ptp(topo.uv, axis=0) / np.maximum(np.ptp(topo.canonical[:, :2], axis=0), 1e-6)
    sx, sy = (float(v) * ZONE_SOFTNESS for v in per_unit)
    features = ~inside & (labels >= 0)  # the lips, the openings: the zones fade out before them
    clear = 1.0 - np.clip(cv2.GaussianBlur(features.astype(np.float32), (0, 0), sx, sigmaY=sy) * 2.0, 0.0, 1.0)
    out = []
    for m in (under, nose, folds):
        soft = np.clip(cv2.GaussianBlur(m.astype(np.float32), (0, 0), sx, sigmaY=sy), 0.0, 1.0) * clear
        soft.setflags(write=False)
        out.append(soft)
    return out[0], out[1], out[2]


@functools.cache
def socket_map(size: int = ZONE_TEXELS) -> np.ndarray:
    """(size, size) float32 0..1 texture-space weight of the eye sockets' skin (``SOCKETS``), soft-edged, fading out
    before the lids and the eye openings (``SOCKET_CLEAR``). Cached, read-only."""
    labels = texture_labels(size)
    x = np.abs(texture_canonical_x(size))
    y = texture_canonical_y(size)
    skin = np.isfinite(x) & np.isfinite(y) & (labels == SKIN)
    x, y = np.where(skin, x, 9.0), np.where(skin, y, 9.0)
    cx, cy, rx, ry = SOCKETS
    ring = skin & (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1.0)
    sx, sy = _texels_per_unit(size)
    soft = np.clip(
        cv2.GaussianBlur(ring.astype(np.float32), (0, 0), sx * ZONE_SOFTNESS, sigmaY=sy * ZONE_SOFTNESS), 0, 1
    )
    # Nothing on the features (the lids, brows, the openings) nor within ``SOCKET_CLEAR`` of them: the distance to the
    # nearest feature texel, in canonical units along each axis of the (non-square) layout.
    features = ((labels >= 0) & (labels != SKIN)).astype(np.uint8)
    scale = sy / sx  # distances measured in x texels: y texels scaled to them
    stretched = cv2.resize(1 - features, (size, max(2, round(size / scale))), interpolation=cv2.INTER_NEAREST)
    dist = cv2.distanceTransform(stretched, cv2.DIST_L2, 5)
    dist = cv2.resize(dist, (size, size), interpolation=cv2.INTER_LINEAR) / sx
    out: np.ndarray = (soft * np.clip(dist / SOCKET_CLEAR, 0.0, 1.0)).astype(np.float32)
    out.setflags(write=False)
    return out


def _socket_weight(config: ReliefConfig, size: int = ZONE_TEXELS) -> np.ndarray:
    """(size, size) float32: ``socket_map`` times ``ReliefConfig.sockets``, ``sockets_inner`` beside the nose's bridge
    (``SOCKETS_INNER``)."""
    x = np.abs(texture_canonical_x(size))
    x = np.where(np.isfinite(x), x, np.float32(9.0))
    inner = np.clip((SOCKETS_INNER[1] - x) / (SOCKETS_INNER[1] - SOCKETS_INNER[0]), 0.0, 1.0)
    share = np.float32(config.sockets) + np.float32(config.sockets_inner - config.sockets) * inner.astype(np.float32)
    out: np.ndarray = (socket_map(size) * share).astype(np.float32)
    return out


def _texels_per_unit(size: int) -> tuple[float, float]:
    """Texels per eye-corner distance along x and y of the texture layout (it is not square to the canonical face)."""
    topo = face_topology()
    per_unit = size * np.ptp(topo.uv, axis=0) / np.maximum(np.ptp(topo.canonical[:, :2], axis=0), 1e-6)
    return float(per_unit[0]), float(per_unit[1])


@functools.lru_cache(maxsize=8)
def _zone_texture(config: ReliefConfig) -> np.ndarray:
    """(``ZONE_TEXELS``, ``ZONE_TEXELS``, 2) float32: ``zone_weight``'s two weights in texture space, made once per
    configuration (per face, the stack of two 256 x 256 maps cost ~0.3 ms). Read-only."""
    under, nose, folds = zone_maps()
    brightness = np.maximum(under, np.maximum(config.nose * nose, config.folds * folds))
    colour = under * config.colour
    if config.sockets > 0.0 or config.sockets_inner > 0.0:
        brightness = np.maximum(brightness, _socket_weight(config))
    if config.sockets_colour > 0.0:
        colour = np.maximum(colour, config.sockets_colour * socket_map())
    out = np.dstack([brightness, colour]) * np.float32(config.strength)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=8)
def _deepen_texture(config: ReliefConfig) -> np.ndarray | None:
    """(``ZONE_TEXELS``, ``ZONE_TEXELS``, 2) float32: each texel's share of a darkening (``deepen``, and
    ``sockets_deepen`` where the sockets' weight is what reaches there), and the zones' weight but the sockets' (the
    reference skin around the zones is looked for outside those only); None where the share is ``deepen``
    everywhere. Two channels, as ``_zone_texture``: OpenCV's lookup of a two-channel float image is the one the
    compiled lookup reproduces to the bit. Read-only."""
    if (config.sockets <= 0.0 and config.sockets_inner <= 0.0) or config.sockets_deepen == config.deepen:
        return None
    under, nose, folds = zone_maps()
    others = np.maximum(under, np.maximum(config.nose * nose, config.folds * folds))
    sockets = _socket_weight(config)
    own = sockets / np.maximum(np.maximum(others, sockets), np.float32(1e-6))  # the sockets' part of the reach
    deepen = np.float32(config.deepen) + np.float32(config.sockets_deepen - config.deepen) * own
    out = np.dstack([deepen, others * np.float32(config.strength)]).astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=8)
def _zone_textures(config: ReliefConfig) -> np.ndarray:
    """(``ZONE_TEXELS``, ``ZONE_TEXELS``, 2 or 4) float32: ``_zone_texture``'s two weights, and ``_deepen_texture``'s
    two after them where the sockets take their own share: one texture, so a face looks its zones up once (the
    second lookup of the sockets' share and the stack of the two results were ~0.15 ms of a ~0.55 ms relief field,
    more in the running processor, where a second texture's texels are one more set of cache lines; issue 20).
    The compiled lookup weighs every channel alike, so each channel's numbers are the two lookups' to the bit.
    Read-only."""
    zones, deepen = _zone_texture(config), _deepen_texture(config)
    if deepen is None:
        return zones
    out = np.ascontiguousarray(np.dstack([zones, deepen]), dtype=np.float32)
    out.setflags(write=False)
    return out


def zone_weight(geometry: FaceGeometry, config: ReliefConfig, fused: bool = False) -> np.ndarray:
    """(hs, ws, 2 or 4) float32 0..1 at geometry resolution: how much of the actor's relative brightness, and of its
    relative colour (under the nose, and on the sockets with ``sockets_colour``), each pixel takes, and, when the
    sockets take another share of a darkening than the rest (``_deepen_texture``), each pixel's share and the weight
    of the zones but the sockets'. ``fused``: the lookup and the mask in one compiled pass over all channels at once
    (``engines.fused.zone_weights`` of ``_zone_textures``: OpenCV's two-channel numbers, to the bit). Without it,
    OpenCV looks each two-channel texture up on its own: its lookup of a four-channel float image takes another
    path, up to 0.015 off the two-channel one's weights."""
    if fused:
        return _lookup(geometry, _zone_textures(config), fused)
    out = _lookup(geometry, _zone_texture(config), fused)
    deepen = _deepen_texture(config)
    if deepen is not None:
        out = np.ascontiguousarray(np.dstack([out, _lookup(geometry, deepen, fused)]))
    return out


def _lookup(geometry: FaceGeometry, texture: np.ndarray, fused: bool) -> np.ndarray:
    """A two- or four-channel zone texture at the face's texture coordinates, zero where no triangle."""
    if fused:
        from engines import fused as kernels  # numba's import on the first face, not at start-up

        looked: np.ndarray = kernels.zone_weights(geometry.uv_small, texture, geometry.labels_small, ZONE_TEXELS)
        return looked
    uv = geometry.uv_small * np.float32(ZONE_TEXELS) - np.float32(0.5)
    weight = cv2.remap(texture, uv, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # Zero where no triangle: OpenCV's masked copy into a zeroed array (numpy's broadcast multiply by a bool mask
    # cost ten times as much; the same numbers, the weights being finite and non-negative).
    out: np.ndarray = cv2.copyTo(weight, (geometry.labels_small >= 0).view(np.uint8))
    return out


def relief_field(
    face_small: np.ndarray,
    actor_small: np.ndarray,
    geometry: FaceGeometry,
    config: ReliefConfig | None = None,
    fused: bool = False,
    monochrome: bool = False,
) -> np.ndarray | None:
    """(hs, ws, 3) float32 linear-light gains at geometry resolution (1 outside the zones), or None when off or too
    little skin shows around the zones. ``face_small``: the face as it will be pasted, ``actor_small`` what it is
    matched to (the actor, or the actor relit to the same target light), both uint8 BGR at geometry resolution.

    ``fused``: the per-pixel arithmetic around OpenCV's resizes and blurs in two compiled loops
    (``engines.fused.relief_weights``, ``relief_gains``: ~40 numpy passes over the raster were ~1.5-2.5 ms of a
    face at a close-up); the same float32 expressions, within 1e-5 (the logarithm's and exponential's last bits).
    ``monochrome``: the face is a black-and-white identity's (``ReliefConfig.shadow_floor_monochrome``)."""
    cfg = config or ReliefConfig()
    if cfg.strength <= 0.0:
        return None
    if monochrome:
        cfg = replace(cfg, shadow_floor=cfg.shadow_floor_monochrome)
    zones = zone_weight(geometry, cfg, fused)
    zone, colour_zone = zones[..., 0], zones[..., 1]
    deepen = zones[..., 2:3] if zones.shape[2] > 2 else np.float32(cfg.deepen)
    # The skin around the zones: outside all of them but the sockets (excluded too, the sockets' skin left the nose's
    # zones a reference too far away: d13's close-up x roop_source drew orange rims at the nostrils' wings, 13 -> 18).
    outside = zones[..., 3] if zones.shape[2] > 3 else zone
    if float(zone.max()) < 0.05:
        return None
    labels = geometry.labels_small
    skin = labels == SKIN
    unit = geometry.face_scale_px * labels.shape[1] / geometry.window.width  # eye-corner distance in these pixels
    # The levels around are smooth: blurred on a coarser grid (``AROUND_STEP``) and scaled back.
    hs, ws = labels.shape
    coarse = (max(2, ws // AROUND_STEP), max(2, hs // AROUND_STEP))
    sigma = max(cfg.around * unit * coarse[0] / ws, 0.5)

    def around(image: np.ndarray) -> np.ndarray:
        small = cv2.resize(image, coarse, interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(small, (0, 0), sigma)
        return cv2.resize(blurred, (ws, hs), interpolation=cv2.INTER_LINEAR).reshape(hs, ws, -1)

    if fused:
        if int(np.count_nonzero(skin)) < 30:  # the reference skin is some of it: too little either way
            return None
        from engines import fused as kernels  # numba's import on the first face, not at start-up

        count, face_lin, actor_lin, face_l, actor_l, face_w, actor_w = kernels.relief_weights(
            np.ascontiguousarray(face_small),
            np.ascontiguousarray(actor_small),
            np.ascontiguousarray(labels),
            np.ascontiguousarray(outside),
            SKIN,
            _U8_TO_LINEAR,
            _LUMA_BGR,
            cfg.skin_range,
        )
        if count < 30:
            return None
        return kernels.relief_gains(
            around(face_w),
            around(actor_w),
            face_lin,
            actor_lin,
            face_l,
            actor_l,
            zones,
            _LUMA_BGR,
            (KNOWN_FROM, KNOWN_RAMP),
            cfg.max_ratio,
            _shares(cfg),
        )
    face_lin, actor_lin = _U8_TO_LINEAR[face_small], _U8_TO_LINEAR[actor_small]
    face_l, actor_l = face_lin @ _LUMA_BGR, actor_lin @ _LUMA_BGR
    ref = skin & (outside < 0.05)
    ref &= _near_median(face_l, skin, cfg.skin_range) & _near_median(actor_l, skin, cfg.skin_range)
    if int(ref.sum()) < 30:
        return None
    w = ref.astype(np.float32)[..., None]
    face_around = around(np.concatenate([face_lin * w, w], axis=2))
    weight = face_around[..., 3]
    face_around = face_around[..., :3] / np.maximum(weight, 1e-4)[..., None]
    actor_around = around(actor_lin * w) / np.maximum(weight, 1e-4)[..., None]
    # How sure the level around is: none where no reference skin is near at all (a face turned away). The zones
    # themselves are left out of it, so in their middle the weight is small by design: only its absence counts.
    known = np.clip((weight - KNOWN_FROM) / KNOWN_RAMP, 0.0, 1.0)
    lo, hi = 1.0 / cfg.max_ratio, cfg.max_ratio

    def relative(image: np.ndarray, level: np.ndarray) -> np.ndarray:
        out: np.ndarray = image / np.maximum(level, 1e-4)
        return out

    ratio = np.clip(relative(actor_lin, actor_around) / np.maximum(relative(face_lin, face_around), 1e-4), lo, hi)
    face_rel = relative(face_l, face_around @ _LUMA_BGR)
    luma_ratio = np.clip(relative(actor_l, actor_around @ _LUMA_BGR) / np.maximum(face_rel, 1e-4), lo, hi)
    reach, colour_reach = (zone * known)[..., None], (colour_zone * known)[..., None]
    log_luma = np.log(luma_ratio)[..., None]
    share = np.where(log_luma > 0.0, np.float32(cfg.lift), deepen)
    # A darkening takes the face no lower than its own skin around: a highlight of the photo goes, the actor's darker
    # skin there (a moustache, eye make-up, a shadowed socket) is not drawn on the identity.
    own = np.log(np.maximum(face_rel, np.float32(1e-4)))[..., None]
    taken = np.maximum(share * log_luma, -np.maximum(own, np.float32(0.0)))
    # Each channel's departure from the brightness (the colour) by ``colour``, as far as the brightness went.
    fade = colour_share(log_luma, taken, cfg, deepen)
    log_gain = reach * taken + colour_reach * fade * (np.log(ratio) - log_luma)
    if cfg.shadow_floor > 0.0:  # the face's own shadow, as the exchange left it, brought up to the floor
        after = np.log(np.maximum(face_rel, np.float32(1e-4)))[..., None] + reach * taken
        log_gain = log_gain + reach * np.maximum(np.float32(np.log(cfg.shadow_floor)) - after, 0.0)
    return np.exp(log_gain).astype(np.float32)


def _shares(cfg: ReliefConfig) -> tuple[float, float, float, float]:
    """``engines.fused.relief_gains``'s shares: (lift, deepen, the log of ``shadow_floor`` or 1 when none, one over
    the log of ``colour_dark``), float32 values as numpy's passes use them."""
    floor = float(np.float32(np.log(cfg.shadow_floor))) if cfg.shadow_floor > 0.0 else 1.0
    return (cfg.lift, cfg.deepen, floor, float(np.float32(1.0 / np.log(cfg.colour_dark))))


def colour_share(
    log_luma: np.ndarray, taken: np.ndarray, cfg: ReliefConfig, deepen: np.ndarray | np.floating | None = None
) -> np.ndarray:
    """How much of the actor's relative colour each pixel takes: the share of its brightness's way to the actor's
    that the exchange went (``taken`` of ``log_luma``, the log of the actor's relative brightness over the face's:
    ``lift`` of a photo shadow), and where the actor is darker from ``lift`` (at an equal brightness) down to
    ``deepen`` (per pixel, as ``zone_weight``'s third channel; default ``cfg.deepen``) at ``colour_dark`` times
    darker."""
    ramp = np.clip(1.0 + log_luma * np.float32(1.0 / np.log(cfg.colour_dark)), 0.0, 1.0)
    dark = np.float32(cfg.deepen) if deepen is None else np.asarray(deepen, np.float32)
    below = dark + (np.float32(cfg.lift) - dark) * ramp
    out: np.ndarray = np.where(log_luma > 0.0, taken / np.maximum(log_luma, np.float32(1e-6)), below)
    return out


def _near_median(luma: np.ndarray, skin: np.ndarray, factor: float) -> np.ndarray:
    median = float(np.median(luma[skin])) if skin.any() else 1.0
    return (luma > median / factor) & (luma < median * factor)


def combine(seam: np.ndarray | None, relief: np.ndarray | None) -> np.ndarray | None:
    """The seam's (h, w, 3) gains (half the geometry resolution) and the relief's (hs, ws, 3) gains as one (hs, ws, 3)
    field (either may be None)."""
    if relief is None or seam is None:
        return relief if seam is None else seam
    hs, ws = relief.shape[:2]
    up = cv2.resize(seam, (ws, hs), interpolation=cv2.INTER_LINEAR).reshape(hs, ws, 3)
    out: np.ndarray = up * relief
    return out
