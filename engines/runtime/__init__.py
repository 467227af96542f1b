"""Runtimes behind one seam (`Session`): pick one for a model file and a device."""

from __future__ import annotations

from pathlib import Path

from engines.errors import ModelError
from engines.runtime.base import Session, TensorInfo

__all__ = ["Session", "TensorInfo", "load_model"]


def load_model(path: str | Path, device: str = "cpu", threads: int = 1) -> Session:
    """Load ``path`` in the runtime that fits its format and the device.

    ``.onnx`` runs in ONNX Runtime and ``.tflite`` in LiteRT on the CPU. Raises ModelError with the path
    and the reason when the file cannot be loaded.
    """
    path = Path(path)
    if device != "cpu":
        raise ModelError(f"device {device!r} has no runtime yet; use --device cpu")
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
