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


# The longest files first, so the suite's tail on its workers is short files. `make test` hands whole files to its
# workers (xdist's --dist loadfile) in collection order (--no-loadscope-reorder; xdist's own order is by number of
# tests, which put one-test files that run a minute — two performers, the training monitor — last on a worker
# while the others had finished). Wall seconds of each file in a 4-worker suite (the sixth session's per-test
# profile, load 16-18; only their order matters): a file not listed runs after these, in collection order.
WALL_S = {
    "tests/streamer/test_browser_operator.py": 139,
    "tests/benchmarks/test_eval.py": 121,
    "tests/engines/train/test_train.py": 120,
    "tests/streamer/record/test_recorder.py": 111,
    "tests/engines/identity/test_two_performers.py": 99,
    "tests/streamer/test_recording_api.py": 96,
    "tests/engines/identity/test_identity.py": 92,
    "tests/streamer/test_api.py": 84,
    "tests/streamer/test_hostile.py": 84,
    "tests/engines/compose/test_watermark.py": 81,
    "tests/streamer/commands/test_identities_cli.py": 79,
    "tests/engines/face/test_tracking.py": 76,
    "tests/streamer/test_browser.py": 71,
    "tests/engines/swap/test_learned_swap.py": 67,
    "tests/engines/swap/test_swap_quality.py": 66,
    "tests/streamer/test_stream_audio.py": 63,
    "tests/streamer/test_provenance.py": 54,
    "tests/streamer/test_targets_service.py": 51,
    "tests/streamer/test_publishers.py": 49,
    "tests/engines/test_torch_ops.py": 47,
    "tests/streamer/test_faults.py": 45,
    "tests/streamer/test_webrtc.py": 42,
    "tests/benchmarks/test_stamps.py": 40,
    "tests/engines/swap/test_realism.py": 39,
    "tests/streamer/test_auth.py": 31,
    "tests/streamer/test_sfu_janus.py": 31,
    "tests/streamer/commands/test_process_targets.py": 28,
    "tests/engines/stages/test_torch_stages.py": 26,
    "tests/streamer/commands/test_process_cli.py": 26,
    "tests/engines/identity/test_targets.py": 25,
    "tests/streamer/test_ndi.py": 24,
    "tests/streamer/test_train_monitor.py": 24,
    "tests/streamer/test_limits.py": 23,
    "tests/streamer/test_browser_stage.py": 22,
    "tests/streamer/test_consent_service.py": 21,
    "tests/test_build_engines.py": 21,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (``WALL_S``); the order within a file, and of the files not listed, is kept."""
    items.sort(key=lambda item: -WALL_S.get(item.nodeid.split("::", 1)[0], 0))


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
