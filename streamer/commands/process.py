"""`stageswap process`: a video file through the engines into a video file."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamer.commands import add_device_arg, add_models_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "process",
        help="process a video file into a video file",
        description="Track faces in a video file and write the processed video, keeping its resolution, "
        "frame rate, timestamps and audio. Every frame is processed (offline: nothing is dropped).",
    )
    p.add_argument("--input", "-i", required=True, type=Path, help="input video file (anything FFmpeg reads)")
    p.add_argument("--output", "-o", required=True, type=Path, help="output video (.mp4, .mov, .mkv; H.264)")
    p.add_argument("--stats", type=Path, metavar="F.json", help="write frames, fps and per-stage ms p50/p99 as JSON")
    p.add_argument(
        "--landmarks",
        type=Path,
        metavar="F.npz",
        help="write per-frame 468-point landmarks (frames x max-faces x 468 x 3, NaN where no face)",
    )
    p.add_argument("--debug-overlay", action="store_true", help="draw the tracked mesh, ids and head pose")
    p.add_argument("--max-faces", type=int, default=4, help="most faces tracked at once (default 4)")
    p.add_argument("--detect-every", type=int, default=10, help="frames between face detections (default 10)")
    p.add_argument(
        "--detect-width",
        type=int,
        default=320,
        help="width the frame is scaled to for detection (default 320)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_models_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engines.errors import InputError
    from engines.processor import FaceProcessor, ProcessorConfig, ProcessSettings
    from engines.runtime.select import resolve_device
    from engines.tracker import TrackerConfig
    from streamer.batch import ProcessJob, run_process

    if args.max_faces < 1:
        raise InputError("--max-faces must be at least 1")
    if args.detect_every < 1:
        raise InputError("--detect-every must be at least 1")
    if args.detect_width < 64:
        raise InputError("--detect-width must be at least 64")
    config = ProcessorConfig(
        tracker=TrackerConfig(max_faces=args.max_faces, detect_every=args.detect_every),
        detect_width=args.detect_width,
        device=resolve_device(args.device),
    )
    processor = FaceProcessor.from_models(args.models, config)
    job = ProcessJob(
        input=args.input,
        output=args.output,
        settings=ProcessSettings(debug_overlay=args.debug_overlay),
        stats_path=args.stats,
        landmarks_path=args.landmarks,
        max_faces=args.max_faces,
        progress=not args.no_progress,
    )
    stats = run_process(job, processor)
    stages = ", ".join(f"{k} {v['p50']:.1f}" for k, v in stats["stage_ms"].items() if k != "total")
    print(
        f"wrote {args.output}: {stats['frames']} frames, face in {stats['frames_with_face']}, "
        f"{stats['fps']:.1f} fps processing (p50 ms: {stages})"
    )
    if stats["frames_with_face"] == 0:
        print("note: no face was found in any frame; the output is the input re-encoded")
    return 0
