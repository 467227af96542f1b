"""ONNX Runtime on the CPU: the default runtime for every ONNX graph."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engines.errors import ModelError
from engines.runtime.base import TensorInfo, TensorsKnown

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
}


class OrtSession(TensorsKnown):
    """An ONNX model in an ``onnxruntime.InferenceSession`` (CPU execution provider)."""

    runtime = "onnxruntime-cpu"

    def __init__(self, path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        # One intra-op thread: the live service runs one worker per stream and must not oversubscribe cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load ONNX model {path}: {first_line}") from exc
        self._inputs = tuple(
            TensorInfo(i.name, tuple(i.shape), _ORT_TYPES.get(i.type, i.type)) for i in self._session.get_inputs()
        )
        self._outputs = tuple(
            TensorInfo(o.name, tuple(o.shape), _ORT_TYPES.get(o.type, o.type)) for o in self._session.get_outputs()
        )
        self._output_names = [o.name for o in self._outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._session.run(self._output_names, dict(feeds))
        return dict(zip(self._output_names, results, strict=True))
