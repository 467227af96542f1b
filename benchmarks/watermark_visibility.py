"""How visible the watermark is where eyes look for it: measures on flat and textured crops (issue 24).

PSNR over a whole frame averages the mark away; a mottled pattern on a plain wall is still visible. This
module picks crops a colourist would look at and measures the mark on them with measures that see local
structure:

- **Crops** (``pick_crops``), 128x128 px of the 1280x720 frame, chosen on the mean luma of the clip's first
  frames, among windows whose mean luma is a mid-tone (40-215: clipped blacks and whites hide any mark):
  ``flat`` the window with the least mean gradient (a wall, a backdrop), ``textured`` the one with the most.
  ``skin`` comes from a close-up made of the clip (``benchmarks.closeup``: the face 60% of the frame height,
  scaled to 1280x720, as a camera would frame it): the window centred on the cheek (image-left of the face
  box's centre, a little below it) of the close-up's face.
- **SSIM** (Wang et al. 2004, 11x11 Gaussian window, sigma 1.5, on the luma): the mean, and the map's
  minimum, which is where the structure changed most.
- **JND visibility** (after Chou & Li 1995): each pixel's just-noticeable luma difference from its
  background luminance (the eye is least sensitive in the darks) and its texture masking (the local
  gradient), and the mark's luma difference divided by it. ``visible_pct``: the share of pixels where the
  difference exceeds one JND; ``p99``: the 99th percentile of the ratio.
- **Unmasked blocks**: a pattern spread over many pixels is seen at a lower contrast than one pixel's JND
  (the eye pools it), so the per-pixel JND says "invisible" where the contact sheets show a mottle. What
  hides a pattern is the picture's own structure at the same scale (contrast masking): per 16x16 block,
  the mark's RMS in a band around its cell size (difference of Gaussians, sigma 1 and 4 px) against the
  plain picture's RMS in the same band (at least ``NOISE_FLOOR`` levels: camera noise a mark can hide in).
  ``unmasked_pct``: the share of blocks where the mark is the stronger; ``mask_p90``: the ratio's 90th
  percentile. A mark is taken as invisible on a crop when no more than 5% of its blocks are unmasked.
- **Unmasked blocks in colour** (``chroma_unmasked_pct``): the same per-block test on the Cb and Cr planes (BT.601),
  the mark's band RMS against the plain picture's own colour structure in that band (floor ``CHROMA_FLOOR``), the
  worse of the two planes per block. A luma mark changes no colour and reads 0 here; a chroma mark (issue 24) is
  judged by this one and the luma one together: a colour mottle on a grey wall counts as visible like a grey one.
- **Flicker**: the RMS (levels) of the temporal change the mark adds, frame to frame:
  (marked_t - marked_t-1) - (plain_t - plain_t-1). A static mark on raw frames adds none; after H.264 a mark
  the encoder codes differently each frame crawls, and this sees it.
- ``contrast``: a crop with its contrast raised ``gain`` times about its mean, for contact sheets.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_PX = 128
MIDTONES = (40.0, 215.0)


@dataclass(frozen=True)
class Window:
    kind: str
    x0: int
    y0: int
    size: int = CROP_PX

    def of(self, image: np.ndarray) -> np.ndarray:
        return image[self.y0 : self.y0 + self.size, self.x0 : self.x0 + self.size]


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma (float32, 0-255) of a BGR uint8 image, as the encoders see it."""
    b, g, r = (image[..., i].astype(np.float32) for i in range(3))
    return 0.114 * b + 0.587 * g + 0.299 * r


def gradient(y: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy) / 4.0  # levels per pixel (a Sobel kernel weighs each side 4)


def pick_crops(frames: list[np.ndarray], step: int = 32) -> list[Window]:
    """The flat and the textured mid-tone window of the clip (on the mean luma of its first 10 frames)."""
    y = np.mean([luma(f) for f in frames[:10]], axis=0)
    grad = gradient(y)
    h, w = y.shape
    best: dict[str, tuple[float, Window]] = {}
    for y0 in range(0, h - CROP_PX + 1, step):
        for x0 in range(0, w - CROP_PX + 1, step):
            win = Window("", x0, y0)
            mean = float(win.of(y).mean())
            if not MIDTONES[0] <= mean <= MIDTONES[1]:
                continue
            g = float(win.of(grad).mean())
            if "flat" not in best or g < best["flat"][0]:
                best["flat"] = (g, Window("flat", x0, y0))
            if "textured" not in best or -g < best["textured"][0]:
                best["textured"] = (-g, Window("textured", x0, y0))
    if not best:
        raise ValueError("no mid-tone 128x128 window in the clip")
    return [best["flat"][1], best["textured"][1]]


def cheek_window(box: np.ndarray, frame_size: tuple[int, int]) -> Window:
    """The window on the cheek of a face ``box`` (x1, y1, x2, y2): image-left of the centre, a little below."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 - 0.2 * (x2 - x1), (y1 + y2) / 2 + 0.12 * (y2 - y1)
    w, h = frame_size
    size = int(min(CROP_PX, 0.3 * (x2 - x1)))
    x0 = int(round(min(max(cx - size / 2, 0), w - size)))
    y0 = int(round(min(max(cy - size / 2, 0), h - size)))
    return Window("skin", x0, y0, size)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SSIM map (Wang et al. 2004) of two luma images (float, 0-255), without the 5-px border."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    out = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return out[5:-5, 5:-5]


def jnd(y: np.ndarray) -> np.ndarray:
    """Chou & Li's spatial JND (levels) per pixel of a luma image: max of luminance and texture masking."""
    kernel = np.array([[1, 1, 1, 1, 1], [1, 2, 2, 2, 1], [1, 2, 0, 2, 1], [1, 2, 2, 2, 1], [1, 1, 1, 1, 1]], np.float32)
    bg = cv2.filter2D(y.astype(np.float32), -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    dark = 17.0 * (1.0 - np.sqrt(np.clip(bg, 0, 127) / 127.0)) + 3.0
    luminance = np.where(bg <= 127, dark, 3.0 / 128.0 * (bg - 127.0) + 3.0)
    texture = gradient(y) * (0.0001 * bg + 0.115) + (0.5 - 0.01 * bg)
    return np.maximum(luminance, texture)


NOISE_FLOOR = 0.5
CHROMA_FLOOR = 0.25
"""The colour test's floor (Cb/Cr levels), half the luma one: set so that the unmasked chroma mark at 1.3 levels of
blue (about 0.4 levels of Cb in the band), seen as a faint colour mottle at 3x contrast on s18's wall, counts as
visible; walls carry less colour noise than grey noise."""
BLOCK_PX = 16


def band(y: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The band around the mark's cell size (5-8 px at ``scale`` 1): difference of Gaussians, sigma 1 and 4 px
    times ``scale`` (a mark of cells ``scale`` times larger is measured in the band ``scale`` times lower)."""
    return cv2.GaussianBlur(y, (0, 0), scale) - cv2.GaussianBlur(y, (0, 0), 4.0 * scale)


def mask_ratios(
    plain: np.ndarray, marked: np.ndarray, floor: float = NOISE_FLOOR, band_scale: float = 1.0
) -> np.ndarray:
    """Per 16x16 block: the mark's band RMS over the plain picture's (floored at ``floor``, ``NOISE_FLOOR``). With
    ``band_scale`` above 1 (a mark of larger cells) the worse of that band and the 5-8 px one, per block."""
    h, w = plain.shape
    rows, cols = h // BLOCK_PX, w // BLOCK_PX

    def block_rms(x: np.ndarray) -> np.ndarray:
        x = x[: rows * BLOCK_PX, : cols * BLOCK_PX] ** 2
        return np.sqrt(x.reshape(rows, BLOCK_PX, cols, BLOCK_PX).mean(axis=(1, 3)))

    ratios = [
        block_rms(band(marked - plain, s)) / np.maximum(block_rms(band(plain, s)), floor)
        for s in sorted({1.0, band_scale})
    ]
    return np.maximum.reduce(ratios)


def chroma(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BT.601 Cb and Cr (float32, 0-255 with 128 neutral) of a BGR uint8 image."""
    ycc = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    return ycc[..., 2], ycc[..., 1]


def chroma_mask_ratios(plain: np.ndarray, marked: np.ndarray, band_scale: float = 1.0) -> np.ndarray:
    """Per 16x16 block of two BGR crops: the larger of the Cb and Cr ``mask_ratios``."""
    (cb0, cr0), (cb1, cr1) = chroma(plain), chroma(marked)
    return np.maximum(mask_ratios(cb0, cb1, CHROMA_FLOOR, band_scale), mask_ratios(cr0, cr1, CHROMA_FLOOR, band_scale))


@dataclass(frozen=True)
class Visibility:
    psnr_db: float
    ssim_mean: float
    ssim_min: float
    visible_pct: float
    jnd_p99: float
    unmasked_pct: float
    mask_p90: float
    flicker_rms: float
    chroma_unmasked_pct: float = 0.0
    chroma_mask_p90: float = 0.0


def visibility(
    plain: list[np.ndarray], marked: list[np.ndarray], window: Window, band_scale: float = 1.0
) -> Visibility:
    """The measures of ``marked`` against ``plain`` (same frames) on ``window``, over all frames (the SSIM
    minimum is the median of the per-frame minima: one encoder glitch does not decide it). ``band_scale``: the
    mark's cell size over 7.5 px (the unmasked-block tests then also look in the band that much lower)."""
    ys = [luma(window.of(f)) for f in plain]
    ym = [luma(window.of(f)) for f in marked]
    pairs = list(zip(plain, marked, strict=True))
    mse = float(np.mean([np.mean((window.of(a).astype(np.float64) - window.of(b)) ** 2) for a, b in pairs]))
    masks = np.concatenate([mask_ratios(a, b, band_scale=band_scale).ravel() for a, b in zip(ys, ym, strict=True)])
    colour = np.concatenate([chroma_mask_ratios(window.of(a), window.of(b), band_scale).ravel() for a, b in pairs])
    maps = [ssim_map(a, b) for a, b in zip(ys, ym, strict=True)]
    ratios = np.concatenate([(np.abs(b - a) / jnd(a)).ravel() for a, b in zip(ys, ym, strict=True)])
    flicker = [np.mean(((m1 - m0) - (p1 - p0)) ** 2) for p0, p1, m0, m1 in zip(ys, ys[1:], ym, ym[1:], strict=False)]
    return Visibility(
        psnr_db=float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse)),
        ssim_mean=float(np.mean([m.mean() for m in maps])),
        ssim_min=float(np.median([m.min() for m in maps])),
        visible_pct=float(100 * np.mean(ratios > 1.0)),
        jnd_p99=float(np.percentile(ratios, 99)),
        unmasked_pct=float(100 * np.mean(masks > 1.0)),
        mask_p90=float(np.percentile(masks, 90)),
        flicker_rms=float(np.sqrt(np.mean(flicker))) if flicker else 0.0,
        chroma_unmasked_pct=float(100 * np.mean(colour > 1.0)),
        chroma_mask_p90=float(np.percentile(colour, 90)),
    )


def contrast(crop: np.ndarray, reference: np.ndarray, gain: float = 3.0) -> np.ndarray:
    """``crop`` with its contrast raised ``gain`` times about ``reference``'s mean (the same for a row)."""
    mean = reference.reshape(-1, 3).mean(axis=0)
    return np.clip(mean + gain * (crop.astype(np.float32) - mean), 0, 255).astype(np.uint8)
