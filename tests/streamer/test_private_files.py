"""What `stageswap serve` writes outside its data directory (issue 18): nothing.

The probe found onnxruntime writing under ``~/.cache`` (its telemetry's device id and event store, in
``Microsoft/DeveloperTools/.onnxruntime``) and OpenCV re-creating a 0666 temp file in ``/tmp`` for each
``.hdr`` upload. Here a real server runs in its own process with an empty HOME and its own TMPDIR, enrolls
an identity from a JPEG and from a Radiance HDR photo over HTTP (the learned models loaded and run), and
stops; then HOME and TMPDIR are still empty, and nothing it wrote can be written by others.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import REPO


def _multipart(fields: dict[str, str], filename: str, photo: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + photo
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_serve_writes_nothing_outside_its_data_directory(tmp_path: Path, faces: Path, models_dir: Path) -> None:
    home, tmp, data = tmp_path / "home", tmp_path / "tmp", tmp_path / "data"
    home.mkdir()
    tmp.mkdir()
    face = cv2.imread(str(faces / "obama.jpg"))
    hdr_path = tmp_path / "obama.hdr"
    assert cv2.imwrite(str(hdr_path), face.astype(np.float32) / 255.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ORT_", "OPENCV_"))}
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONPATH=str(REPO), STAGESWAP_MODELS=str(models_dir))
    server = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--port", "0", "--processor", "passthrough"]
        + ["--data-dir", str(data), "--models", str(models_dir)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert server.stdout is not None
        url = ""
        deadline = time.monotonic() + 120
        while not url and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            output.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            url = found.group(1) if found else ""
        assert url, "".join(output)
        for name, filename, photo in (
            ("jpeg", "obama.jpg", (faces / "obama.jpg").read_bytes()),
            ("hdr", "obama.hdr", hdr_path.read_bytes()),
        ):
            body, content_type = _multipart({"name": name, "allow_unverified": "true"}, filename, photo)
            request = urllib.request.Request(
                f"{url}/api/identities", data=body, method="POST", headers={"Content-Type": content_type}
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                assert response.status == 201, response.read()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert (data / "identities" / "jpeg").is_dir() and (data / "identities" / "hdr").is_dir()
    assert _files(home) == [], "written under HOME"
    assert _files(tmp) == [], "left in TMPDIR"
    writable = [p for p in data.rglob("*") if not p.is_symlink() and p.stat().st_mode & stat.S_IWOTH]
    assert writable == [], "others may write these"
