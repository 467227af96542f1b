"""Facesets: the faces a swap model trains on, cut from footage in the framing the DFM loader uses.

A faceset is a folder a user can look through and prune by hand (DeepFaceLab's workflow: extract, then
delete the faces that are wrong before training):

    faceset.json     what was extracted: resolution, coverage, sources, counts of kept and refused faces
                     with the reason, and one record per kept face (file, source, frame, pose, sharpness)
    landmarks.npy    (N, 468, 2) float32: each kept face's mesh in crop pixels, in ``faces`` order
    faces/*.png      the face crops, BGR, ``resolution`` px square, in the DFM whole-face framing
                     (``engines.swap.align.align_mesh`` at ``coverage`` face widths)
    masks/*.png      their masks from the mesh: blue = face oval, green = eye openings, red = mouth (outer
                     lip contour), anti-aliased polygons (each pixel: its share inside, 0..255)
    contact_sheet.png  a sample of the kept faces with their face outline, and the counts

Every frame is tracked with stageswap's own tracker (YuNet + the 468-point mesh); the crop uses the raw
(unsmoothed) mesh of that frame, so a crop is exact for its frame instead of lagging behind a moving head.
Faces are refused, the reason counted, when there is no face, several faces and no ``face`` choice, the
head is turned too far for the mesh to be trusted (``extreme pose``), the mesh is unsure (``occluded``),
the face runs out of the frame, it is a repeat of the previous kept frame (``duplicate``), or it is much
blurrier than the rest of its clip (``blur``: motion blur, focus pulls).

``load_faceset`` reads a faceset back at a training resolution, skipping faces whose PNG a user deleted.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.errors import InputError, OutputError
from engines.face.topology import FACE_OVAL, LEFT_EYE, LIPS_OUTER, RIGHT_EYE
from engines.swap.align import Alignment, align_mesh

FORMAT = "stageswap-faceset"
VERSION = 1
INDEX_FILE = "faceset.json"
LANDMARKS_FILE = "landmarks.npy"
SHEET_FILE = "contact_sheet.png"
FACES_DIR, MASKS_DIR = "faces", "masks"

TRAIN_COVERAGE = 1.8
"""Crop side in face widths for facesets made to train on: the face oval fills ~3/4 of the crop's height
(more pixels on the face than DeepFaceLive's 2.2 at the same resolution) with enough margin for the
paste's feathered border."""

MASK_FACE, MASK_EYES, MASK_MOUTH = 0, 1, 2
"""Channels of a mask PNG (OpenCV's B, G, R)."""

REASONS = ("no face", "several faces", "extreme pose", "occluded", "out of frame", "duplicate", "blur")
"""Why a frame gave no face, in the order the checks run."""

_SUBPIXEL_BITS = 4
"""``cv2.fillPoly`` shift: polygon vertices at 1/16 px."""
_SUPERSAMPLE = 4
"""Masks are drawn at 4x and averaged down (anti-aliased edges)."""


@dataclass(frozen=True)
class FacesetConfig:
    resolution: int = 256
    """Side of the stored crops (px). Training reads them at its own resolution, at most this."""
    coverage: float = TRAIN_COVERAGE
    max_yaw_deg: float = 60.0
    """Heads turned further than this are refused: the mesh (and so the crop and masks) is unreliable."""
    max_pitch_deg: float = 45.0
    min_presence: float = 0.9
    """Mesh face-presence probability below which a face counts as occluded (a hand, a prop, hair)."""
    max_outside: float = 0.03
    """Share of the face oval's area allowed outside the frame."""
    duplicate_diff: float = 3.0
    """A face is a duplicate (a frozen or repeated frame) when the frame, cut where the previous kept face
    of the same clip was cut, differs from that face's 32 px grey thumbnail by less than this many levels
    (0..255) everywhere; a talking head's consecutive frames differ by 6 or more somewhere (mouth, eyes).
    Cutting both with the same alignment keeps the mesh's sub-pixel jitter out of the comparison."""
    blur_ratio: float = 0.4
    """A face of a clip whose sharpness is below this share of the clip's median sharpness is refused."""
    blur_min_faces: int = 10
    """Clips with fewer kept faces are not judged for blur (the median needs a few faces)."""
    every: int = 1
    """Take every n-th frame of a clip."""

    def __post_init__(self) -> None:
        if not 64 <= self.resolution <= 1024:
            raise InputError(f"faceset resolution must be 64..1024 px, got {self.resolution}")
        if not 1.0 <= self.coverage <= 4.0:
            raise InputError(f"coverage must be 1..4 face widths, got {self.coverage}")
        if self.every < 1:
            raise InputError(f"--every must be at least 1, got {self.every}")


@dataclass(frozen=True)
class SourceFrame:
    """One picture to extract from: a clip's frame or a photo."""

    image: np.ndarray
    """BGR uint8."""
    source: str
    """How the faceset names where it came from (a file name)."""
    index: int
    """Frame number in its clip (0 for a photo)."""
    time_s: float
    still: bool = False
    """A photo: tracked on its own (nothing carried over from the previous picture)."""


@dataclass(frozen=True)
class FaceRecord:
    file: str
    source: str
    frame: int
    time_s: float
    pose_deg: tuple[float, float, float]
    sharpness: float

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "source": self.source,
            "frame": self.frame,
            "time_s": round(self.time_s, 4),
            "pose_deg": [round(v, 2) for v in self.pose_deg],
            "sharpness": round(self.sharpness, 3),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FaceRecord:
        yaw, pitch, roll = (float(v) for v in obj["pose_deg"])
        return cls(
            str(obj["file"]), str(obj["source"]), int(obj["frame"]), float(obj["time_s"]), (yaw, pitch, roll),
            float(obj["sharpness"]),
        )  # fmt: skip


@dataclass
class ExtractReport:
    """What an extraction did: frames seen, faces kept, refusals by reason."""

    frames: int = 0
    kept: int = 0
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    sources: list[str] = field(default_factory=list)

    def summary(self) -> str:
        why = ", ".join(f"{n} {r}" for r, n in self.refused.items() if n)
        return f"{self.kept} of {self.frames} frames kept" + (f"; refused: {why}" if why else "")


def face_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8: face oval, eye openings, mouth (outer lips) of a mesh in crop pixels, each
    pixel's share of its area inside the polygon (0..255; drawn at 4x and averaged down, so the edge sits
    where the polygon's is, not half a pixel outside as a plain ``fillPoly`` draws it)."""
    lm = np.asarray(landmarks, dtype=np.float64)[:, :2]
    k = _SUPERSAMPLE
    fine = (lm + 0.5) * k - 0.5  # pixel centres of the 4x grid
    scale = float(1 << _SUBPIXEL_BITS)
    out = np.zeros((size, size, 3), np.uint8)

    def fill(channel: int, *contours: Sequence[int]) -> None:
        plane = np.zeros((size * k, size * k), np.uint8)
        polys = [np.round(fine[list(c)] * scale).astype(np.int32) for c in contours]
        cv2.fillPoly(plane, polys, 255, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        out[..., channel] = cv2.resize(plane, (size, size), interpolation=cv2.INTER_AREA)

    fill(MASK_FACE, FACE_OVAL)
    fill(MASK_EYES, RIGHT_EYE, LEFT_EYE)
    fill(MASK_MOUTH, LIPS_OUTER)
    return out


def sharpness(crop: np.ndarray, face_mask: np.ndarray) -> float:
    """Detail inside the face: variance of the Laplacian of the grey crop at 128 px (resolution-free)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    grey = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32)
    mask = cv2.resize(face_mask, (128, 128), interpolation=cv2.INTER_AREA) > 250
    mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    return float(lap[mask].var()) if mask.sum() > 50 else 0.0


def _thumb(crop: np.ndarray) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def _outside_share(landmarks: np.ndarray, width: int, height: int) -> float:
    """Share of the face oval's area outside the frame (0: all inside)."""
    poly = np.asarray(landmarks, np.float64)[list(FACE_OVAL), :2]
    whole = abs(cv2.contourArea(poly.astype(np.float32)))
    if whole <= 1e-6:
        return 1.0
    clipped = poly.copy()
    clipped[:, 0] = np.clip(clipped[:, 0], 0, width - 1)
    clipped[:, 1] = np.clip(clipped[:, 1], 0, height - 1)
    inside = abs(cv2.contourArea(clipped.astype(np.float32)))
    return max(0.0, 1.0 - inside / whole)


def _face_index(faces: Sequence[Any], face: str | int | None) -> int | None:
    """Which of several faces to keep (``face``: None, 'largest', or N counted from 0 = the largest)."""
    if face is None:
        return 0 if len(faces) == 1 else None
    if face == "largest":
        return 0
    index = int(face)
    return index if index < len(faces) else None


def check_face_choice(face: str | int | None) -> str | int | None:
    """``face`` as given on the command line, checked (InputError otherwise)."""
    if face is None or face == "largest":
        return face
    if isinstance(face, int) and not isinstance(face, bool) and face >= 0:
        return face
    if isinstance(face, str) and face.strip().isdigit():
        return int(face)
    raise InputError(f"--face must be 'largest' or a number (0 = the largest face), got {face!r}")


def usable_face(
    image: np.ndarray, faces: Sequence[Any], face: str | int | None, config: FacesetConfig
) -> tuple[Any | None, str | None]:
    """The face of a frame to learn a person from (``TrackedFace``s in, any order), or None and the reason
    (``REASONS``): the one face or the ``face`` chosen, not turned too far, not occluded, inside the frame.
    Shared with performer enrollment (``stageswap performers add``)."""
    if not faces:
        return None, "no face"
    ordered = sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    index = _face_index(ordered, face)
    if index is None:
        return None, "several faces"
    chosen = ordered[index]
    yaw, pitch, _ = chosen.pose_deg
    if abs(yaw) > config.max_yaw_deg or abs(pitch) > config.max_pitch_deg:
        return None, "extreme pose"
    if chosen.presence < config.min_presence:
        return None, "occluded"
    h, w = image.shape[:2]
    if _outside_share(np.asarray(chosen.raw_landmarks, np.float64), w, h) > config.max_outside:
        return None, "out of frame"
    return chosen, None


class FacesetWriter:
    """Writes a faceset face by face into a hidden folder beside ``out_dir``; ``finish`` drops the blurry
    faces, writes the index and puts the folder in place (replacing a faceset there only then), ``abort``
    removes it: a failed or interrupted extraction never leaves half a faceset, nor loses the old one."""

    def __init__(self, out_dir: Path, config: FacesetConfig, replace: bool = False) -> None:
        self.final = Path(out_dir)
        self.config = config
        if self.final.exists():
            if not self.final.is_dir():
                raise InputError(f"{self.final} exists and is not a folder")
            if (self.final / INDEX_FILE).exists():
                if not replace:
                    raise InputError(f"{self.final} holds a faceset already; choose another --out or pass --replace")
            elif any(self.final.iterdir()):
                raise InputError(f"{self.final} is a folder with other files in it, not a faceset: choose a new --out")
        self.dir = self.final.parent / f".{self.final.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            for sub in (FACES_DIR, MASKS_DIR):
                (self.dir / sub).mkdir(parents=True)
        except OSError as exc:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise OutputError(f"cannot create faceset folder {self.final}: {exc.strerror or exc}") from exc
        self.report = ExtractReport()
        self.records: list[FaceRecord] = []
        self.landmarks: list[np.ndarray] = []
        self._last: dict[str, tuple[Alignment, np.ndarray]] = {}
        """Per source: the last kept face's alignment and thumbnail."""

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def refuse(self, reason: str) -> str:
        self.report.refused[reason] += 1
        return reason

    def add(self, frame: SourceFrame, faces: Sequence[Any], face: str | int | None = None) -> str | None:
        """Judge one frame's tracked faces (``TrackedFace``, largest first or not) and keep one; the reason
        when none is kept."""
        cfg = self.config
        self.report.frames += 1
        if frame.source not in self.report.sources:
            self.report.sources.append(frame.source)
        chosen, reason = usable_face(frame.image, faces, face, cfg)
        if chosen is None:
            return self.refuse(reason or "no face")
        yaw, pitch, roll = chosen.pose_deg
        raw = np.asarray(chosen.raw_landmarks, np.float64)
        last = self._last.get(frame.source)
        if last is not None and float(np.abs(_thumb(last[0].crop(frame.image)) - last[1]).max()) < cfg.duplicate_diff:
            return self.refuse("duplicate")
        alignment: Alignment = align_mesh(raw, cfg.resolution, cfg.coverage)
        crop = alignment.crop(frame.image)
        points = alignment.to_crop(raw[:, :2]).astype(np.float32)
        masks = face_masks(points, cfg.resolution)
        name = f"{len(self.records):06d}.png"
        self._write(self.dir / FACES_DIR / name, crop)
        self._write(self.dir / MASKS_DIR / name, masks)
        self._last[frame.source] = (alignment, _thumb(crop))
        self.records.append(
            FaceRecord(
                name, frame.source, frame.index, frame.time_s, (yaw, pitch, roll),
                sharpness(crop, masks[..., MASK_FACE]),
            )
        )  # fmt: skip
        self.landmarks.append(points)
        self.report.kept += 1
        return None

    def _write(self, path: Path, image: np.ndarray) -> None:
        try:
            ok, data = cv2.imencode(".png", image)
            if not ok:
                raise OSError("PNG encoding failed")
            path.write_bytes(data.tobytes())
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc} (disk full?)") from exc

    def _drop_blurry(self) -> None:
        cfg = self.config
        by_source: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            by_source.setdefault(r.source, []).append(i)
        drop: set[int] = set()
        for indices in by_source.values():
            if len(indices) < cfg.blur_min_faces:
                continue
            median = float(np.median([self.records[i].sharpness for i in indices]))
            drop.update(i for i in indices if self.records[i].sharpness < cfg.blur_ratio * median)
        if not drop:
            return
        for i in sorted(drop):
            for sub in (FACES_DIR, MASKS_DIR):
                (self.dir / sub / self.records[i].file).unlink(missing_ok=True)
        self.records = [r for i, r in enumerate(self.records) if i not in drop]
        self.landmarks = [p for i, p in enumerate(self.landmarks) if i not in drop]
        self.report.refused["blur"] += len(drop)
        self.report.kept -= len(drop)

    def finish(self) -> ExtractReport:
        """Drop blurry faces, write the index, landmarks and contact sheet; the report."""
        self._drop_blurry()
        cfg = self.config
        index = {
            "format": FORMAT,
            "version": VERSION,
            "resolution": cfg.resolution,
            "coverage": cfg.coverage,
            "sources": self.report.sources,
            "frames": self.report.frames,
            "kept": self.report.kept,
            "refused": self.report.refused,
            "faces": [r.to_json() for r in self.records],
        }
        landmarks = np.stack(self.landmarks) if self.landmarks else np.zeros((0, 468, 2), np.float32)
        try:
            np.save(self.dir / LANDMARKS_FILE, landmarks.astype(np.float32))
            sheet = contact_sheet(self.dir, self.records, landmarks, self.report)
            cv2.imwrite(str(self.dir / SHEET_FILE), sheet)
            (self.dir / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")
            self._put_in_place()
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write faceset {self.final}: {exc.strerror or exc} (disk full?)") from exc
        return self.report

    def _put_in_place(self) -> None:
        old = self.final.parent / f".{self.final.name}.old-{uuid.uuid4().hex[:8]}"
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.dir, self.final)
        self.dir = self.final
        shutil.rmtree(old, ignore_errors=True)


def contact_sheet(
    folder: Path, records: Sequence[FaceRecord], landmarks: np.ndarray, report: ExtractReport, count: int = 48
) -> np.ndarray:
    """A grid of up to ``count`` kept faces (evenly through the set) with their face outline, under a line
    with the counts: what a user looks at before training."""
    thumb, cols = 112, 8
    picks: list[int] = (
        np.unique(np.linspace(0, len(records) - 1, min(count, len(records))).round().astype(int)).tolist()
        if records
        else []
    )
    rows = max(1, math.ceil(len(picks) / cols))
    header = 40
    sheet = np.full((header + rows * thumb, cols * thumb, 3), 32, np.uint8)
    for k, i in enumerate(picks):
        img = cv2.imread(str(folder / FACES_DIR / records[i].file))
        if img is None:
            continue
        s = thumb / img.shape[0]
        img = cv2.resize(img, (thumb, thumb), interpolation=cv2.INTER_AREA)
        poly = (landmarks[i][list(FACE_OVAL)] * s).round().astype(np.int32)
        cv2.polylines(img, [poly], True, (80, 200, 80), 1, cv2.LINE_AA)
        y, x = header + (k // cols) * thumb, (k % cols) * thumb
        sheet[y : y + thumb, x : x + thumb] = img
    cv2.putText(
        sheet, report.summary()[: cols * thumb // 7], (6, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1
    )
    return sheet


def extract(
    frames: Iterable[SourceFrame],
    track: Callable[[SourceFrame], Sequence[Any]],
    out_dir: Path,
    config: FacesetConfig | None = None,
    face: str | int | None = None,
    replace: bool = False,
    progress: Callable[[SourceFrame, str | None], None] | None = None,
) -> ExtractReport:
    """Extract a faceset from ``frames`` into ``out_dir``; ``track(frame)`` gives its ``TrackedFace``s
    (the caller owns the tracker, and resets it for photos). ``progress(frame, reason)`` after each frame."""
    config = config or FacesetConfig()
    face = check_face_choice(face)
    writer = FacesetWriter(out_dir, config, replace)
    try:
        for frame in frames:
            if not frame.still and frame.index % config.every:
                continue
            reason = writer.add(frame, track(frame), face)
            if progress is not None:
                progress(frame, reason)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


# ---- reading a faceset back -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Faceset:
    """A faceset in memory at one resolution."""

    path: Path
    images: np.ndarray
    """(N, R, R, 3) uint8 BGR."""
    masks: np.ndarray
    """(N, R, R, 3) uint8: face, eyes, mouth."""
    landmarks: np.ndarray
    """(N, 468, 2) float32 in pixels of this resolution."""
    records: tuple[FaceRecord, ...]
    coverage: float
    stored_resolution: int
    merged_from: tuple[Path, ...] = ()
    """The faceset folders merged into this one (empty for one folder, ``path``)."""

    @property
    def folders(self) -> tuple[Path, ...]:
        """Every faceset folder this holds, in order: what a resumed training loads again."""
        return self.merged_from or (self.path,)

    def __len__(self) -> int:
        return len(self.records)


def read_index(folder: Path) -> dict[str, Any]:
    """A faceset's ``faceset.json`` (InputError when the folder is not a faceset)."""
    path = Path(folder) / INDEX_FILE
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{folder} is not a faceset (no {INDEX_FILE}); make one: stageswap faceset extract CLIP --out {folder}"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read faceset {path}: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(f"{path} is not a stageswap faceset index")
    if obj.get("version") != VERSION:
        raise InputError(f"{path} is faceset version {obj.get('version')!r}; this stageswap reads {VERSION}")
    return obj


def iter_present(folder: Path, index: dict[str, Any]) -> Iterator[tuple[int, FaceRecord]]:
    """(position in the index, record) of every face whose PNG and mask are still there."""
    for i, obj in enumerate(index["faces"]):
        rec = FaceRecord.from_json(obj)
        if (folder / FACES_DIR / rec.file).is_file() and (folder / MASKS_DIR / rec.file).is_file():
            yield i, rec


def load_faceset(folder: str | os.PathLike[str], resolution: int | None = None) -> Faceset:
    """Read a faceset at ``resolution`` (default: as stored); InputError when it is empty, damaged, or
    stored smaller than asked (training never upsamples its data)."""
    folder = Path(folder)
    index = read_index(folder)
    stored = int(index["resolution"])
    res = stored if resolution is None else int(resolution)
    if res > stored:
        raise InputError(
            f"faceset {folder} was extracted at {stored} px, smaller than the training resolution {res} px; "
            f"extract it again with --resolution {res} (or more)"
        )
    all_points = np.load(folder / LANDMARKS_FILE) if (folder / LANDMARKS_FILE).is_file() else None
    present = list(iter_present(folder, index))
    if not present:
        refused = ", ".join(f"{n} {r}" for r, n in index.get("refused", {}).items() if n) or "none"
        raise InputError(
            f"faceset {folder} has no faces ({index.get('frames', 0)} frames, refused: {refused}); "
            "extract from other footage"
        )
    if all_points is None or len(all_points) != len(index["faces"]):
        raise InputError(f"faceset {folder}: {LANDMARKS_FILE} is missing or does not match {INDEX_FILE}")
    images = np.empty((len(present), res, res, 3), np.uint8)
    masks = np.empty((len(present), res, res, 3), np.uint8)
    for k, (_, rec) in enumerate(present):
        img = cv2.imread(str(folder / FACES_DIR / rec.file), cv2.IMREAD_COLOR)
        msk = cv2.imread(str(folder / MASKS_DIR / rec.file), cv2.IMREAD_COLOR)
        if img is None or msk is None or img.shape[:2] != (stored, stored) or msk.shape[:2] != (stored, stored):
            raise InputError(f"faceset {folder}: {rec.file} is not a {stored} px face and mask (edited?)")
        interp = cv2.INTER_AREA
        images[k] = img if res == stored else cv2.resize(img, (res, res), interpolation=interp)
        masks[k] = msk if res == stored else cv2.resize(msk, (res, res), interpolation=interp)
    scale = res / stored
    # Crop pixel centres: p_res = (p + 0.5) * scale - 0.5
    points = (all_points[[i for i, _ in present]].astype(np.float32) + 0.5) * scale - 0.5
    return Faceset(folder, images, masks, points, tuple(r for _, r in present), float(index["coverage"]), stored)


def merge_facesets(sets: Sequence[Faceset]) -> Faceset:
    """Several facesets of one person (loaded at one resolution) as one; InputError when their framings differ."""
    if not sets:
        raise InputError("no faceset given")
    if len(sets) == 1:
        return sets[0]
    first = sets[0]
    for other in sets[1:]:
        if abs(other.coverage - first.coverage) > 1e-6:
            raise InputError(
                f"facesets {first.path} and {other.path} were cut at different coverages ({first.coverage} and "
                f"{other.coverage}); extract them with the same --coverage"
            )
    return Faceset(
        first.path,
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.masks for s in sets]),
        np.concatenate([s.landmarks for s in sets]),
        tuple(r for s in sets for r in s.records),
        first.coverage,
        min(s.stored_resolution for s in sets),
        tuple(folder for s in sets for folder in s.folders),
    )
