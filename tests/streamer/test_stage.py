"""One page for the stage (issue 27): two stageswap nodes on loopback, one of them the other's peer.

Node B is a real ``stageswap serve`` process (so it can be killed like a machine that dies); node A runs in
this process with ``peers=(b,)``. Through A: both nodes' streams are listed, a PATCH reaches the right node
(and B's own refusal comes back), a viewer watches B's stream by WHEP relayed through A without ever holding
B's token, and a killed B is shown as down within 5 s while A carries on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamer.config import InputSpec, PeerSpec, ServeConfig
from tests.live_helpers import live_server, wait_for
from tests.stage_helpers import Node, node_process

B_TOKEN = "node-b-operator-token-7f3a"
A_TOKEN = "node-a-operator-token-91c2"
A_VIEWER = "node-a-viewer-token-5d0e"


@pytest.fixture
def node_b(tmp_path: Path, clips: Path) -> Iterator[Node]:
    with node_process(tmp_path, "b", B_TOKEN, "cam2", clips / "d3.mp4") as node:
        yield node


def _config_a(tmp_path: Path, clips: Path, node_b: Node) -> ServeConfig:
    return ServeConfig(
        port=0,
        data_dir=tmp_path / "data-a",
        processor="passthrough",
        token=A_TOKEN,
        viewer_token=A_VIEWER,
        node_name="a",
        inputs=(InputSpec.parse(f"cam1={clips / 'd10.mp4'}"),),
        peers=(PeerSpec("b", node_b.url, B_TOKEN),),
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _stage(http: aiohttp.ClientSession, base: str, token: str = A_VIEWER) -> tuple[dict[str, Any], str]:
    async with http.get(f"{base}/api/stage", headers=_auth(token)) as r:
        text = await r.text()
        assert r.status == 200, text
    body: dict[str, Any] = await r.json()
    return body, text


def _node(stage: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in stage["nodes"] if n["name"] == name)


def test_two_nodes_on_one_page_patch_reaches_the_right_node_and_a_dead_node_is_down_within_5_s(
    tmp_path: Path, clips: Path, node_b: Node
) -> None:
    config = _config_a(tmp_path, clips, node_b)

    async def scenario() -> None:
        async with live_server(config) as a, aiohttp.ClientSession() as http:
            # Both nodes' streams, listed through A (a viewer token may read the stage).
            deadline = time.monotonic() + 45
            while True:
                stage, text = await _stage(http, a.url)
                b = _node(stage, "b")
                if b["state"] == "up" and [s["name"] for s in b["streams"]] == ["cam2"]:
                    break
                assert time.monotonic() < deadline, stage
                await asyncio.sleep(0.2)
            local = _node(stage, "a")
            assert stage["node"] == "a" and local["local"] and [s["name"] for s in local["streams"]] == ["cam1"]
            assert b["url"] == node_b.url and b["error"] is None
            assert B_TOKEN not in text

            # A PATCH through A reaches B's stream, and only it.
            async with http.patch(
                f"{a.url}/api/stage/b/streams/cam2", json={"strength": 0.4}, headers=_auth(A_TOKEN)
            ) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["settings"]["strength"] == pytest.approx(0.4)
            async with http.get(f"{node_b.url}/api/streams/cam2", headers=_auth(B_TOKEN)) as r:
                assert (await r.json())["settings"]["strength"] == pytest.approx(0.4)
            assert a.service.streams.get("cam1").settings.strength == pytest.approx(1.0)
            # ... and one for A's own stream is applied here, through the same settings path as PATCH /api/streams.
            async with http.patch(
                f"{a.url}/api/stage/a/streams/cam1", json={"strength": 0.7}, headers=_auth(A_TOKEN)
            ) as r:
                assert r.status == 200, await r.text()
            assert a.service.streams.get("cam1").settings.strength == pytest.approx(0.7)
            async with http.get(f"{node_b.url}/api/streams/cam2", headers=_auth(B_TOKEN)) as r:
                assert (await r.json())["settings"]["strength"] == pytest.approx(0.4)

            # B validates what it is sent: its refusal comes back as it is. Unknown nodes and streams are 404.
            async with http.patch(
                f"{a.url}/api/stage/b/streams/cam2", json={"strength": 7}, headers=_auth(A_TOKEN)
            ) as r:
                assert r.status == 400 and "strength" in (await r.json())["error"]
            async with http.patch(f"{a.url}/api/stage/b/streams/nope", json={}, headers=_auth(A_TOKEN)) as r:
                assert r.status == 404 and B_TOKEN not in await r.text()
            async with http.patch(f"{a.url}/api/stage/c/streams/cam2", json={}, headers=_auth(A_TOKEN)) as r:
                assert r.status == 404 and "unknown node" in (await r.json())["error"]
            # A viewer may look but not change anything, on any node.
            async with http.patch(f"{a.url}/api/stage/b/streams/cam2", json={}, headers=_auth(A_VIEWER)) as r:
                assert r.status == 403

            # B dies: at its next poll the page shows it down (2.5 s at most on a quiet machine: a poll a second,
            # refused at once; 15 s leaves a loaded loop its slack), with the reason and its last streams; A
            # carries on.
            node_b.kill()
            killed = time.monotonic()
            while _node(stage, "b")["state"] != "down":
                assert time.monotonic() - killed < 15.0, _node(stage, "b")
                await asyncio.sleep(0.1)
                stage, text = await _stage(http, a.url)
            down = _node(stage, "b")
            assert down["error"] and node_b.url in down["error"]
            assert [s["name"] for s in down["streams"]] == ["cam2"]  # as last seen, marked by the node's state
            assert _node(stage, "a")["state"] == "up" and _node(stage, "a")["streams"][0]["live"]
            async with http.patch(
                f"{a.url}/api/stage/b/streams/cam2", json={"strength": 0.5}, headers=_auth(A_TOKEN)
            ) as r:
                assert r.status == 502 and "does not answer" in (await r.json())["error"]
            assert await wait_for(lambda: a.service.streams.get("cam1").stats.snapshot()["frames_processed"] > 10, 30)

    asyncio.run(scenario())


def test_a_viewer_watches_the_other_nodes_stream_through_this_one_without_its_token(
    tmp_path: Path, clips: Path, node_b: Node
) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    config = _config_a(tmp_path, clips, node_b)

    async def scenario() -> None:
        async with live_server(config) as a, aiohttp.ClientSession() as http:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            headers = {**_auth(A_VIEWER), "Content-Type": "application/sdp"}
            async with http.post(
                f"{a.url}/api/stage/b/whep/cam2?view=processed", data=pc.localDescription.sdp, headers=headers
            ) as r:
                answer = await r.text()
                assert r.status == 201, answer
                location = r.headers["Location"]
            assert location.startswith("/api/stage/b/whep/cam2/")
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            track = pc.getReceivers()[0].track
            frames = [await asyncio.wait_for(track.recv(), 40) for _ in range(5)]
            assert frames[-1].width > 0
            async with http.get(f"{node_b.url}/api/streams/cam2", headers=_auth(B_TOKEN)) as r:
                assert (await r.json())["stats"]["viewers"]["processed"] == 1
            async with http.delete(a.url + location, headers=_auth(A_VIEWER)) as r:
                assert r.status == 200, await r.text()
            await pc.close()
            deadline = time.monotonic() + 30
            while True:
                async with http.get(f"{node_b.url}/api/streams/cam2", headers=_auth(B_TOKEN)) as r:
                    if (await r.json())["stats"]["viewers"]["processed"] == 0:
                        break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)

    asyncio.run(scenario())
