"""The swap autoencoders: DeepFaceLab's two published designs, written from the paper (arXiv 2005.05535).

Both learn two people at once from aligned face crops, and swap by decoding the actor's (dst) face with
the part of the network that learned the identity (src):

- **DF**: one encoder and one *inter* (a dense bottleneck) shared by both people, one decoder per person.
  The shared code must describe pose, expression and light for both faces, and each decoder draws its own
  person from it; the swap is ``decoder_src(inter(encoder(dst)))``.
- **LIAE**: one encoder and one decoder shared; two inters. ``inter_ab`` codes both people, ``inter_b`` only
  the actor. The src face is decoded from ``[inter_ab(src), inter_ab(src)]``, the actor's from
  ``[inter_b(dst), inter_ab(dst)]``, and the swap from ``[inter_ab(dst), inter_ab(dst)]``: the actor's face
  as if it were coded like the src person's. It tends to keep the actor's expression and light better and
  the identity less.

Each decoder outputs the face (3 channels, BGR 0..1) and its mask (1 channel) from one trunk.

Layers are plain convolutions, LeakyReLU, dense layers and pixel shuffles (sub-pixel upscaling): what
ONNX Runtime, TensorRT, DeepFaceLive and stageswap's own torch interpreter all run.
"""

from __future__ import annotations

import torch
from torch import nn

from engines.train.netconfig import ARCHES as ARCHES  # re-exported: the shape lives apart from torch
from engines.train.netconfig import NetConfig as NetConfig

NEG_SLOPE = 0.1


def _act() -> nn.Module:
    return nn.LeakyReLU(NEG_SLOPE)


class Down(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 5, stride=2, padding=2), _act())


class Up(nn.Sequential):
    """Double the resolution: a convolution to 4x the channels, then a pixel shuffle."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout * 4, 3, padding=1), _act(), nn.PixelShuffle(2))


class Residual(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class Encoder(nn.Sequential):
    def __init__(self, cfg: NetConfig) -> None:
        e = cfg.encoder_dims
        super().__init__(Down(3, e), Down(e, e * 2), Down(e * 2, e * 4), Down(e * 4, e * 8), nn.Flatten())
        self.out_features = e * 8 * (cfg.resolution // 16) ** 2


class Inter(nn.Module):
    """Dense bottleneck: the flattened encoding -> ``ae_dims`` -> a ``inter_dims`` x (res/16)^2 code."""

    def __init__(self, cfg: NetConfig, in_features: int, out_channels: int) -> None:
        super().__init__()
        self.side = cfg.resolution // 16
        self.channels = out_channels
        self.dense1 = nn.Linear(in_features, cfg.ae_dims)
        self.dense2 = nn.Linear(cfg.ae_dims, out_channels * self.side * self.side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense2(self.dense1(x))
        return x.reshape(-1, self.channels, self.side, self.side)


class Decoder(nn.Module):
    """A code at res/16 -> (face BGR 0..1, mask 0..1) at full resolution."""

    def __init__(self, cfg: NetConfig, in_channels: int) -> None:
        super().__init__()
        d = cfg.decoder_dims
        self.trunk = nn.Sequential(
            Up(in_channels, d * 8),
            Residual(d * 8),
            Up(d * 8, d * 4),
            Residual(d * 4),
            Up(d * 4, d * 2),
            Residual(d * 2),
            Up(d * 2, d),
        )
        self.out = nn.Conv2d(d, 4, 3, padding=1)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.sigmoid(self.out(self.trunk(code)))
        return y[:, :3], y[:, 3:]


class SwapNet(nn.Module):
    """DF or LIAE: ``forward(src, dst)`` gives the two reconstructions for training, ``swap(dst)`` the
    src person's face drawn on the actor's (with the src mask), ``dst_mask(dst)`` the actor's face mask."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        n = self.encoder.out_features
        if cfg.arch == "df":
            self.inter = Inter(cfg, n, cfg.inter_dims)
            self.decoder_src = Decoder(cfg, cfg.inter_dims)
            self.decoder_dst = Decoder(cfg, cfg.inter_dims)
        else:
            self.inter_ab = Inter(cfg, n, cfg.inter_dims)
            self.inter_b = Inter(cfg, n, cfg.inter_dims)
            self.decoder = Decoder(cfg, cfg.inter_dims * 2)

    def forward(
        self, src: torch.Tensor, dst: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """((src face, src mask), (dst face, dst mask)) reconstructed: one pass through the encoder."""
        n = src.shape[0]
        codes = self.encoder(torch.cat([src, dst]))
        if self.cfg.arch == "df":
            z = self.inter(codes)
            return self.decoder_src(z[:n]), self.decoder_dst(z[n:])
        ab = self.inter_ab(codes)
        b = self.inter_b(codes[n:])
        z_src = torch.cat([ab[:n], ab[:n]], dim=1)
        z_dst = torch.cat([b, ab[n:]], dim=1)
        face, mask = self.decoder(torch.cat([z_src, z_dst]))
        return (face[:n], mask[:n]), (face[n:], mask[n:])

    def swap(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(swapped face, its mask, the actor's own face mask) for actor crops ``dst``."""
        codes = self.encoder(dst)
        if self.cfg.arch == "df":
            z = self.inter(codes)
            face, mask = self.decoder_src(z)
            _, dst_mask = self.decoder_dst(z)
            return face, mask, dst_mask
        ab = self.inter_ab(codes)
        face, mask = self.decoder(torch.cat([ab, ab], dim=1))
        _, dst_mask = self.decoder(torch.cat([self.inter_b(codes), ab], dim=1))
        return face, mask, dst_mask


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
