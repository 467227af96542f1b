"""How an engine is described for ``build_engines.py`` — its graph, shapes and tolerances — and its ONNX export.

The engines themselves are listed in ``engines.catalogue`` (next to the face, light and compose engines they
build); this module knows nothing about faces. Two kinds of engine:

- ``TorchEngine``: a torch module of ours exported to ONNX — MediaPipe's face mesh and selfie segmentation
  converted from their TFLite files (weights read from the registry's files) and the per-pixel relight
  modules (``SHRelight``, ``SHRelightAlbedo``).
- ``OnnxModelEngine``: an ONNX model from the registry compiled as published (YuNet).

Each carries the shapes TensorRT optimises for (one explicit optimisation profile per input: faces 1-8
for per-face engines; frame sizes for the detector), the tolerances its checks use, and a fingerprint
that changes whenever the model would: the registry file's sha256, plus the source of the code that
turns it into a graph. A TensorRT plan records that fingerprint, so a changed model makes the plan stale.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.errors import ModelError
from engines.paths import replacing
from engines.runtime import models

Shape = tuple[int, ...]

MAX_FACES = 8
"""Per-face engines take a batch of 1..MAX_FACES faces in one call."""
OPT_FACES = 1
"""The batch TensorRT tunes per-face engines for: the tracker meshes one face per call today."""

ONNX_OPSET = 17
ONNX_MAX_IR_VERSION = 10
"""onnxruntime 1.31 reads IR <= 13 and TensorRT 10's parser IR <= 10; torch's TorchScript exporter writes 8."""


@dataclass(frozen=True)
class ShapeRange:
    """One input's TensorRT optimisation profile: the smallest, the tuned-for and the largest shape."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        if not (len(self.min) == len(self.opt) == len(self.max)):
            raise ValueError(f"profile ranks differ: {self.min} {self.opt} {self.max}")
        if any(not (a <= b <= c) for a, b, c in zip(self.min, self.opt, self.max, strict=True)):
            raise ValueError(f"profile must satisfy min <= opt <= max per axis: {self.min} {self.opt} {self.max}")

    def contains(self, shape: Shape) -> bool:
        return len(shape) == len(self.min) and all(
            a <= s <= c for a, s, c in zip(self.min, shape, self.max, strict=True)
        )

    def to_json(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ShapeRange:
        return cls(tuple(obj["min"]), tuple(obj["opt"]), tuple(obj["max"]))


@dataclass(frozen=True)
class Tolerance:
    """Elementwise |a - b| <= atol + rtol * |reference|, as numpy.allclose."""

    atol: float
    rtol: float

    def max_excess(self, actual: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
        """(worst |a - b|, worst excess over the allowed bound; <= 0 means within tolerance)."""
        diff = np.abs(actual.astype(np.float64) - reference.astype(np.float64))
        bound = self.atol + self.rtol * np.abs(reference.astype(np.float64))
        return float(diff.max(initial=0.0)), float((diff - bound).max(initial=-np.inf))


@dataclass(frozen=True)
class TorchEngine:
    """A torch module of ours that build_engines exports to ONNX and compiles."""

    name: str
    description: str
    factory: Callable[[str | os.PathLike[str] | None], nn.Module]
    """Builds the module (CPU, eval mode) from a models directory (or the registry's search order)."""
    example_inputs: Callable[[nn.Module, int], tuple[torch.Tensor, ...]]
    """Inputs for ``batch`` faces, in forward's order; deterministic."""
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]]
    profiles: Mapping[str, ShapeRange]
    fingerprint: Callable[[str | os.PathLike[str] | None], str]
    onnx_tolerance: Tolerance = Tolerance(1e-4, 1e-4)
    trt_tolerance: Tolerance = Tolerance(2e-2, 2e-2)
    registry_model: str | None = None
    """The registry model whose file the module is built from, if any (runtime selection finds it by it)."""


@dataclass(frozen=True)
class OnnxModelEngine:
    """A registry ONNX model compiled as published."""

    name: str
    description: str
    registry_model: str
    profiles: Mapping[str, ShapeRange]
    example_inputs: Callable[[int], dict[str, np.ndarray]] = field(repr=False)
    trt_tolerance: Tolerance = Tolerance(2e-2, 2e-2)
    torch_tolerance: Tolerance = Tolerance(1e-4, 1e-4)
    """The torch interpreter (the GPU fallback) against ONNX Runtime on the CPU."""

    def fingerprint(self, models_dir: str | os.PathLike[str] | None = None) -> str:
        return registry_fingerprint(self.registry_model)


Engine = TorchEngine | OnnxModelEngine


def source_sha256(*objects: Any) -> str:
    h = hashlib.sha256()
    for obj in objects:
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()


# ---- a registry TFLite model, converted (weights read from the registry's files) ---------------------------


def converted_tflite_engine(
    name: str,
    description: str,
    side: int,
    output_names: tuple[str, ...],
    onnx_tolerance: Tolerance,
    trt_tolerance: Tolerance,
) -> TorchEngine:
    """A registry TFLite model with one (N, side, side, 3) RGB 0..1 input, one image (face) per batch item."""

    def factory(models_dir: str | os.PathLike[str] | None) -> nn.Module:
        from engines.runtime.convert.tflite_torch import load_tflite_module

        return load_tflite_module(models.resolve(name, models_dir))

    def example_inputs(module: nn.Module, batch: int) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(1)
        return (torch.rand(batch, side, side, 3, generator=gen),)

    def fingerprint(models_dir: str | os.PathLike[str] | None) -> str:
        return registry_fingerprint(name)

    return TorchEngine(
        name=name,
        description=description,
        factory=factory,
        example_inputs=example_inputs,
        input_names=("input_1",),
        output_names=output_names,
        dynamic_axes={n: {0: "faces"} for n in ("input_1", *output_names)},
        profiles={"input_1": ShapeRange((1, side, side, 3), (OPT_FACES, side, side, 3), (MAX_FACES, side, side, 3))},
        fingerprint=fingerprint,
        onnx_tolerance=onnx_tolerance,
        trt_tolerance=trt_tolerance,
        registry_model=name,
    )


def registry_fingerprint(model_name: str) -> str:
    """What a TensorRT plan of registry model ``model_name`` is built from: its file (the sha256 the registry
    declares), and for a TFLite model the converter that turns it into the exported graph."""
    spec = models.spec_for(model_name)
    if not spec.filename.endswith(".tflite"):
        return spec.sha256
    from engines.runtime.convert import tflite_torch

    h = hashlib.sha256(spec.sha256.encode())
    h.update(source_sha256(tflite_torch).encode())
    return h.hexdigest()


def fold_constants(model: Any) -> int:
    """Replace every node computed from constants alone by its value (an initializer); return how many.

    torch's TorchScript exporter writes ``F.pad``'s amounts as a small subgraph (ConstantOfShape, Concat,
    a reversing Slice, ...) that its own constant folding skips; TensorRT and ONNX Runtime then see a
    data-dependent Pad. Evaluating such nodes once here, with ONNX's reference evaluator, leaves a plain Pad
    with constant amounts. Nodes that produce a graph output are kept."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    values: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    kept, folded = [], 0
    for node in graph.node:
        inputs = [n for n in node.input if n]
        foldable = (
            node.domain in ("", "ai.onnx")
            and all(n in values for n in inputs)
            and not graph_outputs.intersection(node.output)
            and (inputs or node.op_type == "Constant")
            and not node.op_type.startswith("Random")
        )
        if not foldable:
            kept.append(node)
            continue
        results = ReferenceEvaluator(node).run(None, {n: values[n] for n in inputs})
        for name, value in zip(node.output, results, strict=True):
            values[name] = np.asarray(value)
        folded += 1
    if not folded:
        return 0
    used = {n for node in kept for n in node.input} | graph_outputs
    initial = {i.name for i in graph.initializer}
    del graph.node[:]
    graph.node.extend(kept)
    new_inits = [numpy_helper.from_array(v, name) for name, v in values.items() if name in used]
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    # Folded values that were graph inputs' defaults stay declared only if still used.
    for inp in list(graph.input):
        if inp.name in initial and inp.name not in used:
            graph.input.remove(inp)
    return folded


def export_onnx(engine: TorchEngine, module: nn.Module, path: Path, example_batch: int = 2) -> Path:
    """Export ``module`` to ONNX at ``path`` with the engine's names and dynamic axes (opset 17).

    Uses torch's TorchScript exporter: the torch.export-based one (the default since torch 2.9) needs
    onnxscript, raises the opset to 18 and, for the converted face mesh, wrote a graph that fails the
    ONNX checker (an output name assigned twice). The example batch is 2, so no axis is specialised to 1.
    """
    import onnx

    inputs = engine.example_inputs(module, example_batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, mode=0o644) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
            warnings.simplefilter("ignore", UserWarning)  # constant-folding notes on Pad's shape arithmetic
            torch.onnx.export(
                module,
                inputs,
                str(tmp),
                input_names=list(engine.input_names),
                output_names=list(engine.output_names),
                dynamic_axes={k: dict(v) for k, v in engine.dynamic_axes.items()},
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
            model = onnx.load(str(tmp))
            fold_constants(model)
            model.ir_version = min(model.ir_version, ONNX_MAX_IR_VERSION)
            onnx.save(model, str(tmp))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot export engine {engine.name!r} to ONNX: {type(exc).__name__}: {exc}") from exc
    return path
