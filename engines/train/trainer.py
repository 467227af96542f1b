"""The training loop: one iteration = a src batch and a dst batch through the autoencoder, one Adam step.

Long work that behaves:

- **Checkpoints** (``checkpoint.pt`` in the training folder) hold the weights, Adam's state, the iteration,
  the training time so far and the state of every random generator, written whole and renamed into
  place, every ``checkpoint_every_s`` and when training stops: ``kill -9`` loses at most that interval.
- **Resume** continues bit for bit: the next iteration after a resume computes the same loss, to the last
  bit, as the uninterrupted run would have (same device, same thread count, same facesets).
- **Stopping**: Ctrl-C or SIGTERM finishes the current iteration, writes a checkpoint and returns
  ``"stopped"``; a second Ctrl-C interrupts at once (the last checkpoint stays).
- **Progress** every few seconds (iteration, loss per person, iterations/s, ETA) to a callback and to
  ``progress.json`` (the monitor page lists it), and a ``preview.png`` every few minutes: for a few actor
  faces, the face, its reconstruction and the swap; for the src person, the face and its reconstruction.
- **Devices**: the CPU, one CUDA GPU (bf16 autocast, optionally ``torch.compile``), or several processes
  through ``torchrun`` (DistributedDataParallel: NCCL on GPUs, gloo on CPUs). Every process draws its own
  batches (a generator per rank), gradients are averaged, rank 0 alone writes files; a stop request on any
  rank stops all of them at the same iteration.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist

from engines import paths
from engines.errors import EngineError, InputError, OutputError
from engines.train.data import DST_AUGMENT, SRC_AUGMENT, FaceBatches
from engines.train.faceset import Faceset
from engines.train.losses import LossConfig, face_loss
from engines.train.nets import NetConfig, SwapNet, parameter_count

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.json"
PREVIEW_FILE = "preview.png"
CHECKPOINT_FORMAT = "stageswap-train-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    net: NetConfig = field(default_factory=NetConfig)
    batch: int = 8
    """Faces per person per iteration (per process under torchrun)."""
    lr: float = 2e-4
    seed: int = 0
    loss: LossConfig = field(default_factory=LossConfig)
    checkpoint_every_s: float = 300.0
    preview_every_s: float = 180.0
    progress_every_s: float = 2.0
    bf16: bool = True
    """bf16 autocast on CUDA (ignored on the CPU, where it is slower)."""
    compile: bool = False
    """``torch.compile`` the network (CUDA only)."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= 1024:
            raise InputError(f"--batch must be 1..1024, got {self.batch}")
        if not 0 < self.lr < 1:
            raise InputError(f"learning rate must be in (0, 1), got {self.lr}")

    def to_json(self) -> dict[str, Any]:
        return {
            "net": self.net.to_json(),
            "batch": self.batch,
            "lr": self.lr,
            "seed": self.seed,
            "loss": asdict(self.loss),
        }


@dataclass(frozen=True)
class Progress:
    iteration: int
    target_iterations: int | None
    loss_src: float
    loss_dst: float
    it_per_s: float
    eta_s: float | None
    elapsed_s: float
    """Training time over every run of this model (not counting pauses between runs)."""
    state: str = "running"

    def line(self) -> str:
        target = f"/{self.target_iterations}" if self.target_iterations else ""
        eta = _clock(self.eta_s) if self.eta_s is not None else "--:--"
        dst = f" dst {self.loss_dst:.4f}" if not math.isnan(self.loss_dst) else ""  # nan: one person (dnr)
        return (
            f"iter {self.iteration}{target}  loss src {self.loss_src:.4f}{dst}  "
            f"{self.it_per_s:.2f} it/s  elapsed {_clock(self.elapsed_s)}  ETA {eta}"
        )


def _clock(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@dataclass(frozen=True)
class StopRule:
    iterations: int | None = None
    """Stop when the model has trained this many iterations in total (over every run)."""
    minutes: float | None = None
    """Stop after this many minutes of this run."""
    cpu_minutes: float | None = None
    """Stop after this process has used this many minutes of CPU time in this run (all its threads): a
    fixed amount of compute, however many other programs share the machine."""

    def __post_init__(self) -> None:
        if self.iterations is None and self.minutes is None and self.cpu_minutes is None:
            raise InputError("say how long to train: --minutes M, --cpu-minutes M or --iterations N")
        if self.cpu_minutes is not None and not self.cpu_minutes > 0:
            raise InputError(f"--cpu-minutes must be positive, got {self.cpu_minutes}")
        if self.iterations is not None and self.iterations < 1:
            raise InputError(f"--iterations must be at least 1, got {self.iterations}")
        if self.minutes is not None and not self.minutes > 0:
            raise InputError(f"--minutes must be positive, got {self.minutes}")


# ---- devices and processes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    """This process's place among the torchrun processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(requested: str, where: Dist) -> torch.device:
    """``auto``: a CUDA GPU when torch sees one, else the CPU; ``cuda`` without one is an InputError."""
    if requested not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {requested!r}")
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise InputError(
            "--device cuda: torch sees no CUDA GPU here (a CPU-only torch build, no driver, or "
            "CUDA_VISIBLE_DEVICES hides it); train with --device cpu, or install the CUDA lock (make setup on "
            "a machine with nvidia-smi)"
        )
    if requested == "cpu" or not has_cuda:
        return torch.device("cpu")
    index = where.local_rank % max(1, torch.cuda.device_count())
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def init_distributed(where: Dist, device: torch.device) -> None:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPUs); nothing without torchrun."""
    if where.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


# ---- files ------------------------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` in place of ``path`` (``engines.paths.write_atomic``), OutputError on failure saying when
    the disk is full; whatever ``path`` held before stays intact."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.write_atomic(path, data, mode=0o644)
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "the disk is full" if full else (exc.strerror or str(exc))
        raise OutputError(f"cannot write {path}: {why}; the previous version of it is intact") from exc


def _encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OutputError("PNG encoding failed")
    return data.tobytes()


# ---- the trainer ------------------------------------------------------------------------------------------------


class Trainer:
    """Trains one model in ``folder`` on a src and a dst faceset (both at ``cfg.net.resolution``)."""

    def __init__(
        self,
        cfg: TrainConfig,
        src: Faceset,
        dst: Faceset,
        folder: Path,
        device: torch.device | None = None,
        where: Dist | None = None,
    ) -> None:
        res = cfg.net.resolution
        for name, fs in (("src", src), ("dst", dst)):
            if fs.images.shape[1] != res:
                raise InputError(f"the {name} faceset is loaded at {fs.images.shape[1]} px, the model is {res} px")
        if abs(src.coverage - dst.coverage) > 1e-6:
            raise InputError(
                f"the src faceset ({src.path}) was cut at coverage {src.coverage}, the dst faceset ({dst.path}) "
                f"at {dst.coverage}: extract both with the same --coverage"
            )
        self.cfg = cfg
        self.folder = Path(folder)
        self.where = where or Dist()
        self.device = device or torch.device("cpu")
        self.coverage = src.coverage
        self.src_info = {"path": str(src.path), "paths": [str(p) for p in src.folders], "faces": len(src)}
        self.dst_info = {"path": str(dst.path), "paths": [str(p) for p in dst.folders], "faces": len(dst)}
        torch.manual_seed(cfg.seed)
        self.net = SwapNet(cfg.net).to(self.device)
        self.model: torch.nn.Module = self.net
        if self.where.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if cfg.compile and self.device.type == "cuda":
            self.model = torch.compile(self.model)  # type: ignore[assignment]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.src = FaceBatches(src, self.device, SRC_AUGMENT, colour_refs=dst)
        self.dst = FaceBatches(dst, self.device, DST_AUGMENT)
        self.gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.where.rank)
        self.iteration = 0
        self.elapsed_s = 0.0
        self.last_losses = (math.nan, math.nan)
        self._ema: tuple[float, float] | None = None
        self._stop = threading.Event()
        self._cpu: tuple[float, float | None, float] = (time.process_time(), None, time.monotonic())
        """(CPU time at the run's start, its CPU budget in seconds, wall time at the start)."""
        self._preview_dst = np.unique(np.linspace(0, len(dst) - 1, 4).round().astype(int))
        self._preview_src = np.unique(np.linspace(0, len(src) - 1, 4).round().astype(int))

    @property
    def parameters(self) -> int:
        return parameter_count(self.net)

    # ---- one iteration

    def step(self) -> tuple[float, float]:
        """One training iteration; the (src, dst) losses of its batch (averaged over processes)."""
        cfg = self.cfg
        src_in, src_target, src_masks = self.src.sample(cfg.batch, self.gen)
        dst_in, dst_target, dst_masks = self.dst.sample(cfg.batch, self.gen)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda" and cfg.bf16
            else contextlib.nullcontext()
        )
        self.model.train()
        with autocast:
            (src_face, src_mask), (dst_face, dst_mask) = self.model(src_in, dst_in)
        loss_src = face_loss(src_face.float(), src_mask.float(), src_target, src_masks, cfg.loss)
        loss_dst = face_loss(dst_face.float(), dst_mask.float(), dst_target, dst_masks, cfg.loss)
        self.optimizer.zero_grad(set_to_none=True)
        (loss_src + loss_dst).backward()
        self.optimizer.step()
        self.iteration += 1
        pair = torch.stack([loss_src.detach(), loss_dst.detach()]).float()
        if self.where.world > 1:
            dist.all_reduce(pair)
            pair /= self.where.world
        values = pair.cpu().tolist()
        self.last_losses = (float(values[0]), float(values[1]))
        if not all(map(math.isfinite, self.last_losses)):
            raise EngineError(
                f"training diverged at iteration {self.iteration} (loss src {values[0]}, dst {values[1]}); the last "
                "checkpoint is intact: resume from it with a lower --lr"
            )
        return self.last_losses

    # ---- running

    def request_stop(self) -> None:
        """Stop after the current iteration, with a checkpoint (what Ctrl-C and SIGTERM do)."""
        self._stop.set()

    def run(self, rule: StopRule, on_progress: Callable[[Progress], None] | None = None) -> str:
        """Train until ``rule`` or a stop request; ``"finished"`` or ``"stopped"``. Checkpoints, previews and
        progress as the module says. Installs SIGINT/SIGTERM handlers when called on the main thread."""
        cfg = self.cfg
        start = time.monotonic()
        deadline = start + rule.minutes * 60.0 if rule.minutes is not None else None
        cpu_start = time.process_time()
        cpu_budget = rule.cpu_minutes * 60.0 if rule.cpu_minutes is not None else None
        elapsed_before = self.elapsed_s
        last_ckpt = last_preview = last_progress = start
        rate_window: list[tuple[float, int]] = [(start, self.iteration)]
        state = "finished"
        self._cpu = (cpu_start, cpu_budget, start)
        if self.where.leader:
            self._write_progress(self._progress(rule, start, deadline, rate_window, "running"))
            self.write_preview()  # at once: the crops it trains on, and where the model stands
        with self._signals():
            while True:
                if rule.iterations is not None and self.iteration >= rule.iterations:
                    break
                self.step()
                now = time.monotonic()
                self.elapsed_s = elapsed_before + (now - start)
                self._smooth(self.last_losses)
                flags = [
                    self._stop.is_set(),
                    (deadline is not None and now >= deadline)
                    or (cpu_budget is not None and time.process_time() - cpu_start >= cpu_budget),
                    now - last_ckpt >= cfg.checkpoint_every_s,
                    now - last_preview >= cfg.preview_every_s,
                ]
                stop_req, timeout, ckpt, preview = self._agree(flags)
                if ckpt and not (stop_req or timeout):
                    self.save_checkpoint()
                    last_ckpt = now
                if preview and self.where.leader:
                    self.write_preview()
                    last_preview = now
                if now - last_progress >= cfg.progress_every_s or stop_req or timeout:
                    rate_window.append((now, self.iteration))
                    while len(rate_window) > 2 and now - rate_window[1][0] > 60.0:
                        rate_window.pop(0)  # the rate over the last minute or so
                    if self.where.leader:
                        progress = self._progress(rule, now, deadline, rate_window, "running")
                        self._write_progress(progress)
                        if on_progress is not None:
                            on_progress(progress)
                    last_progress = now
                if stop_req:
                    state = "stopped"
                    break
                if timeout:
                    break
        self.save_checkpoint()
        if self.where.leader:
            self.write_preview()
            rate_window.append((time.monotonic(), self.iteration))
            final = self._progress(rule, time.monotonic(), deadline, rate_window, state)
            self._write_progress(final)
            if on_progress is not None:
                on_progress(final)
        return state

    def _agree(self, flags: list[bool]) -> list[bool]:
        """The flags as every process sees them: rank 0's clock decides the timed ones, anyone's stop
        request stops everyone (one small all-reduce per iteration under torchrun)."""
        if self.where.world <= 1:
            return flags
        mine = [float(flags[0])] + [float(f) if self.where.leader else 0.0 for f in flags[1:]]
        t = torch.tensor(mine, device=self.device)
        dist.all_reduce(t)
        return [bool(v > 0) for v in t.cpu().tolist()]

    def _smooth(self, losses: tuple[float, float]) -> None:
        if self._ema is None or not all(map(math.isfinite, self._ema)):
            self._ema = losses
        else:
            k = 0.05
            self._ema = (self._ema[0] + k * (losses[0] - self._ema[0]), self._ema[1] + k * (losses[1] - self._ema[1]))

    def _progress(
        self, rule: StopRule, now: float, deadline: float | None, window: list[tuple[float, int]], state: str
    ) -> Progress:
        (t0, i0), (t1, i1) = window[0], window[-1]
        rate = (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0
        etas = []
        if rule.iterations is not None and rate > 0:
            etas.append(max(0, rule.iterations - self.iteration) / rate)
        if deadline is not None:
            etas.append(max(0.0, deadline - now))
        cpu_start, cpu_budget, wall_start = self._cpu
        used = time.process_time() - cpu_start
        if cpu_budget is not None and used > 0 and now > wall_start:
            etas.append(max(0.0, cpu_budget - used) / (used / (now - wall_start)))
        ema = self._ema or (math.nan, math.nan)
        return Progress(
            self.iteration, rule.iterations, ema[0], ema[1], rate, min(etas) if etas else None, self.elapsed_s, state
        )

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGINT and self._stop.is_set():
                raise KeyboardInterrupt
            self._stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # ---- files

    def _write_progress(self, p: Progress) -> None:
        data = {
            "format": "stageswap-train-progress",
            "name": self.folder.name,
            "state": p.state,
            "iteration": p.iteration,
            "target_iterations": p.target_iterations,
            "loss": {"src": _finite(p.loss_src), "dst": _finite(p.loss_dst)},
            "it_per_s": round(p.it_per_s, 3),
            "eta_s": None if p.eta_s is None else round(p.eta_s),
            "elapsed_s": round(p.elapsed_s),
            "resolution": self.cfg.net.resolution,
            "arch": self.cfg.net.arch,
            "device": self.device.type,
            "processes": self.where.world,
            "pid": os.getpid(),
            "updated": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        with contextlib.suppress(OutputError):  # progress is advisory: never stop training for it
            write_atomic(self.folder / PROGRESS_FILE, (json.dumps(data, indent=1) + "\n").encode())

    def checkpoint_bytes(self) -> bytes:
        """The checkpoint as bytes (collective under torchrun: every rank must call it)."""
        gens = [self.gen.get_state()]
        if self.where.world > 1:
            gathered: list[Any] = [None] * self.where.world
            dist.all_gather_object(gathered, self.gen.get_state())
            gens = gathered
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.cfg.to_json(),
            "coverage": self.coverage,
            "src": self.src_info,
            "dst": self.dst_info,
            "iteration": self.iteration,
            "elapsed_s": self.elapsed_s,
            "world": self.where.world,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": gens,
            "ema": self._ema,
            "saved": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    def save_checkpoint(self) -> None:
        data = self.checkpoint_bytes()
        if self.where.leader:
            write_atomic(self.folder / CHECKPOINT_FILE, data)
        if self.where.world > 1:
            dist.barrier()

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint ``read_checkpoint`` returned (its config checked by ``resume_config``)."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.elapsed_s = float(state["elapsed_s"])
        ema = state.get("ema")
        self._ema = (float(ema[0]), float(ema[1])) if ema is not None else None
        gens = state["generators"]
        if len(gens) == self.where.world:
            self.gen.set_state(gens[self.where.rank])
        else:  # another process count: new streams per rank, derived from where the run stood
            self.gen.manual_seed(self.cfg.seed * 7919 + self.where.rank + 104729 * self.iteration)

    def write_preview(self) -> None:
        """``preview.png``: rows of actor face | its reconstruction | the swap, then src face | reconstruction.
        A preview that cannot be written is logged, not fatal (a full disk stops training at the checkpoint)."""
        try:
            write_atomic(self.folder / PREVIEW_FILE, _encode_png(self.preview()))
        except OutputError as exc:
            log.warning("no preview: %s", exc)

    @torch.no_grad()
    def preview(self) -> np.ndarray:
        self.net.eval()
        dst = self.dst.images[torch.as_tensor(self._preview_dst, device=self.device)].float() / 255.0
        src = self.src.images[torch.as_tensor(self._preview_src, device=self.device)].float() / 255.0
        _, (dst_rec, _) = self.net(dst, dst)
        (src_rec, _), _ = self.net(src, src)
        swapped, _, _ = self.net.swap(dst)

        def tiles(x: torch.Tensor) -> list[np.ndarray]:
            arr = (x.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            return list(arr)

        rows = [np.hstack(t) for t in zip(tiles(dst), tiles(dst_rec), tiles(swapped), strict=True)]
        rows += [np.hstack([*t, np.zeros_like(t[0])]) for t in zip(tiles(src), tiles(src_rec), strict=True)]
        grid = np.vstack(rows)
        scale = max(1, 384 // grid.shape[1] + 1) if grid.shape[1] < 384 else 1
        if scale > 1:
            grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        header = np.full((28, grid.shape[1], 3), 24, np.uint8)
        text = f"iter {self.iteration}  actor | recon | swap ; src | recon"
        cv2.putText(header, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
        return np.vstack([header, grid])


def _finite(v: float) -> float | None:
    return round(v, 5) if math.isfinite(v) else None


# ---- checkpoints on disk --------------------------------------------------------------------------------------


def read_checkpoint(folder: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint in ``folder`` (None when there is none; InputError when it is damaged)."""
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # pickle/zip errors of a damaged file
        raise InputError(
            f"the checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); delete it to start over"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not a stageswap training checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise InputError(
            f"{path} is checkpoint version {state.get('version')!r}; this stageswap reads {CHECKPOINT_VERSION}"
        )
    return state


def resume_config(state: dict[str, Any], requested: TrainConfig, given: set[str]) -> TrainConfig:
    """The config to continue with: the checkpoint's network and training settings; an InputError naming
    the option when one the user gave (``given``: net field names, 'batch', 'lr') disagrees."""
    saved = state["config"]
    net = NetConfig.from_json(saved["net"])
    for name in sorted(given & set(NetConfig.__dataclass_fields__)):
        want, have = getattr(requested.net, name), getattr(net, name)
        if want != have:
            flag = "--" + name.replace("_", "-")
            raise InputError(
                f"the checkpoint was trained with {flag} {have}, not {want}: resume without {flag} (or with "
                f"{flag} {have}), or start a new model under another name"
            )
    batch = requested.batch if "batch" in given else int(saved["batch"])
    lr = requested.lr if "lr" in given else float(saved["lr"])
    return replace(requested, net=net, batch=batch, lr=lr, seed=int(saved["seed"]), loss=LossConfig(**saved["loss"]))


def check_disk(folder: Path, parameters: int) -> None:
    """InputError when the training folder's disk cannot hold two checkpoints (weights + Adam's moments)."""
    need = parameters * 4 * 3 * 2 + 64 * 2**20
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OutputError(
            f"not enough disk space in {folder}: {free / 2**20:.0f} MiB free, checkpoints of this model need "
            f"about {need / 2**20:.0f} MiB; free some space or use --data-dir on another disk"
        )
