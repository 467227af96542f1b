"""`stageswap identities add NAME PHOTO... | list | remove NAME`: the enrolled identities on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.commands import add_consent_args, add_models_arg, consent_from_args

if TYPE_CHECKING:
    from engines.identity.store import IdentityStore


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory (default: $STAGESWAP_DATA, else ~/.local/share/stageswap), holding identities/",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "identities",
        help="enroll, list and remove the identities faces can be swapped to",
        description="Identities are people enrolled from one or more photos; `process --identity NAME` and the "
        "live service swap faces to them.",
    )
    isub = p.add_subparsers(dest="identities_command", metavar="ACTION", required=True)

    add = isub.add_parser(
        "add",
        help="enroll an identity from photos",
        description="Enroll NAME from one or more photos or clips of the same person (frontal, even light, "
        "closed lips work best; from a clip stageswap picks such frames itself, plus a few turned ones, and "
        "merges them led by the sharpest: its face wherever it saw it, the others filling in the rest). "
        "A photo is refused with the reason when it shows no face, a face under 80 px wide, a face cut by the "
        "border, turned more than 45 degrees, or not a human face; a photo with several "
        "faces needs --face. Photos up to 100 Mpx are accepted (scaled down).",
    )
    add.add_argument("name", help="identity name: 1-64 of a-z, 0-9, '_' and '-'")
    add.add_argument(
        "photos",
        nargs="+",
        type=Path,
        metavar="PHOTO_OR_CLIP",
        help="JPEG, PNG, WebP, BMP or TIFF photos, or clips (.mp4, .mov, .mkv, .webm, ...): from a clip the "
        "sharpest frontal frames with closed lips and a few turned ones are enrolled",
    )
    add.add_argument(
        "--face",
        default=None,
        metavar="largest|N",
        help="which face of a photo with several: 'largest', or N counting from 0 = the largest",
    )
    add.add_argument("--replace", action="store_true", help="replace an identity of the same name")
    _data_dir_arg(add)
    add_models_arg(add)
    add_consent_args(add)
    add.set_defaults(func=run_add)

    ls = isub.add_parser("list", help="list the enrolled identities")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _data_dir_arg(ls)
    ls.set_defaults(func=run_list)

    rm = isub.add_parser("remove", help="delete an identity")
    rm.add_argument("name")
    _data_dir_arg(rm)
    rm.set_defaults(func=run_remove)

    cons = isub.add_parser(
        "consent",
        help="record, renew or show an identity's consent",
        description="With consent flags (or --consent FILE.json): record or replace NAME's consent (only the "
        "document's sha256 is kept). Without: show the record on file.",
    )
    cons.add_argument("name")
    _data_dir_arg(cons)
    add_consent_args(cons, unverified_flag=False)
    cons.set_defaults(func=run_consent)


def _store(args: argparse.Namespace) -> IdentityStore:
    from engines.identity.store import IdentityStore
    from engines.paths import data_dir

    return IdentityStore(data_dir(args.data_dir) / "identities", getattr(args, "models", None))


def _audit(args: argparse.Namespace, event: str, **data: object) -> None:
    """Append to the data directory's audit log (streamer.governance.audit), as the local user."""
    from engines.paths import data_dir
    from streamer.governance.audit import AuditLog, cli_operator

    AuditLog.in_data_dir(data_dir(args.data_dir)).append(event, data, operator=cli_operator())


def run_add(args: argparse.Namespace) -> int:
    from streamer.governance.consent import consent_summary, enroll_with_consent

    store = _store(args)
    consent = consent_from_args(args)
    from engines.identity.footage import is_video

    photos = _photos_and_clip_frames(args)
    # Frames of clips only: the sharpest neutral frontal one leads the merge, the others fill in what it did
    # not see (averaged, near-identical frames blur the face: engines.identity.enroll.build_texture).
    from_footage = all(is_video(p) for p in args.photos)
    info, record = enroll_with_consent(
        store, args.name, photos, consent, args.unverified, face=args.face, replace=args.replace,
        lead_first=from_footage,
    )  # fmt: skip
    _audit(
        args,
        "identity.enrolled",
        identity=info.name,
        photos=info.photos,
        replace=args.replace,
        consent=consent_summary(record),
    )
    print(f"enrolled {info.name!r} from {info.photos} photo(s) in {store.root / info.name}")
    if from_footage and len(photos) > 1:
        print(
            f"merged led by the first frame: the identity is its face (pixels and mesh) wherever it saw it, the "
            f"other {len(photos) - 1} fill in only what it did not see"
        )
    _embed(args, store, info.name, photos)
    if record is None:
        print("consent: none recorded (unverified)")
    else:
        print(f"consent: {consent_summary(record)['status']} ({record.consent_by}, {record.production})")
    for warning in info.warnings:
        print(f"warning: {warning}")
    return 0


def _photos_and_clip_frames(args: argparse.Namespace) -> list[Any]:
    """The photos as given, each clip replaced by the frames picked from it (engines.identity.footage)."""
    from engines.errors import InputError
    from engines.identity.footage import is_video, pick_frames
    from streamer.commands.faceset import build_tracker
    from streamer.record.media import VideoReader

    out: list[Any] = []
    tracker = None
    for path in args.photos:
        if not is_video(path):
            out.append(path)
            continue
        if not path.is_file():
            raise InputError(f"clip {path} {'is not a file' if path.exists() else 'does not exist'}")
        tracker = tracker or build_tracker(getattr(args, "models", None))
        tracker.reset()
        with VideoReader(path) as reader:
            frames = ((frame.image, frame.time_s) for frame in reader.frames())
            picked = pick_frames(frames, tracker.update, label=path.name)
        said = ", ".join(f"{p.index} ({p.kind}, yaw {p.yaw_deg:+.0f})" for p in picked)
        print(f"{path.name}: enrolling frames {said}")
        out.extend(p.image for p in picked)
    return out


def _embed(args: argparse.Namespace, store: IdentityStore, name: str, photos: list[Any]) -> None:
    """Embed the new identity for inswapper-style models with every registered recogniser
    (engines.identity.recognition).

    The identity is enrolled either way: a recogniser that fails is reported, the mesh swap still works."""
    from engines.errors import StageswapError
    from engines.identity.recognition import embed_identity
    from engines.paths import data_dir
    from engines.swap.user_models import UserModelStore

    try:
        used = embed_identity(UserModelStore(data_dir(args.data_dir)), store.root, name, photos)
    except StageswapError as exc:
        print(f"warning: no embedding for inswapper-style models: {exc}")
        return
    if used:
        print(f"embedded for inswapper-style models by: {', '.join(used)}")


def run_list(args: argparse.Namespace) -> int:
    from streamer.governance.consent import identity_consent_summary

    store = _store(args)
    infos = store.list()
    consent = {i.name: identity_consent_summary(store.root, i.name) for i in infos}
    if args.json:
        print(json.dumps([{**i.to_dict(), "consent": consent[i.name]} for i in infos], indent=1))
        return 0
    if not infos:
        print("no identities enrolled (stageswap identities add NAME PHOTO...)")
        return 0
    print(f"{'name':<24} {'created':<26} {'photos':>6}  {'consent':<10}  warnings")
    for i in infos:
        print(f"{i.name:<24} {i.created:<26} {i.photos:>6}  {consent[i.name]['status']:<10}  {'; '.join(i.warnings)}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    store = _store(args)
    store.remove(args.name)
    _audit(args, "identity.removed", identity=args.name)
    print(f"removed {args.name!r}")
    return 0


def run_consent(args: argparse.Namespace) -> int:
    from engines.errors import InputError
    from streamer.governance.consent import consent_summary, identity_consent, identity_dir, save_consent

    store = _store(args)
    if not store.exists(args.name):
        raise InputError(f"no identity named {args.name!r}: enroll it first (stageswap identities add)")
    record = consent_from_args(args)
    if record is None:
        current = identity_consent(store.root, args.name)
        if current is None:
            print(f"{args.name}: no consent recorded (unverified)")
        else:
            print(json.dumps({**current.to_json(), "status": consent_summary(current)["status"]}, indent=1))
        return 0
    save_consent(identity_dir(store.root, args.name), record)
    summary = consent_summary(record)
    _audit(args, "consent.recorded", identity=args.name, consent=summary)
    until = record.valid_until.isoformat() if record.valid_until else "open-ended"
    print(
        f"consent for {args.name!r} recorded: {summary['status']} ({record.consent_by}, {record.production}, {until})"
    )
    return 0
