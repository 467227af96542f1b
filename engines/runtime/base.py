"""The runtime seam: load a model file, see its named inputs and outputs, run it.

Every engine that runs a learned model goes through this protocol, so the same engine code runs on
ONNX Runtime (CPU, the default), LiteRT (MediaPipe's TFLite files on the CPU), and later TensorRT plans
and a GPU fallback, chosen by `engines.runtime.load_model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """A named tensor of a loaded model; unknown dimensions are strings or None."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str


class Session(Protocol):
    """A loaded model, ready to run. Not thread-safe: one session per worker thread."""

    runtime: str
    """Which runtime runs it, e.g. ``onnxruntime-cpu`` (shown in stats and logs)."""

    @property
    def inputs(self) -> Sequence[TensorInfo]: ...

    @property
    def outputs(self) -> Sequence[TensorInfo]: ...

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; ``feeds`` maps input names to arrays, the result maps every output name to an array."""
        ...


class TensorsKnown:
    """What every runtime's session shares: the named inputs and outputs it read from its model."""

    _inputs: tuple[TensorInfo, ...]
    _outputs: tuple[TensorInfo, ...]

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return self._inputs

    @property
    def outputs(self) -> Sequence[TensorInfo]:
        return self._outputs
