"""The hush mark (issue 24, twelfth session, ``HUSH``): ``QUIET`` with its payload convolutionally coded and read by a
soft-decision Viterbi decoder (``engines.compose.fec``), a quarter of its mask on the faces it is given, and each frame
read with the seven before it when it does not read alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engines.compose import fec
from engines.compose.watermark import (
    HUSH,
    MARKS,
    PAYLOAD_BITS,
    QUIET,
    Watermarker,
    _face_factor,
    agreement,
    coded_bits,
    mark_name,
    payload_bits,
)
from engines.errors import InputError
from tests.clip_helpers import frames_720p, h264_round_trip

WID = 0x2B7E1516


def test_noise_decodes_to_no_id() -> None:
    """Soft values of pure noise (500 seeded tries): the best path's CRC-16 holds in none, and its agreement with the
    soft values stays below what ``HUSH`` accepts in nearly all (the second check)."""
    rng = np.random.default_rng(11)
    marker = Watermarker(HUSH)
    agreements = []
    for _ in range(500):
        z = 1.6 * rng.standard_normal(HUSH.symbols)
        assert marker._decide(z).id is None
        agreements.append(agreement(z, fec.encode(fec.viterbi(z, PAYLOAD_BITS))))
    assert np.mean(np.array(agreements) >= HUSH.min_agreement) < 0.02


def test_the_mark_is_weaker_on_the_faces_it_is_given(clips: Path) -> None:
    """s18, 4 frames with the face's box from frame 0 (x 662-878, y 91-400): inside the box the mark is at most
    ``face_gain`` (a quarter) of what it is without the box (levels of blue summed over the box), outside the same to
    within 5%; the factor is 1 where there are no faces."""
    frames = frames_720p(clips / "s18.mp4", 4)
    box = np.array([[662.0, 91.0, 878.0, 400.0]], np.float32)
    plain, kept_off = Watermarker(HUSH), Watermarker(HUSH)
    m_plain, m_off = plain.motion(), kept_off.motion()
    inside, outside = np.zeros(2), np.zeros(2)
    for frame in frames:
        a = np.abs(plain.apply(frame, WID, m_plain).astype(np.int16) - frame)[:, :, 0]
        b = np.abs(kept_off.apply(frame, WID, m_off, box).astype(np.int16) - frame)[:, :, 0]
        inside += [a[91:400, 662:878].sum(), b[91:400, 662:878].sum()]
        outside += [a[:, :400].sum(), b[:, :400].sum()]
    assert inside[1] <= HUSH.face_gain * inside[0] and inside[0] > 1000, inside
    assert abs(outside[1] - outside[0]) <= 0.05 * outside[0], outside
    assert np.array_equal(_face_factor(np.zeros((0, 4)), HUSH, (1280, 720), (640, 360)), np.ones((360, 640)))


def test_hush_reads_after_live_h264_and_unmarked_footage_reads_nothing(clips: Path) -> None:
    """Obama_speaking, 40 frames marked with his face kept off (its box held from frame 0, as the tracker gives it),
    H.264 at the live bitrate: read in >= 90% of frames by a reader of the stream (measured 95%: the first frames
    of an encode are its worst); the unmarked encode and the unmarked frames read no id with the hush reader, nor
    does a ``QUIET``-marked encode (another layout: the CRC rejects it), which the quiet reader still reads."""
    frames = frames_720p(clips / "Obama_speaking.mp4", 40)
    box = np.array([[464.0, 128.0, 796.0, 535.0]], np.float32)
    hush = Watermarker(HUSH)
    motion = hush.motion()
    live, _ = h264_round_trip([hush.apply(f, WID, motion, box) for f in frames])
    readings = list(hush.read_stream(live))
    assert np.mean([r.id == WID for r in readings]) >= 0.90
    assert all(r.id in (WID, None) for r in readings)
    plain, _ = h264_round_trip(frames[::2])
    assert hush.read_clip(plain).id is None and hush.read_clip(frames[::2]).id is None
    quiet = Watermarker(QUIET)
    q_motion = quiet.motion()
    quiet_live, _ = h264_round_trip([quiet.apply(f, WID, q_motion) for f in frames[:20]])
    assert hush.read_clip(quiet_live).id is None and quiet.read_clip(quiet_live).id == WID


def test_hush_is_a_named_mark_with_checked_settings() -> None:
    """``--watermark-mark hush`` names it; its cells carry the coded bits; bad settings are refused by name."""
    assert MARKS["hush"] is HUSH and mark_name(replace(HUSH, enabled=False)) == "hush"
    assert HUSH.symbols == 162 and QUIET.symbols == PAYLOAD_BITS
    assert np.array_equal(coded_bits(WID, HUSH), fec.encode(payload_bits(WID)))
    assert np.array_equal(coded_bits(WID, QUIET), payload_bits(WID))
    for field, bad in (("code", "turbo"), ("face_gain", 1.5), ("min_agreement", -0.1), ("window_frames", 0)):
        with pytest.raises(InputError, match=field):
            replace(HUSH, **{field: bad})
