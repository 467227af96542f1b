"""REST, WebSocket, metrics, static UI, auth and the `stageswap serve` command, against the real app."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from engines.processor import ProcessedFrame
from engines.settings import ProcessSettings
from streamer.api.routes import WsClient
from streamer.config import InputSpec, ServeConfig
from tests.live_helpers import LiveServer, live_server, wait_for

REPO = Path(__file__).resolve().parents[2]


class _SeenSettings:
    """A processor that remembers the settings of every frame it processed."""

    runtime = "test"

    def __init__(self) -> None:
        self.seen: list[ProcessSettings] = []

    def process(
        self, image: np.ndarray, t_s: float | None = None, settings: ProcessSettings | None = None
    ) -> ProcessedFrame:
        assert settings is not None
        self.seen.append(settings)
        return ProcessedFrame(image, (), {"fake": 0.1})


def _config(tmp_path: Path, clips: Path, **kw: Any) -> ServeConfig:
    client = tmp_path / "client"
    (client / "js").mkdir(parents=True, exist_ok=True)
    (client / "index.html").write_text("<!doctype html><title>stageswap</title>")
    (client / "js" / "app.js").write_text("console.log('hi')")
    (tmp_path / "secret.txt").write_text("not for clients")
    base: dict[str, Any] = {
        "port": 0,
        "data_dir": tmp_path / "data",
        "client_dir": client,
        "inputs": (InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
        "processor": "passthrough",
        "max_streams": 2,
        "stats_interval_s": 0.2,
        "json_max_bytes": 4096,
    }
    base.update(kw)
    return ServeConfig(**base)


def _run(
    config: ServeConfig, body: Callable[[LiveServer, aiohttp.ClientSession], Awaitable[None]], processor: Any = None
) -> None:
    async def scenario() -> None:
        make = (lambda: processor) if processor is not None else None
        async with live_server(config, make) as srv, aiohttp.ClientSession() as http:
            await body(srv, http)

    asyncio.run(scenario())


def test_streams_rest_get_and_patch_apply_from_the_next_frame(tmp_path: Path, clips: Path) -> None:
    processor = _SeenSettings()

    async def body(srv: LiveServer, http: aiohttp.ClientSession) -> None:
        assert await wait_for(lambda: len(processor.seen) > 10, 30)
        async with http.get(f"{srv.url}/api/streams") as r:
            listing = await r.json()
        assert r.status == 200 and [s["name"] for s in listing["streams"]] == ["cam"]
        async with http.get(f"{srv.url}/api/streams/cam") as r:
            info = await r.json()
        assert info["kind"] == "input" and info["live"] and info["source"]["url"].endswith("d3.mp4")
        assert info["settings"]["strength"] == 1.0 and info["stats"]["input_fps"] > 2
        patch = {"strength": 0.4, "relight_target": {"mode": "direction", "direction": [1, 0, 1]}}
        n = len(processor.seen)
        async with http.patch(f"{srv.url}/api/streams/cam", json=patch) as r:
            after = await r.json()
        assert r.status == 200 and after["settings"]["strength"] == 0.4
        assert after["settings"]["relight_target"]["direction"] == pytest.approx([0.7071, 0, 0.7071], abs=1e-3)
        assert await wait_for(lambda: len(processor.seen) > n + 5, 30)
        # Frames processed after the PATCH use the new settings; nothing restarted (same stream, same counts).
        assert processor.seen[-1].strength == 0.4 and processor.seen[n - 1].strength == 1.0
        assert srv.service.streams.get("cam").stats.snapshot()["frames_processed"] >= len(processor.seen) - 1

    _run(_config(tmp_path, clips), body, processor)


def test_patch_refusals_say_why(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer, http: aiohttp.ClientSession) -> None:
        url = f"{srv.url}/api/streams"
        cases: list[tuple[str, str, Any, dict[str, str], int, str]] = [
            ("cam", "json", {"strength": 2}, {}, 400, "strength must be between 0 and 1"),
            ("cam", "json", {"brightness": 1}, {}, 400, "unknown setting 'brightness'"),
            ("cam", "json", {"identity": "../etc"}, {}, 400, "invalid identity"),
            ("cam", "json", {"relight_target": {"mode": "sh"}}, {}, 400, "needs relight_target.sh"),
            ("cam", "json", {"relight_target": {"mode": "hdri", "hdri": "studio"}}, {}, 400, "no HDRI named 'studio'"),
            ("cam", "json", [1, 2], {}, 400, "JSON object"),
            ("cam", "data", "{not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
            ("cam", "data", "strength=1", {"Content-Type": "text/plain"}, 415, "application/json"),
            ("cam", "data", "{" + " " * 5000 + "}", {"Content-Type": "application/json"}, 413, "limit"),
            ("nope", "json", {"strength": 0.5}, {}, 404, "unknown stream 'nope'"),
            ("NOPE", "json", {"strength": 0.5}, {}, 400, "invalid stream name"),
        ]
        for name, kind, payload, headers, status, reason in cases:
            kw: dict[str, Any] = {"json": payload} if kind == "json" else {"data": payload, "headers": headers}
            async with http.patch(f"{url}/{name}", **kw) as r:
                body = await r.json()
            assert (r.status, reason in body.get("error", "")) == (status, True), (name, payload, r.status, body)
        async with http.get(f"{url}/cam") as r:
            settings = (await r.json())["settings"]
        assert settings["strength"] == 1.0  # nothing refused was applied
        async with http.get(f"{srv.url}/api/nothing-here") as r:
            assert r.status == 404 and "error" in await r.json()
        async with http.delete(f"{url}/cam") as r:
            assert r.status == 405 and "error" in await r.json()

    _run(_config(tmp_path, clips), body)


class _Faulty:
    """A processor an operator's test can break: it raises (a failing engine) or takes ``delay_s`` per frame."""

    runtime = "test"

    def __init__(self) -> None:
        self.fail = False
        self.delay_s = 0.0
        self.frames = 0

    def process(
        self, image: np.ndarray, t_s: float | None = None, settings: ProcessSettings | None = None
    ) -> ProcessedFrame:
        self.frames += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("the relight engine lost its HDRI")
        return ProcessedFrame(image, (), {"fake": 0.1})


def test_health_turns_amber_and_red_with_the_reason(tmp_path: Path, clips: Path) -> None:
    """An engine that fails or an output that falls behind shows in the stream's health (and the metrics)
    with the engine's own words, and clears when the frames are fine again."""
    processor = _Faulty()

    async def body(srv: LiveServer, http: aiohttp.ClientSession) -> None:
        async def health() -> dict[str, Any]:
            async with http.get(f"{srv.url}/api/streams/cam") as r:
                return dict((await r.json())["health"])

        async def becomes(states: str, timeout_s: float) -> dict[str, Any]:
            deadline = time.monotonic() + timeout_s
            while True:
                seen = await health()
                if seen["state"] in states.split("|") or time.monotonic() > deadline:
                    assert seen["state"] in states.split("|"), seen
                    return seen
                await asyncio.sleep(0.1)

        await becomes("ok", 30)
        processor.fail = True
        failed_at = time.monotonic()
        amber = await becomes("degraded|failing", 20)  # amber at the first failed frame, red at half of them
        assert time.monotonic() - failed_at < 5.0  # the next frame's (a busy machine's worker and loop lag)
        assert amber["last_error"]["message"] == "RuntimeError: the relight engine lost its HDRI"
        assert amber["last_error"]["stage"] == "processor"
        red = await becomes("failing", 30)
        assert "failed in an engine" in red["reasons"][0]
        async with http.get(f"{srv.url}/metrics") as r:
            assert 'stageswap_stream_health{stream="cam"} 2.0' in await r.text()
        processor.fail = False
        await becomes("ok", 30)
        processor.delay_s = 0.25  # at most 4 fps out of a 25-30 fps clip: frames are dropped
        slow = await becomes("failing", 30)
        assert any("fps in: frames are dropped" in reason for reason in slow["reasons"]), slow

    _run(_config(tmp_path, clips, stats_window_s=1.5), body, processor)


def test_token_is_required_where_it_matters(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer, http: aiohttp.ClientSession) -> None:
        for method, path in [
            ("GET", "/api/streams"),
            ("PATCH", "/api/streams/cam"),
            ("GET", "/metrics"),
            ("POST", "/whip/cam2"),
            ("POST", "/whep/cam"),
            ("GET", "/ws"),
        ]:
            async with http.request(method, srv.url + path) as r:
                assert r.status == 401, (method, path)
                assert r.headers["WWW-Authenticate"].startswith("Bearer") and "token" in (await r.json())["error"]
            async with http.request(method, srv.url + path, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
        ok = {"Authorization": "Bearer s3cret-token"}
        async with http.get(f"{srv.url}/api/streams", headers=ok) as r:
            assert r.status == 200
        async with http.get(f"{srv.url}/") as r:  # the UI itself holds no data: it loads without the token
            assert r.status == 200
        async with http.ws_connect(f"{srv.url}/ws?access_token=s3cret-token") as ws:
            hello = await ws.receive_json(timeout=20)
            assert hello["type"] == "hello"

    _run(_config(tmp_path, clips, token="s3cret-token"), body)


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        msg = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if msg["type"] == kind:
            return dict(msg)


def test_websocket_pushes_stats_and_takes_control_messages(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(f"{srv.url}/ws") as ws, http.ws_connect(f"{srv.url}/ws") as other:
            hello = await _next(ws, "hello")
            assert "settings" in hello["types"]
            stamps = []
            for _ in range(5):
                stats = await _next(ws, "stats")
                stamps.append(stats["time_s"])
            assert "cam" in stats["streams"] and stats["streams"]["cam"]["stats"]["frames_in"] > 0
            # Pushed every stats_interval_s (0.2 s here, 0.5 s by default) on a fixed schedule: a busy loop makes
            # one push late and the next one's interval short (0.092 s then 0.201 s, seen in a fresh clone), so the
            # median of four intervals is the interval.
            assert 0.1 < float(np.median(np.diff(stamps))) < 0.4, stamps
            await ws.send_json({"type": "settings", "stream": "cam", "settings": {"debug_overlay": True}, "id": 7})
            reply = await _next(ws, "reply")
            assert reply == {
                "type": "reply",
                "id": 7,
                "ok": True,
                "result": {"stream": "cam", "settings": reply["result"]["settings"]},
            }
            assert reply["result"]["settings"]["debug_overlay"] is True
            event = await _next(other, "settings")  # every other control surface hears about it
            assert event["stream"] == "cam" and event["settings"]["debug_overlay"] is True
            assert srv.service.streams.get("cam").settings.debug_overlay is True
            bad = [
                ("not json at all", None, "not valid JSON"),
                (json.dumps([1]), None, "JSON object"),
                (json.dumps({"type": "dance", "id": 1}), 1, "unknown message type 'dance'"),
                (
                    json.dumps({"type": "settings", "stream": "cam", "settings": {"strength": -1}, "id": 2}),
                    2,
                    "between",
                ),
                (json.dumps({"type": "settings", "stream": "zzz", "settings": {}, "id": 3}), 3, "unknown stream"),
                (json.dumps({"type": "settings", "settings": {}, "id": 4}), 4, "needs 'stream'"),
            ]
            for text, msg_id, reason in bad:
                await ws.send_str(text)
                err = await _next(ws, "error")
                assert err["id"] == msg_id and reason in err["error"], (text, err)
            await ws.send_bytes(b"\x00\x01")
            assert "binary" in (await _next(ws, "error"))["error"]
            await ws.send_json({"type": "streams", "id": 9})
            assert "cam" in (await _next(ws, "reply"))["result"]["streams"]
            assert not ws.closed  # refusals never close the socket

    _run(_config(tmp_path, clips), body)


class _StuckSocket:
    """A WebSocket whose peer stopped reading: every send waits forever."""

    closed = False

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_str(self, text: str) -> None:
        self.sent.append(text)
        await asyncio.Event().wait()

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        self.closed = True


class _FineSocket(_StuckSocket):
    async def send_str(self, text: str) -> None:
        self.sent.append(text)


def test_a_stuck_websocket_client_never_delays_the_others() -> None:
    async def scenario() -> None:
        stuck_ws, fine_ws = _StuckSocket(), _FineSocket()
        stuck, fine = WsClient(stuck_ws), WsClient(fine_ws)  # type: ignore[arg-type]
        tasks = [asyncio.ensure_future(c.run_sender()) for c in (stuck, fine)]
        for i in range(50):
            for c in (stuck, fine):
                c.push(json.dumps({"type": "stats", "n": i}), latest_only=True)
            await asyncio.sleep(0.005)
        assert len(fine_ws.sent) >= 20 and json.loads(fine_ws.sent[-1])["n"] == 49
        assert len(stuck_ws.sent) == 1  # the stuck one holds one message and only ever the latest stats
        for i in range(WsClient.MAX_QUEUED + 1):  # events pile up behind the stuck send...
            stuck.push(json.dumps({"type": "event", "n": i}))
        assert stuck.overflowed  # ...until it is dropped rather than grow without bound
        tasks[0].cancel()
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())


def test_metrics_are_prometheus_text(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer, http: aiohttp.ClientSession) -> None:
        assert await wait_for(lambda: srv.service.streams.get("cam").stats.snapshot()["frames_processed"] > 5, 30)
        async with http.get(f"{srv.url}/metrics") as r:
            text = await r.text()
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=")
        lines = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"}
        assert lines["stageswap_streams"] == 1
        assert lines['stageswap_frames_in_total{stream="cam"}'] > 5
        assert 'stageswap_viewers{stream="cam",view="processed"}' in lines
        assert "# TYPE stageswap_frames_processed_total counter" in text

    _run(_config(tmp_path, clips), body)


def test_static_client_files_and_nothing_else(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer, http: aiohttp.ClientSession) -> None:
        async with http.get(f"{srv.url}/") as r:
            assert r.status == 200 and "stageswap" in await r.text()
        async with http.get(f"{srv.url}/js/app.js") as r:
            assert r.status == 200 and "console.log" in await r.text()
        for path in ["/nope.html", "/../secret.txt", "/%2e%2e/secret.txt", "/js/../../secret.txt"]:
            async with http.get(srv.url + path) as r:
                assert r.status == 404 and "error" in await r.json(), path

    _run(_config(tmp_path, clips), body)


def test_identities_enroll_list_select_and_remove(tmp_path: Path, clips: Path, faces: Path, models_dir: Path) -> None:
    async def body(srv: LiveServer, http: aiohttp.ClientSession) -> None:
        def form(name: str | None, photos: list[tuple[str, bytes]], **fields: str) -> aiohttp.FormData:
            data = aiohttp.FormData(default_to_multipart=True)
            if name is not None:
                data.add_field("name", name)
            data.add_field("allow_unverified", "true")  # no consent record in this test
            for key, value in fields.items():
                data.add_field(key, value)
            for filename, content in photos:
                data.add_field("photo", content, filename=filename, content_type="image/jpeg")
            return data

        photo = (faces / "obama.jpg").read_bytes()
        async with http.post(f"{srv.url}/api/identities", data=form("obama", [("obama.jpg", photo)])) as r:
            info = await r.json()
        assert r.status == 201, info
        assert info["name"] == "obama" and info["photos"] == 1
        async with http.get(f"{srv.url}/api/identities") as r:
            assert [i["name"] for i in (await r.json())["identities"]] == ["obama"]
        async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": "obama"}) as r:
            assert r.status == 200 and (await r.json())["settings"]["identity"] == "obama"
        refusals = [
            (form("obama", [("obama.jpg", photo)]), 409, "exists"),
            (form(None, [("obama.jpg", photo)]), 400, "'name'"),
            (form("Bad Name", [("obama.jpg", photo)]), 400, "invalid identity"),
            (form("nophoto", []), 400, "at least one photo"),
            (form("junk", [("junk.jpg", b"\x00not an image" * 10)]), 400, ""),
            (form("big", [("big.jpg", b"\x00" * (3 * 1024 * 1024))]), 413, "limit"),
        ]
        for data, status, reason in refusals:
            async with http.post(f"{srv.url}/api/identities", data=data) as r:
                body = await r.json()
            assert r.status == status and reason in body["error"], (status, body)
        async with http.post(f"{srv.url}/api/identities", json={"name": "x"}) as r:
            assert r.status == 415
        async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": "nobody"}) as r:
            assert r.status == 400 and "unknown identity 'nobody'" in (await r.json())["error"]
        async with http.delete(f"{srv.url}/api/identities/obama") as r:
            assert r.status == 409 and "in use by stream cam" in (await r.json())["error"]  # cam swaps it in
        async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": None}) as r:
            assert r.status == 200
        async with http.delete(f"{srv.url}/api/identities/obama") as r:
            assert r.status == 200
        async with http.delete(f"{srv.url}/api/identities/obama") as r:
            assert r.status == 404

    config = _config(tmp_path, clips, models_dir=models_dir, upload_max_bytes=2 * 1024 * 1024)
    _run(config, body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_serve_command_runs_and_stops_cleanly_on_sigterm(tmp_path: Path, clips: Path) -> None:
    port = _free_port()
    proc = _serve(
        "--port",
        str(port),
        "--processor",
        "passthrough",
        "--data-dir",
        str(tmp_path),
        "--input",
        f"cam={clips / 'd3.mp4'}",
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"open http://127.0.0.1:{port}/" in line, line + (proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]

        async def check() -> dict[str, Any]:
            async with aiohttp.ClientSession() as http:
                deadline = time.monotonic() + 30  # 1 s on a quiet machine; the first frame later on a busy one
                while True:
                    await asyncio.sleep(0.2)
                    async with http.get(f"http://127.0.0.1:{port}/api/streams/cam") as r:
                        info = dict(await r.json())
                    if info["stats"]["frames_processed"] > 0 or time.monotonic() > deadline:
                        return info

        info = asyncio.run(check())
        assert info["live"] and info["stats"]["frames_processed"] > 0
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        _, err = proc.communicate()
        assert rc == 0 and "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--cert", "x.pem"], "--cert and --key go together"),
        (["--input", "cam"], "expected NAME=SOURCE"),
        (["--input", "cam=/nonexistent.mp4"], "does not exist"),
        (["--port", "70000"], "--port must be between"),
        (["--max-streams", "1", "--input", "a=__CLIP__", "--input", "b=__CLIP__"], "--max-streams"),
    ],
)
def test_serve_command_refuses_bad_flags_with_one_line(args: list[str], reason: str, clips: Path) -> None:
    args = [a.replace("__CLIP__", str(clips / "d3.mp4")) for a in args]
    proc = _serve("--processor", "passthrough", *args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.startswith("stageswap: error:") and reason in err, err
    assert "Traceback" not in err


def test_serve_command_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        proc = _serve("--processor", "passthrough", "--port", str(s.getsockname()[1]), "--data-dir", str(tmp_path))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "cannot listen" in err and "Traceback" not in err
