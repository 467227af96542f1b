"""Request bodies as a real network delivers them (issue 18): in several TCP writes with delays between them,
slowly, or not at all, through a real socket to the real app.

On loopback one write of a client is one read of the server, so a reader that takes the first chunk as the
whole body passes every test made with an HTTP library; here each piece is its own write, with a pause
that lets the server read it before the next one comes (TCP_NODELAY, so none are joined on the way).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from streamer.config import InputSpec, ServeConfig
from tests.live_helpers import ClipTrack, LiveServer, live_server, wait_for

SEGMENT = 1460
"""The payload of one Ethernet TCP segment: what an offer is cut into on a real network."""


def _config(tmp_path: Path, clips: Path, **kw: Any) -> ServeConfig:
    base: dict[str, Any] = {
        "port": 0,
        "data_dir": tmp_path / "data",
        "inputs": (InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
        "processor": "passthrough",
        "max_streams": 2,
    }
    base.update(kw)
    return ServeConfig(**base)


def _run(config: ServeConfig, body: Callable[[LiveServer], Awaitable[None]]) -> None:
    async def scenario() -> None:
        async with live_server(config) as srv:
            await body(srv)

    asyncio.run(scenario())


async def _send_in_pieces(
    url: str, method: str, path: str, content_type: str, body: bytes, pieces: list[int], delay_s: float
) -> tuple[int, dict[str, str], bytes]:
    """Send one request whose head and first ``pieces[0]`` body bytes go in one write, then each further
    piece of the body in its own write ``delay_s`` later; return the status, headers and body answered."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    cuts = [0, *pieces, len(body)]
    writer.write(head + body[: cuts[1]])
    await writer.drain()
    for start, end in zip(cuts[1:], cuts[2:], strict=False):
        await asyncio.sleep(delay_s)
        writer.write(body[start:end])
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    header_text, _, payload = rest.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in header_text.decode().split("\r\n") if ": " in line)
    return int(status_line.split()[1]), headers, payload


def _segments(length: int) -> list[int]:
    """Where a body of ``length`` bytes is cut: network segments, and at least four pieces."""
    step = min(SEGMENT, length // 4)
    return list(range(step, length, step))


def test_a_patch_body_in_three_writes_is_read_whole(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer) -> None:
        patch = json.dumps({"strength": 0.25, "swap": False}).encode()
        for delay_s in (0.0005, 0.05):
            status, _, answer = await _send_in_pieces(
                srv.url, "PATCH", "/api/streams/cam", "application/json", patch, [5, 17], delay_s
            )
            assert status == 200, answer
            assert json.loads(answer)["settings"]["strength"] == 0.25

    _run(_config(tmp_path, clips), body)


def test_whip_and_whep_offers_cut_into_network_segments_are_answered(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer) -> None:
        publisher = RTCPeerConnection()
        publisher.addTransceiver(ClipTrack(clips / "d3.mp4", size=(320, 180)), direction="sendonly")
        await publisher.setLocalDescription(await publisher.createOffer())
        offer = publisher.localDescription.sdp.encode()
        assert len(offer) > SEGMENT  # a real offer spans several segments (a browser's: 4-10)
        status, headers, answer = await _send_in_pieces(
            srv.url, "POST", "/whip/split", "application/sdp", offer, _segments(len(offer)), 0.01
        )
        assert status == 201, answer
        await publisher.setRemoteDescription(RTCSessionDescription(answer.decode(), "answer"))
        assert await wait_for(lambda: srv.service.streams.get("split").stats.snapshot()["frames_in"] > 0, 45)

        viewer = RTCPeerConnection()
        viewer.addTransceiver("video", direction="recvonly")
        viewer.addTransceiver("audio", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())
        offer = viewer.localDescription.sdp.encode()
        status, _, answer = await _send_in_pieces(
            srv.url, "POST", "/whep/split", "application/sdp", offer, _segments(len(offer)), 0.01
        )
        assert status == 201, answer
        assert answer.startswith(b"v=0")
        await viewer.close()
        await publisher.close()
        assert headers["Location"].startswith("/whip/split/")

    _run(_config(tmp_path, clips, inputs=()), body)


def test_an_upload_in_pieces_is_read_whole(tmp_path: Path, clips: Path, faces: Path) -> None:
    """The multipart reader reads to the end too: the name field arrives after a pause, and the photo's
    part in three more; the enrollment then refuses what is wrong with the photo, not the body."""
    boundary = "stageswap-test-boundary"
    photo = b"not a photo at all" * 200
    parts = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nsplit\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="allow_unverified"\r\n\r\ntrue\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def body(srv: LiveServer) -> None:
        status, _, answer = await _send_in_pieces(
            srv.url,
            "POST",
            "/api/identities",
            f"multipart/form-data; boundary={boundary}",
            parts,
            [10, 60, 400, 2000],
            0.02,
        )
        assert status in (400, 413), answer
        error = json.loads(answer)["error"]
        assert "multipart" not in error and "name" not in error, error  # the body was whole: the photo is what is wrong

    _run(_config(tmp_path, clips, inputs=()), body)


def test_a_body_that_stalls_is_refused_with_408_and_its_connection_closed(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer) -> None:
        host, port = srv.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        patch = b'{"strength": 0.5}'
        # The head and half the body, then nothing: the client stalls and keeps the connection open.
        writer.write(
            f"PATCH /api/streams/cam HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(patch)}\r\n\r\n".encode()
            + patch[:8]
        )
        await writer.drain()
        started = time.monotonic()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        answered_s = time.monotonic() - started
        assert head.startswith(b"HTTP/1.1 408"), head
        assert b"Connection: close" in head
        length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length")).split()[1])
        assert "did not arrive within 0.5 s" in json.loads(await reader.readexactly(length))["error"]
        # Closed by the server (after aiohttp's lingering time for the rest of the body, 10 s), not left open.
        assert await asyncio.wait_for(reader.read(), 30) == b""
        writer.close()
        assert answered_s >= 0.5  # the timeout, not sooner
        async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/api/streams/cam") as r:
            assert (await r.json())["settings"]["strength"] == 1.0  # nothing half-read was applied

    _run(_config(tmp_path, clips, body_timeout_s=0.5), body)


def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(tmp_path: Path, clips: Path) -> None:
    """No Content-Length to check first: the limit holds while reading (413), whatever the client claims."""

    async def body(srv: LiveServer) -> None:
        host, port = srv.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"PATCH /api/streams/cam HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        chunk = b'{"strength": 0.5' + b" " * 1000
        try:
            for _ in range(20):  # 20 KB in all, limit 4 KB
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            pass  # the server answered and closed before all of it was sent
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"over the 4096-byte limit" in await asyncio.wait_for(reader.read(200), 10)
        writer.close()

    _run(_config(tmp_path, clips, json_max_bytes=4096), body)


def test_a_client_trickling_its_headers_is_disconnected(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer) -> None:
        host, port = srv.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = f"GET /api/streams HTTP/1.1\r\nHost: {host}:{port}\r\nX-Slow: {'a' * 200}\r\n\r\n".encode()
        started = time.monotonic()
        closed_after_s = None
        for byte in head:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed_after_s = time.monotonic() - started
                break
            if reader.at_eof() or await _closed(reader):
                closed_after_s = time.monotonic() - started
                break
        writer.close()
        assert closed_after_s is not None, "the server waited for the whole trickled head"
        assert closed_after_s < 20

    _run(_config(tmp_path, clips, header_timeout_s=1.0), body)


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Wait a little for the server; True when it closed the connection (EOF) meanwhile."""
    try:
        data = await asyncio.wait_for(reader.read(1), 0.2)
    except TimeoutError:
        return False
    return data == b""


def test_a_declared_length_over_the_limit_is_refused_before_reading(tmp_path: Path, clips: Path) -> None:
    async def body(srv: LiveServer) -> None:
        headers = {"Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as http,
            http.patch(f"{srv.url}/api/streams/cam", data=b"{" + b" " * 200 + b"}", headers=headers) as r,
        ):
            assert r.status == 413
            assert "of 202 bytes is over the 64-byte limit" in (await r.json())["error"]

    _run(_config(tmp_path, clips, json_max_bytes=64), body)
