"""Training a swap model (engines.train): it learns, it resumes bit for bit after kill -9, it stops cleanly on
SIGTERM, its DFM passes the `models add` checks and swaps a face through the FaceProcessor, and bad input
is one line.

Everything runs a tiny model (64 px, ~0.2 M parameters) on tiny facesets of the shared clips: seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.errors import ModelError
from engines.swap.model_inspect import inspect_model
from engines.swap.user_models import UserModelStore
from engines.train.export import INPUT_NAME, OUTPUT_NAMES, DfmGraph, export_dfm
from engines.train.faceset import load_faceset
from engines.train.trainer import (
    CHECKPOINT_FILE,
    PREVIEW_FILE,
    PROGRESS_FILE,
    StopRule,
    TrainConfig,
    Trainer,
    read_checkpoint,
)
from streamer.governance.consent import model_consent_summary
from tests.train_helpers import TINY_FLAGS, TINY_NET, losses_after_kill_9, one_line_error

REPO = Path(__file__).resolve().parents[3]


def _trainer(facesets: tuple[Path, Path], folder: Path, **kw: object) -> Trainer:
    src = load_faceset(facesets[0], TINY_NET.resolution)
    dst = load_faceset(facesets[1], TINY_NET.resolution)
    return Trainer(TrainConfig(net=TINY_NET, batch=4, **kw), src, dst, folder)  # type: ignore[arg-type]


def _eval_loss(trainer: Trainer) -> float:
    """The loss on fixed batches (a generator of its own, so training's random stream is not touched)."""
    from engines.train.losses import face_loss

    gen = torch.Generator().manual_seed(99)
    total = 0.0
    with torch.no_grad():
        for batches in (trainer.src, trainer.dst):
            x, target, masks = batches.sample(8, gen)
            face, mask = trainer.net(x, x)[0 if batches is trainer.src else 1]
            total += float(face_loss(face, mask, target, masks, trainer.cfg.loss))
    return total


def test_a_few_iterations_lower_the_loss(facesets: tuple[Path, Path], tmp_path: Path, one_thread: object) -> None:
    trainer = _trainer(facesets, tmp_path, lr=1e-3)
    before = _eval_loss(trainer)
    for _ in range(40):
        trainer.step()
    after = _eval_loss(trainer)
    assert after < 0.8 * before, (before, after)
    assert all(np.isfinite(trainer.last_losses))


_CHILD = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from engines.train.faceset import load_faceset
    from engines.train.trainer import Trainer, TrainConfig
    from tests.train_helpers import TINY_NET
    torch.set_num_threads(1)
    src, dst, folder = sys.argv[1:4]
    t = Trainer(TrainConfig(net=TINY_NET, batch=4), load_faceset(src, 64), load_faceset(dst, 64), Path(folder))
    for _ in range(3):
        t.step()
    t.save_checkpoint()
    print("saved", flush=True)
    while True:
        print(repr(t.step()), flush=True)
    """
)


def test_resume_after_kill_9_continues_bit_for_bit(
    facesets: tuple[Path, Path], tmp_path: Path, one_thread: object
) -> None:
    """A training process killed with SIGKILL after a checkpoint: a new process resumes from it and computes
    the very losses (to the last bit) the killed one computed for the iterations after the checkpoint."""
    after_checkpoint = losses_after_kill_9(_CHILD, str(facesets[0]), str(facesets[1]), str(tmp_path), cwd=REPO)
    state = read_checkpoint(tmp_path, torch.device("cpu"))
    assert state is not None and state["iteration"] == 3
    torch.manual_seed(12345)  # a different global random state: the trainer must not depend on it
    resumed = _trainer(facesets, tmp_path / "resumed")
    resumed.load_state(state)
    assert [resumed.step() for _ in range(3)] == after_checkpoint


def _cli(*args: str, data: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args, "--data-dir", str(data)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sigterm_checkpoints_then_resume_exports_a_dfm_that_swaps(
    facesets: tuple[Path, Path], tmp_path: Path, clips: Path, models_dir: Path
) -> None:
    data = tmp_path / "data"
    folder = data / "training" / "tiny"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "streamer", "train", "tiny", "--src", str(facesets[0]), "--dst", str(facesets[1]),
        "--minutes", "10", *TINY_FLAGS, "--unverified", "--data-dir", str(data),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if json.loads((folder / PROGRESS_FILE).read_text())["iteration"] >= 2:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        else:
            pytest.fail("training never reported progress")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    state = read_checkpoint(folder, torch.device("cpu"))
    assert state is not None
    stopped_at = state["iteration"]
    assert f"stopped at iteration {stopped_at};" in out
    assert json.loads((folder / PROGRESS_FILE).read_text())["state"] == "stopped"
    assert (folder / PREVIEW_FILE).stat().st_size > 0
    store = UserModelStore(data)
    assert store.names() == []  # a stopped training registers nothing

    done = _cli("train", "tiny", "--resume", "--iterations", str(stopped_at + 2), "--threads", "1", data=data)
    assert done.returncode == 0, done.stderr
    assert f"after {stopped_at + 2} iterations" in done.stdout
    model = store.get("tiny")
    assert model.kind == "dfm" and model.resolution == 64 and model.options["coverage"] == pytest.approx(1.8)
    assert model_consent_summary(model)["status"] == "unverified"  # as decided when training started

    # The registered file passes exactly what `models add` checks, and DeepFaceLive's reading of it.
    path = store.path(model)
    found = inspect_model(path)
    assert found.kind == "dfm" and found.options["has_morph"] is False
    import onnx

    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == [INPUT_NAME]
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)  # DeepFaceLive unpacks them by position
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [64, 64, 3]

    # It swaps a face through the FaceProcessor: pixels change on the face, not far from it.
    from engines.processor import FaceProcessor
    from engines.settings import ProcessSettings
    from tests.face_helpers import clip_frames

    processor = FaceProcessor.from_models(models_dir, user_models=store)
    settings = ProcessSettings(swap_model="tiny", relight=False)
    for image, t in clip_frames(clips / "d3.mp4", 3):
        result = processor.process(image, t, settings)
        assert result.failed_stage is None
    assert processor.frames_failed == 0
    face = result.faces[0]
    changed = np.abs(result.image.astype(int) - image.astype(int)).max(axis=2) > 8
    x0, y0, x1, y1 = face.box.astype(int)
    assert changed[y0:y1, x0:x1].mean() > 0.2
    assert changed[:, : max(0, x0 - 40)].mean() < 0.001


def test_exported_graph_is_the_trained_network(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    """ONNX Runtime and stageswap's torch interpreter (the GPU fallback) give what the torch network gives."""
    import onnxruntime as ort

    from engines.runtime.convert.onnx_torch import load_onnx_module

    trainer = _trainer(facesets, tmp_path)
    trainer.step()
    path = tmp_path / "m.dfm"
    export_dfm(trainer.net, path)
    x = np.random.default_rng(1).random((1, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        expected = [t.numpy() for t in DfmGraph(trainer.net.eval())(torch.from_numpy(x))]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x})
    interpreted = load_onnx_module(path)(**{INPUT_NAME: torch.from_numpy(x)})
    for name, e, g in zip(OUTPUT_NAMES, expected, got, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, atol=1e-5)
        np.testing.assert_allclose(interpreted[name].numpy(), e, atol=1e-5)


def test_liae_trains_and_exports(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    import dataclasses

    src = load_faceset(facesets[0], 64)
    dst = load_faceset(facesets[1], 64)
    net = dataclasses.replace(TINY_NET, arch="liae")
    trainer = Trainer(TrainConfig(net=net, batch=2), src, dst, tmp_path)
    assert trainer.run(StopRule(iterations=2)) == "finished"
    assert (tmp_path / CHECKPOINT_FILE).is_file()
    assert export_dfm(trainer.net, tmp_path / "liae.dfm").resolution == 64


# ---- bad input: one line each -------------------------------------------------------------------------------


def test_bad_input_is_one_line(
    facesets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import shutil

    data = str(tmp_path / "data")
    src, dst = (str(p) for p in facesets)
    base = ["train", "m", "--data-dir", data, *TINY_FLAGS]
    assert "no consent record" in one_line_error(capsys, [*base, "--src", src, "--dst", dst, "--iterations", "1"])
    assert "say how long to train" in one_line_error(capsys, [*base, "--src", src, "--dst", dst, "--unverified"])
    assert "is a folder but not a faceset" in one_line_error(
        capsys, [*base, "--src", str(tmp_path), "--dst", dst, "--iterations", "1", "--unverified"]
    )
    empty = tmp_path / "empty"
    shutil.copytree(facesets[1], empty)
    for f in (empty / "faces").iterdir():
        f.unlink()
    assert "has no faces" in one_line_error(
        capsys, [*base, "--src", src, "--dst", str(empty), "--iterations", "1", "--unverified"]
    )
    assert "nothing to resume" in one_line_error(capsys, [*base, "--resume", "--iterations", "1"])
    if not torch.cuda.is_available():
        assert "torch sees no CUDA GPU" in one_line_error(
            capsys, [*base, "--src", src, "--dst", dst, "--iterations", "1", "--device", "cuda"]
        )
    # Disk full while writing the checkpoint: said as such, nothing half-written left behind.
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    err = one_line_error(capsys, [*base, "--src", src, "--dst", dst, "--iterations", "2"])
    assert "checkpoint.pt: the disk is full" in err
    monkeypatch.setattr(os, "fsync", real_fsync)
    folder = tmp_path / "data" / "training" / "m"
    assert not (folder / CHECKPOINT_FILE).exists() and not list(folder.glob(".*.tmp"))
    # A finished training, then a resume at another resolution; a new one under a taken name.
    from streamer.__main__ import main

    assert main([*base, "--src", src, "--dst", dst, "--iterations", "2"]) == 0
    capsys.readouterr()
    # Its training exported again (after a stopped resume, say) replaces the model it registered.
    assert main(["train", "m", "--data-dir", data, "--export-only"]) == 0
    assert "registered it as swap model 'm' after 2 iterations" in capsys.readouterr().out
    bigger = [a if a != "64" else "96" for a in base]
    assert "trained with --resolution 64, not 96" in one_line_error(capsys, [*bigger, "--resume", "--iterations", "3"])
    assert "holds a training of 'm'" in one_line_error(
        capsys, [*base, "--src", src, "--dst", dst, "--iterations", "2", "--replace"]
    )
    assert "registered already" in one_line_error(
        capsys, ["train", "m", "--data-dir", data, "--src", src, "--dst", dst, "--iterations", "2"]
    )


def test_export_refuses_what_models_add_refuses(tmp_path: Path) -> None:
    """The exporter checks its file with `models add`'s inspection: a net outside the DFM sizes is refused."""
    from engines.train.nets import NetConfig, SwapNet

    with pytest.raises(ModelError, match=r"a DFM works on a square face of 64\.\.1024 px"):
        export_dfm(SwapNet(NetConfig("df", 32, 8, 16, 16, 8)), tmp_path / "small.dfm")
    assert not list(tmp_path.iterdir())


def test_torchrun_two_processes_on_the_cpu(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    """Two DistributedDataParallel processes (gloo) through torchrun: each draws its own batches (its own
    random stream, both checkpointed), rank 0 alone writes and registers, and the DFM is the averaged model."""
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "streamer",
        "train", "ddp", "--src", str(facesets[0]), "--dst", str(facesets[1]), "--iterations", "3", "--device", "cpu",
        *TINY_FLAGS, "--unverified", "--data-dir", str(data),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("registered it as swap model 'ddp' after 3 iterations") == 1  # rank 0 only
    assert "batch 4 x 2 processes" in done.stdout
    state = read_checkpoint(data / "training" / "ddp", torch.device("cpu"))
    assert state is not None and state["world"] == 2 and state["iteration"] == 3
    g0, g1 = state["generators"]
    assert not torch.equal(g0, g1)
    assert UserModelStore(data).get("ddp").resolution == 64


def test_divergence_stops_without_overwriting_the_checkpoint(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    from engines.errors import EngineError

    trainer = _trainer(facesets, tmp_path)
    trainer.step()
    trainer.save_checkpoint()
    saved = (tmp_path / CHECKPOINT_FILE).read_bytes()
    with torch.no_grad():
        trainer.net.encoder[0][0].weight.fill_(float("nan"))  # what a too-high learning rate ends in
    with pytest.raises(EngineError, match=r"diverged at iteration 2 .* resume from it with a lower --lr"):
        trainer.run(StopRule(iterations=5))
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == saved


def test_resume_trains_on_every_faceset_it_started_with(
    facesets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A performer given as several facesets (two takes): a resume without --dst loads them all again, not the
    first alone (it used to continue on one take and say nothing)."""
    from streamer.__main__ import main

    src, dst = (str(p) for p in facesets)
    base = ["train", "takes", "--data-dir", str(tmp_path / "data"), *TINY_FLAGS]
    both = len(load_faceset(facesets[1], 64)) + len(load_faceset(facesets[0], 64))
    assert main([*base, "--src", src, "--dst", dst, src, "--iterations", "1", "--unverified"]) == 0
    assert f"dst {both} faces" in capsys.readouterr().out
    assert main([*base, "--resume", "--iterations", "2"]) == 0
    assert f"dst {both} faces, from iteration 1" in capsys.readouterr().out


def test_eye_and_mouth_errors_cost_more_than_skin(facesets: tuple[Path, Path]) -> None:
    """The loss's eye and mouth priority (DeepFaceLab's recipe, ``LossConfig.eyes_mouth_weight``): on real d3
    faces, an error of 0.2 over the mesh's eyes and mouth, against the same error over the cheeks below them,
    costs relatively more with the weight than without it — what makes a model spend its capacity where a face
    is recognised and where its expression shows (issue 19: a 64 px model still draws them as blurs)."""
    from dataclasses import replace

    from engines.train.data import to_tensor
    from engines.train.losses import LossConfig, face_loss

    fs = load_faceset(facesets[1], 64)
    target = to_tensor(fs.images[:4], torch.device("cpu")).float() / 255.0
    masks = to_tensor(fs.masks[:4], torch.device("cpu")).float() / 255.0
    face = masks[:, 0:1] > 0.5
    features = masks[:, 1:3].amax(dim=1, keepdim=True) > 0.5
    cheeks = torch.roll(features, shifts=12, dims=2) & face & ~torch.roll(features, shifts=-3, dims=2) & ~features
    assert int(features.sum()) > 100 and int(cheeks.sum()) > 100
    step = torch.where(target < 0.5, 0.2, -0.2)

    def loss(region: torch.Tensor, cfg: LossConfig) -> float:
        pred = target + step * region
        return float(face_loss(pred, masks[:, 0:1], target, masks, cfg))

    weighted, plain = LossConfig(), replace(LossConfig(), eyes_mouth_weight=0.0)
    assert weighted.eyes_mouth_weight > 0
    ratio_weighted = loss(features, weighted) / loss(cheeks, weighted)
    ratio_plain = loss(features, plain) / loss(cheeks, plain)
    assert ratio_weighted > 1.5 * ratio_plain, (ratio_weighted, ratio_plain)  # 2.22 against 1.28
