#!/usr/bin/env python3
"""build_engines.py — prepare stageswap's GPU engines offline.

For every engine in the catalogue (``engines.catalogue.CATALOGUE``), and every model registered with
``stageswap models add`` or ``stageswap train`` in the data directory (inswapper-style, DFM, neural-renderer
(``dnr``) and ArcFace-style ONNX files; engines named ``user-NAME``, validated by their kind's checks and ONNX
Runtime, compiled as registered):

1. our torch engines (the face mesh converted from MediaPipe's TFLite, the relight modules) are exported to
   ONNX (opset 17); the registry's ONNX models (YuNet) are taken as published;
2. every graph is validated: the ONNX checker (full check), its optimisation profile against the graph's
   inputs, and ONNX Runtime's output against the torch module (ours, or the torch interpreter the GPU
   fallback runs for registry models) within the engine's stated tolerance;
3. without ``--dry-run``: each graph is compiled to a TensorRT plan (fp16 unless ``--no-fp16``, one
   explicit optimisation profile — 1-8 faces for per-face engines —, a timing cache shared by the builds),
   the plan's output is checked against ONNX Runtime, and the plan is recorded in ``manifest.json`` under
   the GPU name, TensorRT version and model fingerprint. A plan that is up to date is kept; a stale one
   (other GPU, other TensorRT, changed model) is rebuilt; ``--force`` rebuilds all.

``--dry-run`` needs no GPU and no TensorRT and writes nothing: it is what CI runs.

Exit status: 0 all good, 1 an engine failed its checks, 2 a usage or setup error (one line on stderr).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import ModelError, StageswapError

EXIT_FAILED = 1
EXIT_ERROR = 2
CHECK_BATCHES = (1, 3)
"""Batch sizes every per-face graph is compared at (the exported graphs must not be specialised to one)."""

log = logging.getLogger("build_engines")


@dataclass
class EngineReport:
    name: str
    source: str = ""
    checks: list[str] = field(default_factory=list)
    plan: str = ""
    ok: bool = True
    problem: str = ""
    seconds: float = 0.0

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problem = problem


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from engines.catalogue import CATALOGUE

    p = argparse.ArgumentParser(
        prog="build_engines.py",
        description="Export stageswap's torch engines to ONNX, validate every graph, and compile TensorRT plans "
        "for this GPU (fp16, optimisation profiles for 1-8 faces, a timing cache, a manifest).",
    )
    p.add_argument("--models", type=Path, metavar="DIR", help="models directory (default: the registry's search order)")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="engines directory for ONNX files, plans, the timing cache and manifest.json "
        "(default: $STAGESWAP_ENGINES or ~/.cache/stageswap/engines; the service reads the same place)",
    )
    p.add_argument(
        "--fp16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let TensorRT use fp16 kernels (default: on)",
    )
    p.add_argument("--dry-run", action="store_true", help="validate every graph without a GPU; write nothing")
    p.add_argument("--force", action="store_true", help="rebuild plans even when they are up to date")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"only these engines (of: {', '.join(CATALOGUE)}, and user-NAME for a registered model NAME)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="data directory whose registered models (stageswap models add) are built too "
        "(default: $STAGESWAP_DATA, else ~/.local/share/stageswap)",
    )
    p.add_argument("--no-user-models", action="store_true", help="leave out the models registered by users")
    p.add_argument("--workspace-gb", type=float, default=4.0, help="TensorRT builder workspace limit (default 4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    args = p.parse_args(argv)
    if args.only:
        try:
            known = [*CATALOGUE, *user_models(args)]
        except StageswapError as exc:
            p.error(str(exc))
        unknown = [n for n in args.only if n not in known]
        if unknown:
            p.error(f"argument --only: unknown engine(s) {', '.join(unknown)} (choose from {', '.join(known)})")
    return args


def user_models(args: argparse.Namespace) -> dict[str, Any]:
    """The registered models to build, by engine name (``user-NAME``); none with ``--no-user-models``."""
    if args.no_user_models:
        return {}
    from engines.paths import data_dir
    from engines.swap.learned import PLAN_PREFIX
    from engines.swap.user_models import UserModelStore

    store = UserModelStore(data_dir(args.data_dir))
    return {PLAN_PREFIX + m.name: m for m in store.list()}


# ---- validation (no GPU) ------------------------------------------------------------------------------------


def _graph_inputs(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape with -1 for symbolic axes) of a graph's real inputs, as TensorRT's parser sees them."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    result = []
    for v in graph.input:
        if v.name in inits:
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim)
        result.append((v.name, dims))
    return result


def check_graph(path: Path, profiles: Any) -> str:
    """ONNX checker (full) + profile/graph agreement; returns a one-line description."""
    import onnx

    from engines.runtime.export import ONNX_MAX_IR_VERSION
    from engines.runtime.tensorrt import profile_for_network

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"ONNX checker rejects {path.name}: {str(exc).splitlines()[0]}") from exc
    model = onnx.load(str(path), load_external_data=False)
    if model.ir_version > ONNX_MAX_IR_VERSION:
        raise ModelError(
            f"{path.name} has ONNX IR version {model.ir_version}; TensorRT 10 reads <= {ONNX_MAX_IR_VERSION}"
        )
    profile_for_network(_graph_inputs(path), profiles)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return f"checker ok (IR {model.ir_version}, opset {opset}), profile fits"


def _ort_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types
        raise ModelError(f"ONNX Runtime cannot load {path.name}: {str(exc).splitlines()[0]}") from exc


def _compare(
    what: str, actual: dict[str, np.ndarray], reference: dict[str, np.ndarray], tolerance: Any
) -> tuple[float, str | None]:
    """Worst |Δ| over every output, and a problem description when one is out of tolerance."""
    worst = 0.0
    for name, ref in reference.items():
        if name not in actual:
            return worst, f"{what}: output {name!r} missing"
        got = actual[name]
        if got.shape != ref.shape:
            return worst, f"{what}: output {name!r} has shape {got.shape}, expected {ref.shape}"
        if not np.isfinite(got).all():
            return worst, f"{what}: output {name!r} has non-finite values"
        diff, excess = tolerance.max_excess(got, ref)
        worst = max(worst, diff)
        if excess > 0:
            return worst, (
                f"{what}: output {name!r} differs by up to {diff:.3g} "
                f"(tolerance {tolerance.atol:g} + {tolerance.rtol:g}·|ref|)"
            )
    return worst, None


def validate_torch_engine(engine: Any, models_dir: Path | None, onnx_path: Path, report: EngineReport) -> None:
    """Export ``engine`` to ``onnx_path`` and check it: checker, profile, ORT vs torch at several batches."""
    import torch

    from engines.runtime.export import export_onnx

    module = engine.factory(models_dir)
    export_onnx(engine, module, onnx_path)
    report.checks.append(check_graph(onnx_path, engine.profiles))
    session = _ort_session(onnx_path)
    worst = 0.0
    for batch in CHECK_BATCHES:
        inputs = engine.example_inputs(module, batch)
        with torch.inference_mode():
            result = module(*inputs)
        results = result if isinstance(result, tuple | list) else (result,)
        reference = {n: t.numpy() for n, t in zip(engine.output_names, results, strict=True)}
        feeds = {n: t.numpy() for n, t in zip(engine.input_names, inputs, strict=True)}
        actual = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
        diff, problem = _compare(f"ONNX Runtime vs torch, batch {batch}", actual, reference, engine.onnx_tolerance)
        worst = max(worst, diff)
        if problem:
            raise ModelError(problem)
    tol = engine.onnx_tolerance
    report.checks.append(
        f"ONNX Runtime = torch at batch {', '.join(map(str, CHECK_BATCHES))}: max |Δ| {worst:.2g} "
        f"(tolerance {tol.atol:g} + {tol.rtol:g}·|ref|)"
    )


def validate_onnx_model(engine: Any, model_path: Path, report: EngineReport) -> None:
    """A registry ONNX model: checker, profile, and the GPU fallback's torch interpreter vs ONNX Runtime."""
    import torch

    from engines.runtime.convert.onnx_torch import load_onnx_module

    report.checks.append(check_graph(model_path, engine.profiles))
    session = _ort_session(model_path)
    module = load_onnx_module(model_path)
    feeds = engine.example_inputs(1)
    reference = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    with torch.inference_mode():
        actual = {k: v.numpy() for k, v in module(**{k: torch.from_numpy(v) for k, v in feeds.items()}).items()}
    diff, problem = _compare("torch fallback vs ONNX Runtime", actual, reference, engine.torch_tolerance)
    if problem:
        raise ModelError(problem)
    tol = engine.torch_tolerance
    report.checks.append(
        f"torch fallback = ONNX Runtime: max |Δ| {diff:.2g} (tolerance {tol.atol:g} + {tol.rtol:g}·|ref|)"
    )


def validate_user_model(engine: Any, report: EngineReport) -> None:
    """A registered model: checker, profile, its kind's checks and an ONNX Runtime run (as at registration),
    and whether the GPU fallback's torch interpreter can run it (without a plan it runs on the CPU if not)."""
    import torch

    from engines.runtime.convert.onnx_torch import load_onnx_module
    from engines.swap.model_inspect import inspect_model

    report.checks.append(check_graph(engine.path, engine.profiles))
    found = inspect_model(engine.path, engine.model.kind)
    report.checks.append(f"{found.kind} signature ok at {found.resolution} px; ONNX Runtime runs it")
    try:
        module = load_onnx_module(engine.path)
    except ModelError as exc:
        why = str(exc).splitlines()[0].split(" (supported")[0]
        report.checks.append(f"GPU fallback: none ({why}); without a TensorRT plan it runs on the CPU")
        return
    session = _ort_session(engine.path)
    feeds = engine.example_inputs(1)
    reference = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    with torch.inference_mode():
        actual = {k: v.numpy() for k, v in module(**{k: torch.from_numpy(v) for k, v in feeds.items()}).items()}
    diff, problem = _compare("torch fallback vs ONNX Runtime", actual, reference, engine.trt_tolerance)
    if problem:
        raise ModelError(problem)
    report.checks.append(f"torch fallback = ONNX Runtime: max |Δ| {diff:.2g}")


# ---- compiling (GPU + TensorRT) -------------------------------------------------------------------------------


def require_gpu_and_tensorrt() -> tuple[str, str]:
    """(GPU name, TensorRT version), or a StageswapError saying what is missing and about --dry-run."""
    from engines.errors import InputError
    from engines.runtime.select import cuda_available, gpu_name
    from engines.runtime.tensorrt import import_tensorrt

    if not cuda_available():
        raise InputError(
            "no CUDA GPU is visible to torch, so no TensorRT plan can be built here; "
            "`python build_engines.py --dry-run` validates every graph without a GPU"
        )
    try:
        trt = import_tensorrt()
    except ModelError as exc:
        raise ModelError(f"{exc}. `python build_engines.py --dry-run` validates every graph without TensorRT") from exc
    return gpu_name(), str(trt.__version__)


def _feeds_maker(engine: Any, models_dir: Path | None) -> Callable[[int], dict[str, np.ndarray]]:
    """Example inputs by batch size, as numpy feeds, for either kind of engine."""
    from engines.runtime.export import TorchEngine

    if isinstance(engine, TorchEngine):
        module = engine.factory(models_dir)
        names = engine.input_names
        return lambda batch: {n: t.numpy() for n, t in zip(names, engine.example_inputs(module, batch), strict=True)}
    return lambda batch: dict(engine.example_inputs(batch))


def compile_engine(
    engine: Any,
    onnx_path: Path,
    models_dir: Path | None,
    out_dir: Path,
    gpu: str,
    trt_version: str,
    args: argparse.Namespace,
    report: EngineReport,
) -> None:
    """Build (or keep) the plan for ``engine``, check it against ONNX Runtime, record it in the manifest."""
    from engines.runtime.models import sha256_file
    from engines.runtime.plans import Manifest, PlanEntry, PlanKey
    from engines.runtime.tensorrt import BuildOptions, TrtSession, build_plan

    key = PlanKey(gpu, trt_version, engine.fingerprint(models_dir))
    manifest = Manifest.load(out_dir)
    found = manifest.lookup(engine.name, key)
    if found.ok and not args.force:
        report.plan = f"up to date: {found.entry.plan if found.entry else ''}"
        return
    if found.reason and not found.reason.startswith("no TensorRT plan"):
        report.checks.append(f"rebuilding: {found.reason}")
    plan_name = key.file_stem(engine.name) + ".plan"
    options = BuildOptions(
        fp16=args.fp16, workspace_bytes=int(args.workspace_gb * (1 << 30)), timing_cache=out_dir / "timing.cache"
    )
    profiles = build_plan(onnx_path, out_dir / plan_name, engine.profiles, options)
    session = TrtSession(out_dir / plan_name, profiles)
    reference_session = _ort_session(onnx_path)
    worst = 0.0
    feeds_for = _feeds_maker(engine, models_dir)
    for batch in CHECK_BATCHES if _batch_varies(engine) else (1,):
        feeds = feeds_for(batch)
        names = [o.name for o in reference_session.get_outputs()]
        reference = dict(zip(names, reference_session.run(None, feeds), strict=True))
        diff, problem = _compare(
            f"TensorRT vs ONNX Runtime, batch {batch}", session.run(feeds), reference, engine.trt_tolerance
        )
        worst = max(worst, diff)
        if problem:
            (out_dir / plan_name).unlink(missing_ok=True)
            raise ModelError(problem + "; the plan was not installed")
    session.close()
    entry = PlanEntry(
        name=engine.name,
        key=key,
        plan=plan_name,
        plan_sha256=sha256_file(out_dir / plan_name),
        fp16=bool(args.fp16),
        profiles=profiles,
        onnx_sha256=sha256_file(onnx_path),
        built_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    replaced = manifest.record(entry)
    manifest.save()
    if replaced is not None and replaced.plan != plan_name:
        (out_dir / replaced.plan).unlink(missing_ok=True)
    tol = engine.trt_tolerance
    report.checks.append(f"TensorRT = ONNX Runtime: max |Δ| {worst:.2g} (tolerance {tol.atol:g} + {tol.rtol:g}·|ref|)")
    report.plan = f"built: {plan_name}"


def _batch_varies(engine: Any) -> bool:
    return all(r.max[0] > r.min[0] for r in engine.profiles.values())


# ---- driver ---------------------------------------------------------------------------------------------------


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A step counter on stderr: ``step("facemesh: export")`` says what runs now and advances the bar."""
    from tqdm import tqdm

    bar = tqdm(total=total, file=sys.stderr, disable=not enabled, leave=False, unit="step", dynamic_ncols=True)

    def step(what: str) -> None:
        bar.set_description_str(what)
        bar.update(1)

    try:
        yield step
    finally:
        bar.close()


def run(args: argparse.Namespace, out_dir: Path) -> list[EngineReport]:
    from engines.catalogue import CATALOGUE
    from engines.runtime import models
    from engines.runtime.export import OnnxModelEngine

    registered = user_models(args)
    names = args.only or [*CATALOGUE, *registered]
    gpu = trt_version = ""
    if not args.dry_run:
        gpu, trt_version = require_gpu_and_tensorrt()
    reports: list[EngineReport] = []
    steps_per_engine = 2 if args.dry_run else 3
    with (
        tempfile.TemporaryDirectory(prefix="stageswap-engines-") as scratch,
        _progress(len(names) * steps_per_engine, not args.no_progress) as step,
    ):
        for name in names:
            engine: Any = CATALOGUE.get(name)
            report = EngineReport(name)
            reports.append(report)
            started = time.perf_counter()
            try:
                if engine is None:  # a registered model (its file checked against its sha256 here)
                    from engines.paths import data_dir
                    from engines.swap.learned import user_engine
                    from engines.swap.user_models import UserModelStore

                    engine = user_engine(UserModelStore(data_dir(args.data_dir)), registered[name])
                    onnx_path = engine.path
                    report.source = f"{engine.description} ({onnx_path})"
                    step(f"{name}: check graph")
                    validate_user_model(engine, report)
                elif isinstance(engine, OnnxModelEngine):
                    onnx_path = models.resolve(engine.registry_model, args.models)
                    report.source = f"registry model {engine.registry_model} ({onnx_path.name})"
                    step(f"{name}: check graph")
                    validate_onnx_model(engine, onnx_path, report)
                else:
                    # Dry runs export into a scratch folder; real builds keep the ONNX next to the plans.
                    onnx_dir = Path(scratch) if args.dry_run else out_dir
                    onnx_path = onnx_dir / f"{name}.onnx"
                    report.source = "torch module, exported to ONNX" + ("" if args.dry_run else f" ({onnx_path})")
                    step(f"{name}: export + check")
                    validate_torch_engine(engine, args.models, onnx_path, report)
                step(f"{name}: validated")
                if not args.dry_run:
                    step(f"{name}: TensorRT build")
                    compile_engine(engine, onnx_path, args.models, out_dir, gpu, trt_version, args, report)
            except StageswapError as exc:
                report.fail(str(exc))
            except Exception as exc:  # an exporter or runtime bug: report it per engine, keep going
                log.debug("engine %s failed", name, exc_info=True)
                report.fail(f"{type(exc).__name__}: {exc}")
            report.seconds = time.perf_counter() - started
            _print_report(report)
    return reports


def _print_report(report: EngineReport) -> None:
    mark = "ok  " if report.ok else "FAIL"
    print(f"{mark} {report.name}  [{report.seconds:.1f} s]  {report.source}")
    for line in report.checks:
        print(f"       {line}")
    if report.plan:
        print(f"       plan {report.plan}")
    if report.problem:
        print(f"       problem: {report.problem}")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from engines.errors import InputError
    from engines.runtime.plans import default_engines_dir

    out_dir: Path = args.out or default_engines_dir()
    try:
        if args.workspace_gb <= 0:
            raise InputError("--workspace-gb must be positive")
        reports = run(args, out_dir)
    except StageswapError as exc:
        print(f"build_engines: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("build_engines: interrupted", file=sys.stderr)
        return 130
    failed = [r.name for r in reports if not r.ok]
    what = "validated" if args.dry_run else "built"
    if failed:
        print(f"build_engines: {len(failed)} of {len(reports)} engine(s) failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"build_engines: {len(reports)} engine(s) {what}" + ("" if args.dry_run else f"; plans in {out_dir}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
