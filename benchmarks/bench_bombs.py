"""Decompression bombs against a running server: the memory each upload costs it (issue 18).

    python benchmarks/bench_bombs.py [--repeat 2]

Starts ``stageswap serve --processor passthrough`` in a child process with a fresh data folder, uploads each
bomb of ``tests/bombs.py`` as an identity photo (a damaged 105 Mpx PNG, a 110 Mpx Radiance HDR, a 105 Mpx
deflated TIFF; all under 10 MB) and reports the answer, its time and the server's peak memory growth:
the server's peak resident set (VmHWM) is reset before each upload (``/proc/PID/clear_refs``, 5) and read
after it, against its resident set just before. The baseline in the same run is what decoding each file
costs (OpenCV's ``imdecode``/``imread`` in a fresh child process, peak growth over its own start): what the
server paid before the decode limits held (it decoded them whole before refusing them).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.bombs import BOMBS  # noqa: E402

DECODE = """
import resource, sys, cv2, numpy as np
data = open(sys.argv[1], 'rb').read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1].endswith('.hdr'):
    image = cv2.imread(sys.argv[1], cv2.IMREAD_COLOR)
else:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(None if image is None else image.shape, (after - before) / 1024)
"""


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match, field
    return int(match.group(1))


def decode_baseline(path: Path) -> tuple[str, float]:
    env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": str(1 << 30)}  # OpenCV's own default
    done = subprocess.run([sys.executable, "-c", DECODE, str(path)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return "failed: " + done.stderr.strip().splitlines()[-1][:80], float("nan")
    shape, growth = done.stdout.split(")")[0] + ")", float(done.stdout.rsplit(" ", 1)[1])
    return f"decoded {shape}", growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="uploads of each bomb (default %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for name, make in BOMBS.items():
            path = Path(folder) / ("bomb.hdr" if "HDR" in name else "bomb.img" + str(len(files)))
            path.write_bytes(make())
            files[name] = path
        server = subprocess.Popen(
            [str(REPO / ".venv/bin/stageswap"), "serve", "--port", "0", "--processor", "passthrough"]
            + ["--data-dir", str(Path(folder) / "data")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = ""
            assert server.stdout is not None
            deadline = time.monotonic() + 120
            while not url and time.monotonic() < deadline:
                line = server.stdout.readline()
                found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
                url = found.group(1) if found else ""
            assert url, "the server did not start"
            requests.get(f"{url}/api/streams", timeout=30)
            print(f"machine: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; server {url}")
            print(
                f"{'bomb':14} {'file':>9} {'answer':>6} {'time':>7} {'server peak growth':>19}   baseline: decoding it"
            )
            for name, path in files.items():
                data = path.read_bytes()
                for _ in range(args.repeat):
                    Path(f"/proc/{server.pid}/clear_refs").write_text("5")
                    before = status_kb(server.pid, "VmRSS")
                    started = time.monotonic()
                    form = {"name": (None, "bomb"), "allow_unverified": (None, "true"), "photo": ("p", data)}
                    r = requests.post(f"{url}/api/identities", files=form, timeout=120)
                    took = time.monotonic() - started
                    growth_mb = (status_kb(server.pid, "VmHWM") - before) / 1024
                    size = f"{len(data) / 1e3:.0f} KB"
                    print(f"{name:14} {size:>9} {r.status_code:>6} {took * 1000:5.0f}ms {growth_mb:16.1f} MB")
                what, base_mb = decode_baseline(path)
                print(f"{'':14} {'':>9} {'':>6} {'':>7} {'':>19}   {what}: {base_mb:.0f} MB peak growth")
                print(f"{'':14} answer: {r.json().get('error', '')[:110]}")
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)


if __name__ == "__main__":
    main()
