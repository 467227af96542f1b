"""The DF/LIAE trainer: one iteration = a src batch and a dst batch through the autoencoder, one Adam step.

Long work (checkpoints, ``--resume`` bit for bit, Ctrl-C/SIGTERM, progress, previews) is ``engines.train.loop``'s,
shared with the neural renderer: a ``Trainer`` is a ``Trainee`` with a ``TrainingRun`` of its own (``loop``) in its
training folder. Its checkpoint adds the weights, Adam's state, the state of every process's random generator and
the facesets it trains on; its preview shows, for a few actor faces, the face, its reconstruction and the swap,
and for the src person, the face and its reconstruction.

- **Devices**: the CPU, one CUDA GPU (bf16 autocast, optionally ``torch.compile``), or several processes
  through ``torchrun`` (DistributedDataParallel: NCCL on GPUs, gloo on CPUs). Every process draws its own
  batches (a generator per rank), gradients are averaged, rank 0 alone writes files; a stop request on any
  rank stops all of them at the same iteration.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from engines.errors import InputError
from engines.train.data import DST_AUGMENT, SRC_AUGMENT, FaceBatches
from engines.train.faceset import Faceset
from engines.train.loop import CHECKPOINT_FILE as CHECKPOINT_FILE
from engines.train.loop import PREVIEW_FILE as PREVIEW_FILE
from engines.train.loop import PROGRESS_FILE as PROGRESS_FILE
from engines.train.loop import (
    Dist,
    RunTiming,
    TrainingRun,
    data_parallel,
    generator_states,
    process_mean,
    restore_generator,
    sampler_seed,
)
from engines.train.loop import Progress as Progress
from engines.train.loop import StopRule as StopRule
from engines.train.loop import check_disk as check_disk
from engines.train.loop import read_checkpoint as read_checkpoint
from engines.train.losses import LossConfig, face_loss
from engines.train.nets import NetConfig, SwapNet, parameter_count

log = logging.getLogger(__name__)


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


# ---- devices and processes ----------------------------------------------------------------------------------


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


def leave_distributed(finished: bool = True) -> None:
    """Leave torchrun's process group, if joined. A rank that exits while another still talks to it can abort in
    gloo's threads ("terminate called without an active exception", SIGABRT, about one run in five of two CPU ranks:
    torchrun then reports the whole run failed, though every step and checkpoint was done), so a ``finished`` rank
    first waits for the others at a barrier; one leaving on an error does not (the others may never come)."""
    if dist.is_available() and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


# ---- the trainer ------------------------------------------------------------------------------------------------


class Trainer:
    """Trains one model in ``folder`` on a src and a dst faceset (both at ``cfg.net.resolution``); a ``Trainee``
    of ``engines.train.loop``, with its ``TrainingRun`` in ``loop``."""

    kind = "dfm"
    people = 2
    preview_caption = "actor | recon | swap ; src | recon"

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
        self.model = data_parallel(self.net, self.device, self.where)
        if cfg.compile and self.device.type == "cuda":
            self.model = torch.compile(self.model)  # type: ignore[assignment]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.src = FaceBatches(src, self.device, SRC_AUGMENT, colour_refs=dst)
        self.dst = FaceBatches(dst, self.device, DST_AUGMENT)
        self.gen = torch.Generator().manual_seed(sampler_seed(cfg.seed, self.where))
        self.iteration = 0
        self.last_losses = (math.nan, math.nan)
        self._preview_dst = np.unique(np.linspace(0, len(dst) - 1, 4).round().astype(int))
        self._preview_src = np.unique(np.linspace(0, len(src) - 1, 4).round().astype(int))
        self.loop = TrainingRun(
            self, self.folder, RunTiming(cfg.checkpoint_every_s, cfg.preview_every_s, cfg.progress_every_s)
        )

    @property
    def parameters(self) -> int:
        return parameter_count(self.net)

    @property
    def arch(self) -> str:
        return self.cfg.net.arch

    @property
    def resolution(self) -> int:
        return self.cfg.net.resolution

    # ---- one iteration

    def step(self) -> tuple[float, float]:
        """One training iteration; the (src, dst) losses of its batch (averaged over processes; the loop stops a
        training whose loss is no longer finite)."""
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
        values = process_mean(torch.stack([loss_src.detach(), loss_dst.detach()]).float(), self.where).cpu().tolist()
        self.last_losses = (float(values[0]), float(values[1]))
        return self.last_losses

    # ---- running (the loop's, in this trainer's folder)

    def run(self, rule: StopRule, on_progress: Callable[[Progress], None] | None = None) -> str:
        """``self.loop.run``: train until ``rule`` or a stop request; ``"finished"`` or ``"stopped"``."""
        return self.loop.run(rule, on_progress)

    def save_checkpoint(self) -> None:
        self.loop.save_checkpoint()

    # ---- state and preview (the Trainee protocol)

    def state_dict(self) -> dict[str, Any]:
        """Config, facesets, weights, Adam's state and every rank's generator (collective under torchrun)."""
        gens = generator_states(self.gen, self.where)
        return {
            "config": self.cfg.to_json(),
            "coverage": self.coverage,
            "src": self.src_info,
            "dst": self.dst_info,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": gens,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint ``read_checkpoint`` returned (its config checked by ``resume_config``);
        ``self.loop.restore`` also takes the training time and smoothed loss."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        restore_generator(self.gen, state["generators"], self.where, self.cfg.seed, self.iteration)

    @torch.no_grad()
    def preview_tiles(self) -> np.ndarray:
        """Rows of actor face | its reconstruction | the swap, then src face | its reconstruction."""
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
        return np.vstack(rows)


# ---- resuming ----------------------------------------------------------------------------------------------------


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
