"""The operator's page, tried as a stage operator would (issue 25): headless Chromium on the monitor page of a
real server with the full processor, fed by a shared clip (``--input``), with an access token.

Nothing fails silently (a refused setting is shown by its control, a failing engine raises a banner on the
video and turns the stream red in the list), and every control does what it says. Screenshots go to
``test-artifacts/browser/`` (``operator-*.png``). The server runs in this process on its own thread
(``ThreadedServer``), so files under its data directory can be changed while it runs.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamer.api.server import create_app
from streamer.config import InputSpec, ServeConfig
from tests.clip_helpers import lighter_clip
from tests.streamer.test_browser import ARTIFACTS, chromium  # noqa: F401  (the chromium fixture)
from tests.streamer.test_browser_recording import ThreadedServer

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

STREAM = "cam"
TOKEN = "operator-test-token"
HDRI = "stage-warm"


class Operator:
    """The server and the monitor page, and what a test needs of both."""

    def __init__(self, server: ThreadedServer, data: Path, page: Any, errors: list[str]) -> None:
        self.server = server
        self.data = data
        self.page = page
        self.errors = errors

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stream(self) -> dict[str, Any]:
        status, body = self.api(f"/api/streams/{STREAM}")
        assert status == 200, body
        return dict(body)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"operator-{name}.png"))


def _wait_until(check: Callable[[], Any], timeout_s: float, what: str | Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what() if callable(what) else what}")
        time.sleep(0.1)


def _warm_hdri(path: Path) -> None:
    """A small equirectangular stage: a warm key light left of the camera, a dim cool fill."""
    height, width = 64, 128
    image = np.full((height, width, 3), (60, 45, 40), np.uint8)  # BGR: a dim cool surround
    cv2.circle(image, (40, 28), 10, (80, 170, 255), -1)  # warm and bright, left of centre
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


@pytest.fixture(scope="module")
def operator(
    chromium: str,  # noqa: F811
    clips: Path,
    faces: Path,
    models_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    from engines.identity.store import IdentityStore
    from streamer.governance.consent import ConsentRecord, enroll_with_consent

    data = tmp_path_factory.mktemp("operator-data")
    _warm_hdri(data / "hdri" / f"{HDRI}.png")
    store = IdentityStore(data / "identities", models_dir)
    consent = ConsentRecord.create("Test Person", "Issue 25 tests", valid_until="2099-12-31")
    enroll_with_consent(store, "s1", [(faces / "s1.jpg").read_bytes()], consent, False, face="largest")
    enroll_with_consent(store, "woman", [(faces / "woman.png").read_bytes()], consent, False, face="largest")
    config = ServeConfig(
        data_dir=data,
        token=TOKEN,
        models_dir=models_dir,
        device="cpu",
        # The clip at 10 fps: the page's controls are what is tried, not the frame rate (the full pipeline,
        # the WebRTC encoder and Chromium's decoder then run on a third of the frames, all module long).
        inputs=(InputSpec.parse(f"{STREAM}={lighter_clip(clips / 'd3.mp4', data, fps=10)}"),),
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with ThreadedServer(create_app(config)) as server, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",  # the publish page's camera: Chromium's test pattern
                "--use-fake-device-for-media-stream",
            ],
        )
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
            context.add_init_script(f"sessionStorage.setItem('stageswap.token', {json.dumps(TOKEN)})")
            context.set_default_timeout(30_000)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}monitor.html?stream={STREAM}")
            page.wait_for_function("document.querySelector('#processed').videoWidth > 0", timeout=60_000)
            page.wait_for_selector("#control-fields:not([disabled])")
            yield Operator(server, data, page, errors)
        finally:
            browser.close()
    assert not errors, errors


def test_an_unknown_hdri_is_refused_by_its_control(operator: Operator) -> None:
    page = operator.page
    before = operator.stream()["settings"]["relight_target"]
    page.select_option("#mode", "hdri")
    error = page.locator("#hdri-row + .field-error")
    assert "Name the HDRI image" in (error.text_content() or "")  # asked for before anything is sent
    page.fill("#hdri", "studio-night")
    page.click("#hdri-apply")
    page.wait_for_function("document.querySelector('#hdri-row + .field-error').textContent.includes('no HDRI')")
    text = error.text_content() or ""
    assert "no HDRI named 'studio-night'" in text and f"{HDRI}.png" in text, text
    assert page.get_attribute("#hdri", "aria-invalid") == "true"
    # Nothing was applied; the control keeps showing what the operator typed, with the reason under it.
    assert operator.stream()["settings"]["relight_target"] == before
    page.wait_for_timeout(1200)  # a few stats pushes: they must not take the HDRI row away
    assert page.input_value("#mode") == "hdri" and page.input_value("#hdri") == "studio-night"
    assert page.is_visible("#hdri-row + .field-error")
    error.scroll_into_view_if_needed()
    operator.shot("hdri-refused")
    # An image that is there is taken, and the reason goes away.
    page.fill("#hdri", HDRI)
    page.press("#hdri", "Enter")
    error.wait_for(state="hidden")
    _wait_until(lambda: operator.stream()["settings"]["relight_target"]["hdri"] == HDRI, 30, "the HDRI applied")
    page.select_option("#mode", "match")
    _wait_until(lambda: operator.stream()["settings"]["relight_target"]["mode"] == "match", 30, "back to match")


def test_a_failing_engine_raises_the_banner_within_2_s(operator: Operator) -> None:
    """The HDRI in use vanishes from the disk: every frame fails in the relight. The monitor says so on the
    video within 2 s, in the engine's words; the stream list turns the stream red; back when it is back."""
    page = operator.page
    hdri = operator.data / "hdri" / f"{HDRI}.png"
    status, body = operator.api(f"/api/streams/{STREAM}", "PATCH", {"relight_target": {"mode": "hdri", "hdri": HDRI}})
    assert status == 200, body
    page.wait_for_timeout(1500)
    assert "failed in an engine" not in (page.text_content("#health-banner") or "")
    moved = hdri.with_name("moved-away.bin")
    hdri.rename(moved)
    gone_at = time.monotonic()
    try:
        page.wait_for_function(
            "document.querySelector('#health-banner').textContent.includes('failed in an engine')", timeout=10_000
        )
        shown_s = time.monotonic() - gone_at
        banner = page.text_content("#health-banner") or ""
        assert shown_s < 2.0, f"the banner took {shown_s:.1f} s"
        assert f"no HDRI named '{HDRI}'" in banner and "relight" in banner, banner
        assert page.is_visible("#health-banner")
        operator.shot("engine-failing")
        index = page.context.new_page()
        index.goto(f"{operator.url}index.html")
        index.wait_for_selector("li[data-health='failing'], li[data-health='degraded']")
        note = index.text_content("ul.streams .health-note") or ""
        assert "failed in an engine" in note and "no HDRI named" in note, note
        index.screenshot(path=str(ARTIFACTS / "operator-index-failing.png"))
        index.close()
    finally:
        moved.rename(hdri)
    page.wait_for_function(
        "!document.querySelector('#health-banner').textContent.includes('failed in an engine')", timeout=30_000
    )
    operator.api(f"/api/streams/{STREAM}", "PATCH", {"relight_target": {"mode": "match"}})


def _pick_stale(page: Any, select: str, name: str) -> None:
    """Choose ``name`` in ``select`` as a list gone stale would offer it (removed on the server since)."""
    page.evaluate(
        """([select, name]) => {
            const el = document.querySelector(select);
            el.add(new Option(name, name));
            el.value = name;
            el.dispatchEvent(new Event("change"));
        }""",
        [select, name],
    )


def test_an_unknown_identity_or_swap_model_is_refused_by_its_control(operator: Operator) -> None:
    """An identity or a swap model that is not on the server (a list gone stale: removed elsewhere since the
    page listed it) is refused with what there is, shown under its own control; nothing changes."""
    page = operator.page
    before = operator.stream()["settings"]
    _pick_stale(page, "#identity", "ghost")
    slot = page.locator("#identity").locator("xpath=ancestor::div[contains(@class,'row')][1]/following-sibling::*[1]")
    page.wait_for_function("document.querySelector('.field-error[data-field=identity]')?.textContent.includes('ghost')")
    text = slot.text_content() or ""
    assert "unknown identity 'ghost'" in text and "enrolled: s1" in text, text
    assert page.get_attribute("#identity", "aria-invalid") == "true"
    assert page.input_value("#identity") == (before["identity"] or "")  # the page shows what the server kept
    _pick_stale(page, "#swap-model", "ghost-model")
    page.wait_for_function(
        "document.querySelector('.field-error[data-field=swap_model]')?.textContent.includes('ghost-model')"
    )
    model_error = page.text_content(".field-error[data-field=swap_model]") or ""
    assert "unknown swap model 'ghost-model': the swap models are mesh" in model_error, model_error
    assert page.input_value("#swap-model") == before["swap_model"]
    after = operator.stream()["settings"]
    assert (after["identity"], after["swap_model"]) == (before["identity"], before["swap_model"])
    page.locator("#identity").scroll_into_view_if_needed()
    operator.shot("identity-model-refused")
    # A name that is there is taken and the reason goes away.
    page.select_option("#identity", "s1")
    page.wait_for_selector(".field-error[data-field=identity]", state="hidden")
    _wait_until(lambda: operator.stream()["settings"]["identity"] == "s1", 30, "the identity applied")
    page.select_option("#swap-model", "mesh")
    page.wait_for_selector(".field-error[data-field=swap_model]", state="hidden")


RECORDED_AT_LEAST = 10
"""Frames a recording made from the page holds before it is stopped (its duration is then at least ``seconds``)."""


def _record(operator: Operator, seconds: float) -> dict[str, Any]:
    """Record with the page's Record and Stop buttons; the stream's last recording as the API gives it."""
    page = operator.page
    page.click("#rec-start")
    page.wait_for_selector("#rec-stop:not([hidden])")
    page.wait_for_timeout(int(seconds * 1000))

    def recorded() -> bool:  # some frames in the file: on a starved machine the stream can pause for seconds
        status, body = operator.api(f"/api/streams/{STREAM}/recording")
        return status == 200 and int(body.get("frames_recorded", 0)) >= RECORDED_AT_LEAST

    _wait_until(recorded, 60, f"{RECORDED_AT_LEAST} frames recorded")
    page.click("#rec-stop")
    page.wait_for_selector("#rec-start:not([hidden])")

    def finished() -> dict[str, Any] | None:
        status, body = operator.api(f"/api/recordings?stream={STREAM}")
        assert status == 200, body
        last = body["recordings"][0]
        return dict(last) if last["state"] == "finished" else None  # not "finishing": the files are complete

    return dict(_wait_until(finished, 30, "the recording finished"))


def _plays(page: Any) -> None:
    """The player over the page shows the file: decoded frames, and time advancing."""
    page.wait_for_selector(".rec-player video")
    page.wait_for_function(
        "(() => { const v = document.querySelector('.rec-player video'); "
        "return v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0.3; })()",
        timeout=20_000,
    )
    assert not page.text_content(".rec-player .error")


def test_recordings_are_listed_played_and_downloaded_in_the_page(operator: Operator, tmp_path: Path) -> None:
    """Record from the page, then find the recording in the list with its figures, play it in the page and
    download it (the links carry a ticket, not the token); an FFV1 recording gets a proxy to play."""
    page = operator.page
    page.select_option("#rec-format", "h264/mp4")
    assert not page.is_checked("#rec-cfr")  # H.264 keeps the source's times by default
    # Before recording: the page warns when the stream drops frames, as the live figures say.
    note = page.locator("#rec-rate-note")

    def dropping() -> bool:
        stats = operator.stream()["stats"]
        return bool(stats["output_fps"] < 0.98 * stats["input_fps"])

    def warned() -> bool:
        return bool(page.evaluate("document.querySelector('#rec-rate-note').style.visibility === 'visible'"))

    # The figures move from one push to the next on a busy machine (near 0.98 either way): the note is waited for
    # while the server says the stream drops, and read when it is shown.
    _wait_until(lambda: warned() or not dropping(), 30, "the rate note while the stream drops frames")
    if warned():
        assert "Will not be constant-rate" in (note.text_content() or "")
    rec = _record(operator, 2.5)
    item = page.locator(f".rec-item[data-id='{rec['id']}']")
    item.wait_for()
    facts = item.locator(".rec-facts").text_content() or ""
    frames = max(rec["frames_written"].values())
    assert f"{frames} frames" in facts and f"{rec['frames_dropped']} dropped" in facts and "H.264 MP4" in facts, facts
    folder = page.text_content(".rec-folder code")
    assert folder == str((operator.data / "recordings").resolve())
    if rec["rate_warning"]:  # said after the recording too, in the server's words
        assert item.locator(".rec-rate-warning").text_content() == rec["rate_warning"]
        # The page prints the server's figure as JavaScript writes numbers (7.0 reads "7"): compared as numbers.
        said = re.search(r"Last recording: not constant-rate \(([\d.]+) fps on average", note.text_content() or "")
        assert said and float(said.group(1)) == rec["average_fps"], (note.text_content(), rec["average_fps"])
    play = item.locator(".rec-view[data-view=processed] .rec-play")
    try:
        play.wait_for(timeout=30_000)
    except Exception as exc:  # say what the list shows instead (a race seen twice under load)
        shown = page.inner_html(".rec-list") if page.locator(".rec-list").count() else page.content()[-4000:]
        raise AssertionError(f"no Play button for {rec['id']}: the list shows {shown}") from exc
    play.click()
    _plays(page)
    operator.shot("recording-playing")
    page.keyboard.press("Escape")
    page.wait_for_selector(".rec-player", state="detached")
    with page.expect_download() as download_info:
        item.locator(".rec-view[data-view=processed] .rec-download").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    original = operator.data / "recordings" / rec["files"]["processed"]
    assert download.suggested_filename == original.name and saved.read_bytes() == original.read_bytes()
    # FFV1 (for post): constant rate by default, no rate warning; the browser plays it through a proxy.
    page.select_option("#rec-format", "ffv1/mkv")
    assert page.is_checked("#rec-cfr") and "Will not be constant-rate" not in (note.text_content() or "")
    rec = _record(operator, 2.0)
    assert rec["frame_rate"] == "cfr" and rec["rate_warning"] is None
    item = page.locator(f".rec-item[data-id='{rec['id']}']")
    item.locator(".rec-make-proxy").click()
    item.locator(".rec-play").wait_for(timeout=60_000)
    assert item.locator(".rec-play").text_content() == "▶ Play proxy"
    item.locator(".rec-play").click()
    _plays(page)
    operator.shot("recording-proxy-playing")
    page.click(".rec-player button:text('Close')")
    page.select_option("#rec-format", "h264/mp4")
    page.locator("#rec-list").scroll_into_view_if_needed()
    operator.shot("recordings-list")


def test_enrollment_is_finished_in_the_page(operator: Operator, faces: Path, tmp_path: Path) -> None:
    """A group photo: its faces as thumbnails, one clicked and enrolled, the new identity selected on the
    stream with UNVERIFIED on the video; a taken name offers Replace; a bad photo is refused under Photos in
    the page's words (its file name, no command-line flags)."""
    page = operator.page
    page.locator("#enroll").scroll_into_view_if_needed()
    page.fill("#enroll-name", "group-pick")
    page.set_input_files("#enroll-photo", str(faces / "obama_and_biden.jpg"))
    page.check("#unverified")
    page.click("#enroll-submit")
    page.wait_for_selector("#enroll-faces .face-choice img")
    thumbs = page.locator("#enroll-faces .face-choice")
    assert thumbs.count() == 3
    page.wait_for_function("[...document.querySelectorAll('#enroll-faces img')].every((i) => i.naturalWidth > 0)")
    said = page.text_content(".field-error[data-field=enroll-photo]") or ""
    assert '"obama_and_biden.jpg" shows several faces: click the one to enroll' in said, said
    assert "--face" not in said
    thumbs.nth(1).click()
    assert thumbs.nth(1).get_attribute("aria-pressed") == "true"
    assert page.text_content("#enroll-submit") == "Enroll the chosen face"
    page.locator("#enroll-faces").scroll_into_view_if_needed()
    operator.shot("enroll-face-picker")
    page.click("#enroll-submit")
    page.wait_for_function("document.querySelector('#enroll-status').textContent.includes('enrolled group-pick')")
    assert "(unverified), selected on this stream" in (page.text_content("#enroll-status") or "")
    _wait_until(lambda: operator.stream()["settings"]["identity"] == "group-pick", 30, "the new identity selected")
    page.wait_for_function("document.querySelector('#identity').value === 'group-pick'")
    page.wait_for_function("document.querySelector('#swap-badge .unverified')?.textContent === 'UNVERIFIED'")
    assert page.is_visible("#swap-badge") and "group-pick" in (page.text_content("#swap-badge") or "")
    assert page.locator("#enroll-faces").is_hidden()
    page.locator("#processed").scroll_into_view_if_needed()
    operator.shot("enroll-selected-unverified")
    # The same name again: Replace is offered, and taken.
    page.fill("#enroll-name", "group-pick")
    page.set_input_files("#enroll-photo", str(faces / "woman.png"))
    page.check("#unverified")
    page.click("#enroll-submit")
    page.wait_for_selector("#enroll-replace-row:not([hidden])")
    said = page.text_content(".field-error[data-field=enroll-name]") or ""
    assert '"group-pick" is enrolled already: tick Replace' in said and "replace=true" not in said, said
    page.check("#enroll-replace")
    page.click("#enroll-submit")
    page.wait_for_function("document.querySelector('#enroll-status').textContent.includes('enrolled group-pick')")
    assert page.locator(".field-error[data-field=enroll-name]").is_hidden()
    # A file that is not a photo: refused under Photos, named by its file name.
    notes = tmp_path / "notes.jpg"
    notes.write_bytes(b"these are not the pixels you are looking for" * 20)
    page.fill("#enroll-name", "not-a-face")
    page.set_input_files("#enroll-photo", str(notes))
    page.check("#unverified")
    page.click("#enroll-submit")
    page.wait_for_selector(".field-error[data-field=enroll-photo]:not([hidden])")
    said = page.text_content(".field-error[data-field=enroll-photo]") or ""
    assert '"notes.jpg"' in said and "photo 1" not in said and "OpenCV" not in said, said
    page.locator("#enroll").scroll_into_view_if_needed()
    operator.shot("enroll-bad-photo")
    page.select_option("#identity", "s1")
    _wait_until(lambda: operator.stream()["settings"]["identity"] == "s1", 30, "back to s1")


def _stream_recording(operator: Operator) -> bool:
    return bool((operator.stream().get("recording") or {}).get("active"))


def test_hotkeys_swap_bypass_record_and_pick_identities(operator: Operator) -> None:
    page = operator.page
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("?")
    help_box = page.locator(".keys-help")
    help_box.wait_for()
    text = help_box.text_content() or ""
    assert "swap on / off" in text and "record / stop recording" in text and "identity 1 – 9" in text
    operator.shot("hotkeys-help")
    page.keyboard.press("Escape")
    help_box.wait_for(state="detached")

    def settings() -> dict[str, Any]:
        return dict(operator.stream()["settings"])

    start = settings()
    assert start["swap"] is True
    page.keyboard.press("s")
    _wait_until(lambda: settings()["swap"] is False, 30, "S: swap off")
    page.keyboard.press("s")
    _wait_until(lambda: settings()["swap"] is True, 30, "S: swap on")
    page.keyboard.press("b")
    _wait_until(lambda: (settings()["swap"], settings()["relight"]) == (False, False), 30, "B: bypass")
    page.keyboard.press("b")
    _wait_until(
        lambda: (settings()["swap"], settings()["relight"]) == (True, start["relight"]),
        10,
        lambda: (
            f"B: back to swap on, relight {start['relight']} (the server has {settings()}; the page "
            f"{page.is_checked('#swap')}, {page.is_checked('#relight')})"
        ),
    )
    options = page.eval_on_selector_all("#identity option", "os => os.map(o => o.value)")
    assert options[0] == "" and len(options) >= 3, options
    page.keyboard.press("2")
    _wait_until(lambda: settings()["identity"] == options[2], 30, f"2: identity {options[2]}")
    page.keyboard.press("0")
    _wait_until(lambda: settings()["identity"] is None, 30, "0: no identity")
    page.keyboard.press("1")
    _wait_until(lambda: settings()["identity"] == options[1], 10, f"1: identity {options[1]}")
    # Typing in a field is typing, not a hotkey.
    page.fill("#enroll-name", "")
    page.type("#enroll-name", "sb2")
    page.wait_for_timeout(800)
    assert settings()["swap"] is True and settings()["identity"] == options[1]
    page.fill("#enroll-name", "")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("r")
    _wait_until(lambda: _stream_recording(operator), 30, "R: recording")
    page.wait_for_selector("#rec-badge:not([hidden])")
    page.wait_for_timeout(1000)
    page.keyboard.press("r")
    _wait_until(lambda: not _stream_recording(operator), 30, "R: stopped")
    page.select_option("#identity", "s1")
    _wait_until(lambda: settings()["identity"] == "s1", 30, "back to s1")


def _open(operator: Operator, width: int, height: int, query: str = "") -> Any:
    page = operator.page.context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    page.on("pageerror", lambda exc: operator.errors.append(str(exc)))
    page.goto(f"{operator.url}monitor.html?stream={STREAM}{query}")
    page.wait_for_function("document.querySelector('#processed').videoWidth > 0", timeout=60_000)
    return page


def test_the_clean_view_is_the_program_alone(operator: Operator) -> None:
    page = _open(operator, 1280, 720, "&clean=1")
    try:
        page.wait_for_timeout(1500)  # stats and badges have had time to show, were they shown
        shown = page.evaluate(
            """() => [...document.querySelectorAll('body *')].filter((el) => {
                const r = el.getBoundingClientRect();
                const s = getComputedStyle(el);
                return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'
                    && !el.contains(document.querySelector('#processed')) && el.id !== 'processed';
            }).map((el) => el.tagName + '#' + el.id + '.' + el.className)"""
        )
        assert shown == [], shown
        box = page.locator("#processed").bounding_box()
        assert box == {"x": 0, "y": 0, "width": 1280, "height": 720}, box
        page.screenshot(path=str(ARTIFACTS / "operator-clean-view.png"))
        # Nothing but the picture: outside the 512x512 clip's letterbox, every pixel is black.
        shot = cv2.imread(str(ARTIFACTS / "operator-clean-view.png"))
        assert shot.shape[:2] == (720, 1280)
        assert int(shot[:, :270].max()) <= 8 and int(shot[:, -270:].max()) <= 8
        assert float(shot[:, 300:980].mean()) > 40  # the picture itself is there
    finally:
        page.close()


def test_the_sound_toggle_unmutes_this_monitor_and_says_so(operator: Operator) -> None:
    """Muted at first (autoplay rule); a click plays the output's sound here. Its icon is drawn (SVG), not an
    emoji a machine without an emoji font shows as an empty box."""
    page = _open(operator, 1280, 800)
    try:
        sound = page.locator("#sound")
        assert page.evaluate("document.querySelector('#processed').muted") is True
        assert sound.get_attribute("aria-pressed") == "false" and sound.inner_text().strip() == "Sound off"
        sound.click()
        assert page.evaluate("document.querySelector('#processed').muted") is False
        assert sound.get_attribute("aria-pressed") == "true" and sound.inner_text().strip() == "Sound on"
        assert all(ord(ch) < 0x2000 for ch in sound.inner_text()), sound.inner_text()
        assert sound.locator("svg").is_visible()
        sound.click()
        assert page.evaluate("document.querySelector('#processed').muted") is True
    finally:
        page.close()


CONTROLS = (
    "#stream", "#layout", "#keys-button", "#token", "#identity", "#swap-model", "#swap", "#relight",
    "#strength", "#mode", "#intensity", "#rec-view", "#rec-format", "#rec-cfr", "#rec-start",
    "#enroll-name", "#enroll-photo", "#enroll-submit",
)  # fmt: skip


@pytest.mark.parametrize(("width", "height"), [(800, 1000), (820, 1180), (1280, 800)])
def test_every_control_is_visible_and_usable(operator: Operator, width: int, height: int) -> None:
    """Each control, scrolled to, is inside the window, wide enough to read, and the topmost element at its
    centre (not covered by the pinned video or anything else); on a 1280x800 laptop Identity, Swap and
    Strength are above the fold."""
    page = _open(operator, width, height)
    try:
        page.wait_for_selector("#control-fields:not([disabled])")
        page.screenshot(path=str(ARTIFACTS / f"operator-layout-{width}.png"))
        if height == 800:
            for selector in ("#identity", "#swap", "#strength"):
                box = page.locator(selector).bounding_box()
                assert box is not None and box["y"] + box["height"] <= height, (selector, box)
        for selector in CONTROLS:
            control = page.locator(selector)
            control.scroll_into_view_if_needed()
            box = control.bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box)
            if selector in ("#stream", "#token", "#identity", "#swap-model", "#enroll-name", "#rec-format"):
                assert box["width"] >= 90, (selector, box)  # room for a name, not one character
            on_top = page.evaluate(
                """(sel) => { const el = document.querySelector(sel); const r = el.getBoundingClientRect();
                   const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
                   return !!hit && (hit === el || el.contains(hit)); }""",
                selector,
            )
            assert on_top, f"{selector} is covered at {width}x{height}"
        page.locator("#enroll").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"operator-layout-{width}-scrolled.png"))
    finally:
        page.close()


def test_the_publish_page_says_what_it_sends(operator: Operator) -> None:
    """Its default name is a free one (the clip is live as "cam"); after Stop, and after a refused start, it
    no longer says it is sending."""
    page = operator.page.context.new_page()
    page.on("pageerror", lambda exc: operator.errors.append(str(exc)))
    try:
        page.goto(f"{operator.url}publish.html")
        page.wait_for_function("document.querySelector('#stream').value === 'cam2'")
        assert page.text_content("#name-note") == '"cam" is live already: cam2 is free.'
        page.wait_for_function("document.querySelector('#sent').textContent.includes('not sending')")
        page.click("#start")
        page.wait_for_function("document.querySelector('#state').textContent.includes('publishing cam2')")
        page.wait_for_function("document.querySelector('#sent').textContent.includes('kbit/s')", timeout=20_000)
        assert (page.text_content("#sent") or "").startswith("sending ")
        page.screenshot(path=str(ARTIFACTS / "operator-publish-sending.png"))
        page.click("#stop")
        page.wait_for_function("document.querySelector('#state').textContent.includes('not publishing')")
        page.wait_for_timeout(2500)  # a figures tick on its way when Stop was pressed must not bring it back
        sent = page.text_content("#sent") or ""
        assert "not sending" in sent and "kbit/s" not in sent, sent
        # A start the server refuses (the clip's stream is live): the page says so and sends nothing.
        page.fill("#stream", "cam")
        page.click("#start")
        page.wait_for_function("document.querySelector('#error').textContent.includes('refused')")
        page.wait_for_timeout(1500)
        assert "not publishing" in (page.text_content("#state") or "")
        sent = page.text_content("#sent") or ""
        assert "not sending" in sent and "kbit/s" not in sent, sent
        assert "is fed by --input" in (page.text_content("#error") or "")
        page.screenshot(path=str(ARTIFACTS / "operator-publish-refused.png"))
    finally:
        page.close()


def _face_colour(page: Any, frames: int = 20) -> np.ndarray:
    """Mean linear-light RGB of the middle of the output video (where the clip's face is), over ``frames``
    frames drawn from the playing <video> about 0.15 s apart."""
    samples = page.evaluate(
        """async (frames) => {
            const video = document.querySelector('#processed');
            const canvas = document.createElement('canvas');
            canvas.width = video.videoWidth; canvas.height = video.videoHeight;
            const ctx = canvas.getContext('2d', { willReadFrequently: true });
            const out = [];
            for (let i = 0; i < frames; i += 1) {
                ctx.drawImage(video, 0, 0);
                const w = canvas.width, h = canvas.height;
                const d = ctx.getImageData(Math.round(w * 0.38), Math.round(h * 0.4), Math.round(w * 0.24),
                                           Math.round(h * 0.3)).data;
                const sum = [0, 0, 0];
                const lin = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                for (let p = 0; p < d.length; p += 4) {
                    for (let c = 0; c < 3; c += 1) sum[c] += lin(d[p + c]);
                }
                out.push(sum.map((s) => s / (d.length / 4)));
                await new Promise((r) => setTimeout(r, 150));
            }
            return out;
        }""",
        frames,
    )
    return np.asarray(samples, np.float64).mean(axis=0)


@pytest.mark.slow  # make test-slow; the engine-level test (tests/engines/test_processor.py) is in the default suite
def test_the_key_lights_colour_acts_on_a_swapped_face_in_the_page(operator: Operator) -> None:
    """Item 2 through the page: the key light's colour (orange against blue, at intensity 0.3) moves the
    output face's red/blue balance with the swap on as it does with the swap off, measured on the video the
    monitor plays."""
    page = operator.page
    page.select_option("#identity", "s1")
    page.select_option("#mode", "direction")
    _wait_until(lambda: operator.stream()["settings"]["relight_target"]["mode"] == "direction", 30, "key light")

    def set_input(selector: str, value: str) -> None:
        page.evaluate(
            "([s, v]) => { const el = document.querySelector(s); el.value = v; el.dispatchEvent(new Event('input')); }",
            [selector, value],
        )

    set_input("#intensity", "0.3")

    def balance(colour: str) -> float:
        set_input("#colour", colour)
        _wait_until(
            lambda: (
                abs(operator.stream()["settings"]["relight_target"]["colour"][0] - int(colour[1:3], 16) / 255) < 0.01
            ),
            10,
            f"colour {colour}",
        )
        page.wait_for_timeout(2500)  # frames made under the new light have reached the monitor
        red, _green, blue = _face_colour(page)
        return float(np.log(red / blue))

    effects = {}
    for swap in (True, False):
        if page.is_checked("#swap") != swap:
            page.click("#swap")
        _wait_until(lambda swap=swap: operator.stream()["settings"]["swap"] is swap, 10, f"swap {swap}")
        orange, blue = balance("#ffa040"), balance("#40a0ff")
        effects[swap] = orange - blue
        if swap:
            operator.shot("light-blue-swapped")
    print(f"log(R/B) orange - blue at intensity 0.3: swapped {effects[True]:.3f}, own face {effects[False]:.3f}")
    assert effects[False] > 0.05, effects  # the light visibly acts on the actor's own face
    # And on the swapped face: tests/engines/test_processor.py holds it to 20% of the actor's own on the same
    # frames; here two live passes over a moving clip, through WebRTC's encoder, are compared (ratios measured
    # 0.75-1.16 on a shared machine), so this holds it to half to one and a half: the bug this guards against
    # gave 0.004 (the colour match undid the light on a swapped face).
    assert 0.5 <= effects[True] / effects[False] <= 1.5, effects
    page.click("#swap")
    set_input("#colour", "#ffffff")
    set_input("#intensity", "1")
    page.select_option("#mode", "match")
    _wait_until(lambda: operator.stream()["settings"]["swap"] is True, 30, "swap back on")
