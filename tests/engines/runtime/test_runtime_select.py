"""Runtime choice: --device auto|cuda|cpu, a valid TensorRT plan, else torch on CUDA, else the CPU.

This machine has no GPU: the CPU outcomes are real; the GPU branches are exercised by standing in for
"torch sees a GPU" and for TensorRT's session, while the manifest, the fingerprints and the converted
models are the real ones (the fallback sessions run the converted models on the CPU here).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines.catalogue import FACEMESH, RELIGHT, YUNET, torch_engine
from engines.errors import InputError, ModelError
from engines.runtime import load_model, select
from engines.runtime.plans import Manifest, PlanEntry, PlanKey
from engines.runtime.torch_cuda import onnx_session, tflite_session
from streamer.__main__ import main as cli


def test_cpu_and_auto_without_a_gpu_are_the_cpu_path(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "cuda_available", lambda: False)
    assert select.resolve_device("cpu") == "cpu" and select.resolve_device("auto") == "cpu"
    assert load_model(models_dir / "yunet_s_dynamic.onnx", "auto").runtime == "onnxruntime-cpu"
    assert load_model(models_dir / "face_landmark.tflite", "auto").runtime == "litert-cpu"


def test_cuda_without_a_gpu_and_unknown_devices_are_input_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "cuda_available", lambda: False)
    with pytest.raises(InputError, match="--device cuda: no CUDA GPU is visible"):
        select.resolve_device("cuda")
    with pytest.raises(InputError, match="unknown device 'gpu'; choose one of auto, cuda, cpu"):
        select.resolve_device("gpu")


def test_registry_models_are_recognised_by_content(models_dir: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "detector.onnx"
    shutil.copy(models_dir / "yunet_s_dynamic.onnx", renamed)
    assert select.registry_name_for(renamed) == "yunet"
    assert select.registry_name_for(models_dir / "face_landmark.tflite") == "facemesh"
    assert select.registry_name_for(models_dir / "FaceMesh.onnx") is None  # a conversion, not a registry file


class _TrtStandIn:
    runtime = "tensorrt"

    def __init__(self, path: Path, profiles: Any) -> None:
        self.path, self.profiles = path, profiles


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Torch 'sees' an H200, TensorRT 10.8.0 is 'installed'; fallback sessions run the real conversions on the
    CPU (this machine has no CUDA)."""
    monkeypatch.setattr(select, "cuda_available", lambda: True)
    monkeypatch.setattr(select, "gpu_name", lambda: "NVIDIA H200")
    monkeypatch.setattr("engines.runtime.tensorrt.tensorrt_version", lambda: "10.8.0")
    monkeypatch.setattr("engines.runtime.tensorrt.TrtSession", _TrtStandIn)

    def cpu_fallback(path: Path) -> Any:
        return onnx_session(path, "cpu") if path.suffix == ".onnx" else tflite_session(path, "cpu")

    monkeypatch.setattr(select, "_fallback_session", cpu_fallback)


def _record_plan(directory: Path, name: str, key: PlanKey) -> PlanEntry:
    from engines.runtime.models import sha256_file

    plan = directory / (key.file_stem(name) + ".plan")
    plan.write_bytes(b"a plan")
    entry = PlanEntry(name, key, plan.name, sha256_file(plan), True, dict(FACEMESH.profiles))
    m = Manifest.load(directory)
    m.record(entry)
    m.save()
    return entry


def test_a_valid_plan_runs_in_tensorrt(gpu: None, models_dir: Path, tmp_path: Path, caplog: Any) -> None:
    entry = _record_plan(tmp_path, "facemesh", PlanKey("NVIDIA H200", "10.8.0", FACEMESH.fingerprint(models_dir)))
    with caplog.at_level(logging.INFO, logger="engines.runtime.select"):
        session = load_model(models_dir / "face_landmark.tflite", "cuda", engines_dir=tmp_path)
    assert isinstance(session, _TrtStandIn) and session.path == tmp_path / entry.plan
    assert session.profiles == entry.profiles
    assert "facemesh: tensorrt" in caplog.text


def test_a_stale_plan_is_refused_with_the_reason_and_the_fallback_runs(
    gpu: None, models_dir: Path, tmp_path: Path, caplog: Any
) -> None:
    _record_plan(tmp_path, "facemesh", PlanKey("NVIDIA A100-SXM4-80GB", "10.8.0", FACEMESH.fingerprint(models_dir)))
    with caplog.at_level(logging.INFO, logger="engines.runtime.select"):
        session = load_model(models_dir / "face_landmark.tflite", "cuda", engines_dir=tmp_path)
    assert session.runtime == "torch-cpu"  # torch-cuda on a real GPU
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "is stale: built for GPU 'NVIDIA A100-SXM4-80GB', this is 'NVIDIA H200'" in warnings[0].message
    assert "python build_engines.py --out" in warnings[0].message
    out = session.run({"input_1": np.full((1, 192, 192, 3), 0.5, np.float32)})
    assert out["conv2d_21"].shape == (1, 1, 1, 1404)


def test_without_tensorrt_the_gpu_fallback_is_chosen(
    gpu: None, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr("engines.runtime.tensorrt.tensorrt_version", lambda: None)
    _record_plan(tmp_path, "yunet", PlanKey("NVIDIA H200", "10.8.0", YUNET.fingerprint()))
    with caplog.at_level(logging.INFO, logger="engines.runtime.select"):
        session = load_model(models_dir / "yunet_s_dynamic.onnx", "auto", engines_dir=tmp_path)
    assert session.runtime == "torch-cpu"
    assert "yunet: torch-cpu (TensorRT is not installed)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_model_outside_the_registry_has_no_plan_but_runs(gpu: None, models_dir: Path, tmp_path: Path) -> None:
    session = load_model(models_dir / "yunet_s_640_640.onnx", "cuda", engines_dir=tmp_path)  # not in the registry
    assert session.runtime == "torch-cpu"
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "absent.onnx", "cuda", engines_dir=tmp_path)


def test_a_model_the_converters_cannot_handle_runs_on_the_cpu_with_a_warning(
    gpu: None, models_dir: Path, tmp_path: Path, caplog: Any
) -> None:
    with caplog.at_level(logging.INFO, logger="engines.runtime.select"):
        session = load_model(models_dir / "face_detection_short_range.tflite", "cuda", engines_dir=tmp_path)
    assert session.runtime == "litert-cpu"
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no GPU conversion" in warnings[0] and "RESHAPE" in warnings[0]


def test_a_corrupt_manifest_falls_back_with_a_warning(gpu: None, models_dir: Path, tmp_path: Path, caplog: Any) -> None:
    (tmp_path / "manifest.json").write_text("{broken")
    with caplog.at_level(logging.INFO, logger="engines.runtime.select"):
        session = load_model(models_dir / "yunet_s_dynamic.onnx", "cuda", engines_dir=tmp_path)
    assert session.runtime == "torch-cpu"
    assert any(r.levelno == logging.WARNING and "unreadable" in r.message for r in caplog.records)


def test_our_torch_engines_load_on_the_cpu_and_unknown_ones_are_refused() -> None:
    session = select.load_engine(torch_engine("relight"), "cpu")
    assert session.runtime == "torch-cpu" and [i.name for i in session.inputs][0] == "image"
    from engines.light.relight_torch import SHRelight

    inputs = SHRelight().example_inputs(batch=2)
    out = session.run({i.name: t.numpy() for i, t in zip(session.inputs, inputs, strict=True)})
    assert out["relit"].shape == (2, 3, 96, 80)
    with pytest.raises(ModelError, match="unknown torch engine 'yunet'"):
        torch_engine("yunet")
    assert torch_engine("relight") is RELIGHT


def test_cli_device_flag(tmp_path: Path, clips: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(select, "cuda_available", lambda: False)
    rc = cli(["process", "-i", str(clips / "d0.mp4"), "-o", str(tmp_path / "o.mp4"), "--device", "cuda"])
    assert rc == 2 and "stageswap: error: --device cuda: no CUDA GPU is visible" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(SystemExit):
        cli(["process", "-i", "x.mp4", "-o", "y.mp4", "--device", "tpu"])
    assert "invalid choice: 'tpu'" in capsys.readouterr().err
