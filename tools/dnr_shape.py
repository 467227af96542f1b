"""Store a trained person's face shape in a neural renderer exported before renderers carried one.

`stageswap train NAME --arch dnr` stores the shape when it exports (``engines.train.shape``); a renderer exported
earlier renders on the actor's own mesh. This measures the shape from the facesets it was trained on and writes a
copy of the model with it (the graph unchanged), to register with `stageswap models add OUT --replace ...`:

    STAGESWAP_MODELS=../shared/models .venv/bin/python tools/dnr_shape.py MODEL.onnx --src FACESET... --out OUT.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the renderer's ONNX file (kind dnr)")
    parser.add_argument("--src", type=Path, nargs="+", required=True, help="the faceset folders it was trained on")
    parser.add_argument("--out", type=Path, required=True, help="the copy with the shape (may be MODEL itself)")
    parser.add_argument("--models", default=None, help="where the face mesh model is (default: the registry's order)")
    args = parser.parse_args()

    from engines.face.landmarks import FaceMesh
    from engines.runtime import load_model, models
    from engines.swap.neural import write_shape
    from engines.train.shape import faceset_shape

    mesh = FaceMesh(load_model(models.resolve("facemesh", args.models)))
    shape = faceset_shape(args.src, mesh)
    write_shape(args.model, args.out, shape)
    print(f"{args.out}: the face shape of {', '.join(map(str, args.src))} stored")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
