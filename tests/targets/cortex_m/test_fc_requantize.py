"""The FC kernel's high-word requantization is bit-exact with the integer form's rule.

A numpy model of the kernel's int32/int64 steps (as emitted in C by ``fc_kernel``) against
``quant_math.multiply_by_quantized_multiplier_ties_away`` plus the int8 clamp, over random and
extreme accumulators, every shift the high-word form takes, ties included.
"""
import numpy as np
import pytest

from tvmse import quant_math
from tvmse.targets.cortex_m import fc_kernel

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def _reference(acc, mult, shift, zp):
    r = quant_math.multiply_by_quantized_multiplier_ties_away(acc, mult, shift)
    return np.clip(r + zp, -128, 127).astype(np.int8)


def _high_word(acc, mult, shift, zp):
    """The C of ``_requantize_high_word``, step by step, with its types."""
    acc = np.asarray(acc, np.int64)
    amount = fc_kernel.shift_operand(shift).astype(np.int64)
    assert np.all((0 <= amount) & (amount <= 31))               # a defined C shift
    wide = acc * np.asarray(mult, np.int64) + (acc >> 31)       # int64, no overflow: |acc·m| < 2^62
    high = wide >> 32
    assert np.all((INT32_MIN <= high) & (high <= INT32_MAX))    # the (int32) cast keeps it
    total = (high >> amount) + (1 + 2 * zp)
    assert np.all((INT32_MIN <= total) & (total <= INT32_MAX))  # the int32 add does not wrap
    return np.clip(total >> 1, -128, 127).astype(np.int8)


def _cases(rng, shift):
    n = 200_000
    acc = np.concatenate([
        rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True),
        rng.integers(-2**20, 2**20, n),
        rng.integers(-600, 600, n),
        [INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX]])
    mult = np.concatenate([rng.integers(2**30, 2**31, len(acc) - 8, endpoint=False),
                           [2**30, 2**30 + 1, 2**31 - 1, 2**31 - 2, 2**30, 2**31 - 1, 2**30, 2**31 - 1]])
    return acc, mult, np.full(len(acc), shift)


@pytest.mark.parametrize("shift", range(-31, fc_kernel.HIGH_WORD_MAX_SHIFT + 1))
@pytest.mark.parametrize("zp", [-128, -7, 0, 127])
def test_high_word_requantization_is_exact(shift, zp):
    rng = np.random.default_rng(1000 + 7 * shift + zp)
    acc, mult, shifts = _cases(rng, shift)
    np.testing.assert_array_equal(_high_word(acc, mult, shifts, zp), _reference(acc, mult, shifts, zp))


@pytest.mark.parametrize("shift", range(-31, fc_kernel.HIGH_WORD_MAX_SHIFT + 1))
def test_high_word_requantization_rounds_ties_away_from_zero(shift):
    # m = 2^30 (a power-of-two scale): acc·m / 2^(31−shift) = acc / 2^(1−shift), exact ties at odd
    # multiples of 2^(−shift); both signs, around every output value and the clamp edges.
    t = 1 - shift
    q = np.arange(-300, 301, dtype=np.int64)
    acc = np.concatenate([q * 2**t + 2**(t - 1), q * 2**t - 2**(t - 1), q * 2**t + 2**(t - 1) - 1,
                          q * 2**t - 2**(t - 1) + 1, q * 2**t])
    acc = acc[(acc >= INT32_MIN) & (acc <= INT32_MAX)]
    for mult in (2**30, 2**30 + 1, 2**31 - 1):
        m = np.full(len(acc), mult)
        s = np.full(len(acc), shift)
        for zp in (-128, -7, 0, 127):
            np.testing.assert_array_equal(_high_word(acc, m, s, zp), _reference(acc, m, s, zp))
    ref = quant_math.multiply_by_quantized_multiplier_ties_away(acc, np.full(len(acc), 2**30), s)
    assert np.any(ref < 0) and np.any((acc < 0) & (acc % 2**t == 2**(t - 1)))   # negative ties hit


def test_shift_operand_selects_the_form():
    assert fc_kernel.uses_high_word(np.array([-31, -5, -2]))
    assert fc_kernel.shift_operand(np.array([-31, -5, -2])).tolist() == [29, 3, 0]
    assert not fc_kernel.uses_high_word(np.array([-5, -1]))
    assert fc_kernel.shift_operand(np.array([-5, -1])).tolist() == [-5, -1]
    assert fc_kernel.shift_operand(np.array([-5, 30])).dtype == np.int32
