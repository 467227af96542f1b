"""The README's "Publish from OBS / FFmpeg / a browser / an encoder" command lines, run as they are written.

Only the file (``take.mp4`` → the shared ``d10.mp4``), the host and the ports are put in. The ``openssl`` line runs
as it is. There is no FFmpeg 8 command here (Debian's is 5.1, without the WHIP muxer), so the ``ffmpeg ... -f
whip`` line is played by ``tests.ffmpeg_publish --command``: PyAV's FFmpeg 8.1 with the line's input, encoders,
options, muxer, certificate and URL (an option it does not know fails the test). ``stageswap serve`` runs as
its own process with the README's arguments; the RTMP ``ffmpeg`` line runs with the ``ffmpeg`` command where
one is installed (any FFmpeg has the FLV muxer), else like the WHIP line. OBS is not run (the README says why).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from benchmarks.bench_latency import ServerProcess
from streamer.config import ServeConfig
from streamer.live.worker import PassthroughProcessor
from tests.conftest import REPO
from tests.ffmpeg_publish import parse_command
from tests.live_helpers import Viewer, live_server, view, wait_for

SECTION = "### Publish from OBS / FFmpeg / a browser / an encoder"


def readme_commands() -> list[str]:
    """Every command line in the section's ``sh`` blocks, continuation lines joined."""
    text = (REPO / "README.md").read_text()
    assert SECTION in text, f"README has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n### ", 1)[0]
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def readme_command(start: str, containing: str = "") -> str:
    found = [line for line in readme_commands() if line.startswith(start) and containing in line]
    assert len(found) == 1, f"README: expected one command starting {start!r} with {containing!r}, found {found}"
    return found[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _publisher_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_every_command_line_of_the_section_is_one_these_tests_run() -> None:
    """A line added to the section without a test here fails: the README's lines stay tested ones."""
    kinds = []
    for line in readme_commands():
        words = shlex.split(line, comments=True)
        kinds.append(" ".join(words[:2]) if words[0] == "stageswap" else words[0])
        if words[0] == "ffmpeg":
            kinds[-1] += " " + parse_command(line).fmt  # every ffmpeg line is one parse_command can play
    assert kinds == ["openssl", "ffmpeg whip", "stageswap serve", "ffmpeg flv", "obs"], kinds


def test_the_readme_certificate_line_makes_a_p256_certificate_and_key(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command here")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    done = subprocess.run(readme_command("openssl"), shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    public = x509.load_pem_x509_certificate((tmp_path / "whip.pem").read_bytes()).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    private = serialization.load_pem_private_key((tmp_path / "whip.key").read_bytes(), password=None)
    assert private.public_key() == public


def _heard(viewer: Viewer) -> tuple[float, int]:
    """Seconds of sound received, and how many of its 20 ms frames are not silence."""
    return viewer.audio_samples / 48000, sum(p > 1000 for p in viewer.audio_peaks)


@pytest.mark.slow  # make test-slow; FFmpeg WHIP and RTMP publishing are in the default suite (test_publishers.py)
def test_the_readme_ffmpeg_whip_line_publishes_picture_and_sound(tmp_path: Path, clips: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command here (the README's certificate line)")
    subprocess.run(readme_command("openssl"), shell=True, cwd=tmp_path, check=True, capture_output=True)
    config = ServeConfig(data_dir=tmp_path / "data", ingest_timeout_s=5.0)

    async def scenario() -> None:
        async with live_server(config, make_processor=PassthroughProcessor) as server, aiohttp.ClientSession() as http:
            line = readme_command("ffmpeg", "-f whip").replace("take.mp4", str(clips / "d10.mp4"))
            line = line.replace("http://127.0.0.1:8080", server.url)
            cmd = [sys.executable, "-m", "tests.ffmpeg_publish", "--command", line, "--seconds", "8"]
            publisher = await asyncio.create_subprocess_exec(
                *cmd, cwd=tmp_path, env=_publisher_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            try:
                stream_up = await wait_for(lambda: server.service.streams.find("cam") is not None, 45)
                assert stream_up, "FFmpeg's WHIP publish never started the stream"
                viewer = await view(http, server.url, "cam", audio=True)
                out, err = await asyncio.wait_for(publisher.communicate(), 90)  # 8 s of clip, paced
            finally:
                if publisher.returncode is None:
                    publisher.kill()
            assert publisher.returncode == 0, (out.decode(), err.decode()[-2000:])
            await asyncio.sleep(0.5)
            heard_s, loud = _heard(viewer)
            # Counts a busy machine cannot break: FFmpeg's picture and its speech (Opus) reached a WHEP viewer.
            assert len(viewer.times) >= 20 and heard_s >= 1.0 and loud >= 10, (len(viewer.times), heard_s, loud)
            await viewer.close()

    asyncio.run(scenario())


@pytest.mark.slow  # make test-slow; FFmpeg WHIP and RTMP publishing are in the default suite (test_publishers.py)
def test_the_readme_rtmp_lines_serve_and_publish_picture_and_sound(tmp_path: Path, clips: Path) -> None:
    """``stageswap serve --input cam=rtmp://0.0.0.0:PORT/...`` as a process, then the README's ``ffmpeg -f flv``."""
    port = _free_port()
    serve = shlex.split(readme_command("stageswap serve", "rtmp://").replace(":1935/", f":{port}/"))
    assert serve[:2] == ["stageswap", "serve"], serve
    server = ServerProcess.start("passthrough", tmp_path, None, extra_args=serve[2:])
    try:
        line = readme_command("ffmpeg", "-f flv").replace("take.mp4", str(clips / "d10.mp4"))
        line = line.replace(":1935/", f":{port}/")
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is not None:  # the line itself, with whatever FFmpeg is installed
            cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", *shlex.split(line)[1:]]
        else:
            cmd = [sys.executable, "-m", "tests.ffmpeg_publish", "--command", line, "--seconds", "8"]

        async def scenario() -> None:
            async with aiohttp.ClientSession() as http:
                viewer = await view(http, server.url.rstrip("/"), "cam", audio=True)  # the input waits for RTMP
                publisher = await asyncio.create_subprocess_exec(
                    *cmd, cwd=tmp_path, env=_publisher_env(), stdout=asyncio.subprocess.PIPE, stderr=subprocess.PIPE
                )
                try:
                    out, err = await asyncio.wait_for(publisher.communicate(), 60)
                finally:
                    if publisher.returncode is None:
                        publisher.kill()
                assert publisher.returncode == 0, (cmd, out.decode(), err.decode()[-2000:])
                await asyncio.sleep(0.5)
                async with http.get(f"{server.url}api/streams/cam") as r:
                    stream = await r.json()
                heard_s, loud = _heard(viewer)
                assert stream["source"]["kind"] == "rtmp", stream["source"]
                assert len(viewer.times) >= 20 and heard_s >= 1.0 and loud >= 10, (len(viewer.times), heard_s, loud)
                await viewer.close()

        asyncio.run(scenario())
    finally:
        server.stop()
