"""The neural renderer as a product swap model (issue 19): ``stageswap train NAME --arch dnr`` trains it on the src
person's faceset alone and registers it as model kind ``dnr`` with the src person's consent; ``models add`` checks
a renderer's export and refuses a bad one with a one-line error; a registered renderer swaps a tracked d3 frame
through the FaceProcessor (the face changes, the rest of the frame does not). Tiny facesets of the shared clips, a
few iterations: seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.swap.user_models import UserModelStore
from engines.train.faceset import load_faceset
from engines.train.neural_render import DnrConfig, DnrTrainConfig, DnrTrainer, export_onnx
from streamer.__main__ import main
from tests.train_helpers import one_line_error, tiny_faceset

TINY = DnrConfig(resolution=64, texture_px=32, channels=4, levels=2, dims=8)


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory, clips: Path, models_dir: Path) -> Path:
    return tiny_faceset(clips / "Obama_speaking.mp4", tmp_path_factory.mktemp("dnr-model") / "src", models_dir)


@pytest.fixture(scope="module")
def export(src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    trainer = DnrTrainer(DnrTrainConfig(net=TINY, batch=4), load_faceset(src, 64))
    for _ in range(5):
        trainer.step()
    path = tmp_path_factory.mktemp("dnr-export") / "obama-dnr.onnx"
    export_onnx(trainer.net, path)
    return path


def test_a_registered_renderer_swaps_a_tracked_frame_through_the_processor(
    export: Path, tmp_path: Path, clips: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engines.processor import FaceProcessor
    from engines.settings import ProcessSettings
    from engines.swap.learned import NeuralRenderSwapper
    from streamer.governance.consent import model_consent_summary
    from streamer.governance.likeness import Likeness, swapped_in
    from tests.face_helpers import clip_frames

    data = tmp_path / "data"
    # A likeness of its own: refused without consent, exactly like a DFM.
    assert "no consent record" in one_line_error(capsys, ["models", "add", str(export), "--data-dir", str(data)])
    assert main(["models", "add", str(export), "--data-dir", str(data), "--unverified", "--name", "obama"]) == 0
    store = UserModelStore(data)
    model = store.get("obama")
    assert (model.kind, model.resolution, model.is_likeness) == ("dnr", 64, True)
    assert model.options["coverage"] == pytest.approx(1.8)  # the faceset's framing
    assert [t.name for t in model.inputs] == ["uv", "covered"] and [t.name for t in model.outputs] == ["face"]
    summary = model_consent_summary(model)
    assert summary is not None and summary["status"] == "unverified"
    # What a swap with it puts on the actor is the model's likeness (consent, provenance), not an identity's.
    assert swapped_in({"swap": True, "swap_model": "obama", "identity": "x"}, store) == Likeness("dfm", "obama")

    processor = FaceProcessor.from_models(models_dir, user_models=store)
    settings = ProcessSettings(swap_model="obama", relight=False)
    for image, t in clip_frames(clips / "d3.mp4", 3):
        result = processor.process(image, t, settings)
        assert result.failed_stage is None
    assert processor.frames_failed == 0
    assert isinstance(processor.swap._learned, NeuralRenderSwapper)
    face = result.faces[0]
    changed = np.abs(result.image.astype(int) - image.astype(int)).max(axis=2) > 8
    x0, y0, x1, y1 = face.box.astype(int)
    assert changed[y0:y1, x0:x1].mean() > 0.2
    assert changed[:, : max(0, x0 - 40)].mean() < 0.001
    assert changed[:, x1 + 40 :].mean() < 0.001


def test_a_bad_renderer_file_is_refused_in_one_line(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(export.read_bytes()[: export.stat().st_size // 2])
    assert "truncated" in one_line_error(capsys, ["models", "add", str(cut), "--data-dir", data, "--unverified"])

    class HalfSize(torch.nn.Module):  # a face at half the uv's resolution
        def forward(self, uv: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
            x = torch.cat([uv, covered], dim=3).permute(0, 3, 1, 2)
            return torch.nn.functional.avg_pool2d(x, 2).permute(0, 2, 3, 1)

    half = tmp_path / "half.onnx"
    torch.onnx.export(
        HalfSize(),
        (torch.rand(1, 64, 64, 2), torch.ones(1, 64, 64, 1)),
        str(half),
        input_names=["uv", "covered"],
        output_names=["face"],
        opset_version=17,
        dynamo=False,
    )
    err = one_line_error(capsys, ["models", "add", str(half), "--data-dir", data, "--unverified"])
    assert "disagrees with its 64x64 uv" in err and "a dnr model" in err
    err = one_line_error(capsys, ["models", "add", str(export), "--kind", "dfm", "--data-dir", data, "--unverified"])
    assert "its graph is of kind dnr" in err
    assert not (tmp_path / "data" / "models.json").exists()


def test_train_arch_dnr_registers_a_renderer_and_refuses_bad_input(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    data = str(tmp_path / "data")
    base = ["train", "m", "--arch", "dnr", "--resolution", "64", "--data-dir", data, "--threads", "1"]
    assert "no consent record" in one_line_error(capsys, [*base, "--src", str(src), "--iterations", "1"])
    assert "does not take --dst" in one_line_error(
        capsys, [*base, "--src", str(src), "--dst", str(src), "--iterations", "1", "--unverified"]
    )
    assert "needs --src" in one_line_error(capsys, [*base, "--iterations", "1", "--unverified"])
    assert "is a folder but not a faceset" in one_line_error(
        capsys, [*base, "--src", str(tmp_path), "--iterations", "1", "--unverified"]
    )
    empty = tmp_path / "empty"
    shutil.copytree(src, empty)
    for f in (empty / "faces").iterdir():
        f.unlink()
    assert "has no faces" in one_line_error(capsys, [*base, "--src", str(empty), "--iterations", "1", "--unverified"])
    assert "multiple of 8" in one_line_error(
        capsys, [*base, "--src", str(src), "--iterations", "1", "--unverified", "--resolution", "60"]
    )
    assert UserModelStore(data).names() == []

    assert main([*base, "--src", str(src), "--iterations", "2", "--unverified"]) == 0
    out = capsys.readouterr().out
    assert "registered it as swap model 'm' after 2 iterations" in out
    model = UserModelStore(data).get("m")
    assert (model.kind, model.resolution) == ("dnr", 64)


def test_sigterm_ends_a_dnr_training_and_registers_what_it_learned(src: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[3]
    data = tmp_path / "data"
    cmd = [
        sys.executable, "-m", "streamer", "train", "m", "--arch", "dnr", "--resolution", "64", "--src", str(src),
        "--minutes", "10", "--threads", "1", "--unverified", "--data-dir", str(data),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("training 'm': neural renderer (dnr) 64 px"), first
        time.sleep(4.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped at iteration" in out
    iterations = int(out.split("stopped at iteration ")[1].split(":")[0])
    assert iterations >= 1
    assert f"registered it as swap model 'm' after {iterations} iterations" in out
    assert UserModelStore(data).get("m").kind == "dnr"
