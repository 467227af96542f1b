"""Enrolled identities: the people a face can be swapped to, kept on disk in the data directory.

An identity is a directory ``<data>/identities/<name>/`` holding

- ``identity.json``: format and version, name, creation date (UTC, ISO 8601), each photo's sha256, size,
  face box, head pose and 468 landmarks, the identity's canonical face shape (for the geometry morph),
  the light estimated on each photo, warnings, whether it is monochrome (black-and-white photos only; absent
  in identities enrolled before it was recorded: colour), and the sha256 of each data file below;
- ``texture.png``: the face unwrapped into the mesh's texture space (BGR) with the photos' coverage in
  the alpha channel;
- ``shading.npy``: float16 (T, T, 3) linear BGR, the photos' own lighting per texel. Kept apart from the
  texture so the albedo (texture / shading, what the relighting renders under the stage's light) can be
  recomputed, or the de-lighting changed, without asking for the photos again.

A directory is written under a temporary name and renamed into place, so a crash never leaves half an
identity; loading checks every file against the sha256 recorded at enrollment, so a truncated or edited
file is reported as corrupted (``IdentityCorruptError``) instead of rendering garbage, and the service
goes on. Loaded identities are cached per store and reloaded when their files change.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import io
import json
import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.errors import InputError
from engines.face.detect import Detection
from engines.face.landmarks import NUM_LANDMARKS
from engines.identity.cleanup import SHADING_RANGE
from engines.identity.enroll import (
    EnrollConfig,
    FaceAnalyser,
    FaceChoice,
    PhotoFace,
    build_texture,
    canonical_shape,
    merged_shape,
)
from engines.identity.photos import Photo, PhotoSource, load_photo
from engines.paths import StampedCache, check_name, inside, record_folders

FORMAT = "stageswap-identity"
VERSION = 2
"""2: coverage saturates at a fair view (``engines.identity.enroll.build_texture``)."""
MAX_PHOTOS = 10
"""Most photos one enrollment takes (more add little: they only fill texels already seen)."""
META_FILE, TEXTURE_FILE, SHADING_FILE = "identity.json", "texture.png", "shading.npy"
_MAX_META_BYTES = 8 * 1024 * 1024
_LUMA_BGR = np.array([0.0722, 0.7152, 0.2126], dtype=np.float32)
BROAD_RANGE = (0.5, 2.0)
"""The de-lighting divides by the photo's broad level (one side of the face lit more than the other) limited
to this range around its median on the face (``Identity.albedo``; its local detail: ``SHADING_RANGE``)."""
BROAD_SIGMA = 1.0 / 12.0
"""The broad level is the shading blurred over this share of the texture (about a fifth of the face)."""
OUTLINE_BRIGHTER = 1.15
"""Near the face's outline the albedo is at most this much brighter than the skin inside beside it
(``_limit_outline``; the clean-up takes skin brighter than its surroundings by 1.2 for a highlight)."""
OUTLINE_BAND = (1.0 / 24.0, 1.0 / 10.0)
"""... fully within the first of these shares of the texture's size from the layout's outline, not at all
beyond the second (a smooth ramp between); the skin inside is measured beyond the second."""
OUTLINE_PRIOR = 0.05
"""... the weight of the face's median skin level in the skin's level beside the outline (a share of the blur's
kernel: a texel with skin all around has weight 1 of its own)."""
OUTLINE_SIDE_X = (0.35, 0.5)
"""... along the sides of the face: from the first of these distances from its middle (eye-corner distances;
the outer eye corners are at 0.5), fully from the second."""


LOWER_BRIGHTER = 1.1
"""Below the mouth the albedo's broad level (relative to the cheeks') is at most this much above the photo's own
there (``_limit_lower_face``) ..."""
LOWER_Y = (0.45, 0.7)
"""... from the first of these heights (canonical, eye-corner distances, y down; the mouth corners are at 0.44),
fully from the second."""


class IdentityCorruptError(InputError):
    """An enrolled identity's files are damaged (truncated, edited, unreadable): re-enroll it."""


@dataclass(frozen=True)
class IdentityInfo:
    """What ``stageswap identities list`` and ``GET /api/identities`` show about one identity."""

    name: str
    created: str
    """UTC, ISO 8601."""
    photos: int
    photo_sha256: tuple[str, ...]
    texture_size: int
    warnings: tuple[str, ...] = ()
    monochrome: bool = False
    """Enrolled from black-and-white (or toned) photos only: the swap takes the actor's skin colour."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created": self.created,
            "photos": self.photos,
            "photo_sha256": list(self.photo_sha256),
            "texture_size": self.texture_size,
            "warnings": list(self.warnings),
            "monochrome": self.monochrome,
        }


@dataclass(frozen=True, eq=False)
class Identity:
    """A loaded identity, ready to render (arrays are read-only)."""

    info: IdentityInfo
    texture: np.ndarray
    """(T, T, 3) uint8 BGR, sRGB: the photos' pixels in texture space, their lighting included."""
    coverage: np.ndarray
    """(T, T) float32 0..1: how well the photos saw each texel, hair over the face counting as unseen."""
    shading: np.ndarray | None
    """(T, T, 3) float32 linear BGR: the photos' lighting per texel; None if it could not be measured."""
    canonical: np.ndarray
    """(468, 3) float32: the identity's frontal face shape (``engines.face.topology.frontalise`` units)."""
    landmarks: tuple[np.ndarray, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def monochrome(self) -> bool:
        """A grey texture (black-and-white photos): its colour comes from the actor's skin when swapped."""
        return self.info.monochrome

    @functools.cached_property
    def albedo(self) -> np.ndarray:
        """(T, T, 3) float32 linear BGR, about 1 on average skin: the texture with its photos' light divided out.

        This is what the relighting renders as ``albedo x E_target(n)``. Without a shading it is the linear
        texture divided by its mean over the well-seen skin (the photos' light left in).
        """
        from engines.light.sh import srgb_to_linear

        lin = srgb_to_linear(self.texture.astype(np.float32) / 255.0).astype(np.float32)
        if self.shading is not None:
            # Only the shading's brightness is divided out, with its mean colour: the colour an SH fit gives
            # each direction is the least certain part of it (a yellow chin, a blue forehead).
            seen = self.coverage > 0.5
            region = self.shading[seen] if seen.any() else self.shading.reshape(-1, 3)
            luma = self.shading @ _LUMA_BGR
            tint = np.median(region / np.maximum(region @ _LUMA_BGR, 1e-6)[:, None], axis=0)
            # The photo's light is divided out in two parts. Its broad level (a key lamp on one side: one
            # cheek twice as bright as the other) fully, within BROAD_RANGE, or that side of the face would
            # stay pale (or dark) under every stage light. Its local detail only within SHADING_RANGE: where
            # the light model is least right (under the nose, in creases: ambient occlusion and bounce light
            # it has no terms for) dividing by all of it over-brightens.
            typical = float(np.median(region @ _LUMA_BGR))
            broad = _broad_level(luma, self.coverage)
            detail = np.clip(luma / np.maximum(broad, 1e-6), SHADING_RANGE[0], SHADING_RANGE[1])
            broad = np.clip(broad, typical * BROAD_RANGE[0], typical * BROAD_RANGE[1])
            # The skin's own colour stays as the photo shows it, blush included: dividing broad colour casts
            # out as well (a lamp's tint, heavy blush) turned warm shadows grey-green and cost likeness
            # (benchmarks/eval_quality.py, BENCHMARKS.md: two of the 21 clip x identity pairs fewer at 0.45).
            out = lin / np.maximum((broad * detail)[..., None] * tint, 1e-3)
            out = _limit_outline(out, self.coverage)
            out = _limit_lower_face(out, lin, self.coverage)
        else:
            seen = self.coverage > 0.5
            mean = lin[seen].mean(axis=0) if seen.any() else lin.reshape(-1, 3).mean(axis=0)
            out = lin / np.maximum(mean, 1e-3)
        out = np.clip(out, 0.0, 8.0).astype(np.float32)
        out.setflags(write=False)
        return out


class IdentityStore:
    """The identities in one directory (``data_dir() / "identities"``).

    Safe to share between threads: enrollment and removal are serialised, loads are cached. The face
    detector and mesh for enrollment are loaded on the first ``enroll`` (from ``models_dir`` through the
    model registry) unless an ``analyser`` is given.
    """

    def __init__(
        self,
        root: Path,
        models_dir: str | os.PathLike[str] | None = None,
        analyser: FaceAnalyser | None = None,
        config: EnrollConfig | None = None,
    ) -> None:
        self.root = Path(root)
        self.models_dir = models_dir
        self.config = config or (analyser.config if analyser is not None else EnrollConfig())
        self._analyser = analyser
        self._lock = threading.Lock()
        self._cache: StampedCache[Identity] = StampedCache()

    # ------------------------------------------------------------------------------------------ queries

    def list(self) -> builtins.list[IdentityInfo]:
        """Every identity, by name; a corrupted one is listed with a warning saying so (never raises)."""
        out = []
        for path in record_folders(self.root):
            try:
                check_name(path.name)
            except InputError:
                continue
            try:
                out.append(_info_from_meta(path.name, _read_meta(path)))
            except IdentityCorruptError as exc:
                out.append(IdentityInfo(path.name, "", 0, (), 0, (f"corrupted: {exc}",)))
        return out

    def exists(self, name: str) -> bool:
        return self._dir(name).is_dir()

    def load(self, name: str) -> Identity:
        """The identity called ``name``; InputError if there is none, IdentityCorruptError if damaged."""
        path = self._dir(name)
        meta_path = path / META_FILE
        try:
            st = meta_path.stat()
        except OSError:
            if path.is_dir():
                raise IdentityCorruptError(
                    f"identity {name!r} is corrupted: {META_FILE} is missing; {_reenroll(name)}"
                ) from None
            known = ", ".join(i.name for i in self.list()) or "none"
            raise InputError(f"no identity named {name!r} (enrolled: {known})") from None
        return self._cache.get(name, st, lambda: _load_identity(name, path))

    # ------------------------------------------------------------------------------------------ changes

    def enroll(
        self,
        name: str,
        photos: Sequence[PhotoSource],
        face: FaceChoice | Sequence[FaceChoice] = None,
        replace: bool = False,
        lead_first: bool = False,
    ) -> IdentityInfo:
        """Enroll ``name`` from one or more photos of the same person.

        ``face``: None (the photo must show one face), ``"largest"``, or an index into the photo's faces
        ordered by size, 0 = the largest (``find_faces``' order); or a list of those, one per photo (a group
        photo beside portraits). ``lead_first``: the first photo leads the merge, the others fill in what it
        did not see (frames picked from a clip: ``engines.identity.enroll.build_texture``), and the shape follows
        (``engines.identity.enroll.merged_shape``). Raises InputError
        with the reason for anything unusable.
        """
        check_name(name, "identity name")
        if isinstance(photos, str | bytes | bytearray | os.PathLike | np.ndarray):
            photos = [photos]
        if not photos:
            raise InputError("enrollment needs at least one photo")
        if len(photos) > MAX_PHOTOS:
            raise InputError(f"at most {MAX_PHOTOS} photos per identity, got {len(photos)}")
        if not replace and self.exists(name):
            raise InputError(f"identity {name!r} already exists; use --replace to enroll it again")
        loaded = [load_photo(src, f"photo {i + 1}") for i, src in enumerate(photos)]
        choices = _face_per_photo(face, len(loaded))
        with self._lock:
            analyser = self._get_analyser()
            faces = [analyser.analyse(p, choice) for p, choice in zip(loaded, choices, strict=True)]
        texset = build_texture(
            faces,
            self.config.texture_size,
            cleanup=self.config.cleanup,
            mirror=self.config.mirror,
            lead_first=lead_first,
        )
        warnings = [w for f in faces for w in f.warnings]
        if texset.shading is None:
            warnings.append("the photos' lighting could not be measured: the texture keeps it")
        created = datetime.now(UTC).replace(microsecond=0).isoformat()
        if lead_first and texset.point_weights is not None:  # the shape follows the lead-led texture
            shape = merged_shape(faces, texset.point_weights, grin_lip=self.config.grin_lip)
        else:
            shape = canonical_shape(faces, grin_lip=self.config.grin_lip)
        meta = _make_meta(
            name,
            created,
            faces,
            texset.light_sh,
            shape,
            warnings,
            self.config,
        )
        meta["monochrome"] = texset.monochrome
        with self._lock:
            if not replace and self.exists(name):
                raise InputError(f"identity {name!r} already exists; use --replace to enroll it again")
            self._write(name, meta, texset.texture, texset.coverage, texset.shading)
            self._cache.pop(name)
        return _info_from_meta(name, meta)

    def find_faces(self, photos: Sequence[PhotoSource]) -> builtins.list[tuple[Photo, builtins.list[Detection]]]:
        """Each photo with the faces found in it, largest first: the choices ``enroll``'s ``face`` counts
        (boxes in the decoded image's pixels: ``Photo.scale`` maps them back). Raises InputError for a photo
        that cannot be read."""
        if len(photos) > MAX_PHOTOS:
            raise InputError(f"at most {MAX_PHOTOS} photos per identity, got {len(photos)}")
        loaded = [load_photo(src, f"photo {i + 1}") for i, src in enumerate(photos)]
        with self._lock:
            analyser = self._get_analyser()
            return [(photo, analyser.faces(photo.image)) for photo in loaded]

    def remove(self, name: str) -> None:
        """Delete ``name``; InputError if there is no such identity."""
        path = self._dir(name)
        with self._lock:
            if not path.is_dir():
                raise InputError(f"no identity named {name!r}")
            trash = self.root / f".trash-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(path, trash)
            self._cache.pop(name)
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ internals

    def _dir(self, name: str) -> Path:
        check_name(name, "identity name")
        return inside(self.root, name)

    def _get_analyser(self) -> FaceAnalyser:
        if self._analyser is None:
            from engines.face.detect import FaceDetector
            from engines.face.landmarks import FaceMesh
            from engines.runtime import load_model, models

            detector = FaceDetector(load_model(models.resolve("yunet", self.models_dir)), input_width=640)
            mesh = FaceMesh(load_model(models.resolve("facemesh", self.models_dir)))
            self._analyser = FaceAnalyser(detector, mesh, self.config)
        return self._analyser

    def _write(
        self,
        name: str,
        meta: dict[str, Any],
        texture: np.ndarray,
        coverage: np.ndarray,
        shading: np.ndarray | None,
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        final = inside(self.root, name)
        tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            rgba = np.dstack([texture, np.round(coverage * 255.0).astype(np.uint8)])
            ok, png = cv2.imencode(".png", rgba)
            if not ok:
                raise OSError("PNG encoding failed")
            files: dict[str, bytes] = {TEXTURE_FILE: png.tobytes()}
            if shading is not None:
                buf = io.BytesIO()
                np.save(buf, shading.astype(np.float16), allow_pickle=False)
                files[SHADING_FILE] = buf.getvalue()
            meta = dict(meta, files={k: hashlib.sha256(v).hexdigest() for k, v in files.items()})
            files[META_FILE] = json.dumps(meta, indent=1).encode()
            for fname, data in files.items():
                with open(tmp / fname, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            old = None
            if final.exists():
                old = self.root / f".old-{name}-{uuid.uuid4().hex[:8]}"
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            from engines.errors import OutputError

            raise OutputError(f"cannot write identity {name!r} in {self.root}: {exc.strerror or exc}") from exc


def _reenroll(name: str) -> str:
    return f"enroll it again: stageswap identities add {name} PHOTO... --replace"


def _make_meta(
    name: str,
    created: str,
    faces: Sequence[PhotoFace],
    lights: Sequence[np.ndarray],
    canonical: np.ndarray,
    warnings: Sequence[str],
    config: EnrollConfig,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "created": created,
        "texture_size": config.texture_size,
        "photo_sha256": [f.photo.sha256 for f in faces],
        "photos": [
            {
                "label": f.photo.label,
                "sha256": f.photo.sha256,
                "size": list(f.photo.original_size),
                "scale": round(f.photo.scale, 6),
                "box": [round(float(v), 2) for v in f.box],
                "pose_deg": [round(float(v), 2) for v in f.pose_deg],
                "landmarks": np.round(f.landmarks.astype(np.float64), 3).tolist(),
            }
            for f in faces
        ],
        "light_sh": [np.round(sh, 6).tolist() for sh in lights],
        "canonical": np.round(canonical.astype(np.float64), 5).tolist(),
        "warnings": list(warnings),
    }


def _read_meta(path: Path) -> dict[str, Any]:
    name = path.name
    meta_path = path / META_FILE
    try:
        if meta_path.stat().st_size > _MAX_META_BYTES:
            raise IdentityCorruptError(f"identity {name!r} is corrupted: {META_FILE} is too large")
        meta = json.loads(meta_path.read_bytes())
    except FileNotFoundError:
        raise IdentityCorruptError(f"identity {name!r} is corrupted: {META_FILE} is missing") from None
    except (OSError, ValueError) as exc:
        raise IdentityCorruptError(f"identity {name!r} is corrupted: {META_FILE} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IdentityCorruptError(f"identity {name!r} is corrupted: {META_FILE} is not a stageswap identity")
    if meta.get("version") != VERSION:
        raise IdentityCorruptError(
            f"identity {name!r} has format version {meta.get('version')!r}; this stageswap reads version {VERSION}"
        )
    checks: list[tuple[str, type | tuple[type, ...]]] = [
        ("created", str),
        ("texture_size", int),
        ("photo_sha256", list),
        ("photos", list),
        ("canonical", list),
        ("warnings", list),
        ("files", dict),
    ]
    for key, kind in checks:
        if not isinstance(meta.get(key), kind):
            raise IdentityCorruptError(f"identity {name!r} is corrupted: {META_FILE} lacks a valid {key!r}")
    if not 64 <= meta["texture_size"] <= 4096:
        raise IdentityCorruptError(f"identity {name!r} is corrupted: texture_size {meta['texture_size']}")
    return meta


def _info_from_meta(name: str, meta: dict[str, Any]) -> IdentityInfo:
    return IdentityInfo(
        name=name,
        created=str(meta["created"]),
        photos=len(meta["photo_sha256"]),
        photo_sha256=tuple(str(s) for s in meta["photo_sha256"]),
        texture_size=int(meta["texture_size"]),
        warnings=tuple(str(w) for w in meta["warnings"]),
        monochrome=meta.get("monochrome") is True,
    )


def _read_checked(path: Path, fname: str, meta: dict[str, Any]) -> bytes:
    name = path.name
    expected = meta["files"].get(fname)
    try:
        data = (path / fname).read_bytes()
    except OSError as exc:
        raise IdentityCorruptError(
            f"identity {name!r} is corrupted: cannot read {fname} ({exc.strerror or exc}); {_reenroll(name)}"
        ) from exc
    if hashlib.sha256(data).hexdigest() != expected:
        raise IdentityCorruptError(
            f"identity {name!r} is corrupted: {fname} does not match its recorded sha256 (truncated or "
            f"modified); {_reenroll(name)}"
        )
    return data


def _load_identity(name: str, path: Path) -> Identity:
    meta = _read_meta(path)
    size = int(meta["texture_size"])
    png = _read_checked(path, TEXTURE_FILE, meta)
    rgba = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if rgba is None or rgba.shape != (size, size, 4) or rgba.dtype != np.uint8:
        raise IdentityCorruptError(f"identity {name!r} is corrupted: {TEXTURE_FILE} is not a {size}x{size} BGRA image")
    shading = None
    if SHADING_FILE in meta["files"]:
        raw = _read_checked(path, SHADING_FILE, meta)
        try:
            shading = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as exc:
            raise IdentityCorruptError(f"identity {name!r} is corrupted: {SHADING_FILE}: {exc}") from exc
        if shading.shape != (size, size, 3) or not np.isfinite(shading).all() or (shading <= 0).any():
            raise IdentityCorruptError(f"identity {name!r} is corrupted: {SHADING_FILE} has bad values")
        shading = shading.astype(np.float32)
    try:
        canonical = np.asarray(meta["canonical"], dtype=np.float32)
        landmarks = tuple(np.asarray(p["landmarks"], dtype=np.float32) for p in meta["photos"])
    except (TypeError, ValueError, KeyError) as exc:
        raise IdentityCorruptError(f"identity {name!r} is corrupted: bad mesh data in {META_FILE}") from exc
    if canonical.shape != (NUM_LANDMARKS, 3) or not np.isfinite(canonical).all():
        raise IdentityCorruptError(f"identity {name!r} is corrupted: its canonical face is not 468 points")
    texture = np.ascontiguousarray(rgba[..., :3])
    coverage = (rgba[..., 3].astype(np.float32) / 255.0).astype(np.float32)
    for arr in (texture, coverage, canonical, *landmarks):
        arr.setflags(write=False)
    if shading is not None:
        shading.setflags(write=False)
    return Identity(_info_from_meta(name, meta), texture, coverage, shading, canonical, landmarks)


def _limit_outline(albedo: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``albedo`` with its brightness near the face's outline limited to ``OUTLINE_BRIGHTER`` times the skin's
    inside beside it. There the photo sees the surface at a grazing angle: its shading (a smooth light model,
    small at grazing normals) is least right, and dividing by it overshoots — real skin at the outline is
    lit by more than the model says (bounce light, the skin's own scattering), and what the mesh's outline
    runs over past the face (white hair, a bright background) is as bright as the skin or brighter. Relit,
    the overshoot drew a white streak down the side of every frame (biden.jpg, both outlines of obama.jpg).
    A skin that is really brighter at its outline than beside its cheekbones by more than that is not a
    photo's to tell: the light model cannot be told from it there. Only brightness is limited (the colour's
    ratios stay); darker texels (a brow, hair the clean-up left) are kept."""
    from engines.face.topology import SKIN
    from engines.swap.texture import texture_canonical_x, texture_labels

    size = albedo.shape[0]
    labels = texture_labels(size)
    depth = _outline_depth(size)
    luma = albedo @ _LUMA_BGR
    inside = (labels == SKIN) & (coverage > 0.5) & (depth > OUTLINE_BAND[1])
    if inside.sum() < 100:
        return albedo
    # The skin inside, less what is itself far brighter than the face's skin (pale hair the clean-up left).
    inside &= luma < OUTLINE_BRIGHTER * OUTLINE_BRIGHTER * float(np.median(luma[inside]))
    weight = inside.astype(np.float32)
    sigma = size / 16.0
    norm = cv2.GaussianBlur(weight, (0, 0), sigma)
    # Where little of that skin lies within reach the level leans to the face's median (a prior of
    # ``OUTLINE_PRIOR`` in the normalised blur): at the forehead's top corners the brows' band is not skin, and
    # the few skin texels in reach there (the lids' lashes and shadow) read at a third of the skin's level, so the
    # forehead's corner was limited to a grey patch (roop_source.jpg: 0.99 -> 0.42 of the skin), drawn on every
    # actor turned to show it (s18.mp4's close-up).
    median = float(np.median(luma[inside]))
    level = (cv2.GaussianBlur(luma * weight, (0, 0), sigma) + OUTLINE_PRIOR * median) / (norm + OUTLINE_PRIOR)
    near = np.clip((OUTLINE_BAND[1] - depth) / (OUTLINE_BAND[1] - OUTLINE_BAND[0]), 0.0, 1.0)
    # The sides only: under the chin a photo lit from above is as dark (and the overshoot there as bright),
    # but limiting it there cost s1.jpg's likeness on d10.mp4 0.04 of cosine (its chin is how it is known).
    side = np.clip(
        (np.abs(np.nan_to_num(texture_canonical_x(size), posinf=0.0)) - OUTLINE_SIDE_X[0])
        / (OUTLINE_SIDE_X[1] - OUTLINE_SIDE_X[0]),
        0.0,
        1.0,
    )
    near = near * near * (3.0 - 2.0 * near) * side * side * (3.0 - 2.0 * side)
    limited = np.minimum(1.0, OUTLINE_BRIGHTER * level / np.maximum(luma, 1e-6))
    scale = 1.0 + near * (labels >= 0) * (limited - 1.0)
    return (albedo * scale[..., None]).astype(np.float32)


def _limit_lower_face(albedo: np.ndarray, lin: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``albedo`` with its broad brightness below the mouth, relative to the cheeks', limited to ``LOWER_BRIGHTER``
    times the photo's own there (and never pushed below the cheeks' level). The photo's light model gives a chin and
    jaw, turned down from a light above, little light; a chin lit from below as well (a bounce from the clothes: the
    model has no term for it) is then divided by too little, and was drawn pale on every actor lit evenly (s1.jpg:
    its chin's albedo 1.3x its cheeks' where the photo shows them as bright; a pale greenish chin on d10.mp4). Only
    the broad level (a sixth of the face): its creases and shading within stay."""
    from engines.face.topology import SKIN
    from engines.swap.texture import texture_canonical_x, texture_canonical_y, texture_labels

    size = albedo.shape[0]
    x = np.abs(np.nan_to_num(texture_canonical_x(size), posinf=9.0))
    y = np.nan_to_num(texture_canonical_y(size), posinf=-9.0)
    skin = (texture_labels(size) == SKIN) & (coverage > 0.5)
    cheeks = skin & (x > 0.3) & (x < 0.6) & (y > -0.1) & (y < 0.3)
    if cheeks.sum() < 100:
        return albedo
    weight = skin.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(weight, (0, 0), size / 24.0), 1e-3)
    ratios = []
    for image in (albedo, lin):
        luma = (image @ _LUMA_BGR).astype(np.float32)
        broad = cv2.GaussianBlur(luma * weight, (0, 0), size / 24.0) / norm
        ratios.append(broad / max(float(np.median(luma[cheeks])), 1e-6))
    cap = LOWER_BRIGHTER * np.maximum(ratios[1], 1.0)
    lower = np.clip((y - LOWER_Y[0]) / (LOWER_Y[1] - LOWER_Y[0]), 0.0, 1.0)
    lower = lower * lower * (3.0 - 2.0 * lower)
    scale = 1.0 + lower * (np.minimum(1.0, cap / np.maximum(ratios[0], 1e-6)) - 1.0)
    return (albedo * scale[..., None]).astype(np.float32)


@functools.cache
def _outline_depth(size: int) -> np.ndarray:
    """(size, size) float32: each texel's distance from the texture layout's outline, as a share of ``size``."""
    from engines.swap.texture import texture_labels

    inside = np.pad((texture_labels(size) >= 0).astype(np.uint8), 1)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 5)[1:-1, 1:-1] / float(size)
    depth.setflags(write=False)
    return depth


def _broad_level(luma: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """(T, T) the shading's brightness blurred over ``BROAD_SIGMA`` of the texture, from the texels the
    photos saw (normalised convolution); the shading itself where they saw nothing around."""
    size = luma.shape[0]
    weight = (coverage > 0.05).astype(np.float32)
    sigma = size * BROAD_SIGMA
    norm = cv2.GaussianBlur(weight, (0, 0), sigma)
    smooth = cv2.GaussianBlur(luma * weight, (0, 0), sigma) / np.maximum(norm, 1e-3)
    return np.where(norm > 1e-2, smooth, luma).astype(np.float32)


def _face_per_photo(face: FaceChoice | Sequence[FaceChoice], photos: int) -> list[FaceChoice]:
    """``enroll``'s ``face`` as one choice per photo (one choice given applies to every photo)."""
    if isinstance(face, str | int) or face is None:
        return [face] * photos
    choices = list(face)
    if len(choices) != photos:
        raise InputError(f"give one face choice per photo: {len(choices)} choices for {photos} photos")
    return choices
