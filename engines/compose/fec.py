"""A convolutional code with a soft-decision Viterbi decoder: the error-correcting gain of the ``hush`` watermark.

Why: the other marks carry their 48 payload bits (a 32-bit id and its CRC-16) once each and read them by sign, with a
few of the weakest flipped until the check holds (Chase); a reading needs every bit's correlation well above the
noise (mean |z| >= 2). Coding the 48 bits at rate 1/3 (constraint length 7, the generators 133, 171, 165 octal of
LTE's control channel; six zero tail bits end the trellis in state 0) spreads each bit's information over 18 of the
162 coded bits, and the Viterbi decoder uses every coded bit's correlation as it is, not its sign: on a Gaussian
channel it reads the 48 bits in 95% of tries at a per-bit z about 1.7 where the uncoded word with Chase needs about
2.1 (a simulation of both at the same energy per frame: 1.8 dB). The CRC-16 stays the check after decoding, so a
decoded word of unmarked footage passes in 1 of 65,536 tries, and a reading also needs the decoded codeword to agree
with the soft values (``codeword_z``).

Pure numpy: 64 states x 54 steps, ~1 ms a decode.
"""

from __future__ import annotations

import numpy as np

CONSTRAINT = 7
GENERATORS = (0o133, 0o171, 0o165)
RATE = len(GENERATORS)
_STATES = 1 << (CONSTRAINT - 1)


def _trellis() -> np.ndarray:
    """outputs[state, bit, k]: the coded bits (0/1) sent when ``bit`` enters the register holding ``state``
    (the last six bits, newest highest); the next state is ``((bit << 6) | state) >> 1``."""
    out = np.zeros((_STATES, 2, RATE), np.int8)
    for state in range(_STATES):
        for bit in range(2):
            register = (bit << (CONSTRAINT - 1)) | state
            out[state, bit] = [bin(register & g).count("1") & 1 for g in GENERATORS]
    return out


_OUTPUTS = _trellis()
_SIGNS = (2.0 * _OUTPUTS - 1.0).astype(np.float64)  # state, bit, k: +-1
# each next state n has two predecessors, p0 = (n << 1) & 63 and p0 | 1, both entered with the bit n >> 5
_NEXT = np.arange(_STATES)
_PRED0 = (_NEXT << 1) & (_STATES - 1)
_PRED1 = _PRED0 | 1
_BIT_IN = _NEXT >> (CONSTRAINT - 2)


def coded_length(n_bits: int) -> int:
    """How many coded bits ``encode`` makes of ``n_bits`` (the tail included)."""
    return RATE * (n_bits + CONSTRAINT - 1)


def encode(bits: np.ndarray) -> np.ndarray:
    """The coded bits (int8 0/1) of ``bits`` (0/1), the register flushed with six zeros."""
    state = 0
    out = np.empty(coded_length(len(bits)), np.int8)
    for i, bit in enumerate([*(int(b) for b in bits), *([0] * (CONSTRAINT - 1))]):
        out[i * RATE : (i + 1) * RATE] = _OUTPUTS[state, bit]
        state = ((bit << (CONSTRAINT - 1)) | state) >> 1
    return out


def viterbi(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """The most likely ``n_bits`` (int8 0/1) given one soft value per coded bit (positive: a 1 more likely; its size
    the confidence, e.g. a correlation's z-score): the path through the trellis, from state 0 to state 0, whose coded
    bits (as +-1) have the largest correlation with ``soft``."""
    steps = n_bits + CONSTRAINT - 1
    if soft.shape != (RATE * steps,):
        raise ValueError(f"viterbi: expected {RATE * steps} soft values for {n_bits} bits, got {soft.shape}")
    branch = np.einsum("sbk,tk->tsb", _SIGNS, soft.reshape(steps, RATE).astype(np.float64))
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    from_one = np.zeros((steps, _STATES), bool)  # whether a state's survivor came from its odd predecessor
    for t in range(steps):
        c0 = metric[_PRED0] + branch[t, _PRED0, _BIT_IN]
        c1 = metric[_PRED1] + branch[t, _PRED1, _BIT_IN]
        if t >= n_bits:  # the tail: only zeros enter
            c0 = np.where(_BIT_IN == 0, c0, -np.inf)
            c1 = np.where(_BIT_IN == 0, c1, -np.inf)
        from_one[t] = c1 > c0
        metric = np.maximum(c0, c1)
    bits = np.empty(steps, np.int8)
    state = 0
    for t in range(steps - 1, -1, -1):
        bits[t] = _BIT_IN[state]
        state = int(_PRED1[state] if from_one[t, state] else _PRED0[state])
    return bits[:n_bits]


def codeword_z(soft: np.ndarray, coded: np.ndarray) -> float:
    """The mean of the soft values signed by ``coded`` (0/1): how far the soft values agree with that codeword (a
    correlation's mean z along it; ~0 for footage that does not carry it)."""
    return float(np.mean(soft * (2.0 * coded - 1.0)))
