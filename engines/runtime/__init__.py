"""Runtimes behind one seam (`Session`): pick one for a model file and a device.

The model registry (declared as data: file, sha256, URL, licence), the runtimes (ONNX Runtime, LiteRT,
torch on CUDA, TensorRT), conversion to torch, ONNX export and TensorRT plans. Knows nothing about faces:
must not import any other engine package (``engines.errors`` aside) nor ``streamer``; the catalogue of
our own engines is ``engines.catalogue``.
"""

from __future__ import annotations

from pathlib import Path

from engines.runtime.base import Session, TensorInfo
from engines.runtime.cpu import load_cpu_model

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
