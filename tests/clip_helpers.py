"""Lighter copies of the shared clips for tests that drive a page, an API or a command rather than measure
the frame path: the same picture and sound, at a lower frame rate or cut short, so the full pipeline (and a
WebRTC encoder and decoder, or a browser) runs on the frames the assertion needs and no more."""

from __future__ import annotations

import subprocess
from pathlib import Path


def lighter_clip(clip: Path, out_dir: Path, *, fps: int | None = None, seconds: float | None = None) -> Path:
    """``clip`` re-encoded (H.264, CRF 18, its sound copied) at ``fps`` frames a second and/or only its first
    ``seconds``; same size. The copy is made once per folder and name."""
    parts = [clip.stem, *([f"{fps}fps"] if fps else []), *([f"{seconds:g}s"] if seconds else [])]
    out = out_dir / f"{'-'.join(parts)}.mp4"
    if out.exists():
        return out
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(clip)]
    if seconds:
        cmd += ["-t", f"{seconds:g}"]
    if fps:
        cmd += ["-vf", f"fps={fps}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy"]
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([*cmd, str(out)], check=True)
    return out
