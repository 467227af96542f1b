"""A second stageswap node for the stage tests: a real ``stageswap serve`` process (so it can be killed as a
machine that dies), passthrough, with its own operator token and one ``--input`` clip."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Node:
    url: str
    process: subprocess.Popen[bytes]
    token: str

    def kill(self) -> None:
        """SIGKILL: no goodbye to its peers."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@contextlib.contextmanager
def node_process(folder: Path, name: str, token: str, stream: str, clip: Path) -> Iterator[Node]:
    folder.mkdir(parents=True, exist_ok=True)
    token_file = folder / f"{name}.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    log_path = folder / f"node-{name}.log"
    cmd = [sys.executable, "-m", "streamer", "serve", "--port", "0", "--processor", "passthrough"]
    cmd += ["--token-file", str(token_file), "--data-dir", str(folder / f"data-{name}"), "--node-name", name]
    cmd += ["--input", f"{stream}={clip}"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"open (http://\S+/) in a browser", log_path.read_text(errors="replace"))):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.1)
        yield Node(found.group(1).rstrip("/"), process, token)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
