"""What choosing who gets swapped costs per face per frame at 720p, the recogniser amortised (issue 22's goal:
<= 1 ms on average on the 2-core development machine).

The two-person clip (``benchmarks/two_people.py``: d3 | d10 side by side, letterboxed to 1280x720) is played
``--rounds`` times; in every round the right-hand performer leaves for ``--away`` frames and comes back, so each
round pays for a new track's recognition as a stage would when people come and go. Each frame is tracked (not
counted), then ``TargetSelector.select`` runs with the rules and is timed in wall and in CPU time of this thread
(the figure that holds on a shared machine). In the same run, as a baseline: the same frames with position rules
only (``largest``: no recogniser) and the tracking itself.

    nice -n 10 python benchmarks/bench_targets.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.two_people import TwoPeople, performer_descriptors, two_people  # noqa: E402
from engines.face.detect import FaceDetector  # noqa: E402
from engines.face.landmarks import FaceMesh  # noqa: E402
from engines.face.tracker import FaceTracker  # noqa: E402
from engines.identity.descriptor import FaceDescriber  # noqa: E402
from engines.identity.performers import Performer, select_descriptors  # noqa: E402
from engines.identity.targets import TargetSelector  # noqa: E402
from engines.runtime import load_model, models  # noqa: E402
from engines.settings import parse_targets  # noqa: E402

SHARED = Path(os.environ.get("STAGESWAP_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="times the clip is played (default 3)")
    ap.add_argument("--frames", type=int, default=350, help="frames per round (the clip has 354)")
    ap.add_argument("--away", type=int, default=45, help="frames the right-hand performer is out each round")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    mdir = SHARED / "models"
    clips = SHARED / "data" / "clips"
    tracker = FaceTracker(
        FaceDetector(load_model(models.resolve("yunet", mdir))), FaceMesh(load_model(models.resolve("facemesh", mdir)))
    )
    describer = FaceDescriber(models.resolve("face_descriptor", mdir))
    performers = {
        name: Performer(name, "", models.FACE_DESCRIPTOR.sha256, select_descriptors(found)[0])
        for name, found in performer_descriptors(clips, tracker, describer).items()
    }
    runs = {
        "performers": parse_targets([{"match": "left", "identity": "a"}, {"match": "right", "identity": "b"}]),
        "largest (baseline)": parse_targets([{"match": "largest", "identity": "a"}]),
    }
    selectors = {k: TargetSelector(describer.describe_many) for k in runs}
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    track_cpu: list[float] = []
    face_frames = 0
    right_ok = right_frames = 0
    tracker.reset()
    start = args.frames // 2 - args.away // 2
    spec = TwoPeople(frames=args.frames, away=(start, start + args.away), hd=True)
    size = None
    for r in range(args.rounds):
        for _, image, t in two_people(clips, spec):
            size = image.shape[:2]
            c0 = time.thread_time()
            faces = tracker.update(image, t + r * 1000.0)
            track_cpu.append((time.thread_time() - c0) * 1000.0)
            face_frames += len(faces)
            for name, rules in runs.items():
                w0, c0 = time.perf_counter(), time.thread_time()
                out = selectors[name].select(image, faces, rules, performers, None)
                cpu[name].append((time.thread_time() - c0) * 1000.0)
                wall[name].append((time.perf_counter() - w0) * 1000.0)
                if name == "performers":
                    for face in faces:
                        if face.box[0] > 640:
                            right_frames += 1
                            right_ok += out[face.id].identity == "b"
        print(f"round {r + 1}/{args.rounds}: {face_frames} face-frames so far", flush=True)
    result: dict[str, object] = {
        "frame": f"{size[1]}x{size[0]}" if size else None,
        "frames": len(track_cpu),
        "face_frames": face_frames,
        "tracking_cpu_ms_per_frame": round(float(np.mean(track_cpu)), 2),
        "right_face_frames_with_its_identity": f"{right_ok}/{right_frames}",
    }
    for name in runs:
        total_cpu, total_wall = float(np.sum(cpu[name])), float(np.sum(wall[name]))
        result[name] = {
            "cpu_ms_per_face_frame": round(total_cpu / max(face_frames, 1), 3),
            "wall_ms_per_face_frame": round(total_wall / max(face_frames, 1), 3),
            "wall_ms_p99_frame": round(float(np.percentile(wall[name], 99)), 1),
            "wall_ms_max_frame": round(float(np.max(wall[name])), 1),
            "descriptors": selectors[name].descriptors_run,
            "descriptor_cpu_ms": round(total_cpu / max(selectors[name].descriptors_run, 1), 1)
            if selectors[name].descriptors_run
            else None,
        }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
