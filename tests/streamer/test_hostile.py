"""Hostile input (issue 8): the HTTP API fuzzed from its OpenAPI description (schemathesis), SDP offers and
WebSocket messages fuzzed (hypothesis), path traversal in every name, decompression bombs, malformed
WebSocket messages. Every answer is a 4xx (or a success), never a 5xx or a crash, and a WHEP viewer
watching meanwhile is served throughout (checked last, over the whole module).

One server for the module runs on a background thread (``ThreadedServer``), so the synchronous fuzzers
send from the test thread while its event loop also serves the viewer. Bounded: a fixed number of
examples per operation, no example database, no shrinking phase (a failure is reported as found).
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import cv2
import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from yarl import URL

from engines.identity import photos
from streamer.api.openapi import describe
from streamer.api.server import create_app
from streamer.config import InputSpec, ServeConfig
from tests.bombs import BOMBS
from tests.clip_helpers import lighter_clip
from tests.hostile_helpers import ThreadedServer, threaded_server
from tests.live_helpers import Viewer, view

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")  # schemathesis'
TOKEN = "fuzz-operator-token-1c9e7a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FUZZ = settings(
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
# Every (method, path) the description has, read at collection; schemathesis builds its schema from the same
# description only when the fuzzing runs (``_operations``: not in each worker that merely collects this file).
DESCRIBED = [(m.upper(), p) for p, item in describe()["paths"].items() for m in item if m != "parameters"]


@functools.cache
def _operations() -> dict[tuple[str, str], Any]:
    """schemathesis' operations of the description, by (method, path)."""
    schemathesis.serializer.alias("application/sdp", "text/plain")  # an SDP offer is text on the wire
    schema = schemathesis.openapi.from_dict(describe())
    return {(op.method.upper(), op.path): op for op in (result.ok() for result in schema.get_all_operations())}


class Fuzzed:
    """The module's server, the viewer watching it, and what the fuzzers saw."""

    def __init__(self, server: ThreadedServer, viewer: Viewer, root: Path) -> None:
        self.server = server
        self.viewer = viewer
        self.root = root
        self.started_s = time.monotonic()
        self.statuses: dict[int, int] = {}

    @property
    def url(self) -> str:
        return self.server.url

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


@pytest.fixture(scope="module")
def fuzzed(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "secret.txt").write_text("outside the data directory")
    config = ServeConfig(
        port=0,
        data_dir=root / "data",
        # The viewer is watched for gaps, not for its frame rate: the clip at 10 fps (a third of the VP8
        # encoding and decoding, all module long).
        inputs=(InputSpec.parse(f"cam={lighter_clip(clips / 'd3.mp4', root, fps=10)}"),),
        processor="passthrough",
        token=TOKEN,
        max_streams=8,
        control_rate_per_s=10_000.0,  # the fuzzers send fast; the rate limit has its own tests
        control_burst=10_000,
        json_max_bytes=16 * 1024,
        upload_max_bytes=4 * 1024 * 1024,
        ingest_timeout_s=5.0,
    )
    with threaded_server(config) as server:

        async def watch() -> tuple[aiohttp.ClientSession, Viewer]:
            http = aiohttp.ClientSession(headers=AUTH)
            return http, await view(http, server.url, "cam")

        http, viewer = server.run(watch())
        deadline = time.monotonic() + 60
        while len(viewer.times) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(viewer.times) >= 10, "the concurrent viewer never got going"
        yield Fuzzed(server, viewer, root)

        async def close() -> None:
            await viewer.close()
            await http.close()

        server.run(close())


# -- the description itself ------------------------------------------------------------------------------


def test_the_openapi_description_names_exactly_the_routes_the_app_has(tmp_path: Path) -> None:
    app = create_app(ServeConfig(data_dir=tmp_path, processor="passthrough"))
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or path in ("/", "/{path}"):  # HEAD mirrors GET; the static client UI
            continue
        routes.add((route.method, path))
    described = {(m.upper(), p) for p, item in describe()["paths"].items() for m in item if m != "parameters"}
    assert routes == described


def test_the_description_is_served_without_a_token(fuzzed: Fuzzed) -> None:
    r = requests.get(f"{fuzzed.url}/api/openapi.json", timeout=10)
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.") and "/whip/{stream}" in r.json()["paths"]
    assert requests.get(f"{fuzzed.url}/api/streams", timeout=10).status_code == 401


# -- schemathesis over every operation -------------------------------------------------------------------


def test_the_fuzzer_sees_every_described_operation() -> None:
    assert sorted(_operations()) == sorted(DESCRIBED)


@pytest.mark.parametrize("described", DESCRIBED, ids=lambda d: f"{d[0]} {d[1]}")
def test_every_operation_answers_generated_requests_with_documented_4xx_never_5xx(
    fuzzed: Fuzzed, described: tuple[str, str]
) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

    operation = _operations()[described]
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    strategies = [operation.as_strategy(mode) for mode in modes]
    if "{stream}" in operation.path:  # also aim at the live stream, so requests get past the 404
        strategies += [operation.as_strategy(mode, path_parameters={"stream": "cam"}) for mode in modes]
    seen: dict[int, int] = {}

    @settings(FUZZ, max_examples=25)
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        response = case.call(base_url=fuzzed.url, headers=AUTH, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        fuzzed.count(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text)
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance, content_type_conformance])
        if response.status_code == 201 and "Location" in response.headers and operation.path.startswith("/wh"):
            requests.delete(fuzzed.url + response.headers["Location"], headers=AUTH, timeout=10)

    run()
    assert seen and all(status < 500 for status in seen), seen
    assert set(seen) != {401}, "every request was refused at the door: the handlers were not reached"


# -- SDP offers ------------------------------------------------------------------------------------------


def _offer(direction: str) -> str:
    from aiortc import RTCConfiguration, RTCPeerConnection

    async def make() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    return asyncio.run(make())


@st.composite
def _mutated(draw: st.DrawFn, offer: str) -> bytes:
    """A real offer with lines deleted, duplicated, replaced, cut, garbled or reordered."""
    lines = offer.replace("\r\n", "\n").split("\n")
    junk = st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            ["m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102 103", "a=rtpmap:96 VP8/0", "c=IN IP4 ::"]
        ),
        st.sampled_from(["a=fingerprint:sha-256 ZZ", "a=setup:holdconn", "a=ssrc:-1 cname:x", "a=mid:", "b=AS:-5"]),
        st.sampled_from(["a=rtcp-fb:96 nack pli pli pli", "a=extmap:99999 urn:x", "m=audio 0 RTP/AVP 0", "v=1"]),
    )
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        action = draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "truncate", "value", "swap"]))
        if action == "delete" and len(lines) > 1:
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "replace":
            lines[i] = draw(junk)
        elif action == "insert":
            lines.insert(i, draw(junk))
        elif action == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif action == "value" and "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "=" + draw(st.text(max_size=40))
        elif action == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    text = draw(st.sampled_from(["\r\n", "\n"])).join(lines)
    return text.encode("utf-8", errors="surrogatepass") if draw(st.booleans()) else text.encode("utf-8", "replace")


def _sdp_cases(offer: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        _mutated(offer),
        st.text(max_size=300).map(lambda t: ("v=0\r\n" + t).encode("utf-8", "replace")),
        st.binary(max_size=300),
    )


def test_mutated_sdp_offers_get_a_4xx_or_a_working_session(fuzzed: Fuzzed) -> None:
    offers = {"whip": _offer("sendonly"), "whep": _offer("recvonly")}
    seen: dict[int, int] = {}

    @settings(FUZZ, max_examples=100)
    @given(kind=st.sampled_from(["whip", "whep"]), body=st.data())
    def run(kind: str, body: st.DataObject) -> None:
        sdp = body.draw(_sdp_cases(offers[kind]))
        url = f"{fuzzed.url}/{kind}/{'fuzz' if kind == 'whip' else 'cam'}"
        r = requests.post(url, data=sdp, headers={**AUTH, "Content-Type": "application/sdp"}, timeout=30)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        fuzzed.count(r.status_code)
        assert r.status_code == 201 or 400 <= r.status_code < 500, (r.status_code, r.text, sdp[:400])
        if r.status_code == 201:
            assert requests.delete(fuzzed.url + r.headers["Location"], headers=AUTH, timeout=10).status_code == 200
        else:
            assert r.headers["Content-Type"].startswith("application/json") and r.json()["error"]

    run()
    assert seen.get(400, 0) >= 10, seen  # the fuzzer did reach the SDP parser


# -- WebSocket messages ----------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_SETTING_KEYS = ["swap", "identity", "relight", "relight_target", "strength", "morph", "keep_eyes", "debug_overlay"]
_TARGET = st.dictionaries(
    st.sampled_from(["mode", "sh", "direction", "intensity", "colour", "ambient", "hdri", "x"]),
    st.one_of(_JSON, st.sampled_from(["match", "sh", "direction", "hdri", "../../etc/passwd"])),
    max_size=4,
)
_MESSAGES = st.one_of(
    st.text(max_size=200),
    _JSON.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["settings", "streams", "recording", "hello", "stats", ""])},
        optional={
            "stream": st.one_of(st.sampled_from(["cam", "nope", "../cam", "CAM", ""]), _JSON),
            "settings": st.one_of(
                st.dictionaries(st.sampled_from(_SETTING_KEYS), st.one_of(_JSON, _TARGET), max_size=4), _JSON
            ),
            "action": st.one_of(st.sampled_from(["start", "stop", "pause"]), _JSON),
            "options": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "codec": st.sampled_from(["h264", "ffv1", "vp9", ""]),
                        "container": st.sampled_from(["mkv", "mp4", "avi"]),
                        "fps": st.one_of(st.sampled_from(["30000/1001", "0", "1/0", "-5"]), _JSON),
                        "timecode": st.sampled_from(["01:00:00:00", "99:99:99:99", "x"]),
                        "view": st.sampled_from(["both", "source", "thermal"]),
                    },
                ),
                _JSON,
            ),
            "id": _JSON,
        },
    ).map(json.dumps),
)


async def _exchange(ws: aiohttp.ClientWebSocketResponse, text: str, n: int) -> list[dict[str, Any]]:
    """Send ``text``, then a marker; every message the server answered in between."""
    await ws.send_str(text)
    await ws.send_json({"type": "streams", "id": f"marker-{n}"})
    answers = []
    while True:
        msg = await ws.receive(timeout=30)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, text[:300])
        data = json.loads(msg.data)
        if data.get("type") == "reply" and data.get("id") == f"marker-{n}":
            return answers
        if data.get("type") in ("reply", "error"):
            answers.append(data)


def test_fuzzed_websocket_messages_are_answered_and_never_close_the_socket(fuzzed: Fuzzed) -> None:
    server = fuzzed.server

    async def connect() -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
        http = aiohttp.ClientSession(headers=AUTH)
        return http, await http.ws_connect(f"{fuzzed.url}/ws")

    http, ws = server.run(connect())
    kinds: dict[str, int] = {}
    counter = iter(range(10**9))
    try:

        @settings(FUZZ, max_examples=200)
        @given(text=_MESSAGES)
        def run(text: str) -> None:
            answers = server.run(_exchange(ws, text, next(counter)), 60)
            for answer in answers:
                kinds[answer["type"]] = kinds.get(answer["type"], 0) + 1
                assert answer["type"] == "reply" or not answer["error"].startswith("internal error"), (text, answer)

        run()
        assert kinds.get("error", 0) >= 30 and not ws.closed, kinds
    finally:

        async def close() -> None:
            await ws.close()
            async with http.delete(f"{fuzzed.url}/api/streams/cam/recording") as r:  # one the fuzzer started
                assert r.status in (200, 409)
            await http.close()

        server.run(close())


def test_malformed_websocket_messages_get_their_reason(fuzzed: Fuzzed) -> None:
    cases = [
        ("[" * 15_000, "nested too deeply"),
        ('{"type": "settings", "stream": "cam", "settings": ' + "[" * 5_000 + "]" * 5_000 + "}", "nested too deeply"),
        ("{", "not valid JSON"),
        ("null", "JSON object"),
        ('"settings"', "JSON object"),
        ('{"type": null}', "unknown message type"),
        ('{"type": ["settings"]}', "unknown message type"),
        ('{"type": "settings", "stream": ["cam"], "settings": {}}', "needs 'stream'"),
        ('{"type": "settings", "stream": "cam", "settings": {"strength": NaN}}', "NaN is not a JSON value"),
        ('{"type": "settings", "stream": "cam", "settings": {"strength": 1e400}}', "strength"),
        ('{"type": "settings", "stream": "cam", "settings": {"relight_target": {"hdri": "../../x"}}}', "HDRI name"),
        ('{"type": "recording", "action": "start", "stream": "cam", "options": []}', "JSON object"),
        ('{"type": "recording", "action": "start", "stream": "cam", "options": {"fps": "1/0"}}', "fps"),
        ('{"type": "recording", "action": "start", "stream": "../../etc"}', "invalid stream name"),
        ('{"type": "recording", "stream": "cam"}', "needs 'action'"),
        ('{"type": "streams", "id": ' + json.dumps({"deep": [[[[{"x": 1}]]]]}) + "}", ""),
    ]

    async def scenario() -> None:
        async with aiohttp.ClientSession(headers=AUTH) as http, http.ws_connect(f"{fuzzed.url}/ws") as ws:
            for n, (text, reason) in enumerate(cases):
                answers = await _exchange(ws, text, n)
                assert len(answers) == 1, (text[:80], answers)
                answer = answers[0]
                if reason:
                    assert answer["type"] == "error" and reason in answer["error"], (text[:80], answer)
                    assert not answer["error"].startswith("internal error")
                else:
                    assert answer["type"] == "reply"
            await ws.send_bytes(b"\x00\xff" * 10)
            assert "binary" in (await _error(ws))["error"]
            # A message over the size limit closes that socket (1009) and only that one.
            async with http.ws_connect(f"{fuzzed.url}/ws") as other:
                await ws.send_str("x" * (fuzzed.server.config.json_max_bytes + 1))
                msg = await ws.receive(timeout=30)
                while msg.type == aiohttp.WSMsgType.TEXT:
                    msg = await ws.receive(timeout=30)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
                assert ws.close_code == 1009
                assert [a["type"] for a in await _exchange(other, '{"type": "streams"}', 999)] == ["reply"]

    fuzzed.server.run(scenario(), 120)


async def _error(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        data = json.loads((await ws.receive(timeout=30)).data)
        if data["type"] == "error":
            return dict(data)


# -- path traversal in every name ------------------------------------------------------------------------

HOSTILE_NAMES = [
    "..",
    "../secret.txt",
    "..%2fsecret.txt",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "a%2f..%2f..%2fsecret",
    "..%5c..%5csecret",
    "%252e%252e%252f",
    "%00",
    "cam%00.json",
    "%EF%BC%A3%EF%BC%A1%EF%BC%AD",  # fullwidth CAM
    "cam%0a",
    "a" * 65,
    "b" * 300,
    ".hidden",
    "-dash",
    "~root",
    "secret.txt",
    "CON",
]


def _tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if "data" not in p.parts}


def test_path_traversal_in_every_name_is_refused_and_writes_nothing_outside(fuzzed: Fuzzed) -> None:
    before = _tree(fuzzed.root)
    settings_before = fuzzed.server.service.streams.get("cam").settings
    base = fuzzed.url
    offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n"
    sdp = {"Content-Type": "application/sdp"}
    answers: list[tuple[str, str, int]] = []

    async def scenario() -> None:
        async with aiohttp.ClientSession(headers=AUTH) as http:

            async def send(method: str, path: str, **kw: Any) -> None:
                # encoded=True: the path goes out exactly as written (no client-side ../ or %2e normalisation).
                async with http.request(method, URL(base + path, encoded=True), allow_redirects=False, **kw) as r:
                    body = await r.text()
                answers.append((method, path, r.status))
                assert 400 <= r.status < 500, (method, path, r.status, body[:200])

            for name in HOSTILE_NAMES:
                await send("GET", f"/api/streams/{name}")
                await send("PATCH", f"/api/streams/{name}", json={"strength": 0.5})
                await send("POST", f"/api/streams/{name}/recording", json={})
                await send("GET", f"/api/streams/{name}/recording")
                await send("DELETE", f"/api/streams/{name}/recording")
                await send("GET", f"/api/recordings/{name}")
                await send("DELETE", f"/api/identities/{name}")
                await send("PUT", f"/api/identities/{name}/consent", json={"consent_by": "x", "production": "y"})
                await send("POST", f"/whip/{name}", data=offer, headers=sdp)
                await send("POST", f"/whep/{name}", data=offer.replace("sendonly", "recvonly"), headers=sdp)
                await send("DELETE", f"/whip/cam/{name}")
                await send("DELETE", f"/whep/{name}/{name}")
                await send("GET", f"/{name}")
                await send("GET", f"/js/../../{name}")
                plain = unquote(name)
                await send("PATCH", "/api/streams/cam", json={"identity": plain})
                await send("PATCH", "/api/streams/cam", json={"relight_target": {"mode": "hdri", "hdri": plain}})
                await send("POST", "/api/streams/cam/recording", json={"timecode": plain})
                form = aiohttp.FormData(default_to_multipart=True)
                form.add_field("name", plain)
                form.add_field("allow_unverified", "true")
                form.add_field("photo", b"\xff\xd8junk", filename="p.jpg", content_type="image/jpeg")
                await send("POST", "/api/identities", data=form)
            async with http.ws_connect(f"{base}/ws") as ws:
                for n, name in enumerate(HOSTILE_NAMES):
                    plain = unquote(name)
                    for msg in (
                        {"type": "settings", "stream": plain, "settings": {}},
                        {"type": "recording", "action": "start", "stream": plain},
                        {"type": "settings", "stream": "cam", "settings": {"identity": plain}},
                    ):
                        replies = await _exchange(ws, json.dumps(msg), 10_000 + n)
                        assert [a["type"] for a in replies] == ["error"], (msg, replies)

    fuzzed.server.run(scenario(), 180)
    assert len(answers) == 18 * len(HOSTILE_NAMES)
    assert _tree(fuzzed.root) == before  # nothing written, renamed or touched outside the data directory
    data = fuzzed.root / "data"
    assert not [p for p in data.rglob("*") if "secret" in p.name or ".." in p.name]
    assert fuzzed.server.service.streams.get("cam").settings == settings_before


# -- decompression bombs ---------------------------------------------------------------------------------


def _png_bomb(width: int, height: int) -> bytes:
    """A real, valid grey PNG of ``width`` x ``height`` zeros: a few hundred kilobytes that decode to gigabytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    rows_per_piece = max(1, (8 << 20) // len(row))
    parts = [compressor.compress(row * min(rows_per_piece, height - y)) for y in range(0, height, rows_per_piece)]
    idat = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims ``width`` x ``height``."""
    ok, data = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    raw = bytearray(data.tobytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_decompression_bombs_in_identity_uploads_are_refused_unread(fuzzed: Fuzzed, faces: Path) -> None:
    bombs = {
        "png 20000x20000": _png_bomb(20_000, 20_000),  # 400 Mpx: over Pillow's own bomb threshold
        "png 12000x12000": _png_bomb(12_000, 12_000),  # 144 Mpx: over our 100 Mpx upload limit
        "jpeg claiming 65000x65000": _jpeg_claiming(65_000, 65_000),
    }
    for label, data in bombs.items():
        assert len(data) < 1_000_000, (label, len(data))
        rss0, t0 = _rss_mb(), time.monotonic()
        form = {"name": (None, "bomb"), "allow_unverified": (None, "true"), "photo": ("b.png", data)}
        r = requests.post(f"{fuzzed.url}/api/identities", files=form, headers=AUTH, timeout=60)
        assert r.status_code == 413, (label, r.status_code, r.text)
        assert "Mpx" in r.json()["error"] or "bomb" in r.json()["error"], r.json()
        assert time.monotonic() - t0 < 10 and _rss_mb() - rss0 < 300, (label, _rss_mb() - rss0)
    assert not (fuzzed.root / "data" / "identities" / "bomb").exists()


def test_bombs_that_got_past_the_old_header_check_are_refused_before_any_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: a PNG with a bad-checksum text chunk and a Radiance HDR were not identified by Pillow, so
    OpenCV decoded them whole (387 MB -> 2739 MB) before the 100 Mpx refusal. Each is now refused (413)
    with its size, and no decoder is called on it (the memory it would have taken: BENCHMARKS.md, bombs)."""
    decoded: list[str] = []

    def no_decoder(*args: Any) -> None:
        decoded.append("called")
        raise AssertionError("a decoder ran on a bomb")

    monkeypatch.setattr(photos.cv2, "imdecode", no_decoder)
    monkeypatch.setattr(photos.cv2, "imread", no_decoder)
    with threaded_server(ServeConfig(data_dir=tmp_path, processor="passthrough")) as server:  # default limits
        for label, make in BOMBS.items():
            data = make()
            assert len(data) <= 10_000_000, label
            form = {"name": (None, "bomb"), "allow_unverified": (None, "true"), "photo": ("b.img", data)}
            r = requests.post(f"{server.url}/api/identities", files=form, timeout=60)
            assert r.status_code == 413, (label, r.status_code, r.text)
            assert re.search(r"photo 1 is a .* Mpx\), over the 100 Mpx limit", r.json()["error"]), r.text
    assert not decoded
    assert not (tmp_path / "identities" / "bomb").exists()


def test_the_upload_pixel_limit_is_configurable(tmp_path: Path, faces: Path) -> None:
    config = ServeConfig(data_dir=tmp_path, processor="passthrough", upload_max_pixels=1_000_000)
    photo = (faces / "obama.jpg").read_bytes()  # 1137 x 910: just over 1 Mpx
    with threaded_server(config) as server:
        form = {"name": (None, "obama"), "allow_unverified": (None, "true"), "photo": ("o.jpg", io.BytesIO(photo))}
        r = requests.post(f"{server.url}/api/identities", files=form, timeout=60)
    assert r.status_code == 413 and re.search(r"910x1137 \(1.0 Mpx\), over the 1 Mpx limit", r.json()["error"]), r.text


# -- the viewer watching all along -----------------------------------------------------------------------


def test_the_concurrent_viewer_was_served_throughout(fuzzed: Fuzzed) -> None:
    """Checked after every fuzzer above ran: the WHEP viewer of the live stream never went without frames."""
    times = [t for t in fuzzed.viewer.times if t >= fuzzed.started_s]
    assert len(times) > 30, len(times)
    gaps = np.diff([fuzzed.started_s, *times, time.monotonic()])
    # A stream that the fuzzers stopped leaves its viewer without frames from then to the end (a minute of
    # fuzzing); 10 s, not 3: this process runs the fuzzers beside the server, and on a loaded machine (the suite's
    # other workers) their bursts hold the server's loop for seconds.
    assert gaps.max() < 10.0, f"the viewer went {gaps.max():.1f} s without a frame"
    assert fuzzed.viewer.error is None
    assert not any(status >= 500 for status in fuzzed.statuses), fuzzed.statuses
    print("answers to the fuzzers, by status:", dict(sorted(fuzzed.statuses.items())))
