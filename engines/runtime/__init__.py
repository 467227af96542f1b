"""Runtimes behind one seam (`Session`): pick one for a model file and a device."""

from __future__ import annotations

from pathlib import Path

from engines.errors import ModelError
from engines.runtime.base import Session, TensorInfo

__all__ = ["Session", "TensorInfo", "load_cpu_model", "load_model"]


def load_model(
    path: str | Path, device: str = "cpu", threads: int = 1, engines_dir: str | Path | None = None
) -> Session:
    """Load ``path`` in the runtime that fits its format and the device (``auto``, ``cuda`` or ``cpu``).

    On the CPU, ``.onnx`` runs in ONNX Runtime and ``.tflite`` in LiteRT. On a GPU, a valid TensorRT plan
    from ``engines_dir`` runs it, else torch on CUDA (see ``engines.runtime.select``). Raises ModelError
    with the path and the reason when the file cannot be loaded, InputError for a device that is not there.
    """
    if device == "cpu":
        return load_cpu_model(path, threads)
    from engines.runtime.select import load_for_device

    return load_for_device(path, device, engines_dir, threads)


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
