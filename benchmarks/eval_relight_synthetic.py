"""Relighting benchmark with ground truth: a real face rendered under light A and light B, A relit to B.

    python -m benchmarks.eval_relight_synthetic [--photos obama.jpg s1.jpg ...] [--out out/eval]

For each shared photo the face is tracked once; its mesh gives the true per-pixel normals and its
pixels, divided by their own estimated shading, an albedo. The face is rendered (albedo x shading, in
linear light, encoded to 8-bit sRGB and pasted into the photo) under a white light A and a different
light B (direction, colour, intensity). Then the real pipeline runs on the A picture only: the tracker
finds the face again (estimated mesh and normals), ``FaceRelighter`` measures the light (estimated) and
relights to B given as SH coefficients. Compared with the B render on the face (eyes and mouth opening
excluded, 3 px in from the edge):

- ``relit``: the pipeline's output (estimated normals and light);
- ``baseline``: no relighting (the A picture as it is);
- ``oracle``: the same ratio relight with the exact inputs (true normals, true light A) — the floor set
  by 8-bit quantisation and clamping, not by estimation.

Acceptance (issue 3): masked MSE after relighting <= 25% of the baseline's, on every case.
The A light is white with a face mean (``engines.light.sh.face_mean``) of 1: the exposure that the units of
``target_sh`` refer to.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.quality_metrics import masked_dssim, masked_mse, side_by_side
from engines.face.topology import face_topology
from engines.face.tracker import FaceTracker, TrackedFace
from engines.light.relight import (
    SHADING_GRID_PX,
    FaceRelighter,
    estimate_sh,
    pixel_normals,
    relight_face,
    skin_samples,
)
from engines.light.sh import (
    directional_sh,
    face_mean,
    hemisphere_mean,
    linear_to_srgb,
    sh_to_flat,
    shading,
    srgb_to_linear,
)
from engines.settings import RelightTarget
from engines.swap.raster import Window, rasterize

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")
DEFAULT_PHOTOS = ("obama.jpg", "s1.jpg", "woman.png", "roop_source.jpg", "lin-manuel-miranda.png")
ACCEPT_RATIO = 0.25
ALBEDO_MEAN = 0.4
"""Mean linear albedo of the face's brightest channel: skin-like, bright enough that 8 bits keep the dark side,
dark enough that the renders do not clip."""


def white_unit(direction: tuple[float, float, float], ambient: float) -> np.ndarray:
    """A white key light plus ambient, scaled to a face mean of 1 (the reference exposure)."""
    sh = directional_sh(direction, 1.0, (1.0, 1.0, 1.0), ambient)
    return sh / face_mean(sh)[None, :]


@dataclass(frozen=True)
class LightPair:
    name: str
    a: np.ndarray
    b: np.ndarray


LIGHT_PAIRS = (
    LightPair(
        "front-to-left",
        white_unit((0.1, 0.3, 1.0), 0.3),
        directional_sh((-0.8, 0.2, 0.55), 1.1, (1.0, 1.0, 1.0), 0.2),
    ),
    LightPair(
        "left-to-right-warm",
        white_unit((-0.6, 0.3, 0.75), 0.35),
        directional_sh((0.7, 0.1, 0.7), 1.0, (1.0, 0.8, 0.6), 0.25),
    ),
    LightPair(
        "top-to-below-cool",
        white_unit((0.2, 0.8, 0.6), 0.3),
        directional_sh((0.0, -0.5, 0.85), 0.9, (0.7, 0.8, 1.0), 0.3),
    ),
)


@dataclass(frozen=True)
class Face:
    """A tracked face ready to render: window, true normals, face mask, albedo (linear RGB)."""

    photo: np.ndarray
    window: Window
    normals: np.ndarray  # (H, W, 3) camera frame, per pixel
    mask: np.ndarray  # (H, W) bool: face surface without eye and mouth openings
    albedo_rgb: np.ndarray  # (H, W, 3) linear


@dataclass(frozen=True)
class CaseResult:
    photo: str
    pair: str
    mse: dict[str, float]
    dssim: dict[str, float]
    panel: np.ndarray

    @property
    def ratio(self) -> float:
        return self.mse["relit"] / self.mse["baseline"]

    @property
    def passed(self) -> bool:
        return self.ratio <= ACCEPT_RATIO


def _window_around(landmarks: np.ndarray, shape: tuple[int, ...], pad: float = 0.1) -> Window:
    x1, y1 = landmarks[:, 0].min(), landmarks[:, 1].min()
    x2, y2 = landmarks[:, 0].max(), landmarks[:, 1].max()
    p = pad * max(x2 - x1, y2 - y1)
    h, w = shape[:2]
    x0, y0 = int(max(0, x1 - p)), int(max(0, y1 - p))
    return Window(x0, y0, int(min(w, x2 + p)) - x0, int(min(h, y2 + p)) - y0)


def _largest(faces: list[TrackedFace]) -> TrackedFace:
    if not faces:
        raise RuntimeError("no face found")
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def prepare_face(photo: np.ndarray, tracker: FaceTracker) -> Face:
    """Track the photo's face; its true normals, face mask and an albedo from its own de-lit pixels."""
    tracker.reset()
    face = _largest(tracker.update(photo, 0.0))
    landmarks = face.landmarks
    window = _window_around(landmarks, photo.shape)
    normals, _ = pixel_normals(landmarks, window)
    mask = rasterize(landmarks, face_topology().triangles, window).mask & (normals[..., 2] > 0.05)
    ys, xs = window.slices
    crop = photo[ys, xs]
    colours, nrm = skin_samples(crop, normals, mask)
    own_light = estimate_sh(colours, nrm)
    lin = srgb_to_linear(crop[..., ::-1] / 255.0)
    own_shading = np.maximum(shading(own_light, normals), 0.05 * hemisphere_mean(own_light))
    # lin / own_shading is the albedo relative to its mean per channel (grey); the photo's skin tone back on.
    tone = face_mean(own_light) / float(face_mean(own_light).max())
    albedo = np.clip(lin / own_shading * ALBEDO_MEAN * tone, 0.0, 0.8) * mask[..., None]
    return Face(photo, window, normals, mask, albedo.astype(np.float32))


def render(face: Face, sh: np.ndarray) -> np.ndarray:
    """The photo with its face surface replaced by albedo x shading under ``sh`` (8-bit sRGB)."""
    lin = face.albedo_rgb * np.clip(shading(sh, face.normals), 0.0, None)
    face_bgr = np.round(linear_to_srgb(lin)[..., ::-1] * 255.0).astype(np.uint8)
    out = face.photo.copy()
    ys, xs = face.window.slices
    out[ys, xs][face.mask] = face_bgr[face.mask]
    return out


def run_case(
    face: Face, pair: LightPair, tracker: FaceTracker, photo_name: str = "", relight_to: np.ndarray | None = None
) -> CaseResult:
    """Render A and B, relight the A picture to B (or to ``relight_to``: a negative control), measure."""
    img_a, img_b = render(face, pair.a), render(face, pair.b)
    ys, xs = face.window.slices
    win_a, win_b = img_a[ys, xs], img_b[ys, xs]

    # The pipeline, from the A picture alone.
    tracker.reset()
    est = _largest(tracker.update(img_a, 0.0))
    landmarks = est.landmarks
    normals, _ = pixel_normals(landmarks, face.window, grid_px=SHADING_GRID_PX)
    est_mask = rasterize(landmarks, face_topology().triangles, face.window).mask
    target = RelightTarget(mode="sh", sh=sh_to_flat(pair.b if relight_to is None else relight_to))
    result = FaceRelighter().relight(1, 0.0, win_a, normals, est_mask, target)
    if result is None:
        raise RuntimeError("the relighter measured no light on the rendered face")
    relit = result.image

    # The same relight with exact inputs.
    oracle = relight_face(win_a, face.normals, face.mask, pair.a, pair.b, shading_grid_px=None)

    evaluate = cv2.erode(face.mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    images = {"relit": relit, "baseline": win_a, "oracle": oracle}
    truth = win_b.astype(np.float64) / 255.0
    mse = {k: masked_mse(v.astype(np.float64) / 255.0, truth, evaluate) for k, v in images.items()}
    dssim = {k: masked_dssim(v.astype(np.float64) / 255.0, truth, evaluate) for k, v in images.items()}
    err = np.clip(np.abs(relit.astype(int) - win_b.astype(int)) * 4, 0, 255).astype(np.uint8)
    panel = side_by_side(
        [win_a, relit, win_b, oracle, err],
        labels=["light A (input)", "relit to B", "B (truth)", "oracle", "|relit - B| x4"],
    )
    return CaseResult(photo_name, pair.name, mse, dssim, panel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS))
    ap.add_argument("--out", type=Path, default=Path("out/eval"))
    ap.add_argument("--models", default=str(SHARED / "models") if (SHARED / "models").is_dir() else None)
    args = ap.parse_args()
    from engines.processor import FaceProcessor

    tracker = FaceProcessor.from_models(args.models).tracker
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"{'photo':<24} {'lights':<20} {'MSE relit':>10} {'baseline':>10} {'oracle':>10} {'ratio':>7}  "
        f"{'DSSIM relit':>11} {'baseline':>9} {'oracle':>8}"
    )
    results = []
    for name in args.photos:
        photo = cv2.imread(str(SHARED / "data" / "faces" / name))
        if photo is None:
            raise SystemExit(f"cannot read {name}")
        face = prepare_face(photo, tracker)
        for pair in LIGHT_PAIRS:
            r = run_case(face, pair, tracker, name)
            results.append(r)
            cv2.imwrite(str(args.out / f"relight_{Path(name).stem}_{pair.name}.png"), r.panel)
            print(
                f"{name:<24} {pair.name:<20} {r.mse['relit']:10.5f} {r.mse['baseline']:10.5f} "
                f"{r.mse['oracle']:10.5f} {r.ratio:7.1%}  {r.dssim['relit']:11.4f} {r.dssim['baseline']:9.4f} "
                f"{r.dssim['oracle']:8.4f}  {'ok' if r.passed else 'FAIL'}"
            )
    ratios = np.array([r.ratio for r in results])
    dssim_ratio = np.array([r.dssim["relit"] / r.dssim["baseline"] for r in results])
    print(
        f"\n{len(results)} cases: MSE relit/baseline mean {ratios.mean():.1%}, worst {ratios.max():.1%} "
        f"(acceptance <= {ACCEPT_RATIO:.0%} each: {'PASS' if (ratios <= ACCEPT_RATIO).all() else 'FAIL'}); "
        f"DSSIM relit/baseline mean {dssim_ratio.mean():.1%}, worst {dssim_ratio.max():.1%}"
    )
    print(f"panels: {args.out.resolve()}/relight_*.png")


if __name__ == "__main__":
    main()
