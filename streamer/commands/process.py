"""`stageswap process`: a video file through the engines into a video file."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.settings import ProcessSettings
from streamer.commands import add_device_arg, add_models_arg, add_signing_args, add_watermark_mark_arg, signing_paths

if TYPE_CHECKING:
    from engines.identity.performers import PerformerStore
    from engines.identity.store import IdentityStore
    from engines.processor import FaceProcessor
    from engines.swap.user_models import UserModelStore
    from streamer.live.ring import FrameRing

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "process",
        help="process a video file into a video file",
        description="Track faces in a video file and write the processed video, keeping its resolution, "
        "frame rate, timestamps and audio. Every frame is processed (offline: nothing is dropped).",
    )
    p.add_argument("--input", "-i", required=True, type=Path, help="input video file (anything FFmpeg reads)")
    p.add_argument("--output", "-o", required=True, type=Path, help="output video (.mp4, .mov, .mkv; see --codec)")
    p.add_argument(
        "--codec",
        choices=("h264", "prores", "ffv1"),
        default="h264",
        help="output codec: h264 (8-bit; default), prores (ProRes 422 HQ, 10-bit, .mov/.mkv), ffv1 (lossless RGB "
        "at the input's depth, .mkv)",
    )
    p.add_argument("--stats", type=Path, metavar="F.json", help="write frames, fps and per-stage ms p50/p99 as JSON")
    p.add_argument(
        "--landmarks",
        type=Path,
        metavar="F.npz",
        help="write per-frame 468-point landmarks (frames x max-faces x 468 x 3, NaN where no face)",
    )
    p.add_argument("--debug-overlay", action="store_true", help="draw the tracked mesh, ids and head pose")
    g = p.add_argument_group("swap and relight")
    g.add_argument(
        "--identity",
        metavar="PHOTO_OR_NAME",
        help="swap every face to this enrolled identity, or to the person in this photo (enrolled for this run only, "
        "with no consent record: needs --unverified)",
    )
    g.add_argument(
        "--unverified",
        action="store_true",
        help="let --identity PHOTO swap in a person without a consent record (stageswap identities add records one)",
    )
    g.add_argument(
        "--swap-model",
        default="mesh",
        metavar="NAME",
        help="what swaps the face: mesh (the built-in swap; default), or a model registered with `stageswap models "
        "add`: an inswapper-style model swaps to --identity, a DFM to the identity it was trained on",
    )
    g.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="REF=NAME",
        help="swap enrolled identity NAME onto the face REF picks, and leave faces no --target picks untouched "
        "(repeatable; the first rule that picks a face wins): REF is a performer (stageswap performers add: "
        "recognised by face, also after leaving and coming back), id:N (a tracked face's id), largest, leftmost, "
        "rightmost or any; REF= (no NAME) leaves that face alone. Without --target every face gets --identity",
    )
    g.add_argument("--no-swap", action="store_true", help="keep the actors' faces (relight them only)")
    g.add_argument("--no-relight", action="store_true", help="do not relight")
    g.add_argument(
        "--no-keep-glasses",
        action="store_true",
        help="paint the swapped face over the actor's glasses too (by default, where a face wears glasses, their "
        "frame stays in front of the swap; --stats counts the frames each face was seen with glasses)",
    )
    g.add_argument(
        "--relight-target",
        default="match",
        metavar="TARGET",
        help="the light faces are relit to: match (the light on the actor; default), direction:X,Y,Z[,INTENSITY] "
        "(a key light toward X right, Y up, Z toward the camera), sh:FILE.json (27 SH coefficients), "
        "hdri:IMAGE (an equirectangular image file, or a name in DATA/hdri)",
    )
    g.add_argument("--strength", type=float, default=1.0, help="0..1: how much of the processed face shows (1)")
    g.add_argument(
        "--morph", type=float, default=None, help="0..1: move the face's shape toward the identity's (default 1)"
    )
    g.add_argument("--data-dir", metavar="DIR", help="data directory holding identities/ and hdri/")
    c = p.add_argument_group("colour (OpenColorIO; see README, Colour)")
    c.add_argument(
        "--colour-space",
        metavar="NAME",
        help="the input's colour space, e.g. 'ARRI LogC4', 'ACEScct', 'S-Log3 S-Gamut3.Cine' (stageswap colour list): "
        "the engines work in scene-linear light and the output goes back to this space, decoded and written at "
        "the input's depth (use --codec prores or ffv1 to keep 10 bits); default: display-referred Rec.709",
    )
    c.add_argument("--output-colour-space", metavar="NAME", help="encode the output in this space instead")
    c.add_argument(
        "--colour-config",
        default="studio-config-latest",
        choices=("studio-config-latest", "cg-config-latest"),
        help="OCIO's built-in config the names come from (default studio-config-latest)",
    )
    p.add_argument("--max-faces", type=int, default=4, help="most faces tracked at once (default 4)")
    p.add_argument("--detect-every", type=int, default=10, help="frames between face detections (default 10)")
    p.add_argument(
        "--detect-width",
        type=int,
        default=320,
        help="width the frame is scaled to for detection (default 320)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-watermark", action="store_true", help="do not mark the output with the invisible watermark")
    add_watermark_mark_arg(p)
    p.add_argument(
        "--no-sign",
        action="store_true",
        help="do not sign the output's provenance (C2PA manifest, made with the data directory's keys as for "
        "recordings: embedded in .mp4/.mov, OUT.c2pa beside .mkv; `stageswap verify OUT` checks it)",
    )
    add_signing_args(p)
    add_models_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engines.errors import InputError
    from engines.face.tracker import TrackerConfig
    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.runtime.select import resolve_device
    from streamer.live.ring_choice import make_ring, ring_device

    if args.max_faces < 1:
        raise InputError("--max-faces must be at least 1")
    if args.detect_every < 1:
        raise InputError("--detect-every must be at least 1")
    if args.detect_width < 64:
        raise InputError("--detect-width must be at least 64")
    from streamer.record.media import VideoReader

    # The input is opened once before the models load: a missing, unreadable or silent file is said first, not
    # after seconds of loading (or behind a missing model's message, which hid what was wrong with the input).
    with VideoReader(args.input):
        pass
    cert, key = signing_paths(args)
    if cert is not None and not args.no_sign:
        from engines.paths import data_dir
        from streamer.governance.provenance import signing_config

        signing_config(data_dir(args.data_dir), cert, key)  # files that are not there: said before processing
    from engines.compose.watermark import watermark_config

    config = ProcessorConfig(
        tracker=TrackerConfig(max_faces=args.max_faces, detect_every=args.detect_every),
        detect_width=args.detect_width,
        device=resolve_device(args.device),
        watermark=watermark_config(args.watermark_mark, enabled=not args.no_watermark),
    )
    with contextlib.ExitStack() as scratch:
        # The live path's ring for the device, made before the models load: with --device cuda every frame is
        # uploaded once into the CUDA ring (pycuda missing: said now, in one line). run_process frees it.
        where, warning = ring_device(config.device, args.device)
        if warning is not None:
            print(f"warning: {warning}")
        ring = make_ring(where)
        scratch.callback(ring.free)
        settings, store, hdri_dir, user_models = _plan(args, scratch)
        config = dataclasses.replace(config, hdri_dir=hdri_dir)
        performers = _performer_store(args, settings)
        processor = FaceProcessor.from_models(args.models, config, store, user_models, performers)
        return _run(args, processor, settings, user_models, ring)


def _run(
    args: argparse.Namespace,
    processor: FaceProcessor,
    settings: ProcessSettings,
    user_models: UserModelStore | None,
    ring: FrameRing,
) -> int:
    from streamer.governance.provenance import utc_now
    from streamer.record.batch import ProcessJob, run_process

    started = utc_now()

    deep = settings.colour.input is not None  # colour-managed footage: decoded and written at its own depth
    job = ProcessJob(
        input=args.input,
        output=args.output,
        settings=settings,
        stats_path=args.stats,
        landmarks_path=args.landmarks,
        max_faces=args.max_faces,
        progress=not args.no_progress,
        codec=args.codec,
        deep=deep,
    )
    if deep and args.codec == "h264":
        print("note: H.264 output is 8-bit; --codec prores or ffv1 keeps 10-bit footage's depth")
    stats = run_process(job, processor, ring=ring)
    stages = ", ".join(f"{k} {v['p50']:.1f}" for k, v in stats["stage_ms"].items() if k != "total")
    print(
        f"wrote {args.output}: {stats['frames']} frames, face in {stats['frames_with_face']}, "
        f"{stats['fps']:.1f} fps processing (p50 ms: {stages})"
    )
    for row in stats.get("targets", []):
        who = f" (performer {row['performer']})" if row["performer"] else ""
        given = ", ".join(f"{name} {n}" for name, n in row["identities"].items()) or "none"
        print(f"  face {row['face']}{who}: {row['frames']} frames; swapped to {given}; untouched {row['untouched']}")
    if stats["frames_with_face"] == 0:
        print("note: no face was found in any frame; the output is the input re-encoded")
    if not args.no_sign:
        _sign(args, settings, stats, user_models, started)
    return 0


def _sign(
    args: argparse.Namespace,
    settings: ProcessSettings,
    stats: dict[str, Any],
    user_models: UserModelStore | None,
    started: str,
) -> None:
    """Sign the output like a recording; without keys say so (and how to make them), the file stays as it is."""
    from engines.paths import data_dir
    from engines.swap.user_models import UserModelStore
    from streamer.governance.process_provenance import ProcessedFile, sign_processed

    data = data_dir(args.data_dir)
    photo_path = Path(args.identity) if args.identity else None
    from_photo = settings.swap and settings.identity == "photo" and photo_path is not None and photo_path.is_file()
    photo = photo_path.name if from_photo and photo_path is not None else None
    done = ProcessedFile(
        args.output,
        args.input,
        settings,
        stats.get("watermark_id"),
        unverified_photo=photo,
        targets=tuple(stats.get("targets", ())),
        watermark_mark=stats.get("watermark_mark"),
    )
    cert, key = signing_paths(args)
    result = sign_processed(done, data, user_models or UserModelStore(data), started, cert, key)
    if result["signed"]:
        where = "embedded" if result["manifest"] == "embedded" else f"in {result['manifest']}"
        print(f"signed {args.output}: C2PA manifest {where} ({result['validation_state']}); check: stageswap verify")
    else:
        print(f"warning: {args.output} is NOT signed: {result['reason']}")


def _plan(
    args: argparse.Namespace, scratch: contextlib.ExitStack
) -> tuple[ProcessSettings, IdentityStore | None, Path | None, UserModelStore | None]:
    """The run's settings, planned as a live stream's are (``streamer.plan.make_plan``: validated, names
    resolved, consent checked once), with the stores and HDRI folder they need. Everything that would only
    fail frame by frame — an unknown identity or model, a model that cannot run, expired consent — is said
    now, before a frame is read."""
    from engines.errors import InputError
    from engines.light.relight import target_sh
    from engines.light.sh import constant_sh
    from engines.paths import data_dir
    from engines.swap.user_models import MESH, SWAP_KINDS, UserModelStore
    from streamer.governance.consent import model_consent
    from streamer.plan import Plan, StoreResolver, make_plan

    data = data_dir(args.data_dir)
    patch, store, hdri_dir = _swap_patch(args, scratch)
    models = UserModelStore(data) if patch["swap"] and patch["swap_model"] != MESH else None
    if models is not None:
        model = models.get(patch["swap_model"], SWAP_KINDS)
        if model.kind == "inswapper":
            if store is None or patch.get("identity") is None:  # said with the flag that is missing
                raise InputError(f"--swap-model {model.name} is inswapper-style: give --identity NAME or a photo")
            if patch["identity"] == "photo":  # the run's own identity needs its embedding before the plan checks it
                from engines.identity.recognition import embed_identity

                embed_identity(models, store.root, "photo", [Path(args.identity)])
    root = store.root if store is not None else data / "identities"
    from engines.identity.performers import PerformerStore

    resolver = StoreResolver(root, hdri_dir, store, models, PerformerStore(data / "performers"))
    plan = make_plan(Plan(ProcessSettings()), patch, resolver).plan
    settings = plan.run_settings
    if models is not None:
        model = models.get(settings.swap_model)
        if model.is_likeness and model_consent(model) is None:
            what = "DFM" if model.kind == "dfm" else f"{model.kind} (neural renderer)"
            print(f"warning: {what} model {model.name!r} is swapped in unverified (no consent record)")
        if model.research_only or not model.licence:
            print(f"warning: model {model.name!r}: licence {model.licence or 'undeclared'} (see stageswap models list)")
    if settings.relight:
        target_sh(settings.relight_target, constant_sh(1.0), hdri_dir)  # an HDRI that does not decode: say so now
    return settings, store, hdri_dir, models


def _swap_patch(
    args: argparse.Namespace, scratch: contextlib.ExitStack
) -> tuple[dict[str, Any], IdentityStore | None, Path | None]:
    """The settings the flags ask for (a patch, as a PATCH body), the identity store, the HDRI folder."""
    from engines.errors import InputError
    from engines.identity.store import IdentityStore
    from engines.paths import data_dir

    data = data_dir(args.data_dir)
    hdri_dir: Path | None = data / "hdri"
    patch: dict[str, Any] = {
        "debug_overlay": bool(args.debug_overlay),
        "swap": not args.no_swap,
        "relight": not args.no_relight,
        "strength": args.strength,
        "keep_glasses": not args.no_keep_glasses,
    }
    if args.morph is not None:
        patch["morph"] = args.morph
    if args.colour_space is not None:
        patch["colour"] = {"input": args.colour_space, "output": args.output_colour_space, "config": args.colour_config}
    elif args.output_colour_space is not None:
        raise InputError("--output-colour-space needs --colour-space (the space the input is in)")
    patch["swap_model"] = args.swap_model
    target, hdri_dir = _relight_target(args.relight_target, hdri_dir, scratch)
    patch["relight_target"] = target
    store: IdentityStore | None = None
    if args.identity and not args.no_swap:
        photo = Path(args.identity)
        if photo.suffix.lower() in PHOTO_SUFFIXES or photo.is_file():
            if not photo.is_file():
                raise InputError(f"identity photo {photo} does not exist")
            if not args.unverified:
                raise InputError(
                    f"--identity {photo}: a photo has no consent record; enroll the person with consent "
                    "(stageswap identities add NAME PHOTO --consent-by ... --production ... --valid-until ...) and "
                    "give --identity NAME, or pass --unverified to swap in an unverified likeness"
                )
            tmp = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="stageswap-identity-")))
            store = IdentityStore(tmp / "identities", args.models)
            info = store.enroll("photo", [photo], face="largest")
            for warning in info.warnings:
                print(f"warning: {warning}")
            print(f"warning: {photo.name} is swapped in unverified (no consent record)")
            patch["identity"] = "photo"
        else:
            store = IdentityStore(data / "identities", args.models)
            patch["identity"] = args.identity
            store.load(args.identity)  # unknown or damaged: say so now, not as passed-through frames
    if args.target and not args.no_swap:
        patch["targets"] = [_target_rule(text) for text in args.target]
        if args.identity:
            print("note: --identity is not used with --target: faces get their rule's identity (any=NAME for the rest)")
        if patch.get("identity") == "photo":
            raise InputError("--target names enrolled identities; --identity PHOTO cannot be combined with it")
        store = store or IdentityStore(data / "identities", args.models)
        for rule in patch["targets"]:
            if isinstance(rule.get("identity"), str):
                store.load(rule["identity"])  # unknown or damaged: say so now (its consent: in the plan)
    return patch, store, hdri_dir


def _target_rule(text: str) -> dict[str, Any]:
    """``--target REF=NAME`` as a ``targets`` rule (``REF=`` leaves the face alone); checked by ``apply_patch``."""
    from engines.errors import InputError

    ref, sep, name = text.partition("=")
    if not sep or not ref:
        raise InputError(f"--target must be REF=NAME (a performer, id:N, largest... = an identity), got {text!r}")
    return {"match": ref, "identity": name or None}


def _performer_store(args: argparse.Namespace, settings: ProcessSettings) -> PerformerStore | None:
    """The data directory's performers when a rule names one (each checked now, not as passed-through frames)."""
    from engines.identity.performers import PerformerStore
    from engines.paths import data_dir

    wanted = [r.performer for r in settings.targets if r.performer is not None]
    if not wanted:
        return None
    store = PerformerStore(data_dir(args.data_dir) / "performers")
    for name in wanted:
        store.load(name)
    return store


def _relight_target(
    text: str, hdri_dir: Path | None, scratch: contextlib.ExitStack
) -> tuple[dict[str, Any], Path | None]:
    """``--relight-target`` as a ``relight_target`` patch (and the HDRI folder to use)."""
    from engines.errors import InputError

    mode, _, value = text.partition(":")
    if mode == "match" and not value:
        return {"mode": "match"}, hdri_dir
    if mode == "direction":
        try:
            numbers = [float(v) for v in value.split(",")]
        except ValueError:
            raise InputError(f"--relight-target direction:X,Y,Z[,INTENSITY] needs numbers, got {value!r}") from None
        if len(numbers) not in (3, 4):
            raise InputError(f"--relight-target direction:X,Y,Z[,INTENSITY] needs 3 or 4 numbers, got {value!r}")
        patch: dict[str, Any] = {"mode": "direction", "direction": numbers[:3]}
        if len(numbers) == 4:
            patch["intensity"] = numbers[3]
        return patch, hdri_dir
    if mode == "sh":
        path = Path(value)
        try:
            obj = json.loads(path.read_text())
        except OSError as exc:
            raise InputError(f"cannot read SH file {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise InputError(f"SH file {path} is not valid JSON: {exc}") from exc
        coefficients = obj.get("sh") if isinstance(obj, dict) else obj
        if isinstance(coefficients, list) and coefficients and isinstance(coefficients[0], list):
            coefficients = [v for row in coefficients for v in row]
        return {"mode": "sh", "sh": coefficients}, hdri_dir
    if mode == "hdri" and value:
        path = Path(value)
        if path.is_file():  # a file anywhere: linked into a scratch folder under a valid name
            folder = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="stageswap-hdri-")))
            (folder / f"stage{path.suffix.lower()}").symlink_to(path.resolve())
            return {"mode": "hdri", "hdri": "stage"}, folder
        return {"mode": "hdri", "hdri": value}, hdri_dir
    raise InputError(
        f"--relight-target must be match, direction:X,Y,Z[,INTENSITY], sh:FILE.json or hdri:IMAGE, got {text!r}"
    )
