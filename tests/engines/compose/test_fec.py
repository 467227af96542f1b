"""The convolutional code and soft-decision Viterbi decoder of the hush watermark (issue 24, ``fec``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.compose import fec
from engines.compose.watermark import PAYLOAD_BITS, _decode_word, payload_bits

WID = 0x2B7E1516


def test_the_code_corrects_what_reading_by_sign_cannot() -> None:
    """Clean soft values decode to the payload; at the energy where the 48 bits sent once each come through with
    about 2 wrong by sign (a per-bit z of 1.8), the same energy spread over the 162 coded bits decodes to the right
    id in >= 85% of 50 seeded tries (simulated: 97%), and the uncoded word's signs pass its check in under 30%
    (simulated: 17%)."""
    bits = payload_bits(WID)
    coded = fec.encode(bits)
    assert coded.shape == (fec.coded_length(PAYLOAD_BITS),) == (162,)
    assert np.array_equal(fec.viterbi(2.0 * coded - 1.0, PAYLOAD_BITS), bits)
    rng = np.random.default_rng(7)
    per_bit_z = 1.8
    coded_ok = sign_ok = 0
    for _ in range(50):
        noisy = per_bit_z * math.sqrt(PAYLOAD_BITS / len(coded)) * (2.0 * coded - 1.0) + rng.standard_normal(len(coded))
        coded_ok += _decode_word(fec.viterbi(noisy, PAYLOAD_BITS)) == WID
        plain = per_bit_z * (2.0 * bits - 1.0) + rng.standard_normal(PAYLOAD_BITS)
        sign_ok += _decode_word((plain > 0).astype(np.int8)) == WID
    assert coded_ok >= 43 and sign_ok < 15, (coded_ok, sign_ok)
    with pytest.raises(ValueError, match="162 soft values"):
        fec.viterbi(np.zeros(48), PAYLOAD_BITS)
