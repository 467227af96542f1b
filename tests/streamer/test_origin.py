"""Cross-origin requests (issue 18): a page on another site, opened in the operator's browser, cannot change
anything on the default (no-token, loopback) server, nor open its WebSocket; a page on a name that resolves
to it (DNS rebinding) cannot reach it at all. Through the real server on a TCP socket, with the headers a
browser sends; tests/streamer/test_browser_origin.py does it with Chromium itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from engines.errors import InputError
from streamer.config import InputSpec, ServeConfig, normalize_origin
from tests.live_helpers import LiveServer, live_server

EVIL = "http://evil.example"
TOKEN = "origin-test-token"
SDP = {"Content-Type": "application/sdp"}


def _config(tmp_path: Path, clips: Path, **overrides: object) -> ServeConfig:
    return ServeConfig(
        port=0,
        data_dir=tmp_path,
        processor="passthrough",
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
        **overrides,  # type: ignore[arg-type]
    )


def _enroll_form(photo: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("name", "intruder")
    form.add_field("allow_unverified", "true")
    form.add_field("photo", photo, filename="face.jpg", content_type="image/jpeg")
    return form


async def _state(srv: LiveServer, http: aiohttp.ClientSession) -> tuple[object, object, object]:
    """What the cross-origin requests would change: the recordings, the identities, cam's settings."""
    out = []
    for path in ("/api/recordings", "/api/identities", "/api/streams/cam"):
        async with http.get(srv.url + path) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
            out.append(body.get("settings") if path.endswith("cam") else body)
    return out[0], out[1], out[2]


async def _ws_status(srv: LiveServer, http: aiohttp.ClientSession, headers: dict[str, str]) -> int:
    try:
        async with http.ws_connect(srv.url + "/ws", headers=headers) as ws:
            await ws.close()
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


def test_cross_origin_changes_and_websockets_are_refused_on_the_no_token_server(
    tmp_path: Path, clips: Path, faces: Path
) -> None:
    photo = (faces / "obama.jpg").read_bytes()

    async def scenario() -> None:
        async with live_server(_config(tmp_path, clips)) as srv, aiohttp.ClientSession() as http:
            before = await _state(srv, http)
            for foreign in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
                attempts = [
                    http.post(f"{srv.url}/api/streams/cam/recording", headers=foreign),  # body-less: a "simple" POST
                    http.post(f"{srv.url}/api/identities", data=_enroll_form(photo), headers=foreign),
                    http.patch(f"{srv.url}/api/streams/cam", json={"relight": False}, headers=foreign),
                    http.delete(f"{srv.url}/api/identities/someone", headers=foreign),
                    http.post(f"{srv.url}/whip/other", data="v=0\r\n", headers={**foreign, **SDP}),
                ]
                for attempt in attempts:
                    async with attempt as r:
                        reason = (await r.json())["error"]
                        assert r.status == 403, (foreign, r.method, r.url, r.status, reason)
                        assert "only this server's own pages" in reason, reason
                assert await _ws_status(srv, http, foreign) == 403, foreign
            assert await _state(srv, http) == before  # nothing was started, enrolled or changed
            # The server's own pages (Origin = the address they were loaded from), and clients that are not
            # browsers (no Origin), still control it; reads are not checked.
            own = {"Origin": srv.url}
            async with http.patch(f"{srv.url}/api/streams/cam", json={"relight": False}, headers=own) as r:
                assert r.status == 200, await r.text()
            async with http.patch(f"{srv.url}/api/streams/cam", json={"relight": True}) as r:
                assert r.status == 200, await r.text()
            async with http.get(f"{srv.url}/api/streams", headers={"Origin": EVIL}) as r:
                assert r.status == 200
            assert await _ws_status(srv, http, own) == 101
            assert await _ws_status(srv, http, {}) == 101
            # localhost names the same server: a page loaded from it is its own.
            port = srv.url.rsplit(":", 1)[1]
            local = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
            async with http.patch(f"{srv.url}/api/streams/cam", json={"relight": True}, headers=local) as r:
                assert r.status == 200, await r.text()

    asyncio.run(scenario())


def test_a_rebound_name_cannot_reach_the_no_token_server_but_can_reach_one_with_a_token(
    tmp_path: Path, clips: Path
) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 is same-origin with itself
    (Origin and Host agree), so only the Host name gives it away."""

    async def scenario() -> None:
        async with live_server(_config(tmp_path / "open", clips)) as srv, aiohttp.ClientSession() as http:
            port = srv.url.rsplit(":", 1)[1]
            rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
            for method, path in (("GET", "/api/streams"), ("GET", "/"), ("PATCH", "/api/streams/cam")):
                async with http.request(method, srv.url + path, headers=rebound, json={"swap": False}) as r:
                    assert r.status == 403, (method, path, r.status)
                    assert "is not a name of this server" in (await r.json())["error"]
            assert await _ws_status(srv, http, rebound) == 403
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"app.localhost:{port}"):
                async with http.get(srv.url + "/api/streams", headers={"Host": host}) as r:
                    assert r.status == 200, host
        # With a token the name does not matter (the page has no token to send); the origin still does.
        config = _config(tmp_path / "token", clips, token=TOKEN)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            port = srv.url.rsplit(":", 1)[1]
            named = {**bearer, "Host": f"stage.example:{port}"}
            async with http.get(srv.url + "/api/streams", headers=named) as r:
                assert r.status == 200
            async with http.patch(
                srv.url + "/api/streams/cam", json={"swap": False}, headers={**named, "Origin": EVIL}
            ) as r:
                assert r.status == 403

    asyncio.run(scenario())


def test_an_allowed_origin_may_control_the_server(tmp_path: Path, clips: Path) -> None:
    panel = "https://panel.example"
    config = _config(tmp_path, clips, allowed_origins=("HTTPS://Panel.example:443/",))
    assert config.allowed_origins == (panel,)

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            patch = {"relight": False}
            async with http.patch(f"{srv.url}/api/streams/cam", json=patch, headers={"Origin": panel}) as r:
                assert r.status == 200, await r.text()
            assert await _ws_status(srv, http, {"Origin": panel}) == 101
            async with http.get(f"{srv.url}/api/streams", headers={"Host": "panel.example"}) as r:
                assert r.status == 200  # its host is a name of this server too
            async with http.patch(f"{srv.url}/api/streams/cam", json={"relight": True}, headers={"Origin": EVIL}) as r:
                assert r.status == 403

    asyncio.run(scenario())


@pytest.mark.parametrize("bad", ["ftp://x.example", "https://x.example/path", "x.example", "https://", "null"])
def test_allow_origin_takes_origins_only(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InputError, match="--allow-origin: .* is not an origin"):
        ServeConfig(data_dir=tmp_path, allowed_origins=(bad,))
    assert normalize_origin("http://[::1]:80") == "http://[::1]"
