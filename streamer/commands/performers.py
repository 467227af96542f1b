"""`stageswap performers add NAME PHOTO_OR_CLIP... | list | remove NAME`: the people on set swaps are aimed at.

A performer is known by face only (``engines.identity.performers``): target rules (``--target NAME=IDENTITY``,
the ``targets`` setting) pick their face, also after they leave the frame and come back. Nobody's likeness is put
in, so no consent record is asked for. Clips and photos are read, tracked and their faces chosen by the same code
as ``stageswap faceset extract`` (``streamer.commands.faceset``, ``engines.train.faceset.usable_face``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.commands import add_models_arg

if TYPE_CHECKING:
    from engines.identity.performers import PerformerStore


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory (default: $STAGESWAP_DATA, else ~/.local/share/stageswap), holding performers/",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "performers",
        help="enroll, list and remove the performers target rules pick by face",
        description="Performers are the people on set a swap is aimed at. Enroll one from photos or a clip of "
        "them; then `process --target NAME=IDENTITY` (or the stream's 'targets' setting) swaps IDENTITY onto "
        "that person only, frame after frame and after they leave and come back. Only face descriptors are "
        "kept (no likeness is put in, so no consent record is needed).",
    )
    psub = p.add_subparsers(dest="performers_command", metavar="ACTION", required=True)
    add = psub.add_parser(
        "add",
        help="enroll a performer from photos and/or clips",
        description="Track every frame of the clips (and every photo), describe the performer's face every "
        "--every frames with the face recogniser, and keep the descriptors that agree (faces that look like "
        "someone else are left out and counted). A frame with several faces needs --face; faces turned too far, "
        "occluded or cut by the frame are skipped. 20-60 faces from a few seconds of the person on set, in the "
        "stage's light, work best.",
    )
    add.add_argument("name", help="performer name: 1-64 of a-z, 0-9, '_' and '-' (not a position: largest...)")
    add.add_argument("inputs", nargs="+", type=Path, metavar="PHOTO_OR_CLIP", help="photos and/or video files")
    add.add_argument(
        "--face",
        default=None,
        metavar="largest|N",
        help="which face in pictures with several: 'largest', or N counting from 0 = the largest "
        "(default: pictures with several faces are skipped)",
    )
    add.add_argument(
        "--every", type=int, default=5, metavar="N", help="describe every N-th frame of a clip (default 5)"
    )
    add.add_argument("--replace", action="store_true", help="replace a performer of the same name")
    _data_dir_arg(add)
    add_models_arg(add)
    add.set_defaults(func=run_add)
    ls = psub.add_parser("list", help="list the enrolled performers")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _data_dir_arg(ls)
    ls.set_defaults(func=run_list)
    rm = psub.add_parser("remove", help="delete a performer")
    rm.add_argument("name")
    _data_dir_arg(rm)
    rm.set_defaults(func=run_remove)


def _store(args: argparse.Namespace) -> PerformerStore:
    from engines.identity.performers import PerformerStore
    from engines.paths import data_dir

    return PerformerStore(data_dir(args.data_dir) / "performers")


def _audit(args: argparse.Namespace, event: str, **data: object) -> None:
    from engines.paths import data_dir
    from streamer.governance.audit import AuditLog, cli_operator

    AuditLog.in_data_dir(data_dir(args.data_dir)).append(event, data, operator=cli_operator())


def run_add(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engines.errors import InputError
    from engines.identity.descriptor import FaceDescriber
    from engines.identity.performers import PerformerSource, check_performer_name, describe_performer
    from engines.runtime import models
    from engines.train.faceset import FacesetConfig, check_face_choice, usable_face
    from streamer.commands.faceset import build_tracker, count_frames, frames_of
    from streamer.governance.audit import PERFORMER_ENROLLED

    check_performer_name(args.name)
    if args.every < 1:
        raise InputError(f"--every must be at least 1, got {args.every}")
    face = check_face_choice(args.face)
    store = _store(args)
    if store.exists(args.name) and not args.replace:
        raise InputError(f"performer {args.name!r} already exists; use --replace to enroll them again")
    total = count_frames(args.inputs)  # an unreadable input is said before the models load
    tracker = build_tracker(args.models)
    describer = FaceDescriber(models.resolve("face_descriptor", args.models))
    recogniser_sha = models.FACE_DESCRIPTOR.sha256
    config = FacesetConfig()
    last: list[str] = [""]

    def track(frame: Any) -> Any:
        if frame.still or frame.source != last[0]:
            tracker.reset()  # a photo, or the next clip: nothing carried over
        last[0] = frame.source
        return tracker.update(frame.image, frame.time_s)

    bar = tqdm(total=total or None, desc=f"performer {args.name}", unit="frame", file=sys.stderr)

    def progress(frame: Any, reason: str | None) -> None:
        bar.update(1)

    try:
        descriptors, report = describe_performer(
            frames_of(args.inputs),
            track,
            describer.describe,
            lambda image, faces: usable_face(image, faces, face, config),
            every=args.every,
            progress=progress,
        )
    finally:
        bar.close()
    sources = [
        PerformerSource(path.name, models.sha256_file(path), report.described.get(_label(args.inputs, path), 0))
        for path in args.inputs
    ]
    performer = store.save(args.name, descriptors, sources, recogniser_sha, replace=args.replace)
    _audit(args, PERFORMER_ENROLLED, performer=args.name, sources=[s.to_dict() for s in sources])
    kept = performer.descriptors.shape[0]
    print(
        f"enrolled performer {args.name!r}: {report.summary()}; {performer.outliers} left out as someone else, "
        f"{kept} kept"
    )
    if performer.outliers > performer.faces_used // 4:
        print(
            f"warning: {performer.outliers} of {performer.faces_used} faces did not look like the rest: check that "
            "the clip shows one person (or pick one with --face)",
            file=sys.stderr,
        )
    return 0


def _label(paths: list[Path], path: Path) -> str:
    """How ``frames_of`` names a source (its file name, or its path when two share a name)."""
    names = [p.name for p in paths]
    return path.name if names.count(path.name) == 1 else str(path)


def run_list(args: argparse.Namespace) -> int:
    performers = _store(args).list()
    if args.json:
        print(json.dumps({"performers": [p.summary() for p in performers]}, indent=1))
        return 0
    if not performers:
        print("no performers enrolled (stageswap performers add NAME PHOTO_OR_CLIP...)")
        return 0
    print(f"{'name':<24} {'faces':>5} {'kept':>4}  {'created':<26} sources")
    for p in performers:
        sources = ", ".join(s.name for s in p.sources)
        print(f"{p.name:<24} {p.faces_used:>5} {p.descriptors.shape[0]:>4}  {p.created:<26} {sources}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from streamer.governance.audit import PERFORMER_REMOVED

    _store(args).remove(args.name)
    _audit(args, PERFORMER_REMOVED, performer=args.name)
    print(f"removed performer {args.name!r}")
    return 0
