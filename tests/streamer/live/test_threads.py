"""streamer.live.threads: a server's OpenCV calls run on their calling thread, unless the operator says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streamer.live.threads import OPENCV_THREADS_ENV

CODE = "import cv2; from streamer.live.threads import single_threaded_opencv as f; print(f(), cv2.getNumThreads())"


def _run(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_opencv_runs_on_the_calling_thread_in_a_fresh_process() -> None:
    env = {k: v for k, v in os.environ.items() if k != OPENCV_THREADS_ENV}
    assert _run(env) == ["True", "1"]


def test_the_environment_s_thread_count_stands() -> None:
    env = {k: v for k, v in os.environ.items() if k != OPENCV_THREADS_ENV}
    env[OPENCV_THREADS_ENV] = "3"
    assert _run(env) == ["False", "3"]


def test_serve_turns_the_pool_off_before_its_threads_start() -> None:
    """``stageswap serve`` calls it at start, beside the malloc arenas' cap (the order the two need)."""
    from streamer.commands import serve

    source = Path(serve.__file__).read_text()
    start = source.index("def run(")
    body = source[start : source.index("config = build_config(args)", start)]
    assert "single_threaded_opencv()" in body
