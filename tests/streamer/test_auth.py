"""Access control and HTTPS (issue 8): operator and viewer tokens on every route, the bind rule, token files,
the self-signed certificate, and tokens never written to a log."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from engines.errors import InputError
from streamer.api.auth import RefusalLog, required_role
from streamer.api.openapi import describe
from streamer.api.tls import certificate_names, fingerprint, self_signed
from streamer.config import InputSpec, ServeConfig, is_loopback
from tests.live_helpers import live_server, wait_for

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "op-7f3a9c1e5b2d4f60a8e1"
VIEWER = "view-2b8d4e6f1a3c5e7d9f0b"
SAMPLE = {
    "stream": "cam",
    "name": "ada",
    "session": "abcdef123456",
    "id": "cam-20250101T000000.000Z",
    "node": "local",  # this server on its stage page
    "view": "processed",  # a recording's file
}


def _config(tmp_path: Path, clips: Path, **kw: Any) -> ServeConfig:
    base: dict[str, Any] = {
        "port": 0,
        "data_dir": tmp_path / "data",
        "inputs": (InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
        "processor": "passthrough",
        "max_streams": 2,
        "token": OPERATOR,
        "viewer_token": VIEWER,
        "control_burst": 1000,  # this test sends hundreds of refused requests; the rate limit has its own test
    }
    base.update(kw)
    return ServeConfig(**base)


def _operations() -> list[tuple[str, str]]:
    """Every (METHOD, concrete path) the API describes, path parameters filled with plausible values."""
    ops = []
    for template, item in describe()["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)
        ops += [(method.upper(), path) for method in item if method != "parameters"]
    return ops


async def _offer(direction: str) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return str(sdp)


async def _request(http: aiohttp.ClientSession, method: str, url: str, token: str | None, **kw: Any) -> int:
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, url, headers=headers, **kw) as r:
        await r.read()
        return r.status


def _body(method: str, path: str, offers: dict[str, str], photo: bytes) -> dict[str, Any]:
    """A well-formed body for the operation, so only the token decides the answer."""
    if path.startswith("/whip/") and method == "POST":
        return {"data": offers["sendonly"], "headers": {"Content-Type": "application/sdp"}}
    if "/whep/" in path and method == "POST":  # WHEP, and WHEP relayed by the stage page
        return {"data": offers["recvonly"], "headers": {"Content-Type": "application/sdp"}}
    if path == "/api/identities" and method == "POST":
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("name", "ada")
        form.add_field("allow_unverified", "true")
        form.add_field("photo", photo, filename="ada.jpg", content_type="image/jpeg")
        return {"data": form}
    if method == "PATCH" and path.startswith("/api/"):
        return {"json": {"strength": 0.25}}
    if method == "PUT":
        return {"json": {"consent_by": "Ada", "production": "Pilot", "valid_until": "2099-01-01"}}
    if method == "POST":
        return {"json": {}}
    return {}


def test_every_route_needs_the_right_token_and_a_refused_request_does_nothing(
    tmp_path: Path, clips: Path, faces: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    photo = (faces / "obama.jpg").read_bytes()
    ops = _operations()
    assert len(ops) >= 20 and ("PATCH", "/api/streams/cam") in ops and ("POST", "/whip/cam") in ops

    async def scenario() -> None:
        offers = {d: await _offer(d) for d in ("sendonly", "recvonly")}
        async with live_server(_config(tmp_path, clips)) as srv, aiohttp.ClientSession() as http:
            service = srv.service
            assert await wait_for(lambda: service.streams.get("cam").stats.snapshot()["frames_processed"] > 3, 30)
            before = service.streams.get("cam").settings
            # No token, a wrong one, a token in the wrong place, the viewer token where it may not go: 401/403.
            for method, path in ops:
                public = required_role(method, path) is None
                for token in (None, "wrong-token", OPERATOR + "x", OPERATOR[:-1], ""):
                    status = await _request(http, method, srv.url + path, token, **_body(method, path, offers, photo))
                    assert (status != 401) == public, (method, path, token, status)
                if path != "/ws":  # the query parameter is for browsers' WebSockets only
                    status = await _request(http, method, f"{srv.url}{path}?access_token={OPERATOR}", None)
                    assert (status != 401) == public, (method, path, "query token", status)
                status = await _request(http, method, srv.url + path, VIEWER, **_body(method, path, offers, photo))
                if required_role(method, path) == "operator":
                    assert status == 403, (method, path, "viewer", status)
                else:
                    assert status not in (401, 403), (method, path, "viewer", status)
            # Nothing refused did anything: the settings, streams, peers, identities and recordings are as before.
            assert service.streams.get("cam").settings == before
            assert [s.name for s in service.streams] == ["cam"]
            assert service.peers is not None and all(s.kind == "whep" for s in service.peers.sessions())
            assert not (tmp_path / "data" / "identities" / "ada").exists()
            assert not list((tmp_path / "data" / "recordings").glob("*.mp4"))
            assert "identity" not in _audit_text(tmp_path) and "recording" not in _audit_text(tmp_path)
            for session in service.peers.sessions():
                await service.peers.close(session, "test")
            # The operator token opens everything.
            statuses = {}
            for method, path in ops:
                status = await _request(http, method, srv.url + path, OPERATOR, **_body(method, path, offers, photo))
                assert status not in (401, 403), (method, path, status)
                statuses[method, path] = status
            assert statuses["PATCH", "/api/streams/cam"] == 200
            assert statuses["PATCH", "/api/stage/local/streams/cam"] == 200  # the stage page, this node
            assert statuses["POST", "/api/identities"] == 201 and statuses["DELETE", "/api/identities/ada"] == 200
            assert statuses["POST", "/api/streams/cam/recording"] == 201
            assert statuses["DELETE", "/api/streams/cam/recording"] == 200
            assert statuses["POST", "/whep/cam"] == 201 and statuses["POST", "/whip/cam"] == 409  # an --input stream
            for session in service.peers.sessions():
                await service.peers.close(session, "test")

    asyncio.run(scenario())
    text = caplog.text
    assert re.search(r"401 \w+ /\S+ from 127\.0\.0\.1: (no|wrong) token", text)  # refusals are logged...
    assert text.count("401 ") + text.count("403 ") < 40  # ...at a bounded rate (hundreds were refused here)...
    assert OPERATOR not in text and VIEWER not in text  # ...without the token
    assert OPERATOR[:-1] not in text  # nor a near miss


def test_refusals_are_logged_at_a_bounded_rate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamer.api.auth")
    refused = RefusalLog(rate_per_s=1.0, burst=10)
    for i in range(25):
        refused("401 GET /api/streams from %s: wrong token", f"10.0.0.{i}")
    assert len(caplog.records) == 10  # a burst, then one a second
    time.sleep(1.1)
    refused("401 GET /api/streams from %s: wrong token", "10.0.0.99")
    assert caplog.records[-1].getMessage() == (
        "401 GET /api/streams from 10.0.0.99: wrong token (15 more refusals not logged)"
    )


def test_the_viewer_token_watches_but_cannot_control(tmp_path: Path, clips: Path) -> None:
    async def scenario() -> None:
        async with live_server(_config(tmp_path, clips)) as srv, aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{srv.url}/ws?access_token={VIEWER}") as ws:
                hello = await ws.receive_json(timeout=20)
                assert hello["type"] == "hello" and hello["role"] == "viewer"
                stats = await ws.receive_json(timeout=20)
                assert stats["type"] == "stats" and "cam" in stats["streams"]
                await ws.send_json({"type": "settings", "stream": "cam", "settings": {"strength": 0.1}, "id": 1})
                await ws.send_json({"type": "recording", "action": "start", "stream": "cam", "id": 2})
                await ws.send_json({"type": "streams", "id": 3})
                replies: dict[int, dict[str, Any]] = {}
                while len(replies) < 3:
                    msg = await ws.receive_json(timeout=20)
                    if msg["type"] in ("reply", "error"):
                        replies[msg["id"]] = msg
                assert replies[1]["type"] == "error" and "operator token" in replies[1]["error"]
                assert replies[2]["type"] == "error" and "operator token" in replies[2]["error"]
                assert replies[3]["type"] == "reply" and "cam" in replies[3]["result"]["streams"]
            assert srv.service.streams.get("cam").settings.strength == 1.0
            assert srv.service.streams.get("cam").fanout.encoder_stats() == []
            async with http.ws_connect(f"{srv.url}/ws?access_token={OPERATOR}") as ws:
                assert (await ws.receive_json(timeout=20))["role"] == "operator"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{srv.url}/ws?access_token=nope")
            assert refused.value.status == 401

    asyncio.run(scenario())


def test_without_a_token_only_loopback_is_served_unless_insecure() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert is_loopback(host)
        ServeConfig(host=host)
    for host in ("0.0.0.0", "::", "192.168.1.20", "stage-server.local", "10.0.0.1"):
        assert not is_loopback(host)
        with pytest.raises(InputError, match="reachable from the network"):
            ServeConfig(host=host)
        ServeConfig(host=host, token="a-long-enough-token")
        ServeConfig(host=host, insecure=True)
    with pytest.raises(InputError, match="needs --token"):
        ServeConfig(viewer_token="v")
    with pytest.raises(InputError, match="must differ"):
        ServeConfig(token="same", viewer_token="same")
    with pytest.raises(InputError, match="without spaces"):
        ServeConfig(token="two words")
    assert OPERATOR not in repr(ServeConfig(token=OPERATOR, viewer_token=VIEWER))


def test_self_signed_certificate_is_made_once_and_renewed_when_needed(tmp_path: Path) -> None:
    first = self_signed(tmp_path, "127.0.0.1")
    assert first.created and first.cert.is_file() and first.key.is_file()
    assert stat.S_IMODE(first.key.stat().st_mode) == 0o600
    assert "localhost" in first.names and "127.0.0.1" in first.names and "::1" in first.names
    again = self_signed(tmp_path, "127.0.0.1")
    assert not again.created and again.fingerprint == first.fingerprint == fingerprint(first.cert)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", first.fingerprint)
    # Renewed: close to expiry, damaged, or not covering an address the server now listens on.
    soon = self_signed(tmp_path, "127.0.0.1", now=dt.datetime.now(dt.UTC) + dt.timedelta(days=350))
    assert soon.created and soon.fingerprint != first.fingerprint
    first.cert.write_text("not a certificate")
    assert self_signed(tmp_path, "127.0.0.1").created
    wider = self_signed(tmp_path, "192.0.2.77")
    assert wider.created and "192.0.2.77" in wider.names
    dns, ips = certificate_names("0.0.0.0")
    assert "localhost" in dns and "127.0.0.1" in ips


def _audit_text(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "data" / "audit").glob("*") if p.is_file())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamer", "-v", "serve", "--processor", "passthrough", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_serve_on_the_lan_with_token_files_and_a_self_signed_certificate(tmp_path: Path, clips: Path) -> None:
    """The on-set setup: --host 0.0.0.0, tokens from files, --self-signed. HTTPS works with the printed
    fingerprint, tokens are enforced, and even at -v (debug logs from every library) no token is printed."""
    op_file, view_file = tmp_path / "operator.token", tmp_path / "viewer.token"
    op_file.write_text(OPERATOR + "\n")
    view_file.write_text(VIEWER + "\n")
    op_file.chmod(0o600)
    view_file.chmod(0o644)  # readable by others: accepted with a warning
    port = _free_port()
    proc = _serve(
        *("--host", "0.0.0.0", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        *("--token-file", str(op_file), "--viewer-token-file", str(view_file), "--self-signed"),
        *("--input", f"cam={clips / 'd3.mp4'}"),
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while not any("fingerprint" in line for line in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        banner = "".join(lines)
        assert f"open https://127.0.0.1:{port}/" in banner, banner + (proc.stderr.read() if proc.poll() else "")  # type: ignore[union-attr]
        printed = re.search(r"SHA-256 fingerprint ([0-9A-F:]{95})", banner)
        assert printed is not None, banner
        cert = tmp_path / "data" / "tls" / "self-signed-cert.pem"
        ctx = ssl.create_default_context(cafile=str(cert))

        async def check() -> str:
            async with aiohttp.ClientSession() as http:
                base = f"https://localhost:{port}"
                async with http.get(f"{base}/api/streams", ssl=ctx) as r:
                    assert r.status == 401
                async with http.get(f"{base}/api/streams", ssl=ctx, headers={"Authorization": f"Bearer {VIEWER}"}) as r:
                    assert r.status == 200
                async with http.patch(
                    f"{base}/api/streams/cam",
                    json={"strength": 0.5},
                    ssl=ctx,
                    headers={"Authorization": f"Bearer {VIEWER}"},
                ) as r:
                    assert r.status == 403
                async with http.patch(
                    f"{base}/api/streams/cam",
                    json={"strength": 0.5},
                    ssl=ctx,
                    headers={"Authorization": f"Bearer {OPERATOR}"},
                ) as r:
                    assert r.status == 200
                async with http.ws_connect(f"wss://localhost:{port}/ws?access_token={OPERATOR}", ssl=ctx) as ws:
                    assert (await ws.receive_json(timeout=20))["type"] == "hello"
                with pytest.raises(aiohttp.ClientConnectorCertificateError):  # an unknown certificate is refused
                    await http.get(f"{base}/")
            raw = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", port))
            der = ssl.PEM_cert_to_DER_cert(raw)
            return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())

        served = asyncio.run(check())
        assert served == printed.group(1) == fingerprint(cert)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        out, err = proc.communicate()
        everything = banner + out + err
        assert rc == 0, err[-2000:]
        assert "can be read by other users" in err  # the viewer token file is world-readable
        assert "DEBUG" in err and "401 GET /api/streams" in err  # debug logging was on and saw the refusal
        assert OPERATOR not in everything and VIEWER not in everything
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--host", "0.0.0.0", "--self-signed"], "reachable from the network"),
        (["--viewer-token", "v-token"], "needs --token"),
        (["--token", "a", "--token-file", "x"], "not both"),
        (["--token-file", "/nonexistent/token"], "cannot read it"),
        (["--token-file", "__EMPTY__"], "is empty"),
        (["--self-signed", "--cert", "c.pem", "--key", "k.pem"], "not both"),
        (["--max-frame-size", "huge"], "--max-frame-size must look like"),
        (["--max-viewers", "0"], "--max-viewers"),
        (["--control-rate", "0"], "must be positive"),
    ],
)
def test_serve_refuses_unsafe_or_bad_security_flags(args: list[str], reason: str, tmp_path: Path) -> None:
    from streamer.__main__ import build_parser
    from streamer.commands.serve import build_config

    empty = tmp_path / "empty.token"
    empty.write_text("\n\n")
    argv = ["serve", "--processor", "passthrough", "--data-dir", str(tmp_path)]
    parsed = build_parser().parse_args([*argv, *(str(empty) if a == "__EMPTY__" else a for a in args)])
    with pytest.raises(InputError, match=re.escape(reason)):
        build_config(parsed)
    assert not (tmp_path / "tls").exists()  # nothing was written before the flags were checked


def test_serve_says_why_it_will_not_listen_on_the_network_in_one_line(tmp_path: Path) -> None:
    proc = _serve("--data-dir", str(tmp_path), "--host", "0.0.0.0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.startswith("stageswap: error: --host 0.0.0.0 is reachable"), err
    assert "--token" in err and "--insecure" in err and "Traceback" not in err


def test_a_token_file_token_works_like_the_flag(tmp_path: Path) -> None:
    from streamer.commands.serve import read_token

    path = tmp_path / "t"
    path.write_text("  secret-from-file \nsecond line ignored\n")
    assert read_token(path, "--token-file") == "secret-from-file"
