"""Start-up cost: the CPU a `stageswap serve` takes to get to "ready" and stop, and the CPU of importing what
the test workers and the commands import (issue 17: the suite starts a dozen servers and many `stageswap`
runs as subprocesses, and four xdist workers; every second of CPU each of them spends loading is paid
again and again on a 2-core machine).

Each figure is the child's own user+sys CPU (``os.wait4``'s rusage), so other work on the machine changes
the wall time but hardly the CPU. ``--repo`` points at another checkout (e.g. a worktree of main) to
measure a baseline in the same run; ``--python`` is the interpreter (default: this one). Whether torch
was loaded is read from the child's memory map at "ready" (``libtorch_cpu``/``libtorch_cuda`` mapped).

A `stageswap process` of a short clip (the first 12 frames of d0, made once with PyAV) is measured too, and
with ``--collect`` the collection of the default suite, what every xdist worker does before its first test
(about 15 s of CPU a run). Needs $STAGESWAP_MODELS (or ../shared/models) and $STAGESWAP_SHARED.

    nice -n 10 .venv/bin/python benchmarks/bench_startup.py --runs 5
    nice -n 10 .venv/bin/python benchmarks/bench_startup.py --runs 3 --collect --repo /tmp/main-checkout --repo .
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

IMPORTS = {
    "streamer.__main__ (the parser)": "import streamer.__main__",
    "streamer.api.server (serve)": "import streamer.api.server",
    "engines.processor": "import engines.processor",
    "torch (alone)": "import torch",
}


def _torch_mapped(pid: int) -> bool:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "libtorch_cpu" in maps or "libtorch_cuda" in maps


def _env(repo: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(repo)}


def _cpu_s(usage: os.struct_rusage) -> float:  # type: ignore[name-defined]
    return float(usage.ru_utime + usage.ru_stime)


def serve_once(python: str, repo: Path, extra: list[str], timeout_s: float = 120.0) -> dict[str, object]:
    """Start ``python -m streamer serve`` (as the tests do), wait for its "open http" line, stop it with
    SIGTERM; the child's CPU and wall seconds to ready and to exit, and whether torch was mapped."""
    with tempfile.TemporaryDirectory() as data:
        cmd = [python, "-m", "streamer", "serve", "--port", "0", "--data-dir", data, *extra]
        started = time.monotonic()
        pipe = subprocess.PIPE
        proc = subprocess.Popen(cmd, cwd=repo, env=_env(repo), stdout=pipe, stderr=pipe, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready_s = time.monotonic() - started
        if "open http" not in line:
            proc.kill()
            raise RuntimeError(f"serve did not start: {line!r} {proc.communicate()[1][-2000:]}")
        torch = _torch_mapped(proc.pid)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("serve did not stop on SIGTERM")
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.communicate()
        return {"cpu_s": _cpu_s(usage), "ready_wall_s": ready_s, "torch": torch}


def child_cpu_s(cmd: list[str], repo: Path, env: dict[str, str] | None = None) -> float:
    """Run ``cmd`` in ``repo`` to its end (output discarded); its CPU seconds (RuntimeError if it failed)."""
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=repo, env={**_env(repo), **(env or {})}, stdout=quiet, stderr=quiet)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit {proc.returncode}")
    return _cpu_s(usage)


def short_clip(shared: Path, out: Path, frames: int = 12) -> Path:
    """The first ``frames`` frames of d0 (H.264), the input of the `stageswap process` measurement."""
    import av

    with av.open(str(shared / "data" / "clips" / "d0.mp4")) as src, av.open(str(out), "w") as dst:
        video = src.streams.video[0]
        stream = dst.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for i, frame in enumerate(src.decode(video)):
            if i >= frames:
                break
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs of each measurement (default 5)")
    ap.add_argument("--repo", type=Path, action="append", help="checkout(s) to measure (default: this one)")
    ap.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    ap.add_argument("--collect", action="store_true", help="also the default suite's collection (one process)")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    args = ap.parse_args()
    repos = args.repo or [REPO]
    shared = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    clip = short_clip(shared, work / "d0-12.mp4")
    process = [args.python, "-m", "streamer", "process", "-i", str(clip), "-o", str(work / "out.mp4")]
    process += ["--no-progress", "--no-sign"]
    collect = [args.python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    collect += ["-m", "not slow and not gpu"]
    servers = {
        "serve --processor full": [],
        "serve --processor passthrough": ["--processor", "passthrough"],
    }
    results: dict[str, dict[str, list[float]]] = {}
    print(f"load average at start: {os.getloadavg()[0]:.1f}; {args.runs} runs each, interleaved over checkouts")
    for run in range(args.runs):
        for repo in repos:
            rows = results.setdefault(str(repo), {})
            for name, extra in servers.items():
                got = serve_once(args.python, repo, extra)
                rows.setdefault(f"{name}: CPU s", []).append(float(got["cpu_s"]))  # type: ignore[arg-type]
                rows.setdefault(f"{name}: torch loaded", []).append(float(bool(got["torch"])))
            data_home = {"XDG_DATA_HOME": str(work / "xdg-data")}  # its audit log, not the user's
            rows.setdefault("process (12 frames of d0): CPU s", []).append(child_cpu_s(process, repo, data_home))
            for name, statement in IMPORTS.items():
                cpu = child_cpu_s([args.python, "-c", statement], repo)
                rows.setdefault(f"import {name}: CPU s", []).append(cpu)
            if args.collect:
                rows.setdefault("collecting the default suite: CPU s", []).append(child_cpu_s(collect, repo))
        print(f"run {run + 1}/{args.runs} done (load {os.getloadavg()[0]:.1f})", flush=True)
    for repo, rows in results.items():
        print(f"\n{repo}")
        for name, values in rows.items():
            each = ", ".join(f"{v:.2f}" for v in values)
            print(f"  {name:<70} median {statistics.median(values):.2f}  ({each})")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
