#!/usr/bin/env python3
"""What a swap-model design learns per CPU-minute, and what it costs to train and to run (issue 19).

    python benchmarks/bench_train.py --src FACESET --dst FACESET [--configs df:64:24:192:128:16 ...]
                                     [--cpu-seconds 300] [--eval-every 100] [--identity obama.jpg]

Each config (``arch:resolution:encoder_dims:ae_dims:inter_dims:decoder_dims``) trains from scratch on the
same facesets for the same CPU time (this process's CPU time, so other programs on the machine do not
change the budget, only how long it takes). Every ``--eval-every`` CPU-seconds it swaps 60 faces of the dst
faceset and measures them with the evaluation-only recogniser (``mobilefacenet.onnx``, never used by
training): the mean cosine to ``--identity`` (a photo of the src person that training never sees) and the
share of faces closer to it than to the actor's own face. Evaluation time is not counted in the budget.
Then: CPU-seconds per iteration, iterations per wall second, peak memory, and the exported DFM's time per
face on the CPU (ONNX Runtime, one thread: the model alone, p50 of 50 runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("STAGESWAP_SHARED") or (REPO.parent / "shared")).resolve()


def parse_config(text: str) -> Any:
    from engines.train.nets import NetConfig

    arch, *dims = text.split(":")
    res, e, ae, inter, d = (int(v) for v in dims)
    return NetConfig(arch, res, e, ae, inter, d)


class SwapJudge:
    """Identity of swapped dst crops, by the evaluation-only recogniser, against a photo and the actor."""

    def __init__(self, models: Path, photo: Path, dst: Any, count: int = 60) -> None:
        from benchmarks.quality_metrics import FaceEmbedder
        from engines.face.landmarks import five_points
        from streamer.commands.faceset import build_tracker

        self.embedder = FaceEmbedder(models / "mobilefacenet.onnx")
        self.five_points = five_points
        image = cv2.imread(str(photo))
        if image is None:
            raise SystemExit(f"cannot read {photo}")
        faces = build_tracker(str(models)).update(image, 0.0)
        if not faces:
            raise SystemExit(f"no face in {photo}")
        self.identity = self.embedder.embed(image, five_points(faces[0].landmarks))
        self.dst = dst
        self.pick = np.linspace(0, len(dst) - 1, min(count, len(dst))).round().astype(int)
        self.actor = [self._embed(dst.images[i], dst.landmarks[i]) for i in self.pick]

    def _embed(self, crop: np.ndarray, points: np.ndarray) -> np.ndarray:
        res = crop.shape[0]
        big = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC)
        p = (points + 0.5) * (256 / res) - 0.5
        return self.embedder.embed(big, self.five_points(np.concatenate([p, np.zeros((len(p), 1))], axis=1)))

    def __call__(self, net: Any) -> tuple[float, float]:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(self.dst.images[self.pick]).permute(0, 3, 1, 2).float() / 255.0
            swapped, _, _ = net.eval().swap(x)
        faces = (swapped.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        cos_id, closer = [], []
        for k, i in enumerate(self.pick):
            e = self._embed(np.ascontiguousarray(faces[k]), self.dst.landmarks[i])
            cos_id.append(float(e @ self.identity))
            closer.append(float(e @ self.identity) > float(e @ self.actor[k]))
        return float(np.mean(cos_id)), float(np.mean(closer))


def dfm_ms_per_face(net: Any, runs: int = 50) -> float:
    """p50 ms of the exported DFM on one face in ONNX Runtime (1 thread)."""
    from engines.runtime.onnxrt import OrtSession
    from engines.train.export import INPUT_NAME, export_dfm

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.dfm"
        export_dfm(net, path)
        session = OrtSession(path, threads=1)
        res = net.cfg.resolution
        x = np.random.default_rng(0).random((1, res, res, 3)).astype(np.float32)
        for _ in range(5):
            session.run({INPUT_NAME: x})
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            session.run({INPUT_NAME: x})
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def run_config(cfg: Any, args: argparse.Namespace, judge_for: dict[int, SwapJudge]) -> dict[str, Any]:
    import torch

    from engines.train.faceset import load_faceset, merge_facesets
    from engines.train.trainer import TrainConfig, Trainer

    src = merge_facesets([load_faceset(p, cfg.resolution) for p in args.src])
    dst = merge_facesets([load_faceset(p, cfg.resolution) for p in args.dst])
    if cfg.resolution not in judge_for:
        judge_for[cfg.resolution] = SwapJudge(args.models, args.identity, dst)
    judge = judge_for[cfg.resolution]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(TrainConfig(net=cfg, batch=args.batch, lr=args.lr), src, dst, Path(tmp))
        name = f"{cfg.arch}:{cfg.resolution}:{cfg.encoder_dims}:{cfg.ae_dims}:{cfg.inter_dims}:{cfg.decoder_dims}"
        print(f"{name}: {trainer.parameters / 1e6:.1f} M parameters", flush=True)
        points = []
        cpu = wall = 0.0
        next_eval = args.eval_every
        while cpu < args.cpu_seconds:
            c0, w0 = time.process_time(), time.perf_counter()
            trainer.step()
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            if cpu >= next_eval or cpu >= args.cpu_seconds:
                cos_id, closer = judge(trainer.net)
                point = {
                    "cpu_s": round(cpu),
                    "wall_s": round(wall),
                    "iterations": trainer.iteration,
                    "loss_src": round(trainer.last_losses[0], 4),
                    "loss_dst": round(trainer.last_losses[1], 4),
                    "cos_identity": round(cos_id, 3),
                    "closer": round(closer, 3),
                }
                points.append(point)
                print("   ", json.dumps(point), flush=True)
                next_eval += args.eval_every
        result = {
            "config": name,
            "parameters": trainer.parameters,
            "cpu_s_per_iteration": round(cpu / trainer.iteration, 4),
            "iterations_per_wall_s": round(trainer.iteration / wall, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "dfm_ms_per_face": round(dfm_ms_per_face(trainer.net), 2) if cfg.resolution >= 64 else None,
            "torch_threads": torch.get_num_threads(),
            "points": points,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", nargs="+", type=Path, required=True, help="src faceset folder(s)")
    p.add_argument("--dst", nargs="+", type=Path, required=True, help="dst faceset folder(s)")
    p.add_argument(
        "--configs", nargs="+", default=["df:64:24:192:128:16", "liae:64:24:192:128:16"], help="arch:res:e:ae:i:d"
    )
    p.add_argument("--cpu-seconds", type=float, default=300.0, help="training CPU time per config")
    p.add_argument("--eval-every", type=float, default=100.0, help="CPU seconds between evaluations")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--identity", type=Path, default=SHARED / "data" / "faces" / "obama.jpg")
    p.add_argument("--models", type=Path, default=SHARED / "models")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("STAGESWAP_MODELS", str(args.models))
    judges: dict[int, SwapJudge] = {}
    results = [run_config(parse_config(c), args, judges) for c in args.configs]
    head = f"{'config':<26} {'params':>7} {'cpu-s/it':>9} {'it/s wall':>9} {'peak RSS':>9} {'DFM ms':>7}"
    print(f"\n{head}  cos id / closer at CPU seconds")
    for r in results:
        trail = "  ".join(f"{q['cpu_s']}s: {q['cos_identity']:.2f}/{q['closer']:.0%}" for q in r["points"])
        print(
            f"{r['config']:<26} {r['parameters'] / 1e6:6.1f}M {r['cpu_s_per_iteration']:9.3f} "
            f"{r['iterations_per_wall_s']:9.2f} {r['peak_rss_mib']:7d}Mi {r['dfm_ms_per_face'] or 0:7.2f}  {trail}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
