"""Tiny facesets from the shared clips, and the tiny model shape the training tests use (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.train.faceset import FacesetConfig, SourceFrame, extract
from engines.train.nets import NetConfig
from engines.train.neural_render import DnrConfig
from tests.face_helpers import clip_frames

TINY_NET = NetConfig("df", 64, 8, 32, 32, 8)
"""The smallest shape a DFM may have (64 px; DeepFaceLab trains 64..640), ~0.2 M parameters."""
TINY_FLAGS = [
    "--resolution", "64", "--encoder-dims", "8", "--ae-dims", "32", "--inter-dims", "32", "--decoder-dims", "8",
    "--batch", "4", "--threads", "1",
]  # fmt: skip
"""``stageswap train`` options for TINY_NET."""
TINY_DNR = DnrConfig(resolution=64, texture_px=32, channels=4, levels=2, dims=8)
"""A neural renderer of ~30 k parameters (``stageswap train --arch dnr`` builds the default size)."""


def tiny_faceset(clip: Path, out: Path, models_dir: Path, frames: int = 10, resolution: int = 64) -> Path:
    """A faceset of the first ``frames`` frames of a shared clip, tracked with the real tracker."""
    from streamer.commands.faceset import build_tracker

    tracker = build_tracker(str(models_dir))
    source = [SourceFrame(img, clip.name, i, t) for i, (img, t) in enumerate(clip_frames(clip, frames))]
    report = extract(source, lambda f: tracker.update(f.image, f.time_s), out, FacesetConfig(resolution=resolution))
    assert report.kept >= frames - 2, report.summary()
    return out


def losses_after_kill_9(child: str, *args: str, cwd: Path, steps: int = 3) -> list[object]:
    """Run the Python source ``child`` (``sys.argv[1:]`` = ``args``) in a new process: it trains, writes a checkpoint,
    prints "saved", then prints each later step's losses (their repr) until it is killed with SIGKILL after
    ``steps`` of them. Those losses, which a resume from the checkpoint must compute again to the last bit."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", child, *args], cwd=cwd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "saved"
        return [eval(proc.stdout.readline()) for _ in range(steps)]  # noqa: S307 (our own repr)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI with ``argv``: it must exit 2 with a single ``stageswap: error: ...`` line; that line."""
    from streamer.__main__ import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stageswap: error: ") and "\n" not in err, err
    return err
