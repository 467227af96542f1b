"""Speed of the swap pipeline per stage and per face, at 480p/720p/1080p and with a close-up, against tracking alone.

    python benchmarks/bench_swap.py [--clip s18.mp4] [--sizes 480 720 1080] [--closeup] [--identity s1.jpg]
                                    [--frames 120] [--repeat 2] [--clock wall|cpu] [--steps] [--work-px N]
                                    [--bounded default|on|off|both] [--mark NAME|off]

Decodes the clip once into memory (scaled to each ``--sizes`` height at the clip's aspect, or with
``--closeup`` cropped so the face fills 60% of the frame height and scaled to 16:9 at that height:
``benchmarks.closeup``), then runs the real ``FaceProcessor`` over the frames: tracking only (no identity,
no relight: the baseline) and the full swap (identity + relight ``match`` + blend), rounds alternating so
that load from other processes hits both alike. Prints p50/p99 per stage, the per-face sum swap + relight +
blend (issue 20: <= 8 ms at 720p, <= 10 ms at 1080p, for every face size) and frames per second of
processing alone (decode and encode excluded; issue 20: >= 45 fps at 720p with a close-up), with the face's
size (its window, px) and the machine's load. With ``--steps``, also where a face's time goes inside the
stages: each engine function the per-face stages call (``STEPS``) is timed while the real processor runs
(the outermost call only, so a step that calls another is not counted twice), per face and frame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
if TYPE_CHECKING:
    from engines.processor import FaceProcessor
    from engines.settings import ProcessSettings

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")
PER_FACE = "swap+relight+blend per face"


class _CpuClock:
    """``time`` as ``engines.stats`` and ``engines.processor`` see it with ``--clock cpu``: the stage timer
    reads the process's CPU time (every thread: OpenCV's workers too), which other work on a shared machine
    inflates far less than wall time; everything else is the real ``time`` module."""

    perf_counter = staticmethod(time.process_time)

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


def _frames(path: Path, count: int) -> list[tuple[np.ndarray, float]]:
    from streamer.record.media import VideoReader

    out = []
    with VideoReader(path) as reader:
        for frame in reader.frames():
            out.append((frame.image, frame.time_s))
            if len(out) >= count:
                break
    return out


def framed(
    frames: list[tuple[np.ndarray, float]], height: int, closeup: bool, models: Path
) -> list[tuple[np.ndarray, float]]:
    """The frames at ``height`` px: scaled at the clip's aspect, or a 16:9 close-up (``benchmarks.closeup``)."""
    h0, w0 = frames[0][0].shape[:2]
    if closeup:
        from benchmarks.closeup import closeup_crop, face_boxes

        width = round(height * 16 / 9) // 2 * 2
        boxes = face_boxes([f for f, _ in frames[:: max(1, len(frames) // 15)]], models)
        crop = closeup_crop((w0, h0), boxes, width / height)
        return [(crop.apply(image, (width, height)), t) for image, t in frames]
    width = round(w0 * height / h0) // 2 * 2
    interpolation = cv2.INTER_AREA if height < h0 else cv2.INTER_CUBIC
    return [(cv2.resize(image, (width, height), interpolation=interpolation), t) for image, t in frames]


_clock = time.perf_counter
"""What ``_run`` times whole frames with (``--clock cpu``: the process's CPU time)."""

STEPS = {
    "geometry": ("engines.swap.mesh", "MeshSwapper.geometry"),
    "actor warp": ("engines.swap.mesh", "MeshSwapper.actor_window"),
    "to mask size": ("engines.swap.mesh", "FaceGeometry.to_mask"),
    "render": ("engines.swap.mesh", "MeshSwapper.render"),
    "coverage": ("engines.swap.mesh", "MeshSwapper.coverage_small"),
    "to work size": ("engines.swap.mesh", "FaceGeometry.to_work"),
    "to window": ("engines.swap.mesh", "FaceGeometry.to_window"),
    "outline alpha": ("engines.compose.blend", "face_alpha_small"),
    "openings cut": ("engines.compose.blend", "cut_openings"),
    "shrink": ("engines.resample", "shrink"),
    "light measure": ("engines.light.relight", "FaceRelighter.measure_skin"),  # the skin samples and the fit
    "relight_face": ("engines.light.relight", "relight_face"),
    "colour gains": ("engines.compose.blend", "colour_gains"),
    "seam field": ("engines.compose.seam", "seam_field"),
    "relief field": ("engines.compose.relief", "relief_field"),
    "glasses": ("engines.face.glasses", "GlassesFinder.update"),
    "seam applied": ("engines.compose.seam", "apply_field"),
    "composite": ("engines.compose.blend", "composite"),
    "paste (fused)": ("engines.fused", "paste_face"),
    "iris": ("engines.compose.iris", "tint_irises"),
}
"""``--steps``: the engine functions the per-face stages spend their time in (name: module, attribute)."""
STEP = "step: "
_step_ms: dict[str, float] = {}
_step_depth = [0]


def _time_steps() -> None:
    """Wrap every ``STEPS`` function so each outermost call adds its time to ``_step_ms``: methods on their
    class, functions in their module and wherever an ``engines`` module imported them by name."""
    import functools
    import importlib

    for name, (module_name, attribute) in STEPS.items():
        owner: object = importlib.import_module(module_name)
        *path, leaf = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, leaf)

        def timed(*args, _original=original, _name=name, **kwargs):
            if _step_depth[0]:
                return _original(*args, **kwargs)
            _step_depth[0] += 1
            t0 = _clock()
            try:
                return _original(*args, **kwargs)
            finally:
                _step_ms[_name] = _step_ms.get(_name, 0.0) + (_clock() - t0) * 1000.0
                _step_depth[0] -= 1

        wrapped = functools.wraps(original)(timed)
        setattr(owner, leaf, wrapped)
        if not path:  # a function: also where it was imported by name
            for module in list(sys.modules.values()):
                if getattr(module, "__name__", "").startswith("engines.") and getattr(module, leaf, None) is original:
                    setattr(module, leaf, wrapped)


def _run(
    processor: FaceProcessor,
    frames: list[tuple[np.ndarray, float]],
    settings: ProcessSettings,
    per_stage: dict[str, list[float]],
    windows: list[int],
) -> float:
    """Process every frame; append per-stage ms (and the per-face swap+relight+blend sum); return seconds."""
    total = 0.0
    for image, t in frames:
        t0 = _clock()
        result = processor.process(image, t, settings)
        total += _clock() - t0
        ms = result.stage_ms
        for stage, value in ms.items():
            per_stage.setdefault(stage, []).append(value)
        if result.faces and "swap" in ms:
            per_face = (ms.get("swap", 0.0) + ms.get("relight", 0.0) + ms.get("blend", 0.0)) / len(result.faces)
            per_stage.setdefault(PER_FACE, []).append(per_face)
            for step, value in _step_ms.items():
                per_stage.setdefault(STEP + step, []).append(value / len(result.faces))
            if _step_ms:
                per_stage.setdefault(STEP + "all of the above", []).append(sum(_step_ms.values()) / len(result.faces))
        _step_ms.clear()
        for face in result.faces:
            lm = np.asarray(face.landmarks)
            windows.append(int(lm[:, 1].max() - lm[:, 1].min()))
        per_stage.setdefault("total", []).append((_clock() - t0) * 1000.0)
    return total


def measure(
    frames: list[tuple[np.ndarray, float]],
    identity: Path,
    models: str,
    repeat: int,
    work_px: int | None = None,
    bounded: str = "default",
    mark: str | None = None,
) -> dict[str, dict[str, object]]:
    """Baseline and swap rounds over ``frames``: per run, fps and p50/p99 per stage. ``work_px``: the processor's
    ``SwapConfig.work_px`` (None: the default). ``bounded``: ``SwapConfig.bounded`` — ``default``, ``on``, ``off``,
    or ``both`` (a swap run with it off and one with it on in every round, alternating: before and after in one
    process). ``mark``: the watermark every frame carries (a name in ``engines.compose.watermark.MARKS``, ``off``
    for none; None: the processor's default)."""
    import dataclasses

    from engines.compose.watermark import watermark_config
    from engines.identity.store import IdentityStore
    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.settings import ProcessSettings

    config = ProcessorConfig()
    if mark is not None:
        config = dataclasses.replace(
            config, watermark=watermark_config(enabled=False) if mark == "off" else watermark_config(mark)
        )
    if work_px is not None:
        config = dataclasses.replace(config, swap=dataclasses.replace(config.swap, work_px=work_px))

    def with_bounded(on: bool) -> ProcessorConfig:
        return dataclasses.replace(config, swap=dataclasses.replace(config.swap, bounded=on))

    with tempfile.TemporaryDirectory(prefix="stageswap-bench-") as tmp:
        store = IdentityStore(Path(tmp) / "identities", models)
        store.enroll("bench", [identity], face="largest")
        swap = ProcessSettings(identity="bench")
        runs: dict[str, tuple[ProcessSettings, ProcessorConfig]] = {
            "tracking only": (ProcessSettings(relight=False), config)
        }
        if bounded == "both":
            runs["swap + relight, bounded off"] = (swap, with_bounded(False))
            runs["swap + relight, bounded on"] = (swap, with_bounded(True))
        else:
            runs["swap + relight"] = (swap, config if bounded == "default" else with_bounded(bounded == "on"))
        stages: dict[str, dict[str, list[float]]] = {name: {} for name in runs}
        windows: dict[str, list[int]] = {name: [] for name in runs}
        seconds = dict.fromkeys(runs, 0.0)
        counts = dict.fromkeys(runs, 0)
        for round_index in range(repeat):
            # Alternate the order of the runs from round to round: load from other processes hits each alike.
            order = (
                list(runs.items())
                if round_index % 2 == 0
                else [*list(runs.items())[:1], *reversed(list(runs.items())[1:])]
            )
            for name, (settings, run_config) in order:
                processor = FaceProcessor.from_models(models, run_config, identities=store)
                _run(processor, frames[:10], settings, {}, [])  # warm-up: sessions, caches
                seconds[name] += _run(processor, frames, settings, stages[name], windows[name])
                counts[name] += len(frames)
    out: dict[str, dict[str, object]] = {}
    for name in runs:
        out[name] = {
            "fps": counts[name] / seconds[name] if seconds[name] > 0 else float("nan"),
            "face_height_px": float(np.median(windows[name])) if windows[name] else None,
            "stages": {
                stage: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)), "n": len(v)}
                for stage, v in stages[name].items()
            },
        }
    return out


def main() -> None:
    from engines.compose.watermark import DEFAULT_MARK, MARKS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="s18.mp4", help="a clip in the shared clips (default: s18.mp4, 1280x720)")
    ap.add_argument("--sizes", nargs="+", type=int, default=None, help="frame heights (default: the clip's own)")
    ap.add_argument("--closeup", action="store_true", help="crop so the face fills 60%% of the frame height")
    ap.add_argument("--identity", default="s1.jpg", help="an identity photo in the shared faces")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=2, help="rounds of baseline + swap")
    ap.add_argument("--models", default=os.environ.get("STAGESWAP_MODELS") or str(SHARED / "models"))
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="stage times in wall time (default) or in the process's CPU time (steadier on a shared machine)",
    )
    ap.add_argument(
        "--steps",
        action="store_true",
        help="also time the engine functions inside the per-face stages (p50 per face, 'step: ...' rows)",
    )
    ap.add_argument(
        "--work-px",
        type=int,
        default=None,
        help="the per-face working size N (SwapConfig.work_px: long side, px; default: the processor's)",
    )
    ap.add_argument(
        "--bounded",
        choices=["default", "on", "off", "both"],
        default="default",
        help="SwapConfig.bounded (window-size passes bounded, issue 20): both = a run with it off and one with it on "
        "in every round, alternating (before and after in one process)",
    )
    ap.add_argument(
        "--mark",
        choices=["off", *MARKS],
        default=None,
        help="the invisible watermark on every frame (default: the processor's, DEFAULT_MARK); off: none. A mark's "
        "OpenCV passes leave the thread pool spinning into the next stage, which --clock cpu counts there",
    )
    args = ap.parse_args()
    if args.clock == "cpu":
        import engines.processor
        import engines.stats

        engines.stats.time = engines.processor.time = _CpuClock()  # type: ignore[assignment]
        global _clock
        _clock = time.process_time
    if args.frames < 20 or args.repeat < 1:
        ap.error("--frames must be at least 20 and --repeat at least 1")
    if args.work_px is not None and args.work_px < 16:
        ap.error("--work-px must be at least 16")
    if args.steps:
        _time_steps()

    clip = Path(args.clip) if Path(args.clip).is_file() else SHARED / "data" / "clips" / args.clip
    photo = Path(args.identity) if Path(args.identity).is_file() else SHARED / "data" / "faces" / args.identity
    for path in (clip, photo):
        if not path.is_file():
            raise SystemExit(f"bench_swap: {path} not found (set STAGESWAP_SHARED or pass a path)")
    source = _frames(clip, args.frames)
    sizes = args.sizes or [source[0][0].shape[0]]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    report = []
    for height in sizes:
        frames = framed(source, height, args.closeup, Path(args.models))
        h, w = frames[0][0].shape[:2]
        load_before = os.getloadavg()[0]
        result = measure(frames, photo, args.models, args.repeat, args.work_px, args.bounded, args.mark)
        label = f"{args.clip} {'close-up ' if args.closeup else ''}{w}x{h} ({args.clock} time)"
        if args.work_px is not None:
            label += f", work size {args.work_px} px"
        label += f", mark {args.mark or DEFAULT_MARK}"
        print(
            f"\n{label}: {len(frames)} frames x {args.repeat} rounds, identity {args.identity}, "
            f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
        )
        for name, run in result.items():
            print(
                f"  {name}: {run['fps']:.1f} fps processing (decode/encode excluded), "
                f"face {run['face_height_px']} px high"
            )
            print(f"    {'stage':<30} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
            stages = run["stages"]
            assert isinstance(stages, dict)
            for stage, q in stages.items():
                print(f"    {stage:<30} {q['p50']:8.2f} {q['p99']:8.2f} {q['n']:6d}")
        report.append(
            {
                "clip": args.clip,
                "closeup": args.closeup,
                "clock": args.clock,
                "width": w,
                "height": h,
                "work_px": args.work_px,
                "mark": args.mark or DEFAULT_MARK,
                "runs": result,
            }
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
