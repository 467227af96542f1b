"""Faults injected into the recorder's file writer (tests only): a disk that stalls each write, or is full.

The recorder's behaviour under them is real (its queue fills, it drops and alarms, it stops with an error);
only the disk is simulated, so the alarm and the error paths can be driven deterministically on any machine.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from streamer.record.encoding import FileEncoder, WriteFailed


class WriterFaults:
    """Installed over ``FileEncoder.write``; change ``stall_s`` / ``disk_full`` while a recording runs."""

    def __init__(self) -> None:
        self.stall_s = 0.0
        self.disk_full = False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_write = FileEncoder.write
        faults = self

        def write(encoder: FileEncoder, image: np.ndarray, pts: int) -> None:
            if faults.disk_full:  # what FileEncoder raises when the OS answers ENOSPC
                raise WriteFailed(f"{encoder.path}: writing failed: the disk is full", disk_full=True)
            time.sleep(faults.stall_s)
            real_write(encoder, image, pts)

        monkeypatch.setattr(FileEncoder, "write", write)
