"""The CPU runtimes by file format: ``.onnx`` in ONNX Runtime, ``.tflite`` in LiteRT (imported when used)."""

from __future__ import annotations

from pathlib import Path

from engines.errors import ModelError
from engines.runtime.base import Session


def load_cpu_model(path: str | Path, threads: int = 1) -> Session:
    """Load ``path`` on the CPU: ``.onnx`` in ONNX Runtime, ``.tflite`` in LiteRT."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from engines.runtime.onnxrt import OrtSession

        return OrtSession(path, threads=threads)
    if suffix == ".tflite":
        from engines.runtime.litert import LiteRtSession

        return LiteRtSession(path, threads=threads)
    raise ModelError(f"model file {path} has an unknown format {suffix!r}; expected .onnx or .tflite")
