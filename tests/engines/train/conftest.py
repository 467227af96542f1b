"""Fixtures the training tests share: tiny facesets of the shared clips and one torch thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.train_helpers import tiny_faceset


@pytest.fixture(scope="module")
def facesets(tmp_path_factory: pytest.TempPathFactory, clips: Path, models_dir: Path) -> tuple[Path, Path]:
    """(src, dst): tiny facesets of Obama_speaking.mp4 and d3.mp4, made once per test module."""
    root = tmp_path_factory.mktemp("facesets")
    src = tiny_faceset(clips / "Obama_speaking.mp4", root / "src", models_dir)
    dst = tiny_faceset(clips / "d3.mp4", root / "dst", models_dir)
    return src, dst


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Training tests compare losses exactly: one thread, as in the subprocesses they compare with."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
