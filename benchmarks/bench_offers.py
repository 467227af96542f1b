"""Hostile WHEP offers against a running server: what a GET, a watching viewer and the memory go through
(issue 18).

    python benchmarks/bench_offers.py [--source DIR ...] [--offers 15]

For each source tree (default: this one; give an older checkout to measure it in the same run) it starts
``python -m streamer serve --input cam=d3.mp4 --processor passthrough`` in a child process, a WHEP viewer
of ``cam`` in another child process (each frame's arrival time), and a prober in this process that GETs
``/api/streams/cam`` every 50 ms. Then, phase by phase:

1. quiet: 5 s, nothing else (the baseline of the same run);
2. hostile: ``--offers`` WHEP offers of 580 m-lines in one BUNDLE group (the probe's, ~56 KB) at once, then 5 s;
3. burst: ``--offers`` real viewer offers (video + audio) at once, each answered with a session that never
   connects (closed by the connect watchdog after 10 s), then 15 s.

Per phase: the offers' answers and how long they took, GET latency (median, max), the viewer's longest gap
between frames, and the server's resident memory after it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from math import nan
from pathlib import Path

import aiohttp
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hostile_offers import many_mlines_offer, real_offer  # noqa: E402

OFFER_TIMEOUT_S = 120.0
SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")


def rss_mb(pid: int) -> float:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    assert match
    return int(match.group(1)) / 1024


class Prober(threading.Thread):
    """GET every 50 ms; (time, latency) of each answer (a GET that times out after 30 s counts as 30 s)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        http = requests.Session()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                http.get(self.url, timeout=30).raise_for_status()
            except requests.RequestException:  # a stalled server: the wait counts, as long as it was
                http = requests.Session()
            self.samples.append((started, time.monotonic() - started))
            self.stop.wait(max(0.0, 0.05 - (time.monotonic() - started)))

    def between(self, since: float, until: float) -> list[float]:
        return [latency for t, latency in self.samples if since <= t <= until]


class ViewerProcess:
    """A WHEP viewer in a child process; the arrival time of each frame it receives."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--viewer", url],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.times: list[float] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("frame "):
                self.times.append(float(line.split()[1]))

    def max_gap(self, since: float, until: float) -> float:
        t = [x for x in self.times if since <= x <= until]
        return max((b - a for a, b in zip(t, t[1:], strict=False)), default=float("inf"))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def post_offers(url: str, offer: str, count: int) -> tuple[str, float]:
    """POST ``count`` offers at once; how many got which answer (``timeout``: none within 120 s)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=OFFER_TIMEOUT_S)) as http:

        async def post() -> int | str:
            try:
                async with http.post(url, data=offer, headers={"Content-Type": "application/sdp"}) as r:
                    await r.read()
                    return r.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__

        started = time.monotonic()
        statuses = await asyncio.gather(*(post() for _ in range(count)))
        took = time.monotonic() - started
    counts = {s: statuses.count(s) for s in sorted(set(statuses), key=str)}
    return ", ".join(f"{n}x {s}" for s, n in counts.items()), took


def run_source(source: Path, offers: int, hostile: str, viewer_offer: str) -> None:
    data = Path(tempfile.mkdtemp(prefix="bench-offers-"))
    env = {**os.environ, "PYTHONPATH": str(source)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--port", "0", "--processor", "passthrough"]
        + ["--input", f"cam={SHARED / 'data/clips/d3.mp4'}", "--data-dir", str(data)],
        cwd=source,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    url = ""
    while not url:
        line = server.stdout.readline()
        if not line:
            raise SystemExit(f"the server from {source} did not start")
        found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        url = found.group(1) if found else ""
    threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # type: ignore[union-attr]
    viewer = ViewerProcess(url)
    prober = Prober(f"{url}/api/streams/cam")
    try:
        deadline = time.monotonic() + 60
        while len(viewer.times) < 30 and time.monotonic() < deadline:
            time.sleep(0.2)
        prober.start()
        print(f"\n== {source} (server {url}); load {os.getloadavg()[0]:.1f}")
        print(
            f"{'phase':8} {'offers answered':24} {'took':>7} {'GET p50':>8} {'GET max':>8} {'frame gap':>10} {'RSS':>8}"
        )
        phases = [
            ("quiet", None, 5.0),
            ("hostile", hostile, 5.0),
            ("burst", viewer_offer, 15.0),
        ]
        for name, offer, settle_s in phases:
            started = time.monotonic()
            answered, took = ("-", 0.0)
            if offer is not None:
                answered, took = asyncio.run(post_offers(f"{url}/whep/cam", offer, offers))
            time.sleep(settle_s)
            until = time.monotonic()
            latencies = prober.between(started, until)
            print(
                f"{name:8} {answered:24} {took:6.2f}s {statistics.median(latencies or [nan]) * 1000:6.0f}ms "
                f"{max(latencies or [nan]) * 1000:6.0f}ms {viewer.max_gap(started, until):9.2f}s "
                f"{rss_mb(server.pid):6.0f}MB"
            )
    finally:
        prober.stop.set()
        viewer.close()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:  # a server still busy with the offers
            server.kill()
            server.wait()


async def _view(url: str) -> None:
    from tests.live_helpers import view

    async with aiohttp.ClientSession() as http:
        viewer = await view(http, url, "cam")
        seen = 0
        while True:
            await asyncio.sleep(0.02)
            for t in viewer.times[seen:]:
                print(f"frame {t:.4f}", flush=True)
            seen = len(viewer.times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, action="append", help="source tree to run (default: this one)")
    parser.add_argument("--offers", type=int, default=15, help="offers sent at once per phase (default %(default)s)")
    parser.add_argument("--viewer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.viewer:
        asyncio.run(_view(args.viewer))
        return
    base = real_offer("recvonly", audio=True)
    hostile = many_mlines_offer(real_offer("recvonly"), 580)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; hostile offer {len(hostile)} bytes, 580 m-lines")
    for source in args.source or [REPO]:
        run_source(source.resolve(), args.offers, hostile, base)


if __name__ == "__main__":
    main()
