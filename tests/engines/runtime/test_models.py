"""Model registry: resolution order, verification, fetching with sha256, and the CLI's messages."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.errors import ModelError
from engines.runtime import models
from streamer.__main__ import main


@pytest.fixture
def served(tmp_path: Path, models_dir: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving a copy of the shared models (a stand-in for the official URLs)."""
    root = tmp_path / "www"
    root.mkdir()
    for spec in models.REGISTRY.values():
        shutil.copy(models.resolve(spec.name, models_dir), root / spec.filename)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_registry_entries_are_complete() -> None:
    for spec in models.REGISTRY.values():
        assert len(spec.sha256) == 64 and spec.urls and spec.licence and spec.inputs and spec.outputs
        assert all(u.startswith("https://") for u in spec.urls)


def test_shared_models_match_registry(models_dir: Path) -> None:
    for spec in models.REGISTRY.values():
        shipped = models.package_dir(spec)
        path = shipped / spec.filename if shipped is not None else models_dir / spec.filename
        assert models.sha256_file(path) == spec.sha256, spec.name


def test_a_model_a_package_ships_resolves_without_a_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The face recogniser comes inside face-recognition-models: found there, verified, after any models folder."""
    monkeypatch.delenv(models.MODELS_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shipped = models.package_dir(models.FACE_DESCRIPTOR)
    assert shipped is not None and shipped.name == "models"
    assert models.resolve("face_descriptor", tmp_path) == shipped / models.FACE_DESCRIPTOR.filename
    assert models.fetch("face_descriptor", tmp_path) == shipped / models.FACE_DESCRIPTOR.filename  # nothing fetched
    assert not (tmp_path / models.FACE_DESCRIPTOR.filename).exists()
    # a copy in a models folder comes first, and a damaged one there is an error, not skipped for the package's
    (tmp_path / models.FACE_DESCRIPTOR.filename).write_bytes(b"damaged")
    with pytest.raises(ModelError, match="corrupt"):
        models.resolve("face_descriptor", tmp_path)


def test_resolution_order(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", tmp_path / "cache"
    for d in (explicit, env, cache / "stageswap" / "models"):
        d.mkdir(parents=True)
        shutil.copy(models_dir / "yunet_s_dynamic.onnx", d / "yunet_s_dynamic.onnx")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv(models.MODELS_ENV, str(env))
    assert models.resolve("yunet", explicit) == explicit / "yunet_s_dynamic.onnx"
    assert models.resolve("yunet") == env / "yunet_s_dynamic.onnx"
    monkeypatch.delenv(models.MODELS_ENV)
    assert models.resolve("yunet") == cache / "stageswap" / "models" / "yunet_s_dynamic.onnx"


def test_missing_model_message_names_model_path_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(models.MODELS_ENV, raising=False)
    with pytest.raises(ModelError) as err:
        models.resolve("facemesh", tmp_path)
    text = str(err.value)
    assert "'facemesh'" in text and str(tmp_path / "face_landmark.tflite") in text
    assert "stageswap models fetch facemesh" in text


def test_corrupt_model_is_an_error_not_skipped(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(models_dir / "face_landmark.tflite", tmp_path / "face_landmark.tflite")
    with open(tmp_path / "face_landmark.tflite", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    # A good copy further down the search order must not hide the corrupt one.
    monkeypatch.setenv(models.MODELS_ENV, str(models_dir))
    with pytest.raises(ModelError, match="corrupt.*--force"):
        models.resolve("facemesh", tmp_path)


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ModelError, match="known models: face_descriptor, facemesh"):
        models.resolve("no-such-model")


def test_fetch_downloads_verifies_and_renames(
    tmp_path: Path, served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = served
    monkeypatch.delenv(models.MODELS_ENV, raising=False)
    dest = tmp_path / "models"
    seen: list[int] = []

    class Bar:
        def update(self, n: int) -> None:
            seen.append(n)

        def close(self) -> None:
            pass

    path = models.fetch("yunet", dest, mirror=base, progress=lambda total, name: Bar())
    assert path == dest / "yunet_s_dynamic.onnx"
    assert models.sha256_file(path) == models.YUNET.sha256
    assert sum(seen) == models.YUNET.size_bytes
    assert [p.name for p in dest.iterdir()] == ["yunet_s_dynamic.onnx"]  # no temp files left


def test_fetch_refuses_wrong_bytes_and_installs_nothing(
    tmp_path: Path, served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = served
    monkeypatch.delenv(models.MODELS_ENV, raising=False)
    (root / "yunet_s_dynamic.onnx").write_bytes(b"not the model")
    spec = dataclasses.replace(models.YUNET, urls=(f"{base}/yunet_s_dynamic.onnx",))
    monkeypatch.setitem(models.REGISTRY, "yunet", spec)  # type: ignore[index]
    dest = tmp_path / "models"
    with pytest.raises(ModelError, match="sha256"):
        models.fetch("yunet", dest)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_fetch_unreachable_url_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(models.MODELS_ENV, raising=False)
    spec = dataclasses.replace(models.YUNET, urls=("http://127.0.0.1:9/yunet_s_dynamic.onnx",))
    monkeypatch.setitem(models.REGISTRY, "yunet", spec)  # type: ignore[index]
    with pytest.raises(ModelError, match="could not fetch model 'yunet'"):
        models.fetch("yunet", tmp_path, timeout_s=5)


def test_cli_fetch_and_verify(
    tmp_path: Path,
    served: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, _ = served
    monkeypatch.delenv(models.MODELS_ENV, raising=False)
    dest = tmp_path / "m"
    assert main(["models", "verify", "--models", str(dest)]) == 2
    assert "not found" in capsys.readouterr().out
    assert main(["models", "fetch", "--models", str(dest), "--mirror", base]) == 0
    assert main(["models", "verify", "--models", str(dest)]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok ") == len(models.REGISTRY)
    (dest / "yunet_s_dynamic.onnx").write_bytes(b"garbage")
    assert main(["models", "verify", "--models", str(dest)]) == 2
    assert "corrupt" in capsys.readouterr().out


def test_cli_unknown_model_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "fetch", "nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stageswap: error: unknown model 'nonexistent'") and "Traceback" not in err
