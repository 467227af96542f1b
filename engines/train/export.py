"""A trained swap model as a DFM: the ONNX file DeepFaceLab exports and DeepFaceLive and stageswap run.

The format followed is what DeepFaceLive's ``DFMModel`` (modelhub/DFLive/DFMModel.py, its 1.x releases)
reads, which is also what ``engines.swap.model_inspect`` checks before ``models add`` registers a DFM:

- one input ``in_face:0``: float32 NHWC ``[N, R, R, 3]``, the aligned face in BGR, 0..1, a fixed R
  (DeepFaceLive reads R from the input's declared shape); no ``morph_value:0`` (an SAEHD-style model,
  DeepFaceLive's "model type 1");
- three outputs, in this order (DeepFaceLive unpacks them by position): ``out_face_mask:0`` ``[N, R, R, 1]``
  (where the actor's face is), ``out_celeb_face:0`` ``[N, R, R, 3]`` (the swapped face, BGR 0..1) and
  ``out_celeb_face_mask:0`` ``[N, R, R, 1]`` (where the swapped face is);
- ONNX opset 13 and IR version 7, which every ONNX Runtime since 1.8 loads (DeepFaceLive ships 1.x
  runtimes; DeepFaceLab's own exports are opset 12-13).

The face framing is stageswap's whole-face crop at the faceset's coverage; it is registered with the model
(``coverage`` in ``models.json``) so stageswap crops as the model was trained, and must be set by hand in
DeepFaceLive (its face coverage setting).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from engines.errors import ModelError
from engines.swap.model_inspect import Inspection, inspect_model
from engines.train.nets import SwapNet

DFM_OPSET = 13
DFM_IR_VERSION = 7
INPUT_NAME = "in_face:0"
OUTPUT_NAMES = ("out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0")


class DfmGraph(nn.Module):
    """The DFM signature around a ``SwapNet``: NHWC BGR in, the three NHWC outputs in DeepFaceLive's order."""

    def __init__(self, net: SwapNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, in_face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = in_face.permute(0, 3, 1, 2)
        face, face_mask, dst_mask = self.net.swap(x)
        return dst_mask.permute(0, 2, 3, 1), face.permute(0, 2, 3, 1), face_mask.permute(0, 2, 3, 1)


def export_dfm(net: SwapNet, path: Path) -> Inspection:
    """Write ``net`` as a DFM at ``path`` (written beside it and renamed into place), checked exactly as
    ``models add`` checks a DFM; its inspection. ModelError when the export fails or the check refuses it."""
    import onnx

    res = net.cfg.resolution
    graph = DfmGraph(net).to("cpu").eval()
    example = torch.rand(2, res, res, 3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
            torch.onnx.export(
                graph,
                (example,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={n: {0: "N"} for n in (INPUT_NAME, *OUTPUT_NAMES)},
                opset_version=DFM_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        model = onnx.load(str(tmp))
        model.ir_version = DFM_IR_VERSION
        _declare_shapes(model, res)
        model.producer_name = "stageswap"
        onnx.save(model, str(tmp))
        found = inspect_model(tmp, "dfm")
        os.replace(tmp, path)
        return found
    except ModelError:
        raise
    except OSError as exc:
        raise ModelError(f"cannot write the DFM {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # the exporter's own errors
        raise ModelError(f"cannot export the model to a DFM: {type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _declare_shapes(model: object, res: int) -> None:
    """Declare the outputs' shapes ``[N, R, R, C]`` (the exporter leaves H and W symbolic after the
    transposes): TensorRT and DeepFaceLive read fixed sizes from the graph."""
    channels = {"out_face_mask:0": 1, "out_celeb_face:0": 3, "out_celeb_face_mask:0": 1}
    for out in model.graph.output:  # type: ignore[attr-defined]
        dims = out.type.tensor_type.shape.dim
        for d, value in zip(dims[1:], (res, res, channels[out.name]), strict=True):
            d.Clear()
            d.dim_value = value
