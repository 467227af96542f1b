"""Performers: the people on set a swap is aimed at, known by face so target rules can pick them.

Rules: ``engines.identity.targets``.

A performer is enrolled like an identity, from photos or a clip of the person on set, but nothing of them is put
on anyone: only their face descriptors are kept (``engines.identity.descriptor``), so no likeness consent is
needed. A performer is a directory ``<data>/performers/<name>/`` holding ``performer.json``: format and version,
name, creation date, the recogniser's sha256 (descriptors of another recogniser are not comparable: enroll
again), each source's name, sha256 and how many of its faces were used, and the descriptors themselves.

Enrollment keeps the descriptors that agree with each other: faces further than ``OUTLIER_DISTANCE`` from the
set's medoid (a frame where the tracker was on someone else, a face turned away) are left out and counted, and
at most ``MAX_DESCRIPTORS`` of the rest are kept, spread over the person's looks (farthest-point sampling), so
matching a face against a performer is a handful of distances.
"""

from __future__ import annotations

import builtins
import json
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import InputError, OutputError
from engines.identity.descriptor import DESCRIPTOR_DIM, descriptor_distance
from engines.paths import StampedCache, check_name, inside, record_folders, write_atomic
from engines.settings import POSITION_MATCHES

FORMAT = "stageswap-performer"
VERSION = 1
META_FILE = "performer.json"
MAX_DESCRIPTORS = 32
OUTLIER_DISTANCE = 0.5
"""A face further than this from the enrollment's medoid is not the performer (dlib's same-person distances on
the shared clips stay under 0.45; see BENCHMARKS.md, re-identification)."""
MIN_FACES = 1
_MAX_META_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PerformerSource:
    name: str
    sha256: str
    faces: int
    """Faces of this source that were described (before outliers were left out)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "faces": self.faces}


@dataclass(frozen=True)
class Performer:
    name: str
    created: str
    recogniser_sha256: str
    descriptors: np.ndarray
    """(k, 128) float32, k <= MAX_DESCRIPTORS."""
    sources: tuple[PerformerSource, ...] = ()
    faces_used: int = 0
    outliers: int = 0

    def summary(self) -> dict[str, Any]:
        """What the API and ``performers list`` show (no descriptors)."""
        return {
            "name": self.name,
            "created": self.created,
            "descriptors": int(self.descriptors.shape[0]),
            "faces_used": self.faces_used,
            "outliers": self.outliers,
            "sources": [s.to_dict() for s in self.sources],
        }

    def distance(self, descriptor: np.ndarray) -> float:
        """How far a face's descriptor is from this performer: the nearest of their descriptors."""
        return float(descriptor_distance(descriptor, self.descriptors).min())


def check_performer_name(name: str) -> str:
    """A performer's name: a valid name that a target rule cannot read as a position (``largest``...)."""
    check_name(name, "performer name")
    if name in POSITION_MATCHES:
        raise InputError(f"{name!r} cannot name a performer: target rules use it for a position")
    return name


def select_descriptors(descriptors: np.ndarray) -> tuple[np.ndarray, int]:
    """The descriptors to keep of one enrollment, and how many were left out as outliers.

    Outliers: further than ``OUTLIER_DISTANCE`` from the medoid (the descriptor nearest all others). The rest are
    thinned to ``MAX_DESCRIPTORS`` by farthest-point sampling from the medoid (the person's different looks kept,
    near-repeats of one frame dropped)."""
    d = np.asarray(descriptors, np.float32).reshape(-1, DESCRIPTOR_DIM)
    if d.shape[0] < MIN_FACES:
        raise InputError("no usable face to enroll the performer from")
    dist = descriptor_distance(d, d)
    medoid = int(dist.sum(axis=1).argmin())
    keep = np.flatnonzero(dist[medoid] <= OUTLIER_DISTANCE)
    outliers = d.shape[0] - keep.size
    chosen = [medoid]
    nearest = dist[medoid, keep].copy()
    while len(chosen) < min(MAX_DESCRIPTORS, keep.size):
        far = int(nearest.argmax())
        if nearest[far] <= 1e-6:
            break
        chosen.append(int(keep[far]))
        nearest = np.minimum(nearest, dist[keep[far], keep])
    return d[chosen], outliers


class PerformerStore:
    """The performers in one directory (``data_dir() / "performers"``); loads are cached and reloaded when a
    performer's file changes. Safe to share between threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._cache: StampedCache[Performer] = StampedCache()

    def list(self) -> builtins.list[Performer]:
        """Every readable performer, by name (a damaged one is left out: ``load`` says what is wrong)."""
        out = []
        for path in record_folders(self.root):
            try:
                out.append(self.load(path.name))
            except InputError:
                continue
        return out

    def names(self) -> builtins.list[str]:
        return [p.name for p in record_folders(self.root)]

    def exists(self, name: str) -> bool:
        return self._dir(name).is_dir()

    def load(self, name: str) -> Performer:
        """The performer ``name``; InputError naming what is wrong (unknown, damaged)."""
        path = self._dir(name) / META_FILE
        try:
            st = path.stat()
        except OSError:
            known = ", ".join(self.names()) or "none"
            raise InputError(
                f"no performer named {name!r} (enrolled: {known}); enroll one with: "
                f"stageswap performers add {name} PHOTO_OR_CLIP..."
            ) from None
        return self._cache.get(name, st, lambda: _read(name, path))

    def save(
        self,
        name: str,
        descriptors: np.ndarray,
        sources: Sequence[PerformerSource],
        recogniser_sha256: str,
        replace: bool = False,
    ) -> Performer:
        """Keep the performer ``name`` described by ``descriptors`` (all faces of the enrollment, outliers included:
        ``select_descriptors`` picks); atomically, replacing an existing one only with ``replace``."""
        check_performer_name(name)
        kept, outliers = select_descriptors(descriptors)
        created = datetime.now(UTC).replace(microsecond=0).isoformat()
        performer = Performer(
            name, created, recogniser_sha256, kept, tuple(sources), int(np.asarray(descriptors).shape[0]), outliers
        )
        meta = {
            "format": FORMAT,
            "version": VERSION,
            **performer.summary(),
            "recogniser_sha256": recogniser_sha256,
            "descriptor_list": [[round(float(v), 6) for v in row] for row in kept],
        }
        meta.pop("descriptors")
        with self._lock:
            if not replace and self.exists(name):
                raise InputError(f"performer {name!r} already exists; use --replace to enroll them again")
            self._write(name, meta)
            self._cache.pop(name)
        return performer

    def remove(self, name: str) -> None:
        path = self._dir(name)
        with self._lock:
            if not path.is_dir():
                raise InputError(f"no performer named {name!r}")
            shutil.rmtree(path)
            self._cache.pop(name)

    def _dir(self, name: str) -> Path:
        check_name(name, "performer name")
        return inside(self.root, name)

    def _write(self, name: str, meta: dict[str, Any]) -> None:
        directory = self._dir(name)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            write_atomic(directory / META_FILE, json.dumps(meta))
        except OSError as exc:
            raise OutputError(f"cannot write performer {name!r} in {self.root}: {exc.strerror or exc}") from exc


def _read(name: str, path: Path) -> Performer:
    fix = f"enroll them again: stageswap performers add {name} PHOTO_OR_CLIP... --replace"
    try:
        if path.stat().st_size > _MAX_META_BYTES:
            raise ValueError("file too large")
        obj = json.loads(path.read_bytes())
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError("not a stageswap performer file")
        if int(obj.get("version", 0)) > VERSION:
            raise ValueError(f"written by a newer stageswap (version {obj.get('version')})")
        d = np.asarray(obj["descriptor_list"], np.float32)
        if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] != DESCRIPTOR_DIM or not np.isfinite(d).all():
            raise ValueError(f"descriptors of shape {d.shape}")
        sources = tuple(PerformerSource(str(s["name"]), str(s["sha256"]), int(s["faces"])) for s in obj["sources"])
        return Performer(
            name,
            str(obj["created"]),
            str(obj["recogniser_sha256"]),
            d,
            sources,
            int(obj.get("faces_used") or d.shape[0]),
            int(obj.get("outliers") or 0),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"performer {name!r} is damaged ({exc}); {fix}") from exc


@dataclass
class PerformerReport:
    """What an enrollment used: faces described per source, and the frames refused with the reason."""

    described: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        used = sum(self.described.values())
        refused = ", ".join(f"{n} {reason}" for reason, n in sorted(self.refused.items(), key=lambda kv: -kv[1]))
        return f"{used} faces described" + (f"; refused: {refused}" if refused else "")


def describe_performer(
    frames: Iterable[Any],
    track: Callable[[Any], Sequence[Any]],
    describe: Callable[[np.ndarray, np.ndarray], np.ndarray],
    pick: Callable[[np.ndarray, Sequence[Any]], tuple[Any | None, str | None]],
    every: int = 5,
    progress: Callable[[Any, str | None], None] | None = None,
) -> tuple[np.ndarray, PerformerReport]:
    """The descriptors of one person's face through ``frames`` (``engines.train.faceset.SourceFrame``: clips' frames
    and photos): each frame is tracked (``track``), every ``every``-th frame of a clip (every photo) has its face
    chosen by ``pick`` (the faceset's own choice: one face or the one asked for, not turned away, not occluded,
    inside the frame) and described. InputError when no face could be used."""
    report = PerformerReport()
    found: list[np.ndarray] = []
    for frame in frames:
        faces = track(frame)  # every frame: the tracker follows the face between the ones described
        reason: str | None = "skipped"
        if frame.still or frame.index % every == 0:
            chosen, reason = pick(frame.image, faces)
            if chosen is not None:
                found.append(np.asarray(describe(frame.image, chosen.landmarks), np.float32))
                report.described[frame.source] = report.described.get(frame.source, 0) + 1
            else:
                report.refused[reason or "no face"] = report.refused.get(reason or "no face", 0) + 1
        if progress is not None:
            progress(frame, reason)
    if not found:
        hint = " (pick one with --face)" if "several faces" in report.refused else ""
        raise InputError(f"no usable face to enroll the performer from: {report.summary()}{hint}")
    return np.stack(found), report
