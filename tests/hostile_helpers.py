"""Helpers for the hardening tests: the real app on a background thread, and peers in child processes.

``ThreadedServer`` runs the app on its own event loop in a thread, so that synchronous clients (requests,
schemathesis, hypothesis-driven tests) can hammer it from the test thread while the loop also serves a
concurrent WHEP viewer (``run`` schedules coroutines on the server's loop).

``python -m tests.hostile_helpers publish BASE STREAM CLIP WIDTH HEIGHT [TOKEN]`` is a WHIP publisher in a
child process (prints ``ready``, then one line per 30 frames sent), for tests that must kill a publisher
for real (SIGKILL: no DELETE, no DTLS close, no ICE answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from streamer.api.server import create_app, make_runner
from streamer.config import ServeConfig
from streamer.live.worker import ProcessorFactory
from streamer.service import SERVICE, Service
from tests.live_helpers import ClipTrack, publish

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


class ThreadedServer:
    """The real app on 127.0.0.1 and a free port, served by an event loop on a background thread."""

    def __init__(self, config: ServeConfig, make_processor: ProcessorFactory | None = None) -> None:
        self.config = config
        self._make_processor = make_processor
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-server-loop", daemon=True)
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None
        self.url = ""

    @property
    def service(self) -> Service:
        assert self.app is not None
        return self.app[SERVICE]

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        """Run ``coro`` on the server's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout_s)

    def start(self) -> ThreadedServer:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.app = create_app(self.config, make_processor=self._make_processor)
        self._runner = make_runner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def stop(self) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup(), 60.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def threaded_server(config: ServeConfig, make_processor: ProcessorFactory | None = None) -> Iterator[ThreadedServer]:
    server = ThreadedServer(config, make_processor).start()
    try:
        yield server
    finally:
        server.stop()


def child_publisher(
    base: str, stream: str, clip: Path, size: tuple[int, int], token: str = ""
) -> subprocess.Popen[str]:
    """Start a WHIP publisher in a child process; the caller reads its ``ready`` line."""
    args = [sys.executable, "-m", "tests.hostile_helpers", "publish", base, stream, str(clip), *map(str, size)]
    return subprocess.Popen(
        [*args, token] if token else args,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def _publish_forever(base: str, stream: str, clip: str, width: int, height: int, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http:
        track = ClipTrack(Path(clip), size=(width, height))
        await publish(http, base, stream, track)
        print("ready", flush=True)
        reported = 0
        while True:
            await asyncio.sleep(0.2)
            if track.sent // 30 != reported:
                reported = track.sent // 30
                print(f"sent {track.sent} {time.monotonic():.3f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) in (7, 8) and sys.argv[1] == "publish":
        _, _, base, stream, clip, width, height, *rest = sys.argv
        asyncio.run(_publish_forever(base, stream, clip, int(width), int(height), rest[0] if rest else ""))
    else:
        print("usage: python -m tests.hostile_helpers publish BASE STREAM CLIP WIDTH HEIGHT [TOKEN]", file=sys.stderr)
        sys.exit(2)
