"""An invisible, verifiable per-frame watermark carrying a short recording/session id.

Why our own and not the ``invisible-watermark`` package: the live path has ~33 ms for everything,
and its DWT-DCT embedder costs tens of milliseconds per 720p frame while not surviving a low-bitrate
H.264 re-encode well. This one is spread-spectrum in the spatial frequency band that H.264 keeps:

- The payload is 48 bits: a 32-bit id and its CRC-16 (``binascii.crc_hqx``) as the check.
- The frame is divided into a grid of cells, ``grid_cells`` along its shorter side (5 px cells at
  720p). Each cell carries one payload bit, chosen by a keyed pseudo-random permutation so every bit
  is spread over the whole frame, times a keyed pseudo-random sign (the spreading code).
- The cell pattern is upsampled (bilinear, so no block edges) and added to the luma (the same value
  to B, G and R changes luma only) with a fixed RMS amplitude (``strength``, 2 levels: ~42 dB PSNR).
  The pattern depends only on the frame size and the id, so it is made once and cached; marking a
  frame is two saturating adds (well under a millisecond at 720p). It is constant over time, so an
  encoder carries it in its reference frames instead of spending bits on it every frame.
- Detection averages the luma over the same grid (any resolution with the same aspect ratio maps
  onto it, so a rescaled copy still reads), removes the picture content with a local high-pass,
  weights each cell by how quiet its neighbourhood is, and correlates with the spreading code: one
  soft value per bit. Error correction is soft-decision (Chase): when the CRC fails, the least
  reliable bits are flipped until it holds. A reading is accepted only if the CRC holds and the
  mark is far above the noise floor (mean |z| >= ``min_mean_z``), so unmarked footage reads None.

Cropping or rotating the picture breaks the grid alignment; the mark does not survive that.

The chroma carrier (``WatermarkConfig(carrier="chroma")``, issue 24; not the default, see BENCHMARKS.md) puts the
same cell pattern into the blue channel only: a blue-difference (Cb) change with almost no luma (0.114 of it),
the axis the eye is least sensitive to. The picture's own structure is far smaller in chroma than in luma, so
the detector (which reads the Cb plane) meets much less host "noise" and the mark can be weaker for the same
reading. With ``masked=True`` it is scaled by the same luma-texture mask as the masked luma mark (none on flat
areas), and the detector weighs each cell by the amplitude that mask gives it over the local Cb noise.

The hush mark (``HUSH``; issue 24, twelfth session; not the default) codes the 48 bits at rate 1/3 (162 coded bits,
``engines.compose.fec``) and reads them with a soft-decision Viterbi decoder, the CRC-16 still the check: the same
energy reads at about 0.7 x the per-bit z the uncoded word needs, and that margin is spent on a weaker mark on faces.
What the faces lose the picture off them makes up where the frame has little texture left (``floor_after_faces``), and
a reader that finds the faces too weighs their cells less (a matched filter; ``read_stream``'s ``faces``).

The moving mark (``WatermarkConfig(motion=True)``, ``MOVING``; issue 24, seventh session; not the default) is
drawn where the picture has moved (``engines.compose.picture_motion``: a 3 x 4 grid of regions, phase correlation
frame to frame), so the encoder's motion compensation carries it instead of re-coding it in every P-frame. Its
layout is periodic (one ``tile_cells`` x ``tile_cells`` tile of cells, repeated), so a reader that does not know
where the picture has moved finds it by correlation: every cyclic shift of the tile (and half-cell phase) is scored
at once with FFTs, then each region's own shift is searched near that one against the bits read so far (the regions
move apart by up to ``PictureMotion.max_spread_px``). It needs one frame, like the others.
"""

from __future__ import annotations

import binascii
import itertools
import math
import secrets
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from engines.compose import fec
from engines.compose.picture_motion import PictureMotion
from engines.errors import InputError

ID_BITS = 32
CHECK_BITS = 16
PAYLOAD_BITS = ID_BITS + CHECK_BITS
MAX_ID = (1 << ID_BITS) - 1
DEFAULT_KEY = 0x5354_4147_4553_5750  # "STAGESWP": studios may set their own key
_CACHE_ENTRIES = 4
_CHASE_BITS = 8
_CHASE_MAX_FLIPS = 2
CARRIERS = ("luma", "chroma")
CODES = ("crc", "conv")
"""How the 48 payload bits are carried: ``"crc"`` once each (the id and its CRC-16, read by sign with a Chase search),
``"conv"`` convolutionally coded at rate 1/3 and read by a soft-decision Viterbi decoder (``engines.compose.fec``;
issue 24, twelfth session: the ``hush`` mark)."""
_PHASES = 2
"""The tiled reader's sub-cell phases per axis: shifts are searched in half cells."""
_REGION_SEARCH_CELLS = 2
"""How far (cells) a region's shift is searched from the whole frame's: the motion tracker keeps regions within
8 px (about a cell at 720p) of their median, and the displacement varies within a region. 3 cells read the same
frames (after 2.5 Mbit/s on s18, roop_target, short_hamilton) at twice the work, and let unmarked footage reach a
higher mean |z| (d3: 1.88 against 1.78)."""


@dataclass(frozen=True)
class WatermarkConfig:
    """How the mark is made and read. Embedder and detector must use the same ``grid_cells`` and ``key``."""

    enabled: bool = True
    """Mark the processed output (monitors and recordings). On by default."""
    strength: float = 2.0
    """RMS amplitude of the mark in 8-bit levels: 2.0 gives ~42 dB PSNR; 2.5 is the most that keeps 40 dB."""
    grid_cells: int = 96
    """Cells along the shorter side of the frame (the longer side follows the aspect ratio)."""
    key: int = DEFAULT_KEY
    """Seed of the spreading code and the bit layout."""
    min_mean_z: float = 2.5
    """Acceptance threshold: mean |z| of the 48 bit statistics (unmarked footage reads about 0.8)."""
    badge: bool = False
    """Draw a visible "SYNTHETIC" badge on monitor outputs (never on recordings)."""
    masked: bool = False
    """Experimental perceptual masking (issue 24; off by default: see BENCHMARKS.md for the trade): the mark is
    scaled per pixel so that, in a band around its cell size, it stays below ``mask_ratio`` times the picture's
    own structure there (contrast masking: what hides a pattern), up to ``mask_gain`` times ``strength``;
    flat areas get almost none. Detection then weighs each cell by the amplitude it can carry."""
    mask_ratio: float = 0.8
    mask_gain: float = 2.0
    carrier: str = "luma"
    """Which signal carries the mark: ``"luma"`` (the default, B, G and R alike) or ``"chroma"`` (the blue channel
    only: a blue-difference change, read from the Cb plane; issue 24's cheaper carrier, see ``CHROMA_MASKED``)."""
    motion: bool = False
    """Draw the mark where the picture has moved (``apply(..., motion=PictureMotion())``) in a periodic layout the
    reader re-aligns by correlation (issue 24, ``MOVING``); the encoder's motion compensation then carries it."""
    tile_cells: int = 32
    """The moving mark's period in cells (each bit on ~21 cells of a tile; the tile repeats ~16 times at 720p)."""
    mask_floor_rms: float = 0.0
    """The masked marks' least RMS gain over a frame (0: none): a frame with little texture (dark, soft, out of
    focus) gets its mark raised by up to ``MAX_BOOST`` towards it, steps of ``BOOST_STEP`` (see ``_boosted``)."""
    mask_edges: float = 0.0
    """Edge protection of the masked marks (0: none; issue 24, tenth session): the texture mask times
    min(1, ``mask_edges`` x (1 - coherence)), the coherence of the picture's gradient orientations over a 48-px
    neighbourhood (1 along a lone straight edge, ~0.2-0.5 in texture). A lone edge has band energy like texture
    but hides far less (JND models' edge protection, e.g. Yang et al. 2005): a blue mark beside a wall's stripe or a
    door frame, on a flat colour, is a coloured fringe at 3x contrast (see ``_edge_factor``)."""
    code: str = "crc"
    """How the payload is coded (``CODES``): ``"conv"`` gives the reader soft-decision error correction, so a mark
    about 0.7 x as strong reads as often (``engines.compose.fec``); the tile then carries 162 coded bits, not 48."""
    min_agreement: float = 0.0
    """A ``"conv"`` reading's second check beside the CRC-16: the decoded codeword's correlation with the soft values
    over their mean magnitude (``agreement``; 1: every sign agrees). Unmarked footage's best path: 99th percentile
    0.69-0.72, highest 0.75 in 4,008 reads of the eight shared clips; frames read right: 1st percentile 0.75."""
    face_gain: float = 1.0
    """The masked marks' factor on the faces ``apply`` is given (1: none; issue 24, twelfth session): the S-CIELAB map
    sees a blue mark of about one level on close-up skin and a shadowed face whatever luma texture masks it
    (``_face_factor``)."""
    floor_after_faces: bool = False
    """Measure the masked marks' floor (``mask_floor_rms``) on the mark drawn, after the faces' factor, and raise only
    the picture off the faces (issue 24, thirteenth session; ``_boosted_off_faces``). Before, the floor was measured on
    the whole frame's mask and the faces weakened after it: a frame whose texture is mostly a face (a close-up, a
    shadowed face in a dark room) kept a frame's worth of mask on paper and drew a quarter of it."""
    face_floor_rms: float = 0.0
    """The RMS of the mark drawn over a frame under which the faces' share rises (0: it never does; issue 24, thirteenth
    session, ``_face_share``): where the picture off the faces, boosted as far as ``MAX_BOOST`` allows
    (``floor_after_faces``), leaves the frame's mark below it (a frame the face fills), the faces get more than
    ``face_gain`` of their mask, as far as the frame floor (``mask_floor_rms``) needs, at most all of it; the reader
    finds the same share from the frame it reads. Without it a frame the face fills carries almost no mark (d3 at
    512x512 through ``process`` was not read)."""
    mask_open_px: int = 0
    """The masked marks' texture mask opened (eroded, then dilated) over this many px of the frame (0: not; issue 24,
    thirteenth session): a lone speck or short line on a flat wall has band energy like texture within the mask's
    16 px, but nothing around it hides a pattern; texture that fills the neighbourhood keeps its mask. Measured at
    half resolution like the mask (``_half_mask_gain``)."""
    window_frames: int = 1
    """Frames a reading may combine (``read_stream``, ``read_clip``): a frame that does not read alone is read with the
    ``window_frames - 1`` before it, averaged (``_window_z``; a mean, not a sum: a still picture's content is the same
    noise in every frame and must not look like a mark)."""

    def __post_init__(self) -> None:
        if self.carrier not in CARRIERS:
            raise InputError(f"watermark carrier must be one of {', '.join(CARRIERS)}, got {self.carrier!r}")
        if isinstance(self.strength, bool) or not isinstance(self.strength, int | float):
            raise InputError(f"watermark strength must be a number, got {self.strength!r}")
        if not math.isfinite(self.strength) or not 0.25 <= self.strength <= 8.0:
            raise InputError(f"watermark strength must be between 0.25 and 8 levels, got {self.strength!r}")
        if (
            isinstance(self.grid_cells, bool)
            or not isinstance(self.grid_cells, int)
            or not 16 <= self.grid_cells <= 512
        ):
            raise InputError(f"watermark grid_cells must be an integer between 16 and 512, got {self.grid_cells!r}")
        if isinstance(self.key, bool) or not isinstance(self.key, int) or not 0 <= self.key < (1 << 63):
            raise InputError(f"watermark key must be an integer between 0 and 2**63-1, got {self.key!r}")
        for name, low, high in (("mask_ratio", 0.1, 4.0), ("mask_gain", 0.5, 8.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise InputError(f"watermark {name} must be between {low} and {high}, got {value!r}")
        if isinstance(self.tile_cells, bool) or not isinstance(self.tile_cells, int) or not 8 <= self.tile_cells <= 64:
            raise InputError(f"watermark tile_cells must be an integer between 8 and 64, got {self.tile_cells!r}")
        if isinstance(self.mask_floor_rms, bool) or not isinstance(self.mask_floor_rms, int | float):
            raise InputError(f"watermark mask_floor_rms must be a number, got {self.mask_floor_rms!r}")
        if not 0.0 <= self.mask_floor_rms <= self.mask_gain:
            raise InputError(f"watermark mask_floor_rms must be between 0 and mask_gain, got {self.mask_floor_rms!r}")
        if isinstance(self.mask_edges, bool) or not isinstance(self.mask_edges, int | float):
            raise InputError(f"watermark mask_edges must be a number, got {self.mask_edges!r}")
        if not (self.mask_edges == 0.0 or 1.0 <= self.mask_edges <= 20.0):
            raise InputError(f"watermark mask_edges must be 0 (off) or between 1 and 20, got {self.mask_edges!r}")
        if not math.isfinite(self.min_mean_z) or self.min_mean_z < 1.5:
            raise InputError(f"watermark min_mean_z must be at least 1.5, got {self.min_mean_z!r}")
        if self.code not in CODES:
            raise InputError(f"watermark code must be one of {', '.join(CODES)}, got {self.code!r}")
        for name, low, high in (("min_agreement", 0.0, 1.0), ("face_gain", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise InputError(f"watermark {name} must be between {low} and {high}, got {value!r}")
        if isinstance(self.face_floor_rms, bool) or not isinstance(self.face_floor_rms, int | float):
            raise InputError(f"watermark face_floor_rms must be a number, got {self.face_floor_rms!r}")
        if not 0.0 <= self.face_floor_rms <= self.mask_gain:
            raise InputError(f"watermark face_floor_rms must be between 0 and mask_gain, got {self.face_floor_rms!r}")
        if (
            isinstance(self.mask_open_px, bool)
            or not isinstance(self.mask_open_px, int)
            or not 0 <= self.mask_open_px <= 64
        ):
            raise InputError(f"watermark mask_open_px must be an integer between 0 and 64, got {self.mask_open_px!r}")
        if (
            isinstance(self.window_frames, bool)
            or not isinstance(self.window_frames, int)
            or not 1 <= self.window_frames <= 60
        ):
            raise InputError(f"watermark window_frames must be an integer between 1 and 60, got {self.window_frames!r}")

    @property
    def min_side_px(self) -> int:
        """Smallest shorter side a frame may have: two pixels per cell."""
        return 2 * self.grid_cells

    @property
    def symbols(self) -> int:
        """How many coded bits the cells carry: the 48 payload bits, or their rate-1/3 convolutional code (162)."""
        return PAYLOAD_BITS if self.code == "crc" else fec.coded_length(PAYLOAD_BITS)


CHROMA_MASKED = WatermarkConfig(
    carrier="chroma", masked=True, strength=1.3, mask_ratio=1.5, mask_gain=3.0, min_mean_z=2.0
)
"""Issue 24's cheapest readable mark so far (an option, not the default): the chroma carrier, masked by the picture's
texture (up to 1.5x its band RMS, at most 3 x 1.3 levels of blue), read at mean |z| >= 2.0 (unmarked footage: <= 1.1).
No grey mottle on flat crops, read after H.264 at the live bitrate in every frame of four shared clips, CRF 18 cost
+4% to +21% (today's mark +7% to +104%); but a faint colour speckle on texture and shadowed skin at 3x contrast, and
above the 3% size bound on panning footage. Figures: BENCHMARKS.md, "The chroma carrier"."""

MOVING = replace(CHROMA_MASKED, motion=True)
"""``CHROMA_MASKED`` drawn where the picture has moved (issue 24, seventh session; an option): the same carrier, mask
and strength, in a periodic layout, values under one level dropped (isolated +-1 specks that change every frame).
Figures: BENCHMARKS.md, "The moving mark"."""

COARSE = replace(MOVING, grid_cells=64, tile_cells=24, strength=1.5, mask_gain=1.7, mask_floor_rms=1.3)
"""``MOVING`` in cells 1.5 x as large (11 px at 720p; the tile, 24 cells, covers about the same 270 px), its largest
value 2.55 levels of blue instead of 3.9, and a frame with little texture raised towards a mask of 1.3 RMS
(``_boosted``; issue 24, ninth session). Where the bits went: stageswap's files have a keyframe every 15 frames, so a
quarter to nearly half of a file is I-frames, where ``MOVING`` costs +4-6% (the encoder codes its 7-px cells' detail
afresh in each); larger cells cost half to two thirds of that in I-frames and less in P-frames, and still read after
H.264 at the live bitrate. Figures: BENCHMARKS.md, "The coarse moving mark"."""

QUIET = replace(COARSE, mask_edges=5.0, mask_gain=1.9, mask_ratio=1.75)
"""``COARSE`` kept off lone edges (issue 24, tenth session): its texture mask is taken away where one straight edge
dominates a neighbourhood (``WatermarkConfig.mask_edges``), and the bits it carried there are carried in texture
instead (up to 1.75 x the picture's band RMS, at most 2.85 levels of blue). Beside a wall's stripe or a door frame on
a flat colour, ``COARSE``'s blue mark is a coloured fringe that the colour visibility map sees at 3x contrast (Obama's
wall); texture of mixed orientations hides it. Figures: BENCHMARKS.md, "The quiet mark"."""

HUSH = replace(
    QUIET,
    code="conv",
    face_gain=0.25,
    window_frames=8,
    min_agreement=0.74,
    floor_after_faces=True,
    mask_open_px=24,
    face_floor_rms=1.0,
)
"""``QUIET`` with error-correcting gain, kept weaker on faces (issue 24, twelfth session): a quarter of its mask on the
faces the processor tracks (``WatermarkConfig.face_gain``), the 48 payload bits coded at rate 1/3 and read by a
soft-decision Viterbi decoder (``WatermarkConfig.code``), a frame that does not read alone read with the 7 before it
(``window_frames``). A new name, not a new ``QUIET``: its cells carry 162 coded bits in another layout, so files marked
``quiet`` keep their own reader. Thirteenth session: the floor measured on the mark drawn, raising the picture off the
faces (``floor_after_faces``: a close-up keeps its mark's energy), the texture mask opened over 24 px
(``mask_open_px``: no halo around a lone speck on a wall), and the reader given the faces it finds weighs their cells
by the quarter drawn there (``read_stream(faces=...)``). Same layout: the twelfth session's hush files read as before.
A frame the face fills, whose picture off the faces cannot carry the mark, raises the faces' share as far as it needs
(``face_floor_rms``; the reader finds the same share). Figures: BENCHMARKS.md, "The hush mark"."""

MARKS = {
    "standard": WatermarkConfig(),
    "masked": WatermarkConfig(masked=True),
    "chroma": CHROMA_MASKED,
    "moving": MOVING,
    "coarse": COARSE,
    "quiet": QUIET,
    "hush": HUSH,
}
"""The marks a user can choose by name (``serve`` and ``process --watermark-mark``): ``standard`` (the default until the
thirteenth session: read everywhere, visible as a faint mottle on flat areas), ``masked`` (luma, hidden in texture;
unread on dark, soft footage), ``chroma`` (``CHROMA_MASKED``), ``moving`` (``MOVING``), ``coarse`` (``COARSE``),
``quiet`` (``QUIET``) and ``hush`` (``HUSH``, the default: ``DEFAULT_MARK``).
The masked ones cost ~7-12 ms of CPU per 720p frame to make (``standard`` ~0.4; BENCHMARKS.md)."""

DEFAULT_MARK = "hush"
"""The mark outputs carry unless another is named (``--watermark-mark``, ``ProcessorConfig``): ``hush`` since the
thirteenth session (issue 24: read after H.264 at 2.5 Mbit/s in >= 95% of frames of the five bench clips, flat crops
within the visibility bound on four, files +0.4 to +2.7%, a frame the face fills read too; and issue 20's live lines
held with it on the 720p close-up: BENCHMARKS.md), ``standard`` before, which stays a name as every other mark does,
and whose files keep their reader (``READERS``). ``WatermarkConfig()`` is still ``standard``'s settings."""

READERS = tuple(MARKS.values())
"""The marks stageswap has made, in the order a reader of unknown footage tries them (``stageswap verify``)."""


def mark_name(config: WatermarkConfig) -> str | None:
    """The name in ``MARKS`` of the mark ``config`` makes (on or off, with or without the monitors' badge), or None for
    a mark of other settings: what stats say beside the id, so that a reader knows which mark to expect."""
    plain = replace(config, enabled=True, badge=False)
    return next((name for name, known in MARKS.items() if known == plain), None)


def watermark_config(mark: str = DEFAULT_MARK, enabled: bool = True) -> WatermarkConfig:
    """The named mark (``MARKS``), on or off; InputError naming the choices for an unknown name."""
    if mark not in MARKS:
        raise InputError(f"unknown watermark mark {mark!r}: choose one of {', '.join(MARKS)}")
    return replace(MARKS[mark], enabled=enabled)


FaceFinder = Callable[[np.ndarray], "np.ndarray | None"]
"""A reader's source of face boxes: called with each frame as it is read, in order; returns its faces (n x 4: x1, y1,
x2, y2 px) or None. A stream reader may hold the last faces found between detections, as the processor's tracker
does; it sees no later frame."""


@dataclass(frozen=True)
class WatermarkReading:
    """What one frame (or a pooled clip) says."""

    id: int | None
    """The 32-bit id, or None when no valid mark was found."""
    confidence: float
    """Estimated probability that every one of the 48 bits was read right (Gaussian model), 0..1."""
    mean_z: float
    """Mean |z| over the bit statistics: the mark's strength above the noise (unmarked: ~0.8)."""
    corrected_bits: int = 0
    """Bits the soft-decision decoder flipped to satisfy the check."""


@dataclass(frozen=True)
class ClipReading:
    """Per-frame detection over a clip, and a reading pooled over all its frames."""

    frames: int
    frames_detected: int
    """Frames whose own reading is ``id`` (the most frequent id)."""
    id: int | None
    ids: dict[int, int] = field(default_factory=dict)
    """Every id read in some frame, with its frame count (more than one suggests a composite)."""
    pooled: WatermarkReading | None = None

    @property
    def detected_ratio(self) -> float:
        return self.frames_detected / self.frames if self.frames else 0.0


def new_watermark_id() -> int:
    """A fresh random 32-bit id for a session or recording."""
    return secrets.randbits(ID_BITS)


def format_id(wid: int) -> str:
    """The id as users see it: 8 lower-case hex digits."""
    return f"{_check_id(wid):08x}"


def parse_id(text: str) -> int:
    """Inverse of ``format_id`` (raises InputError on anything but 1-8 hex digits)."""
    if not isinstance(text, str) or not 1 <= len(text) <= 8:
        raise InputError(f"watermark id must be 8 hex digits, got {text!r}")
    try:
        return int(text, 16)
    except ValueError:
        raise InputError(f"watermark id must be 8 hex digits, got {text!r}") from None


def _check_id(wid: int) -> int:
    if isinstance(wid, bool) or not isinstance(wid, int | np.integer) or not 0 <= int(wid) <= MAX_ID:
        raise InputError(f"watermark id must be an integer between 0 and {MAX_ID}, got {wid!r}")
    return int(wid)


def payload_bits(wid: int) -> np.ndarray:
    """The 48 coded bits of ``wid`` (id then CRC-16), most significant first."""
    wid = _check_id(wid)
    word = (wid << CHECK_BITS) | binascii.crc_hqx(wid.to_bytes(4, "big"), 0)
    return np.array([(word >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)], dtype=np.int8)


def coded_bits(wid: int, config: WatermarkConfig) -> np.ndarray:
    """The bits the cells of ``config``'s mark carry for ``wid``: ``payload_bits``, or their convolutional code."""
    bits = payload_bits(wid)
    return bits if config.code == "crc" else fec.encode(bits)


def _decode_word(bits: np.ndarray) -> int | None:
    word = 0
    for b in bits:
        word = (word << 1) | int(b)
    wid, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
    return wid if binascii.crc_hqx(wid.to_bytes(4, "big"), 0) == check else None


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass(frozen=True)
class _Grid:
    cells_w: int
    cells_h: int
    code: np.ndarray  # cells_h x cells_w float32, +-1 spreading code
    bit_of_cell: np.ndarray  # cells_h x cells_w int, 0..47


@dataclass(frozen=True)
class _Tile:
    """The moving mark's periodic layout, and what its reader correlates with (conjugate spectra per bit)."""

    code: np.ndarray  # T x T float32, +-1
    bit_of_cell: np.ndarray  # T x T int, 0..47
    code_spectra: np.ndarray  # 48 x T x (T/2+1): conj(rfft2(code on bit b's cells))
    cell_spectra: np.ndarray  # 48 x T x (T/2+1): conj(rfft2(1 on bit b's cells))
    by_bit: np.ndarray  # T*T: the tile's cells (flat index) ordered by the bit they carry
    bit_starts: np.ndarray  # 48: where each bit's cells start in ``by_bit``


class Watermarker:
    """Marks frames with an id and reads ids back. Thread-safe; patterns are cached per (size, id)."""

    def __init__(self, config: WatermarkConfig | None = None) -> None:
        self.config = config or WatermarkConfig()
        self._lock = threading.Lock()
        self._grids: OrderedDict[tuple[int, int], _Grid] = OrderedDict()
        self._patterns: OrderedDict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._moving: OrderedDict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._tile_layout: _Tile | None = None

    # -- embedding ------------------------------------------------------------------------------

    def motion(self) -> PictureMotion | None:
        """A motion tracker for one stream of frames when this mark follows the picture (``config.motion``), else
        None; pass it to every ``apply`` of that stream, in order."""
        if not self.config.motion:
            return None
        return PictureMotion()

    def apply(
        self, image: np.ndarray, wid: int, motion: PictureMotion | None = None, faces: np.ndarray | None = None
    ) -> np.ndarray:
        """A copy of the BGR uint8 ``image`` carrying ``wid``; the input is not modified. A moving mark
        (``config.motion``) is drawn where ``motion`` (``self.motion()``, fed every frame of the stream) says the
        picture has moved; without one it is drawn where it starts. ``faces``: the frame's face boxes (n x 4: x1, y1,
        x2, y2 px), where a mark with ``face_gain`` below 1 is weaker (``_face_factor``); the others ignore them."""
        h, w = self._check_frame(image, colour=True)
        if self.config.motion:
            return self._apply_moving(image, _check_id(wid), motion, faces)
        pos, neg = self._pattern(w, h, _check_id(wid))
        if self.config.masked:
            return self._apply_masked(image, pos, neg, _check_id(wid))
        if self.config.carrier == "chroma":
            out = image.copy()
            out[:, :, 0] = cv2.subtract(cv2.add(image[:, :, 0], pos[:, :, 0]), neg[:, :, 0])
            return out
        return cv2.subtract(cv2.add(image, pos), neg)

    def _apply_masked(self, image: np.ndarray, pos: np.ndarray, neg: np.ndarray, wid: int) -> np.ndarray:
        """The pattern scaled by ``mask_gain_map`` of the frame (``WatermarkConfig.masked``)."""
        gain = mask_gain_map(image, self.config)
        if self.config.carrier == "chroma":
            # the cached pattern is rounded; the masked chroma mark scales the unrounded one (its gain goes to 3x)
            offset = self._pattern_float(image.shape[1], image.shape[0], wid)
        else:
            offset = pos[:, :, 0].astype(np.float32) - neg[:, :, 0].astype(np.float32)
        return self._add_rounded(image, cv2.multiply(offset, gain))

    def _add_rounded(self, image: np.ndarray, offset: np.ndarray, min_level: float = 0.0) -> np.ndarray:
        """``image`` with the float32 offset (H x W) rounded to whole levels (half to even, as ``np.rint``) added,
        saturating, to its carrier: the blue channel (chroma) or B, G and R alike (luma); values under ``min_level``
        in magnitude are dropped. One OpenCV call per full-resolution step (the live path's budget: numpy's
        ``rint``, ``clip`` and boolean indexing took ~8 ms of CPU a 720p frame here, these ~2.5 ms)."""
        above = float(np.nextafter(np.float32(min_level), np.float32(0.0)))  # keeps offset >= min_level
        up = cv2.convertScaleAbs(cv2.threshold(offset, above, 0.0, cv2.THRESH_TOZERO)[1])
        down = cv2.convertScaleAbs(cv2.threshold(offset, -min_level, 0.0, cv2.THRESH_TOZERO_INV)[1])
        if self.config.carrier == "chroma":
            out = image.copy()
            out[:, :, 0] = cv2.subtract(cv2.add(image[:, :, 0], up), down)
            return out
        return cv2.subtract(cv2.add(image, cv2.merge([up] * 3)), cv2.merge([down] * 3))

    def _apply_moving(
        self, image: np.ndarray, wid: int, motion: PictureMotion | None, faces: np.ndarray | None = None
    ) -> np.ndarray:
        """The periodic pattern drawn at the picture's displacement, masked like the others when ``masked``.

        Drawn and masked at half resolution, then interpolated to the frame (the live path's budget): the pattern is
        the bilinear interpolation of cells ~7 px wide at 720p, so it holds little above a quarter of the sampling
        rate, and drawn at half resolution and interpolated back it is the full-resolution one to a correlation of
        0.998 (its RMS 3% lower, made up in ``_moving_layout``); the mask is measured there anyway
        (``mask_gain_map``). Only the interpolation, the rounding and the adding are left at full resolution."""
        h, w = image.shape[:2]
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # once, for the tracker and the mask
        shift = motion.update(grey) if motion is not None else np.zeros((1, 1, 2), np.float32)
        offset = self._moving_offset(w, h, wid, shift)
        if self.config.masked:
            gain = _half_mask_gain(grey, self.config)
            if faces is not None and len(faces) and self.config.face_gain < 1.0:
                face = _face_factor(faces, self.config, (w, h), (gain.shape[1], gain.shape[0]))
                if self.config.floor_after_faces:
                    gain = _boosted_off_faces(gain, face, self.config, motion)
                else:  # after the boost: not raised again
                    gain = cv2.multiply(_boosted(gain, self.config), face)
            else:
                gain = _boosted(gain, self.config)
            offset = cv2.multiply(offset, gain, dst=offset)  # the remap's own array
        # a value under one level rounds to isolated +-1 specks that move with the mask's noise every frame: the
        # encoder codes them anew each time (s18: 16.5% -> 13.9% of the CRF 18 size without them, same reading)
        return self._add_upsampled(image, offset, min_level=1.0)

    def _add_upsampled(self, image: np.ndarray, offset: np.ndarray, min_level: float) -> np.ndarray:
        """``_add_rounded`` of ``offset`` (float32, any size) resized bilinearly to the frame, in one compiled pass
        (``engines.compose.watermark_fused``: no full-resolution float offset, thresholds or merged planes)."""
        from engines.compose import watermark_fused  # numba's import on the first frame marked, not at start-up

        above = float(np.nextafter(np.float32(min_level), np.float32(0.0)))  # keeps offset >= min_level
        channels = 1 if self.config.carrier == "chroma" else 3
        return watermark_fused.add_upsampled(
            np.ascontiguousarray(image), np.ascontiguousarray(offset, np.float32), above, -min_level, channels
        )

    def _moving_offset(self, w: int, h: int, wid: int, shift: np.ndarray) -> np.ndarray:
        """The moving mark's float offset at half resolution (``_half_size``; ``strength`` levels RMS before any mask
        once interpolated to the frame) with each region of the frame moved by ``shift`` (rows x cols x 2 px of the
        frame, interpolated between the regions' centres)."""
        src, base = self._moving_layout(w, h, wid)
        cell = min(w, h) / self.config.grid_cells
        period = self.config.tile_cells
        cells = shift / cell
        cells -= np.floor(np.median(cells.reshape(-1, 2), axis=0) / period) * period  # whole periods change nothing
        field = cv2.resize(
            cells.astype(np.float32),
            (base.shape[1], base.shape[0]),
            dst=_scratch("field", base.shape),
            interpolation=cv2.INTER_LINEAR,
        )
        return cv2.remap(src, cv2.subtract(base, field, dst=field), None, cv2.INTER_LINEAR)

    def _moving_layout(self, w: int, h: int, wid: int) -> tuple[np.ndarray, np.ndarray]:
        """Per frame size and id: the tile repeated to cover the frame and two periods more (scaled so that the
        pattern drawn at half resolution and interpolated to the frame has ``strength`` RMS), and each half-resolution
        pixel's cell coordinate in it (x, y; two periods in, so any shift within a period stays inside). The half
        pixels' centres are where ``cv2.resize`` puts them when it interpolates back to the frame."""
        key = (w, h, wid)
        with self._lock:
            hit = self._moving.get(key)
            if hit is not None:
                self._moving.move_to_end(key)
                return hit
        tile = self._tile()
        period = self.config.tile_cells
        cell = min(w, h) / self.config.grid_cells
        symbols = 2.0 * coded_bits(wid, self.config).astype(np.float32) - 1.0
        cells = tile.code * symbols[tile.bit_of_cell]
        reps_y, reps_x = math.ceil(h / cell / period) + 4, math.ceil(w / cell / period) + 4
        src = np.tile(cells, (reps_y, reps_x)).astype(np.float32)
        hw, hh = _half_size(w, h)
        xs = (np.arange(hw, dtype=np.float32) + 0.5) * (w / hw / cell) - 0.5 + 2 * period
        ys = (np.arange(hh, dtype=np.float32) + 0.5) * (h / hh / cell) - 0.5 + 2 * period
        base = np.dstack(np.meshgrid(xs, ys))
        plain = cv2.resize(cv2.remap(src, base, None, cv2.INTER_LINEAR), (w, h), interpolation=cv2.INTER_LINEAR)
        src *= self.config.strength / float(np.sqrt(np.mean(plain * plain)))
        layout = (src, base)
        with self._lock:
            self._moving[key] = layout
            while len(self._moving) > _CACHE_ENTRIES:
                self._moving.popitem(last=False)
        return layout

    def _tile(self) -> _Tile:
        if self._tile_layout is None:
            period = self.config.tile_cells
            rng = np.random.default_rng([self.config.key, period, period])
            code = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(period, period))
            n = self.config.symbols
            bit_of_cell = (rng.permutation(period * period) % n).reshape(period, period)
            on_bit = (bit_of_cell[None] == np.arange(n)[:, None, None]).astype(np.float64)
            by_bit = np.argsort(bit_of_cell.ravel(), kind="stable")
            self._tile_layout = _Tile(
                code,
                bit_of_cell,
                np.conj(np.fft.rfft2(on_bit * code)),
                np.conj(np.fft.rfft2(on_bit)),
                by_bit,
                np.searchsorted(bit_of_cell.ravel()[by_bit], np.arange(n)),
            )
        return self._tile_layout

    def pattern(self, width: int, height: int, wid: int) -> np.ndarray:
        """The signed offset (int16, height x width) that ``apply`` adds for ``wid`` before any mask: to B, G and R
        alike (luma carrier) or to B only (chroma carrier)."""
        pos, neg = self._pattern(width, height, _check_id(wid))
        return pos[:, :, 0].astype(np.int16) - neg[:, :, 0].astype(np.int16)

    def _pattern(self, w: int, h: int, wid: int) -> tuple[np.ndarray, np.ndarray]:
        pos, neg, _ = self._patterns_of(w, h, wid)
        return pos, neg

    def _pattern_float(self, w: int, h: int, wid: int) -> np.ndarray:
        """The unrounded pattern (float32, ``strength`` levels RMS) that the masked chroma mark scales."""
        return self._patterns_of(w, h, wid)[2]

    def _patterns_of(self, w: int, h: int, wid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = (w, h, wid)
        with self._lock:
            hit = self._patterns.get(key)
            if hit is not None:
                self._patterns.move_to_end(key)
                return hit
        grid = self._grid(w, h)
        symbols = 2.0 * coded_bits(wid, self.config).astype(np.float32) - 1.0
        cells = grid.code * symbols[grid.bit_of_cell]
        smooth = cv2.resize(cells, (w, h), interpolation=cv2.INTER_LINEAR)
        smooth *= self.config.strength / float(np.sqrt(np.mean(smooth * smooth)))
        offset = np.rint(smooth).astype(np.int16)
        pos = np.clip(offset, 0, 255).astype(np.uint8)
        neg = np.clip(-offset, 0, 255).astype(np.uint8)
        planes = (cv2.merge([pos, pos, pos]), cv2.merge([neg, neg, neg]), smooth)
        with self._lock:
            self._patterns[key] = planes
            while len(self._patterns) > _CACHE_ENTRIES:
                self._patterns.popitem(last=False)
        return planes

    def _grid(self, w: int, h: int) -> _Grid:
        n = self.config.grid_cells
        if w >= h:
            gh, gw = n, max(n, round(n * w / h))
        else:
            gw, gh = n, max(n, round(n * h / w))
        with self._lock:
            grid = self._grids.get((gw, gh))
            if grid is not None:
                return grid
        rng = np.random.default_rng([self.config.key, gw, gh])
        code = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(gh, gw))
        bit_of_cell = (rng.permutation(gw * gh) % self.config.symbols).reshape(gh, gw)
        grid = _Grid(gw, gh, code, bit_of_cell)
        with self._lock:
            self._grids[(gw, gh)] = grid
            while len(self._grids) > _CACHE_ENTRIES:
                self._grids.popitem(last=False)
        return grid

    # -- detection ------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> tuple[int | None, float]:
        """``(id, confidence)`` read from one frame; ``(None, confidence)`` when no valid mark is there."""
        reading = self.read(image)
        return reading.id, reading.confidence

    def read(self, image: np.ndarray) -> WatermarkReading:
        """The full reading of one BGR (or grey) uint8 frame."""
        return self._decide(self.bit_z(image))

    def bit_z(self, image: np.ndarray) -> np.ndarray:
        """The soft values of one frame (48, or ``config.symbols``): z-scores of the correlation with each bit's
        code."""
        if self.config.motion:
            folded = self._folded(image)
            return np.zeros(self.config.symbols) if folded is None else _align_regions(*folded, self._tile())
        return self._grid_bit_z(image)

    def _folded(self, image: np.ndarray, faces: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """A moving mark's frame folded onto its tile (``_tiled_fold``); None for a grey frame (no chroma). ``faces``:
        the frame's face boxes, where a mark with ``face_gain`` below 1 is weaker: the reader weighs their cells by the
        amplitude drawn there (a matched filter), so a close-up's face adds its picture's noise at a quarter of the
        weight, not in full (thirteenth session: roop_target's frames 15-17 read after H.264 only with them)."""
        self._check_frame(image, colour=False)
        if self.config.carrier == "chroma":
            if image.ndim != 3:  # a grey frame has no chroma to read
                return None
            plane = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)[:, :, 2]
        else:
            plane = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        amp = None
        if self.config.carrier == "chroma" and self.config.masked:
            h, w = plane.shape
            half = _half_mask_gain(image, self.config)
            if faces is not None and len(faces) and self.config.face_gain < 1.0:
                face = _face_factor(faces, self.config, (w, h), (half.shape[1], half.shape[0]))
                if self.config.face_floor_rms > 0.0:  # the drawn mask's shape, from what this frame shows
                    half = _boosted_off_faces(half, face, self.config) / np.float32(
                        max(1.0, _boost_of(half, face, self.config))
                    )
                else:
                    half = cv2.multiply(half, face)
            amp = cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)
        return self._tiled_fold(plane, amp)

    def _grid_bit_z(self, image: np.ndarray) -> np.ndarray:
        h, w = self._check_frame(image, colour=False)
        if self.config.carrier == "chroma":
            if image.ndim != 3:  # a grey frame has no chroma to read
                return np.zeros(self.config.symbols)
            plane = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)[:, :, 2]
        else:
            plane = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        # the masked chroma mark's amplitude per cell follows the picture's texture, which the reader sees too: it
        # weighs each cell by that amplitude over the local noise (a matched filter for a masked mark)
        amp = mask_gain_map(image, self.config) if self.config.carrier == "chroma" and self.config.masked else None
        grid = self._grid(w, h)
        cells = cv2.resize(plane.astype(np.float32), (grid.cells_w, grid.cells_h), interpolation=cv2.INTER_AREA)
        if amp is not None:
            amp = cv2.resize(amp, (grid.cells_w, grid.cells_h), interpolation=cv2.INTER_AREA)
        residual, weight = self._residual_weight(cells, amp)
        bits = grid.bit_of_cell.ravel()
        s = np.bincount(bits, weights=(residual * grid.code * weight).ravel(), minlength=self.config.symbols)
        q = np.bincount(bits, weights=((residual * weight) ** 2).ravel(), minlength=self.config.symbols)
        return np.asarray(s / np.sqrt(q + 1e-12))

    def _residual_weight(self, cells: np.ndarray, amp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Per cell: the plane less its local mean (the mark and the picture's fine structure), and how much to
        trust it (the mark's amplitude, when known, over the local energy of the residual)."""
        residual = cells - cv2.GaussianBlur(cells, (0, 0), 1.0)
        if self.config.carrier == "chroma":
            # the Cb noise after H.264 changes faster across the frame than the luma's: a narrower neighbourhood
            energy = cv2.GaussianBlur(residual * residual, (0, 0), 2.0) + 0.3
            return residual, (amp / energy if amp is not None else 1.0 / energy)
        energy = cv2.GaussianBlur(residual * residual, (0, 0), 3.0) + 0.25
        # a masked mark's amplitude grows with the local structure (~ its square root): weigh by amplitude / noise
        return residual, (1.0 / np.sqrt(energy) if self.config.masked else 1.0 / energy)

    def _tiled_fold(self, plane: np.ndarray, amp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The moving mark's frame folded onto its tile: the plane averaged over cells at each half-cell phase, its
        residual weighed and summed per region and tile cell (``folded``) with its square (``energy``), which
        ``_align_regions`` aligns into the soft values."""
        h, w = plane.shape
        period, r = self.config.tile_cells, _PHASES
        cell = min(w, h) / self.config.grid_cells
        fine_size = (round(w / cell) * r, round(h / cell) * r)
        fine = cv2.resize(plane.astype(np.float32), fine_size, interpolation=cv2.INTER_AREA)
        amp_fine = None if amp is None else cv2.resize(amp, fine_size, interpolation=cv2.INTER_AREA)
        rows, cols = (3, 4) if w >= h else (4, 3)
        shape = (r, r, rows, cols, period, period)
        folded, energy = np.empty(shape), np.empty(shape)
        for py in range(r):
            for px in range(r):
                hh, ww = (fine.shape[0] - py) // r, (fine.shape[1] - px) // r

                def cells_of(x: np.ndarray, py: int = py, px: int = px, hh: int = hh, ww: int = ww) -> np.ndarray:
                    return x[py : py + hh * r, px : px + ww * r].reshape(hh, r, ww, r).mean(axis=(1, 3))

                amp_cells = None if amp_fine is None else cells_of(amp_fine)
                residual, weight = self._residual_weight(cells_of(fine), amp_cells)
                wr = (residual * weight).ravel()
                region_y = np.minimum(np.arange(hh) * rows // hh, rows - 1)
                region_x = np.minimum(np.arange(ww) * cols // ww, cols - 1)
                key = ((region_y[:, None] * cols + region_x[None, :]) * period + (np.arange(hh) % period)[:, None]) * (
                    period
                ) + (np.arange(ww) % period)[None, :]
                bins = rows * cols * period * period
                folded[py, px] = np.bincount(key.ravel(), weights=wr, minlength=bins).reshape(shape[2:])
                energy[py, px] = np.bincount(key.ravel(), weights=wr * wr, minlength=bins).reshape(shape[2:])
        return folded, energy

    def bit_z_of(self, item: tuple[np.ndarray, np.ndarray] | np.ndarray | None) -> np.ndarray:
        """One frame's soft values from what ``read_stream`` keeps of it (folded, for a moving mark)."""
        if not self.config.motion:
            return np.asarray(item)
        if item is None:
            return np.zeros(self.config.symbols)
        assert isinstance(item, tuple)
        return _align_regions(item[0], item[1], self._tile())

    def _decide(self, z: np.ndarray) -> WatermarkReading:
        mean_z = float(np.mean(np.abs(z)))
        if self.config.code == "conv":
            return self._decide_conv(z, mean_z)
        hard = (z > 0).astype(np.int8)
        if mean_z < self.config.min_mean_z:
            return WatermarkReading(None, _confidence(z, hard), mean_z)
        weakest = np.argsort(np.abs(z))[:_CHASE_BITS]
        for flips in range(_CHASE_MAX_FLIPS + 1):
            for chosen in itertools.combinations(weakest, flips):
                bits = hard.copy()
                bits[list(chosen)] ^= 1
                wid = _decode_word(bits)
                if wid is not None:
                    return WatermarkReading(wid, _confidence(z, bits), mean_z, corrected_bits=flips)
        return WatermarkReading(None, _confidence(z, hard), mean_z)

    def _decide_conv(self, z: np.ndarray, mean_z: float) -> WatermarkReading:
        """The coded mark's reading: the Viterbi path through the soft values, accepted when its CRC-16 holds and the
        codeword agrees with the soft values by at least ``min_agreement`` (``agreement``)."""
        bits = fec.viterbi(z, PAYLOAD_BITS)
        coded = fec.encode(bits)
        wid = _decode_word(bits)
        if wid is None or agreement(z, coded) < self.config.min_agreement:
            return WatermarkReading(None, _confidence(z, (z > 0).astype(np.int8)), mean_z)
        flipped = int(np.count_nonzero((z > 0).astype(np.int8) != coded))
        return WatermarkReading(wid, _confidence(z, coded), mean_z, corrected_bits=flipped)

    def read_stream(self, frames: Iterable[np.ndarray], faces: FaceFinder | None = None) -> Iterator[WatermarkReading]:
        """Each frame's reading, in order, with the ``window_frames - 1`` frames before it (``window_frames`` 1: the
        frame alone, as ``read``); ``_window_z`` says how they are combined. ``faces``: a function giving each frame's
        face boxes as it is read (``FaceFinder``), for a mark kept weaker on faces; without it the reader weighs a
        face's cells like any others."""
        window: deque[tuple[np.ndarray, np.ndarray] | np.ndarray | None] = deque(maxlen=self.config.window_frames)
        for image in frames:
            window.append(self._item(image, faces))
            yield self._read_window(window)

    def _item(self, image: np.ndarray, faces: FaceFinder | None) -> tuple[np.ndarray, np.ndarray] | np.ndarray | None:
        """What a reading keeps of a frame: a moving mark's fold, or the soft values."""
        if not self.config.motion:
            return self._grid_bit_z(image)
        boxes = faces(image) if faces is not None and self.config.face_gain < 1.0 else None
        return self._folded(image, boxes)

    def _read_window(
        self, window: deque[tuple[np.ndarray, np.ndarray] | np.ndarray | None], z: np.ndarray | None = None
    ) -> WatermarkReading:
        """The newest frame's reading (``z``: its soft values, when already aligned): the frame alone, and when that
        finds no id and the window holds more frames, the window together (``_window_z``). Two tries a frame: each
        must pass the check on its own, so unmarked footage has twice the (small) chance of a false id of one try."""
        alone = self._decide(self.bit_z_of(window[-1]) if z is None else z)
        if alone.id is not None or len(window) < 2:
            return alone
        together = self._decide(self._window_z(window))
        return together if together.id is not None else alone

    def _window_z(self, window: Iterable[tuple[np.ndarray, np.ndarray] | np.ndarray | None]) -> np.ndarray:
        """The soft values of the frames in ``window`` together. A moving mark's folded frames are averaged before
        they are aligned (the mark moves with the picture, a few px over a window of 8 frames, well inside a cell
        of ~11), so the alignment, which fails first on a weak mark, sees the mark of all of them; other marks'
        soft values are averaged. Averages, not sums: a still picture's content is the same in every frame, and
        summed it would grow like a mark; averaged, its soft values are those of one frame, and only what changes
        from frame to frame (the codec's error) averages down."""
        items = list(window)
        if not self.config.motion:
            return np.asarray(np.mean([np.asarray(z) for z in items], axis=0))
        folds = [f for f in items if isinstance(f, tuple)]
        if not folds:
            return np.zeros(self.config.symbols)
        folded = np.mean([f[0] for f in folds], axis=0)
        energy = np.mean([f[1] for f in folds], axis=0)
        return _align_regions(folded, energy, self._tile())

    def read_clip(self, frames: Iterable[np.ndarray], faces: FaceFinder | None = None) -> ClipReading:
        """Read every frame (with the frames before it, ``read_stream``; ``faces`` as there), and the clip pooled.

        The pooled reading decodes the mean of the frames' soft bit values. It is a mean, not a sum:
        consecutive frames of a still scene share their picture content, so that "noise" does not
        average away, and a sum would make unmarked footage look marked.
        """
        counts: Counter[int] = Counter()
        n = 0
        z_total = np.zeros(self.config.symbols)
        window: deque[tuple[np.ndarray, np.ndarray] | np.ndarray | None] = deque(maxlen=self.config.window_frames)
        for image in frames:
            item = self._item(image, faces)
            window.append(item)
            n += 1
            z = self.bit_z_of(item)
            z_total += z
            wid = self._read_window(window, z).id
            if wid is not None:
                counts[wid] += 1
        if n == 0:
            return ClipReading(0, 0, None)
        pooled = self._decide(z_total / n)
        best = counts.most_common(1)[0][0] if counts else pooled.id
        return ClipReading(n, counts.get(best, 0) if best is not None else 0, best, dict(counts), pooled)

    def _check_frame(self, image: np.ndarray, colour: bool) -> tuple[int, int]:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise InputError("watermark: frame must be a uint8 numpy array")
        if colour and (image.ndim != 3 or image.shape[2] != 3):
            raise InputError(f"watermark: frame must be H x W x 3 BGR, got shape {image.shape}")
        if not colour and not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise InputError(f"watermark: frame must be H x W grey or H x W x 3 BGR, got shape {image.shape}")
        h, w = image.shape[:2]
        if min(h, w) < self.config.min_side_px:
            raise InputError(
                f"watermark: frame {w}x{h} is too small; its shorter side must be at least {self.config.min_side_px} px"
            )
        return h, w


def _align_regions(folded: np.ndarray, energy: np.ndarray, tile: _Tile) -> np.ndarray:
    """The 48 bit z-scores of a moving mark from its residual folded onto the tile (``folded``, and its square
    ``energy``: phase y, phase x, region row, region column, tile y, tile x). The whole frame first: each bit's
    correlation at every cyclic shift and phase at once (s(shift) = sum over the bit's cells c of code(c) *
    folded(c + shift), by FFT); the shift with the largest mean |z| gives the bits a first reading. Then each region
    takes the shift near it (``_REGION_SEARCH_CELLS``, in half cells) that agrees best with the bits read so far,
    twice. Unmarked footage reads a mean |z| of ~1.2-1.8 this way (a search picks the best of many), below
    ``MOVING``'s 2.0; the check bits guard the rest."""
    r, rows, cols, period = folded.shape[0], folded.shape[2], folded.shape[3], folded.shape[-1]
    size = (period, period)
    s_frame = np.fft.irfft2(np.fft.rfft2(folded.sum(axis=(2, 3)))[:, :, None] * tile.code_spectra, s=size)
    q_frame = np.fft.irfft2(np.fft.rfft2(energy.sum(axis=(2, 3)))[:, :, None] * tile.cell_spectra, s=size)
    z_frame = s_frame / np.sqrt(np.maximum(q_frame, 1e-12))
    score = np.abs(z_frame).mean(axis=2)
    py, px, sy, sx = np.unravel_index(int(np.argmax(score)), score.shape)
    z = z_frame[py, px, :, sy, sx]
    steps = np.arange(-_REGION_SEARCH_CELLS * r, _REGION_SEARCH_CELLS * r + 1)
    near_y, near_x = np.meshgrid((sy * r + py + steps) % (period * r), (sx * r + px + steps) % (period * r))
    near_y, near_x = near_y.ravel(), near_x.ravel()
    phase = (near_y % r) * r + near_x % r
    cell_y, cell_x = np.divmod(tile.by_bit, period)
    shifted = ((cell_y + (near_y // r)[:, None]) % period) * period + (cell_x + (near_x // r)[:, None]) % period
    flat = (rows * cols, period * period)
    f_near = folded.reshape(r * r, *flat).transpose(0, 2, 1)[phase[:, None], shifted]  # shift, cell, region
    e_near = energy.reshape(r * r, *flat).transpose(0, 2, 1)[phase[:, None], shifted]
    code = tile.code.ravel()[tile.by_bit][None, :, None]
    s_near = np.add.reduceat(f_near * code, tile.bit_starts, axis=1)  # shift, bit, region
    q_near = np.add.reduceat(e_near, tile.bit_starts, axis=1)
    z_near = s_near / np.sqrt(np.maximum(q_near, 1e-12))
    regions = np.arange(rows * cols)
    for _ in range(2):
        best = np.argmax(np.einsum("kbr,b->kr", z_near, np.sign(z)), axis=0)
        z = s_near[best, :, regions].sum(axis=0) / np.sqrt(np.maximum(q_near[best, :, regions].sum(axis=0), 1e-12))
    return np.asarray(z)


def agreement(z: np.ndarray, coded: np.ndarray) -> float:
    """How far the soft values ``z`` agree with the codeword ``coded`` (0/1): their correlation with it over their
    mean magnitude, 1 when every sign agrees, 0 for a codeword unrelated to them. The best path through soft values
    of unmarked footage agrees ~0.5-0.6 (the Viterbi search picks it to agree); a mark read right, higher."""
    return float(np.sum(z * (2.0 * coded - 1.0)) / max(float(np.sum(np.abs(z))), 1e-12))


def _confidence(z: np.ndarray, bits: np.ndarray) -> float:
    signs = 2.0 * bits.astype(np.float64) - 1.0
    log_p = sum(math.log(max(_phi(float(v)), 1e-300)) for v in z * signs)
    return float(math.exp(log_p))


def mask_gain_map(image: np.ndarray, config: WatermarkConfig) -> np.ndarray:
    """Per pixel, how many times ``strength`` the masked mark may have (0 .. ``mask_gain``): the picture's RMS
    in the mark's band (difference of Gaussians, sigma 1 and 4 px, over 16-px neighbourhoods) times
    ``mask_ratio`` over ``strength``. Measured at half resolution (``_half_mask_gain``) and interpolated."""
    size = (image.shape[1], image.shape[0])
    return cv2.resize(_half_mask_gain(image, config), size, interpolation=cv2.INTER_LINEAR)


def _half_size(w: int, h: int) -> tuple[int, int]:
    """The half-resolution size (width, height) the masked marks are measured and drawn at (``cv2.pyrDown``'s)."""
    return (w + 1) // 2, (h + 1) // 2


def _half_mask_gain(image: np.ndarray, config: WatermarkConfig) -> np.ndarray:
    """``mask_gain_map`` at half resolution (``_half_size``), of a BGR or grey frame.

    ``pyrDown`` is the sigma-1 blur (its 1-4-6-4-1 kernel has a variance of 1 px^2) and a sample every second pixel;
    a sigma of sqrt(4^2 - 1) / 2 there completes the sigma-4 one. The band keeps little above a quarter of the
    sampling rate, so its energy is the same as at full resolution to within ~6% RMS of the gain (correlation 0.995
    on s18, roop_target, Obama_speaking and short_hamilton) at about a quarter of the cost (the live path's budget:
    ~14 -> ~4 ms of CPU a 720p frame)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    size = _half_size(grey.shape[1], grey.shape[0])
    # the steps write into this thread's scratch arrays (``_scratch``), the result alone is new: fresh arrays of a
    # frame's size cost their page faults again every frame (as much as the arithmetic on the AMD EPYC VM)
    flt = _scratch("grey", grey.shape)
    flt[...] = grey
    half = cv2.pyrDown(flt, dst=_scratch("half", size[::-1]))
    blurred = cv2.GaussianBlur(half, (0, 0), math.sqrt(4.0**2 - 1.0) / 2.0, dst=_scratch("a", size[::-1]))
    band = cv2.subtract(half, blurred, dst=_scratch("b", size[::-1]))
    energy = cv2.blur(cv2.multiply(band, band, dst=blurred), (8, 8), dst=band)  # 16 px of the frame
    rms = cv2.sqrt(cv2.max(energy, 0.0, dst=energy), dst=energy)  # a box blur of squares can dip below 0 by rounding
    if config.mask_open_px > 0:  # a lone speck's band energy is no texture around it (``mask_open_px``)
        side = max(1, config.mask_open_px // 2)
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
        rms = cv2.morphologyEx(rms, cv2.MORPH_OPEN, kernel, dst=_scratch("a", size[::-1]))
    if config.mask_edges > 0.0:  # measured at a quarter of the resolution: 0.3 ms of CPU a 720p frame, not ~3
        factor = _edge_factor(cv2.pyrDown(half), config.mask_edges)
        scaled = cv2.resize(factor, size, dst=_scratch("c", size[::-1]), interpolation=cv2.INTER_LINEAR)
        rms = cv2.multiply(rms, scaled, dst=scaled)
    return cv2.min(cv2.multiply(rms, config.mask_ratio / config.strength, dst=rms), config.mask_gain)


_SCRATCH = threading.local()
"""Each thread's scratch arrays (``_scratch``)."""


def _scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` that this thread reuses under ``name`` (its contents are whatever was left): for a
    step's intermediate results, never for what a function returns. A few frame sizes are kept at once."""
    arrays: dict[tuple[str, tuple[int, ...]], np.ndarray] | None = getattr(_SCRATCH, "arrays", None)
    if arrays is None:
        arrays = _SCRATCH.arrays = {}
    key = (name, tuple(shape))
    found = arrays.get(key)
    if found is None:
        if len(arrays) >= 32:  # another set of frame sizes: forget the old ones
            arrays.clear()
        found = arrays[key] = np.empty(shape, np.float32)
    return found


FACE_MARGIN = (1.25, 1.35)
"""How far past a face's box (its landmarks' extent: brow to chin, cheek to cheek) the face factor reaches, as
multiples of the box's half width and half height: the ellipse through the box's corners is 1.41 x; this covers the
cheeks, forehead and jaw to the ears and hairline, where the box ends inside the skin."""
_FACE_FEATHER = 0.25
"""The face factor's ramp, in units of the ellipse's radius: from the face's own amplitude inside to the full mark
outside, so no edge of mark rings the face."""


def _face_factor(
    boxes: np.ndarray, config: WatermarkConfig, frame_size: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """Per pixel of ``size`` (width, height; the frame is ``frame_size``), the masked marks' factor for faces:
    ``face_gain`` inside the ellipse around each box (x1, y1, x2, y2 in frame px; ``FACE_MARGIN``), 1 outside, a ramp
    of ``_FACE_FEATHER`` between.

    Why faces: the colour visibility map (S-CIELAB at 3x) sees a blue mark of about a level on close-up skin and on a
    shadowed face even where their luma texture (pores, stubble) lets the texture mask give it 2-3 levels: the eye
    resolves colour on a flat colour, not behind luma texture, and faces are where viewers look. Skin colour cannot
    say where a face is (a beige wall, wood and hair have its hue: on Obama_speaking a skin-hue rule took 73% of the
    mark away); the processor tracks the faces anyway. The reader needs no faces: it weighs every cell by the texture
    mask, and a face's cells then add a little noise and no mark."""
    w, h = max(1, size[0] // 2), max(1, size[1] // 2)  # drawn at half the size asked and interpolated: it is smooth
    factor = np.ones((h, w), np.float32)
    if len(boxes) == 0:
        return cv2.resize(factor, size, interpolation=cv2.INTER_LINEAR)
    sx, sy = w / frame_size[0], h / frame_size[1]
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    reach = 1.0 + _FACE_FEATHER  # the factor is 1 from here out: only the ellipse's bounding box is drawn
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float32).reshape(-1, 4):
        cx, cy = (x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy
        ax = max(1.0, (x2 - x1) / 2 * sx * FACE_MARGIN[0])
        ay = max(1.0, (y2 - y1) / 2 * sy * FACE_MARGIN[1])
        if not all(math.isfinite(float(v)) for v in (cx, cy, ax, ay)):
            continue  # a box that is not finite has no ellipse
        left, right = max(0, math.floor(cx - reach * ax) - 1), min(w, math.ceil(cx + reach * ax) + 2)
        top, bottom = max(0, math.floor(cy - reach * ay) - 1), min(h, math.ceil(cy + reach * ay) + 2)
        if left >= right or top >= bottom:
            continue
        r = np.sqrt(((xs[left:right] - cx) / ax) ** 2 + ((ys[top:bottom, None] - cy) / ay) ** 2)
        inside = np.clip((1.0 + _FACE_FEATHER - r) / _FACE_FEATHER, 0.0, 1.0)
        box = factor[top:bottom, left:right]
        box[:] = np.minimum(box, 1.0 - (1.0 - config.face_gain) * inside)
    return cv2.resize(factor, size, interpolation=cv2.INTER_LINEAR)


_EDGE_WINDOW = (12, 12)
"""The neighbourhood (quarter-resolution px) whose gradient orientations ``_edge_factor`` weighs: 48 px of the frame,
as wide as an edge's band energy reaches into the mask (the band's blur, sigma ~2, and the mask's 8-px box: ~12 px
each side at half resolution), so that no ring of mark is left beside the edge."""


def _edge_factor(quarter: np.ndarray, edges: float) -> np.ndarray:
    """Per quarter-resolution pixel, min(1, ``edges`` x (1 - c)): c is the coherence of the gradient's orientation over
    ``_EDGE_WINDOW`` (the structure tensor J summed there: c = sqrt((Jxx - Jyy)^2 + 4 Jxy^2) / (Jxx + Jyy)), 1 where
    one straight edge dominates, low in texture of mixed orientations and in noise. With ``edges`` 5 a neighbourhood
    keeps its whole mask up to c = 0.8 and none at c = 1."""
    gx = cv2.Sobel(quarter, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(quarter, cv2.CV_32F, 0, 1, ksize=3)
    jxx = cv2.blur(cv2.multiply(gx, gx), _EDGE_WINDOW)
    jyy = cv2.blur(cv2.multiply(gy, gy), _EDGE_WINDOW)
    jxy = cv2.blur(cv2.multiply(gx, gy), _EDGE_WINDOW)
    diff = cv2.subtract(jxx, jyy)
    spread = cv2.sqrt(cv2.max(cv2.add(cv2.multiply(diff, diff), cv2.multiply(jxy, jxy, scale=4.0)), 0.0))
    coherence = cv2.divide(spread, cv2.add(cv2.add(jxx, jyy), 1e-3))
    return cv2.min(cv2.max(cv2.add(cv2.multiply(coherence, -edges), edges), 0.0), 1.0)  # edges x (1 - c)


MAX_BOOST = 5.0 / 3.0
"""The most ``WatermarkConfig.mask_floor_rms`` raises a frame's mask (1.5 x the picture's band RMS -> 2.5 x)."""
BOOST_STEP = 1.0 / 6.0
"""The boost is a whole number of these steps: it changes at a step, not every frame (a mark scaled anew each frame
is re-coded by the encoder in every P-frame)."""


def _boosted(gain: np.ndarray, config: WatermarkConfig) -> np.ndarray:
    """``gain`` (a frame's mask) raised towards ``config.mask_floor_rms`` RMS where the frame has little texture:
    times k = floor_rms / its RMS, at most ``MAX_BOOST``, rounded down to ``BOOST_STEP``s, and capped at
    ``mask_gain`` as before. Where there is no texture the mark stays none; where there is some, it may then be up to
    k x ``mask_ratio`` times the picture's band RMS: the reader needs a mark of some size in every frame, and a dark,
    soft frame (short_hamilton's second half) has too little texture to read one at 1.5x."""
    k = _boost(float(np.sqrt(np.mean(cv2.multiply(gain, gain)))), config)
    if k <= 1.0:
        return gain
    return cv2.min(cv2.multiply(gain, k), config.mask_gain)


def _boost(rms: float, config: WatermarkConfig) -> float:
    """The floor's factor for a mask of RMS ``rms``: floor_rms / rms, at least 1, at most ``MAX_BOOST``, rounded down
    to whole ``BOOST_STEP``s (1 without a floor)."""
    if config.mask_floor_rms <= 0.0:
        return 1.0
    k = min(MAX_BOOST, config.mask_floor_rms / max(rms, 1e-6))
    return max(1.0, 1.0 + math.floor((k - 1.0) / BOOST_STEP + 1e-9) * BOOST_STEP)


def _boost_of(gain: np.ndarray, face: np.ndarray, config: WatermarkConfig) -> float:
    """The floor's factor for the picture off the faces (``_boost`` of the mask drawn with the faces' factor)."""
    return _boost(math.sqrt(_face_energies(gain, face, config)[0]), config)


def _face_energies(gain: np.ndarray, face: np.ndarray, config: WatermarkConfig) -> tuple[float, float, float]:
    """The mean squares of the mask drawn (gain x face), of the picture off the faces and of the faces' own mask
    (``watermark_fused.face_energies``: one compiled pass where OpenCV and numpy made nine)."""
    from engines.compose import watermark_fused  # numba's import on the first frame marked, not at start-up

    fg = config.face_gain
    return watermark_fused.face_energies(
        np.ascontiguousarray(gain, np.float32), np.ascontiguousarray(face, np.float32), fg, 1.0 / max(1.0 - fg, 1e-6)
    )


FACE_SHARE_STEP = 1.0 / 12.0
"""The faces' raised share (``_face_share``) is a whole number of these steps above ``face_gain``: it changes at a step,
not every frame (the encoder re-codes a mark scaled anew each frame)."""
FACE_SHARE_MAX = 1.0
"""The most the faces' share rises to (``_face_share``): the whole mask their texture allows, as an unkept mark's."""
FACE_SHARE_HOLD = 8
"""How a raised faces' share comes back down when frames need less (``_boosted_off_faces``): it rises at once when a
frame needs more; it falls one ``FACE_SHARE_STEP`` at a time, at most every this many frames (the reader's window), and
only where the frame needs two steps less (a need that wavers by a step keeps the share): a face that comes and goes
does not make the mark pump, and the encoder is not given a mark scaled anew every frame."""


def _face_share(gain: np.ndarray, face: np.ndarray, k: float, config: WatermarkConfig) -> float:
    """The faces' share of their mask a frame needs (``face_gain`` .. ``FACE_SHARE_MAX``; ``face_floor_rms``): with the
    picture off the faces boosted k x, the frame's drawn RMS is sqrt(E_off + s^2 E_face) (the ramp between split by
    its blend). ``face_gain`` while that RMS at s = ``face_gain`` is at least ``face_floor_rms`` (the picture off the
    faces carries the mark); below it (a frame the face fills), the least s in ``FACE_SHARE_STEP``s that brings it to
    the frame floor ``mask_floor_rms``, as a frame without faces is raised. Decided on the mark drawn, so a frame
    whose off-face picture is textured keeps the faces at ``face_gain`` whatever the face.

    Two levels because the frame floor is not met by most frames (the boost's steps round down, ``MAX_BOOST`` caps
    it): the bench's frames and close-ups draw 1.08-1.25 RMS (medians) with the faces at a quarter and read
    (short_hamilton's near passer-by's dark frames dip under 1.0 and are raised); d3, d0 and d10 (the face fills the
    frame) 0.82-0.89. Raised only to 1.0, d3 swapped by ``process`` read in 10% of its frames;
    to the frame floor (1.3), in 77% (thirteenth session)."""
    fg = config.face_gain
    if config.face_floor_rms <= 0.0 or fg >= 1.0:
        return fg
    _, e_off, e_face = _face_energies(gain, face, config)
    return _share_of(e_off * k * k, e_face, config)


def _share_of(e_off: float, e_face: float, config: WatermarkConfig) -> float:
    """``_face_share`` from the mean squares of the picture off the faces, boosted (``e_off``), and of the faces'
    mask (``e_face``)."""
    fg = config.face_gain
    if e_off + fg * fg * e_face >= config.face_floor_rms**2 or e_face <= 1e-9:
        return fg
    share = math.sqrt(max(0.0, max(config.mask_floor_rms, config.face_floor_rms) ** 2 - e_off) / e_face)
    return min(FACE_SHARE_MAX, fg + math.ceil((share - fg) / FACE_SHARE_STEP - 1e-9) * FACE_SHARE_STEP)


def _boosted_off_faces(
    gain: np.ndarray, face: np.ndarray, config: WatermarkConfig, state: PictureMotion | None = None
) -> np.ndarray:
    """``gain`` (a frame's mask) with the faces' factor ``face`` (``_face_factor``) and the floor measured on what is
    drawn (``WatermarkConfig.floor_after_faces``): the boost k (``_boosted``'s, from the RMS of gain x face) raises the
    picture off the faces only, the faces keep ``face_gain`` x their mask, the ramp between them is blended.

    Why: the faces' quarter of the mask leaves a close-up or a frame whose texture is mostly a face with little mark,
    and after H.264 such frames were the ones not read (roop_target 15-17, short_hamilton 26-49, thirteenth session);
    the off-face texture of those frames carries the rest, up to ``MAX_BOOST`` x, as a soft frame's does. Where even
    that leaves the frame's mark below ``face_floor_rms`` (a frame the face fills), the faces' share rises as far as
    needed (``_face_share``); ``state`` (the stream's ``PictureMotion``) keeps the share drawn in the frame before, so
    it rises at once and falls a step at a time (``FACE_SHARE_HOLD``)."""
    fg = config.face_gain
    drawn, e_off, e_face = _face_energies(gain, face, config)
    k = _boost(math.sqrt(drawn), config)
    share = fg if config.face_floor_rms <= 0.0 or fg >= 1.0 else _share_of(e_off * k * k, e_face, config)
    if state is not None and config.face_floor_rms > 0.0:
        before = state.face_share if state.face_share is not None else fg
        held = state.face_share_held + 1
        if share < before - FACE_SHARE_STEP and held >= FACE_SHARE_HOLD:  # a step down, a step of hysteresis
            share = before - FACE_SHARE_STEP
        elif share < before:
            share = before
        state.face_share_held = 0 if share != before else held
        state.face_share = share
    if k <= 1.0 and share <= fg:
        return cv2.multiply(gain, face)
    from engines.compose import watermark_fused

    # off = (face - fg) / (1 - fg): 1 off the faces, 0 on them; the mask times off x (k - share) + share
    return watermark_fused.off_faces(
        np.ascontiguousarray(gain, np.float32),
        np.ascontiguousarray(face, np.float32),
        fg,
        1.0 / max(1.0 - fg, 1e-6),
        k - share,
        share,
        config.mask_gain,
    )


def draw_badge(image: np.ndarray, text: str = "SYNTHETIC") -> np.ndarray:
    """A copy of ``image`` with a visible badge in the top-right corner, sized to the frame (monitors only)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError("badge: frame must be an H x W x 3 uint8 BGR array")
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.4, h / 720.0 * 0.8)
    thickness = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(4, round(8 * scale))
    x1, y0 = w - pad, pad
    x0, y1 = max(0, x1 - tw - 2 * pad), min(h, y0 + th + base + 2 * pad)
    region = out[y0:y1, x0:x1]
    if region.size == 0:  # a frame too small to hold it
        return out
    red = np.empty_like(region)
    red[:] = (30, 30, 200)
    cv2.addWeighted(red, 0.75, region, 0.25, 0.0, dst=region)
    cv2.putText(
        out,
        text,
        (x0 + pad, y1 - pad - base // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )
    return out
