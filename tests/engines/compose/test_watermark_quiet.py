"""The quiet mark (issue 24, ``QUIET``): ``COARSE`` kept off lone edges, where its blue mark beside a luma edge on a
flat colour is a coloured fringe at 3x contrast, and carried in texture instead."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks.watermark_visibility import SCIELAB_JND, pick_crops, scielab_blocks
from engines.compose.watermark import COARSE, QUIET, Watermarker, _edge_factor, _half_mask_gain
from engines.errors import InputError
from tests.clip_helpers import frames_720p, h264_round_trip

WID = 0x2B7E1516


def _mark(marker: Watermarker, frames: list[np.ndarray]) -> list[np.ndarray]:
    motion = marker.motion()
    return [marker.apply(f, WID, motion) for f in frames]


def test_a_lone_edge_loses_its_mask_and_texture_keeps_it() -> None:
    """A straight step (a stripe's side) has band energy like texture but one orientation: its neighbourhood gets no
    mask; noise and texture of mixed orientations keep all of theirs; a flat picture is left as it is."""
    step = np.zeros((96, 96), np.float32)
    step[:, 48:] = 60.0
    assert _edge_factor(step, QUIET.mask_edges)[48, 44:52].max() < 1e-3
    texture = np.random.default_rng(3).normal(128.0, 12.0, (96, 96)).astype(np.float32)
    assert _edge_factor(texture, QUIET.mask_edges)[16:80, 16:80].min() > 0.99
    assert np.array_equal(_edge_factor(np.full((96, 96), 90.0, np.float32), QUIET.mask_edges), np.ones((96, 96)))
    grey = np.dstack([step] * 3).astype(np.uint8)
    assert _half_mask_gain(grey, COARSE).max() > 0.5 and _half_mask_gain(grey, QUIET).max() < 1e-3
    for bad in (0.5, 30.0, True):
        with pytest.raises(InputError, match="mask_edges"):
            replace(QUIET, mask_edges=bad)


def test_obamas_striped_wall_is_not_seen_at_3x(clips: Path) -> None:
    """Obama_speaking's flat crop (an orange wall with vertical stripes), 30 frames: ``COARSE`` is seen at 3x contrast
    (the colour visibility map, >= 1 Delta E) in over 5% of its blocks (measured 9.3%), along the stripes; ``QUIET`` in
    at most 5% (measured 0.5%)."""
    frames = frames_720p(clips / "Obama_speaking.mp4", 30)
    flat = pick_crops(frames)[0]
    seen = {}
    for name, config in (("coarse", COARSE), ("quiet", QUIET)):
        marked = _mark(Watermarker(config), frames)
        pairs = zip(frames, marked, strict=True)
        seen[name] = float(np.mean([np.mean(scielab_blocks(flat.of(a), flat.of(b)) >= SCIELAB_JND) for a, b in pairs]))
    assert seen["coarse"] > 0.05 and seen["quiet"] <= 0.05, seen


def test_quiet_reads_after_live_h264_on_the_dark_soft_clip(clips: Path) -> None:
    """short_hamilton (the dark, soft clip whose reading is the thinnest), 60 frames: read in >= 95% of them after H.264
    at the live bitrate; the unmarked encode reads nothing with the quiet reader."""
    frames = frames_720p(clips / "short_hamilton_clip.mp4", 60)
    marker = Watermarker(QUIET)
    live, _ = h264_round_trip(_mark(marker, frames))
    assert marker.read_clip(live).detected_ratio >= 0.95
    plain, _ = h264_round_trip(frames[::3])
    assert marker.read_clip(plain).id is None
