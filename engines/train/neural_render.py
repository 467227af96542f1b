"""Deferred neural rendering of one person on stageswap's face mesh: a probe against the DF/LIAE designs (issue 19).

The idea is Thies, Zollhöfer and Nießner's "Deferred Neural Rendering: Image Synthesis using Neural Textures"
(SIGGRAPH 2019), written here from the paper: instead of an autoencoder that must learn the geometry of two
faces from their pixels, the geometry comes from our tracker. Every face crop's 468-point mesh is rasterised
with the mesh swap's own rasteriser (``engines.swap.raster``) over the mesh swap's texture layout
(``engines.face.topology``), giving each pixel its texture coordinates; a learnable **neural texture** (a few
feature channels per texel, in a pyramid of resolutions so coarse levels learn fast) is sampled there, and a
small U-Net renders the sampled features to the face's colours.

It trains on one person alone (the src person's own frames: their mesh -> their face crop) and swaps by
rasterising the actor's mesh with the src person's texture: the src person at the actor's pose and
expression. Nothing about the actor is learned, so a trained identity would serve every performer.

- The texture's first three channels are an offset added to the rendered colour (``rgb = 0.5 + features[:3] +
  unet(features)``), so they can start as the mesh swap's identity texture (``init_texture``: enrolled from the
  src person's footage) and the U-Net learns only what that texture lacks; its last layer starts at zero.
- Loss: the DF designs' own (``engines.train.losses.face_loss``: masked DSSIM + MSE, eyes and mouth weighted),
  its mask term zero (the mesh says where the face is: nothing to learn), kept inside the drawn mesh and off its
  outline, where the crop mixes the face with the wall behind it (``DnrTrainConfig.outline``).
- Augmentation: a random rotation, scale and shift of crop, masks and texture-coordinate maps alike (one
  ``grid_sample``); no random warp (the input is geometry, not pixels to copy). Some samples are mirrored, but
  they teach only the texels the faceset rarely shows (the far side of a head that turns one way): a person's
  face is not symmetric, so where a texel is seen the mirror image would teach it the other side.
- The swap's colours: the person's footage has its own light; the rendered face takes the actor's colour
  statistics inside the face mask (a per-channel mean and spread transfer in YCbCr, as the DF training's
  colour augmentation does), the only thing it takes from the actor's pixels.

Measured by ``benchmarks/bench_train.py --configs dnr:64`` beside DF at the same CPU budget; trained as a product
model by ``stageswap train NAME --arch dnr``. It is not a DFM (its input is the texture coordinates, not a face
crop): ``export_onnx`` writes the renderer with its texture baked in, registered as model kind ``dnr``, and
``engines.swap.learned.NeuralRenderSwapper`` runs that on live faces without torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.errors import InputError
from engines.face.topology import mirror_vertices
from engines.swap.neural import CHROMA_SHIFT_MAX, CHROMA_SPREAD, COVERED_NAME, FACE_NAME, OUTLINE, UV_NAME
from engines.swap.neural import uv_maps as uv_maps  # the texture coordinates per pixel, from the mesh
from engines.train.data import _bgr, _masked_stats, _ycc, to_tensor
from engines.train.faceset import Faceset
from engines.train.loop import Dist, data_parallel, generator_states, process_mean, restore_generator, sampler_seed
from engines.train.losses import LossConfig, face_loss

NEG_SLOPE = 0.1


@dataclass(frozen=True)
class DnrConfig:
    resolution: int = 64
    """Side of the face crops it renders (px), a multiple of 8."""
    texture_px: int = 128
    """Side of the neural texture's finest level (texels)."""
    channels: int = 16
    """Feature channels per texel (the first three are a colour offset)."""
    levels: int = 4
    """Levels of the texture pyramid (each half the side of the one before), sampled and summed."""
    dims: int = 24
    """Channels of the U-Net's first stage (then x2, x4, x4)."""

    def __post_init__(self) -> None:
        if not 32 <= self.resolution <= 512 or self.resolution % 8:
            raise InputError(f"resolution must be a multiple of 8 between 32 and 512, got {self.resolution}")
        if self.texture_px >> (self.levels - 1) < 4:
            raise InputError(f"a {self.texture_px} texel texture cannot hold {self.levels} levels")
        if self.channels < 3:
            raise InputError(f"the neural texture needs at least 3 channels, got {self.channels}")


@dataclass(frozen=True)
class DnrTrainConfig:
    net: DnrConfig = DnrConfig()
    batch: int = 8
    lr: float = 1e-3
    """Adam's step for the U-Net."""
    texture_lr: float = 2e-3
    """Adam's step for the neural texture. At 1e-2 the texels at the layout's rim, which only turned heads train,
    were pushed about by Adam's full-size steps on their small gradients: multicoloured specks along the far cheek's
    outline; at 2e-3 they are gone and the likeness is the same (bench_train, BENCHMARKS.md issue 19)."""
    seed: int = 0
    loss: LossConfig = LossConfig(reach_outline=False)
    """The DF designs' loss, kept inside the mesh: the renderer draws nothing past it."""
    outline: float = OUTLINE
    """Pixels within this share of the crop's side of the drawn mesh's outline (2 px at 128) are left out of the
    loss: there the crop mixes the face with the wall or hair behind it, and the texels drawn there are the
    ones a frontal faceset shows nowhere else. Taught the wall, they drew an orange-brown streak down the far
    cheek of heads turned further than the faceset's (issue 19). The swap leaves the same band out
    (``engines.swap.neural.drawn``)."""
    mirror: float = 0.3
    """Share of the samples shown mirrored (the crop flipped left to right, the mesh through the layout's own
    mirror, ``engines.face.topology.mirror_vertices``), so the far side's texels learn from the near side..."""
    mirror_seen: float = 0.25
    """...but only texels the unmirrored faceset shows rarely: a mirrored pixel counts in full where its texel is
    drawn inside the outline in no face, and not at all from this many pixels per face on (a person's face is
    not symmetric: where it is seen, the mirror image would teach the texture the other side)."""
    rotate_deg: float = 8.0
    scale: float = 0.05
    shift: float = 0.04
    """Pose jitter: rotation, scale and shift (fraction of the crop side) of every training sample."""


# ---- the model -------------------------------------------------------------------------------------------------


def _act() -> nn.Module:
    return nn.LeakyReLU(NEG_SLOPE)


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1), _act(), nn.Conv2d(cout, cout, 3, padding=1), _act()
        )


class NeuralRenderer(nn.Module):
    """The neural texture and the U-Net that renders it: ``forward(uv, covered)`` -> colours (N, 3, R, R)."""

    def __init__(self, cfg: DnrConfig, init_texture: np.ndarray | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(0)
        self.texture = nn.ParameterList(
            nn.Parameter(torch.randn(1, cfg.channels, cfg.texture_px >> k, cfg.texture_px >> k, generator=gen) * 0.01)
            for k in range(cfg.levels)
        )
        if init_texture is not None:
            self.set_colour(init_texture)
        d = cfg.dims
        cin = cfg.channels + 1
        self.enc0 = _Block(cin, d)
        self.enc1 = _Block(d, d * 2, stride=2)
        self.enc2 = _Block(d * 2, d * 4, stride=2)
        self.enc3 = _Block(d * 4, d * 4, stride=2)
        self.dec2 = _Block(d * 4 + d * 4, d * 4)
        self.dec1 = _Block(d * 4 + d * 2, d * 2)
        self.dec0 = _Block(d * 2 + d + cin, d)
        self.out = nn.Conv2d(d, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None
        nn.init.zeros_(self.out.bias)

    @torch.no_grad()
    def set_colour(self, texture_bgr: np.ndarray) -> None:
        """The finest level's colour channels from a texture over the same layout (uint8 BGR, any square size:
        the mesh swap's identity texture), as an offset from mid-grey; the coarser levels' colour channels zero."""
        tex = torch.from_numpy(np.array(texture_bgr, np.uint8)).permute(2, 0, 1)[None].float() / 255.0
        side = self.cfg.texture_px
        tex = F.interpolate(tex, size=(side, side), mode="area") if tex.shape[-1] > side else tex
        tex = F.interpolate(tex, size=(side, side), mode="bilinear", align_corners=False)
        self.texture[0][:, :3] = tex - 0.5
        for level in self.texture[1:]:
            level[:, :3] = 0.0

    def sample(self, uv: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
        """The neural texture at every pixel: (N, channels, R, R), zero where no triangle is drawn."""
        grid = uv * 2.0 - 1.0
        n = uv.shape[0]
        feats = sum(
            F.grid_sample(
                level.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="border", align_corners=False
            )
            for level in self.texture
        )
        assert isinstance(feats, torch.Tensor)
        return feats * covered[:, None]

    def forward(self, uv: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
        feats = self.sample(uv, covered)
        x0 = torch.cat([feats, covered[:, None]], dim=1)
        e0 = self.enc0(x0)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([_up(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([_up(d2), e1], dim=1))
        d0 = self.dec0(torch.cat([_up(d1), e0, x0], dim=1))
        return 0.5 + feats[:, :3] + self.out(d0)


def _erode(mask: torch.Tensor, px: int) -> torch.Tensor:
    """``mask`` (N, 1, R, R) 0/1 less ``px`` pixels along its outline (the crop's border counts as outside)."""
    k = 2 * px + 1
    return 1.0 - F.max_pool2d(F.pad(1.0 - mask, (px,) * 4, value=1.0), k, stride=1)


def _texel(uv: torch.Tensor, side: int) -> torch.Tensor:
    """The finest level's texel index (N, 1, R, R) under each pixel's texture coordinates ``uv`` (N, 2, R, R)."""
    u = (uv[:, 0:1] * side).long().clamp(0, side - 1)
    v = (uv[:, 1:2] * side).long().clamp(0, side - 1)
    return v * side + u


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def colour_match(face: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``face`` (N, 3, R, R) BGR 0..1 with the YCbCr mean and luma spread of ``reference`` inside ``mask``
    (N, 1, R, R), its chroma spread bounded (``CHROMA_SPREAD``): the live swap's ``engines.swap.neural.colour_match``
    in torch."""
    y = _ycc(face)
    m_face, s_face = _masked_stats(y, mask)
    m_ref, s_ref = _masked_stats(_ycc(reference), mask)
    ratio = s_ref / s_face
    ratio = torch.cat([ratio[:, :1], ratio[:, 1:].clamp(*CHROMA_SPREAD)], dim=1)
    # The chroma's mean shift in proportion to the pixel's matched luma (``chroma_shift_weight``).
    matched = (y[:, :1] - m_face[:, :1]) * ratio[:, :1] + m_ref[:, :1]
    weight = (matched / m_ref[:, :1].clamp_min(1e-3)).clamp(0.0, CHROMA_SHIFT_MAX)
    weight = torch.cat([torch.ones_like(weight), weight, weight], dim=1)
    return _bgr(y * ratio + (m_ref - m_face * ratio) * weight).clamp(0.0, 1.0)


# ---- training --------------------------------------------------------------------------------------------------


class DnrTrainer:
    """Trains a ``NeuralRenderer`` on one person's faceset (at ``cfg.net.resolution``); ``swap`` renders that
    person on other faces' meshes. On the CPU, one GPU, or several processes through ``torchrun`` (``where``:
    DistributedDataParallel over the U-Net and the neural texture, each rank sampling its own faces, as the DF
    trainer does). A ``Trainee`` of ``engines.train.loop`` (checkpoints, resume, progress, previews:
    ``TrainingRun``)."""

    kind = "dnr"
    arch = "dnr"
    people = 1

    def __init__(
        self,
        cfg: DnrTrainConfig,
        src: Faceset,
        init_texture: np.ndarray | None = None,
        device: torch.device | None = None,
        where: Dist | None = None,
    ) -> None:
        res = cfg.net.resolution
        if src.images.shape[1] != res:
            raise InputError(f"the faceset is loaded at {src.images.shape[1]} px, the renderer is {res} px")
        if len(src) == 0:
            raise InputError(f"the faceset {src.path} has no faces")
        self.cfg = cfg
        self.device = device or torch.device("cpu")
        torch.manual_seed(cfg.seed)
        self.net = NeuralRenderer(cfg.net, init_texture).to(self.device)
        texture = list(self.net.texture.parameters())
        ids = {id(p) for p in texture}
        rest = [p for p in self.net.parameters() if id(p) not in ids]
        self.optimizer = torch.optim.Adam(
            [{"params": texture, "lr": cfg.texture_lr}, {"params": rest, "lr": cfg.lr}], betas=(0.9, 0.999)
        )
        uv, covered = uv_maps(src.landmarks, res)
        self.images = to_tensor(src.images, self.device)
        self.masks = to_tensor(src.masks, self.device)
        self.landmarks = np.asarray(src.landmarks, np.float64)[..., :2]
        self.uv = torch.from_numpy(uv).permute(0, 3, 1, 2).to(self.device)
        self.covered = torch.from_numpy(covered)[:, None].to(self.device)
        self.rim_px = max(1, round(cfg.outline * res))
        self.seen = self._texels_seen()
        self.gen = torch.Generator().manual_seed(cfg.seed * 7919)
        self.iteration = 0
        self.last_losses = (math.nan, math.nan)
        self.coverage = src.coverage
        self.src_info = {"path": str(src.path), "paths": [str(p) for p in src.folders], "faces": len(src)}
        self._preview_src = _preview_faces(src)
        self._preview_dst: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.dst_info: dict[str, Any] | None = None
        """The faceset ``preview_on`` previews on (none: the checkpoint's ``dst`` is None)."""
        self.where = where or Dist()
        self.gen.manual_seed(sampler_seed(cfg.seed, self.where))  # a stream per process (rank 0: the one above)
        self.model = data_parallel(self.net, self.device, self.where)
        """What trains (``net`` in DistributedDataParallel under torchrun); the rest uses ``net``."""

    def _texels_seen(self) -> torch.Tensor:
        """Per texel of the finest level (T, T): how many pixels of the face mask inside the drawn mesh's outline
        show it, per face of the (unmirrored) faceset."""
        side = self.cfg.net.texture_px
        seen = torch.zeros(side * side, device=self.device)
        for k in range(0, self.uv.shape[0], 64):
            inner = _erode(self.covered[k : k + 64], self.rim_px) * self.masks[k : k + 64, :1].float() / 255.0
            seen.index_add_(0, _texel(self.uv[k : k + 64], side).flatten(), inner.flatten())
        return (seen / self.uv.shape[0]).reshape(side, side)

    def _mirrored(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uv (n, 2, R, R) and covered (n, 1, R, R) of the faces ``idx`` flipped left to right."""
        res = self.cfg.net.resolution
        lm = self.landmarks[idx.numpy()][:, mirror_vertices()]
        lm[..., 0] = res - 1 - lm[..., 0]  # pixel centres at whole coordinates: x -> R-1-x flips the crop
        uv, covered = uv_maps(lm, res)
        return torch.from_numpy(uv).permute(0, 3, 1, 2).to(self.device), torch.from_numpy(covered)[:, None].to(
            self.device
        )

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(uv (n, R, R, 2), covered (n, R, R), target (n, 3, R, R), masks (n, 3, R, R)) of ``n`` random faces,
        some mirrored, each turned, scaled and shifted a little (all four alike). ``masks`` are the loss's
        weights: zero near the drawn mesh's outline, and on a mirrored face zero where the texel is well seen."""
        c = self.cfg
        res = c.net.resolution
        idx = torch.randint(0, self.images.shape[0], (n,), generator=gen)
        mirrored = torch.rand(n, generator=gen) < c.mirror
        rot = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(c.rotate_deg)
        scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * c.scale
        shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * c.shift * 2
        cos, sin = torch.cos(rot) / scale, torch.sin(rot) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
        ).to(self.device)
        grid = F.affine_grid(theta, [n, 1, res, res], align_corners=False)
        i = idx.to(self.device)
        stack = torch.cat(
            [self.images[i].float() / 255.0, self.masks[i].float() / 255.0, self.uv[i], self.covered[i]], dim=1
        )
        if bool(mirrored.any()):
            m = mirrored.nonzero()[:, 0].to(self.device)
            uv_m, covered_m = self._mirrored(idx[mirrored])
            stack[m] = torch.cat([stack[m, :6].flip(-1), uv_m, covered_m], dim=1)
        out = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # A pixel that mixes drawn and undrawn texels would look up a texel between the face and (0, 0): off.
        covered = (out[:, 8:9] > 0.999).float()
        uv = out[:, 6:8]
        weight = _erode(covered, self.rim_px)
        side = self.cfg.net.texture_px
        rare = (1.0 - self.seen.flatten()[_texel(uv, side)] / c.mirror_seen).clamp(0.0, 1.0)
        weight = torch.where(mirrored.to(self.device)[:, None, None, None], weight * rare, weight)
        return uv.permute(0, 2, 3, 1).contiguous(), covered[:, 0], out[:, :3], out[:, 3:6] * weight

    def step(self) -> tuple[float, float]:
        """One iteration: a batch of the person's faces rendered from their meshes, one Adam step; the loss
        (twice, as the two-person trainers report src and dst)."""
        uv, covered, target, masks = self.sample(self.cfg.batch, self.gen)
        self.net.train()
        pred = self.model(uv, covered)
        loss = face_loss(pred, masks[:, :1], target, masks, self.cfg.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        value = float(process_mean(loss.detach(), self.where))
        self.last_losses = (value, value)
        return self.last_losses

    # ---- what the loop needs (engines.train.loop.Trainee)

    @property
    def resolution(self) -> int:
        return self.cfg.net.resolution

    def state_dict(self) -> dict[str, Any]:
        """Config, faceset, weights, Adam's state and every rank's sampler generator (collective under torchrun)."""
        return {
            "config": asdict(self.cfg),
            "coverage": self.coverage,
            "src": self.src_info,
            "dst": self.dst_info,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": generator_states(self.gen, self.where),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint (its config is ``train_config_from_json(state["config"])``)."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        restore_generator(self.gen, state["generators"], self.where, self.cfg.seed, self.iteration)

    def preview_on(self, actor: Faceset) -> None:
        """Add rows to the preview: the person rendered on these faces' meshes (``swap``): footage to preview on."""
        if actor.images.shape[1] != self.resolution:
            raise InputError(f"the preview faceset is loaded at {actor.images.shape[1]} px, not {self.resolution}")
        self._preview_dst = _preview_faces(actor)
        self.dst_info = {"path": str(actor.path), "paths": [str(p) for p in actor.folders], "faces": len(actor)}

    @property
    def preview_caption(self) -> str:
        return "src | recon" + (" ; actor | swap" if self._preview_dst is not None else "")

    @torch.no_grad()
    def preview_tiles(self) -> np.ndarray:
        """Rows of the person's face | its rendering from the face's own mesh (drawn where the mesh covers,
        dark elsewhere); then, with ``preview_on`` footage, actor face | the person rendered there (``swap``)."""
        images, _, landmarks = self._preview_src
        face, covered = self.render(landmarks)
        recon = face * covered + 0.1 * (1.0 - covered)
        rows = [np.hstack(pair) for pair in zip(images, _tiles(recon), strict=True)]
        if self._preview_dst is not None:
            images, masks, landmarks = self._preview_dst
            rows += [np.hstack(pair) for pair in zip(images, _tiles(self.swap(images, masks, landmarks)), strict=True)]
        return np.vstack(rows)

    @torch.no_grad()
    def render(self, landmarks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The person rendered on meshes ``landmarks`` (N, 468, 2, crop pixels): (N, 3, R, R) 0..1 and where
        the mesh is drawn (N, 1, R, R)."""
        uv, covered = uv_maps(landmarks, self.cfg.net.resolution)
        uv_t = torch.from_numpy(uv).to(self.device)
        cov_t = torch.from_numpy(covered).to(self.device)
        self.net.eval()
        return self.net(uv_t, cov_t).clamp(0.0, 1.0), cov_t[:, None]

    @torch.no_grad()
    def swap(self, images: np.ndarray, masks: np.ndarray, landmarks: np.ndarray) -> torch.Tensor:
        """The person on actor crops (``images`` (N, R, R, 3) uint8 BGR, their faceset ``masks`` and mesh
        ``landmarks`` (N, 468, 2)): rendered at the actor's pose and expression, coloured like the actor's
        face, and laid over the actor's crop through the actor's face mask. (N, 3, R, R) 0..1."""
        face, covered = self.render(landmarks)
        actor = to_tensor(images, self.device).float() / 255.0
        mask = to_tensor(masks, self.device)[:, :1].float() / 255.0 * _erode(covered, self.rim_px)
        face = colour_match(face, actor, mask)
        return face * mask + actor * (1.0 - mask)


def _preview_faces(fs: Faceset, n: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, masks, landmarks) of ``n`` faces spread over the faceset: what the preview shows."""
    pick = np.unique(np.linspace(0, len(fs) - 1, n).round().astype(int))
    return fs.images[pick].copy(), fs.masks[pick].copy(), fs.landmarks[pick].copy()


def _tiles(x: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, R, R) 0..1 -> N uint8 BGR tiles."""
    return list((x.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


def train_config_from_json(obj: dict[str, Any]) -> DnrTrainConfig:
    """The ``DnrTrainConfig`` a checkpoint was trained with (``asdict`` of it); fields added since take this
    version's defaults, fields since removed are left out."""

    def known(d: dict[str, Any], cls: Any) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}

    defaults = DnrTrainConfig()
    rest = {k: v for k, v in known(obj, DnrTrainConfig).items() if k not in ("net", "loss")}
    net = replace(defaults.net, **known(obj["net"], DnrConfig))
    loss = replace(defaults.loss, **known(obj["loss"], LossConfig))
    return replace(defaults, net=net, loss=loss, **rest)


# ---- export: what a runtime would run --------------------------------------------------------------------------

ONNX_OPSET = 17
"""GridSample (the texture lookup) is in ONNX from opset 16; ONNX Runtime and TensorRT 8.5+ run it."""


class _RenderGraph(nn.Module):
    """NHWC around ``NeuralRenderer``: ``uv`` (N, R, R, 2), ``covered`` (N, R, R, 1) -> ``face`` (N, R, R, 3)."""

    def __init__(self, net: NeuralRenderer) -> None:
        super().__init__()
        self.net = net

    def forward(self, uv: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
        face = self.net(uv, covered[..., 0]).clamp(0.0, 1.0)
        return face.permute(0, 2, 3, 1)


def export_onnx(net: NeuralRenderer, path: str | Path, shape: np.ndarray | None = None) -> None:
    """The renderer as an ONNX graph, its neural texture baked in as constants: inputs ``uv`` (float32
    ``[N, R, R, 2]``, texture coordinates 0..1 of the mesh swap's layout per pixel of the face crop, 0 where no
    triangle is drawn) and ``covered`` (``[N, R, R, 1]``, 1 where one is); output ``face`` (``[N, R, R, 3]``, BGR
    0..1, meaningful where ``covered``). Not a DFM: its input is the actor's mesh, not the actor's pixels.
    ``shape``: its person's face shape (``engines.train.shape``), stored in the file's metadata for the swap's
    morph (``engines.swap.neural.SHAPE_KEY``)."""
    import os
    import warnings

    res = net.cfg.resolution
    graph = _RenderGraph(net).to("cpu").eval()
    example = (torch.rand(1, res, res, 2), torch.ones(1, res, res, 1))
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                input_names=[UV_NAME, COVERED_NAME],
                output_names=[FACE_NAME],
                dynamic_axes={n: {0: "N"} for n in (UV_NAME, COVERED_NAME, FACE_NAME)},
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        if shape is not None:
            from engines.swap.neural import write_shape

            write_shape(tmp, tmp, shape)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
