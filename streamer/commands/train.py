"""`stageswap train NAME --src ... --dst ...`: train a swap model on two people's footage, export it as a DFM
and register it as swap model NAME with the src person's consent (engines.train). `--arch dnr` trains a neural
renderer of the src person alone instead (engines.train.neural_render), registered as model kind dnr.

Under ``torchrun --nproc_per_node N -m streamer train ...`` every process trains on its own batches and
rank 0 alone extracts facesets, prints, writes files and registers the model.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.commands import add_consent_args, add_models_arg, consent_from_args
from streamer.commands.faceset import add_faceset_args

if TYPE_CHECKING:
    import numpy as np

    from engines.train.faceset import Faceset
    from engines.train.loop import Dist, Progress, StopRule
    from engines.train.workspace import TrainingFolder
    from streamer.governance.consent import ConsentRecord

NET_FLAGS = ("arch", "encoder_dims", "ae_dims", "inter_dims", "decoder_dims", "resolution")


def register(sub: argparse._SubParsersAction) -> None:
    from engines.train.workspace import PRESETS

    p = sub.add_parser(
        "train",
        help="train your own swap model from footage of two people, export it as a DFM and register it",
        description="Train a face-swap model on footage of the person whose face goes in (--src) and of the "
        "performer it goes onto (--dst): facesets (folders from `stageswap faceset extract`) or clips and "
        "photos, extracted on the way. Progress shows on the terminal and on the monitor page; a preview "
        "PNG is rewritten every few minutes. Ctrl-C (or SIGTERM) stops cleanly with a checkpoint, and "
        "--resume continues exactly where it stopped. When training ends the model is exported as a DFM "
        "and registered as swap model NAME with the src person's consent (the same consent options as "
        "`models add`, checked before training starts). Several GPUs: torchrun --nproc_per_node N -m "
        "streamer train ... (each process takes --batch faces per person). --arch dnr instead trains a neural "
        "renderer of the src person alone (see --arch): --src footage only, --dst optional, to preview on.",
        epilog="Presets: " + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()),
    )
    p.add_argument("name", help="the swap model's name: 1-64 of a-z, 0-9, '_' and '-'")
    p.add_argument("--src", nargs="+", type=Path, metavar="FACESET_OR_CLIP", help="the person whose face goes in")
    p.add_argument(
        "--dst",
        nargs="+",
        type=Path,
        metavar="FACESET_OR_CLIP",
        help="the performer it goes onto; with --arch dnr optional and used for the preview only (the src person "
        "rendered on these faces' meshes): a dnr model learns nothing from the performer",
    )
    how_long = p.add_mutually_exclusive_group()
    how_long.add_argument("--minutes", type=float, metavar="M", help="train for M minutes (this run)")
    how_long.add_argument("--iterations", type=int, metavar="N", help="train until the model has N iterations")
    how_long.add_argument(
        "--cpu-minutes",
        type=float,
        metavar="M",
        help="train until this run has used M minutes of CPU time (a fixed amount of compute on a shared machine)",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="model size (default: cpu on the CPU, gpu on a GPU)")
    p.add_argument("--resolution", type=int, metavar="PX", help="face resolution, a multiple of 16, 64..512")
    p.add_argument(
        "--arch",
        choices=("df", "liae", "dnr"),
        help="DF (default: stronger likeness), LIAE, or dnr: a neural renderer of the src person on the tracked "
        "mesh (deferred neural rendering) -- it needs --src footage only (no --dst: it serves every performer), "
        "learns a likeness in minutes on a CPU (--resolution 64 or 128, default 128; 128 px costs about 1.4 "
        "CPU-seconds an iteration), and is registered as model kind dnr. Checkpoints, --resume, --export-only and "
        "the preview work as for DF (--resume needs no --arch: the checkpoint says what it trains), and so does "
        "torchrun for several GPUs (each process renders --batch faces of its own); Ctrl-C or SIGTERM writes a "
        "checkpoint and, unlike DF, registers what it learned so far",
    )
    for flag, what in (
        ("--encoder-dims", "first encoder stage's channels"),
        ("--ae-dims", "bottleneck width"),
        ("--inter-dims", "code channels"),
        ("--decoder-dims", "last decoder stage's channels"),
    ):
        p.add_argument(flag, type=int, metavar="N", help=f"{what} (default: the preset's)")
    p.add_argument("--batch", type=int, metavar="B", help="faces per person per iteration (default: the preset's)")
    p.add_argument("--lr", type=float, metavar="RATE", help="Adam learning rate (default 2e-4)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to train: auto takes the GPU when torch sees one (default: auto)",
    )
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads torch uses (default: all cores)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (CUDA; minutes to start)")
    p.add_argument("--resume", action="store_true", help="continue the training of NAME from its checkpoint")
    p.add_argument(
        "--export-only",
        action="store_true",
        help="export and register NAME from its last checkpoint without training (e.g. after Ctrl-C)",
    )
    p.add_argument("--checkpoint-every", type=float, default=5.0, metavar="MIN", help="minutes (default 5)")
    p.add_argument("--preview-every", type=float, default=3.0, metavar="MIN", help="minutes (default 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed of a new model (default 0)")
    p.add_argument("--licence", "--license", dest="licence", metavar="TEXT", help="the licence registered with it")
    p.add_argument("--replace", action="store_true", help="replace a registered model of the same name at the end")
    p.add_argument(
        "--faceset-resolution",
        type=int,
        metavar="PX",
        help="resolution of facesets extracted from clips given here (default: the model's)",
    )
    add_faceset_args(p, resolution_default=None)
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory (default: $STAGESWAP_DATA, else ~/.local/share/stageswap): training/NAME/ and "
        "the registered model",
    )
    add_models_arg(p)
    add_consent_args(
        p,
        unverified_help="register the model without a consent record for the src person (marked unverified everywhere)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engines.train.trainer import leave_distributed

    try:
        code = _run(args)
    except BaseException:
        leave_distributed(finished=False)
        raise
    leave_distributed()  # under torchrun: every rank done, the process group closed before the interpreter exits
    return code


def _run(args: argparse.Namespace) -> int:
    import torch

    from engines.errors import InputError
    from engines.paths import data_dir
    from engines.swap.user_models import UserModelStore
    from engines.train.loop import Dist, StopRule, check_disk, checkpoint_kind, read_checkpoint
    from engines.train.trainer import init_distributed, pick_device
    from engines.train.workspace import TrainingFolder

    where = Dist.from_env()
    data = data_dir(args.data_dir)
    folder = TrainingFolder(data, args.name)
    store = UserModelStore(data)
    if not args.replace and args.name in store.names() and not (args.resume or args.export_only):
        raise InputError(
            f"a model named {args.name!r} is registered already; train under another name, or pass --replace "
            "to replace it when training finishes"
        )
    device = pick_device(args.device, where)
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    state = read_checkpoint(folder.path, device)
    if state is not None and args.arch is not None and (args.arch == "dnr") != (checkpoint_kind(state) == "dnr"):
        dnr = checkpoint_kind(state) == "dnr"
        trained = "a neural renderer (dnr)" if dnr else f"a {str(state['config']['net']['arch']).upper()}"
        raise InputError(
            f"{folder.path} holds {trained} training of {args.name!r}, not --arch {args.arch}: continue it without "
            "--arch, or train under another name"
        )
    kind = "dnr" if args.arch == "dnr" or (state is not None and checkpoint_kind(state) == "dnr") else "dfm"
    consent = consent_from_args(args)
    if consent is not None or args.unverified or load_consent(folder) is None:
        save_consent(folder, consent, args.unverified, kind)  # ConsentError before any training
    if kind == "dnr":
        return _train_dnr(args, folder, store, device, where, state)
    if args.export_only:
        if state is None:
            raise InputError(f"no checkpoint of {args.name!r} in {folder.path} to export")
        return _finish(args, folder, store, state, where)
    _check_resume(args, folder, state)
    rule = StopRule(iterations=args.iterations, minutes=args.minutes, cpu_minutes=args.cpu_minutes)
    init_distributed(where, device)
    cfg, given = _config(args, device.type, state)
    if state is None and (not args.src or not args.dst):
        raise InputError("a new model needs --src (the face that goes in) and --dst (the performer)")
    src = _faceset(args, folder, "src", args.src, cfg.net.resolution, state, where)
    dst = _faceset(args, folder, "dst", args.dst, cfg.net.resolution, state, where)
    from engines.train.trainer import Trainer

    trainer = Trainer(cfg, src, dst, folder.path, device, where)
    if state is not None:
        trainer.loop.restore(state)
    if where.leader:
        check_disk(folder.path, trainer.parameters)
        _say_start(args, trainer, cfg, src, dst, folder, device.type, where, resumed=state is not None)
    outcome = _run_printing(trainer.run, rule, where, device)
    if outcome == "stopped":
        if where.leader:
            print(
                f"stopped at iteration {trainer.iteration}; checkpoint in {folder.checkpoint}. Continue: stageswap "
                f"train {args.name} --resume --minutes M; or export it as it is: stageswap train {args.name} "
                "--export-only"
            )
        return 0
    return _finish(args, folder, store, read_checkpoint_cpu(folder), where)


def save_consent(folder: TrainingFolder, record: ConsentRecord | None, unverified: bool, kind: str = "dfm") -> None:
    """Check the consent as ``models add`` would for a model of ``kind`` (ConsentError now, not after hours of
    training) and keep it in the training folder until the finished model is registered with it."""
    import json

    from engines.errors import OutputError
    from engines.paths import write_atomic
    from engines.train.workspace import CONSENT_FILE
    from streamer.governance.consent import check_enrollment

    check_enrollment(folder.name, record, unverified, subject=kind)
    data = {"unverified": record is None, "record": record.to_json() if record is not None else None}
    try:
        folder.path.mkdir(parents=True, exist_ok=True)
        write_atomic(folder.path / CONSENT_FILE, json.dumps(data, indent=1) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write {folder.path / CONSENT_FILE}: {exc.strerror or exc}") from exc


def load_consent(folder: TrainingFolder) -> tuple[ConsentRecord | None, bool] | None:
    """(record, unverified) decided when the training started; None when none was kept."""
    import json

    from engines.errors import InputError
    from engines.train.workspace import CONSENT_FILE
    from streamer.governance.consent import ConsentRecord

    path = folder.path / CONSENT_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    record = ConsentRecord.from_json(data["record"]) if data.get("record") is not None else None
    return record, bool(data.get("unverified")) and record is None


def _config(args: argparse.Namespace, device_type: str, state: dict[str, Any] | None) -> tuple[Any, set[str]]:
    """The TrainConfig from the preset and the flags given (a checkpoint's own on resume); the flags given."""
    from dataclasses import replace

    from engines.train.nets import NetConfig
    from engines.train.trainer import TrainConfig, resume_config
    from engines.train.workspace import PRESETS

    preset = PRESETS[args.preset or ("gpu" if device_type == "cuda" else "cpu")]
    given = {f for f in NET_FLAGS if getattr(args, f) is not None}
    net = NetConfig(**{**preset.net.to_json(), **{f: getattr(args, f) for f in given}})
    cfg = TrainConfig(
        net=net,
        batch=args.batch if args.batch is not None else preset.batch,
        lr=args.lr if args.lr is not None else TrainConfig.lr,
        seed=args.seed,
        checkpoint_every_s=max(0.05, args.checkpoint_every) * 60.0,
        preview_every_s=max(0.05, args.preview_every) * 60.0,
        compile=args.compile,
    )
    given |= {f for f in ("batch", "lr") if getattr(args, f) is not None}
    if state is not None:
        cfg = resume_config(state, cfg, given)
    return replace(cfg), given


def _faceset(
    args: argparse.Namespace,
    folder: TrainingFolder,
    side: str,
    inputs: Sequence[Path] | None,
    resolution: int,
    state: dict[str, Any] | None,
    where: Dist,
) -> Faceset:
    """The faceset of one side at the model's resolution: faceset folders as given, clips and photos
    extracted into the training folder (rank 0; the others wait), or on resume without --src/--dst the
    facesets the checkpoint was trained on."""
    import torch.distributed as dist

    from engines.errors import InputError
    from engines.train.faceset import INDEX_FILE, load_faceset, merge_facesets
    from streamer.commands.faceset import extract_faceset, faceset_config

    if not inputs:
        assert state is not None
        info = state[side]  # every folder it was trained on ("paths"; checkpoints before it kept "path" only)
        return merge_facesets([load_faceset(Path(p), resolution) for p in info.get("paths") or [info["path"]]])
    folders = [p for p in inputs if p.is_dir()]
    media = [p for p in inputs if not p.is_dir()]
    for p in folders:
        if not (p / INDEX_FILE).is_file():
            raise InputError(f"--{side} {p} is a folder but not a faceset (stageswap faceset extract ... --out {p})")
    if media:
        out = folder.faceset_dir(side)
        if where.leader:
            config = faceset_config(args, args.faceset_resolution or resolution)
            print(f"extracting the {side} faceset from {', '.join(p.name for p in media)} into {out}")
            report = extract_faceset(media, out, config, args.face, True, args.models)
            print(f"{side} faceset: {report.summary()} (look at {out / 'contact_sheet.png'})")
        if where.world > 1:
            dist.barrier()
        folders.append(out)
    return merge_facesets([load_faceset(p, resolution) for p in folders])


def _say_start(
    args: argparse.Namespace,
    trainer: Any,
    cfg: Any,
    src: Faceset,
    dst: Faceset,
    folder: TrainingFolder,
    device: str,
    where: Dist,
    resumed: bool,
) -> None:
    n = cfg.net
    procs = f" x {where.world} processes" if where.world > 1 else ""
    print(
        f"{'resuming' if resumed else 'training'} {args.name!r}: {n.arch.upper()} {n.resolution} px, "
        f"{trainer.parameters / 1e6:.1f} M parameters, batch {cfg.batch}{procs}, on {device}; src {len(src)} faces, "
        f"dst {len(dst)} faces{f', from iteration {trainer.iteration}' if resumed else ''}"
    )
    print(f"preview: {folder.path / 'preview.png'} (every {args.preview_every:g} min); Ctrl-C stops with a checkpoint")


def _run_printing(
    run: Callable[[StopRule, Callable[[Progress], None] | None], str], rule: StopRule, where: Dist, device: Any
) -> str:
    """``run(rule, on_progress)`` of either trainer with the progress line on rank 0, then its peak memory there;
    the run's outcome ("finished", "stopped", ...)."""
    printer = _Printer()
    outcome = run(rule, printer if where.leader else None)
    printer.close()
    if where.leader:
        print(_memory_line(device))
    return outcome


def _memory_line(device: Any) -> str:
    """Peak memory of this process (and of the GPU when training there)."""
    import resource

    import torch

    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    line = f"peak memory: {rss_gib:.2f} GiB resident"
    if device.type == "cuda":
        line += f", {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB on the GPU"
    return line


class _Printer:
    """Progress on one rewritten line on a terminal, a line every 30 s otherwise (logs stay readable)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = 0.0
        self.open = False

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if self.tty:
            sys.stdout.write("\r" + progress.line().ljust(100))
            sys.stdout.flush()
            self.open = True
        elif now - self.last >= 30.0 or progress.state != "running":
            print(progress.line(), flush=True)
            self.last = now

    def close(self) -> None:
        if self.open:
            sys.stdout.write("\n")
            self.open = False


def _finish(args: argparse.Namespace, folder: TrainingFolder, store: Any, state: dict[str, Any], where: Dist) -> int:
    """Export the checkpoint as a DFM and register it (rank 0)."""
    if not where.leader:
        return 0
    from engines.train.export import export_dfm
    from engines.train.nets import NetConfig, SwapNet

    net = SwapNet(NetConfig.from_json(state["config"]["net"]))
    net.load_state_dict(state["model"])
    export_dfm(net, folder.dfm)
    return _register(
        args, folder, store, folder.dfm, "dfm", float(state["coverage"]), int(state["iteration"]), state["elapsed_s"]
    )


def _register(
    args: argparse.Namespace,
    folder: TrainingFolder,
    store: Any,
    path: Path,
    kind: str,
    coverage: float,
    iterations: int,
    elapsed_s: float,
) -> int:
    """Register the exported ``path`` as swap model NAME with the consent decided when training started, as
    ``models add`` does (audited), and say how to swap with it."""
    from engines.train.workspace import DEFAULT_LICENCE
    from streamer.commands.models import _audit, consent_note
    from streamer.governance.audit import MODEL_REGISTERED
    from streamer.governance.consent import add_model, model_consent_summary

    kept = load_consent(folder)
    record, unverified = kept if kept is not None else (None, False)
    model = add_model(
        store,
        path,
        kind=kind,
        licence=args.licence or DEFAULT_LICENCE,
        name=args.name,
        replace=args.replace or args.name in store.names(),
        coverage=coverage,
        consent=record,
        unverified=unverified,
    )
    consent = model_consent_summary(model)
    _audit(
        args,
        MODEL_REGISTERED,
        model=model.name,
        kind=model.kind,
        sha256=model.sha256,
        licence=model.licence or None,
        replace=args.replace,
        trained={"iterations": iterations, "elapsed_s": round(float(elapsed_s))},
        **({"consent": consent} if consent is not None else {}),
    )
    print(
        f"exported {path} ({model.resolution} px, coverage {model.options['coverage']:g}) and registered it as "
        f"swap model {model.name!r} after {iterations} iterations"
    )
    note = consent_note(model)
    if note:
        print(f"warning: {note}")
    print(f"swap with it: stageswap process --swap-model {model.name} ... (or pick it on the monitor page)")
    return 0


def _train_dnr(
    args: argparse.Namespace,
    folder: TrainingFolder,
    store: Any,
    device: Any,
    where: Dist,
    state: dict[str, Any] | None,
) -> int:
    """``--arch dnr``: a neural renderer of the src person alone (``engines.train.neural_render``), run by the same
    loop as DF (checkpoints, ``--resume``, progress, previews), exported as ONNX and registered as model kind
    ``dnr`` when it finishes or is stopped (Ctrl-C, SIGTERM: the checkpoint is written first). ``--dst`` is
    footage to preview on: the preview shows the person rendered on those faces' meshes. Under torchrun as DF:
    every process trains on its own batches, rank 0 alone prints, writes files, exports and registers."""
    from engines.errors import InputError
    from engines.train.loop import RunTiming, StopRule, TrainingRun, check_disk
    from engines.train.neural_render import DnrConfig, DnrTrainConfig, DnrTrainer, train_config_from_json
    from engines.train.trainer import init_distributed

    given = {
        "--preset": args.preset,
        "--compile": args.compile,
        **{f"--{f.replace('_', '-')}": getattr(args, f) is not None for f in NET_FLAGS[1:5]},
    }
    unused = [flag for flag, value in given.items() if value]
    if unused:
        raise InputError(
            f"--arch dnr does not take {', '.join(unused)}: a neural renderer's size is set by --resolution alone"
        )
    if args.export_only:
        if state is None:
            raise InputError(f"no checkpoint of {args.name!r} in {folder.path} to export")
        return _finish_dnr(args, folder, store, state, where)
    _check_resume(args, folder, state)
    rule = StopRule(iterations=args.iterations, minutes=args.minutes, cpu_minutes=args.cpu_minutes)
    init_distributed(where, device)
    if state is not None:
        cfg = train_config_from_json(state["config"])
        res = cfg.net.resolution
        if args.resolution is not None and args.resolution != res:
            raise InputError(
                f"the checkpoint was trained with --resolution {res}, not {args.resolution}: resume without "
                f"--resolution (or with --resolution {res}), or start a new model under another name"
            )
        cfg = DnrTrainConfig(
            **{
                **{f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                **({"batch": args.batch} if args.batch is not None else {}),
                **({"lr": args.lr} if args.lr is not None else {}),
            }
        )
    else:
        if not args.src:
            raise InputError("--arch dnr needs --src: footage of the person whose face goes in (a faceset or clips)")
        cfg = DnrTrainConfig(
            net=DnrConfig(resolution=args.resolution or 128),
            batch=args.batch if args.batch is not None else DnrTrainConfig.batch,
            lr=args.lr if args.lr is not None else DnrTrainConfig.lr,
            seed=args.seed,
        )
    res = cfg.net.resolution
    src = _faceset(args, folder, "src", args.src, res, state, where)
    trainer = DnrTrainer(cfg, src, device=device, where=where)
    if args.dst or (state is not None and state.get("dst")):
        trainer.preview_on(_faceset(args, folder, "dst", args.dst, res, state, where))
    timing = RunTiming(max(0.05, args.checkpoint_every) * 60.0, max(0.05, args.preview_every) * 60.0)
    loop = TrainingRun(trainer, folder.path, timing)
    if state is not None:
        loop.restore(state)
    if where.leader:
        check_disk(folder.path, trainer.parameters)
        preview = f", preview on {trainer.dst_info['faces']} faces of --dst" if trainer.dst_info else ""
        procs = f" x {where.world} processes" if where.world > 1 else ""
        print(
            f"{'resuming' if state is not None else 'training'} {args.name!r}: neural renderer (dnr) {res} px, "
            f"{trainer.parameters / 1e6:.1f} M parameters, batch {cfg.batch}{procs}, on {device.type}; src "
            f"{len(src)} faces{preview}{f', from iteration {trainer.iteration}' if state is not None else ''}",
            flush=True,
        )
        print(
            f"preview: {folder.path / 'preview.png'} (every {args.preview_every:g} min); Ctrl-C stops with a "
            "checkpoint and registers what it learned",
            flush=True,
        )
    outcome = _run_printing(loop.run, rule, where, device)
    if where.leader and outcome == "stopped":
        print(
            f"stopped at iteration {trainer.iteration}: checkpoint in {folder.checkpoint}; continue: stageswap "
            f"train {args.name} --resume --minutes M"
        )
    if trainer.iteration == 0:
        raise InputError(f"{args.name!r} was stopped before its first iteration: nothing to register")
    if not where.leader:
        return 0
    return _finish_dnr(args, folder, store, read_checkpoint_cpu(folder), where)


def _finish_dnr(
    args: argparse.Namespace, folder: TrainingFolder, store: Any, state: dict[str, Any], where: Dist
) -> int:
    """Export a renderer checkpoint as ONNX (its texture baked in) and register it as kind ``dnr`` (rank 0)."""
    if not where.leader:
        return 0
    from engines.train.neural_render import NeuralRenderer, export_onnx, train_config_from_json

    net = NeuralRenderer(train_config_from_json(state["config"]).net)
    net.load_state_dict(state["model"])
    path = folder.path / f"{args.name}.onnx"
    export_onnx(net, path, _trained_shape(args, state))
    return _register(
        args, folder, store, path, "dnr", float(state["coverage"]), int(state["iteration"]), state["elapsed_s"]
    )


def _trained_shape(args: argparse.Namespace, state: dict[str, Any]) -> np.ndarray | None:
    """The src person's face shape from the facesets the checkpoint was trained on (``engines.train.shape``), for
    the swap's morph; None, said, when it cannot be measured (the model then renders on the actor's own shape)."""
    from engines.errors import InputError, ModelError
    from engines.face.landmarks import FaceMesh
    from engines.runtime import load_model, models
    from engines.train.shape import faceset_shape

    info = state["src"]
    folders = [Path(p) for p in info.get("paths") or [info["path"]]]
    try:
        return faceset_shape(folders, FaceMesh(load_model(models.resolve("facemesh", args.models))))
    except (InputError, ModelError) as exc:
        print(f"warning: {exc}; the model renders on the actor's own face shape", file=sys.stderr)
        return None


def read_checkpoint_cpu(folder: TrainingFolder) -> dict[str, Any]:
    """The checkpoint the loop has just written, on the CPU."""
    import torch

    from engines.train.loop import read_checkpoint

    state = read_checkpoint(folder.path, torch.device("cpu"))
    assert state is not None  # the loop just wrote it
    return state


def _check_resume(args: argparse.Namespace, folder: TrainingFolder, state: dict[str, Any] | None) -> None:
    """A checkpoint is continued only with --resume, and --resume needs one."""
    from engines.errors import InputError

    if state is not None and not args.resume:
        raise InputError(
            f"{folder.path} holds a training of {args.name!r} (iteration {state['iteration']}): continue it with "
            "--resume, export it with --export-only, or train under another name"
        )
    if state is None and args.resume:
        raise InputError(f"nothing to resume: no checkpoint of {args.name!r} in {folder.path}")
