"""Relighting on real footage: the checks a colourist makes, on shared clips, three directions and an HDRI each.

    python -m benchmarks.eval_relight_real [--clips s18.mp4 d3.mp4 d13.mp4] [--frame 20] [--out DIR]

The synthetic benchmark (``eval_relight_synthetic.py``) relights a rendered face against a rendered ground
truth; it has no neck, hair or camera noise. Here each clip's frame ``--frame`` (tracked from the clip's
start) is relit with ``--no-swap`` by a ``FaceProcessor`` — the person relight (``engines.light.person``)
beside today's face-only relight — and checked:

1. **no-op**: relit to the light measured on it, the picture does not change (max and mean |change|, levels);
2. **A -> B -> A**: relit to a key light B, then the result relit back to the light A measured on the input
   (each light measured on the picture it is applied to): mean |error| over the person, levels;
3. **one light**: order-1 spherical harmonics fitted separately to the face's skin and to the neck's skin of the
   relit picture (linear luminance against the person's normals: the mesh's on the face, the neck's cylinder
   below it), compared by their left-right part (``side_light``: why not the direction's angle); the gap
   between face and neck must not grow beyond the input's own (where one real light lit both) by more than
   ``SIDE_GAP``;
4. **skin kept**: the skin's mean chromaticity (linear r, g) and its grain's high-frequency energy (sRGB luma
   minus a 1.5 px blur, mean square; without the dark things inside the skin's labels: glasses frames, brow
   hairs, nostrils — in brackets with them) relative to the input's: within 5%;
5. **no outline step**: mean |gradient| of the change (relit minus input, sRGB luma) on a ring from 3 px outside
   the mesh's outline to 0.3 eye-corner distances inside it (where the face-only blend ramps), against the
   input's own mean |gradient| there (below 1: the relight adds no edge the input lacks).

Contact sheets per clip (``--out``): input | face only | person for each key light, and the HDRI. Light
directions are camera-frame (x right, y up, z toward the camera).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from engines.compose.watermark import WatermarkConfig
from engines.face.topology import SKIN
from engines.light.person import neck_from_landmarks, person_grid
from engines.light.sh import face_mean, srgb_to_linear
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings, RelightTarget
from engines.swap.mesh import MeshSwapper
from engines.swap.raster import Window
from streamer.record.media import VideoReader

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")
DIRECTIONS = {
    "left": (-0.8, 0.25, 0.55),
    "right": (0.8, 0.25, 0.55),
    "top": (0.0, 0.85, 0.5),
}
_LUMA = np.array([0.0722, 0.7152, 0.2126])  # BGR
SIDE_GAP = 0.3
"""How much the relight may widen the face/neck gap of ``side_light`` over the input's: a neck left in the old
light while the face turns to a side key opens it by 1-2 (the face-only relight)."""
SKIN_SHARE = 90
"""A cell is the neck's skin when its linear r, g chromaticity is as close to the face skin's median as this
percentage of the face's own cells are (the face's own spread: 0.08-0.12 on the shared clips; shirts 0.15+)."""


def make_hdri(folder: Path) -> str:
    """An equirectangular stage: a warm key high at camera left, a cool LED wall behind the camera, a dark floor."""
    w, h = 256, 128
    lon = (np.arange(w) + 0.5) / w * 2 * np.pi - np.pi
    lat = np.pi / 2 - (np.arange(h) + 0.5) / h * np.pi
    lon, lat = np.meshgrid(lon, lat)
    d = np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), np.cos(lat) * np.cos(lon)], axis=-1)
    key = np.array([-0.7, 0.5, 0.5])
    key /= np.linalg.norm(key)
    spot = np.clip(d @ key, 0, 1) ** 40 * 30.0
    wall = np.clip(d[..., 2], 0, 1) * (d[..., 1] > -0.2) * 0.25
    rgb = spot[..., None] * np.array([1.0, 0.85, 0.65]) + wall[..., None] * np.array([0.5, 0.7, 1.0]) + 0.02
    cv2.imwrite(str(folder / "stage.hdr"), rgb[..., ::-1].astype(np.float32))
    return "stage"


def luma_linear(image: np.ndarray) -> np.ndarray:
    return (srgb_to_linear(image / 255.0) @ _LUMA).astype(np.float32)


def luma_code(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) @ _LUMA.astype(np.float32)).astype(np.float32)


def side_light(lum: np.ndarray, normals: np.ndarray) -> float:
    """The light's left-right part on a region relative to its level there: ``c_x / (c_0 + c_z mean(n_z))`` of the
    order-1 SH fit ``lum ~ c_0 + c_x n_x + c_z n_z`` (ridge-regularised); nan with too few samples.

    Not the fitted light's direction: a neck's normals turn only across it, so the light's vertical part cannot
    be told there from the chin's cast shadow (which shading without occlusion does not model) or the skin's
    own change down the neck (``n_y`` is left out), and on a face, which mostly faces the camera, ``n_z`` is
    nearly the constant, so the direction's front-back part swings with the albedo (eyes, brows, lips). The
    left-right part is what both regions show well, and what a side light changes."""
    if lum.size < 30:
        return float("nan")
    nrm = normals.astype(np.float64)
    basis = np.stack([np.ones(len(nrm)), nrm[:, 0], nrm[:, 2]], axis=1)
    gram = basis.T @ basis + 1e-3 * lum.size * np.diag([0.0, 1.0, 1.0])
    c = np.linalg.solve(gram, basis.T @ lum.astype(np.float64))
    return float(c[1] / max(abs(c[0] + c[2] * nrm[:, 2].mean()), 1e-9))


def warm(proc: FaceProcessor, clip: Path, index: int) -> np.ndarray:
    """Track the clip up to frame ``index`` (so the face's tracking and ids are settled); that frame, settled."""
    with VideoReader(clip) as reader:
        for i, frame in enumerate(reader.frames()):
            proc.process(frame.image, i / 30.0, ProcessSettings(relight=False))
            if i >= index:
                break
    image = np.ascontiguousarray(frame.image)
    settle(proc, image, index / 30.0)
    return image


def settle(proc: FaceProcessor, image: np.ndarray, t: float, repeats: int = 12) -> float:
    """Track ``image`` again, as it is, until its mesh stops moving (at most ``repeats`` times); the last move, px.

    The mesh model's crop follows the last landmarks, so the first repeats of a still frame (or the frame after
    a relit copy of it was tracked) still move the mesh 1-3 px; a light measured on one call is then 1-2% off
    the next call's, enough for a "no-op" relight to the light just measured to change a few pixels by 5-10
    levels. Settled, two calls measure the same light."""
    last: np.ndarray | None = None
    move = float("inf")
    for _ in range(repeats):
        faces = proc.process(image, t, ProcessSettings(relight=False)).faces
        if not faces:
            break
        lm = np.concatenate([f.landmarks for f in faces])
        if last is not None and lm.shape == last.shape:
            move = float(np.abs(lm - last).max())
            if move < 0.05:
                break
        last = lm
    return move


class Frame:
    """One clip's frame, tracked, with what the checks need: the face's mesh and the person around it."""

    def __init__(self, proc: FaceProcessor, clip: Path, index: int) -> None:
        self.image = warm(proc, clip, index)
        self.t = index / 30.0
        result = proc.process(self.image, self.t, ProcessSettings(relight=False))
        if not result.faces:
            raise SystemExit(f"{clip.name}: no face on frame {index}")
        self.face = max(result.faces, key=lambda f: float(np.ptp(f.landmarks[:, 0])))
        geometry = MeshSwapper().geometry(self.image, self.face.landmarks, self.face.id, self.t, None, 0.0)
        assert geometry is not None
        self.geometry = geometry
        masks = proc.person_masks
        assert masks is not None
        region = masks.around(self.image, self.face.id, self.face.box)
        x0, y0, x1, y1 = region.bounds()
        h, w = self.image.shape[:2]
        wx0, wy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        self.region = Window(wx0, wy0, min(w, math.ceil(x1)) - wx0, min(h, math.ceil(y1)) - wy0)
        cover = (geometry.labels_small >= 0).astype(np.float32)
        self.normals, self.w_face, self.person = person_grid(
            self.region,
            lambda size: region.sample(self.region, size, outside=0.0),
            geometry.window,
            geometry.normals_small,
            cover,
            geometry.face_scale_px,
            None,
            neck_from_landmarks(self.face.landmarks, geometry.face_scale_px),
        )

    # -- regions ---------------------------------------------------------------------------------------
    def grid(self, image: np.ndarray) -> np.ndarray:
        gh, gw = self.normals.shape[:2]
        ys, xs = self.region.slices
        return cv2.resize(image[ys, xs], (gw, gh), interpolation=cv2.INTER_AREA)

    def face_and_neck(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid masks of the face's skin (well inside the mesh) and of the neck's skin (below the chin).

        The neck is the person below the chin and off the mesh, and only where the input's colour is the face's
        skin colour (linear r, g chromaticity within ``SKIN_CHROMA`` of the face's median): a fixed box below the
        chin holds the collar and the shirt as well (most of it on s18 and d13), whose albedo, not light, the fit
        would otherwise read."""
        gh, gw = self.normals.shape[:2]
        face = self.w_face > 0.95
        reg = self.region
        sy = gh / reg.height
        sx = gw / reg.width
        chin = float(self.face.landmarks[152, 1])
        span = float(np.ptp(self.face.landmarks[:, 0]))
        cx = float(self.face.landmarks[152, 0])
        ys = (np.arange(gh) + 0.5) / sy - 0.5 + reg.y0
        xs = (np.arange(gw) + 0.5) / sx - 0.5 + reg.x0
        below = (ys > chin + 0.05 * span) & (ys < chin + 0.6 * span)
        beside = np.abs(xs - cx) < 0.35 * span
        rgb = srgb_to_linear(self.grid(self.image)[..., ::-1] / 255.0)
        chroma = rgb[..., :2] / np.maximum(rgb.sum(axis=2, keepdims=True), 1e-6)
        off = np.abs(chroma - np.median(chroma[face], axis=0)).max(axis=2)
        skin = off <= max(float(np.percentile(off[face], SKIN_SHARE)), 0.03)
        neck = (self.person > 0.8) & (self.w_face < 0.01) & below[:, None] & beside[None, :] & skin
        return face, neck

    def skin_window(self) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution skin mask over the face window (eroded), and the mesh's outline ring (3 px)."""
        g = self.geometry
        labels = g.to_window(g.labels_small, cv2.INTER_NEAREST)
        skin = cv2.erode((labels == SKIN).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        cover = (labels >= 0).astype(np.uint8)
        inner = max(3, round(0.3 * g.face_scale_px))  # the face-only blend's ramp lies inside the outline
        ring = (cv2.dilate(cover, np.ones((7, 7), np.uint8)) > 0) & ~(
            cv2.erode(cover, np.ones((2 * inner + 1, 2 * inner + 1), np.uint8)) > 0
        )
        return skin, ring


def relight(proc: FaceProcessor, image: np.ndarray, t: float, target: RelightTarget) -> np.ndarray:
    settings = ProcessSettings(swap=False, relight=True, relight_target=target)
    return proc.process(image, t, settings).image


def measured(proc: FaceProcessor) -> np.ndarray:
    lights = proc.relight.relighter.current()
    assert lights, "no light measured"
    return lights[0]


def back_to(proc: FaceProcessor, image: np.ndarray, t: float, light: np.ndarray) -> np.ndarray:
    """Relight ``image`` to the absolute light ``light`` (measuring the light on ``image`` first)."""
    relight(proc, image, t, RelightTarget(mode="direction"))  # measures the light on this picture
    exposure = np.maximum(face_mean(measured(proc)), 1e-4)
    flat = (light / exposure[None, :]).T.reshape(-1)
    return relight(proc, image, t, RelightTarget(mode="sh", sh=tuple(float(v) for v in flat)))


def checks(frame: Frame, out: np.ndarray) -> dict[str, float]:
    """The per-picture checks (module docstring, 3-5) of ``out`` against the frame's input."""
    img = frame.image
    face, neck = frame.face_and_neck()
    n = frame.normals
    lin_in, lin_out = frame.grid(luma_linear(img)), frame.grid(luma_linear(out))
    skin, ring = frame.skin_window()
    ys, xs = frame.geometry.window.slices
    win_in, win_out = img[ys, xs], out[ys, xs]

    def chroma(win: np.ndarray) -> np.ndarray:
        rgb = srgb_to_linear(win[skin][:, ::-1] / 255.0).mean(axis=0)
        return rgb[:2] / rgb.sum()

    def hf(win: np.ndarray, where: np.ndarray) -> float:
        y = luma_code(win)
        return float(np.mean((y - cv2.GaussianBlur(y, (0, 0), 1.5))[where] ** 2))

    def grad(y: np.ndarray) -> np.ndarray:
        return np.hypot(cv2.Sobel(y, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(y, cv2.CV_32F, 0, 1) / 8)

    y_in, y_out = luma_code(win_in), luma_code(win_out)
    c_in, c_out = chroma(win_in), chroma(win_out)
    # The grain is the skin's: not a glasses frame, a brow hair or a nostril inside the skin's labels (darker than
    # half the skin's median, and 3 px around). Carried as it is, such dark detail in a cheek put in shadow passes
    # black and is cut there (d13 right: 0.5% of the skin, a fifth of its fine detail, -8.7%), which a grain
    # measure should not count.
    dark = (y_in < 0.5 * float(np.median(y_in[skin]))).astype(np.uint8)
    grain = skin & ~(cv2.dilate(dark, np.ones((7, 7), np.uint8)) > 0)
    return {
        "side_face_in": side_light(lin_in[face], n[face]),
        "side_neck_in": side_light(lin_in[neck], n[neck]),
        "side_face": side_light(lin_out[face], n[face]),
        "side_neck": side_light(lin_out[neck], n[neck]),
        "chroma_change_pct": float(100 * np.max(np.abs(c_out / c_in - 1))),
        "hf_change_pct": float(100 * (hf(win_out, grain) / hf(win_in, grain) - 1)),
        "hf_all_change_pct": float(100 * (hf(win_out, skin) / hf(win_in, skin) - 1)),
        "outline_step": float(grad(y_out - y_in)[ring].mean() / max(grad(y_in)[ring].mean(), 1e-6)),
        "neck_cells": float(neck.sum()),
    }


def sheet(rows: list[tuple[str, list[np.ndarray]]], crop: Window, path: Path) -> None:
    tiles = []
    for label, images in rows:
        row = []
        for im in images:
            c = im[crop.slices]
            s = 300 / c.shape[0]
            row.append(cv2.resize(c, (round(c.shape[1] * s), 300), interpolation=cv2.INTER_AREA))
        r = np.hstack(row)
        cv2.putText(r, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2, cv2.LINE_AA)
        tiles.append(r)
    cv2.imwrite(str(path), np.vstack(tiles))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=["s18.mp4", "d3.mp4", "d13.mp4"])
    ap.add_argument("--frame", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("relight-real"))
    ap.add_argument("--models", default=str(SHARED / "models"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}")
    hdri_dir = Path(tempfile.mkdtemp(prefix="hdri-"))
    hdri = make_hdri(hdri_dir)
    base = ProcessorConfig(
        light_time_constant_s=0.0, hdri_dir=hdri_dir, stillness=None, watermark=WatermarkConfig(enabled=False)
    )
    header = (
        "| clip | light | method | no-op max/mean | A->B->A mean | side light face / neck (input) | gap (input) |"
        " chroma % | HF % (with dark non-skin) | outline step |"
    )
    print(header)
    print("|" + " --- |" * 10)
    worst: dict[str, float] = {}
    for name in args.clips:
        clip = SHARED / "data" / "clips" / name
        person = FaceProcessor.from_models(args.models, base)
        face_only = FaceProcessor.from_models(args.models, replace(base, person_light=None))
        frame = Frame(person, clip, args.frame)
        warm(face_only, clip, args.frame)
        img, t = frame.image, frame.t
        targets = {
            k: RelightTarget(mode="direction", direction=v, intensity=1.0, ambient=0.3) for k, v in DIRECTIONS.items()
        }
        targets["hdri"] = RelightTarget(mode="hdri", hdri=hdri)
        outs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key, target in targets.items():
            for method, proc in (("person", person), ("face only", face_only)):
                settle(proc, img, t)  # the A->B->A of the last light tracked relit pictures
                out = relight(proc, img, t, target)
                source = measured(proc)
                # no-op: relit to the light just measured on it
                exposure = np.maximum(face_mean(source), 1e-4)
                flat = (source / exposure[None, :]).T.reshape(-1)
                same = relight(proc, img, t, RelightTarget(mode="sh", sh=tuple(float(v) for v in flat)))
                d = np.abs(same.astype(int) - img.astype(int))
                back = back_to(proc, out, t, source)
                ys, xs = frame.region.slices
                err = float(np.abs(back.astype(int) - img.astype(int))[ys, xs].mean())
                c = checks(frame, out)
                gap, gap_in = abs(c["side_face"] - c["side_neck"]), abs(c["side_face_in"] - c["side_neck_in"])
                print(
                    f"| {name} | {key} | {method} | {d.max()} / {d.mean():.3f} | {err:.2f} | "
                    f"{c['side_face']:+.2f} / {c['side_neck']:+.2f} "
                    f"({c['side_face_in']:+.2f} / {c['side_neck_in']:+.2f}) | {gap:.2f} ({gap_in:.2f}) | "
                    f"{c['chroma_change_pct']:.1f} | "
                    f"{c['hf_change_pct']:+.1f} ({c['hf_all_change_pct']:+.1f}) | {c['outline_step']:.2f} |",
                    flush=True,
                )
                if method == "person":
                    for k2, v in (("chroma", c["chroma_change_pct"]), ("hf", abs(c["hf_change_pct"]))):
                        worst[k2] = max(worst.get(k2, 0.0), v)
                    worst["outline"] = max(worst.get("outline", 0.0), c["outline_step"])
                    worst["aba"] = max(worst.get("aba", 0.0), err)
                    worst["noop"] = max(worst.get("noop", 0.0), float(d.max()))
                    if math.isfinite(gap):
                        worst["side_gap_added"] = max(worst.get("side_gap_added", -9.0), gap - gap_in)
                outs.setdefault(key, (out, out))
                outs[key] = (outs[key][0], out) if method == "face only" else (out, outs[key][1])
        h, w = img.shape[:2]
        r = frame.region
        pad = 0.15 * r.width
        x0, y0 = max(0, int(r.x0 - pad)), max(0, int(r.y0 - pad))
        x1, y1 = min(w, int(r.x0 + r.width + pad)), min(h, int(r.y0 + r.height + pad))
        crop = Window(x0, y0, x1 - x0, y1 - y0)
        rows = [(f"{k}: input | face only | person", [img, outs[k][1], outs[k][0]]) for k in targets]
        sheet(rows, crop, args.out / f"{Path(name).stem}-relight.png")
        print(f"{name}: {int(frame.face_and_neck()[1].sum())} neck cells (skin below the chin)", flush=True)
    print("\nworst over clips and lights (person relight):", {k: round(v, 3) for k, v in worst.items()})


if __name__ == "__main__":
    main()
