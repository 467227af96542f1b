"""Limits (issue 8): frame size at ingest, viewers per stream, control-message rates over HTTP and WebSocket.
(Body, upload and pixel limits are in test_api.py and test_hostile.py; the stream limit in test_webrtc.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamer.api.ratelimit import KeyedLimiter, TokenBucket
from streamer.api.routes import HUB
from streamer.config import InputSpec, ServeConfig
from tests.live_helpers import ClipTrack, live_server, publish, view, wait_for

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **kw: Any) -> ServeConfig:
    base: dict[str, Any] = {"port": 0, "data_dir": tmp_path / "data", "processor": "passthrough", "max_streams": 4}
    base.update(kw)
    return ServeConfig(**base)


def test_frame_size_limit_takes_either_orientation() -> None:
    config = ServeConfig()
    for w, h in [(4096, 2160), (2160, 4096), (3840, 2160), (1920, 1080), (16, 16)]:
        assert config.frame_refusal(w, h) is None, (w, h)
    for w, h in [(4097, 2160), (4096, 2161), (2161, 4096), (7680, 4320), (4096, 4096), (8192, 16)]:
        assert config.frame_refusal(w, h) == f"frame {w}x{h} is over the 4096x2160 limit", (w, h)


def test_a_publisher_over_the_frame_size_limit_is_closed_with_an_event(tmp_path: Path, clips: Path) -> None:
    config = _config(tmp_path, max_frame_width=320, max_frame_height=240)

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http, http.ws_connect(f"{srv.url}/ws") as ws:
            events: list[dict[str, Any]] = []

            async def listen() -> None:
                async for msg in ws:
                    data = json.loads(msg.data)
                    if data["type"] != "stats":
                        events.append(data)

            listener = asyncio.ensure_future(listen())
            wide = ClipTrack(clips / "d3.mp4", size=(320, 180))
            tall = ClipTrack(clips / "d10.mp4", size=(180, 320))  # the same limit, turned: accepted
            big = ClipTrack(clips / "d3.mp4", size=(480, 360))
            pubs = [await publish(http, srv.url, name, t) for name, t in (("wide", wide), ("tall", tall))]
            service = srv.service
            assert await wait_for(
                lambda: all(service.streams.get(n).stats.snapshot()["frames_processed"] > 5 for n in ("wide", "tall")),
                20,
            )
            big_pub = await publish(http, srv.url, "big", big)  # the answer comes before any frame: 201
            assert await wait_for(lambda: any(e["type"] == "publisher_refused" for e in events), 45), events
            refused = next(e for e in events if e["type"] == "publisher_refused")
            assert refused["stream"] == "big"
            assert "frame 480x360 is over the 320x240 limit (--max-frame-size)" in refused["reason"]
            assert await wait_for(lambda: service.streams.find("big") is None, 30)  # closed, stream gone
            assert await wait_for(lambda: any(e["type"] == "stream_ended" and e["stream"] == "big" for e in events), 30)
            assert service.peers is not None and {s.stream.name for s in service.peers.sessions()} == {"wide", "tall"}
            n = service.streams.get("wide").stats.snapshot()["frames_processed"]
            assert await wait_for(lambda: service.streams.get("wide").stats.snapshot()["frames_processed"] > n + 10, 30)
            listener.cancel()
            for p in [*pubs, big_pub]:
                await p.pc.close()
            for t in (wide, tall, big):
                t.stop()

    asyncio.run(scenario())


def test_an_input_source_over_the_limit_has_its_frames_dropped(tmp_path: Path, clips: Path) -> None:
    config = _config(tmp_path, inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),), max_frame_width=320)

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            stream = srv.service.streams.get("cam")
            assert await wait_for(lambda: stream.frames_refused > 10, 30)
            async with http.get(f"{srv.url}/api/streams/cam") as r:
                stats = (await r.json())["stats"]
            assert stats["frames_refused"] > 10 and stats["frames_in"] == 0 and stats["frames_processed"] == 0
            assert stream.refused_reason == "frame 512x512 is over the 320x2160 limit"

    asyncio.run(scenario())


def test_serve_refuses_an_input_file_over_the_limit_before_starting(tmp_path: Path, clips: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--processor", "passthrough", "--data-dir", str(tmp_path)]
        + ["--input", f"cam={clips / 'd3.mp4'}", "--max-frame-size", "320x240"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "input cam: frame 512x512 is over the 320x240 limit" in err, err


def test_viewers_per_stream_are_limited(tmp_path: Path, clips: Path) -> None:
    config = _config(tmp_path, inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),), max_viewers_per_stream=2)

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            first, second = await view(http, srv.url, "cam"), await view(http, srv.url, "cam")
            with pytest.raises(AssertionError, match="WHEP POST cam: 503 .*has 2 viewers, the most it serves"):
                await view(http, srv.url, "cam")
            async with http.post(
                f"{srv.url}/whep/cam", data=first.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
            ) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "5" and "error" in await r.json()
            assert await wait_for(lambda: len(first.times) > 5 and len(second.times) > 5, 40)  # both still served
            async with http.delete(srv.url + first.location) as r:
                assert r.status == 200
            third = await view(http, srv.url, "cam")  # a place is free again
            assert await wait_for(lambda: len(third.times) > 5, 40)
            for v in (first, second, third):
                await v.close()

    asyncio.run(scenario())


def test_token_bucket_allows_bursts_then_the_rate() -> None:
    bucket = TokenBucket(rate_per_s=5.0, burst=10, now_s=0.0)
    assert all(bucket.allow(0.0) for _ in range(10)) and not bucket.allow(0.0)
    assert bucket.refused == 1 and bucket.retry_after_s() == pytest.approx(0.2)
    assert bucket.allow(0.2) and not bucket.allow(0.2)  # one more token every 0.2 s
    assert sum(bucket.allow(t / 100) for t in range(21, 1021)) == pytest.approx(50, abs=1)  # 10 s at 5/s
    assert all(bucket.allow(100.0) for _ in range(10)) and not bucket.allow(100.0)  # refills to the burst only
    limiter = KeyedLimiter(5.0, 10, max_keys=3)
    for key in ("a", "b", "c", "d"):
        limiter.bucket(key).allow()
    assert len(limiter) == 3  # the least recently seen address is forgotten: bounded under a flood


def test_http_control_requests_over_the_rate_get_429_and_reads_go_on(tmp_path: Path, clips: Path) -> None:
    config = _config(
        tmp_path, inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),), control_rate_per_s=5.0, control_burst=10
    )

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            statuses: list[int] = []
            t0 = time.monotonic()
            for i in range(40):
                async with http.patch(f"{srv.url}/api/streams/cam", json={"strength": (i % 10) / 10}) as r:
                    statuses.append(r.status)
                    if r.status == 429:
                        assert int(r.headers["Retry-After"]) >= 1 and "too many requests" in (await r.json())["error"]
                async with http.get(f"{srv.url}/api/streams/cam") as r:
                    assert r.status == 200  # reads are never limited
            elapsed = time.monotonic() - t0
            allowed = statuses.count(200)
            assert statuses.count(429) == 40 - allowed and allowed <= 10 + 5 * elapsed + 1, (statuses, elapsed)
            assert statuses[:10] == [200] * 10  # the burst is served in full
            await asyncio.sleep(0.5)
            async with http.patch(f"{srv.url}/api/streams/cam", json={"strength": 0.5}) as r:
                assert r.status == 200  # back within the rate
            assert srv.service.streams.get("cam").settings.strength == 0.5

    asyncio.run(scenario())


def test_websocket_control_over_the_rate_is_refused_and_a_flood_is_disconnected(tmp_path: Path, clips: Path) -> None:
    config = _config(
        tmp_path,
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
        control_rate_per_s=5.0,
        control_burst=10,
        stats_interval_s=0.2,
    )

    async def scenario() -> None:
        async with (
            live_server(config) as srv,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{srv.url}/ws") as ws,
            http.ws_connect(f"{srv.url}/ws") as calm,
        ):
            t0 = time.monotonic()
            for i in range(30):
                await ws.send_json({"type": "streams", "id": i})
            replies, limited = 0, 0
            while time.monotonic() - t0 < 1.0:
                try:
                    msg = await ws.receive_json(timeout=max(0.05, 1.0 - (time.monotonic() - t0)))
                except TimeoutError:
                    break
                replies += msg["type"] == "reply"
                limited += msg["type"] == "error" and "rate limit" in msg["error"]
            assert 10 <= replies <= 10 + 5 * (time.monotonic() - t0) + 1, replies
            assert limited == 1  # one refusal a second is said, the rest dropped quietly
            for _ in range(200):  # a flood: past ten bursts refused, the connection is closed
                if ws.closed:
                    break
                await ws.send_str('{"type": "streams"}')
            msg = await ws.receive(timeout=30)
            while msg.type == aiohttp.WSMsgType.TEXT:
                msg = await ws.receive(timeout=30)
            assert ws.close_code == 1008, (msg, ws.close_code)
            # The calm client on the same server kept getting its stats all along, and still does.
            stats = 0
            while stats < 3:
                data = await calm.receive_json(timeout=20)
                stats += data["type"] == "stats"
            await calm.send_json({"type": "streams", "id": "calm"})
            while (data := await calm.receive_json(timeout=20))["type"] != "reply":
                pass
            assert data["id"] == "calm"

    asyncio.run(scenario())


def test_websocket_clients_are_limited(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with live_server(_config(tmp_path, max_ws_clients=2)) as srv, aiohttp.ClientSession() as http:
            first, second = await http.ws_connect(f"{srv.url}/ws"), await http.ws_connect(f"{srv.url}/ws")
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{srv.url}/ws")
            assert refused.value.status == 503
            await first.close()
            assert await wait_for(lambda: len(srv.app[HUB].clients) == 1, 20)
            third = await http.ws_connect(f"{srv.url}/ws")  # a place is free again
            assert (await third.receive_json(timeout=20))["type"] == "hello"
            for ws in (second, third):
                await ws.close()

    asyncio.run(scenario())
