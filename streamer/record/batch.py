"""`stageswap process`: a video file through the FaceProcessor into a video file, with stats.

Frames are processed in order, every one of them (no dropping: this is the offline path). The output
is written by the same recorder as the live recordings (``streamer.record.recorder``): encoding and muxing run
on their own thread, so decoding and processing the next frame overlap with encoding this one; when
the encoder is slower, processing waits for room in its queue instead of dropping. The stats JSON and
the landmarks file follow the contract in DESIGN.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import InputError, OutputError
from engines.face.landmarks import NUM_LANDMARKS
from engines.identity.targets import TargetTally
from engines.paths import replacing, write_atomic
from engines.processor import FaceProcessor, ProcessSettings
from engines.stats import StageTimes
from streamer.live.ring import FrameMeta, FrameRing
from streamer.record.encoding import EncodeSpec
from streamer.record.formats import format_for_path_suffix
from streamer.record.media import VideoFrame, VideoInfo, VideoReader, check_writable
from streamer.record.recorder import AudioItem, QueueLimits, Recorder, VideoItem


@dataclass(frozen=True)
class ProcessJob:
    input: Path
    output: Path
    settings: ProcessSettings
    stats_path: Path | None = None
    landmarks_path: Path | None = None
    max_faces: int = 4
    progress: bool = True
    codec: str = "h264"
    """Output codec: h264 (8-bit), prores (10-bit 4:2:2) or ffv1 (lossless RGB at the input's depth)."""
    deep: bool = False
    """Decode 16-bit frames and write the input's depth where the codec can (colour-managed footage)."""


def run_process(
    job: ProcessJob,
    processor: FaceProcessor,
    on_frame: Callable[[int], None] | None = None,
    ring: FrameRing | None = None,
) -> dict[str, Any]:
    """Process ``job.input`` into ``job.output``; return the stats (also written to ``job.stats_path``).

    ``ring``: the frame ring of the processor's device (``streamer.live.ring_choice.make_ring``), as on the live path:
    each 8-bit frame is put into it and taken straight back, so with ``--device cuda`` it is uploaded once at
    decode. Nothing is dropped (one frame in the ring at a time). 16-bit frames (``deep``) and None: straight
    from the decoder. The ring is freed at the end."""
    for extra in (job.stats_path, job.landmarks_path):
        if extra is not None:
            check_writable(extra)
    times = StageTimes()
    landmarks: list[np.ndarray] = []
    face_ids: list[np.ndarray] = []
    timestamps: list[float] = []
    frames = frames_with_face = 0
    faces_total = 0
    ids_seen: set[int] = set()
    glasses_frames: dict[int, int] = {}
    mapping = TargetTally()
    process_s = 0.0
    started = time.perf_counter()
    with VideoReader(job.input, deep=job.deep) as reader:
        writer = _OutputWriter(job.output, reader.info, reader.audio, job.codec, reader.info.bits if job.deep else 8)
        bar = _progress(reader.info.frames, job.input.name) if job.progress else None
        try:
            for item in reader.items():
                if not isinstance(item, VideoFrame):
                    writer.write_audio(item)
                    continue
                t0 = time.perf_counter()
                if ring is not None and item.image.dtype == np.uint8:
                    ring.put(item.image, FrameMeta(frames, item.time_s))
                    with ring.acquire(timeout_s=None) as slot:
                        result = processor.process(slot.host, item.time_s, job.settings)
                        # The slot is reused for the next frame: the writer gets its own copy.
                        out = result.image.copy()
                else:
                    result = processor.process(item.image, item.time_s, job.settings)
                    out = result.image if result.image is item.image else result.image.copy()
                elapsed = time.perf_counter() - t0
                process_s += elapsed
                times.add_all(result.stage_ms)
                times.add("total", elapsed * 1000.0)
                writer.write(out, item.pts)
                frames += 1
                frames_with_face += bool(result.faces)
                faces_total += len(result.faces)
                ids_seen.update(f.id for f in result.faces)
                for face_id, worn in result.glasses.items():
                    glasses_frames[face_id] = glasses_frames.get(face_id, 0) + int(worn)
                if job.settings.targets:
                    mapping.add(result.targets.values())
                timestamps.append(item.time_s)
                if job.landmarks_path is not None:
                    lm = np.full((job.max_faces, NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
                    ids = np.full((job.max_faces,), -1, dtype=np.int32)
                    for k, face in enumerate(result.faces[: job.max_faces]):
                        lm[k] = face.landmarks
                        ids[k] = face.id
                    landmarks.append(lm)
                    face_ids.append(ids)
                if bar is not None:
                    bar.update(1)
                if on_frame is not None:
                    on_frame(frames)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            if bar is not None:
                bar.close()
            if ring is not None:
                ring.free()
    wall_s = time.perf_counter() - started
    stats: dict[str, Any] = {
        "input": str(job.input),
        "output": str(job.output),
        "frames": frames,
        "frames_with_face": frames_with_face,
        "faces_per_frame_mean": round(faces_total / frames, 3) if frames else 0.0,
        "face_ids": sorted(ids_seen),
        "glasses_frames": {str(k): v for k, v in sorted(glasses_frames.items())},
        "frames_failed": processor.frames_failed,
        "fps": round(frames / process_s, 2) if process_s > 0 else 0.0,
        "fps_wall": round(frames / wall_s, 2) if wall_s > 0 else 0.0,
        "width": reader.info.width,
        "height": reader.info.height,
        "source_fps": float(reader.info.fps),
        "runtime": processor.runtime,
        "frame_path": str(getattr(processor, "frame_path", processor.runtime)),
        "stage_ms": times.summary(),
    }
    if job.settings.targets:
        stats["targets"] = mapping.summary()
    wid = getattr(processor, "watermark_id", None)
    stats["watermark_id"] = f"{wid:08x}" if isinstance(wid, int) else None  # `stageswap verify OUT` reads it back
    mark = getattr(processor, "watermark_mark", None)  # which mark (``--watermark-mark``), so a reader knows its reader
    stats["watermark_mark"] = mark if isinstance(mark, str) and isinstance(wid, int) else None
    if job.stats_path is not None:
        _atomic_write(job.stats_path, json.dumps(stats, indent=2).encode())
    if job.landmarks_path is not None:
        arr = np.stack(landmarks) if landmarks else np.zeros((0, job.max_faces, NUM_LANDMARKS, 3), np.float32)
        ids_arr = np.stack(face_ids) if face_ids else np.zeros((0, job.max_faces), np.int32)
        _save_npz(job.landmarks_path, landmarks=arr, face_ids=ids_arr, time_s=np.asarray(timestamps))
    return stats


class _OutputWriter:
    """The output file through a Recorder: a hidden temporary name, renamed into place when complete.

    An interrupted run never leaves a truncated file under the requested name."""

    def __init__(self, path: Path, info: VideoInfo, audio_template: Any, codec: str = "h264", bits: int = 8) -> None:
        self.path = path
        try:
            fmt = format_for_path_suffix(path.suffix, codec)
        except InputError as exc:
            raise OutputError(f"output {path}: {exc}") from exc
        check_writable(path)
        self._tmp = path.with_name(f".{path.name}.partial{path.suffix.lower()}")
        spec = EncodeSpec(
            fmt,
            rate=info.fps,
            time_base=info.time_base,
            crash_safe=False,
            fsync_interval_s=None,
            timecode=info.timecode,  # the input's timecode carries over: the output conforms like its source
            bits=bits,
        )
        try:
            self._recorder = Recorder(
                self._tmp,
                spec,
                QueueLimits.for_rate(info.fps),
                name="process-writer",
                nice=0,
                audio_template=audio_template,
                size=(info.width, info.height),
            ).start()
        except (InputError, OutputError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"output {path} cannot be written: {exc}") from exc
        self._last_pts: int | None = None

    def write(self, image: np.ndarray, pts: int | None) -> None:
        """Queue a frame (waits while the encoder's queue is full); keeps ``pts`` unless it does not increase."""
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = (self._last_pts + 1) if self._last_pts is not None else 0
        self._last_pts = pts
        self._recorder.put(VideoItem(image, pts))

    def write_audio(self, packet: Any) -> None:
        self._recorder.put(AudioItem(packet))

    def close(self) -> None:
        error = self._recorder.finish()
        if error is not None:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"output {self.path}: {error}") from error
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._recorder.abort()
        self._tmp.unlink(missing_ok=True)


def _progress(total: int, name: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, desc=name, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False)


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data, mode=0o644, fsync=False)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc


def _save_npz(path: Path, **arrays: Any) -> None:
    try:
        with replacing(path, mode=0o644, suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
