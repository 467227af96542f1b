"""The stage in a browser (issue 27): the monitor page plays a stream through Janus with Janus's own JS client
(janus-gateway from npm, served at /sfu/janus.js), and the stage page lists two nodes, changes a setting on the
other node and shows it down when it dies. Headless Debian chromium driven by Playwright; screenshots in
``test-artifacts/browser/`` (``monitor-janus.png``, ``stage.png``, ``stage-node-down.png``)."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamer.config import InputSpec, PeerSpec, ServeConfig, SfuConfig
from tests.conftest import REPO
from tests.hostile_helpers import threaded_server
from tests.janus_helpers import janus_process
from tests.stage_helpers import node_process

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts" / "browser"
TOKEN = "stage-browser-token"
B_TOKEN = "stage-browser-node-b-token"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture
def chromium() -> Iterator[Any]:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed: run `make browser-setup`")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=path,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        try:
            yield browser
        finally:
            browser.close()


def _get(url: str, token: str = TOKEN) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _with_token(page: Any, url: str) -> None:
    page.goto(url)
    page.fill("#token", TOKEN)
    page.press("#token", "Tab")


def test_the_monitor_plays_the_stream_through_janus_with_janus_js(tmp_path: Path, clips: Path, chromium: Any) -> None:
    if not (REPO / "vendor" / "node_modules" / "janus-gateway" / "src" / "janus.js").is_file():
        pytest.skip("Janus's JS client is not installed: run `make janus-setup` (npm)")
    with janus_process(tmp_path / "janus") as janus:
        views = ("processed", "source")  # both views through Janus: the page needs nothing of our own fan-out
        sfu = SfuConfig(url=janus.url, admin_key=janus.admin_key, views=views, check_interval_s=0.5)
        config = ServeConfig(
            port=0,
            data_dir=tmp_path / "data",
            processor="passthrough",
            token=TOKEN,
            inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
            sfu=sfu,
        )
        with threaded_server(config) as server:
            deadline = time.monotonic() + 45
            while (_get(f"{server.url}/api/streams/cam").get("sfu") or {}).get("state") != "up":
                assert time.monotonic() < deadline, _get(f"{server.url}/api/streams/cam")
                time.sleep(0.2)
            page = chromium.new_page(viewport={"width": 1280, "height": 800})
            _with_token(page, f"{server.url}/monitor.html?stream=cam")
            page.wait_for_function(
                "() => { const v = document.querySelector('#processed');"
                " return v && v.videoWidth > 0 && v.currentTime > 1; }",
                timeout=30_000,
            )
            page.wait_for_function("document.querySelector('#conn').textContent.includes('via Janus')", timeout=30_000)
            # The monitor's own figures come from Janus's peer connection, as they do from ours over WHEP.
            page.wait_for_function(
                "() => [...document.querySelectorAll('#counters span')].some((s) => s.textContent === 'via'"
                " && s.nextElementSibling.textContent === 'Janus')",
                timeout=30_000,
            )
            deadline = time.monotonic() + 30
            while True:
                stream = _get(f"{server.url}/api/streams/cam")
                if [m["viewers"] for m in stream["sfu"]["mountpoints"].values()] == [1, 1]:
                    break
                assert time.monotonic() < deadline, stream["sfu"]
                time.sleep(0.3)
            # The page watches through Janus, not through our own fan-out (its only subscribers are the RTP outs).
            sessions = _get(f"{server.url}/api/sessions")
            assert not [s for s in sessions.get("sessions", []) if s.get("kind") == "whep"], sessions
            page.screenshot(path=str(ARTIFACTS / "monitor-janus.png"))
            page.close()


def test_the_stage_page_lists_two_nodes_changes_the_other_and_shows_it_down(
    tmp_path: Path, clips: Path, chromium: Any
) -> None:
    with node_process(tmp_path, "gpu2", B_TOKEN, "cam-b", clips / "d3.mp4") as node_b:
        config = ServeConfig(
            port=0,
            data_dir=tmp_path / "data-a",
            processor="passthrough",
            token=TOKEN,
            node_name="gpu1",
            inputs=(InputSpec.parse(f"cam-a={clips / 'd10.mp4'}"),),
            peers=(PeerSpec("gpu2", node_b.url, B_TOKEN),),
        )
        with threaded_server(config) as server:
            page = chromium.new_page(viewport={"width": 1400, "height": 700})
            _with_token(page, f"{server.url}/stage.html")
            page.wait_for_selector("tr[data-stream='gpu2/cam-b']", timeout=45_000)
            page.wait_for_selector("tr[data-stream='gpu1/cam-a']", timeout=20_000)
            page.wait_for_function("document.querySelector('#summary').textContent.startsWith('2 of 2 nodes up')")
            assert B_TOKEN not in page.content()
            # Untick swap on the other node's stream: the PATCH goes through this server to gpu2.
            assert _get(f"{node_b.url}/api/streams/cam-b", B_TOKEN)["settings"]["swap"] is True
            page.uncheck("input[data-control='gpu2/cam-b/swap']")
            deadline = time.monotonic() + 30
            while _get(f"{node_b.url}/api/streams/cam-b", B_TOKEN)["settings"]["swap"] is not False:
                assert time.monotonic() < deadline, "the change did not reach gpu2"
                time.sleep(0.2)
            assert server.service.streams.get("cam-a").settings.swap is True
            page.wait_for_function(
                "!document.querySelector(\"input[data-control='gpu2/cam-b/swap']\").checked", timeout=20_000
            )
            page.screenshot(path=str(ARTIFACTS / "stage.png"))

            # Shown down at the next poll (2.5 s at most on a quiet machine; 15 s leaves a loaded one its slack).
            node_b.kill()
            killed = time.monotonic()
            page.wait_for_function(
                "document.querySelector(\".status[data-node='gpu2']\").textContent.startsWith('DOWN')", timeout=15_000
            )
            assert time.monotonic() - killed < 15.0
            assert page.is_visible("tr[data-stream='gpu1/cam-a']")
            assert "1 of 2 nodes up" in (page.text_content("#summary") or "")
            page.screenshot(path=str(ARTIFACTS / "stage-node-down.png"))
            page.close()
