"""Colour management cost per frame (issue 26): the conversions around the engines (``engines.colour``).

    python benchmarks/bench_colour.py [--repeat 20]

For 720p and 1080p frames in ARRI LogC4, 8-bit (the live path) and 16-bit (``process`` on 10-bit
footage): ``to_engine`` (code values -> scene-linear + the engines' 8-bit picture) and ``from_engine``
(the engines' change added in linear light, encoded back), median and p90 ms, against a baseline measured
in the same run: one plain copy of the frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines.colour import transform  # noqa: E402


def _times(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(out)), float(np.percentile(out, 90))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--space", default="ARRI LogC4")
    args = parser.parse_args()
    conv = transform(args.space)
    rng = np.random.default_rng(0)
    print("| frame | depth | copy (baseline) | to_engine | from_engine (a face changed) | total |")
    print("| --- | --- | --- | --- | --- | --- |")
    for w, h in ((1280, 720), (1920, 1080)):
        for dtype in (np.uint8, np.uint16):
            top = np.iinfo(dtype).max
            image = (rng.random((h, w, 3)) * 0.6 * top + 0.1 * top).astype(dtype)
            linear, engine = conv.to_engine(image)
            processed = engine.copy()
            processed[h // 4 : h // 2, w // 3 : w // 2] //= 2
            copy = _times(lambda: image.copy(), args.repeat)  # noqa: B023
            into = _times(lambda: conv.to_engine(image), args.repeat)  # noqa: B023
            back = _times(lambda: conv.from_engine(linear, engine, processed, dtype), args.repeat)  # noqa: B023
            print(
                f"| {w}x{h} | {np.dtype(dtype).itemsize * 8}-bit | {copy[0]:.1f} / {copy[1]:.1f} ms | "
                f"{into[0]:.1f} / {into[1]:.1f} ms | {back[0]:.1f} / {back[1]:.1f} ms | {into[0] + back[0]:.1f} ms |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
