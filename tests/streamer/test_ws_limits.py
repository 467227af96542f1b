"""The WebSocket's message limit and JSON that is not JSON (issue 18), through the real server.

The probe found a message of exactly the documented limit (64 KiB = 65536 bytes) refused, and an
``"id": NaN`` echoed back as ``NaN`` — which no JSON parser but Python's reads (RFC 8259 has no NaN or
infinities). The limit is a size a message may have; NaN and the infinities are refused with the reason.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamer.config import InputSpec, ServeConfig
from tests.live_helpers import live_server


def _strict(text: str) -> Any:
    """Parse as a browser's JSON.parse would: NaN and the infinities are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _message_of(size: int) -> str:
    """A valid ``streams`` message of exactly ``size`` bytes."""
    head = '{"type": "streams", "id": 7, "pad": "'
    text = head + "x" * (size - len(head) - 2) + '"}'
    assert len(text.encode()) == size
    return text


async def _answer(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """The next reply or error (stats and hello pushed meanwhile skipped), parsed strictly."""
    while True:
        msg = await ws.receive(timeout=20)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return msg
        data = _strict(msg.data)
        if data["type"] in ("reply", "error"):
            return data


@pytest.fixture
def config(tmp_path: Path, clips: Path) -> ServeConfig:
    return ServeConfig(
        port=0, data_dir=tmp_path, processor="passthrough", inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),)
    )


def test_a_message_of_exactly_the_limit_is_taken_and_one_byte_more_closes_the_socket(config: ServeConfig) -> None:
    limit = config.json_max_bytes
    assert limit == 64 * 1024  # the documented limit (README: Security and limits)

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{srv.url}/ws") as ws:
                await ws.send_str(_message_of(limit))
                answer = await _answer(ws)
                assert answer["type"] == "reply" and answer["id"] == 7, answer
                await ws.send_str(_message_of(limit + 1))
                closed = await _answer(ws)
                assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
                assert ws.close_code == 1009
            # A PATCH body of exactly the limit is taken too (JSON may end in white space), one byte more is 413.
            for size, status in ((limit, 200), (limit + 1, 413)):
                body = '{"relight": true}'.ljust(size)
                async with http.patch(
                    f"{srv.url}/api/streams/cam", data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    assert r.status == status, (size, await r.text())

    asyncio.run(scenario())


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_and_never_echoed(config: ServeConfig, constant: str) -> None:
    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{srv.url}/ws") as ws:
                await ws.send_str('{"type": "streams", "id": ' + constant + "}")
                answer = await _answer(ws)  # parsed strictly: a NaN in it fails here
                assert answer["type"] == "error" and answer["id"] is None, answer
                assert f"{constant} is not a JSON value" in answer["error"], answer
                await ws.send_str('{"type": "settings", "stream": "cam", "settings": {"strength": ' + constant + "}}")
                answer = await _answer(ws)
                assert answer["type"] == "error" and "not a JSON value" in answer["error"], answer
            async with http.patch(
                f"{srv.url}/api/streams/cam",
                data='{"strength": ' + constant + "}",
                headers={"Content-Type": "application/json"},
            ) as r:
                assert r.status == 400
                assert f"{constant} is not a JSON value" in _strict(await r.text())["error"]

    asyncio.run(scenario())
