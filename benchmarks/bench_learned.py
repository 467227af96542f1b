"""What the learned-swap plumbing costs per face, against the mesh swap and tracking alone in the same run.

    python benchmarks/bench_learned.py [--clip s18.mp4] [--frames 120] [--repeat 2]
                                       [--swap-models NAME ... --data-dir DIR]

No real inswapper or DFM weights are available, so the models are generated (``tests/onnx_models.py``) with
the real signatures and next to no compute: an inswapper that returns its target, DFMs at 224 and 512 px
that return their input. The ``swap`` stage then measures what stageswap adds around a model — the mesh
geometry for the blend mask, the aligned crop, the model's input and output conversion, the paste back
into the face window — and ``model ms`` the model call itself (a real model adds its own inference time:
tens of ms on a CPU, a few on a GPU with a TensorRT plan). Rounds alternate the settings so that load from
other processes hits all alike. Decode and encode are excluded.

``--swap-models`` adds real models registered in ``--data-dir`` (a DFM trained with ``stageswap train``) to
the rounds: their ``model ms`` is then the model's own inference, and ``model cpu ms`` the CPU time it took
(all threads; on a shared machine the wall figures grow with the load, the CPU time much less; ``total cpu
ms`` is the same for the whole frame).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")


def _frames(path: Path, count: int) -> list[tuple[np.ndarray, float]]:
    from streamer.record.media import VideoReader

    out = []
    with VideoReader(path) as reader:
        for frame in reader.frames():
            out.append((frame.image, frame.time_s))
            if len(out) >= count:
                break
    return out


class _TimedSession:
    """Wraps a model session to time its ``run`` calls (the model's own cost, apart from the plumbing)."""

    def __init__(self, session, times: list[float], cpu_times: list[float]) -> None:  # type: ignore[no-untyped-def]
        self._session, self._times, self._cpu_times = session, times, cpu_times
        self.runtime = session.runtime
        self.inputs, self.outputs = session.inputs, session.outputs

    def run(self, feeds):  # type: ignore[no-untyped-def]
        t0, c0 = time.perf_counter(), time.process_time()
        out = self._session.run(feeds)
        self._times.append((time.perf_counter() - t0) * 1000.0)
        self._cpu_times.append((time.process_time() - c0) * 1000.0)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="s18.mp4", help="a clip in the shared clips (default: s18.mp4, 1280x720)")
    ap.add_argument("--identity", default="s1.jpg", help="an identity photo in the shared faces")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--models", default=str(SHARED / "models"))
    ap.add_argument(
        "--swap-models", nargs="+", default=[], metavar="NAME", help="real swap models registered in --data-dir"
    )
    ap.add_argument("--data-dir", type=Path, help="the data directory the --swap-models are registered in")
    args = ap.parse_args()
    if args.swap_models and args.data_dir is None:
        ap.error("--swap-models needs --data-dir (where the models are registered)")

    from engines.compose.watermark import WatermarkConfig
    from engines.identity.recognition import embed_identity
    from engines.identity.store import IdentityStore
    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.settings import ProcessSettings
    from engines.swap.user_models import UserModelStore
    from tests import onnx_models as om

    frames = _frames(SHARED / "data" / "clips" / args.clip, args.frames)
    h, w = frames[0][0].shape[:2]
    photo = SHARED / "data" / "faces" / args.identity
    with tempfile.TemporaryDirectory(prefix="stageswap-bench-") as tmp:
        data = Path(tmp)
        store = UserModelStore(data)
        store.add(om.arcface(data / "arc.onnx"), name="arc")
        store.add(om.identity_inswapper(data / "insw.onnx", om.random_emap()), name="inswapper")
        store.add(om.dfm(data / "d224.dfm", 224), name="dfm224", unverified=True)  # DFMs: consent or the flag
        store.add(om.dfm(data / "d512.dfm", 512), name="dfm512", unverified=True)
        ids = IdentityStore(data / "identities", args.models)
        ids.enroll("bench", [photo], face="largest")
        embed_identity(store, ids.root, "bench", [photo])
        runs = {
            "tracking only": ProcessSettings(relight=False),
            "mesh swap (relight match)": ProcessSettings(identity="bench"),
            "inswapper 128": ProcessSettings(identity="bench", swap_model="inswapper"),
            "dfm 224": ProcessSettings(swap_model="dfm224"),
            "dfm 512": ProcessSettings(swap_model="dfm512"),
        }
        trained = UserModelStore(args.data_dir) if args.data_dir is not None else None
        for name in args.swap_models:
            assert trained is not None
            entry = trained.get(name)  # an unknown name fails here, before the rounds
            runs[f"{name} ({entry.kind}, trained)"] = ProcessSettings(swap_model=name)
        stages: dict[str, dict[str, list[float]]] = {name: {} for name in runs}
        for _ in range(args.repeat):
            for name, settings in runs.items():
                config = ProcessorConfig(watermark=WatermarkConfig(enabled=False))
                models_of = trained if trained is not None and name.endswith(", trained)") else store
                processor = FaceProcessor.from_models(args.models, config, ids, models_of)
                model_ms: list[float] = []
                model_cpu_ms: list[float] = []
                for i, (image, t) in enumerate(frames):
                    t0, c0 = time.perf_counter(), time.process_time()
                    result = processor.process(image, t, settings)
                    total_ms = (time.perf_counter() - t0) * 1000.0
                    total_cpu_ms = (time.process_time() - c0) * 1000.0
                    if i == 0 and processor.swap.model is not None:  # wrap the loaded model's session
                        swapper = processor.swap.model
                        swapper.session = _TimedSession(swapper.session, model_ms, model_cpu_ms)  # type: ignore[attr-defined]
                    if i < 10 or result.failed_stage is not None:
                        continue  # warm-up
                    for stage, value in result.stage_ms.items():
                        stages[name].setdefault(stage, []).append(value)
                    stages[name].setdefault("total", []).append(total_ms)
                    stages[name].setdefault("total cpu ms", []).append(total_cpu_ms)
                if model_ms:
                    stages[name].setdefault("model ms", []).extend(model_ms[10:])
                    stages[name].setdefault("model cpu ms", []).extend(model_cpu_ms[10:])

    print(f"clip {args.clip} {w}x{h}, {len(frames)} frames x {args.repeat} rounds (first 10 of each: warm-up)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    for name in runs:
        print(f"\n{name}")
        print(f"  {'stage':<12} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
        for stage, values in stages[name].items():
            a = np.asarray(values)
            print(f"  {stage:<12} {np.percentile(a, 50):8.2f} {np.percentile(a, 99):8.2f} {a.size:6d}")


if __name__ == "__main__":
    main()
