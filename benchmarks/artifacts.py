"""The artifact measure of the swap evaluation (issue 21): blotches, highlights and colour patches per face region.

The identity measures (a recogniser's cosine) do not see a dark patch on an upper lip or a white spot on a
forehead: a face with a black "moustache" of stretched nostril shadow is still closer to the identity. This
measure looks where such defects sit. The face is cut into regions with the tracked mesh (forehead, each
cheek, the nose, under the nose, the upper lip, the chin, around each eye: ``REGIONS``) and, in each, the
output's local luminance and chroma are compared with the input's in the same pixels — the swap relights to
the actor's light (relight ``match``), so a region of the output should be lit and coloured like the actor's.
The cheeks and eye rings leave out the skin the camera sees nearly edge-on (``GRAZING``): on a turned head it is
the silhouette, where the swap's morph honestly draws the identity's outline instead of the actor's.

Every statistic is taken relative to the whole face's median (L*, a*, b*), so what the colour match already
settles (the face's overall tone, an identity darker or paler than the actor) does not count, and what is
local does: per region the darkest tenth, the median and the brightest tenth of L* (a blotch pulls the first
down, a highlight pushes the last up, a flat patch moves the median) and the median chroma (a*, b*). A
region's *deviation* is the largest of the three L* differences and the chroma distance, in CIE L*a*b*
units (about one just-noticeable difference each); a frame's worst region is the one with the largest.

Around the eyes the darkest tenth is not compared (``JUDGED``): there it is the lash line, the lid margin and
crease and any eyeliner — thin dark lines of the *identity's* eyes, which the mesh's lid contour does not
cover at this scale and which the morph gives the identity's shape — not the skin's. A swap to a photo with
dark lashes and liner read 20 units from a light-eyed actor there in every frame while its eye rings' median,
bright tenth and colour stayed within the bound (d13 x s1); the photo itself is further from the actor there
than the output is. A cast shadow of the photo's eye socket, a blotch or a highlight around the eye covers
more than a tenth of the ring and still moves its median or bright tenth (``tests/benchmarks/test_artifacts.py``
paints both).

Why a bound from the input itself: an actor's own face changes from frame to frame (the head turns a
region into shadow, an expression folds a cheek, the light moves). The same statistics measured on the
input against the input's own median over the clip give how far a region of *this* face, in *this* footage,
departs from its usual look; an output region departing from the input by more than that is something the
actor's face never shows — a defect. ``InputVariation`` measures it.

EVALUATION ONLY: nothing here runs in the product; it reads the product's tracked mesh to place the regions.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

REGIONS: tuple[str, ...] = (
    "forehead",
    "right cheek",
    "left cheek",
    "nose",
    "under nose",
    "upper lip",
    "chin",
    "right eye",
    "left eye",
)
"""The subject's right is the image's left (the mesh's convention)."""
STATS: tuple[str, ...] = ("dark", "median", "bright", "chroma")
"""Per region: L* of the darkest tenth, of the median and of the brightest tenth, and the a*b* median."""


def _judged() -> np.ndarray:
    judged = np.ones((len(REGIONS), len(STATS)), dtype=bool)
    for eye in ("right eye", "left eye"):
        judged[REGIONS.index(eye), STATS.index("dark")] = False
    judged.setflags(write=False)
    return judged


JUDGED: np.ndarray = _judged()
"""(len(REGIONS), len(STATS)) which statistics count in which region: all but the darkest tenth around each
eye (lashes, lid lines and liner: the identity's features, see the module's docstring)."""
WORK_PX = 112
"""The face is measured in a window scaled so its longer side is about this many pixels: regions of a few
hundred pixels each, and a cost per frame that does not grow with the face."""
GRAZING = 0.4
"""The regions at the face's sides (``SIDE_REGIONS``) leave out the skin the camera sees closer to edge-on than this
(the mesh normal's component toward the camera, under 0.4: more than 66 degrees from the line of sight) ...

There the mesh's outline runs a few pixels past a turned head's far cheek over the hair beside it, and the swap's
morph moves that outline to the identity's: a region reaching it held the input's cheek edge and hair and the
output's cheek — two parts of two faces (s18.mp4 x roop_source.jpg: the far cheek's darkest tenth 9-18 L* apart on
21 of 30 frames, within the bound on every frame with the morph off), and the input's own hair moving in and out of
it widened the bound (s18: 12.8 -> 8.0, the floor). A frontal face loses 1-4% of its cheeks' pixels, s18's far
cheek 18%."""
SIDE_REGIONS: tuple[str, ...] = ("right cheek", "left cheek", "right eye", "left eye")
"""... the cheeks and the eye rings, which a head turned from the camera brings to its silhouette."""
MIN_PIXELS = 24
"""A region with fewer visible pixels (turned away, out of the frame) is not measured in that frame."""


@functools.cache
def region_of_triangle() -> np.ndarray:
    """(T,) int8 per triangle of ``face_topology().all_triangles``: its index in ``REGIONS``, -1 for none.

    Placed on the canonical face (eye-corner distances, x from the subject's right to left, y down) by each
    triangle's centroid; skin triangles only: brows, lids and lash lines, the lips and the eye and mouth
    openings are the identity's own features (or the actor's kept ones), not skin that should look like
    the actor's under the actor's light."""
    from engines.face.topology import SKIN, face_topology

    topo = face_topology()
    tris = topo.all_triangles
    labels = topo.labels
    c = topo.canonical[tris].mean(axis=1)
    x, y = c[:, 0], c[:, 1]
    skin = labels == SKIN
    out = np.full(len(tris), -1, np.int8)

    def put(name: str, where: np.ndarray) -> None:
        out[(out < 0) & where] = REGIONS.index(name)

    not_brow = y > -0.52
    for name, cx in (("right eye", -0.35), ("left eye", 0.35)):
        ellipse = ((x - cx) / 0.27) ** 2 + ((y + 0.38) / 0.2) ** 2 < 1.0
        put(name, ellipse & not_brow & skin)
    # Each region keeps well inside the face's outline: at the outline the mesh overhangs the actor's hair
    # and the background, which a swap honestly paints over with skin (and a turned head's far cheek reaches
    # its silhouette: ``region_map`` leaves out the skin seen edge-on there, ``GRAZING``).
    put("forehead", (y < -0.76) & (y > -0.96) & (np.abs(x) < 0.45) & skin)
    put("nose", (np.abs(x) < 0.17) & (y > -0.45) & (y < 0.03) & skin)
    put("under nose", (np.abs(x) < 0.28) & (y >= 0.03) & (y < 0.15) & skin)
    put("upper lip", (np.abs(x) < 0.36) & (y >= 0.15) & (y < 0.42) & skin)
    put("chin", (np.abs(x) < 0.3) & (y > 0.8) & (y < 0.93) & skin)
    put("right cheek", (x < -0.3) & (x > -0.56) & (y > -0.22) & (y < 0.55) & skin)
    put("left cheek", (x > 0.3) & (x < 0.56) & (y > -0.22) & (y < 0.55) & skin)
    out.setflags(write=False)
    return out


@functools.cache
def _side_indices() -> np.ndarray:
    out = np.array([REGIONS.index(name) for name in SIDE_REGIONS], np.int8)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class RegionMap:
    """Where the regions are in one frame: a window of the frame scaled to ``WORK_PX``."""

    x0: int
    y0: int
    scale: float
    """Window pixels per frame pixel."""
    size: tuple[int, int]
    """(width, height) of the scaled window."""
    labels: np.ndarray
    """(h, w) int8: region index per pixel, -1 where none (or hidden by another part of the face)."""

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The window of ``image`` at the map's scale."""
        w, h = self.size
        m = np.array([[self.scale, 0.0, -self.scale * self.x0], [0.0, self.scale, -self.scale * self.y0]])
        flags = cv2.INTER_AREA if self.scale < 1.0 else cv2.INTER_LINEAR
        if self.scale < 1.0:  # INTER_AREA through warpAffine is bilinear: resize a plain crop instead
            x1 = min(image.shape[1], self.x0 + math.ceil(w / self.scale))
            y1 = min(image.shape[0], self.y0 + math.ceil(h / self.scale))
            patch = image[max(self.y0, 0) : y1, max(self.x0, 0) : x1]
            patch = cv2.copyMakeBorder(
                patch,
                max(-self.y0, 0),
                0,
                max(-self.x0, 0),
                0,
                cv2.BORDER_REPLICATE,
            )
            return cv2.resize(patch, (w, h), interpolation=flags)
        return cv2.warpAffine(image, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)

    def outline(self, region: int) -> list[np.ndarray]:
        """The contours of ``region`` in frame pixels (for drawing on contact sheets)."""
        mask = (self.labels == region).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return [c.reshape(-1, 2).astype(np.float32) / self.scale + (self.x0, self.y0) for c in contours]


def region_map(landmarks: np.ndarray, shape: tuple[int, ...], grazing: float = GRAZING) -> RegionMap:
    """The regions of the face whose 468-point mesh (frame pixels, with depth) is ``landmarks``; those at its sides
    (``SIDE_REGIONS``) only where the camera sees the skin less edge-on than ``grazing`` (``GRAZING``; 0: all of
    them)."""
    from engines.face.topology import face_topology, vertex_normals
    from engines.swap.raster import Window, rasterize

    lm = np.asarray(landmarks, np.float64)
    x0, y0 = int(math.floor(lm[:, 0].min())) - 2, int(math.floor(lm[:, 1].min())) - 2
    x1, y1 = int(math.ceil(lm[:, 0].max())) + 3, int(math.ceil(lm[:, 1].max())) + 3
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, shape[1]), min(y1, shape[0])
    side = max(x1 - x0, y1 - y0, 1)
    scale = WORK_PX / side
    w, h = max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale))
    small = np.empty_like(lm)
    small[:, 0] = (lm[:, 0] - x0 + 0.5) * scale - 0.5
    small[:, 1] = (lm[:, 1] - y0 + 0.5) * scale - 0.5
    small[:, 2] = lm[:, 2] * scale
    raster = rasterize(small, face_topology().all_triangles, Window(0, 0, w, h))
    table = np.append(region_of_triangle(), np.int8(-1))
    labels = table[raster.triangle]  # -1 (no triangle) indexes the appended -1
    if grazing > 0.0:
        # A surface facing the camera has a normal with negative z (``vertex_normals``).
        nz = raster.interpolate(vertex_normals(small, face_topology().all_triangles))[..., 2]
        at_side = np.isin(labels, _side_indices())
        labels = np.where(at_side & (nz > -grazing), np.int8(-1), labels).astype(np.int8)
    return RegionMap(x0, y0, scale, (w, h), labels)


def region_stats(image: np.ndarray, regions: RegionMap) -> np.ndarray:
    """(len(REGIONS), 5) float64: per region L* of the darkest tenth, median and brightest tenth, and median
    a*, b*, each minus the whole measured face's median; NaN for a region not seen well enough."""
    crop = regions.crop(image)
    lab = cv2.cvtColor(crop.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_BGR2LAB)
    labels = regions.labels
    out = np.full((len(REGIONS), 5), np.nan)
    face = labels >= 0
    if face.sum() < MIN_PIXELS:
        return out
    ref = np.median(lab[face], axis=0)
    for r in range(len(REGIONS)):
        px = lab[labels == r]
        if px.shape[0] < MIN_PIXELS:
            continue
        lum = px[:, 0]
        out[r, 0:3] = np.percentile(lum, (10, 50, 90)) - ref[0]
        out[r, 3:5] = np.median(px[:, 1:3], axis=0) - ref[1:3]
    return out


def deviation(stats_a: np.ndarray, stats_b: np.ndarray) -> np.ndarray:
    """(len(REGIONS), len(STATS)) absolute differences of two ``region_stats``: the three L* statistics and
    the a*b* distance (NaN where either did not measure the region, and where ``JUDGED`` leaves a statistic
    out)."""
    d = np.empty((stats_a.shape[0], len(STATS)))
    d[:, 0:3] = np.abs(stats_a[:, 0:3] - stats_b[:, 0:3])
    d[:, 3] = np.hypot(stats_a[:, 3] - stats_b[:, 3], stats_a[:, 4] - stats_b[:, 4])
    d[~JUDGED] = np.nan
    return d


@dataclass(frozen=True)
class FrameArtifact:
    """One frame's worst region."""

    value: float
    """Its deviation (L*a*b* units); NaN when no region was measured."""
    region: int
    """Its index in ``REGIONS`` (-1 when none)."""
    stat: int
    """Which statistic (index in ``STATS``) was worst there."""


def worst_region(dev: np.ndarray) -> FrameArtifact:
    """The region and statistic with the largest deviation of a ``deviation`` table."""
    if not np.isfinite(dev).any():
        return FrameArtifact(math.nan, -1, -1)
    flat = int(np.nanargmax(dev))
    r, s = divmod(flat, dev.shape[1])
    return FrameArtifact(float(dev[r, s]), r, s)


@dataclass
class ArtifactMeter:
    """Per frame, the output's worst region against the input (``worst``), and the input's own variation.

    ``add`` takes the input and output frames and the input's tracked mesh; the input's region statistics
    are kept, so its variation over the clip (each region against its own median over the clip, the same
    deviation) is known at the end (``input_variation``)."""

    frames: list[FrameArtifact] = field(default_factory=list)
    per_region: list[np.ndarray] = field(default_factory=list)
    """Each frame's (regions, stats) deviation table."""
    _inputs: list[np.ndarray] = field(default_factory=list, repr=False)

    def add(self, image_in: np.ndarray, image_out: np.ndarray, landmarks: np.ndarray) -> FrameArtifact:
        regions = region_map(landmarks, image_in.shape)
        s_in = region_stats(image_in, regions)
        s_out = region_stats(image_out, regions)
        dev = deviation(s_out, s_in)
        self._inputs.append(s_in)
        self.per_region.append(dev)
        found = worst_region(dev)
        self.frames.append(found)
        return found

    def values(self) -> np.ndarray:
        return np.array([f.value for f in self.frames], dtype=np.float64)

    def input_variation(self) -> np.ndarray:
        """Per frame, the input's own worst region against its median over the clip (same units)."""
        if not self._inputs:
            return np.zeros(0)
        stack = np.stack(self._inputs)  # (frames, regions, 5)
        median = np.nanmedian(stack, axis=0)
        return np.array([worst_region(deviation(s, median)).value for s in stack], dtype=np.float64)

    def worst_regions(self) -> dict[str, int]:
        """How many frames each region was the worst in."""
        counts: dict[str, int] = {}
        for f in self.frames:
            if f.region >= 0:
                counts[REGIONS[f.region]] = counts.get(REGIONS[f.region], 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class ArtifactReport:
    """The artifact measure of one clip x identity."""

    p50: float
    p95: float
    p99: float
    max: float
    """Of the frames' worst-region deviation (L*a*b* units)."""
    bound: float
    """The bound it is judged against (``artifact_bound``)."""
    within: float
    """Share of measured frames whose worst region is within ``bound`` (0..1)."""
    input_p99: float
    """The input's own variation (its worst region against its clip median), 99th percentile over frames."""
    worst: dict[str, int]
    """Frames per worst region, most frequent first."""

    def to_dict(self) -> dict[str, object]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


BOUND_FLOOR = 8.0
"""Least bound (L*a*b* units): on a still clip the actor's face hardly varies, and a region's statistics
differ by a few units between two different people's skin under the same light anyway (a ruddier cheek,
a paler forehead: ``tests/benchmarks/test_artifacts.py`` measures the shared photos)."""
BOUND_INPUT_FACTOR = 1.5
"""The bound is this many times the input's own variation at its 99th percentile ..."""


def artifact_bound(input_p99: float) -> float:
    """The bound an output's worst region is held to, from the input's own variation over the clip."""
    if not math.isfinite(input_p99):
        return BOUND_FLOOR
    return max(BOUND_FLOOR, BOUND_INPUT_FACTOR * input_p99)


def artifact_report(meter: ArtifactMeter) -> ArtifactReport:
    v = meter.values()
    v = v[np.isfinite(v)]
    var = meter.input_variation()
    var = var[np.isfinite(var)]
    input_p99 = float(np.percentile(var, 99)) if var.size else math.nan
    bound = artifact_bound(input_p99)
    if not v.size:
        return ArtifactReport(math.nan, math.nan, math.nan, math.nan, bound, math.nan, input_p99, {})
    p50, p95, p99 = (float(x) for x in np.percentile(v, (50, 95, 99)))
    return ArtifactReport(p50, p95, p99, float(v.max()), bound, float(np.mean(v <= bound)), input_p99,
                          meter.worst_regions())  # fmt: skip
