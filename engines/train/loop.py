"""The loop every swap-model trainer runs under: long work that behaves, written once (issue 19).

A trainer is the compute (``Trainee``: one ``step()``, its state as a dict and back, a grid of preview tiles);
``TrainingRun`` drives one in its training folder, whatever it trains (the DF/LIAE autoencoders of
``engines.train.trainer``, the neural renderer of ``engines.train.neural_render``):

- **Checkpoints** (``checkpoint.pt``) hold what the trainer says it needs to continue (weights, Adam's state,
  the state of its random generators, its config and data) and the loop's own (iteration, training time so
  far, the smoothed loss), written whole and renamed into place, every ``checkpoint_every_s`` and when training
  stops: ``kill -9`` loses at most that interval. A checkpoint names its ``kind`` (what the finished model is
  exported as: ``dfm`` or ``dnr``; checkpoints from before ``kind`` are DF/LIAE ones).
- **Resume** continues bit for bit: the next iteration after ``restore`` computes the same loss, to the last bit,
  as the uninterrupted run would have (same device, same thread count, same facesets).
- **Stopping**: Ctrl-C or SIGTERM finishes the current iteration, writes a checkpoint and returns ``"stopped"``;
  a second Ctrl-C interrupts at once (the last checkpoint stays).
- **Progress** every few seconds (iteration, loss per person, iterations/s, ETA) to a callback and to
  ``progress.json`` (``engines.train.workspace.list_trainings``: the monitor page lists it), and a
  ``preview.png`` every few minutes: the trainer's tiles under a line saying what they are.
- **Several processes** (``torchrun``): rank 0 alone writes files; a stop request on any rank stops all of them
  at the same iteration (the trainer's ``where`` says which process this is).
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.distributed as dist

from engines import paths
from engines.errors import EngineError, InputError, OutputError

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.json"
PREVIEW_FILE = "preview.png"
CHECKPOINT_FORMAT = "stageswap-train-checkpoint"
CHECKPOINT_VERSION = 1
PREVIEW_MIN_WIDTH = 384
"""A preview narrower than this is scaled up by whole pixels (tiny models' tiles stay readable)."""


# ---- what a run is told and tells ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class RunTiming:
    checkpoint_every_s: float = 300.0
    preview_every_s: float = 180.0
    progress_every_s: float = 2.0


@dataclass(frozen=True)
class Progress:
    iteration: int
    target_iterations: int | None
    loss_src: float
    loss_dst: float
    """nan for a trainer of one person (dnr)."""
    it_per_s: float
    eta_s: float | None
    elapsed_s: float
    """Training time over every run of this model (not counting pauses between runs)."""
    state: str = "running"

    def line(self) -> str:
        target = f"/{self.target_iterations}" if self.target_iterations else ""
        eta = _clock(self.eta_s) if self.eta_s is not None else "--:--"
        dst = f" dst {self.loss_dst:.4f}" if not math.isnan(self.loss_dst) else ""
        return (
            f"iter {self.iteration}{target}  loss src {self.loss_src:.4f}{dst}  "
            f"{self.it_per_s:.2f} it/s  elapsed {_clock(self.elapsed_s)}  ETA {eta}"
        )


def _clock(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


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


# ---- several processes (torchrun): what every trainer does the same way ----------------------------------------


def data_parallel(module: torch.nn.Module, device: torch.device, where: Dist) -> torch.nn.Module:
    """``module`` in DistributedDataParallel under torchrun (every parameter's gradient averaged over the
    processes during ``backward``: the U-Nets and autoencoders, and a neural texture's ParameterList, which is
    sampled with ``grid_sample``), ``module`` itself in one process. Train through what this returns; keep
    the optimizer, the state dict and previews on ``module``."""
    if where.world <= 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def process_mean(values: torch.Tensor, where: Dist) -> torch.Tensor:
    """``values`` averaged over the torchrun processes (the losses every rank reports, so that they stop on a
    diverged loss together); ``values`` in one process."""
    if where.world <= 1:
        return values
    total = values.detach().float().clone()
    dist.all_reduce(total)
    return total / where.world


def sampler_seed(seed: int, where: Dist, iteration: int = 0) -> int:
    """The seed of this process's batch generator: a stream per rank (rank 0 of a new training has the
    one-process stream); ``iteration`` > 0 for new streams where a training resumes with another process count."""
    return seed * 7919 + where.rank + 104729 * iteration


def generator_states(gen: torch.Generator, where: Dist) -> list[torch.Tensor]:
    """Every rank's generator state, by rank (collective under torchrun: every rank must call it)."""
    if where.world <= 1:
        return [gen.get_state()]
    gathered: list[Any] = [None] * where.world
    dist.all_gather_object(gathered, gen.get_state())
    return gathered


def restore_generator(gen: torch.Generator, states: list[torch.Tensor], where: Dist, seed: int, iteration: int) -> None:
    """This rank's generator as a checkpoint saved it (``generator_states``), so a resume with as many processes
    draws the very batches the uninterrupted run would have; with another process count, new streams per rank
    derived from where the run stood."""
    if len(states) == where.world:
        gen.set_state(states[where.rank].cpu())  # a checkpoint read onto a GPU has its states there
    else:
        gen.manual_seed(sampler_seed(seed, where, iteration))


class Trainee(Protocol):
    """What ``TrainingRun`` drives: one model's training compute, no files, no clocks, no signals."""

    @property
    def kind(self) -> str:
        """What the finished model is exported and registered as (``dfm``, ``dnr``); checkpoints carry it."""
        ...

    @property
    def arch(self) -> str:
        """The architecture ``progress.json`` names (``df``, ``liae``, ``dnr``)."""
        ...

    @property
    def people(self) -> int:
        """How many people it learns: 2 (src and dst: DF, LIAE) or 1 (the src person: dnr, whose dst loss is
        not reported)."""
        ...

    @property
    def resolution(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def where(self) -> Dist: ...

    @property
    def iteration(self) -> int:
        """Iterations trained so far (over every run); ``step`` counts it, ``load_state`` sets it."""
        ...

    @property
    def preview_caption(self) -> str:
        """What the preview's columns are, e.g. ``actor | recon | swap``."""
        ...

    def step(self) -> tuple[float, float]:
        """One iteration; the (src, dst) losses of its batch (averaged over processes; dst ignored for one
        person)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything ``load_state`` needs to continue bit for bit (collective under torchrun)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None: ...

    def preview_tiles(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR: the preview's picture, without its caption."""
        ...


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


def encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OutputError("PNG encoding failed")
    return data.tobytes()


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


def checkpoint_kind(state: dict[str, Any]) -> str:
    """What a checkpoint trains: ``dfm`` (DF/LIAE; also every checkpoint written before kinds were recorded)
    or ``dnr``."""
    return str(state.get("kind") or "dfm")


def check_disk(folder: Path, parameters: int) -> None:
    """OutputError when the training folder's disk cannot hold two checkpoints (weights + Adam's moments)."""
    need = parameters * 4 * 3 * 2 + 64 * 2**20
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OutputError(
            f"not enough disk space in {folder}: {free / 2**20:.0f} MiB free, checkpoints of this model need "
            f"about {need / 2**20:.0f} MiB; free some space or use --data-dir on another disk"
        )


def _finite(v: float) -> float | None:
    return round(v, 5) if math.isfinite(v) else None


# ---- the run ----------------------------------------------------------------------------------------------------


class TrainingRun:
    """Trains ``trainee`` in ``folder`` until a ``StopRule`` or a stop request, with the checkpoints, progress
    and previews the module describes."""

    def __init__(self, trainee: Trainee, folder: Path, timing: RunTiming | None = None) -> None:
        self.trainee = trainee
        self.folder = Path(folder)
        self.timing = timing or RunTiming()
        self.elapsed_s = 0.0
        self._ema: tuple[float, float] | None = None
        self._stop = threading.Event()
        self._cpu: tuple[float, float | None, float] = (time.process_time(), None, time.monotonic())
        """(CPU time at the run's start, its CPU budget in seconds, wall time at the start)."""

    @property
    def where(self) -> Dist:
        return self.trainee.where

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint ``read_checkpoint`` returned (of this trainee's kind)."""
        if checkpoint_kind(state) != self.trainee.kind:
            raise InputError(
                f"the checkpoint in {self.folder} trains a {checkpoint_kind(state)} model, not a {self.trainee.kind}"
            )
        self.trainee.load_state(state)
        self.elapsed_s = float(state["elapsed_s"])
        ema = state.get("ema")
        self._ema = (float(ema[0]), float(ema[1])) if ema is not None else None

    def request_stop(self) -> None:
        """Stop after the current iteration, with a checkpoint (what Ctrl-C and SIGTERM do)."""
        self._stop.set()

    def run(self, rule: StopRule, on_progress: Callable[[Progress], None] | None = None) -> str:
        """Train until ``rule`` or a stop request; ``"finished"`` or ``"stopped"``. Installs SIGINT/SIGTERM
        handlers when called on the main thread."""
        t = self.trainee
        timing = self.timing
        start = time.monotonic()
        deadline = start + rule.minutes * 60.0 if rule.minutes is not None else None
        cpu_start = time.process_time()
        cpu_budget = rule.cpu_minutes * 60.0 if rule.cpu_minutes is not None else None
        elapsed_before = self.elapsed_s
        last_ckpt = last_preview = last_progress = start
        rate_window: list[tuple[float, int]] = [(start, t.iteration)]
        state = "finished"
        self._cpu = (cpu_start, cpu_budget, start)
        if self.where.leader:
            self._write_progress(self._progress(rule, start, deadline, rate_window, "running"))
            self.write_preview()  # at once: the crops it trains on, and where the model stands
        with self._signals():
            while True:
                if rule.iterations is not None and t.iteration >= rule.iterations:
                    break
                losses = self._checked(t.step())
                now = time.monotonic()
                self.elapsed_s = elapsed_before + (now - start)
                self._smooth(losses)
                flags = [
                    self._stop.is_set(),
                    (deadline is not None and now >= deadline)
                    or (cpu_budget is not None and time.process_time() - cpu_start >= cpu_budget),
                    now - last_ckpt >= timing.checkpoint_every_s,
                    now - last_preview >= timing.preview_every_s,
                ]
                stop_req, timeout, ckpt, preview = self._agree(flags)
                if ckpt and not (stop_req or timeout):
                    self.save_checkpoint()
                    last_ckpt = now
                if preview and self.where.leader:
                    self.write_preview()
                    last_preview = now
                if now - last_progress >= timing.progress_every_s or stop_req or timeout:
                    rate_window.append((now, t.iteration))
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
            rate_window.append((time.monotonic(), t.iteration))
            final = self._progress(rule, time.monotonic(), deadline, rate_window, state)
            self._write_progress(final)
            if on_progress is not None:
                on_progress(final)
        return state

    def _checked(self, losses: tuple[float, float]) -> tuple[float, float]:
        """The losses as reported (dst nan for one person); EngineError when training diverged (before any
        checkpoint of the diverged weights is written)."""
        src, dst = losses[0], losses[1] if self.trainee.people > 1 else math.nan
        if not math.isfinite(src) or (self.trainee.people > 1 and not math.isfinite(dst)):
            said = f"loss src {src}" + (f", dst {dst}" if self.trainee.people > 1 else "")
            raise EngineError(
                f"training diverged at iteration {self.trainee.iteration} ({said}); the last checkpoint is intact: "
                "resume from it with a lower --lr"
            )
        return src, dst

    def _agree(self, flags: list[bool]) -> list[bool]:
        """The flags as every process sees them: rank 0's clock decides the timed ones, anyone's stop
        request stops everyone (one small all-reduce per iteration under torchrun)."""
        if self.where.world <= 1:
            return flags
        mine = [float(flags[0])] + [float(f) if self.where.leader else 0.0 for f in flags[1:]]
        t = torch.tensor(mine, device=self.trainee.device)
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
        iteration = self.trainee.iteration
        etas = []
        if rule.iterations is not None and rate > 0:
            etas.append(max(0, rule.iterations - iteration) / rate)
        if deadline is not None:
            etas.append(max(0.0, deadline - now))
        cpu_start, cpu_budget, wall_start = self._cpu
        used = time.process_time() - cpu_start
        if cpu_budget is not None and used > 0 and now > wall_start:
            etas.append(max(0.0, cpu_budget - used) / (used / (now - wall_start)))
        ema = self._ema or (math.nan, math.nan)
        return Progress(
            iteration, rule.iterations, ema[0], ema[1], rate, min(etas) if etas else None, self.elapsed_s, state
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
        t = self.trainee
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
            "resolution": t.resolution,
            "arch": t.arch,
            "kind": t.kind,
            "device": t.device.type,
            "processes": self.where.world,
            "pid": os.getpid(),
            "updated": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        with contextlib.suppress(OutputError):  # progress is advisory: never stop training for it
            write_atomic(self.folder / PROGRESS_FILE, (json.dumps(data, indent=1) + "\n").encode())

    def checkpoint_bytes(self) -> bytes:
        """The checkpoint as bytes (collective under torchrun: every rank must call it)."""
        state = {
            **self.trainee.state_dict(),
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "kind": self.trainee.kind,
            "iteration": self.trainee.iteration,
            "elapsed_s": self.elapsed_s,
            "world": self.where.world,
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

    def preview(self) -> np.ndarray:
        """The trainee's tiles, scaled up to a readable width, under a line with the iteration and what the
        columns are."""
        grid = self.trainee.preview_tiles()
        if grid.shape[1] < PREVIEW_MIN_WIDTH:
            scale = PREVIEW_MIN_WIDTH // grid.shape[1] + 1
            grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        header = np.full((28, grid.shape[1], 3), 24, np.uint8)
        text = f"iter {self.trainee.iteration}  {self.trainee.preview_caption}"
        cv2.putText(header, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
        return np.vstack([header, grid])

    def write_preview(self) -> None:
        """``preview.png``. A preview that cannot be written is logged, not fatal (a full disk stops training at
        the checkpoint)."""
        try:
            write_atomic(self.folder / PREVIEW_FILE, encode_png(self.preview()))
        except OutputError as exc:
            log.warning("no preview: %s", exc)
