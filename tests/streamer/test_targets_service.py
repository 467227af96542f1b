"""Target rules on a live stream (issue 22): the real service with the full processor plays the two-person clip
(``benchmarks/two_people.py``) as its input; rules are set through PATCH (checked: unknown identities and
performers are 400 when set), the stream's stats list each face with its rule, the audit log records the change;
then the monitor page in headless Debian chromium: clicking a face on the output video and choosing an identity
sets the rule. Screenshot: ``test-artifacts/browser/monitor-targets.png``."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.two_people import RIGHT_CLIP, TwoPeople, write_two_people
from engines.identity.targets import ReidConfig
from streamer.config import InputSpec, ServeConfig
from tests.conftest import REPO
from tests.hostile_helpers import ThreadedServer, threaded_server

ARTIFACTS = REPO / "test-artifacts" / "browser"
TOKEN = "targets-token"


def _api(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _wait_faces(url: str, ok: Any, timeout_s: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    faces: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        faces = _api(f"{url}/api/streams/cam")[1]["stats"]["face_list"]
        if ok(faces):
            return faces
        time.sleep(0.3)
    raise AssertionError(f"faces never became as expected: {faces}")


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, clips: Path, faces: Path, models_dir: Path
) -> Iterator[ThreadedServer]:
    from streamer.__main__ import main

    tmp = tmp_path_factory.mktemp("targets-service")
    data = tmp / "data"
    clip = write_two_people(clips, TwoPeople(frames=150, away=None), tmp / "two.mp4")
    common = ["--data-dir", str(data), "--models", str(models_dir)]  # module scope: before the env fixtures
    assert main(["identities", "add", "s1", str(faces / "s1.jpg"), "--unverified", *common]) == 0
    assert main(["identities", "add", "obama", str(faces / "obama.jpg"), "--unverified", *common]) == 0
    assert main(["performers", "add", "right", str(clips / RIGHT_CLIP), "--every", "40", *common]) == 0
    config = ServeConfig(
        port=0,
        data_dir=data,
        processor="full",
        token=TOKEN,
        inputs=(InputSpec.parse(f"cam={clip}"),),
        models_dir=models_dir,
        stats_interval_s=0.3,
    )
    with threaded_server(config) as server:
        yield server


def test_rules_set_by_patch_pick_the_performer_and_are_audited(service: ThreadedServer) -> None:
    url = service.url
    _wait_faces(url, lambda f: len(f) == 2)
    status, body = _api(f"{url}/api/performers")
    assert status == 200 and [p["name"] for p in body["performers"]] == ["right"]
    for rules, message in [
        ([{"match": "right", "identity": "ghost"}], "unknown identity 'ghost' (enrolled: obama, s1)"),
        ([{"match": "nobody", "identity": "s1"}], "unknown performer 'nobody' in targets (enrolled: right)"),
        ([{"match": "id:0", "identity": "s1"}], "a face id is 'id:' and a number from 1"),
        ("right", "targets must be a list of rules"),
    ]:
        status, body = _api(f"{url}/api/streams/cam", "PATCH", {"targets": rules})
        assert status == 400 and message in body["error"], body
    status, body = _api(f"{url}/api/streams/cam", "PATCH", {"targets": [{"match": "right", "identity": "s1"}]})
    assert status == 200 and body["settings"]["targets"] == [{"match": "right", "identity": "s1"}]

    def right_swapped(faces: list[dict[str, Any]]) -> bool:
        by_x = sorted(faces, key=lambda f: f["box"][0])
        return len(by_x) == 2 and by_x[1]["identity"] == "s1" and by_x[1]["performer"] == "right"

    faces = sorted(_wait_faces(url, right_swapped), key=lambda f: f["box"][0])
    assert faces[0]["identity"] is None and faces[0]["rule"] is None  # the other person: untouched
    assert faces[1]["rule"] == 0 and faces[1]["distance"] <= ReidConfig().drop_threshold
    assert all(0.0 <= v <= 1.0 for f in faces for v in f["box"]) and faces[1]["box"][0] > 0.5
    log = (service.config.data_dir / "audit" / "audit.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in log]
    changed = [e for e in events if e["event"] == "targets.changed"]
    assert changed and changed[-1]["data"]["after"] == [{"match": "right", "identity": "s1"}]
    assert any(e["event"] == "swap.started" and e["data"].get("identity") == "s1" for e in events)
    status, body = _api(f"{url}/api/streams/cam", "PATCH", {"targets": []})
    assert status == 200 and body["settings"]["targets"] == []


def _click_face(page: Any, side: str, identity: str, screenshot: str | None = None) -> None:
    """Click the left- or right-hand face box on the output video and choose ``identity`` in its menu (the open
    menu saved as ``screenshot`` first)."""
    boxes = page.locator(".face-box")
    lefts = [boxes.nth(i).bounding_box()["x"] for i in range(boxes.count())]
    boxes.nth(int(np.argmax(lefts) if side == "right" else np.argmin(lefts))).click()
    choice = f".face-menu:not([hidden]) .target-choice[data-identity='{identity}']"
    page.wait_for_selector(choice, timeout=30_000)
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot))
    page.click(choice)


def _wait_settings(url: str, ok: Any, timeout_s: float = 45.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    settings: dict[str, Any] = {}
    while time.monotonic() < deadline:
        settings = _api(f"{url}/api/streams/cam")[1]["settings"]
        if ok(settings["targets"]):
            return settings
        time.sleep(0.2)
    raise AssertionError(f"the rules never became as expected: {settings.get('targets')}")


playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.mark.browser
def test_clicking_a_face_in_the_monitor_assigns_an_identity(service: ThreadedServer) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed: run `make browser-setup`")
    url = service.url
    rules = [{"match": "right", "identity": "s1"}]
    assert _api(f"{url}/api/streams/cam", "PATCH", {"targets": rules, "identity": None})[0] == 200
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            page.goto(f"{url}monitor.html?stream=cam" if url.endswith("/") else f"{url}/monitor.html?stream=cam")
            page.fill("#token", TOKEN)
            page.press("#token", "Tab")
            page.wait_for_function(
                "() => { const v = document.querySelector('#processed'); return v && v.videoWidth > 0; }",
                timeout=60_000,
            )
            page.wait_for_function(
                "[...document.querySelectorAll('.face-box span')].some((s) => s.textContent.includes('right → s1'))",
                timeout=60_000,
            )
            _click_face(page, "right", "obama", "monitor-targets-menu.png")  # recognised: the rule follows them
            settings = _wait_settings(url, lambda t: t and t[0]["identity"] == "obama")
            assert settings["targets"] == [{"match": "right", "identity": "obama"}]
            _click_face(page, "left", "s1")  # nobody enrolled: picked by its track id
            settings = _wait_settings(url, lambda t: len(t) == 2)
            left_id = settings["targets"][0]["match"]
            assert left_id.startswith("id:") and settings["targets"] == [
                {"match": left_id, "identity": "s1"},
                {"match": "right", "identity": "obama"},
            ]
            page.wait_for_function(
                "() => { const t = [...document.querySelectorAll('.face-box span')].map((s) => s.textContent);"
                f" return t.some((x) => x.startsWith('#{left_id[3:]} ') && x.includes('→ s1'))"
                " && t.some((x) => x.includes('right → obama')); }",
                timeout=60_000,
            )
            page.wait_for_timeout(1500)  # a few processed frames with both swaps on the video
            page.screenshot(path=str(ARTIFACTS / "monitor-targets.png"))
        finally:
            browser.close()
