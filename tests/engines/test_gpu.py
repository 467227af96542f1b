"""GPU path on a real CUDA GPU (``make test-gpu``); every test here skips with the reason elsewhere.

What runs: the GPU fallback runtime (torch on CUDA, the path the lent GPU machine can run: TensorRT cannot
be installed there), the converted models against the CPU runtimes, the whole FaceProcessor on a GPU against
the CPU one on shared clips, and the CUDA FrameRing's zero-copy hand-over to torch. The shared ring suite
(tests/test_ring.py, ``cuda`` parameter) covers the ring's contract. Tolerances are stated per test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU (torch.cuda.is_available() is False)"),
]

needs_litert = pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert (the CPU reference) is not installed"
)
needs_pycuda = pytest.mark.skipif(
    importlib.util.find_spec("pycuda") is None, reason="pycuda is not installed (pip install -e '.[gpu]')"
)


def _clip_frames(path: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert frames, f"cannot decode {path}"
    return frames


def test_fallback_runtime_is_torch_cuda_and_matches_cpu_models(models_dir: Path, faces: Path) -> None:
    from engines.face.detect import FaceDetector
    from engines.face.geometry import crop
    from engines.face.landmarks import MESH_SIZE, roi_from_detection
    from engines.runtime import load_model

    cpu_det = load_model(models_dir / "yunet_s_dynamic.onnx", "cpu")
    gpu_det = load_model(models_dir / "yunet_s_dynamic.onnx", "cuda", engines_dir=Path("/nonexistent"))
    gpu_mesh = load_model(models_dir / "face_landmark.tflite", "cuda", engines_dir=Path("/nonexistent"))
    assert gpu_det.runtime == gpu_mesh.runtime == "torch-cuda"
    detector = FaceDetector(cpu_det)
    worst_det = worst_mesh = 0.0
    for name in ("obama.jpg", "t1.jpg", "woman.png"):
        image = cv2.imread(str(faces / name))
        blob = cv2.resize(image, (320, 256)).transpose(2, 0, 1)[None].astype(np.float32)
        a, b = cpu_det.run({"input": blob}), gpu_det.run({"input": blob})
        worst_det = max(worst_det, max(float(np.abs(a[k] - b[k]).max()) for k in a))
        d = detector.detect(image)[0]
        patch = crop(image, roi_from_detection(d).to_crop(MESH_SIZE), MESH_SIZE)
        x = (patch[:, :, ::-1].astype(np.float32) / 255.0)[None]
        ref = _mesh_reference(models_dir, x)
        out = gpu_mesh.run({"input_1": x})
        worst_mesh = max(worst_mesh, float(np.abs(out["conv2d_21"] - ref).max()))
    # torch lets cuDNN use TF32 for fp32 convolutions (its default): ~1e-3 relative, not bit for bit.
    print(f"GPU fallback vs CPU: detector outputs max |Δ| {worst_det:.2g}, mesh max |Δ| {worst_mesh:.3g} crop px")
    assert worst_det < 5e-2, worst_det
    assert worst_mesh < 0.5, worst_mesh  # crop pixels of 192


@needs_litert
def test_segmentation_on_cuda_matches_litert(models_dir: Path, faces: Path) -> None:
    from engines.runtime import load_model

    cpu = load_model(models_dir / "selfie_segmentation.tflite", "cpu")
    gpu = load_model(models_dir / "selfie_segmentation.tflite", "cuda", engines_dir=Path("/nonexistent"))
    assert gpu.runtime == "torch-cuda"
    worst = 0.0
    for name in ("obama.jpg", "t1.jpg"):
        image = cv2.resize(cv2.imread(str(faces / name)), (256, 256), interpolation=cv2.INTER_AREA)
        x = (image[:, :, ::-1].astype(np.float32) / 255.0)[None]
        worst = max(
            worst,
            float(np.abs(cpu.run({"input_1": x})["activation_10"] - gpu.run({"input_1": x})["activation_10"]).max()),
        )
    print(f"segmentation GPU vs LiteRT: max |Δ| {worst:.3g}")
    assert worst < 2e-2  # probability 0..1 (TF32 convolutions)


def _mesh_reference(models_dir: Path, x: np.ndarray) -> np.ndarray:
    """LiteRT's output when it is installed, else the converted module on the CPU (itself checked against
    LiteRT by tests/test_convert.py)."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from engines.runtime import load_model

        return load_model(models_dir / "face_landmark.tflite", "cpu").run({"input_1": x})["conv2d_21"]
    from engines.runtime.torch_cuda import tflite_session

    return tflite_session(models_dir / "face_landmark.tflite", "cpu").run({"input_1": x})["conv2d_21"]


def test_run_device_keeps_tensors_on_the_gpu(models_dir: Path) -> None:
    from engines.runtime.torch_cuda import tflite_session

    session = tflite_session(models_dir / "face_landmark.tflite")
    x = torch.rand(4, 192, 192, 3, device="cuda")  # four faces in one call
    out = session.run_device({"input_1": x})
    assert out["conv2d_21"].is_cuda and out["conv2d_21"].shape == (4, 1, 1, 1404)
    single = session.run_device({"input_1": x[2:3]})["conv2d_21"]
    assert torch.allclose(single[0], out["conv2d_21"][2], atol=0.5, rtol=0)  # crop px; TF32 algorithms may differ


def test_relight_engine_on_cuda_matches_cpu() -> None:
    from engines.catalogue import RELIGHT
    from engines.runtime.select import load_engine

    cpu, gpu = load_engine(RELIGHT, "cpu"), load_engine(RELIGHT, "cuda")
    assert gpu.runtime in ("torch-cuda", "tensorrt")
    from engines.light.relight_torch import SHRelight

    inputs = SHRelight().example_inputs(batch=3, height=120, width=100)
    feeds = {i.name: t.numpy() for i, t in zip(cpu.inputs, inputs, strict=True)}
    a, b = cpu.run(feeds)["relit"], gpu.run(feeds)["relit"]
    assert np.abs(a - b).max() < 2e-3  # sRGB 0..1: under half an 8-bit level


@needs_litert
@pytest.mark.parametrize(
    ("clip", "frames", "relight"), [("d3.mp4", 60, False), ("roop_target_1080p.mp4", 24, False), ("d3.mp4", 30, True)]
)
def test_processor_on_gpu_matches_cpu_on_shared_clips(
    models_dir: Path, clips: Path, clip: str, frames: int, relight: bool
) -> None:
    """Stated tolerance: tracked landmarks within 2 px (mean 0.25 px) in frame pixels; output frames within 1
    level on average, and under 0.5% of pixel values more than 8 levels apart."""
    from engines.compose.watermark import WatermarkConfig
    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.settings import ProcessSettings, apply_patch

    # The two processors would mark their frames with different watermark ids (engines.compose.watermark): off here.
    unmarked = WatermarkConfig(enabled=False)
    cpu = FaceProcessor.from_models(models_dir, ProcessorConfig(device="cpu", watermark=unmarked))
    gpu = FaceProcessor.from_models(models_dir, ProcessorConfig(device="cuda", watermark=unmarked))
    assert gpu.runtime in ("torch-cuda", "tensorrt")
    settings = ProcessSettings()
    if relight:  # a key light from the upper left: the output frames differ from the input inside the face
        settings = apply_patch(settings, {"relight_target": {"mode": "direction", "direction": [-0.6, 0.5, 0.62]}})
    lm_diffs, mean_levels, far_fraction = [], [], []
    faces_seen = 0
    for i, frame in enumerate(_clip_frames(clips / clip, frames)):
        a = cpu.process(frame, i / 30, settings)
        b = gpu.process(frame, i / 30, settings)
        assert a.failed_stage is None and b.failed_stage is None
        assert len(a.faces) == len(b.faces)
        faces_seen += len(a.faces)
        for fa, fb in zip(a.faces, b.faces, strict=True):
            lm_diffs.append(np.abs(fa.landmarks[:, :2] - fb.landmarks[:, :2]))
        diff = np.abs(a.image.astype(np.int16) - b.image.astype(np.int16))
        mean_levels.append(float(diff.mean()))
        far_fraction.append(float((diff > 8).mean()))
    assert faces_seen >= frames // 2
    lm = np.concatenate(lm_diffs)
    print(
        f"{clip}: GPU vs CPU landmarks max {lm.max():.3f} px, mean {lm.mean():.4f} px; image mean |Δ| up to "
        f"{max(mean_levels):.3f} levels, pixels > 8 levels apart up to {100 * max(far_fraction):.3f}%"
    )
    assert lm.max() < 2.0 and lm.mean() < 0.25, (lm.max(), lm.mean())
    assert max(mean_levels) < 1.0 and max(far_fraction) < 0.005, (max(mean_levels), max(far_fraction))


@needs_pycuda
def test_cuda_ring_frames_are_used_by_torch_in_place() -> None:
    from streamer.live.cuda_ring import CudaFrameRing
    from streamer.live.ring import FrameMeta

    frame = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    with CudaFrameRing(slots=3) as ring:
        ring.put(frame, FrameMeta(0, 0.0))
        with ring.acquire(timeout_s=2) as slot:
            assert slot is not None
            stream = torch.cuda.ExternalStream(ring.compute_stream.handle)
            with torch.cuda.stream(stream):
                t = torch.as_tensor(slot.image, device="cuda")
                assert t.data_ptr() == slot.image.ptr and t.shape == (1080, 1920, 3) and t.dtype == torch.uint8
                total = int(t.sum(dtype=torch.int64))
                t[:10] = 0  # the consumer may work in place on its slot
            assert total == int(frame.sum(dtype=np.int64))
            host = slot.image.to_host()
            assert (host[:10] == 0).all() and (host[10:] == frame[10:]).all()
