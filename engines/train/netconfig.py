"""The shape of a swap model (``NetConfig``), apart from the networks themselves: the CLI, the training
folders and the model list read and check it without importing torch (which costs every `stageswap`
command seconds of start-up)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from engines.errors import InputError

ARCHES = ("df", "liae")


@dataclass(frozen=True)
class NetConfig:
    """The shape of a model: everything a checkpoint must agree on to be resumed."""

    arch: str = "df"
    resolution: int = 96
    encoder_dims: int = 32
    """Channels of the first encoder stage (then x2, x4, x8)."""
    ae_dims: int = 256
    """Width of the dense bottleneck."""
    inter_dims: int = 256
    """Channels of the code the inter hands to the decoder (at resolution / 16)."""
    decoder_dims: int = 32
    """Channels of the last decoder stage (x2, x4 before it)."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise InputError(f"architecture must be one of {', '.join(ARCHES)}, got {self.arch!r}")
        if not 32 <= self.resolution <= 512 or self.resolution % 16:
            raise InputError(f"resolution must be a multiple of 16 between 32 and 512, got {self.resolution}")
        for name in ("encoder_dims", "ae_dims", "inter_dims", "decoder_dims"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 4 <= v <= 2048:
                raise InputError(f"{name} must be an integer 4..2048, got {v!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> NetConfig:
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__})
