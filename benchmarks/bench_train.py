#!/usr/bin/env python3
"""What a swap-model design learns per CPU-minute, and what it costs to train and to run (issue 19).

    python benchmarks/bench_train.py --src FACESET --dst FACESET [--configs df:64:24:192:128:16 dnr:64 ...]
                                     [--cpu-seconds 300] [--eval-every 100] [--identity obama.jpg]
                                     [--init-identity NAME --data-dir DIR] [--sheet out/sheet.png]

Each config trains from scratch on the same facesets for the same CPU time (this process's CPU time, so
other programs on the machine do not change the budget, only how long it takes):

- ``arch:resolution:encoder_dims:ae_dims:inter_dims:decoder_dims``: a DF or LIAE autoencoder
  (``engines.train.nets``) on the src and dst facesets;
- ``dnr:resolution[:texture_px:channels:dims]``: deferred neural rendering (``engines.train.neural_render``),
  trained on the src faceset alone (the dst faceset only gives it the actor's meshes at swap time);
  ``dnr-init:...`` the same with its neural texture's colour started from the mesh swap's identity texture of
  ``--init-identity`` (enrolled from the src person's footage in ``--data-dir``, never the judged photo).

Every ``--eval-every`` CPU-seconds it swaps 60 faces of the dst faceset and measures them with the
evaluation-only recogniser (``mobilefacenet.onnx``, never used by training): the mean cosine to
``--identity`` (a photo of the src person that training never sees) and the share of faces closer to it than
to the actor's own face — on the design's own output (``cos_identity``, ``closer``: an autoencoder's whole
crop, its background and hair included; the neural renderer's face laid over the actor's crop, as it has no
background) and on every design's face laid over the actor's crop through the actor's mesh face mask
(``cos_pasted``, ``closer_pasted``: what the product's blend shows). Evaluation time is not counted in the
budget. Then: CPU-seconds per iteration, iterations per wall second, peak memory, and the time per face on
the CPU: an autoencoder's exported DFM in ONNX Runtime, the neural renderer's rasterising and torch
rendering (one thread, p50 of 50 runs). ``--sheet`` writes a contact sheet per evaluation point: the actor's
crop, then each config's swap.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("STAGESWAP_SHARED") or (REPO.parent / "shared")).resolve()


DNR_ARCHES = ("dnr", "dnr-init")


def parse_config(text: str) -> Any:
    from engines.train.nets import NetConfig

    arch, *dims = text.split(":")
    if arch in DNR_ARCHES:
        from engines.train.neural_render import DnrConfig

        names = ("resolution", "texture_px", "channels", "dims")
        return arch, DnrConfig(**dict(zip(names, (int(v) for v in dims), strict=False)))
    res, e, ae, inter, d = (int(v) for v in dims)
    return NetConfig(arch, res, e, ae, inter, d)


def config_name(cfg: Any) -> str:
    if isinstance(cfg, tuple):
        arch, c = cfg
        return f"{arch}:{c.resolution}:{c.texture_px}:{c.channels}:{c.dims}"
    return f"{cfg.arch}:{cfg.resolution}:{cfg.encoder_dims}:{cfg.ae_dims}:{cfg.inter_dims}:{cfg.decoder_dims}"


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

    def swap(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """(the design's own output, its face laid over the actor's crop through the actor's face mask) for the
        picked dst faces: (N, R, R, 3) uint8 BGR each."""
        import torch

        from engines.train.neural_render import DnrTrainer

        images, masks = self.dst.images[self.pick], self.dst.masks[self.pick]
        actor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            if isinstance(model, DnrTrainer):  # already laid over the actor's crop by its own mask
                own = pasted = model.swap(images, masks, self.dst.landmarks[self.pick])
            else:
                own, _, _ = model.eval().swap(actor)
                m = torch.from_numpy(masks[..., :1]).permute(0, 3, 1, 2).float() / 255.0
                pasted = own.clamp(0, 1) * m + actor * (1.0 - m)
        return tuple(  # type: ignore[return-value]
            (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy() for x in (own, pasted)
        )

    def measure(self, faces: np.ndarray) -> tuple[float, float]:
        """Mean cosine to the identity photo, and the share closer to it than to the actor, of swapped crops."""
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


def dnr_ms_per_face(trainer: Any, landmarks: np.ndarray, runs: int = 50) -> float:
    """p50 ms of the neural renderer on one face in torch on the CPU: rasterising its mesh and rendering."""
    for _ in range(5):
        trainer.render(landmarks[:1])
    times = []
    for k in range(runs):
        t0 = time.perf_counter()
        trainer.render(landmarks[k % len(landmarks)][None])
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def init_texture(args: argparse.Namespace) -> np.ndarray:
    """The mesh swap's texture of ``--init-identity`` (the src person's footage, enrolled), uint8 BGR."""
    from engines.identity.store import IdentityStore

    if not args.init_identity or not args.data_dir:
        raise SystemExit(
            "dnr-init needs --init-identity NAME and --data-dir DIR (an identity enrolled from src footage)"
        )
    return np.asarray(IdentityStore(args.data_dir / "identities", str(args.models)).load(args.init_identity).texture)


def make_trainer(cfg: Any, src: Any, dst: Any, args: argparse.Namespace, tmp: Path) -> Any:
    if isinstance(cfg, tuple):
        from engines.train.neural_render import DnrTrainConfig, DnrTrainer

        arch, net = cfg
        texture = init_texture(args) if arch == "dnr-init" else None
        cfg_t = DnrTrainConfig(net=net, batch=args.batch)
        if args.texture_lr is not None:
            cfg_t = replace(cfg_t, texture_lr=args.texture_lr)
        return DnrTrainer(cfg_t, src, init_texture=texture)
    from engines.train.trainer import TrainConfig, Trainer

    return Trainer(TrainConfig(net=cfg, batch=args.batch, lr=args.lr), src, dst, tmp)


def run_config(
    cfg: Any, args: argparse.Namespace, judge_for: dict[int, SwapJudge], sheets: dict[int, list[Any]]
) -> dict[str, Any]:
    import torch

    from engines.train.faceset import load_faceset, merge_facesets

    res = cfg[1].resolution if isinstance(cfg, tuple) else cfg.resolution
    src = merge_facesets([load_faceset(p, res) for p in args.src])
    dst = merge_facesets([load_faceset(p, res) for p in args.dst])
    if res not in judge_for:
        judge_for[res] = SwapJudge(args.models, args.identity, dst)
    judge = judge_for[res]
    name = config_name(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(cfg, src, dst, args, Path(tmp))
        print(f"{name}: {trainer.parameters / 1e6:.2f} M parameters", flush=True)
        points = []
        cpu = wall = 0.0

        def evaluate(mark: float) -> None:
            own, pasted = judge.swap(trainer if isinstance(cfg, tuple) else trainer.net)
            cos_id, closer = judge.measure(own)
            cos_pasted, closer_pasted = judge.measure(pasted)
            sheets.setdefault(round(mark), []).append((name, judge.dst.images[judge.pick], own))
            if args.sheet:  # written as soon as it is made: a long run stopped early keeps what it measured
                write_sheet(sheet_path(args.sheet, round(mark)), sheets[round(mark)], args.sheet_faces)
            point = {
                "cpu_s": round(cpu),
                "wall_s": round(wall),
                "iterations": trainer.iteration,
                "loss_src": round(trainer.last_losses[0], 4),
                "loss_dst": round(trainer.last_losses[1], 4),
                "cos_identity": round(cos_id, 3),
                "closer": round(closer, 3),
                "cos_pasted": round(cos_pasted, 3),
                "closer_pasted": round(closer_pasted, 3),
            }
            points.append(point)
            print("   ", json.dumps(point), flush=True)

        if args.eval_at_start:  # untrained: for dnr-init, the mesh swap's texture alone on the actor's mesh
            evaluate(0)
        next_eval = args.eval_every
        while cpu < args.cpu_seconds:
            c0, w0 = time.process_time(), time.perf_counter()
            trainer.step()
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            if cpu >= next_eval or cpu >= args.cpu_seconds:
                evaluate(next_eval if cpu < args.cpu_seconds else args.cpu_seconds)
                next_eval += args.eval_every
        result = {
            "config": name,
            "parameters": trainer.parameters,
            "cpu_s_per_iteration": round(cpu / trainer.iteration, 4),
            "iterations_per_wall_s": round(trainer.iteration / wall, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "ms_per_face": round(
                dnr_ms_per_face(trainer, dst.landmarks) if isinstance(cfg, tuple) else dfm_ms_per_face(trainer.net), 2
            )
            if res >= 64
            else None,
            "torch_threads": torch.get_num_threads(),
            "points": points,
        }
    return result


def sheet_path(base: Path, cpu_s: int) -> Path:
    return base.with_name(f"{base.stem}_{cpu_s}s{base.suffix or '.png'}")


def write_sheet(path: Path, columns: list[tuple[str, np.ndarray, np.ndarray]], faces: int, px: int = 192) -> None:
    """Rows of dst faces: the actor's crop, then each config's swap (its own output), labelled on top."""
    n = len(columns[0][1])
    rows = np.unique(np.linspace(0, n - 1, min(faces, n)).round().astype(int))
    tiles = [("dst (actor)", columns[0][1])] + [(name, out) for name, _, out in columns]
    head = 24
    sheet = np.full((head + len(rows) * px, len(tiles) * px, 3), 255, np.uint8)
    for c, (label, images) in enumerate(tiles):
        cv2.putText(sheet, label, (c * px + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for r, i in enumerate(rows):
            tile = cv2.resize(images[i], (px, px), interpolation=cv2.INTER_CUBIC)
            sheet[head + r * px : head + (r + 1) * px, c * px : (c + 1) * px] = tile
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", nargs="+", type=Path, required=True, help="src faceset folder(s)")
    p.add_argument("--dst", nargs="+", type=Path, required=True, help="dst faceset folder(s)")
    p.add_argument(
        "--configs", nargs="+", default=["df:64:24:192:128:16", "liae:64:24:192:128:16"], help="arch:res:e:ae:i:d"
    )
    p.add_argument("--cpu-seconds", type=float, default=300.0, help="training CPU time per config")
    p.add_argument("--eval-every", type=float, default=100.0, help="CPU seconds between evaluations")
    p.add_argument("--eval-at-start", action="store_true", help="also evaluate each config before it trains")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate of DF/LIAE (dnr: its own, 1e-3)")
    p.add_argument("--texture-lr", type=float, help="dnr: the neural texture's learning rate")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--identity", type=Path, default=SHARED / "data" / "faces" / "obama.jpg")
    p.add_argument("--models", type=Path, default=SHARED / "models")
    p.add_argument("--init-identity", help="dnr-init: the identity (enrolled from src footage) its texture starts from")
    p.add_argument("--data-dir", type=Path, help="dnr-init: the data directory holding --init-identity")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--sheet", type=Path, help="contact sheets: PATH_<cpu-seconds>.png per evaluation point")
    p.add_argument("--sheet-faces", type=int, default=8, help="faces (rows) per contact sheet")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("STAGESWAP_MODELS", str(args.models))
    judges: dict[int, SwapJudge] = {}
    sheets: dict[int, list[Any]] = {}
    results = []
    for c in args.configs:
        results.append(run_config(parse_config(c), args, judges, sheets))
        if args.json:  # after each config: a long run stopped early keeps what it finished
            args.json.write_text(json.dumps(results, indent=1) + "\n")
    head = f"{'config':<26} {'params':>7} {'cpu-s/it':>9} {'it/s wall':>9} {'peak RSS':>9} {'ms/face':>7}"
    print(f"\n{head}  cos id / closer (own output; pasted) at CPU seconds")
    for r in results:
        trail = "  ".join(
            f"{q['cpu_s']}s: {q['cos_identity']:.2f}/{q['closer']:.0%}; {q['cos_pasted']:.2f}/{q['closer_pasted']:.0%}"
            for q in r["points"]
        )
        print(
            f"{r['config']:<26} {r['parameters'] / 1e6:6.2f}M {r['cpu_s_per_iteration']:9.3f} "
            f"{r['iterations_per_wall_s']:9.2f} {r['peak_rss_mib']:7d}Mi {r['ms_per_face'] or 0:7.2f}  {trail}"
        )
    if args.sheet:
        for cpu_s in sorted(sheets):
            print(f"contact sheet: {sheet_path(args.sheet, cpu_s)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
