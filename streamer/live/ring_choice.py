"""Which FrameRing a stream or a file run uses: the one place the ring is picked by device.

Its own module because it names both rings: ``streamer.live.cuda_ring`` builds on ``streamer.live.ring``, so
``ring`` cannot import it back (and importing the CUDA ring needs pycuda, which only a GPU machine has).
"""

from __future__ import annotations

from engines.errors import InputError
from engines.runtime.select import resolve_device
from streamer.live.ring import CpuFrameRing, FrameRing


def make_ring(device: str, slots: int = 3) -> FrameRing:
    """The ring for frames processed on ``device`` (``auto``, ``cpu`` or ``cuda``, resolved as the engines'
    ``engines.runtime.select.resolve_device``). ``cuda``: the ``CudaFrameRing`` on torch's current GPU, so each
    frame is uploaded once at ingest, overlapping the worker's compute. Raises InputError when the CUDA ring
    cannot be made (pycuda not installed, no driver): said in one line, never per frame."""
    if resolve_device(device) == "cpu":
        return CpuFrameRing(slots)
    try:
        from streamer.live.cuda_ring import CudaFrameRing
    except ImportError as exc:
        raise InputError(f"--device cuda: {exc}") from None
    import torch

    try:
        return CudaFrameRing(slots, device=torch.cuda.current_device())
    except Exception as exc:  # pycuda's driver errors: no device, out of memory, a broken install
        raise InputError(f"--device cuda: cannot make the CUDA frame ring: {exc}") from None


def ring_device(device: str, requested: str) -> tuple[str, str | None]:
    """Where a run's rings live, checked by making one now (so a CUDA ring that cannot be is said at start):
    ``device``, the engines' resolved device; or, when the user left the choice to ``--device auto`` and the
    CUDA ring cannot be made (pycuda, the ``gpu`` extra, missing), ``cpu`` and the warning to print — the
    models still run on the GPU. With an explicit ``--device cuda`` the InputError goes up."""
    try:
        make_ring(device).free()
    except InputError as exc:
        if requested != "auto":
            raise
        cause = str(exc).removeprefix("--device cuda: ")
        return "cpu", f"the CUDA frame ring is unavailable ({cause}): frames stay in CPU memory until processed"
    return device, None
