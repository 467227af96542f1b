"""``serve --device cuda`` and ``process --device cuda`` carry their frames through the CUDA FrameRing.

On this machine there is no GPU: pycuda is the simulation in ``tests/cuda_sim.py`` (it records every upload
and every free), torch is told a GPU is there, and the engines' GPU fallback sessions are built on CPU
tensors instead of CUDA ones. Everything else is the real code on real frames: the CLI, the stream, its
worker, the FaceProcessor with the shared models. The tests show the wiring: the CUDA ring is the one the
stream and the file run make, every frame is uploaded into it once, the processor reads the slot the ring
hands out (its page-locked host side: no download), and the ring's memory is freed when the run or the
stream ends. Without CUDA (or without pycuda) ``--device cuda`` is a one-line error. The last two tests
run the same wiring for real where a GPU and pycuda are there (``make test-gpu``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.processor import FaceProcessor, ProcessedFrame, ProcessorConfig
from engines.settings import ProcessSettings
from streamer.__main__ import main
from streamer.config import ServeConfig
from streamer.live.ring import FrameMeta
from streamer.live.streams import Stream
from streamer.record.media import VideoReader
from tests.cuda_sim import Sim, install, uninstall
from tests.face_helpers import clip_frames, write_video

FRAMES = 8


@pytest.fixture
def simulated_cuda(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    """A 'GPU' for one test: simulated pycuda, torch reporting CUDA, the GPU fallback runtime and the per-face stages'
    torch ops on CPU tensors."""
    sim = install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    from engines.runtime import tensorrt, torch_cuda

    monkeypatch.setattr(tensorrt, "tensorrt_version", lambda: None)
    for name in ("onnx_session", "tflite_session"):
        real = getattr(torch_cuda, name)
        monkeypatch.setattr(torch_cuda, name, lambda path, device="cuda", _real=real: _real(path, "cpu"))
    from engines.stages.torch_ops import TorchOps

    real_ops = TorchOps.__init__
    monkeypatch.setattr(TorchOps, "__init__", lambda ops, device, _real=real_ops: _real(ops, "cpu"))
    yield sim
    uninstall()


class _Spy:
    """Wraps ``FaceProcessor.process`` (the real one runs): remembers whether each frame it was given lay in a
    ring slot's page-locked host buffer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pinned: list[bool] = []
        real = FaceProcessor.process

        def process(
            processor: FaceProcessor,
            image: np.ndarray,
            t_s: float | None = None,
            settings: ProcessSettings | None = None,
        ) -> ProcessedFrame:
            self.pinned.append(Sim.is_pinned(image))
            return real(processor, image, t_s, settings)

        monkeypatch.setattr(FaceProcessor, "process", process)


def _short_clip(clips: Path, out: Path) -> Path:
    """The first ``FRAMES`` frames of d3.mp4, re-encoded (the run stays short on a shared CPU)."""
    with VideoReader(clips / "d3.mp4") as reader:
        frames = [(f.image, f.pts) for _, f in zip(range(FRAMES), reader.frames(), strict=False)]
        return write_video(out, frames, reader.info)


def test_process_device_cuda_uploads_every_frame_once_into_the_cuda_ring(
    simulated_cuda: Sim, clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch)
    clip = _short_clip(clips, tmp_path / "in.mp4")
    stats_path = tmp_path / "stats.json"
    argv = ["process", "-i", str(clip), "-o", str(tmp_path / "out.mp4"), "--device", "cuda"]
    rc = main([*argv, "--no-progress", "--no-sign", "--no-relight", "--stats", str(stats_path)])
    assert rc == 0
    stats = json.loads(stats_path.read_text())
    assert stats["frames"] == FRAMES and stats["frames_with_face"] >= FRAMES - 1
    assert stats["runtime"] == "torch-cpu"  # the GPU fallback runtime was chosen (here on CPU tensors)
    assert stats["frame_path"] == "torch-cpu"  # and the per-face stages' torch ops (here on CPU tensors)
    assert simulated_cuda.uploads == FRAMES  # each frame went into the CUDA ring once
    assert spy.pinned == [True] * FRAMES  # and the processor read it from the ring's slot
    assert simulated_cuda.memory == {} and simulated_cuda.pinned_live == 0  # all ring memory freed at the end


def test_a_stream_on_cuda_feeds_its_worker_through_the_cuda_ring(
    simulated_cuda: Sim, clips: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``serve --device cuda`` builds per stream: the CUDA ring, ingest into it, the worker out of it."""
    from streamer.live.cuda_ring import CudaFrameRing

    spy = _Spy(monkeypatch)
    config = ServeConfig(device="cuda", watermark=False)
    stream = Stream(
        "cam", "whip", config, lambda: FaceProcessor.from_models(models_dir, ProcessorConfig(device="cuda"))
    )
    assert isinstance(stream.ring, CudaFrameRing)
    done = threading.Event()
    got: list[tuple[ProcessedFrame, int]] = []

    class Sink:
        def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: ProcessedFrame) -> None:
            got.append((result, meta.index))
            done.set()

    stream.fanout.add_sink(Sink())
    stream.start()
    try:
        assert stream.worker.ready.wait(120), "the processor did not load"
        assert stream.worker.runtime == "torch-cpu" and stream.worker.error is None
        assert stream.worker.frame_path == "torch-cpu"  # the per-face stages' torch ops (here on CPU tensors)
        for i, (image, t_s) in enumerate(clip_frames(clips / "d3.mp4", FRAMES)):
            done.clear()
            stream.ingest(image, FrameMeta(i, t_s))
            assert done.wait(60), f"frame {i} was not processed"
    finally:
        stream.close()
    assert [index for _, index in got] == list(range(FRAMES))  # one frame at a time: none dropped
    assert simulated_cuda.uploads == FRAMES and spy.pinned == [True] * FRAMES
    assert sum(bool(result.faces) for result, _ in got) >= FRAMES - 1
    assert simulated_cuda.memory == {} and simulated_cuda.pinned_live == 0  # the ring freed when the stream closed


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("command", ["serve", "process"])
def test_device_cuda_without_a_gpu_is_a_one_line_error(
    command: str, tmp_path: Path, clips: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["serve", "--port", "0"] if command == "serve" else ["process", "-i", str(clips / "d3.mp4"), "-o", "o.mp4"]
    assert main([*argv, "--device", "cuda"]) == 2
    assert _one_line_error(capsys).startswith("stageswap: error: --device cuda: no CUDA GPU is visible")


@pytest.mark.parametrize("command", ["serve", "process"])
def test_device_cuda_without_pycuda_is_a_one_line_error(
    command: str, tmp_path: Path, clips: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A GPU torch sees, but no pycuda (the ``gpu`` extra): said before any model loads or frame is read."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "pycuda", None)  # import pycuda raises ImportError
    monkeypatch.delitem(sys.modules, "streamer.live.cuda_ring", raising=False)
    out = tmp_path / "o.mp4"
    argv = ["serve", "--port", "0"] if command == "serve" else ["process", "-i", str(clips / "d3.mp4"), "-o", str(out)]
    started = time.monotonic()
    assert main([*argv, "--device", "cuda", "--data-dir", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("stageswap: error: --device cuda:") and "pycuda" in err and ".[gpu]" in err
    assert not out.exists() and time.monotonic() - started < 30


def test_device_auto_on_a_gpu_without_pycuda_keeps_frames_on_the_cpu_with_a_warning(
    simulated_cuda: Sim,
    clips: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--device auto`` (the default) must not refuse a GPU machine installed without the ``gpu`` extra: the
    models run on the GPU, the frames reach them through the CPU ring, and the run says so once."""
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.delitem(sys.modules, "streamer.live.cuda_ring", raising=False)
    spy = _Spy(monkeypatch)
    clip = _short_clip(clips, tmp_path / "in.mp4")
    stats_path = tmp_path / "stats.json"
    argv = ["process", "-i", str(clip), "-o", str(tmp_path / "out.mp4"), "--no-progress", "--no-sign", "--no-relight"]
    assert main([*argv, "--stats", str(stats_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("warning: the CUDA frame ring is unavailable") == 1 and "pycuda" in out
    stats = json.loads(stats_path.read_text())
    assert stats["frames"] == FRAMES and stats["runtime"] == "torch-cpu"
    assert simulated_cuda.uploads == 0 and spy.pinned == [False] * FRAMES


_REAL_CUDA = importlib.util.find_spec("pycuda") is not None and torch.cuda.is_available()


class _Puts:
    """Counts the frames put into any CudaFrameRing (the real one, on a GPU)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from streamer.live.cuda_ring import CudaFrameRing

        self.count = 0
        real = CudaFrameRing.put

        def put(ring: CudaFrameRing, image: np.ndarray, meta: FrameMeta) -> None:
            self.count += 1
            real(ring, image, meta)

        monkeypatch.setattr(CudaFrameRing, "put", put)


@pytest.mark.gpu
@pytest.mark.skipif(not _REAL_CUDA, reason="needs a CUDA GPU and pycuda (pip install -e '.[gpu]')")
def test_on_a_gpu_process_device_cuda_runs_through_the_cuda_ring(
    clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real thing where a GPU is lent: the frames go through the CUDA ring, the models run in torch on CUDA."""
    puts = _Puts(monkeypatch)
    clip = _short_clip(clips, tmp_path / "in.mp4")
    stats_path = tmp_path / "stats.json"
    argv = ["process", "-i", str(clip), "-o", str(tmp_path / "out.mp4"), "--device", "cuda", "--no-progress"]
    assert main([*argv, "--no-sign", "--stats", str(stats_path)]) == 0
    stats = json.loads(stats_path.read_text())
    assert stats["frames"] == FRAMES and stats["frames_with_face"] >= FRAMES - 1
    assert stats["runtime"] in ("torch-cuda", "tensorrt") and puts.count == FRAMES


@pytest.mark.gpu
@pytest.mark.skipif(not _REAL_CUDA, reason="needs a CUDA GPU and pycuda (pip install -e '.[gpu]')")
def test_on_a_gpu_a_stream_runs_through_the_cuda_ring_and_frees_it(
    clips: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamer.live.cuda_ring import CudaFrameRing

    puts = _Puts(monkeypatch)
    config = ServeConfig(device="cuda", watermark=False)
    stream = Stream(
        "cam", "whip", config, lambda: FaceProcessor.from_models(models_dir, ProcessorConfig(device="cuda"))
    )
    ring = stream.ring
    assert isinstance(ring, CudaFrameRing)
    done = threading.Event()
    got: list[ProcessedFrame] = []

    class Sink:
        def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: ProcessedFrame) -> None:
            got.append(result)
            done.set()

    stream.fanout.add_sink(Sink())
    stream.start()
    try:
        assert stream.worker.ready.wait(120) and stream.worker.runtime in ("torch-cuda", "tensorrt")
        for i, (image, t_s) in enumerate(clip_frames(clips / "d3.mp4", FRAMES)):
            done.clear()
            stream.ingest(image, FrameMeta(i, t_s))
            assert done.wait(60), f"frame {i} was not processed"
    finally:
        stream.close()
    assert puts.count == FRAMES and len(got) == FRAMES and sum(bool(r.faces) for r in got) >= FRAMES - 1
    assert ring.closed and not ring._slots  # the device and page-locked memory were freed with the stream
