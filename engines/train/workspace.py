"""Where a model is trained (``DATA/training/NAME/``), what it may be registered with, and who is training.

    checkpoint.pt    weights, optimiser, iteration, random streams (``engines.train.loop``), of a DF/LIAE model
                     or a neural renderer (``kind`` dnr)
    progress.json    the latest progress (the monitor page lists it)
    preview.png      DF/LIAE: actor | reconstruction | swap, and the src person's reconstructions;
                     dnr: the src person | its rendering, and actor | the person rendered there (``--dst``)
    consent.json     the consent the trained-in likeness is registered with (or that it is unverified),
                     decided before training starts, so a finished model is never refused at the end
                     (written and read by the train command: consent is governance, not compute)
    src/, dst/       facesets extracted from clips given to ``stageswap train`` directly
    NAME.dfm         the exported model, once training finishes (registered as swap model NAME);
    NAME.onnx        a neural renderer's (kind dnr)

Presets are the shapes that suit a machine: ``cpu`` is the shape that learned most per CPU-minute of those
measured (0.31 CPU-seconds an iteration; 18 CPU-minutes were not yet enough: BENCHMARKS.md, "Training a
swap model on the CPU"); ``gpu`` and ``gpu-hq`` are for one GPU (minutes to hours).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engines.paths import check_name, inside
from engines.train.netconfig import NetConfig

TRAINING_SUBDIR = "training"
CONSENT_FILE = "consent.json"
"""In the training folder; see ``streamer.commands.train``."""
DEFAULT_LICENCE = "proprietary: trained in-house with stageswap from the production's own footage"
STALE_AFTER_S = 120.0
"""A ``running`` progress file not updated for this long belongs to a training that is no longer running."""


@dataclass(frozen=True)
class Preset:
    net: NetConfig
    batch: int
    description: str


PRESETS: dict[str, Preset] = {
    "cpu": Preset(
        NetConfig("df", 64, 24, 192, 128, 16),
        8,
        "64 px DF, 4.3 M parameters: 0.31 CPU-seconds an iteration; 18 CPU-minutes are not enough",
    ),
    "gpu": Preset(
        NetConfig("df", 128, 64, 256, 512, 64),
        16,
        "128 px DF, 65 M parameters: meant for tens of minutes on one GPU (not yet measured)",
    ),
    "gpu-hq": Preset(
        NetConfig("liae", 256, 64, 256, 256, 64),
        16,
        "256 px LIAE, 127 M parameters: meant for production quality, hours on one GPU (not yet measured)",
    ),
}


class TrainingFolder:
    """The folder of the model ``name`` under ``data_dir``."""

    def __init__(self, data_dir: str | os.PathLike[str], name: str) -> None:
        self.name = check_name(name, "model name")
        self.root = Path(data_dir) / TRAINING_SUBDIR
        self.path = inside(self.root, self.name)

    @property
    def checkpoint(self) -> Path:
        from engines.train.loop import CHECKPOINT_FILE

        return self.path / CHECKPOINT_FILE

    @property
    def dfm(self) -> Path:
        return self.path / f"{self.name}.dfm"

    def faceset_dir(self, side: str) -> Path:
        return self.path / side


def list_trainings(data_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every training's latest progress (``progress.json``), newest first; a ``running`` one whose process
    is gone or silent is reported ``interrupted`` (it can be resumed)."""
    root = Path(data_dir) / TRAINING_SUBDIR
    out: list[dict[str, Any]] = []
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
    now = datetime.now(UTC)
    for folder in folders:
        try:
            obj = json.loads((folder / "progress.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(obj, dict):
            continue
        entry = {k: obj.get(k) for k in _PUBLIC}
        entry["name"] = folder.name
        if entry.get("state") == "running" and _stale(obj, now):
            entry["state"] = "interrupted"
        entry["exported"] = any((folder / f"{folder.name}{ext}").is_file() for ext in (".dfm", ".onnx"))
        out.append(entry)
    out.sort(key=lambda e: str(e.get("updated") or ""), reverse=True)
    return out


_PUBLIC = (
    "state", "iteration", "target_iterations", "loss", "it_per_s", "eta_s", "elapsed_s", "resolution", "arch",
    "kind", "device", "processes", "updated",
)  # fmt: skip


def _stale(obj: dict[str, Any], now: datetime) -> bool:
    try:
        updated = datetime.fromisoformat(str(obj.get("updated")))
    except ValueError:
        return True
    if (now - updated).total_seconds() > STALE_AFTER_S:
        return True
    pid = obj.get("pid")
    if isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False
