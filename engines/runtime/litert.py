"""LiteRT (the maintained TensorFlow Lite runtime) on the CPU, for MediaPipe's own ``.tflite`` files.

MediaPipe publishes its face mesh as TFLite; running that file as published avoids a conversion step
on every CPU machine. The GPU path converts it once (see ``build_engines.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import ModelError
from engines.runtime.base import TensorInfo, TensorsKnown

log = logging.getLogger(__name__)
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """LiteRT's C++ core prints INFO lines straight to fd 2 when it loads a model; send them to the log."""
    with _stderr_lock, tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.debug("litert: %s", text)


class LiteRtSession(TensorsKnown):
    """A ``.tflite`` model in a LiteRT interpreter with XNNPACK."""

    runtime = "litert-cpu"

    def __init__(self, path: Path, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with _native_stderr_to_log():
                self._interp: Any = Interpreter(model_path=str(path), num_threads=threads)
                self._interp.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with long texts for bad files
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load TFLite model {path}: {first_line}") from exc
        ins = self._interp.get_input_details()
        outs = self._interp.get_output_details()
        self._in_index = {d["name"]: d["index"] for d in ins}
        self._out_index = {d["name"]: d["index"] for d in outs}
        self._inputs = tuple(
            TensorInfo(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name) for d in ins
        )
        self._outputs = tuple(
            TensorInfo(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name) for d in outs
        )

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in feeds.items():
            self._interp.set_tensor(self._in_index[name], value)
        self._interp.invoke()
        # get_tensor copies, so results stay valid after the next invoke().
        return {name: self._interp.get_tensor(index) for name, index in self._out_index.items()}
