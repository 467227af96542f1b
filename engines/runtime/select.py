"""Which runtime runs a model: a valid TensorRT plan, else the GPU fallback (torch on CUDA), else the CPU.

``--device auto`` takes the GPU when torch sees one and the CPU otherwise; ``--device cuda`` insists on a
GPU (a clear error without one); ``--device cpu`` is the unchanged CPU path (ONNX Runtime, LiteRT). On the
GPU each model gets the best runtime available for it, and the choice and its reason are logged once and
carried by ``Session.runtime`` into the stats (``runtime`` in ``--stats`` JSON and the live stats):

1. ``tensorrt``: a plan in the engines directory whose manifest entry matches this GPU, this TensorRT and
   this model's fingerprint (``engines.runtime.plans``); a stale plan is refused with the reason.
2. ``torch-cuda``: the model converted to torch with its weights read from the file (``engines.runtime.convert``);
3. the CPU runtime, with a warning, for a model the converters cannot handle.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engines.errors import InputError, ModelError, StageswapError
from engines.runtime import models
from engines.runtime.base import Session

if TYPE_CHECKING:
    from engines.runtime.export import TorchEngine

log = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "cpu")


def cuda_available() -> bool:
    """True when torch can use a CUDA GPU (False on CPU-only torch builds and machines without a GPU).

    A CPU-only build of torch (PyTorch's ``+cpu`` wheels, what ``requirements/cpu.txt`` installs) is told
    from its installed version without importing torch: the import costs about 2.5 s of CPU, which every
    ``--device auto`` server and file run would pay only to learn that there is no GPU. Once torch is
    loaded anyway (a torch stage, training), torch itself is asked."""
    if "torch" not in sys.modules and cpu_only_torch():
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def cpu_only_torch() -> bool:
    """True when the installed torch is a CPU-only build (its version's local label is ``cpu``, as in
    ``2.13.0+cpu``), read from the package's metadata; torch missing counts as no CUDA too."""
    from importlib import metadata

    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return True
    return version.partition("+")[2] == "cpu"


def gpu_name() -> str:
    import torch

    return str(torch.cuda.get_device_name(torch.cuda.current_device()))


def resolve_device(requested: str) -> str:
    """``auto``/``cuda``/``cpu`` → the device to use, ``cuda`` or ``cpu``; InputError if it cannot be had."""
    if requested not in DEVICES:
        raise InputError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if requested == "cuda":
        raise InputError(
            "--device cuda: no CUDA GPU is visible to torch (CPU-only torch build, no driver, or "
            "CUDA_VISIBLE_DEVICES hides it); use --device auto or --device cpu"
        )
    return "cpu"


@dataclass(frozen=True)
class RuntimeChoice:
    """What runs a model, and why not something better (empty when it is the best)."""

    model: str
    runtime: str
    reason: str

    def describe(self) -> str:
        return f"{self.model}: {self.runtime}" + (f" ({self.reason})" if self.reason else "")


def registry_name_for(path: Path) -> str | None:
    """The registry model whose declared sha256 this file has (None for files outside the registry)."""
    try:
        digest = models._cached_sha256(path)
    except OSError:
        return None
    for spec in models.REGISTRY.values():
        if spec.sha256 == digest:
            return spec.name
    return None


def _tensorrt_session(model_name: str, path: Path, engines_dir: Path) -> tuple[Session | None, str]:
    """A TensorRT session for ``model_name`` if a valid plan exists; else (None, why not)."""
    from engines.runtime.export import registry_fingerprint
    from engines.runtime.plans import Manifest, PlanKey
    from engines.runtime.tensorrt import tensorrt_version

    version = tensorrt_version()
    if version is None:
        return None, "TensorRT is not installed"
    try:
        manifest = Manifest.load(engines_dir)
    except ModelError as exc:
        return None, str(exc)
    key = PlanKey(gpu_name(), version, registry_fingerprint(model_name))
    found = manifest.lookup(model_name, key)
    if not found.ok or found.path is None or found.entry is None:
        return None, found.reason + f"; build plans with: python build_engines.py --out {engines_dir}"
    from engines.runtime.tensorrt import TrtSession

    try:
        return TrtSession(found.path, found.entry.profiles), ""
    except StageswapError as exc:  # a plan TensorRT will not load: say so and fall back
        return None, str(exc)


def _fallback_session(path: Path) -> Session:
    from engines.runtime.torch_cuda import onnx_session, tflite_session

    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return onnx_session(path)
    if suffix == ".tflite":
        return tflite_session(path)
    raise ModelError(f"model file {path} has an unknown format {suffix!r}; expected .onnx or .tflite")


def load_for_device(
    path: str | os.PathLike[str],
    device: str,
    engines_dir: str | os.PathLike[str] | None = None,
    threads: int = 1,
) -> Session:
    """Load ``path`` on ``device`` (auto/cuda/cpu) in the best runtime available; log the choice."""
    from engines.runtime.cpu import load_cpu_model
    from engines.runtime.plans import default_engines_dir

    path = Path(path)
    resolved = resolve_device(device)
    if resolved == "cpu":
        session = load_cpu_model(path, threads)
        log.info("%s", RuntimeChoice(path.name, session.runtime, "").describe())
        return session
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    name = registry_name_for(path)
    directory = Path(engines_dir) if engines_dir is not None else default_engines_dir()
    reason = f"{path.name} is not a registry model, so it has no TensorRT plan"
    if name is not None:
        trt_session, reason = _tensorrt_session(name, path, directory)
        if trt_session is not None:
            log.info("%s", RuntimeChoice(name, trt_session.runtime, "").describe())
            return trt_session
    try:
        session = _fallback_session(path)
    except ModelError as exc:
        # Better a model on the CPU than no GPU pipeline at all: say so loudly, it costs frame time.
        session = load_cpu_model(path, threads)
        choice = RuntimeChoice(name or path.name, session.runtime, f"{reason}; no GPU conversion: {exc}")
        log.warning("%s", choice.describe())
        return session
    choice = RuntimeChoice(name or path.name, session.runtime, reason)
    stale = any(word in reason for word in ("stale", "corrupt", "unreadable"))
    log.log(logging.WARNING if stale else logging.INFO, "%s", choice.describe())
    return session


def load_engine(
    engine: TorchEngine,
    device: str,
    engines_dir: str | os.PathLike[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
) -> Session:
    """One of our torch engines (``engines.catalogue``, e.g. ``relight``) on ``device``: its TensorRT plan when
    valid, else the torch module itself on CUDA (or on the CPU for ``cpu``)."""
    from engines.runtime.plans import Manifest, PlanKey, default_engines_dir
    from engines.runtime.tensorrt import TrtSession, tensorrt_version
    from engines.runtime.torch_cuda import module_session

    name = engine.name
    resolved = resolve_device(device)
    reason = ""
    if resolved == "cuda":
        version = tensorrt_version()
        if version is None:
            reason = "TensorRT is not installed"
        else:
            directory = Path(engines_dir) if engines_dir is not None else default_engines_dir()
            key = PlanKey(gpu_name(), version, engine.fingerprint(models_dir))
            try:
                found = Manifest.load(directory).lookup(name, key)
                reason = found.reason
                if found.ok and found.path is not None and found.entry is not None:
                    session: Session = TrtSession(found.path, found.entry.profiles)
                    log.info("%s", RuntimeChoice(name, session.runtime, "").describe())
                    return session
            except StageswapError as exc:  # unreadable manifest, a plan TensorRT refuses: fall back
                reason = str(exc)
    session = module_session(engine.factory(models_dir), engine.input_names, engine.output_names, resolved)
    stale = any(word in reason for word in ("stale", "corrupt", "unreadable"))
    log.log(logging.WARNING if stale else logging.INFO, "%s", RuntimeChoice(name, session.runtime, reason).describe())
    return session
