"""What each extra WHEP viewer costs the server: encode once per stream and view, packetise per viewer.

    python benchmarks/bench_fanout.py [--size 1280x720] [--viewers 1 4] [--seconds 10]

Starts ``stageswap serve --processor passthrough`` as its own process, publishes a shared clip over WHIP
(aiortc, from this process) and, for each viewer count, connects that many WHEP viewers and measures
over the window: the server process's CPU time (from /proc, so this process's own decoding is not
counted), the frames its encoder produced, and the frames each viewer received. With encoding shared,
the server's CPU grows by packetising and encrypting per viewer, not by encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.live_helpers import ClipTrack, publish, view  # noqa: E402

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _measure(base: str, pid: int, viewers: int, seconds: float, http: aiohttp.ClientSession) -> dict:
    watchers = [await view(http, base, "cam") for _ in range(viewers)]
    await asyncio.sleep(3.0)  # every viewer connected and past its first keyframe
    async with http.get(f"{base}/api/streams/cam") as r:
        before = (await r.json())["stats"]
    cpu0, t0 = _cpu_s(pid), time.monotonic()
    got0 = [len(w.times) for w in watchers]
    await asyncio.sleep(seconds)
    cpu1, t1 = _cpu_s(pid), time.monotonic()
    got1 = [len(w.times) for w in watchers]
    async with http.get(f"{base}/api/streams/cam") as r:
        after = (await r.json())["stats"]
    for w in watchers:
        async with http.delete(base + w.location):
            pass
        await w.close()
    window = t1 - t0
    encoded = sum(e["frames_encoded"] for e in after["encoders"]) - sum(e["frames_encoded"] for e in before["encoders"])
    return {
        "viewers": viewers,
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / window, 1),
        "processed_fps": round((after["frames_processed"] - before["frames_processed"]) / window, 1),
        "encoded_fps": round(encoded / window, 1),
        "encoders": len(after["encoders"]),
        "received_fps_per_viewer": [round((b - a) / window, 1) for a, b in zip(got0, got1, strict=True)],
    }


async def run(args: argparse.Namespace) -> list[dict]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--port", str(port), "--processor", "passthrough",
         "--data-dir", str(Path(args.data_dir))],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "open http://..." once it listens
        base = f"http://127.0.0.1:{port}"
        w, h = (int(v) for v in args.size.split("x"))
        track = ClipTrack(SHARED / "data" / "clips" / args.clip, size=(w, h))
        async with aiohttp.ClientSession() as http:
            pub = await publish(http, base, "cam", track)
            results = [await _measure(base, server.pid, n, args.seconds, http) for n in args.viewers]
            await pub.pc.close()
        track.stop()
        return results
    finally:
        server.terminate()
        server.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clip", default="s18.mp4")
    parser.add_argument("--data-dir", default="/tmp/stageswap-bench-fanout")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"python {platform.python_version()}; {args.size} VP8, passthrough"
    )
    for row in asyncio.run(run(args)):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
