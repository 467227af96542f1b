"""Trainings on the monitor page: a model training on the server is listed with its progress (and keeps
updating), a finished one is a swap model like any DFM (``GET /api/models`` ``training``, swapmodels.js).

A real `stageswap train` runs beside a real `stageswap serve`, and headless Chromium (Debian's) looks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.train_helpers import TINY_FLAGS, tiny_faceset

pytestmark = pytest.mark.browser


def _start(cmd: list[str], log: Path, models_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STAGESWAP_MODELS": str(models_dir), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_training_progress_and_finished_models_on_the_monitor_page(
    tmp_path: Path, clips: Path, models_dir: Path
) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed: run `make browser-setup`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from streamer.__main__ import main

    src = tiny_faceset(clips / "Obama_speaking.mp4", tmp_path / "src", models_dir, frames=6)
    dst = tiny_faceset(clips / "d3.mp4", tmp_path / "dst", models_dir, frames=6)
    data = tmp_path / "data"
    common = ["--src", str(src), "--dst", str(dst), *TINY_FLAGS, "--unverified", "--data-dir", str(data)]
    assert main(["train", "done", *common, "--iterations", "2"]) == 0
    py = sys.executable
    train_cmd = [py, "-m", "streamer", "train", "live", *common, "--minutes", "10"]
    trainer: subprocess.Popen[bytes] | None = None
    serve_cmd = [py, "-m", "streamer", "serve", "--port", "0", "--data-dir", str(data), "--no-watermark"]
    # A camera for the monitor page to open; its picture is not what is looked at, so it is processed at
    # 2 fps (the trainer beside it gets the CPU).
    camera = ["--input", f"cam={clips / 'd3.mp4'}", "--max-process-fps", "2"]
    server = _start([*serve_cmd, *camera], tmp_path / "s.log", models_dir)
    try:
        deadline = time.monotonic() + 90
        url = ""
        while not url:
            found = re.search(r"open (http://\S+/) in a browser", (tmp_path / "s.log").read_text(errors="replace"))
            if found:
                url = found.group(1)
            elif server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"stageswap serve did not start:\n{(tmp_path / 's.log').read_text(errors='replace')}")
            time.sleep(0.1)
        # The trainer starts once the server is up: it trains flat out on a core until it is stopped.
        trainer = _start(train_cmd, tmp_path / "t.log", models_dir)
        deadline = time.monotonic() + 90

        def listed() -> dict[str, Any]:
            with urllib.request.urlopen(f"{url}api/models", timeout=10) as r:
                return dict(json.loads(r.read()))

        while True:
            body = listed()
            training = {t["name"]: t for t in body["training"]}
            if training.get("live", {}).get("state") == "running" and training["live"]["iteration"] >= 1:
                break
            if trainer.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"training did not start:\n{(tmp_path / 't.log').read_text(errors='replace')}")
            time.sleep(0.3)
        assert training["done"]["state"] == "finished" and training["done"]["exported"] is True
        assert training["live"]["resolution"] == 64 and training["live"]["device"] == "cpu"
        assert "done" in {m["name"] for m in body["models"]} and "live" not in {m["name"] for m in body["models"]}

        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}monitor.html?stream=cam")
            page.wait_for_selector("#swap-model option[value='training:live']", state="attached", timeout=30_000)
            options = page.eval_on_selector_all(
                "#swap-model option", "els => els.map(e => [e.value, e.textContent, e.disabled])"
            )
            by_value = {v: (text, disabled) for v, text, disabled in options}
            text, disabled = by_value["training:live"]
            assert disabled and re.search(r"live \(training 64px · iteration \d+ · [\d.]+ it/s", text), text
            assert by_value["done"][0].startswith("done (DFM 64px") and not by_value["done"][1]
            assert "training:done" not in by_value  # finished and registered: listed as the model itself
            first = int(re.search(r"iteration (\d+)", text).group(1))  # type: ignore[union-attr]
            # The list refreshes itself while a model trains.
            page.wait_for_function(
                f"""() => {{
                    const o = document.querySelector("#swap-model option[value='training:live']");
                    const m = o && o.textContent.match(/iteration (\\d+)/);
                    return m && Number(m[1]) > {first};
                }}""",
                timeout=60_000,
            )
            assert not errors, errors
            browser.close()
    finally:
        if trainer is not None:
            _stop(trainer)
        _stop(server)
    assert "stopped at iteration" in (tmp_path / "t.log").read_text()
