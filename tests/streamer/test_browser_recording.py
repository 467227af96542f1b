"""The monitor page's recorder alarm, in headless Chromium: a recorder that falls behind, then a full disk.

The server is the real app (in this process, on a thread, so the disk can be made slow and then full with
``tests.recording_faults``), with a passthrough stream fed by a shared clip (``--input``). The recording
runs for real: its queue fills and it drops frames (the alarm), it catches up (the alarm clears), then a
write fails (the recording stops with the error). The page must show each, prominently, over the video.
Screenshots go to ``test-artifacts/browser/``. The recording happy path (start, indicator, stop, files)
with a token is in ``tests/test_browser.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from streamer.api import recording as api_recording
from streamer.api import routes as api
from streamer.api.server import create_app, make_runner
from streamer.config import InputSpec, ServeConfig
from streamer.live import webrtc
from tests.recording_faults import WriterFaults
from tests.streamer.test_browser import ARTIFACTS, chromium  # noqa: F401  (the chromium fixture)

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

STREAM = "cam"


class ThreadedServer:
    """The app on 127.0.0.1 and a free port, served by its own event loop on a thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-server", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"the server did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = make_runner(self.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> WriterFaults:
    injected = WriterFaults()
    injected.install(monkeypatch)
    return injected


@pytest.fixture
def server(chromium: str, clips: Path, tmp_path: Path, faults: WriterFaults) -> Iterator[ThreadedServer]:  # noqa: F811
    # Processing capped at 4 fps: the recorder's encoder must be able to catch up once the disk is fast
    # again; at the clip's 30 fps a busy machine (load 20 on 2 cores) never let it, and at 8 fps neither did the
    # suite's four workers (load 11), so the alarm stayed.
    config = ServeConfig(
        data_dir=tmp_path,
        processor="passthrough",
        inputs=(InputSpec.parse(f"{STREAM}={clips / 'd3.mp4'}"),),
        max_process_fps=4.0,
    )
    # A queue of 0.2 s (6 frames at 30 fps): a stalled disk fills it within a second.
    groups = (webrtc.register, api.register, api_recording.configured(min_free_bytes=0, queue_seconds=0.2))
    with ThreadedServer(create_app(config, route_groups=groups)) as srv:
        yield srv


def test_the_recorder_alarm_and_a_full_disk_are_shown_over_the_video(
    chromium: str,  # noqa: F811
    server: ThreadedServer,
    faults: WriterFaults,
    tmp_path: Path,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}monitor.html?stream={STREAM}")
            page.wait_for_function("document.querySelector('#processed').videoWidth > 0")

            # The disk stalls 0.5 s on every write (2 writes a second for 4 frames): the recorder falls behind.
            faults.stall_s = 0.5
            # H.264 (the page's default, at source times): its encoder outruns 4 frames a second with room to spare
            # on a busy machine, so the queue drains once the disk is fast again; FFV1 at 512x512 did not always.
            page.select_option("#rec-format", "h264/mp4")
            assert not page.is_checked("#rec-cfr")
            page.click("#rec-start")
            page.wait_for_selector("#rec-alarm", state="visible")
            banner = page.text_content("#rec-alarm-text") or ""
            assert f"Recorder for {STREAM} is behind: its queue is full" in banner and "dropped" in banner, banner
            assert "BEHIND" in (page.text_content("#rec-badge-text") or "")
            assert "behind" in (page.get_attribute("#rec-badge", "class") or "")
            assert "failed" not in (page.get_attribute("#rec-alarm", "class") or "")
            page.wait_for_timeout(600)  # the blinking dot shown, and a few more frames dropped
            page.screenshot(path=str(ARTIFACTS / "monitor-recorder-behind.png"))

            # The disk is fast again: the queue drains, the alarm clears, the recording goes on.
            faults.stall_s = 0.0
            page.wait_for_selector("#rec-alarm", state="hidden")
            assert page.is_visible("#rec-badge") and "BEHIND" not in (page.text_content("#rec-badge-text") or "")
            dropped = server.api(f"/api/streams/{STREAM}")["recording"]["frames_dropped"]
            assert dropped > 0 and f"{dropped} dropped" in (page.text_content("#rec-state") or "")

            # The disk is full: the recording stops itself, with the reason, and the stream goes on.
            faults.disk_full = True
            page.wait_for_function("document.querySelector('#rec-alarm').classList.contains('failed')")
            banner = page.text_content("#rec-alarm-text") or ""
            assert banner.startswith("Recording stopped: cam-") and "the disk is full" in banner, banner
            assert str(tmp_path) not in banner, "the page names the file, not the server's folders"
            assert "Free space" in banner
            assert page.text_content("#rec-badge-text") == "REC STOPPED"
            assert page.is_visible("#rec-start"), "the operator can record again"
            assert (page.text_content("#rec-state") or "").startswith("failed")
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / "monitor-recorder-disk-full.png"))
            stream = server.api(f"/api/streams/{STREAM}")
            assert stream["recording"]["state"] == "failed" and stream["stats"]["output_fps"] > 1

            page.click("#rec-dismiss")
            assert page.is_hidden("#rec-alarm") and page.is_hidden("#rec-badge")
            assert not errors, errors
        finally:
            browser.close()
