"""The neural renderer as a product swap model (issue 19): ``stageswap train NAME --arch dnr`` trains it on the src
person's faceset alone and registers it as model kind ``dnr`` with the src person's consent; ``models add`` checks
a renderer's export and refuses a bad one with a one-line error; a registered renderer swaps a tracked d3 frame
through the FaceProcessor (the face changes, the rest of the frame does not). Tiny facesets of the shared clips, a
few iterations: seconds on a CPU."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engines.swap.user_models import UserModelStore
from engines.train.faceset import load_faceset
from engines.train.neural_render import DnrTrainConfig, DnrTrainer, export_onnx
from streamer.__main__ import main
from tests.train_helpers import TINY_DNR, losses_after_kill_9, one_line_error, tiny_faceset

TINY = TINY_DNR
REPO = Path(__file__).resolve().parents[3]


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
    # A likeness of its own: refused without consent, exactly like a DFM, and named for what it is.
    err = one_line_error(capsys, ["models", "add", str(export), "--data-dir", str(data)])
    assert "neural-renderer (dnr) model 'obama-dnr' has a person's identity trained in and no consent record" in err
    assert main(["models", "add", str(export), "--data-dir", str(data), "--unverified", "--name", "obama"]) == 0
    store = UserModelStore(data)
    model = store.get("obama")
    assert (model.kind, model.resolution, model.is_likeness) == ("dnr", 64, True)
    assert model.options["coverage"] == pytest.approx(1.8)  # the faceset's framing
    assert [t.name for t in model.inputs] == ["uv", "covered"] and [t.name for t in model.outputs] == ["face"]
    summary = model_consent_summary(model)
    assert summary is not None and summary["status"] == "unverified"
    # What a swap with it puts on the actor is the model's likeness (consent, provenance), not an identity's.
    # (records call every trained-in likeness "dfm", as they always have; the consent messages say "dnr")
    likeness = swapped_in({"swap": True, "swap_model": "obama", "identity": "x"}, store)
    assert likeness == Likeness("dfm", "obama") and likeness is not None and likeness.subject == "dnr"

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


def test_the_trained_persons_shape_is_stored_and_the_swap_morphs_the_actor_toward_it(
    src: Path, export: Path, tmp_path: Path, clips: Path, faces: Path, models_dir: Path
) -> None:
    """The src person's face shape, measured on its faceset (``engines.train.shape``), is Obama's more than another
    person's; stored in the renderer's file it reads back, a file without one reads None; a renderer with it
    morphs d10's actress toward it before drawing (her face moves: the picture differs from the same renderer
    without the shape), and ``morph=0`` draws exactly what the renderer without it draws."""
    from engines.face.landmarks import FaceMesh
    from engines.processor import FaceProcessor
    from engines.runtime import load_model, models
    from engines.settings import ProcessSettings
    from engines.swap.neural import read_shape, write_shape
    from engines.train.shape import faceset_shape
    from tests.face_helpers import clip_frames, enrolled_store

    shape = faceset_shape([src], FaceMesh(load_model(models.resolve("facemesh", str(models_dir)))))
    ids = enrolled_store(tmp_path / "ids", faces, models_dir, ("obama.jpg", "s1.jpg"))
    to_obama, to_s1 = (np.abs(shape - ids.load(n).canonical)[:, :2].mean() for n in ("obama", "s1"))
    assert to_obama < 0.8 * to_s1, (to_obama, to_s1)

    shaped = tmp_path / "shaped.onnx"
    write_shape(export, shaped, shape)
    stored = read_shape(shaped)
    assert read_shape(export) is None and stored is not None
    np.testing.assert_allclose(stored, shape, atol=1e-5)

    data = tmp_path / "data"
    for name, path in (("plain", export), ("shaped", shaped)):
        assert main(["models", "add", str(path), "--data-dir", str(data), "--unverified", "--name", name]) == 0
    store = UserModelStore(data)
    frames = clip_frames(clips / "d10.mp4", 3)

    def run(model: str, morph: float) -> np.ndarray:
        processor = FaceProcessor.from_models(models_dir, user_models=store)
        for image, t in frames:
            settings = ProcessSettings(swap_model=model, relight=False, morph=morph, watermark=False)
            result = processor.process(image, t, settings)
            assert result.failed_stage is None
        assert (processor.swap.model is not None) and (processor.swap.model.shape is not None) == (model == "shaped")
        return result.image

    plain, morphed, unmorphed = run("plain", 1.0), run("shaped", 1.0), run("shaped", 0.0)
    np.testing.assert_array_equal(unmorphed, plain)
    moved = np.abs(morphed.astype(int) - plain.astype(int)).max(axis=2) > 8
    assert moved.mean() > 0.002  # the face's outline, features and the warped actor around them
    image = frames[-1][0]
    unchanged = np.abs(morphed.astype(int) - image.astype(int)).max(axis=2) <= 8
    assert unchanged[:, :40].all() and unchanged[:, -40:].all()  # the frame's edges: no face there


def test_the_contact_sheet_draws_the_stored_shape_through_the_processor(
    src: Path, export: Path, tmp_path: Path, clips: Path, models_dir: Path
) -> None:
    """``benchmarks/dnr_sheet.py`` draws each renderer through the FaceProcessor, so the same weights with their
    person's shape stored draw d10's actress with another jaw line than without it (the product's morph; a sheet
    with geometry of its own drew both alike), and its rows are input | each model, cropped around the face."""
    from benchmarks.dnr_sheet import TILE_PX, draw, sheet
    from engines.face.landmarks import FaceMesh
    from engines.face.topology import FACE_OVAL
    from engines.runtime import load_model, models
    from engines.swap.neural import write_shape
    from engines.train.shape import faceset_shape
    from tests.face_helpers import clip_frames

    shaped = tmp_path / "shaped.onnx"
    write_shape(export, shaped, faceset_shape([src], FaceMesh(load_model(models.resolve("facemesh", str(models_dir))))))
    data = tmp_path / "data"
    for name, path in (("plain", export), ("shaped", shaped)):
        assert main(["models", "add", str(path), "--data-dir", str(data), "--unverified", "--name", name]) == 0
    names = ["plain", "shaped"]
    drawn, times = draw(clip_frames(clips / "d10.mp4", 3), UserModelStore(data), names, {2}, str(models_dir))
    assert [d.index for d in drawn] == [2] and all(len(ms) == 3 for ms in times)
    d = drawn[0]
    # The jaw: the outline's lower half (ear to ear under the chin), a band a twentieth of the face wide.
    jaw = d.landmarks[list(FACE_OVAL[9:28]), :2]
    band = np.zeros(d.image.shape[:2], np.uint8)
    width = max(2, round(float(np.ptp(jaw[:, 0])) / 20))
    cv2.polylines(band, [np.round(jaw).astype(np.int32)], False, 1, width)
    differs = np.abs(d.outputs[1].astype(int) - d.outputs[0].astype(int)).max(axis=2) > 8
    assert differs[band > 0].mean() > 0.4, differs[band > 0].mean()
    x0, y0, x1, y1 = d.box
    assert x0 <= jaw[:, 0].min() and jaw[:, 0].max() <= x1 and jaw[:, 1].max() <= y1  # the jaw is on the sheet
    picture = sheet(drawn, names)
    assert picture.shape[0] == TILE_PX + 4 and picture.shape[1] > 3 * TILE_PX * (x1 - x0) / (y1 - y0)


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


class _OrtPlan:
    """TensorRT's session stood in for (TensorRT cannot be installed here): the 'plan' names the ONNX file, which
    ONNX Runtime runs."""

    runtime = "tensorrt"

    def __init__(self, plan_path: Path, profiles: object) -> None:
        import onnxruntime as ort

        self._s = ort.InferenceSession(plan_path.read_text(), providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip([o.name for o in self._s.get_outputs()], self._s.run(None, feeds), strict=True))

    def close(self) -> None:
        pass


def test_build_engines_and_the_gpu_runtimes_take_a_registered_renderer(
    export: Path, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A registered dnr model is a user model like a DFM: build_engines.py validates it (its kind's checks, the
    torch fallback against ONNX Runtime) and compiles it with one fixed profile; on a GPU its TensorRT plan runs
    it, and without one the torch fallback does (the GPU stood in for as tests/engines/runtime does: torch
    'sees' an H200, the converted model runs on the CPU), drawing what ONNX Runtime draws on the CPU."""
    import argparse

    import build_engines
    from engines.runtime import select, tensorrt
    from engines.runtime.plans import Manifest, PlanKey
    from engines.runtime.torch_cuda import onnx_session
    from engines.swap.learned import NeuralRenderSwapper, load_swapper, user_engine

    data = tmp_path / "data"
    store = UserModelStore(data)
    model = store.add(export, name="obama", unverified=True)
    assert build_engines.main(["--dry-run", "--data-dir", str(data), "--no-progress", "--only", "user-obama"]) == 0
    text = capsys.readouterr().out
    assert "ok   user-obama" in text and "dnr signature ok at 64 px" in text, text
    assert "torch fallback = ONNX Runtime" in text and "GPU fallback: none" not in text, text

    def fake_build(onnx_path: Path, plan_path: Path, profiles: dict[str, object], options: object) -> object:
        plan_path.write_text(str(onnx_path))
        return dict(profiles)

    monkeypatch.setattr(tensorrt, "build_plan", fake_build)
    monkeypatch.setattr(tensorrt, "TrtSession", _OrtPlan)
    engine = user_engine(store, model)
    report = build_engines.EngineReport(engine.name)
    out = tmp_path / "engines"
    out.mkdir()
    ns = argparse.Namespace(fp16=True, workspace_gb=1.0, force=False)
    build_engines.compile_engine(engine, engine.path, None, out, "NVIDIA H200", "10.8.0", ns, report)
    assert report.plan.startswith("built: user-obama.nvidia-h200.trt10.8.0."), report
    entry = Manifest.load(out).entries[0]
    assert entry.profiles["uv"].min == (1, 64, 64, 2) == entry.profiles["uv"].max
    assert entry.profiles["covered"].min == (1, 64, 64, 1)
    assert Manifest.load(out).lookup("user-obama", PlanKey("NVIDIA H200", "10.8.0", model.sha256)).ok

    monkeypatch.setattr(select, "cuda_available", lambda: True)
    monkeypatch.setattr(select, "gpu_name", lambda: "NVIDIA H200")
    monkeypatch.setattr(tensorrt, "tensorrt_version", lambda: "10.8.0")
    planned = load_swapper(store, "obama", "cuda", engines_dir=out)
    assert isinstance(planned, NeuralRenderSwapper) and planned.runtime == "tensorrt"
    monkeypatch.setattr(tensorrt, "tensorrt_version", lambda: None)
    monkeypatch.setattr(select, "_fallback_session", lambda path: onnx_session(path, "cpu"))
    fallback = load_swapper(store, "obama", "cuda", engines_dir=out)
    assert isinstance(fallback, NeuralRenderSwapper) and fallback.runtime == "torch-cpu"  # torch-cuda on a GPU
    cpu = load_swapper(store, "obama", "cpu")
    assert cpu.runtime == "onnxruntime-cpu"
    for landmarks in load_faceset(src, 64).landmarks[:3]:  # real meshes of the src person's frames
        (face, covered), (ref, ref_covered) = fallback.render_crop(landmarks), cpu.render_crop(landmarks)
        assert covered.mean() > 0.3 and np.array_equal(covered, ref_covered)
        assert np.abs(face - ref).max() < 1e-4


def test_train_arch_dnr_registers_a_renderer_and_refuses_bad_input(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os
    import shutil

    data = str(tmp_path / "data")
    base = ["train", "m", "--arch", "dnr", "--resolution", "64", "--data-dir", data, "--threads", "1"]
    err = one_line_error(capsys, [*base, "--src", str(src), "--iterations", "1"])
    assert "neural-renderer (dnr) model 'm' has a person's identity trained in and no consent record" in err
    assert "does not take --ae-dims" in one_line_error(
        capsys, [*base, "--src", str(src), "--ae-dims", "64", "--iterations", "1", "--unverified"]
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
    assert "nothing to resume" in one_line_error(capsys, [*base, "--resume", "--iterations", "1"])
    # Disk full while writing the checkpoint: said as such, nothing half-written left behind, nothing registered.
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    err = one_line_error(capsys, [*base, "--src", str(src), "--iterations", "1"])  # the consent kept above
    assert "checkpoint.pt: the disk is full" in err
    monkeypatch.setattr(os, "fsync", real_fsync)
    folder = tmp_path / "data" / "training" / "m"
    assert not (folder / "checkpoint.pt").exists() and not list(folder.glob(".*.tmp"))
    assert UserModelStore(data).names() == []

    assert main([*base, "--src", str(src), "--iterations", "2", "--unverified"]) == 0
    out = capsys.readouterr().out
    assert "registered it as swap model 'm' after 2 iterations" in out
    model = UserModelStore(data).get("m")
    assert (model.kind, model.resolution) == ("dnr", 64)
    from engines.swap.neural import read_shape

    assert read_shape(UserModelStore(data).path(model)) is not None  # the src person's shape, for the morph
    # Its checkpoint: exported again, resumed (not at another resolution), not restarted by accident.
    assert main(["train", "m", "--data-dir", data, "--export-only"]) == 0
    assert "registered it as swap model 'm' after 2 iterations" in capsys.readouterr().out
    assert "trained with --resolution 64, not 128" in one_line_error(
        capsys, ["train", "m", "--data-dir", data, "--resume", "--resolution", "128", "--iterations", "3"]
    )
    assert "holds a training of 'm'" in one_line_error(
        capsys, [*base, "--src", str(src), "--iterations", "3", "--replace"]
    )
    assert "holds a neural renderer (dnr) training of 'm', not --arch df" in one_line_error(
        capsys, ["train", "m", "--data-dir", data, "--arch", "df", "--resume", "--iterations", "3"]
    )
    assert main(["train", "m", "--data-dir", data, "--resume", "--iterations", "3", "--threads", "1"]) == 0
    assert "resuming 'm': neural renderer (dnr) 64 px" in (out := capsys.readouterr().out)
    assert "from iteration 2" in out and "registered it as swap model 'm' after 3 iterations" in out


def test_a_df_training_is_not_resumed_as_a_renderer(
    facesets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.train_helpers import TINY_FLAGS

    data = str(tmp_path / "data")
    src, dst = (str(p) for p in facesets)
    df = ["train", "df", "--data-dir", data, *TINY_FLAGS, "--src", src, "--dst", dst, "--unverified"]
    assert main([*df, "--minutes", "0.001"]) == 0  # one iteration, then stopped by the clock: registered
    capsys.readouterr()
    assert "holds a DF training of 'df', not --arch dnr" in one_line_error(
        capsys, ["train", "df", "--data-dir", data, "--arch", "dnr", "--resume", "--iterations", "5"]
    )


_CHILD = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from engines.train.faceset import load_faceset
    from engines.train.loop import TrainingRun
    from engines.train.neural_render import DnrTrainConfig, DnrTrainer
    from tests.train_helpers import TINY_DNR
    torch.set_num_threads(1)
    src, folder = sys.argv[1:3]
    trainer = DnrTrainer(DnrTrainConfig(net=TINY_DNR, batch=4), load_faceset(src, 64))
    run = TrainingRun(trainer, Path(folder))
    for _ in range(3):
        trainer.step()
    run.save_checkpoint()
    print("saved", flush=True)
    while True:
        print(repr(trainer.step()), flush=True)
    """
)


def test_renderer_resume_after_kill_9_continues_bit_for_bit(src: Path, tmp_path: Path, one_thread: object) -> None:
    """A renderer's training killed with SIGKILL after a checkpoint: a new process resumes from it and computes the
    very losses (to the last bit) the killed one computed after the checkpoint: the sampler's generator, Adam's
    state, the texture, the U-Net and the iteration all come back."""
    from engines.train.loop import TrainingRun, read_checkpoint

    after_checkpoint = losses_after_kill_9(_CHILD, str(src), str(tmp_path), cwd=REPO)
    state = read_checkpoint(tmp_path, torch.device("cpu"))
    assert state is not None and (state["iteration"], state["kind"]) == (3, "dnr")
    resumed = DnrTrainer(DnrTrainConfig(net=TINY, batch=4), load_faceset(src, 64))
    run = TrainingRun(resumed, tmp_path / "resumed")
    run.restore(state)
    torch.manual_seed(12345)  # a different global random state: the trainer must not depend on it
    assert resumed.iteration == 3
    assert [resumed.step() for _ in range(3)] == after_checkpoint
    fresh = DnrTrainer(DnrTrainConfig(net=TINY, batch=4), load_faceset(src, 64))
    assert fresh.step() != after_checkpoint[0]  # what it continues is the checkpoint, not a new start


def test_sigterm_checkpoints_registers_and_the_monitor_sees_it(
    src: Path, facesets: tuple[Path, Path], tmp_path: Path
) -> None:
    """`train --arch dnr` in a subprocess with footage to preview on (--dst): while it trains, list_trainings (the
    monitor page's list) shows it running; SIGTERM ends it with a checkpoint and registers what it learned; the
    preview PNG shows the src faces | their rendering and the actor's faces | the person rendered there."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import cv2

    from engines.train.loop import read_checkpoint
    from engines.train.workspace import list_trainings

    data = tmp_path / "data"
    folder = data / "training" / "m"
    cmd = [
        sys.executable, "-m", "streamer", "train", "m", "--arch", "dnr", "--resolution", "64", "--src", str(src),
        "--dst", str(facesets[1]), "--minutes", "10", "--threads", "1", "--unverified", "--data-dir", str(data),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("training 'm': neural renderer (dnr) 64 px"), first
        assert "preview on 10 faces of --dst" in first
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listed = {t["name"]: t for t in list_trainings(data)}
            if listed.get("m", {}).get("iteration", 0) >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("training never reported progress")
        running = listed["m"]
        assert (running["state"], running["arch"], running["kind"], running["resolution"]) == (
            "running",
            "dnr",
            "dnr",
            64,
        )
        assert running["loss"]["src"] > 0 and running["loss"]["dst"] is None and running["exported"] is False
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    state = read_checkpoint(folder, torch.device("cpu"))
    assert state is not None and state["kind"] == "dnr"
    stopped_at = state["iteration"]
    assert f"stopped at iteration {stopped_at}: checkpoint in" in out
    assert f"registered it as swap model 'm' after {stopped_at} iterations" in out
    assert UserModelStore(data).get("m").kind == "dnr"
    done = list_trainings(data)[0]
    assert (done["name"], done["state"], done["iteration"], done["exported"]) == ("m", "stopped", stopped_at, True)
    assert json.loads((folder / "progress.json").read_text())["state"] == "stopped"
    preview = cv2.imread(str(folder / "preview.png"))
    assert preview is not None
    # 4 src rows and 4 actor rows of two 64 px tiles, scaled up by 4 to 512 px wide, under a 28 px caption.
    assert preview.shape == (28 + 8 * 64 * 4, 2 * 64 * 4, 3), preview.shape
    tiles = preview[28:].reshape(8, 256, 2, 256, 3)
    centre = (slice(96, 160), slice(96, 160))
    for row in range(4):  # the src person's rendering from their own mesh: drawn on the face, dark around it
        rendered = tiles[row, :, 1].astype(float)
        assert rendered[centre].mean() > 60 and rendered[:16, :16].mean() < 40
    for row in range(4, 8):  # the person on the actor's mesh, in the actor's colours, over the actor's crop
        actor, swapped = tiles[row, :, 0].astype(float), tiles[row, :, 1].astype(float)
        assert np.abs(swapped[centre].mean(axis=(0, 1)) - actor[centre].mean(axis=(0, 1))).max() < 25
        assert np.abs(swapped[centre] - actor[centre]).mean() > 2
        assert np.array_equal(swapped[:16, :16], actor[:16, :16])  # off the face: the actor's own pixels
    # The preview's --dst goes with the checkpoint: a resume previews on it again without being told.
    assert state["dst"]["paths"] == [str(facesets[1])]


def test_a_checkpoints_config_reads_back_across_versions() -> None:
    """A renderer's checkpoint stores its DnrTrainConfig as a dict: it reads back as the same config, and one
    written by another version (a field added since, one removed) still reads, with this version's defaults."""
    from dataclasses import asdict

    from engines.train.neural_render import train_config_from_json

    cfg = DnrTrainConfig(net=TINY, batch=3, lr=5e-4, seed=2)
    assert train_config_from_json(asdict(cfg)) == cfg
    older = asdict(cfg)
    del older["texture_lr"], older["loss"]["mse_weight"]
    older["gone"], older["net"]["gone"] = 1, 2
    read = train_config_from_json(older)
    assert (read.net, read.batch, read.seed) == (TINY, 3, 2)
    assert read.texture_lr == DnrTrainConfig().texture_lr and read.loss.mse_weight == DnrTrainConfig().loss.mse_weight


_TORCHRUN_CHILD = textwrap.dedent(
    """
    import hashlib, json, os, shutil, sys, torch, torch.distributed as dist
    from pathlib import Path
    from engines.train.faceset import load_faceset
    from engines.train.loop import Dist, RunTiming, StopRule, TrainingRun
    from engines.train.neural_render import DnrTrainConfig, DnrTrainer
    from engines.train.trainer import init_distributed, leave_distributed
    from tests.train_helpers import TINY_DNR
    src, dst, straight, copy = sys.argv[1:5]
    where = Dist.from_env()
    init_distributed(where, torch.device("cpu"))
    trainer = DnrTrainer(DnrTrainConfig(net=TINY_DNR, batch=2), load_faceset(src, 64), where=where)
    trainer.preview_on(load_faceset(dst, 64))
    run = TrainingRun(trainer, Path(straight), RunTiming(3600.0, 3600.0, 3600.0))
    run.run(StopRule(iterations=2))
    if where.leader:  # the checkpoint at iteration 2, as a training folder of its own for `train --resume`
        Path(copy).mkdir(parents=True)
        shutil.copy(Path(straight) / "checkpoint.pt", Path(copy) / "checkpoint.pt")
    dist.barrier()
    run.run(StopRule(iterations=4))  # the uninterrupted run goes on
    flat = torch.cat([p.detach().flatten() for p in trainer.net.parameters()]).numpy().tobytes()
    mine = {"rank": where.rank, "pid": os.getpid(), "params": hashlib.sha256(flat).hexdigest()}
    every = [None] * where.world
    dist.all_gather_object(every, mine)
    if where.leader:
        print(json.dumps(every), flush=True)
    leave_distributed()
    """
)


def test_torchrun_trains_a_renderer_on_two_processes_and_resumes_bit_for_bit(
    src: Path, facesets: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two DistributedDataParallel processes (gloo) through torchrun train a renderer: each samples its own faces
    (its own generator, both in the checkpoint), the U-Net's and the neural texture's gradients are averaged so
    both ranks hold the very same weights after every step, and rank 0 alone writes progress. Then `train
    --resume` under torchrun continues a copy of the checkpoint at iteration 2 to iteration 4: its weights, Adam's
    state, generators and smoothed loss equal the uninterrupted run's to the last bit, and rank 0 alone exports and
    registers it."""
    import json
    import os
    import subprocess
    import sys

    from engines.train.loop import read_checkpoint
    from streamer.governance.audit import MODEL_REGISTERED, AuditLog

    script = tmp_path / "child.py"
    script.write_text(_TORCHRUN_CHILD)
    data = tmp_path / "data"
    straight, resumed = tmp_path / "straight", data / "training" / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*torchrun, str(script), str(src), str(facesets[1]), str(straight), str(resumed)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["params"] == ranks[1]["params"]  # gradients all-reduced: one model on both ranks
    progress = json.loads((straight / "progress.json").read_text())
    assert (progress["processes"], progress["iteration"], progress["pid"]) == (2, 4, ranks[0]["pid"])
    assert (straight / "preview.png").is_file()
    at_2 = read_checkpoint(resumed, torch.device("cpu"))
    assert at_2 is not None and (at_2["world"], at_2["iteration"], at_2["kind"]) == (2, 2, "dnr")
    g0, g1 = at_2["generators"]
    assert not torch.equal(g0, g1)  # each rank draws its own faces

    cli = [*torchrun, "-m", "streamer", "train", "ddp", "--resume", "--iterations", "4", "--device", "cpu"]
    done = subprocess.run(
        [*cli, "--unverified", "--data-dir", str(data)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("resuming 'ddp': neural renderer (dnr) 64 px") == 1  # rank 0 alone prints
    assert "batch 2 x 2 processes" in done.stdout and "from iteration 2" in done.stdout
    assert done.stdout.count("registered it as swap model 'ddp' after 4 iterations") == 1
    registered = [e for e in AuditLog.in_data_dir(data).entries() if e.event == MODEL_REGISTERED]
    assert [e.data["model"] for e in registered] == ["ddp"]  # rank 0 alone registers
    assert UserModelStore(data).get("ddp").kind == "dnr" and (resumed / "ddp.onnx").is_file()
    want = read_checkpoint(straight, torch.device("cpu"))
    got = read_checkpoint(resumed, torch.device("cpu"))
    assert want is not None and got is not None
    assert (got["world"], got["iteration"]) == (want["world"], want["iteration"]) == (2, 4)
    assert got["ema"][0] == want["ema"][0]  # the same losses at iterations 3 and 4 (one person: no dst)
    assert all(torch.equal(got["model"][k], v) for k, v in want["model"].items())
    assert all(torch.equal(a, b) for a, b in zip(got["generators"], want["generators"], strict=True))
    moments = [(s["exp_avg"], s["exp_avg_sq"]) for s in want["optimizer"]["state"].values()]
    assert all(
        torch.equal(a, c) and torch.equal(b, d)
        for (a, b), (c, d) in zip(
            moments, [(s["exp_avg"], s["exp_avg_sq"]) for s in got["optimizer"]["state"].values()], strict=True
        )
    )
