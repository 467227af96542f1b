"""Cross-origin requests in a real browser (issue 18): headless Chromium on the default server (no token,
loopback). A page on another origin tries what the probe did — a body-less POST that starts a recording,
a multipart form that enrolls a face ("simple" requests: the browser sends them without asking), and the
WebSocket — and none of it happens; the server's own monitor page still plays, gets its stats over the
WebSocket and changes settings.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamer.api.routes import HUB
from streamer.api.server import create_app
from streamer.config import InputSpec, ServeConfig
from tests.streamer.test_browser import ARTIFACTS, chromium  # noqa: F401  (the chromium fixture)
from tests.streamer.test_browser_recording import ThreadedServer

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


class ForeignSite:
    """Another origin: a page served from its own port on 127.0.0.1 (a real server, so that the browser's
    private-network rules treat it as local and its requests reach ours at all)."""

    def __init__(self) -> None:
        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = b"<!doctype html><title>Free prizes</title><h1>Free prizes</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/attack.html"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


ATTACK = """async ({ target, photo }) => {
  const out = {};
  const attempt = async (name, init) => {
    try { await fetch(target + name, { mode: "no-cors", ...init }); out[name] = "sent"; }
    catch (e) { out[name] = "failed: " + e; }
  };
  await attempt("/api/streams/cam/recording", { method: "POST" });
  const form = new FormData();
  form.append("name", "intruder");
  form.append("allow_unverified", "true");
  const bytes = Uint8Array.from(atob(photo), (c) => c.charCodeAt(0));
  form.append("photo", new Blob([bytes], { type: "image/jpeg" }), "face.jpg");
  await attempt("/api/identities", { method: "POST", body: form });
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(target.replace("http", "ws") + "/ws");
    ws.onopen = () => { ws.close(); resolve("open"); };
    ws.onerror = () => resolve("refused");
    setTimeout(() => resolve("timeout"), 10000);
  });
  return out;
}"""


def _get(server: ThreadedServer, path: str) -> Any:
    with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as response:
        return json.loads(response.read())


def _wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def test_a_foreign_page_cannot_record_enroll_or_connect_but_the_monitor_page_works(
    chromium: str,  # noqa: F811
    clips: Path,
    faces: Path,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    config = ServeConfig(
        data_dir=tmp_path,
        models_dir=models_dir,
        processor="passthrough",
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
    )
    photo = base64.b64encode((faces / "obama.jpg").read_bytes()).decode()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    app = create_app(config)
    hub = app[HUB]
    with ThreadedServer(app) as server, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(30_000)
            evil = context.new_page()
            site = ForeignSite()
            try:
                evil.goto(site.url)
                outcome = evil.evaluate(ATTACK, {"target": server.url.rstrip("/"), "photo": photo})
            finally:
                site.close()
            assert outcome["ws"] == "refused" and not hub.clients, outcome
            assert outcome["/api/streams/cam/recording"] == "sent", outcome  # it reached the server...
            assert _get(server, "/api/recordings")["recordings"] == []  # ...which refused it
            assert _get(server, "/api/identities")["identities"] == []

            page = context.new_page()
            page.goto(f"{server.url}monitor.html?stream=cam")
            page.wait_for_function("document.querySelector('#processed').videoWidth > 0", timeout=60_000)
            page.wait_for_selector("#control-fields:not([disabled])")
            _wait_until(lambda: len(hub.clients) == 1, 15, "the monitor page's WebSocket")
            assert _get(server, "/api/streams/cam")["settings"]["relight"] is True
            page.uncheck("#relight")
            _wait_until(lambda: _get(server, "/api/streams/cam")["settings"]["relight"] is False, 10, "relight off")
            page.screenshot(path=str(ARTIFACTS / "origin-monitor.png"))
        finally:
            browser.close()
