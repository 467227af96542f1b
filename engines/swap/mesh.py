"""The embedded mesh swap: an enrolled identity's texture rendered onto the actor's tracked mesh.

Per face and frame, in a face-sized window of the frame (never the whole frame):

1. the tracked mesh (optionally morphed toward the identity's face shape) is rasterised at a reduced
   *geometry resolution* (``geometry_px`` on the long side): per pixel, the visible triangle and the
   barycentric weights (``engines.swap.raster``, vectorised, z-buffered);
2. the texture coordinates, per-pixel normals and region labels are interpolated there and upsampled to
   the window — the texture coordinates are piecewise linear, so bilinear upsampling loses almost
   nothing while the rasterising cost drops by the square of the factor;
3. one ``cv2.remap`` looks the identity's texture (or albedo, for the relighting) up at full resolution,
   from a mip level matched to the face's size so small faces do not shimmer — two neighbouring levels
   blended by the fraction (trilinear filtering, the fraction in eighths), so a face that grows or
   shrinks through a level never pops from sharp to soft.

The eye and mouth openings are rendered too (from the identity's photo) but labelled, so the blend keeps
the actor's eyes and mouth interior by default. The optional geometry morph moves the mesh toward the
identity's face shape (relative to the actor's own running average shape, so expressions stay the
actor's) and warps the actor's window by the same smooth displacement, so the kept eyes and mouth move
with it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from engines.face.topology import (
    LEFT_BROW,
    LEFT_EYE,
    LIPS_OUTER,
    RIGHT_BROW,
    RIGHT_EYE,
    face_scale_px,
    face_topology,
    frontal_frame,
    vertex_adjacency,
    vertex_normals,
)
from engines.light.sh import mesh_to_camera
from engines.resample import shrink, shrink_box_first
from engines.swap.raster import Raster, Window, rasterize

if TYPE_CHECKING:
    # Type only: at run time engines.identity.store -> enroll -> cleanup -> engines.swap.texture would run this
    # package's __init__ (this module) half way through loading the store, and fail.
    from engines.identity.store import Identity


@dataclass(frozen=True)
class SwapConfig:
    geometry_px: int = 104
    """Long side of the raster the mesh is drawn at; the maps are upsampled to the window from there. Every step at
    this resolution costs its pixels (the raster, the morph's field, the relight's grid, the relief, the seam, the
    light and the colour): 104 (issue 20, twelfth session; 128 before) took ~0.4 ms a face off a close-up's steps
    (geometry 1.24 -> 1.05-1.12 ms, relief 0.73 -> 0.55-0.59, relight 1.29 -> 1.17-1.21, seam 0.35 -> 0.29), with
    likeness, flicker and artifacts on six clip x identity pairs within the 128 px runs' own spread; the outline
    sits ~2 px further in at a 1080p close-up (its 1.5-pixel inset is in these pixels)."""
    work_px: int = 288
    """Faces in windows larger than this (long side, pixels) are rendered, relit and colour-matched at this
    size and scaled up when pasted: a close-up costs no more than a medium shot (slightly softer). 288 (was 400,
    BENCHMARKS.md issue 20, eighth session): with the texture's detail held at ``detail_px``, the 720p and 1080p
    close-ups' pictures cannot be told from 400's at twice their size, the face's sharpness 0.96 / 0.99 of it,
    the likeness within 0.01 (roop_target_1080p x s1 0.60 -> 0.59, x roop_source 0.41 -> 0.41); at 256 a 1080p
    face lost some (x roop_source 0.41 -> 0.37, closer to the identity in 100% -> 75% of frames)."""
    detail_px: int = 400
    """The identity's texture is read at the level of detail of a face in a window this size (long side, at most
    the window's own), whatever the work size: below it, a smaller work size keeps the texels it can carry (up to
    one a work pixel, ``texture_lookup``) instead of a coarser mip level."""
    mip_bias: float = 0.75
    """Added to the texture level of detail (log2): about one texel per pixel across the face, so the bilinear
    lookup never skips texels (a minified texture shimmers as the mesh moves). Sharper (lower) raises the
    recogniser's likeness a little and the flicker on contrasty identities more; softer the reverse
    (``benchmarks/eval_quality.py``, BENCHMARKS.md). 0.75 with the levels blended is about as sharp, on
    average, as the nearest finer level at 1.0 was."""
    mip_steps: int = 8
    """The level of detail is blended between two mip levels in this many steps (1: the nearest finer level
    only, no blending). Each step's blend is made once per identity and kept."""
    morph_falloff: float = 0.25
    """How far outside the face the morph's image warp fades out, in eye-corner distances."""
    morph_smoothing_iterations: int = 0
    """Neighbour-averaging passes over the shape difference (0: every point takes the identity's place; the
    difference is already smooth in time, and each pass blurs away some of the features' shapes)."""
    rigid_features: bool = False
    """True: the morph keeps the actor's eye and mouth shapes, moving each as a whole. False (the default):
    eyes and lids take the identity's shapes — much of the likeness lives there — opened as wide as the
    actor's own (``match_openings``), so the actor's eyes still fit them; the lips follow ``rigid_mouth``."""
    rigid_mouth: bool = True
    """True (the default): the morph keeps the actor's lip shape (the lips move with the face as a whole, by
    their mean displacement); the eyes follow ``rigid_features``. The mouth's shape is the actor's
    performance: with the photo's lip shape a pursed "o" came out wide and flat, and the output's mouth
    opening followed the actor's less (Obama_speaking x obama, BENCHMARKS.md issue 21). The identity's likeness
    stays in the lips' colour and texture and in the rest of the face's proportions. False: the lips take the
    identity's shape, opened as wide as the actor's (``match_openings``)."""
    match_openings: bool = True
    """Before the morph, the identity's mouth and eyes are set to the actor's usual opening: the photo's
    expression (a smile with teeth, a squint) is not the identity's face shape (``_match_openings``)."""
    chin_follows_opening: bool = True
    """True (the default): below the lips, the part of the morph's displacement beyond the mouth's own shrinks with
    the actor's skin under the lower lip as the actor opens the mouth wider than usual (``_squeeze_under_lip``).
    The displacement is the identity's shape less the actor's *average* one, a fixed offset per point; opened wide,
    an actor's lower lip comes down toward the chin and the skin between them is squeezed to 40% of its usual
    height, so the same offset drew the identity's skin from much nearer its lip there — a photo's crease and shadow
    under the lower lip, across the actor's evenly lit chin (d10.mp4 x a grey biden.jpg: the chin's darkest tenth 9
    L* under the actress's as she sang, over the clip's bound of 8; BENCHMARKS.md, issue 21). False: the offset as
    it is."""
    reference_time_constant_s: float = 2.0
    """Time over which the actor's own face shape (the morph's reference) is averaged."""
    bounded: bool = True
    """True (the default): the mask of a face larger than ``work_px`` is made at the work size, not the window's
    (issue 20): the outline's ramp, the kept openings' cut and occlusion at the work size, scaled up to the window
    inside the paste with the face (``engines.fused.paste_face``) — no window-size pass for the mask. The frames
    differ from the window-size mask's only along the kept openings' rims (a few levels; 98.5% of a close-up's
    window within 3), the close-ups' pictures and the likeness within the evaluation's own run-to-run noise
    (BENCHMARKS.md, issue 20). False: the mask at the window's size (the kept openings cut there)."""


@dataclass
class FaceGeometry:
    """The tracked face drawn into its window: everything the swap, relight and blend stages share."""

    window: Window
    """In frame pixels, inside the frame."""
    landmarks: np.ndarray
    """(468, 3) frame pixels, morphed if a morph was applied."""
    raster: Raster
    """At geometry resolution (``small_size``), of ``face_topology().all_triangles``."""
    labels_small: np.ndarray
    """(hs, ws) int8 per small pixel: topology labels, -1 where no triangle."""
    uv_small: np.ndarray
    """(hs, ws, 2) float32 texture coordinates (0..1) per small pixel, extended a pixel past the coverage."""
    normals_small: np.ndarray
    """(hs, ws, 3) float32 camera-frame unit normals (zero where no triangle)."""
    face_scale_px: float
    """Eye-corner distance in frame pixels."""
    morph: tuple[np.ndarray, tuple[float, float, float, float]] | None = None
    """The morph's image warp of the actor's window at geometry resolution (None: no morph): each small pixel's
    position in the window minus the displacement there ((hs, ws, 2) float32), and the first and last small pixel
    centres' x and y in the window (``_warp_small``). The window-size maps are made from it when wanted (``warp``,
    ``warp_maps``)."""
    work_size: tuple[int, int] = (0, 0)
    """(height, width) the face is rendered, relit and colour-matched at: the window's size, or less for a
    face larger than ``SwapConfig.work_px`` (its result is scaled up into the window when pasted)."""
    bounded: bool = False
    """``SwapConfig.bounded``: the mask stage's alpha is made at the work size (``mask_size``)."""
    _normals: np.ndarray | None = field(default=None, repr=False)
    _labels: np.ndarray | None = field(default=None, repr=False)
    _memo: dict[object, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.work_size == (0, 0):
            self.work_size = (self.window.height, self.window.width)

    @property
    def warp(self) -> np.ndarray | None:
        """(h, w, 2) float32 remap map of the morph's image warp of the actor's window (``_warp_map``), or None."""
        if self.morph is None:
            return None
        small, lead = self.morph
        return self.memo("warp", lambda: _warp_map(small, lead, (self.window.height, self.window.width)))

    def warp_maps(self, fused: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The morph's warp as ``cv2.remap``'s fixed-point maps ((h, w, 2) int16, (h, w) uint16: the 1/32 px grid
        ``cv2.remap`` puts a float map on anyway). ``fused``: made straight from the geometry resolution by a
        compiled loop (``engines.swap.fused.warp_maps``: the window-size float map never written; the same maps
        but where a position's last float bit moves it across a 1/32 px step); else ``cv2.convertMaps`` of
        ``warp``. There must be a morph."""
        assert self.morph is not None
        if fused:
            from engines.swap.fused import warp_maps

            small, lead = self.morph
            return warp_maps(small, lead, (self.window.height, self.window.width))
        xy, frac = cv2.convertMaps(self.warp, None, cv2.CV_16SC2)  # type: ignore[call-overload]
        return xy, frac

    @property
    def small_size(self) -> tuple[int, int]:
        """(height, width) of the geometry raster."""
        return self.labels_small.shape[0], self.labels_small.shape[1]

    @property
    def reduced(self) -> bool:
        """Whether the work size is smaller than the window."""
        return self.work_size != (self.window.height, self.window.width)

    @property
    def mask_size(self) -> tuple[int, int]:
        """(height, width) the mask stage's alpha is made at: the work size when ``bounded``, else the window's."""
        return self.work_size if self.bounded else (self.window.height, self.window.width)

    def to_mask(self, array: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """A small-raster, work-size or window-size array resized to ``mask_size`` (itself when it is that size)."""
        h, w = self.mask_size
        if array.shape[:2] == (h, w):
            return array
        return cv2.resize(array, (w, h), interpolation=interpolation).reshape(h, w, *array.shape[2:])

    def upsample(self, small: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """A small-raster array resized to the work size."""
        h, w = self.work_size
        return cv2.resize(small, (w, h), interpolation=interpolation).reshape(h, w, *small.shape[2:])

    def to_window(self, array: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """A small-raster or work-size array resized to the window."""
        h, w = self.window.height, self.window.width
        if array.shape[:2] == (h, w):
            return array
        return cv2.resize(array, (w, h), interpolation=interpolation).reshape(h, w, *array.shape[2:])

    def to_work(self, array: np.ndarray, measured_only: bool = False) -> np.ndarray:
        """A window-size array (the actor's pixels) reduced to the work size (``shrink``). ``measured_only``: the
        result is only measured, never shown (the mesh swap's actor in the measured light: its light, colour, seam
        and relief at geometry resolution) — ``shrink_box_first``, the k x k average first: at a 1080p close-up
        0.23 ms against 0.55-0.78, a little softer, the geometry-resolution copy within 0.23 of a level of
        ``shrink``'s on average (BENCHMARKS.md, issue 20)."""
        h, w = self.work_size
        if array.shape[:2] == (h, w):
            return array
        return shrink_box_first(array, (w, h)) if measured_only else shrink(array, (w, h))

    def face_box(self, margin_px: int = 2) -> tuple[slice, slice]:
        """Row and column slices of the work size that hold every pixel the mesh covers (and the geometry
        pixel around it that bilinear upsampling reaches), ``margin_px`` more on each side."""
        h, w = self.work_size
        pixels = self.raster.pixels
        if pixels.size == 0:
            return slice(0, 0), slice(0, 0)
        hs, ws = self.small_size
        cols = pixels % ws
        fy, fx = h / hs, w / ws
        y0 = math.floor((int(pixels[0]) // ws - 0.5) * fy - 0.5) - margin_px
        y1 = math.ceil((int(pixels[-1]) // ws + 1.5) * fy - 0.5) + margin_px + 1
        x0 = math.floor((int(cols.min()) - 0.5) * fx - 0.5) - margin_px
        x1 = math.ceil((int(cols.max()) + 1.5) * fx - 0.5) + margin_px + 1
        return slice(max(y0, 0), min(y1, h)), slice(max(x0, 0), min(x1, w))

    def memo(self, key: object, make: Callable[[], np.ndarray]) -> np.ndarray:
        """``make()`` computed once for this face and frame under ``key`` (hashable) and kept read-only: what more
        than one stage derives from the geometry (the outline's feather: the mask's ramp and the seam's reach)."""
        value = self._memo.get(key)
        if value is None:
            value = make()
            value.setflags(write=False)
            self._memo[key] = value
        return value

    def normals(self) -> np.ndarray:
        """(h, w, 3) float32 camera-frame normals at work resolution (zero outside the face; computed once)."""
        if self._normals is None:
            self._normals = self.upsample(self.normals_small)
        return self._normals

    def labels(self) -> np.ndarray:
        """(h, w) int8 topology labels at work resolution (-1 outside the face; computed once)."""
        if self._labels is None:
            self._labels = self.upsample(self.labels_small, cv2.INTER_NEAREST)
        return self._labels


class MeshSwapper:
    """Draws faces and renders identities onto them; holds each face's reference shape for the morph.

    One instance per stream and thread (like ``FaceProcessor``).
    """

    def __init__(self, config: SwapConfig | None = None, fused: bool = False) -> None:
        self.config = config or SwapConfig()
        self.fused = fused
        """True: the geometry's raster and the texture lookup run as compiled kernels (``engines.swap.fused``,
        numba; ``ProcessorConfig.fused``, the processor's default); False: the numpy/cv2 passes, the reference
        they are tested against (tests/engines/swap/test_fused_swap.py)."""
        self._reference: dict[int, tuple[np.ndarray, float, np.ndarray]] = {}
        """Per face: the averaged shape, when it was last updated, and the landmarks it was updated with."""
        self._mips: dict[tuple[int, str], tuple[Identity, list[np.ndarray]]] = {}
        self._blends: dict[tuple[int, str, int, int], np.ndarray] = {}

    def forget(self, active_ids: set[int]) -> None:
        """Drop the state of faces no longer tracked."""
        for face_id in [i for i in self._reference if i not in active_ids]:
            del self._reference[face_id]

    def geometry(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        face_id: int = 0,
        t_s: float = 0.0,
        identity: Identity | None = None,
        morph: float = 0.0,
        shape: np.ndarray | None = None,
    ) -> FaceGeometry | None:
        """Draw the face of ``landmarks`` (468, 3 frame pixels); None if it is not in the frame at all.

        ``morph`` (0..1) moves the face toward the identity's shape (``identity.canonical``), or toward ``shape``
        (468, 3, frontal frame) where no identity is drawn: a learned model's person (``LearnedSwapper.shape``)."""
        lm = np.asarray(landmarks, dtype=np.float32)
        scale_px = face_scale_px(lm)
        displacement = None
        target = identity.canonical if identity is not None else shape
        if target is not None:
            # The face's frame once for the reference's update and the morph (~0.07 ms each time).
            frame = frontal_frame(lm) if morph > 0.0 else None
            reference = self._update_reference(face_id, lm, t_s, frame)
            if frame is not None:
                under_lip = _under_lip_height(lm, frame) if self.config.chin_follows_opening else None
                displacement = morph * self._morph_displacement(target, reference, frame, under_lip)
        margin = 2.0 + (self.config.morph_falloff * scale_px if displacement is not None else 0.0)
        window = _window(lm, image.shape, margin)
        if window is None:
            return None
        topo = face_topology()
        sx, sy, small_w, small_h = _small_size(window, self.config.geometry_px)
        if displacement is not None:
            lm = lm.copy()
            lm[:, :2] += displacement
        small_lm = _to_small(lm, window, sx, sy)
        # Every per-vertex attribute in one interpolation: texture coordinates, normals, displacement.
        small_window = Window(0, 0, small_w, small_h)
        if self.fused:
            from engines.swap.fused import geometry_raster, vertex_normals_camera

            tris = topo.all_triangles
            attrs = [topo.uv, vertex_normals_camera(lm, tris)] + ([displacement] if displacement is not None else [])
            drawn = geometry_raster(small_lm, tris, topo.labels, np.concatenate(attrs, axis=1), (small_h, small_w))
            sparse = (drawn.pixels, drawn.tri, drawn.weights)
            raster = Raster.from_dense(small_window, drawn.triangle, drawn.bary, tris, sparse)
            values, normals, labels, uv = drawn.values, drawn.normals, drawn.labels, drawn.uv
        else:
            normals_v = mesh_to_camera(vertex_normals(lm, topo.all_triangles))
            attrs = [topo.uv, normals_v] + ([displacement] if displacement is not None else [])
            raster = rasterize(small_lm, topo.all_triangles, small_window)
            values = raster.interpolate(np.concatenate(attrs, axis=1))
            labels = np.where(raster.mask, topo.labels[np.maximum(raster.triangle, 0)], -1).astype(np.int8)
            uv = _extend(np.ascontiguousarray(values[..., 0:2]), raster.mask)
            normals = np.ascontiguousarray(values[..., 2:5])
            length = np.sqrt(np.einsum("ijk,ijk->ij", normals, normals))
            normals *= np.where(length > 1e-6, 1.0 / np.maximum(length, 1e-6), 0.0).astype(np.float32)[..., None]
        warp_small = None
        if displacement is not None:
            # Each pixel of the morphed face takes the actor's pixel at the same place of the unmorphed mesh
            # (p - displacement, interpolated over the morphed mesh: an exact piecewise-affine inverse), and
            # the warp fades out around the face so nothing tears.
            field_small = _displacement_field(
                np.ascontiguousarray(values[..., 5:7]),
                raster.mask,
                self.config.morph_falloff * scale_px * sx,
                self.fused,
            )
            warp_small = _warp_small(field_small, sx, sy)
        k = min(1.0, self.config.work_px / max(window.width, window.height))
        work = (max(2, round(window.height * k)), max(2, round(window.width * k)))
        return FaceGeometry(window, lm, raster, labels, uv, normals, scale_px, warp_small, work, self.config.bounded)

    def render(self, geometry: FaceGeometry, identity: Identity, source: str = "albedo") -> np.ndarray:
        """The identity's ``"texture"`` (uint8 BGR, its photos' light) or ``"albedo"`` (float32 linear BGR)
        over the whole window (valid where the face is; the blend decides what shows)."""
        tex, texel_small = self.texture_lookup(geometry, identity, source)
        # Looked up only in the box around the face (the window's margin is the actor's: zero there).
        ys, xs = geometry.face_box()
        if self.fused and tex.dtype == np.float32:  # the albedo (the uint8 texture: cv2.remap is faster)
            from engines.swap.fused import render_texture

            return render_texture(texel_small, tex, geometry.work_size, (ys.start, ys.stop, xs.start, xs.stop))
        texel = geometry.upsample(texel_small)
        out = np.zeros((*geometry.work_size, tex.shape[2]), tex.dtype)
        out[ys, xs] = _remap(tex, np.ascontiguousarray(texel[ys, xs]))
        return out

    def albedo_lookup(
        self, geometry: FaceGeometry, identity: Identity
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        """What ``render(geometry, identity, "albedo")`` draws, not drawn: the texture, the texel positions at geometry
        resolution and the face's box (y0, y1, x0, x1) of the work size — for a relight that looks the albedo up as
        it goes (``engines.light.relight.relight_face``'s ``albedo_lookup``: the same numbers)."""
        tex, texel_small = self.texture_lookup(geometry, identity, "albedo")
        ys, xs = geometry.face_box()
        return tex, texel_small, (ys.start, ys.stop, xs.start, xs.stop)

    def texture_lookup(self, geometry: FaceGeometry, identity: Identity, source: str) -> tuple[np.ndarray, np.ndarray]:
        """What ``render`` samples: the texture at the face's level of detail, and the (hs, ws, 2) float32 texel
        positions at geometry resolution (linear in uv: upsampled to the work size, the same numbers). The torch
        stages sample it with ``engines.swap.torch_ops.sample_bilinear``."""
        mips = self._mip_chain(identity, source)
        size = mips[0].shape[0]
        # Texels per pixel across the face (~2.4 eye distances) at the detail size: pick the mip level where that
        # is about one (and the bias) — but never more than one texel a pixel of the work size.
        uv_span_px = float(np.ptp(face_topology().uv[:, 0])) * size
        window = geometry.window
        k = min(1.0, self.config.detail_px / max(window.width, window.height))  # as ``geometry`` sizes the work
        detail_w = max(2, round(window.width * k))
        face_px = geometry.face_scale_px * 2.4 * detail_w / window.width
        ratio = math.log2(max(uv_span_px / max(face_px, 1.0), 1.0)) + self.config.mip_bias
        if detail_w > geometry.work_size[1]:  # a work size under the detail size: at most a texel a work pixel
            work_face_px = geometry.face_scale_px * 2.4 * geometry.work_size[1] / window.width
            ratio = max(ratio, math.log2(max(uv_span_px / max(work_face_px, 1.0), 1.0)))
        tex = self._texture_at(identity, source, mips, ratio)
        # Texel coordinates are linear in uv: scaled at geometry resolution, then upsampled (the same numbers).
        return tex, geometry.uv_small * np.float32(tex.shape[0]) - np.float32(0.5)

    def coverage_small(self, geometry: FaceGeometry, identity: Identity) -> np.ndarray:
        """(hs, ws) float32 0..1 at geometry resolution: how well the identity's photos saw each point."""
        cover = identity.coverage
        return _remap(cover, (geometry.uv_small * float(cover.shape[0]) - 0.5).astype(np.float32))

    def actor_window(self, image: np.ndarray, geometry: FaceGeometry, out: np.ndarray | None = None) -> np.ndarray:
        """The actor's pixels in the window, warped by the morph when there is one: a new array, or written into
        ``out`` (the window's size and type, another image's window: the canvas's, where the warped actor goes
        anyway — no copy of the window in between) and that returned."""
        ys, xs = geometry.window.slices
        actor = image[ys, xs]
        if geometry.morph is None:
            if out is None:
                return actor.copy()
            out[...] = actor
            return out
        # cv2.remap turns a float map into fixed point (1/32 px) block by block anyway; in fixed point up front,
        # the same pixels come out a third faster.
        xy, frac = geometry.warp_maps(self.fused)
        if out is None:
            return cv2.remap(actor, xy, frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cv2.remap(actor, xy, frac, cv2.INTER_LINEAR, dst=out, borderMode=cv2.BORDER_REPLICATE)
        return out

    # ------------------------------------------------------------------------------------------ internals

    def _texture_at(self, identity: Identity, source: str, mips: list[np.ndarray], lod: float) -> np.ndarray:
        """The texture at level of detail ``lod`` (log2 of the minification): the finer of the two levels
        around it, with the coarser one (upsampled) blended in by the fraction, in ``mip_steps`` steps."""
        lod = float(np.clip(lod, 0.0, len(mips) - 1))
        level = min(int(math.floor(lod)), len(mips) - 1)
        steps = max(1, self.config.mip_steps)
        step = int(math.floor((lod - level) * steps + 0.5))
        if step >= steps:
            level, step = min(level + 1, len(mips) - 1), 0
        if step == 0 or level + 1 >= len(mips):
            return mips[level]
        key = (id(identity), source, level, step)
        blend = self._blends.get(key)
        if blend is None:
            fine = mips[level]
            coarse = cv2.resize(mips[level + 1], (fine.shape[1], fine.shape[0]), interpolation=cv2.INTER_LINEAR)
            frac = step / steps
            mixed = fine.astype(np.float32) * (1.0 - frac) + coarse.astype(np.float32) * frac
            blend = np.clip(np.round(mixed), 0, 255).astype(np.uint8) if fine.dtype == np.uint8 else mixed
            if len(self._blends) > 4 * steps:
                self._blends.clear()
            self._blends[key] = blend
        return blend

    def _mip_chain(self, identity: Identity, source: str) -> list[np.ndarray]:
        key = (id(identity), source)
        cached = self._mips.get(key)
        if cached is not None and cached[0] is identity:
            return cached[1]
        if source == "albedo":
            base: np.ndarray = np.ascontiguousarray(identity.albedo, dtype=np.float32)
        elif source == "texture":
            base = np.ascontiguousarray(identity.texture)
        else:
            raise ValueError(f"unknown texture source {source!r}")
        chain: list[np.ndarray] = [base]
        while chain[-1].shape[0] > 64:
            chain.append(cv2.pyrDown(chain[-1]))
        self._mips.pop(key, None)
        if len(self._mips) > 8:
            self._mips.clear()
        # A new identity (or a reloaded one): the blends made from the levels it replaces go with them.
        self._blends = {k: v for k, v in self._blends.items() if (k[0], k[1]) in self._mips}
        self._mips[key] = (identity, chain)
        return chain

    def _update_reference(
        self, face_id: int, lm: np.ndarray, t_s: float, frame: tuple[np.ndarray, np.ndarray, float] | None = None
    ) -> np.ndarray:
        """The actor's face shape averaged over time (frontal frame), the morph's starting point.

        Landmarks identical to the last frame's (a still face held by ``engines.face.stillness``) leave it as it
        is: averaging on toward the held shape would move the morph by a fraction of a pixel every frame,
        and a face that is held would still be redrawn, shimmering, where the actor's stays still."""
        from engines.face.topology import frontalise

        previous = self._reference.get(face_id)
        if previous is not None and t_s >= previous[1] and np.array_equal(lm, previous[2]):
            self._reference[face_id] = (previous[0], t_s, previous[2])
            return previous[0]
        shape = frontalise(lm, frame)
        if previous is None or t_s < previous[1]:
            self._reference[face_id] = (shape, t_s, lm.copy())
            return shape
        ref, t_prev, _ = previous
        alpha = 1.0 - math.exp(-max(t_s - t_prev, 0.0) / self.config.reference_time_constant_s)
        ref = ref + alpha * (shape - ref)
        self._reference[face_id] = (ref, t_s, lm.copy())
        return ref

    def _morph_displacement(
        self,
        target: np.ndarray,
        reference: np.ndarray,
        frame: tuple[np.ndarray, np.ndarray, float],
        under_lip: float | None = None,
    ) -> np.ndarray:
        """Per-vertex displacement (468, 2) in frame pixels toward the identity's proportions. ``under_lip``: the
        height of the skin under the actor's lower lip now (``_under_lip_height``), for
        ``SwapConfig.chin_follows_opening`` (None: off)."""
        target = np.asarray(target, np.float64)
        if self.config.match_openings:
            target = _match_openings(target, reference)
        delta = target - reference
        # The held groups (the mouth by default, the eyes with rigid_features) move as wholes: the actor's shape.
        for group in _held_groups(self.config):
            delta[group] = delta[group].mean(axis=0)
        if under_lip is not None:
            delta = _squeeze_under_lip(delta, reference, under_lip)
        delta = _smooth_on_mesh(delta, self.config.morph_smoothing_iterations)
        delta = delta * _outline_weight()[:, None]  # the forehead's top and the chin's bottom stay the actor's
        _, rot, scale = frame  # the actor's face's frame now (``frontal_frame``)
        return (scale * delta @ rot.T)[:, :2].astype(np.float32)


def _remap(src: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``src`` sampled bilinearly at the (h, w, 2) float32 positions ``xy`` (one two-channel map: no split)."""
    return cv2.remap(src, xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _window(lm: np.ndarray, shape: tuple[int, ...], margin: float) -> Window | None:
    h, w = shape[:2]
    x0 = max(0, int(math.floor(float(lm[:, 0].min()) - margin)))
    y0 = max(0, int(math.floor(float(lm[:, 1].min()) - margin)))
    x1 = min(w, int(math.ceil(float(lm[:, 0].max()) + margin)) + 1)
    y1 = min(h, int(math.ceil(float(lm[:, 1].max()) + margin)) + 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return Window(x0, y0, x1 - x0, y1 - y0)


def _small_size(window: Window, geometry_px: int) -> tuple[float, float, int, int]:
    s = min(1.0, geometry_px / max(window.width, window.height))
    small_w, small_h = max(2, round(window.width * s)), max(2, round(window.height * s))
    return small_w / window.width, small_h / window.height, small_w, small_h


def _to_small(lm: np.ndarray, window: Window, sx: float, sy: float) -> np.ndarray:
    """Frame pixels to geometry-raster pixels (``cv2.resize``'s pixel-centre convention)."""
    out = np.empty_like(lm, dtype=np.float32)
    out[:, 0] = (lm[:, 0] - window.x0 + 0.5) * sx - 0.5
    out[:, 1] = (lm[:, 1] - window.y0 + 0.5) * sy - 0.5
    out[:, 2] = lm[:, 2] * (sx + sy) * 0.5
    return out


def _warp_small(field_small: np.ndarray, sx: float, sy: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The morph's warp at geometry resolution: (hs, ws, 2) float32, each small pixel's centre's position in the
    window minus the displacement field (``field_small``, frame pixels) there, and the first and last small
    centres' x and y in the window (``_warp_map`` continues the positions past them)."""
    hs, ws = field_small.shape[:2]
    gx = (np.arange(ws, dtype=np.float32) + 0.5) / np.float32(sx) - 0.5
    gy = (np.arange(hs, dtype=np.float32) + 0.5) / np.float32(sy) - 0.5
    small = np.empty_like(field_small)
    np.subtract(gx[None, :], field_small[..., 0], out=small[..., 0])
    np.subtract(gy[:, None], field_small[..., 1], out=small[..., 1])
    return small, (float(gx[0]), float(gx[-1]), float(gy[0]), float(gy[-1]))


def _warp_map(small: np.ndarray, lead: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) float32 remap map of a window of ``size`` (h, w): each pixel's own position minus the displacement
    field, from ``_warp_small``'s (``small``: the positions minus the field at geometry resolution; ``lead``: the
    outermost small centres) upsampled bilinearly to the window.

    A pixel's position is linear in the pixel, so bilinear upsampling reproduces it exactly: the map is
    made at geometry resolution (position of each small pixel's centre in the window, minus the field) and
    upsampled in one resize — full-window arithmetic on a two-channel float image cost more than the
    resize itself. Beyond the outermost small pixels' centres the resize holds the edge value, where the
    position must go on growing: those few rows and columns get the difference added back."""
    h, w = size
    warp: np.ndarray = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    for axis, (first, last), length in ((0, lead[:2], w), (1, lead[2:], h)):
        lo, hi = int(math.ceil(first)), int(math.floor(last)) + 1
        pos = np.arange(length, dtype=np.float32)
        for part, edge in ((slice(0, max(lo, 0)), first), (slice(min(hi, length), length), last)):
            if part.stop <= part.start:
                continue
            step = pos[part] - np.float32(edge)
            if axis == 0:
                warp[:, part, 0] += step[None, :]
            else:
                warp[part, :, 1] += step[:, None]
    return warp


def padded_mask(mask: np.ndarray) -> np.ndarray:
    """``mask`` (h, w: bool or 0/1) as uint8 0/1 with a zero border a pixel wide (what a distance transform inside it
    needs): ``np.pad``'s array, made by OpenCV in a tenth of its ~80 us of CPU."""
    return cv2.copyMakeBorder(mask.astype(np.uint8, copy=False), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)


def _extend(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy values one pixel past the mask's edge, so upsampling does not mix in the empty fill."""
    m = mask.astype(np.float32)
    spread = cv2.blur(values * m[..., None], (3, 3))
    count = cv2.blur(m, (3, 3))
    ring = (count > 0) & ~mask  # the pixels just outside the mask: their neighbours' mean inside it
    out = values.astype(np.float32)  # a copy
    cv2.copyTo(spread / np.maximum(count, 1e-6)[..., None], ring.view(np.uint8), out)
    return out


_FIELD_BAND_PX = 3.0
"""Width (geometry pixels) of the band inside the outline where the morph's field goes from its smooth
continuation outside to the exact displacement inside."""


def _displacement_field(inside: np.ndarray, mask: np.ndarray, falloff_px: float, fused: bool = False) -> np.ndarray:
    """(hs, ws, 2) displacement in frame pixels: ``inside`` (interpolated over the face) where ``mask``,
    continued smoothly beyond it and faded to zero ``falloff_px`` (small pixels) outside it and at the
    window's edge. The continuation is computed at a quarter of the resolution: it is smooth anyway.
    ``fused``: the per-pixel arithmetic between OpenCV's passes in two compiled loops (``engines.swap.fused``,
    the same float32 expressions), where numpy made ~20 passes over the raster."""
    cover = mask.astype(np.float32)
    hs, ws = cover.shape
    qw, qh = max(2, ws // 4), max(2, hs // 4)
    q_field = cv2.resize(inside * cover[..., None], (qw, qh), interpolation=cv2.INTER_AREA)
    q_cover = cv2.resize(cover, (qw, qh), interpolation=cv2.INTER_AREA)
    sigma = max(falloff_px / 4.0 / 2.0, 0.5)
    spread = cv2.GaussianBlur(q_field, (0, 0), sigma)
    weight = cv2.GaussianBlur(q_cover, (0, 0), sigma)
    extended = cv2.resize(spread / np.maximum(weight, 1e-4)[..., None], (ws, hs), interpolation=cv2.INTER_LINEAR)
    outside = cv2.distanceTransform((cover == 0).astype(np.uint8), cv2.DIST_L2, 3)
    if fused:
        from engines.swap import fused as kernels

        depth = cv2.distanceTransform(padded_mask(mask), cv2.DIST_L2, 3)[1:-1, 1:-1]
        edge_falloff = max(0.25 * falloff_px, 1.0)
        fade, ramp = kernels.fade_and_band(outside, depth, max(falloff_px, 1.0), edge_falloff, _FIELD_BAND_PX)
        return kernels.field_blend(cv2.GaussianBlur(ramp, (0, 0), 1.0), depth, inside, extended, fade)
    t = np.clip(outside / max(falloff_px, 1.0), 0.0, 1.0)
    fade = 1.0 - t * t * (3.0 - 2.0 * t)
    xx = np.arange(ws, dtype=np.float32)[None, :]
    yy = np.arange(hs, dtype=np.float32)[:, None]
    edge = np.minimum(np.minimum(xx, ws - 1 - xx), np.minimum(yy, hs - 1 - yy))
    fade *= np.clip(edge / max(0.25 * falloff_px, 1.0), 0.0, 1.0)
    # Inside, the exact displacement takes over from the continuation across a band along the outline:
    # switched at the raster's edge instead, the field jumped along that edge's stair steps and the warped
    # actor's jaw line showed them (and their crawl, as the edge moved from one raster pixel to the next).
    depth = cv2.distanceTransform(padded_mask(mask), cv2.DIST_L2, 3)[1:-1, 1:-1]
    s = np.clip((depth - 1.0) / _FIELD_BAND_PX, 0.0, 1.0)
    # The distance to a stair-stepped edge itself steps by half a pixel along it: blurred a little, the
    # band's level lines are smooth.
    w = cv2.GaussianBlur((s * s * (3.0 - 2.0 * s)).astype(np.float32), (0, 0), 1.0) * (depth > 0)
    w = w[..., None]
    return (w * inside + (1.0 - w) * (extended * fade[..., None])).astype(np.float32)


HAIRLINE_FROM = 0.72
"""Canonical height above the face's centre (eye-corner distances; the brows reach 0.70, the mesh's top 1.0)
where the morph starts to fade out toward the forehead's top ..."""
HAIRLINE_RAMP = 0.25
"""... over this height: the top of the mesh stays where the actor's forehead is."""


@functools.cache
def _hairline_weight() -> np.ndarray:
    """(468,) how much of the morph each vertex takes: 1 up to the brows, fading to 0 at the forehead's top.

    The mesh stops in the middle of the forehead, below the hairline; its top outline is not the edge of
    the face but a line in the actor's skin. Moved to where the identity's photo put it (narrower there
    when the photo's hair covers its temples), the morph's warp dragged the actor's hair in with it over
    the forehead's upper corners: a dark band where the swapped skin ends (d10 x roop_source: the
    forehead's darkest tenth 15 L* below the input's, 2.6 with the top held; BENCHMARKS.md, issue 21).
    The brows, eyes and everything below them still take the identity's shape."""
    y = face_topology().canonical[:, 1].astype(np.float64)
    t = np.clip((-y - HAIRLINE_FROM) / HAIRLINE_RAMP, 0.0, 1.0)
    out = 1.0 - t * t * (3.0 - 2.0 * t)
    out.setflags(write=False)
    return out


JAW_FROM = 0.76
"""Canonical height below the face's centre (eye-corner distances; the lips' inner edge is at 0.61, the chin's
bottom at 0.98) where the morph starts to fade out toward the chin's bottom ..."""
JAW_RAMP = 0.22
"""... over this height: the bottom of the face's outline stays where the actor's jaw is."""


@functools.cache
def _jaw_weight() -> np.ndarray:
    """(468,) how much of the morph each vertex takes: 1 down to the mouth, fading to 0 at the chin's bottom.

    Below the mesh's bottom outline is the actor's under-jaw: the shadow under the chin, the neck, a beard's
    stubble. Moved up to where a photo with a shorter chin has it, the morph's warp pulled that under-jaw up
    into the band between the identity's chin and the actor's (Obama_speaking x roop_source: a dark, greyish
    goatee on every frame, the chin region 9 L* from the input's, 5 with the morph off; BENCHMARKS.md,
    issue 21); moved down (a longer chin), the identity's skin went over the actor's neck. The eyes, nose and
    mouth still take the identity's places; the chin between the mouth and the actor's jaw line is stretched
    to fit."""
    y = face_topology().canonical[:, 1].astype(np.float64)
    t = np.clip((y - JAW_FROM) / JAW_RAMP, 0.0, 1.0)
    out = 1.0 - t * t * (3.0 - 2.0 * t)
    out.setflags(write=False)
    return out


@functools.cache
def _outline_weight() -> np.ndarray:
    """(468,) how much of the morph each vertex takes: the forehead's top (``_hairline_weight``) and the
    chin's bottom (``_jaw_weight``) stay where the actor has them."""
    out = _hairline_weight() * _jaw_weight()
    out.setflags(write=False)
    return out


UNDER_LIP = (17, 200)
"""The lower lip's outer contour at the middle and the chin's top there (canonical y 0.74 and 0.81): the height of
the skin under the lower lip, which an actor's wide open mouth squeezes (d10.mp4's singer: 0.14 eye-corner distances
with the mouth closed, 0.06 open wide)."""
UNDER_LIP_RAMP = 0.07
"""Canonical height over which ``_squeeze_under_lip`` comes in below the lower lip's outer contour (none on the
lips themselves, all of it from the chin's top on)."""


@functools.cache
def _under_lip_weight() -> np.ndarray:
    """(468,) how much of ``_squeeze_under_lip`` each vertex takes: 0 on the lips and above the lower lip's outer
    contour at the middle, rising to 1 ``UNDER_LIP_RAMP`` below it (the chin and the jaw's sides below the mouth)."""
    y = face_topology().canonical[:, 1].astype(np.float64)
    out = np.clip((y - y[UNDER_LIP[0]]) / UNDER_LIP_RAMP, 0.0, 1.0)
    out[_rigid_groups()["mouth"]] = 0.0
    out.setflags(write=False)
    return out


def _under_lip_height(landmarks: np.ndarray, frame: tuple[np.ndarray, np.ndarray, float]) -> float:
    """The height of the skin under the lower lip (``UNDER_LIP``) of ``landmarks`` (468, 3) in its face's frontal frame
    (``frame``: ``frontal_frame``'s; eye-corner distances), as ``frontalise`` gives it, for the two points only."""
    centre, rot, scale = frame
    points = (np.asarray(landmarks, np.float64)[list(UNDER_LIP)] - centre) @ rot[:, 1] / scale
    return float(points[1] - points[0])


def _squeeze_under_lip(delta: np.ndarray, reference: np.ndarray, now: float) -> np.ndarray:
    """``delta`` (468, 3: the morph's identity - actor's average, frontal frame) with its height below the mouth,
    beyond the mouth's own, scaled by how far the skin under the actor's lower lip is squeezed now against its
    average (``now``, ``_under_lip_height``, over the reference's ``UNDER_LIP`` height, at most 1;
    ``_under_lip_weight``). ``delta`` itself where the actor's mouth is no wider open than usual, else a new array.

    The offset is the identity's proportions at the actor's usual opening. Opened wider, the actor's lower lip
    comes down toward the chin and the skin between them is squeezed; the offset, fixed, became a larger share of
    that skin and drew the identity's skin from nearer its own lower lip there (a photo's crease and the shadow
    under its lip) onto the actor's chin. Scaled with the squeeze, the identity's chin keeps its place in the
    actor's skin as it does at the usual opening. The mouth's own displacement (where the identity's lips go) is
    untouched, and so is every frame where the actor's mouth is no wider open than usual."""
    top, bottom = UNDER_LIP
    usual = float(reference[bottom, 1] - reference[top, 1])
    squeeze = min(max(now / usual, 0.0), 1.0) if usual > 1e-6 else 1.0
    if squeeze >= 1.0:
        return delta
    out = delta.copy()
    mouth_dy = float(delta[_rigid_groups()["mouth"], 1].mean())
    out[:, 1] -= _under_lip_weight() * (1.0 - squeeze) * (delta[:, 1] - mouth_dy)
    return out


@functools.cache
def _rigid_groups() -> dict[str, np.ndarray]:
    """Vertex sets the morph can move as one, by name: ``mouth`` (the lips: everything within the outer lip
    contour), ``right_eye`` and ``left_eye`` (each eye contour)."""
    topo = face_topology()
    lips = np.array(LIPS_OUTER, dtype=np.int64)
    contour = topo.uv[lips].astype(np.float32).reshape(-1, 1, 2)
    within = [
        i for i, (u, v) in enumerate(topo.uv) if cv2.pointPolygonTest(contour, (float(u), float(v)), True) >= -1e-6
    ]
    return {
        "mouth": np.array(sorted(set(within) | set(LIPS_OUTER))),
        "right_eye": np.array(RIGHT_EYE),
        "left_eye": np.array(LEFT_EYE),
    }


def _held_groups(config: SwapConfig) -> list[np.ndarray]:
    """The vertex sets ``config`` has the morph move as wholes (keeping the actor's shape): the eyes and the
    mouth with ``rigid_features``, the mouth with ``rigid_mouth``."""
    groups = _rigid_groups()
    names = [n for n in groups if config.rigid_features or (n == "mouth" and config.rigid_mouth)]
    return [groups[n] for n in names]


def _smooth_on_mesh(values: np.ndarray, iterations: int) -> np.ndarray:
    """Average each vertex's value with its mesh neighbours ``iterations`` times (umbrella smoothing)."""
    adj = vertex_adjacency()
    v = values
    for _ in range(iterations):
        v = 0.5 * v + 0.5 * (adj @ v)
    return v


_MOUTH_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318), (415, 324))
"""(upper, lower) inner-lip points facing each other, from the subject's right mouth corner to the left."""
_LOWER_OUTER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375)
"""The lower lip's outer contour, one point per mouth pair: the lip moves as a whole with its inner edge."""
_MOUTH_FIXED = (78, 308, 61, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409)
"""The mouth corners and the upper lip's outer contour: they stay where the identity has them."""
_EYE_PAIRS = (
    ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155)),
    ((466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382)),
)
"""(upper, lower) eyelid points facing each other, per eye (subject's right, then left), outer to inner."""
_EYE_CORNERS = (33, 133, 263, 362)
MOUTH_REACH = 0.6
EYE_REACH = 0.3
"""How far (eye-corner distances on the canonical face) moving a lip or a lid drags the skin around it."""


@functools.cache
def _opening_operator() -> np.ndarray:
    """(468, D) weights spreading D driven displacements over the mesh: the lower lip (inner edge, then outer
    contour) and the upper lids are driven; the upper lip, the lower lids, the corners, the brows and
    everything beyond ``MOUTH_REACH``/``EYE_REACH`` stay; every other vertex takes the mean of its neighbours
    (a discrete harmonic field), so the skin around a moved lip or lid follows it smoothly."""
    topo = face_topology()
    c = topo.canonical.astype(np.float64)
    n = c.shape[0]
    driven = [lower for _, lower in _MOUTH_PAIRS] + list(_LOWER_OUTER_LIP)
    driven += [upper for pairs in _EYE_PAIRS for upper, _ in pairs]
    pinned = {upper for upper, _ in _MOUTH_PAIRS} | set(_MOUTH_FIXED) | set(_EYE_CORNERS)
    pinned |= {lower for pairs in _EYE_PAIRS for _, lower in pairs} | set(RIGHT_BROW) | set(LEFT_BROW)
    near = np.linalg.norm(c[:, :2] - c[[13, 14], :2].mean(axis=0), axis=1) < MOUTH_REACH
    for eye in (RIGHT_EYE, LEFT_EYE):
        near |= np.linalg.norm(c[:, :2] - c[list(eye), :2].mean(axis=0), axis=1) < EYE_REACH
    pinned |= set(np.flatnonzero(~near).tolist())
    pinned -= set(driven)
    free = np.array(sorted(set(range(n)) - pinned - set(driven)))
    fixed = np.array(driven + sorted(pinned))
    laplacian = np.eye(n) - vertex_adjacency()
    weights = np.zeros((n, len(driven)))
    weights[np.array(driven), np.arange(len(driven))] = 1.0
    rhs = -laplacian[np.ix_(free, fixed)][:, : len(driven)]  # pinned vertices are zero: only driven ones count
    weights[free] = np.linalg.solve(laplacian[np.ix_(free, free)], rhs)
    weights.setflags(write=False)
    return weights


def _match_openings(target: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``target`` (the identity's frontal shape) with its mouth and eyes opened as wide as in ``reference``
    (the actor's usual shape), pair of facing points by pair: the lower lip and the upper lids move, the
    shapes of the lips and the eyes otherwise stay the identity's.

    The morph adds the difference identity - actor's average to the actor's current face. Without this, a
    photo with an open smile would hold the actor's mouth open by the photo's gap (the warped mouth interior
    stretched into it, speech harder to read), and a photo with narrower eyes than the actor's would make
    the lids cross in every blink."""
    weights = _opening_operator()
    # Every pair at once (a pair at a time, ~90 small numpy calls were 0.17 ms a face; the same numbers).
    mouth_up, mouth_lo, lid_up, lid_lo = _OPENING_PAIRS
    mouth = (reference[mouth_lo] - reference[mouth_up]) - (target[mouth_lo] - target[mouth_up])
    lids = (target[lid_lo] - target[lid_up]) - (reference[lid_lo] - reference[lid_up])
    return target + weights @ np.concatenate([mouth, mouth, lids])


_OPENING_PAIRS = (
    np.array([up for up, _ in _MOUTH_PAIRS]),
    np.array([lo for _, lo in _MOUTH_PAIRS]),
    np.array([up for pairs in _EYE_PAIRS for up, _ in pairs]),
    np.array([lo for pairs in _EYE_PAIRS for _, lo in pairs]),
)
"""``_match_openings``' facing points as index arrays: the mouth's upper and lower, the lids' upper and lower."""
