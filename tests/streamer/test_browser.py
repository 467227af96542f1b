"""The browser client against a real `stageswap serve`: headless Chromium publishes a fake camera fed from a
shared clip, the monitor page plays the processed output, shows the live figures and drives the settings.

Uses Debian's chromium (``make browser-setup`` installs it; never a Playwright-downloaded browser) through
Playwright. The server runs as a subprocess on a free port with an access token, so the token path (Bearer
on HTTP, ``access_token`` on the WebSocket) is exercised too. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts" / "browser"
TOKEN = "browser-test-token"
VIEWER_TOKEN = "browser-viewer-token"
STREAM = "stage"
CLIP = "s18.mp4"
CLIP_SIZE = (640, 360)
CLIP_FRAMES = 120
SERVER_START_S = 60.0

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (checked first, so a machine without it skips before starting a server)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(
            "chromium is not installed: run `make browser-setup` (needs root or sudo: apt-get install -y chromium)"
        )
    return path


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path

    def api(self, path: str, method: str = "GET", body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def camera_y4m(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first seconds of a shared clip as the .y4m file Chromium's fake camera plays (in a loop)."""
    out_path = tmp_path_factory.mktemp("camera") / "camera.y4m"
    width, height = CLIP_SIZE
    with av.open(str(clips / CLIP)) as src, av.open(str(out_path), "w", format="yuv4mpegpipe") as out:
        stream: Any = out.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i >= CLIP_FRAMES:
                break
            for packet in stream.encode(frame.reformat(width=width, height=height, format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return out_path


@pytest.fixture(scope="module")
def server(chromium: str, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`stageswap serve` with the full processor, on a free port, with an access token."""
    tmp = tmp_path_factory.mktemp("serve")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "server.log"
    env = {**os.environ, "STAGESWAP_MODELS": str(models_dir), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "streamer", "serve", "--port", "0", "--token", TOKEN, "--data-dir", str(tmp)]
    cmd += ["--viewer-token", VIEWER_TOKEN]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_START_S
    url = None
    while url is None:
        text = log_path.read_text(errors="replace")
        found = re.search(r"open (http://\S+/) in a browser", text)
        if found:
            url = found.group(1)
        elif process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"stageswap serve did not start:\n{text}")
        else:
            time.sleep(0.1)
    srv = Server(url, process, log_path, tmp)
    yield srv
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("stageswap serve did not stop within 20 s of SIGTERM")


@dataclass
class Browser:
    context: Any
    publish: Any
    monitor: Any
    console_errors: list[str]


@pytest.fixture(scope="module")
def browser(
    chromium: str, server: Server, camera_y4m: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """Headless Chromium with a fake camera; the publish page publishes STREAM, the monitor page watches it."""
    user_data = tmp_path_factory.mktemp("chromium-profile")
    args = [
        "--no-sandbox",
        "--headless",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_y4m}",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ]
    errors: list[str] = []
    with playwright_api.sync_playwright() as pw:
        # Playwright takes the profile directory itself (it refuses --user-data-dir in args): a fresh one.
        context = pw.chromium.launch_persistent_context(
            str(user_data),
            executable_path=chromium,
            headless=True,
            args=args,
            viewport={"width": 1440, "height": 900},
        )
        context.set_default_timeout(30_000)
        publish = context.new_page()
        monitor = context.new_page()
        for name, page in (("publish", publish), ("monitor", monitor)):
            page.on("pageerror", lambda exc, name=name: errors.append(f"{name}: {exc}"))
        try:
            yield Browser(context, publish, monitor, errors)
        finally:
            context.close()


def _number(page: Any, selector: str) -> float:
    text = page.text_content(selector) or ""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _wait_until(check: Any, timeout_s: float, what: str | Callable[[], str]) -> Any:
    """Poll ``check`` until it is truthy; on timeout fail naming ``what`` (a callable is asked then)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what() if callable(what) else what}")
        time.sleep(0.25)


def _save_video_frame(page: Any, selector: str, path: Path) -> None:
    """The frame a <video> shows now, at its own size, as PNG."""
    import base64

    data_url = page.evaluate(
        """(selector) => { const v = document.querySelector(selector); const c = document.createElement('canvas');
             c.width = v.videoWidth; c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0);
             return c.toDataURL('image/png'); }""",
        selector,
    )
    path.write_bytes(base64.b64decode(data_url.split(",", 1)[1]))


COUNT_FRAMES_JS = """([selector, want, ms]) => new Promise((resolve) => {
  const video = document.querySelector(selector);
  let frames = 0;
  const tick = () => { frames++; if (frames >= want) resolve(frames); else video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
  setTimeout(() => resolve(frames), ms);
})"""
"""Frames the video shows, until ``want`` of them or ``ms`` passed (a starved machine shows a few a second)."""


def test_publish_then_monitor_plays_processed_video_with_stats(server: Server, browser: Browser) -> None:
    page = browser.publish
    page.goto(f"{server.url}publish.html?stream={STREAM}")
    page.wait_for_function("document.querySelector('#preview').videoWidth > 0")
    assert page.evaluate("document.querySelector('#preview').videoWidth") == CLIP_SIZE[0]

    # A bad stream name is refused in the page, before anything is sent.
    page.fill("#stream", "Bad Name!")
    page.click("#start")
    assert "stream name" in (page.text_content("#error") or "")
    page.fill("#stream", STREAM)

    # Without the token the server refuses, and the page says why.
    page.click("#start")
    page.wait_for_function("document.querySelector('#error').textContent.includes('token')")
    assert not page.is_disabled("#start"), "a refused publish must leave the page ready to try again"

    page.fill("#token", TOKEN)
    page.press("#token", "Tab")  # the token is taken when the field is left, as a user does
    page.click("#start")
    page.wait_for_function(f"document.querySelector('#state').textContent.includes('publishing {STREAM}')")
    page.wait_for_function("document.querySelector('#sent').textContent.startsWith('sending')")
    status, stream = server.api(f"/api/streams/{STREAM}")
    assert status == 200 and stream["publisher"] is True
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "publish.png"))

    monitor = browser.monitor
    monitor.goto(f"{server.url}monitor.html?stream={STREAM}")
    monitor.fill("#token", TOKEN)  # the token is kept per tab (sessionStorage)
    monitor.press("#token", "Tab")
    monitor.wait_for_function("document.querySelector('#processed').videoWidth > 0")
    assert monitor.evaluate("document.querySelector('#processed').videoWidth") == CLIP_SIZE[0]
    monitor.wait_for_function("document.querySelector('#source').videoWidth > 0")
    # the attempts refused before the token was set must not leave their state on the page
    monitor.wait_for_function("document.querySelector('#conn').textContent.includes('connected')", timeout=30_000)

    frames = monitor.evaluate(COUNT_FRAMES_JS, ["#processed", 10, 30_000])
    assert frames >= 10, f"the processed video showed {frames} frames in 30 s"
    t0 = monitor.evaluate("document.querySelector('#processed').currentTime")
    monitor.wait_for_timeout(1000)
    assert monitor.evaluate("document.querySelector('#processed').currentTime") > t0

    # The live figures arrive (WebSocket with access_token, or polling) and are the stream's real ones: frames
    # come in and go out (how many a second is the machine's: a few at load 20 with the face engines).
    _wait_until(lambda: _number(monitor, "#st-in") > 1 and _number(monitor, "#st-out") > 1, 45, "input/output fps")
    _wait_until(lambda: monitor.text_content("#st-faces") == "1", 45, "one face in the stats")
    stages = monitor.text_content("#stages tbody") or ""
    assert "landmarks" in stages and "total" in stages, stages
    assert _number(monitor, "#st-lat") >= 0
    assert "processed" in (monitor.text_content("#counters") or "")
    assert re.search(r"runtime[a-z]", monitor.text_content("#counters") or ""), "the runtime is named"
    monitor.wait_for_timeout(1000)
    monitor.screenshot(path=str(ARTIFACTS / "monitor.png"))

    # The start page lists the live stream with a link to its monitor.
    index = browser.context.new_page()
    index.goto(server.url)
    index.fill("#token", TOKEN)
    index.press("#token", "Tab")
    index.wait_for_selector(f"#streams a[href='monitor.html?stream={STREAM}']")
    assert "fps" in (index.text_content("#streams") or "")
    index.screenshot(path=str(ARTIFACTS / "index.png"))
    index.close()
    assert not browser.console_errors, browser.console_errors


def test_controls_change_the_stream_settings(server: Server, browser: Browser) -> None:
    monitor = browser.monitor
    if "monitor.html" not in monitor.url:
        pytest.skip("needs the monitor page from the publish test")
    monitor.wait_for_function("!document.querySelector('#control-fields').disabled")

    monitor.check("#overlay")
    _wait_until(lambda: server.api(f"/api/streams/{STREAM}")[1]["settings"]["debug_overlay"], 20, "debug overlay on")

    # NDI out: the processed view is published under the stream's name, and taken off again.
    def ndi_outputs() -> dict:
        return dict(server.api(f"/api/streams/{STREAM}")[1].get("ndi") or {})

    monitor.check("#ndi-processed")
    _wait_until(lambda: ndi_outputs().get("processed", {}).get("name") == f"stageswap {STREAM}", 20, "NDI out on")
    monitor.wait_for_function(f"document.querySelector('#ndi-hint').textContent.includes('stageswap {STREAM}')")
    monitor.uncheck("#ndi-processed")
    _wait_until(lambda: "processed" not in ndi_outputs(), 20, "NDI out off")

    monitor.uncheck("#swap")
    _wait_until(lambda: server.api(f"/api/streams/{STREAM}")[1]["settings"]["swap"] is False, 20, "swap off")
    monitor.check("#swap")

    monitor.evaluate(
        "() => { const s = document.querySelector('#strength'); s.value = '0.4'; s.dispatchEvent(new Event('input')); }"
    )
    _wait_until(
        lambda: abs(server.api(f"/api/streams/{STREAM}")[1]["settings"]["strength"] - 0.4) < 1e-6, 20, "strength 0.4"
    )

    # Drag the key light to the upper left of the sphere: the light comes from the left and above.
    patches: list[str] = []
    monitor.on("request", lambda r: patches.append(str(r.post_data)) if r.method == "PATCH" else None)
    light = monitor.locator("#light")
    light.scroll_into_view_if_needed()
    box = light.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    monitor.mouse.move(cx, cy)
    monitor.mouse.down()
    monitor.mouse.move(cx - box["width"] * 0.3, cy - box["height"] * 0.25, steps=5)
    monitor.mouse.up()

    def lit_from_upper_left() -> bool:
        target = server.api(f"/api/streams/{STREAM}")[1]["settings"]["relight_target"]
        x, y, z = target["direction"]
        # the pointer ended at (-0.6, 0.5) on the unit disc: the LAST position must be what the server kept
        return (
            target["mode"] == "direction"
            and abs(x + 0.6) < 0.02
            and abs(y - 0.5) < 0.02
            and z > 0
            and abs(np.hypot(x, y) ** 2 + z * z - 1) < 1e-3
        )

    _wait_until(
        lit_from_upper_left,
        20,
        lambda: (
            "relight_target.direction = the light's last position (upper left); server has "
            f"{server.api(f'/api/streams/{STREAM}')[1]['settings']['relight_target']}, the page sent {patches}"
        ),
    )
    assert monitor.input_value("#mode") == "direction"

    # A change made elsewhere (the REST API) shows up in the page through the WebSocket push.
    status, _ = server.api(f"/api/streams/{STREAM}", "PATCH", {"relight": False})
    assert status == 200
    monitor.wait_for_function("!document.querySelector('#relight').checked", timeout=20_000)

    # An operator who lets go of the light and at once picks another mode keeps that mode: light values
    # still queued behind the send throttle must not switch it back to "direction".
    def server_mode() -> str:
        return str(server.api(f"/api/streams/{STREAM}")[1]["settings"]["relight_target"]["mode"])

    monitor.select_option("#mode", "match")
    _wait_until(lambda: server_mode() == "match", 20, "relight_target.mode = match")
    monitor.mouse.move(cx, cy)
    monitor.mouse.down()
    monitor.mouse.move(cx + box["width"] * 0.2, cy - box["height"] * 0.2, steps=8)
    monitor.mouse.up()
    assert monitor.input_value("#mode") == "direction"  # dragging the light switches the mode at once
    monitor.select_option("#mode", "match")
    monitor.wait_for_timeout(1000)
    assert server_mode() == "match", f"the light's queued values undid the operator's mode: {patches[-3:]}"
    assert monitor.input_value("#mode") == "match"

    # The server's refusal reason is shown: the HDRI light without an image name.
    monitor.select_option("#mode", "hdri")
    assert monitor.is_visible("#hdri-row")
    monitor.fill("#hdri", "")
    monitor.click("#hdri-apply")
    monitor.wait_for_function(
        "document.querySelector('#hdri-row + .field-error')?.textContent.includes('needs relight_target.hdri')"
    )
    assert server_mode() == "match"
    monitor.select_option("#mode", "direction")
    monitor.wait_for_timeout(1500)  # a few frames with the mesh overlay on
    monitor.screenshot(path=str(ARTIFACTS / "monitor-controls.png"))
    server.api(f"/api/streams/{STREAM}", "PATCH", {"debug_overlay": False, "relight": True, "strength": 1.0})


def test_enroll_shows_the_servers_answer(server: Server, browser: Browser, faces: Path, tmp_path: Path) -> None:
    monitor = browser.monitor
    if "monitor.html" not in monitor.url:
        pytest.skip("needs the monitor page from the publish test")
    import cv2

    # The listing refused before the token was typed is no longer shown once it is listed with the token.
    if server.api("/api/identities")[0] == 200:
        assert monitor.text_content("#enroll-error") == ""
    # Without consent and without the explicit "unverified" choice: refused, with the server's reason.
    monitor.fill("#enroll-name", "s-one")
    monitor.set_input_files("#enroll-photo", str(faces / "s1.jpg"))
    monitor.click("#enroll-submit")
    refusal = monitor.locator(".field-error[data-field^=enroll]:not([hidden])")
    refusal.wait_for()
    status, listing = server.api("/api/identities")
    if status != 200:  # a build without an identity store: the page shows the server's reason
        assert listing["error"] in (refusal.text_content() or "")
        return
    # Said under the consent fields, in the page's words (no command-line flags).
    said = monitor.text_content(".field-error[data-field=enroll-consent]") or ""
    assert "has no consent record: fill in Consent by" in said and "--" not in said, said
    assert listing["identities"] == []

    # A photo with no face in it, enrolled explicitly unverified: refused because of the photo.
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), 140, np.uint8))
    monitor.fill("#enroll-name", "wall")
    monitor.set_input_files("#enroll-photo", str(blank))
    monitor.check("#unverified")
    assert monitor.is_disabled("#consent-by")
    monitor.click("#enroll-submit")
    monitor.wait_for_selector(".field-error[data-field=enroll-photo]:not([hidden])")
    said = monitor.text_content(".field-error[data-field=enroll-photo]") or ""
    assert 'no face found in "wall.png"' in said, said
    monitor.uncheck("#unverified")

    # A real portrait with a consent record: the signed form is hashed in the page, never uploaded.
    form = tmp_path / "consent-form.txt"
    form.write_text("I agree to the use of my likeness for Stage Test.\n")
    until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    monitor.fill("#enroll-name", "s-one")
    monitor.set_input_files("#enroll-photo", str(faces / "s1.jpg"))
    monitor.fill("#consent-by", "S. One")
    monitor.fill("#production", "Stage Test")
    monitor.fill("#valid-until", until)
    monitor.set_input_files("#consent-doc", str(form))
    monitor.click("#enroll-submit")
    monitor.wait_for_function(
        "document.querySelector('#enroll-status').textContent.includes('enrolled s-one')"
        " || document.querySelector('.field-error[data-field^=enroll]:not([hidden])')",
        timeout=60_000,
    )
    refused = monitor.locator(".field-error[data-field^=enroll]:not([hidden])")
    assert refused.count() == 0, (
        f"s1.jpg is a clear portrait with consent: it must enroll ({refused.all_text_contents()})"
    )
    (one,) = server.api("/api/identities")[1]["identities"]
    assert one["name"] == "s-one" and one["consent"]["status"] == "verified"
    assert one["consent"]["valid_until"] == until
    assert one["consent"]["document_sha256"] == hashlib.sha256(form.read_bytes()).hexdigest()

    monitor.wait_for_function("[...document.querySelector('#identity').options].some(o => o.value === 's-one')")
    monitor.select_option("#identity", "s-one")
    _wait_until(lambda: server.api(f"/api/streams/{STREAM}")[1]["settings"]["identity"] == "s-one", 20, "identity set")
    monitor.wait_for_timeout(2500)  # a few swapped frames on screen
    monitor.screenshot(path=str(ARTIFACTS / "monitor-identity.png"))
    for view in ("processed", "source"):  # full-size frames of both views, to look at the face closely
        _save_video_frame(monitor, f"#{view}", ARTIFACTS / f"frame-{view}.png")


def _duration_s(text: str) -> float:
    """Seconds from the indicator's ``H:MM:SS`` (NaN when there is none)."""
    found = re.search(r"(\d+):(\d\d):(\d\d)", text)
    if not found:
        return float("nan")
    h, m, s = (int(g) for g in found.groups())
    return h * 3600 + m * 60 + s


def test_record_from_the_monitor_page(server: Server, browser: Browser) -> None:
    monitor = browser.monitor
    if "monitor.html" not in monitor.url:
        pytest.skip("needs the monitor page from the publish test")
    monitor.locator("#record").scroll_into_view_if_needed()
    assert monitor.is_hidden("#rec-badge") and "not recording" in (monitor.text_content("#rec-state") or "")

    # A viewer token may watch but not record: the page shows the server's reason.
    viewer = browser.context.new_page()
    viewer.goto(f"{server.url}monitor.html?stream={STREAM}")
    viewer.fill("#token", VIEWER_TOKEN)
    viewer.press("#token", "Tab")
    viewer.wait_for_function("!document.querySelector('#control-fields').disabled")  # its stats arrived
    viewer.click("#rec-start")
    viewer.wait_for_function("document.querySelector('#rec-error').textContent.startsWith('Refused: ')")
    assert "operator token" in (viewer.text_content("#rec-error") or "")
    assert server.api(f"/api/streams/{STREAM}")[1]["recording"] is None, "nothing was recorded"

    record_height = monitor.locator("#record").bounding_box()["height"]
    monitor.select_option("#rec-view", "both")
    monitor.select_option("#rec-format", "h264/mp4")
    monitor.click("#rec-start")
    monitor.wait_for_selector("#rec-badge", state="visible")
    assert monitor.is_visible("#rec-stop") and monitor.is_hidden("#rec-start")
    assert monitor.is_disabled("#rec-view"), "the options are fixed while recording"
    status, stream = server.api(f"/api/streams/{STREAM}")
    rec = stream["recording"]
    assert rec["active"] and rec["views"] == ["processed", "source"]
    assert (rec["codec"], rec["container"], rec["frame_rate"]) == ("h264", "mp4", "source")
    files_text = monitor.text_content("#rec-files") or ""
    for name in rec["files"].values():  # the file names the server chose, shown as they are
        assert name in files_text and name.startswith(f"{STREAM}-")
    # The viewer's page shows the recording the operator started (through its stats).
    viewer.wait_for_selector("#rec-badge", state="visible", timeout=10_000)
    viewer.close()
    # So does the start page's list of streams.
    index = browser.context.new_page()
    index.goto(server.url)
    index.fill("#token", TOKEN)
    index.press("#token", "Tab")
    assert (index.text_content("#streams .rec-tag", timeout=10_000) or "").startswith("● REC")
    index.screenshot(path=str(ARTIFACTS / "index-recording.png"))
    index.close()

    # The indicator's duration grows while the recording runs: to 4 s at least and by 2 s or more from whatever it read
    # first (on a busy machine the steps above can take longer than 4 s), through at least three values, never back.
    seen: list[float] = []

    def grown_enough() -> bool:
        seen.append(_duration_s(monitor.text_content("#rec-badge-text") or ""))
        return seen[-1] >= max(4, seen[0] + 2) and len(set(seen)) >= 3

    _wait_until(grown_enough, 45, lambda: f"the badge's duration to grow to 4 s and by 2 s (saw {seen})")
    assert seen == sorted(seen), seen
    state_line = monitor.text_content("#rec-state") or ""
    assert state_line.startswith("● REC") and "H.264 MP4" in state_line, state_line
    # What the page says about drops is what the server says (on a busy machine the recorder may fall behind).
    dropped = server.api(f"/api/streams/{STREAM}")[1]["recording"]["frames_dropped"]
    if dropped == 0:
        assert "0 dropped" in state_line and monitor.is_hidden("#rec-alarm"), "no alarm while the recorder keeps up"
    else:
        assert re.search(r"[1-9]\d* dropped", state_line), (dropped, state_line)
    assert monitor.evaluate("document.title").startswith("● REC")
    height = monitor.locator("#record").bounding_box()["height"]
    assert height == record_height, f"the Record panel grew from {record_height} to {height} px (controls moved)"
    monitor.screenshot(path=str(ARTIFACTS / "monitor-recording.png"))

    monitor.click("#rec-stop")
    monitor.wait_for_selector("#rec-badge", state="hidden", timeout=30_000)
    monitor.wait_for_function("document.querySelector('#rec-state').textContent.startsWith('finished')")
    # The options come back once the server has answered the Stop (its stats may say "finished" first).
    monitor.wait_for_function("!document.querySelector('#rec-view').disabled", timeout=10_000)
    assert monitor.is_visible("#rec-start")
    assert "Last recording" in (monitor.text_content("#rec-files") or "")
    monitor.screenshot(path=str(ARTIFACTS / "monitor-recorded.png"))

    status, final = server.api(f"/api/recordings/{rec['id']}")
    assert status == 200 and final["state"] == "finished" and final["duration_s"] >= 4, final
    counts, sizes = {}, {}
    for view, name in final["files"].items():  # the files exist and hold the frames the server counted
        path = server.data_dir / "recordings" / name
        with av.open(str(path)) as container:
            frames = list(container.decode(video=0))
        counts[view], sizes[view] = len(frames), (frames[0].width, frames[0].height)
    # (At least a few frames a second: how many depends on how fast this machine keeps up, not on the file.)
    assert counts["processed"] == counts["source"] == final["frames_written"]["processed"] >= 10, (counts, final)
    # The camera's size, or what the browser scaled it down to under CPU load (WebRTC adapts the resolution).
    width, height = sizes["processed"]
    assert sizes["source"] == sizes["processed"] and width <= CLIP_SIZE[0] and abs(width / height - 16 / 9) < 0.02
    assert f"{final['frames_written']['processed']} frames" in (monitor.text_content("#rec-state") or "")
    assert not browser.console_errors, browser.console_errors


def test_stop_ends_the_whip_session(server: Server, browser: Browser) -> None:
    page = browser.publish
    if "publish.html" not in page.url:
        pytest.skip("needs the publish page from the publish test")
    page.click("#stop")
    page.wait_for_function("document.querySelector('#state').textContent.includes('not publishing')")

    def publisher_gone() -> bool:
        status, stream = server.api(f"/api/streams/{STREAM}")
        return status == 404 or stream["publisher"] is False

    _wait_until(publisher_gone, 10, "the WHIP session to end after Stop (DELETE)")
    browser.monitor.wait_for_function(
        "document.querySelector('#conn').textContent.match(/no publisher|waiting|ended/)", timeout=10_000
    )
    browser.monitor.close()

    def stream_gone() -> bool:
        return server.api(f"/api/streams/{STREAM}")[0] == 404

    _wait_until(stream_gone, 15, "the stream to be removed once the monitor closed")
    assert not browser.console_errors, browser.console_errors
