"""TensorRT 10: build a plan from an ONNX graph, and run a plan. Kept thin, on the official Python API.

Building (``build_plan``): ``trt.Builder`` → ``create_network`` (explicit batch, the TensorRT 10 default) →
``trt.OnnxParser`` (every parser error is logged and reported, never only the first) → a builder config
with a workspace limit, fp16, one explicit optimisation profile per input and a timing cache loaded from and
saved back to disk (rebuilds reuse kernel timings) → ``build_serialized_network``.

Running (``TrtSession``): ``trt.Runtime.deserialize_cuda_engine`` → an execution context; every tensor is
bound by name (``set_input_shape``, ``set_tensor_address``) to torch CUDA memory, and
``execute_async_v3`` runs on the caller's torch stream, so TensorRT shares the primary CUDA context and
the stream order with torch and the CUDA FrameRing — no extra CUDA library and no host round trip for
``run_device``.

TensorRT is not on PyPI for every platform and cannot be installed on our development machines or the
lent GPU machine; everything around this module is tested without it, and importing this module never
needs it (``import_tensorrt`` raises a ModelError saying how to get it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from engines.errors import EngineError, ModelError
from engines.paths import write_atomic
from engines.runtime.base import TensorInfo, TensorsKnown
from engines.runtime.export import ShapeRange

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "TensorRT 10 is not installed; install it from NVIDIA (pip install tensorrt-cu12, or NVIDIA's "
    "TensorRT packages for your CUDA), or run without plans (the GPU fallback runs torch on CUDA)"
)


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or a ModelError saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise ModelError(INSTALL_HINT) from exc
    major = str(getattr(tensorrt, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 10:
        raise ModelError(f"TensorRT {getattr(tensorrt, '__version__', '?')} is too old; stageswap needs TensorRT 10")
    return tensorrt


def tensorrt_version() -> str | None:
    """The installed TensorRT version, or None when it cannot be imported."""
    try:
        return str(import_tensorrt().__version__)
    except ModelError:
        return None


@dataclass(frozen=True)
class BuildOptions:
    fp16: bool = True
    workspace_bytes: int = 4 << 30
    timing_cache: Path | None = None
    """Read before the build when it exists; written back (merged) after a successful build."""


def profile_for_network(
    network_inputs: Sequence[tuple[str, tuple[int, ...]]], profiles: Mapping[str, ShapeRange]
) -> dict[str, ShapeRange]:
    """Match the network's inputs (name, shape with -1 for dynamic axes) to the engine's profile.

    Every input needs a range; every static axis of the network must equal the range on that axis. Raises
    ModelError naming the input and axis, so a wrong catalogue entry fails before a minutes-long build."""
    chosen: dict[str, ShapeRange] = {}
    for name, shape in network_inputs:
        if name not in profiles:
            raise ModelError(f"network input {name!r} has no optimisation profile (profiles for: {sorted(profiles)})")
        r = profiles[name]
        if len(r.min) != len(shape):
            raise ModelError(f"profile for {name!r} has rank {len(r.min)}, the network input has rank {len(shape)}")
        for axis, dim in enumerate(shape):
            if dim >= 0 and not (r.min[axis] == r.opt[axis] == r.max[axis] == dim):
                raise ModelError(
                    f"profile for {name!r} varies axis {axis}, which the network fixes at {dim} "
                    f"(profile {r.min}..{r.max})"
                )
        chosen[name] = r
    extra = set(profiles) - {n for n, _ in network_inputs}
    if extra:
        raise ModelError(f"profiles name inputs the network does not have: {sorted(extra)}")
    return chosen


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, mode=0o644)
    except OSError as exc:
        raise ModelError(f"cannot write {path}: {exc.strerror}") from exc


def build_plan(
    onnx_path: Path,
    plan_path: Path,
    profiles: Mapping[str, ShapeRange],
    options: BuildOptions | None = None,
) -> dict[str, ShapeRange]:
    """Compile ``onnx_path`` into a serialized TensorRT plan at ``plan_path``; return the profile used.

    Raises ModelError with the parser's errors (all of them) or TensorRT's refusal to build."""
    options = options or BuildOptions()
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are explicit-batch; the flag is gone
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for e in errors:
            log.error("TensorRT ONNX parser: %s: %s", onnx_path.name, e)
        detail = "; ".join(errors) if errors else "no detail from the parser"
        raise ModelError(f"TensorRT cannot parse {onnx_path} ({len(errors)} error(s)): {detail}")

    inputs = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        inputs.append((str(tensor.name), tuple(int(d) for d in tensor.shape)))
    chosen = profile_for_network(inputs, profiles)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_bytes))
    if options.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, r in chosen.items():
        profile.set_shape(name, r.min, r.opt, r.max)
    config.add_optimization_profile(profile)

    cache_bytes = b""
    if options.timing_cache is not None and options.timing_cache.is_file():
        cache_bytes = options.timing_cache.read_bytes()
    cache = config.create_timing_cache(cache_bytes)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s does not fit this GPU/TensorRT; starting a fresh one", options.timing_cache)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"TensorRT could not build a plan from {onnx_path}; see the TensorRT messages above")
    _atomic_write(plan_path, bytes(serialized))
    if options.timing_cache is not None:
        _atomic_write(options.timing_cache, bytes(config.get_timing_cache().serialize()))
    return chosen


_TORCH_DTYPES = {
    "float32": "float32",
    "float16": "float16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "bool": "bool",
    "int8": "int8",
}


class TrtSession(TensorsKnown):
    """A TensorRT plan behind the Session seam, on the current CUDA device and torch's current stream.

    ``run`` takes and returns numpy arrays (one upload, one download); ``run_device`` takes and returns
    torch CUDA tensors (no host copies). Output buffers are allocated once per input shape and reused, so
    the per-frame path allocates nothing; results of ``run_device`` are therefore only valid until the
    next call. Not thread-safe: one session per worker thread."""

    runtime = "tensorrt"

    def __init__(self, plan_path: Path, profiles: Mapping[str, ShapeRange] | None = None) -> None:
        import torch

        trt = import_tensorrt()
        self._trt = trt
        self._torch = torch
        self.path = plan_path
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        try:
            data = plan_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read TensorRT plan {plan_path}: {exc.strerror}") from exc
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise ModelError(
                f"TensorRT cannot load plan {plan_path} (built for another GPU or TensorRT?); "
                "rebuild it with build_engines.py"
            )
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise ModelError(f"TensorRT cannot create an execution context for {plan_path}")
        self.profiles = dict(profiles or {})
        ins: list[TensorInfo] = []
        outs: list[TensorInfo] = []
        self._dtypes: dict[str, Any] = {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            self._dtypes[name] = getattr(torch, _TORCH_DTYPES[dtype.name])
            shape = tuple(int(d) if d >= 0 else None for d in self._engine.get_tensor_shape(name))
            info = TensorInfo(name, shape, dtype.name)
            (ins if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outs).append(info)
        self._out_buffers: dict[str, Any] = {}
        self._bound_shapes: dict[str, tuple[int, ...]] = {}
        if self.profiles and all(i.name in self.profiles for i in ins):
            # Report shapes at the profile's smallest input (one face), as the CPU runtimes do, so callers
            # that look outputs up by size (FaceMesh) find them.
            for info in ins:
                self._set_shape(info.name, self.profiles[info.name].min)
            ins = [TensorInfo(i.name, self.profiles[i.name].min, i.dtype) for i in ins]
            outs = [
                TensorInfo(o.name, tuple(int(d) for d in self._context.get_tensor_shape(o.name)), o.dtype) for o in outs
            ]
        self._inputs = tuple(ins)
        self._outputs = tuple(outs)

    def _set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if self._bound_shapes.get(name) != shape:
            if not self._context.set_input_shape(name, shape):
                raise EngineError(f"TensorRT rejected shape {shape} for input {name!r} of {self.path.name}")
            self._bound_shapes[name] = shape

    def run_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run on torch CUDA tensors (made contiguous and cast to the plan's dtype); outputs are torch tensors."""
        torch = self._torch
        ctx = self._context
        keep = []
        for info in self._inputs:
            if info.name not in feeds:
                raise EngineError(f"TensorRT plan {self.path.name}: missing input {info.name!r}")
            t = feeds[info.name]
            t = t.to(device="cuda", dtype=self._dtypes[info.name]).contiguous()
            shape = tuple(int(d) for d in t.shape)
            r = self.profiles.get(info.name)
            if r is not None and not r.contains(shape):
                raise EngineError(
                    f"input {info.name!r} of shape {shape} is outside the plan's profile {r.min}..{r.max}; "
                    "rebuild with build_engines.py or keep inputs in range"
                )
            self._set_shape(info.name, shape)
            if not ctx.set_tensor_address(info.name, t.data_ptr()):
                raise EngineError(f"TensorRT rejected the address of input {info.name!r}")
            keep.append(t)
        results: dict[str, Any] = {}
        for info in self._outputs:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(info.name))
            if any(d < 0 for d in shape):
                raise EngineError(f"TensorRT could not infer the shape of output {info.name!r}")
            buf = self._out_buffers.get(info.name)
            if buf is None or tuple(buf.shape) != shape:
                buf = torch.empty(shape, dtype=self._dtypes[info.name], device="cuda")
                self._out_buffers[info.name] = buf
            if not ctx.set_tensor_address(info.name, buf.data_ptr()):
                raise EngineError(f"TensorRT rejected the address of output {info.name!r}")
            results[info.name] = buf
        # Temporaries made above (casts, copies) come from torch's caching allocator on this same stream, so
        # their memory is not reused before the plan has read it.
        if not ctx.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise EngineError(f"TensorRT execution of {self.path.name} failed; see the TensorRT messages above")
        del keep
        return results

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        device_feeds = {
            k: torch.from_numpy(np.ascontiguousarray(v)).to("cuda", non_blocking=True) for k, v in feeds.items()
        }
        out = self.run_device(device_feeds)
        return {k: v.float().cpu().numpy() if v.dtype == torch.float16 else v.cpu().numpy() for k, v in out.items()}

    def close(self) -> None:
        """Free the context, engine and output buffers now rather than at garbage collection."""
        self._out_buffers.clear()
        self._context = None
        self._engine = None
