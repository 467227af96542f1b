"""`stageswap faceset extract CLIP_OR_PHOTOS... --out DIR`: the faces a swap model trains on (engines.train.faceset).

Clips are decoded here (PyAV, ``streamer.record.media``) and photos read with the enrollment's safe decoder; the
engines only see frames. ``frames_of`` and ``build_tracker`` are shared with ``stageswap train``, which
extracts a faceset itself when it is given clips.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.commands import add_models_arg

if TYPE_CHECKING:
    from engines.face.tracker import FaceTracker
    from engines.train.faceset import ExtractReport, FacesetConfig, SourceFrame

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "faceset",
        help="extract the faces a swap model trains on from clips or photos",
        description="Facesets are folders of face crops (PNG) with their masks, in the framing a DFM model "
        "works in. Look through the contact sheet and delete any face you do not want before training.",
    )
    fsub = p.add_subparsers(dest="faceset_command", metavar="ACTION", required=True)
    ex = fsub.add_parser(
        "extract",
        help="track every frame and keep the usable faces",
        description="Track every frame of the clips (and every photo) with stageswap's tracker, cut the face "
        "in the DFM whole-face framing at --resolution with its masks from the mesh (face, eyes, mouth), and "
        "keep it unless it is unsuitable: no face, several faces (pick one with --face), head turned too far, "
        "occluded, out of frame, a duplicate of the previous face, or blurred. Prints what was kept and why "
        "the rest was refused, and writes DIR/contact_sheet.png to look at.",
    )
    ex.add_argument("inputs", nargs="+", type=Path, metavar="CLIP_OR_PHOTO", help="video files and/or photos")
    ex.add_argument("--out", type=Path, required=True, metavar="DIR", help="the faceset folder to create")
    add_faceset_args(ex)
    ex.add_argument("--replace", action="store_true", help="overwrite a faceset already in DIR")
    add_models_arg(ex)
    ex.set_defaults(func=run_extract)


def add_faceset_args(p: argparse.ArgumentParser, resolution_default: int | None = 256) -> None:
    """Options of faceset extraction (shared with ``train``, which extracts from clips itself)."""
    if resolution_default is not None:
        p.add_argument(
            "--resolution",
            type=int,
            default=resolution_default,
            metavar="PX",
            help=f"side of the stored face crops, 64..1024 (default {resolution_default}; training reads them "
            "at its own resolution, at most this)",
        )
    p.add_argument(
        "--coverage",
        type=float,
        default=None,
        metavar="F",
        help="crop side in face widths (default 1.8; DeepFaceLive's whole-face default is 2.2)",
    )
    p.add_argument(
        "--face",
        default=None,
        metavar="largest|N",
        help="which face to keep in frames with several: 'largest', or N counting from 0 = the largest "
        "(default: frames with several faces are refused)",
    )
    p.add_argument("--every", type=int, default=1, metavar="N", help="use every N-th frame of a clip (default 1)")


def faceset_config(args: argparse.Namespace, resolution: int) -> FacesetConfig:
    from engines.train.faceset import TRAIN_COVERAGE, FacesetConfig

    return FacesetConfig(
        resolution=resolution,
        coverage=args.coverage if args.coverage is not None else TRAIN_COVERAGE,
        every=args.every,
    )


def build_tracker(models_dir: str | None) -> FaceTracker:
    """stageswap's tracker (YuNet + the 468-point mesh) from the model registry, on the CPU."""
    from engines.face.detect import FaceDetector
    from engines.face.landmarks import FaceMesh
    from engines.face.tracker import FaceTracker
    from engines.runtime import load_model, models

    detector = FaceDetector(load_model(models.resolve("yunet", models_dir)))
    mesh = FaceMesh(load_model(models.resolve("facemesh", models_dir)))
    return FaceTracker(detector, mesh)


def count_frames(paths: Sequence[Path]) -> int:
    """Pictures to go through (clips' declared frame counts; 0 when a container does not say)."""
    from engines.errors import InputError
    from streamer.record.media import VideoReader

    total = 0
    for path in paths:
        if not path.is_file():
            raise InputError(f"input {path} {'is not a file' if path.exists() else 'does not exist'}")
        if path.suffix.lower() in PHOTO_SUFFIXES:
            total += 1
        else:
            with VideoReader(path) as reader:
                total += reader.info.frames
    return total


def frames_of(paths: Sequence[Path]) -> Iterator[SourceFrame]:
    """Every frame of every clip and every photo, in order (InputError for one that cannot be read)."""
    from engines.errors import InputError
    from engines.identity.photos import load_photo
    from engines.train.faceset import SourceFrame
    from streamer.record.media import VideoReader

    names = [p.name for p in paths]
    for path in paths:
        label = path.name if names.count(path.name) == 1 else str(path)
        if not path.exists():
            raise InputError(f"input {path} does not exist")
        if path.suffix.lower() in PHOTO_SUFFIXES:
            yield SourceFrame(load_photo(path, path.name).image, label, 0, 0.0, still=True)
            continue
        with VideoReader(path) as reader:
            for i, frame in enumerate(reader.frames()):
                yield SourceFrame(frame.image, label, i, frame.time_s)


def extract_faceset(
    inputs: Sequence[Path], out: Path, config: FacesetConfig, face: Any, replace: bool, models_dir: str | None
) -> ExtractReport:
    """Extract with a progress bar on stderr; the report."""
    from tqdm import tqdm

    from engines.train.faceset import extract

    total = count_frames(inputs)  # an unreadable input is said before the models load
    tracker = build_tracker(models_dir)
    last_source: list[str] = [""]

    def track(frame: SourceFrame) -> Sequence[Any]:
        if frame.still or frame.source != last_source[0]:
            tracker.reset()  # a photo, or the next clip: nothing carried over
        last_source[0] = frame.source
        return tracker.update(frame.image, frame.time_s)

    bar = tqdm(total=total or None, desc=f"faceset {out.name}", unit="frame", file=sys.stderr)
    kept = 0

    def progress(frame: SourceFrame, reason: str | None) -> None:
        nonlocal kept
        kept += reason is None
        bar.update(1 if frame.still else config.every)
        bar.set_postfix(kept=kept, refresh=False)

    try:
        return extract(frames_of(inputs), track, out, config, face, replace, progress)
    finally:
        bar.close()


def run_extract(args: argparse.Namespace) -> int:
    config = faceset_config(args, args.resolution)
    report = extract_faceset(args.inputs, args.out, config, args.face, args.replace, args.models)
    print(f"faceset {args.out}: {report.summary()}")
    print(f"look at {args.out / 'contact_sheet.png'}; delete faces you do not want from {args.out / 'faces'}")
    if report.kept == 0:
        from engines.errors import InputError

        raise InputError(f"no usable face in {', '.join(p.name for p in args.inputs)}: {report.summary()}")
    return 0
