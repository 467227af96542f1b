"""The audit log matches what the stream did under concurrent changes (issue 18, defect 4): the probe's
twenty rounds of two concurrent PATCHes (identity A / identity B) left ``swap.started A, swap.started B,
swap.stopped B`` — a start with no stop — in 20 of 20 rounds. Here the same rounds, unforced, through the
real server (and mixed with WebSocket settings messages, the other control path): replaying the log's swap
events gives, after every round, exactly the identity the stream reports; no start without a stop before it.
tests/streamer/test_plan.py forces the interleaving itself; this holds the probe's scenario."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from streamer.config import InputSpec, ServeConfig
from streamer.governance.audit import audit_path
from tests.live_helpers import live_server, wait_for
from tests.streamer.test_identity_in_use import enrolled  # noqa: F401  (alice and bob enrolled)


def _replay(data: Path) -> str | None:
    """Who the log says ``cam`` swaps in, checking that every start follows a stop and every stop a start."""
    active: str | None = None
    for line in audit_path(data).read_text().splitlines():
        entry = json.loads(line)
        if not entry["event"].startswith("swap.") or entry["data"].get("stream") != "cam":
            continue
        who = entry["data"]["identity"]
        if entry["event"] == "swap.started":
            assert active is None, f"swap.started {who} while {active} was never stopped"
            active = who
        else:
            assert active == who, f"swap.stopped {who} while {active} was swapped in"
            active = None
    return active


def test_twenty_rounds_of_concurrent_changes_leave_a_log_that_replays_to_the_stream(
    enrolled: Path,  # noqa: F811
    tmp_path: Path,
    clips: Path,
    models_dir: Path,
) -> None:
    data = tmp_path / "data"
    shutil.copytree(enrolled, data)
    config = ServeConfig(
        port=0,
        data_dir=data,
        models_dir=models_dir,
        processor="passthrough",
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
        control_rate_per_s=1000.0,  # forty changes in a burst: the rate limit has its own tests
        control_burst=1000,
    )

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            assert await wait_for(lambda: srv.service.streams.find("cam") is not None, 40)
            async with http.ws_connect(f"{srv.url}/ws") as ws:

                async def patch(identity: str) -> int:
                    async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": identity}) as r:
                        return r.status

                async def message(identity: str, n: int) -> Any:
                    await ws.send_json(
                        {"type": "settings", "id": n, "stream": "cam", "settings": {"identity": identity}}
                    )
                    while True:
                        reply = json.loads((await ws.receive(timeout=30)).data)
                        if reply.get("id") == n:
                            return reply

                for round_ in range(20):
                    first, second = ("alice", "bob") if round_ % 2 else ("bob", "alice")
                    if round_ % 4 < 2:
                        assert await asyncio.gather(patch(first), patch(second)) == [200, 200]
                    else:  # one over HTTP, one over the WebSocket
                        status, reply = await asyncio.gather(patch(first), message(second, round_))
                        assert status == 200 and reply["type"] == "reply", reply
                    async with http.get(f"{srv.url}/api/streams/cam") as r:
                        stream = await r.json()
                    assert stream["settings"]["identity"] in (first, second)
                    assert _replay(data) == stream["settings"]["identity"], round_

    asyncio.run(scenario())
