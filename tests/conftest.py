"""Shared fixtures: the shared test material (clips, photos, models) and loaded engines.

The material lives outside the repository, at $STAGESWAP_SHARED (default ../shared). Tests that need
it skip with a clear reason only when that folder is genuinely absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# One thread per library: the suite runs several pytest workers on few cores (``make test``: 4 on 2), and a
# library's own pool on top of them oversubscribes the cores — torch's OpenMP threads (and OpenBLAS's) spin
# while they wait for one. Measured on the 2-core VM under load: the torch-stage parity test took 40.5 s of
# CPU with torch's default two threads, 10.4 s with one. Set here, before anything imports numpy or torch, so
# the servers and commands the tests start inherit it; a variable set by the caller wins.
for _threads_var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads_var, "1")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STAGESWAP_SHARED") or (REPO.parent / "shared")).resolve()
CLIPS = SHARED / "data" / "clips"
FACES = SHARED / "data" / "faces"
SHARED_MODELS = SHARED / "models"

SINGLE_FACE_CLIPS = [
    "d3.mp4",
    "d10.mp4",
    "d13.mp4",
    "d0.mp4",
    "s18.mp4",
    "Obama_speaking.mp4",
    "roop_target_1080p.mp4",
]


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test material not found at {path} (set STAGESWAP_SHARED)")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def clips() -> Path:
    return _need(CLIPS)


@pytest.fixture(scope="session")
def faces() -> Path:
    return _need(FACES)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _need(SHARED_MODELS)


@pytest.fixture(autouse=True)
def _isolated_model_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never touch the real user cache or data: point them into temp folders; keep $STAGESWAP_MODELS."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "xdg-data"))
    monkeypatch.delenv("STAGESWAP_DATA", raising=False)
    if not os.environ.get("STAGESWAP_MODELS") and SHARED_MODELS.is_dir():
        monkeypatch.setenv("STAGESWAP_MODELS", str(SHARED_MODELS))
    yield


@pytest.fixture(scope="session")
def detector(models_dir: Path):  # type: ignore[no-untyped-def]
    from engines.face.detect import FaceDetector
    from engines.runtime import load_model

    return FaceDetector(load_model(models_dir / "yunet_s_dynamic.onnx"))


@pytest.fixture(scope="session")
def mesh(models_dir: Path):  # type: ignore[no-untyped-def]
    from engines.face.landmarks import FaceMesh
    from engines.runtime import load_model

    return FaceMesh(load_model(models_dir / "face_landmark.tflite"))


@pytest.fixture
def tracker(detector, mesh):  # type: ignore[no-untyped-def]
    from engines.face.tracker import FaceTracker

    return FaceTracker(detector, mesh)
