"""Training on a CUDA GPU (``make test-gpu``; skips elsewhere): bf16 autocast, torch.compile, the DFM on the GPU.

What runs: a 128 px model trains on the GPU with bf16 autocast and its loss falls; a resumed GPU training
continues bit for bit like the CPU one; torch.compile gives the same kind of step; the exported DFM runs
through the torch-CUDA fallback runtime (no TensorRT on the lent machines) like ONNX Runtime on the CPU, and
swaps a face through a FaceProcessor on the GPU; so does a neural renderer (``--arch dnr``) trained on the GPU.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU (torch.cuda.is_available() is False)"),
]

from engines.train.export import INPUT_NAME, OUTPUT_NAMES, export_dfm  # noqa: E402
from engines.train.faceset import load_faceset  # noqa: E402
from engines.train.nets import NetConfig  # noqa: E402
from engines.train.trainer import Dist, TrainConfig, Trainer, pick_device, read_checkpoint  # noqa: E402
from tests.train_helpers import tiny_faceset  # noqa: E402

NET = NetConfig("df", 128, 32, 128, 128, 32)


@pytest.fixture(scope="module")
def facesets(tmp_path_factory: pytest.TempPathFactory, clips: Path, models_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("facesets")
    src = tiny_faceset(clips / "Obama_speaking.mp4", root / "src", models_dir, frames=24, resolution=128)
    dst = tiny_faceset(clips / "d3.mp4", root / "dst", models_dir, frames=24, resolution=128)
    return src, dst


def _trainer(facesets: tuple[Path, Path], folder: Path, **kw: object) -> Trainer:
    device = pick_device("cuda", Dist())
    src, dst = (load_faceset(p, 128) for p in facesets)
    return Trainer(TrainConfig(net=NET, batch=16, **kw), src, dst, folder, device)  # type: ignore[arg-type]


def test_bf16_training_on_the_gpu_learns(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    trainer = _trainer(facesets, tmp_path, lr=5e-4)
    assert trainer.device.type == "cuda" and trainer.cfg.bf16
    first = [sum(trainer.step()) for _ in range(5)]
    for _ in range(60):
        trainer.step()
    last = [sum(trainer.step()) for _ in range(5)]
    assert np.mean(last) < 0.8 * np.mean(first), (first, last)


def test_gpu_resume_is_bit_for_bit(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    a = _trainer(facesets, tmp_path / "a")
    for _ in range(3):
        a.step()
    a.save_checkpoint()
    expected = [a.step() for _ in range(2)]
    b = _trainer(facesets, tmp_path / "b")
    state = read_checkpoint(tmp_path / "a", b.device)
    assert state is not None
    b.load_state(state)
    assert [b.step() for _ in range(2)] == expected


def test_compiled_step(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    trainer = _trainer(facesets, tmp_path, compile=True)
    losses = [trainer.step() for _ in range(3)]
    assert all(np.isfinite(v) for pair in losses for v in pair)


def test_dfm_runs_on_the_gpu_fallback_runtime(
    facesets: tuple[Path, Path], tmp_path: Path, models_dir: Path, clips: Path
) -> None:
    import onnxruntime as ort

    from engines.runtime.torch_cuda import onnx_session

    trainer = _trainer(facesets, tmp_path)
    trainer.step()
    path = tmp_path / "m.dfm"
    export_dfm(trainer.net, path)
    x = np.random.default_rng(0).random((1, 128, 128, 3)).astype(np.float32)
    cpu = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x})
    gpu = onnx_session(path, "cuda").run({INPUT_NAME: x})
    for name, expected in zip(OUTPUT_NAMES, cpu, strict=True):
        np.testing.assert_allclose(np.asarray(gpu[name]), expected, atol=2e-3)
    _swaps_on_the_gpu(path, "dfm", tmp_path, models_dir, clips)


def test_a_renderer_trains_and_runs_on_the_gpu_fallback_runtime(
    facesets: tuple[Path, Path], tmp_path: Path, models_dir: Path, clips: Path
) -> None:
    import onnxruntime as ort

    from engines.runtime.torch_cuda import onnx_session
    from engines.train.neural_render import DnrConfig, DnrTrainConfig, DnrTrainer, export_onnx

    device = pick_device("cuda", Dist())
    trainer = DnrTrainer(DnrTrainConfig(net=DnrConfig(resolution=128)), load_faceset(facesets[0], 128), device=device)
    losses = [trainer.step()[0] for _ in range(30)]
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5])
    path = tmp_path / "r.onnx"
    export_onnx(trainer.net, path)
    rng = np.random.default_rng(0)
    feeds = {
        "uv": rng.random((2, 128, 128, 2)).astype(np.float32),
        "covered": (rng.random((2, 128, 128, 1)) > 0.3).astype(np.float32),
    }
    cpu = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    gpu = onnx_session(path, "cuda").run(feeds)["face"]
    np.testing.assert_allclose(np.asarray(gpu), cpu, atol=2e-3)
    _swaps_on_the_gpu(path, "dnr", tmp_path, models_dir, clips)


def _swaps_on_the_gpu(path: Path, kind: str, tmp_path: Path, models_dir: Path, clips: Path) -> None:
    """The exported model, registered as a swap model of ``kind``, swaps tracked d3 frames through the
    FaceProcessor on CUDA, in the torch fallback runtime (no TensorRT plan)."""
    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.settings import ProcessSettings
    from engines.swap.user_models import UserModelStore
    from tests.face_helpers import clip_frames

    store = UserModelStore(tmp_path / "data")
    store.add(path, kind=kind, name="gpu-trained", unverified=True, coverage=1.8)
    config = dataclasses.replace(ProcessorConfig(), device="cuda")
    processor = FaceProcessor.from_models(models_dir, config, user_models=store)
    for image, t in clip_frames(clips / "d3.mp4", 3):
        result = processor.process(image, t, ProcessSettings(swap_model="gpu-trained", relight=False))
        assert result.failed_stage is None and "swap" in result.stage_ms
    assert processor.swap.model is not None and processor.swap.model.runtime == "torch-cuda"
