"""Start-up without torch (issue 17): `stageswap serve` and `stageswap process` on the CPU path never import torch.

Importing torch costs about 2.5 s of CPU per process; the suite starts a dozen servers and many `stageswap`
runs as subprocesses, and a production restart pays it too. Torch is for the torch stages, learned models
on the GPU, training and `--device cuda`; everything else must load without it. Each check runs in a fresh
interpreter (this one has long imported torch) and lists the torch modules it ended up with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# What `stageswap serve` does up to serving (streamer/commands/serve.py, run): the parser, every flag
# checked and the device resolved (the CUDA probe: `--device auto` on a CPU-only torch build), the server
# imported, the ring chosen, the models loaded once; then one frame of a clip through the processor, as a
# stream's worker would; and `stageswap process`'s own module.
_SERVE_PATH = """
import json, sys
import cv2
from streamer.__main__ import build_parser
from streamer.commands.serve import build_config
from engines.runtime.select import cpu_only_torch

data_dir, models_dir, clip = sys.argv[1:4]
device = "auto" if cpu_only_torch() else "cpu"  # a CUDA build must ask torch whether it sees a GPU
args = build_parser().parse_args(["serve", "--port", "0", "--data-dir", data_dir, "--device", device])
config = build_config(args)
from streamer.api.server import serve
from streamer.live.ring_choice import ring_device
from engines.processor import FaceProcessor, ProcessorConfig
import streamer.commands.process

where, _ = ring_device(config.device, args.device)
processor = FaceProcessor.from_models(models_dir, ProcessorConfig(device=config.device))
ok, frame = cv2.VideoCapture(clip).read()
assert ok, clip
result = processor.process(frame, 0.0)
print(json.dumps({
    "device": config.device,
    "ring": where,
    "faces": len(result.faces),
    "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
}))
"""


def test_serve_and_a_processed_frame_on_the_cpu_do_not_import_torch(
    tmp_path: Path, models_dir: Path, clips: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", _SERVE_PATH, str(tmp_path), str(models_dir), str(clips / "d3.mp4")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["device"] == "cpu" and got["ring"] == "cpu"
    assert got["faces"] == 1  # the frame really went through the face stages
    assert got["torch"] == [], f"the CPU start-up path imported torch: {got['torch'][:5]}"
