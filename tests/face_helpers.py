"""Helpers for the swap tests: meshes of the shared photos, measured with the real detector and mesh."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from engines.face.detect import FaceDetector
from engines.face.landmarks import FaceMesh, roi_from_detection, roi_from_landmarks

if TYPE_CHECKING:
    from streamer.record.media import VideoInfo


def photo_mesh(detector: FaceDetector, mesh: FaceMesh, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The image and the (468, 3) landmarks of the largest face in a shared photo."""
    image = cv2.imread(str(path))
    assert image is not None, path
    return image, image_mesh(detector, mesh, image)


def image_mesh(detector: FaceDetector, mesh: FaceMesh, image: np.ndarray) -> np.ndarray:
    """The (468, 3) landmarks of the largest face in an image (a photo, a clip's frame)."""
    dets = sorted(detector.detect(image), key=lambda d: d.width * d.height, reverse=True)
    assert dets, "no face in the image"
    first = mesh.infer(image, roi_from_detection(dets[0]))
    return mesh.infer(image, roi_from_landmarks(first.landmarks)).landmarks


def enrolled_store(root: Path, faces: Path, models_dir: Path, names: tuple[str, ...] = ("s1.jpg",)):  # type: ignore[no-untyped-def]
    """An IdentityStore at ``root`` with the given shared photos enrolled (named after the file stem)."""
    from engines.identity.store import IdentityStore

    store = IdentityStore(root, models_dir)
    for name in names:
        store.enroll(Path(name).stem.replace("_", "-").lower(), [faces / name], face="largest")
    return store


def clip_frames(path: Path, count: int) -> list[tuple[np.ndarray, float]]:
    """The first ``count`` frames of a clip with their times."""
    from streamer.record.media import VideoReader

    out = []
    with VideoReader(path) as reader:
        for frame in reader.frames():
            out.append((frame.image, frame.time_s))
            if len(out) >= count:
                break
    return out


def swapped_faces(clips: Path, detector: FaceDetector, mesh: FaceMesh, identity: Any, count: int = 3) -> Iterator[Any]:
    """For the first ``count`` frames of d3, d10 and s18: (clip, swapper, geometry, the actor's window at geometry
    resolution) with the identity placed by a fused ``MeshSwapper`` — the inputs the compiled fields are compared
    on against numpy's."""
    from engines.face.tracker import FaceTracker
    from engines.resample import shrink
    from engines.swap.mesh import MeshSwapper

    for clip in ("d3.mp4", "d10.mp4", "s18.mp4"):
        tracker, swapper = FaceTracker(detector, mesh), MeshSwapper(fused=True)
        for image, t_s in clip_frames(clips / clip, count):
            face = tracker.update(image, t_s)[0]
            geometry = swapper.geometry(image, face.landmarks, face.id, t_s, identity, 1.0)
            assert geometry is not None
            hs, ws = geometry.small_size
            actor = shrink(geometry.to_work(swapper.actor_window(image, geometry)), (ws, hs))
            yield clip, swapper, geometry, actor


def identity_scores(
    models_dir: Path,
    detector: FaceDetector,
    mesh: FaceMesh,
    photo_path: Path,
    processed: list[np.ndarray],
    source: list[np.ndarray],
) -> dict[str, float]:
    """How far received processed frames show the identity in ``photo_path`` rather than the actor, judged as
    the quality evaluation does: an independent recogniser (evaluation-only MobileFaceNet) compares each
    processed face with the photo and with the actor (the mean of the source frames' faces).

    Returns ``n`` (processed frames with a face), ``identity`` and ``actor`` (mean cosines) and ``closer``
    (the share of processed faces closer to the identity than to the actor)."""
    from benchmarks.quality_metrics import FaceEmbedder
    from engines.face.tracker import FaceTracker

    embedder = FaceEmbedder(models_dir / "mobilefacenet.onnx")

    def embeddings(frames: list[np.ndarray]) -> np.ndarray:
        tracker = FaceTracker(detector, mesh)
        out = []
        for i, frame in enumerate(frames):
            faces = tracker.update(frame, i / 30)
            if faces:
                out.append(embedder.embed(frame, faces[0].points5))
        return np.array(out)

    photo_image = cv2.imread(str(photo_path))
    assert photo_image is not None, photo_path
    photo = embeddings([photo_image])[0]
    out = embeddings(processed)
    actor = embeddings(source).mean(axis=0)
    actor /= np.linalg.norm(actor)
    if len(out) == 0:
        return {"n": 0, "identity": 0.0, "actor": 0.0, "closer": 0.0}
    cos_identity, cos_actor = out @ photo, out @ actor
    return {
        "n": len(out),
        "identity": float(cos_identity.mean()),
        "actor": float(cos_actor.mean()),
        "closer": float(np.mean(cos_identity > cos_actor)),
    }


def write_video(path: Path, frames: Iterable[tuple[np.ndarray, int | None]], info: VideoInfo) -> Path:
    """BGR frames (with their pts in ``info.time_base``) encoded into ``path`` (H.264 in the container its
    suffix names) by the recorder's own writer, ``streamer.record.encoding.FileEncoder``."""
    from streamer.record.encoding import EncodeSpec, FileEncoder
    from streamer.record.formats import format_for_path_suffix

    spec = EncodeSpec(format_for_path_suffix(path.suffix), info.fps, info.time_base, crash_safe=False)
    encoder = FileEncoder(path, spec)
    last = -1
    for image, pts in frames:
        last = pts if pts is not None and pts > last else last + 1
        encoder.write(image, last)
    encoder.close()
    return path


def processed_frames(processor, frames: list[tuple[np.ndarray, float]], settings) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``frames`` through ``processor`` with ``settings``, stacked (n, h, w, 3): each must succeed and track a face."""
    out = []
    for image, t_s in frames:
        result = processor.process(image, t_s, settings)
        assert result.failed_stage is None, f"{result.failed_stage}: {result.error}"
        assert result.faces, "no face tracked"
        out.append(result.image)
    return np.stack(out)
