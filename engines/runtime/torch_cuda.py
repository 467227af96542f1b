"""The GPU fallback runtime: a torch module on CUDA behind the Session seam.

Used on a GPU whenever no valid TensorRT plan exists — and it is the GPU path our GPU tests exercise,
since TensorRT cannot be installed on the lent GPU machine. Our own engines are torch modules already;
the registry's published models are turned into torch modules with their weights read from the files
(``engines.runtime.convert``): MediaPipe's TFLite face mesh and YuNet's ONNX graph.

Why torch rather than onnxruntime-gpu: torch is already the GPU stack of the project (our engines, the
CUDA ring's consumers), it shares the primary CUDA context and streams with TensorRT and pycuda, and
onnxruntime-gpu would replace the CPU ``onnxruntime`` package in the same environment (both install the
``onnxruntime`` module) and bring its own CUDA/cuDNN pins — see README, "GPU".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.errors import ModelError
from engines.runtime.base import TensorInfo, TensorsKnown

DeviceCall = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


class TorchSession(TensorsKnown):
    """A torch module on a CUDA device. ``run`` is numpy in and out (one upload, one download);
    ``run_device`` is torch tensors in and out on the device, for GPU-resident callers."""

    runtime = "torch-cuda"

    def __init__(
        self,
        call: DeviceCall,
        module: nn.Module,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo],
        device: str | torch.device = "cuda",
    ) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self._call = call
        self._inputs = tuple(inputs)
        self._outputs = tuple(outputs)
        if self.device.type != "cuda":
            self.runtime = f"torch-{self.device.type}"

    def run_device(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return self._call({k: v.to(self.device, torch.float32) for k, v in feeds.items()})

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        device_feeds = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()}
        out = self.run_device(device_feeds)
        return {k: v.cpu().numpy() for k, v in out.items()}


def tflite_session(path: Path, device: str | torch.device = "cuda") -> TorchSession:
    """A ``.tflite`` model converted to torch (weights from the file) on ``device``."""
    from engines.runtime.convert.tflite_torch import load_tflite_module

    module = load_tflite_module(path)
    inputs = (TensorInfo(module.input_name, module.input_shape, "float32"),)
    outputs = tuple(TensorInfo(n, s, "float32") for n, s in zip(module.output_names, module.output_shapes, strict=True))

    def call(feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if module.input_name not in feeds:
            raise ModelError(f"missing input {module.input_name!r} for {path.name}")
        results = module(feeds[module.input_name])
        return dict(zip(module.output_names, results, strict=True))

    return TorchSession(call, module, inputs, outputs, device)


def onnx_session(path: Path, device: str | torch.device = "cuda") -> TorchSession:
    """An ``.onnx`` model run by the torch interpreter (weights from the file) on ``device``."""
    import onnx

    from engines.runtime.convert.onnx_torch import load_onnx_module

    module = load_onnx_module(path)
    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}

    def info(v: Any) -> TensorInfo:
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in v.type.tensor_type.shape.dim
        )
        return TensorInfo(v.name, dims, "float32")

    inputs = tuple(info(v) for v in graph.input if v.name not in inits)
    outputs = tuple(info(v) for v in graph.output)

    def call(feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return module(**feeds)

    return TorchSession(call, module, inputs, outputs, device)


def module_session(
    module: nn.Module,
    input_names: Sequence[str],
    output_names: Sequence[str],
    device: str | torch.device = "cuda",
) -> TorchSession:
    """One of our torch engines (positional inputs in ``input_names`` order) on ``device``."""

    def call(feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        result = module(*[feeds[n] for n in input_names])
        results = result if isinstance(result, tuple | list) else (result,)
        return dict(zip(output_names, results, strict=True))

    unknown: tuple[int | str | None, ...] = ()
    return TorchSession(
        call,
        module,
        [TensorInfo(n, unknown, "float32") for n in input_names],
        [TensorInfo(n, unknown, "float32") for n in output_names],
        device,
    )
