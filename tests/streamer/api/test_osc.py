"""OSC control on loopback with python-osc's own client: a message changes the stream's identity (the same
path as PATCH: validated, audited, pushed), starts and stops a recording; without the operator token, or
with the viewer token, nothing changes; bad messages are answered with a reason and the endpoint goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from engines.errors import InputError
from streamer.api import osc
from streamer.api import recording as api_recording
from streamer.api import routes as api
from streamer.api.osc import translate
from streamer.api.server import create_app, make_runner
from streamer.config import InputSpec, ServeConfig
from streamer.live import webrtc

TOKEN = "stage-secret-1"
VIEWER = "viewer-only-2"


@asynccontextmanager
async def osc_server(data: Path, clip: Path) -> AsyncIterator[tuple[str, int, web.Application]]:
    config = ServeConfig(
        data_dir=data,
        processor="passthrough",
        inputs=(InputSpec.parse(f"cam1={clip}"),),
        token=TOKEN,
        viewer_token=VIEWER,
        osc_port=0,
        max_streams=2,
    )
    groups = (webrtc.register, api.register, api_recording.configured(min_free_bytes=0), osc.register)
    app = create_app(config, route_groups=groups)
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = osc.bound_port(app)
    assert port is not None
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", port, app
    finally:
        await runner.cleanup()


async def send(client: SimpleUDPClient, address: str, *args: Any) -> OscMessage:
    """Send one message and wait for its answer (``/stageswap/reply`` or ``/stageswap/error``)."""
    client.send_message(address, list(args))
    data = await asyncio.to_thread(client.receive, 10.0)
    assert data, f"no answer to {address}"
    return OscMessage(data)


@pytest.fixture()
def enrolled(tmp_path: Path, faces: Path, models_dir: Path) -> Path:
    from engines.identity.store import IdentityStore
    from streamer.governance.consent import enroll_with_consent

    data = tmp_path / "data"
    store = IdentityStore(data / "identities", models_dir)
    enroll_with_consent(store, "s1", [faces / "s1.jpg"], None, allow_unverified=True)
    return data


def test_osc_changes_identity_and_records_only_with_the_operator_token(enrolled: Path, clips: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario() -> None:
        async with osc_server(enrolled, clips / "d3.mp4") as (base, port, _app), aiohttp.ClientSession() as http:
            client = SimpleUDPClient("127.0.0.1", port)

            async def stream() -> dict[str, Any]:
                async with http.get(f"{base}/api/streams/cam1", headers=auth) as r:
                    assert r.status == 200
                    return dict(await r.json())

            # Refused: no token, a wrong one, the viewer's. Nothing changes, nothing records.
            for args in (("s1",), ("nope", "s1"), (VIEWER, "s1")):
                answer = await send(client, "/stageswap/cam1/identity", *args)
                assert answer.address == "/stageswap/error" and "operator token" in answer.params[1]
            answer = await send(client, "/stageswap/cam1/record", "start")
            assert answer.address == "/stageswap/error"
            assert (await stream())["settings"]["identity"] is None
            async with http.get(f"{base}/api/streams/cam1/recording", headers=auth) as r:
                assert r.status == 404

            # With the token: the identity changes (the stream JSON and the audit log say so) ...
            answer = await send(client, "/stageswap/cam1/identity", TOKEN, "s1")
            assert answer.address == "/stageswap/reply", answer.params
            assert json.loads(answer.params[1])["settings"]["identity"] == "s1"
            assert (await stream())["settings"]["identity"] == "s1"
            # ... the key light moves (OSC's direction also selects the direction mode), a toggle as 0/1 ...
            answer = await send(client, "/stageswap/cam1/relight/direction", TOKEN, 1.0, 0.0, 1.0)
            assert answer.address == "/stageswap/reply", answer.params
            answer = await send(client, "/stageswap/cam1/keep_eyes", TOKEN, 0)
            assert answer.address == "/stageswap/reply", answer.params
            settings = (await stream())["settings"]
            assert settings["relight_target"]["mode"] == "direction" and settings["keep_eyes"] is False
            assert settings["relight_target"]["direction"] == pytest.approx([0.7071068, 0.0, 0.7071068])
            # ... and the settings' own validation answers a bad value, as PATCH would.
            answer = await send(client, "/stageswap/cam1/strength", TOKEN, 3.0)
            assert answer.address == "/stageswap/error" and "between 0 and 1" in answer.params[1]
            answer = await send(client, "/stageswap/cam1/identity", TOKEN, "nobody")
            assert answer.address == "/stageswap/error" and "unknown identity" in answer.params[1]

            # A recording starts and stops.
            options = json.dumps({"codec": "h264"})
            answer = await send(client, "/stageswap/cam1/record", TOKEN, "start", options)
            assert answer.address == "/stageswap/reply", answer.params
            rec_id = json.loads(answer.params[1])["id"]
            async with http.get(f"{base}/api/streams/cam1/recording", headers=auth) as r:
                assert r.status == 200 and (await r.json())["id"] == rec_id
            for _ in range(600):  # some frames in the file (a fixed second held none on a starved stream), <= 60 s
                await asyncio.sleep(0.1)
                async with http.get(f"{base}/api/streams/cam1/recording", headers=auth) as r:
                    if (await r.json())["frames_written"].get("processed", 0) >= 5:
                        break
            answer = await send(client, "/stageswap/cam1/record", TOKEN, "stop")
            assert answer.address == "/stageswap/reply", answer.params
            assert json.loads(answer.params[1])["frames_written"]["processed"] > 0

            # Garbage is answered and the endpoint keeps serving.
            client._sock.sendto(b"not osc at all", ("127.0.0.1", port))
            data = await asyncio.to_thread(client.receive, 10.0)
            assert OscMessage(data).address == "/stageswap/error"
            answer = await send(client, "/stageswap/cam1/swap", TOKEN, False)
            assert answer.address == "/stageswap/reply"
            client._sock.close()

    asyncio.run(scenario())
    events = [json.loads(line) for line in (enrolled / "audit" / "audit.jsonl").read_text().splitlines()]
    swaps = [e for e in events if e["event"].startswith("swap.")]
    assert [e["event"] for e in swaps] == ["swap.started", "swap.stopped"], swaps
    assert swaps[0]["data"]["identity"] == "s1"


def test_translation_mirrors_the_patch_body() -> None:
    assert translate("/stageswap/cam1/identity", ["none"]).message == {
        "type": "settings",
        "stream": "cam1",
        "settings": {"identity": None},
    }
    assert translate("/stageswap/cam1/relight", [1.0]).message["settings"] == {"relight": True}
    assert translate("/stageswap/cam1/relight/intensity", [2]).message["settings"] == {
        "relight_target": {"intensity": 2}
    }
    body = {"strength": 0.5, "relight_target": {"mode": "match"}}
    assert translate("/stageswap/cam1/settings", [json.dumps(body)]).message["settings"] == body
    for address, args in (
        ("/other/cam1/identity", ["x"]),
        ("/stageswap/cam1", ["x"]),
        ("/stageswap/cam1/identity", []),
        ("/stageswap/cam1/record", ["pause"]),
        ("/stageswap/cam1/settings", ["{not json"]),
        ("/stageswap/cam1/a/b/c", [1]),
    ):
        with pytest.raises(InputError):
            translate(address, args)


def test_osc_off_the_loopback_needs_a_token() -> None:
    with pytest.raises(InputError, match="--osc-host 0.0.0.0 is reachable"):
        ServeConfig(osc_port=9000, osc_host="0.0.0.0")
    with pytest.raises(InputError, match="--osc-port"):
        ServeConfig(osc_port=70000)
    assert ServeConfig(osc_port=9000, osc_host="0.0.0.0", token="t").osc_host == "0.0.0.0"


def test_serve_flags_for_the_stage(tmp_path: Path) -> None:
    from streamer.__main__ import build_parser
    from streamer.commands.serve import build_config

    argv = ["serve", "--processor", "passthrough", "--data-dir", str(tmp_path)]
    stage = ["--ndi", "--ndi-extra-ips", "10.0.0.5, 10.0.0.6", "--osc-port", "9000"]
    config = build_config(build_parser().parse_args([*argv, *stage]))
    assert config.initial_settings.ndi.processed and not config.initial_settings.ndi.source
    assert config.ndi_extra_ips == ("10.0.0.5", "10.0.0.6")
    assert (config.osc_port, config.osc_host) == (9000, "127.0.0.1")
    with pytest.raises(InputError, match="--osc-host 0.0.0.0 is reachable"):
        build_config(build_parser().parse_args([*argv, "--osc-port", "9000", "--osc-host", "0.0.0.0"]))
    with pytest.raises(InputError, match="ndi:// needs a source name"):
        build_config(build_parser().parse_args([*argv, "--input", "cam=ndi://"]))
