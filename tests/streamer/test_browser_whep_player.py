"""A WHEP player nobody here wrote plays stageswap: medooze's ``whip-whep`` from npm in headless Chromium,
the processed view (the tracked mesh drawn) of a stream FFmpeg publishes over WHIP, picture and sound.

``make whep-player-setup`` (run by ``make test``) fetches the package with npm into ``.npm-whep/``, an ignored
folder; the test serves its ``whep.js`` and a minimal page (the package's own demo, reduced) from the
server's origin through Playwright's request routing, so the player is loaded as the file npm delivered,
unchanged, and nothing of it is copied into ``client/``. Screenshot: ``test-artifacts/browser/whep-npm-player.png``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_latency import ServerProcess
from tests.conftest import REPO
from tests.ffmpeg_publish import make_certificate
from tests.streamer.test_browser import _wait_until

pytestmark = pytest.mark.browser

PLAYER = REPO / ".npm-whep" / "node_modules" / "whip-whep" / "whep.js"
ARTIFACTS = REPO / "test-artifacts" / "browser"
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>whip-whep player</title></head>
<body style="margin:0;background:#111">
<video id="player" autoplay muted playsinline style="width:512px;height:512px"></video>
<script type="module">
import { WHEPClient } from "./whep.js";
const pc = new RTCPeerConnection();
pc.addTransceiver("video", { direction: "recvonly" });
pc.addTransceiver("audio", { direction: "recvonly" });
const media = new MediaStream();
pc.ontrack = (event) => { media.addTrack(event.track); document.getElementById("player").srcObject = media; };
window.pc = pc;
const url = new URL("/whep/cam?view=processed", location.href).href;
window.started = new WHEPClient().view(pc, url).then(() => "ok", (e) => `error: ${e}`);
</script>
</body></html>"""

INBOUND_JS = """async () => {
  const out = {};
  (await window.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp") out[s.kind] = { packets: s.packetsReceived, frames: s.framesDecoded ?? null };
  });
  return out;
}"""

COUNT_FRAMES_JS = """([want, ms]) => new Promise((resolve) => {
  const video = document.getElementById("player");
  let frames = 0;
  const tick = () => { frames++; if (frames >= want) resolve(frames); else video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
  setTimeout(() => resolve(frames), ms);
})"""
"""Frames the player shows, until ``want`` of them or ``ms`` passed (a starved machine shows a few a second)."""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed: run `make browser-setup` (apt-get install -y chromium)")
    if not PLAYER.is_file():
        pytest.skip(f"the npm WHEP player is not at {PLAYER}: run `make whep-player-setup` (needs npm)")
    return path


@pytest.fixture()
def published(clips: Path, models_dir: Path) -> Iterator[ServerProcess]:
    """``stageswap serve`` (the full pipeline, mesh drawn) and FFmpeg publishing d10.mp4 to it over WHIP."""
    with tempfile.TemporaryDirectory(prefix="whep-player-") as tmp:
        workdir = Path(tmp)
        server = ServerProcess.start("full", workdir, str(models_dir), extra_args=["--debug-overlay"])
        cert, key = make_certificate(workdir)
        cmd = [sys.executable, "-m", "tests.ffmpeg_publish", f"{server.url}whip/cam", "--clip", str(clips / "d10.mp4")]
        cmd += ["--seconds", "40", "--cert", str(cert), "--key", str(key)]
        publisher = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            yield server
        finally:
            publisher.terminate()
            try:
                publisher.wait(10)
            except subprocess.TimeoutExpired:
                publisher.kill()
            server.stop()


def test_an_npm_whep_player_plays_the_processed_view_of_an_ffmpeg_whip_stream(
    chromium: str, published: ServerProcess, tmp_path: Path
) -> None:
    base = published.url  # ends with "/"
    script = PLAYER.read_text()

    def serve_player(route: Any) -> None:
        if route.request.url.endswith("/whep.js"):
            route.fulfill(status=200, content_type="text/javascript", body=script)
        else:
            route.fulfill(status=200, content_type="text/html", body=PAGE)

    errors: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page(viewport={"width": 512, "height": 512})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route(f"{base}npm-player/**", serve_player)
            # The stream exists once FFmpeg's first frame is in (WHEP before that is a 404 the player won't retry).
            _wait_until(lambda: published_stream_live(base), 60, "FFmpeg's stream to start")
            page.goto(f"{base}npm-player/index.html")
            assert page.evaluate("window.started") == "ok", errors
            _wait_until(
                lambda: page.evaluate("document.getElementById('player').currentTime") > 2.0,
                60,
                "the npm player to play two seconds",
            )
            size = page.evaluate(
                "[document.getElementById('player').videoWidth, document.getElementById('player').videoHeight]"
            )
            frames = page.evaluate(COUNT_FRAMES_JS, [5, 30_000])
            inbound = page.evaluate(INBOUND_JS)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "whep-npm-player.png"))
        finally:
            browser.close()
    assert size == [512, 512], size
    assert frames >= 5, frames  # the picture moves (waited for up to 30 s: a few fps on two shared cores)
    assert inbound.get("audio", {}).get("packets", 0) > 50, inbound  # FFmpeg's Opus, passed on in sync
    assert not errors, errors


def published_stream_live(base: str, stream: str = "cam") -> bool:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}api/streams/{stream}", timeout=5) as response:
            info = json.loads(response.read())
    except OSError:
        return False
    return bool(info.get("publisher")) and info["stats"]["frames_processed"] > 0


PUBLISH_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>whip-whep publisher</title></head>
<body>
<script type="module">
import { WHIPClient } from "./whip.js";
// One promise set at once (the test evaluates it right after load; getUserMedia resolves later).
window.started = (async () => {
  const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
  window.pc = pc;
  await new WHIPClient().publish(pc, new URL("/whip/browser", location.href).href);
  return "ok";
})().catch((e) => `error: ${e}`);
</script>
</body></html>"""


@pytest.fixture()
def passthrough_server() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="whip-player-") as tmp:
        server = ServerProcess.start("passthrough", Path(tmp), None)
        try:
            yield server
        finally:
            server.stop()


def test_the_npm_whip_client_publishes_a_browsers_camera_and_microphone_and_the_npm_player_plays_both(
    chromium: str, passthrough_server: ServerProcess
) -> None:
    """The same package's WHIP client, from Chromium's fake camera and microphone (a beep), picture and sound."""
    base = passthrough_server.url
    scripts = {name: (PLAYER.parent / name).read_text() for name in ("whip.js", "whep.js")}

    def serve(route: Any) -> None:
        url = route.request.url
        name = url.rsplit("/", 1)[-1]
        if name in scripts:
            route.fulfill(status=200, content_type="text/javascript", body=scripts[name])
        else:
            body = PUBLISH_PAGE if "publish" in name else PAGE.replace("/whep/cam?", "/whep/browser?")
            route.fulfill(status=200, content_type="text/html", body=body)

    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
            ],
        )
        try:
            context = browser.new_context(viewport={"width": 512, "height": 512})
            context.route(f"{base}npm-player/**", serve)
            publisher = context.new_page()
            publisher.goto(f"{base}npm-player/publish.html")
            assert publisher.evaluate("window.started") == "ok"
            player = context.new_page()
            _wait_until(lambda: published_stream_live(base, "browser"), 30, "the browser's stream to start")
            player.goto(f"{base}npm-player/index.html")
            assert player.evaluate("window.started") == "ok"
            _wait_until(
                lambda: player.evaluate("document.getElementById('player').currentTime") > 2.0,
                60,
                "the npm player to play two seconds of the browser's camera",
            )
            size = player.evaluate(
                "[document.getElementById('player').videoWidth, document.getElementById('player').videoHeight]"
            )
            inbound = player.evaluate(INBOUND_JS)
        finally:
            browser.close()
    assert size == [640, 360], size
    assert inbound.get("audio", {}).get("packets", 0) > 50, inbound  # the fake microphone's beeps, passed on
