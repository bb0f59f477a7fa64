"""The FC kernel's high-word requantization is bit-exact with the integer form's rule.

Numpy models of the kernel's steps, the scalar rows' int32/int64 C and the four-row Helium vector
form (``fc_kernel.REQUANTIZE4_C``), against ``quant_math.multiply_by_quantized_multiplier_ties_away``
plus the int8 clamp, over random and extreme accumulators, every shift the high-word form takes,
ties included; and the vector C itself on the emulated Cortex-M55 over the same kinds of cases.
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
    amount = ~fc_kernel.shift_operand(shift).astype(np.int64)   # the C's ~operand
    assert np.all((0 <= amount) & (amount <= 31))               # a defined C shift
    wide = acc * np.asarray(mult, np.int64) + (acc >> 31)       # int64, no overflow: |acc·m| < 2^62
    high = wide >> 32
    assert np.all((INT32_MIN <= high) & (high <= INT32_MAX))    # the (int32) cast keeps it
    total = (high >> amount) + (1 + 2 * zp)
    assert np.all((INT32_MIN <= total) & (total <= INT32_MAX))  # the int32 add does not wrap
    return np.clip(total >> 1, -128, 127).astype(np.int8)


def _vector(acc, mult, shift, zp):
    """The Helium steps of ``tvmse_fc_requantize4``, lane by lane, with their lane types."""
    acc = np.asarray(acc, np.int64)
    magnitude = np.abs(acc).astype(np.uint64)                   # vabs.s32: INT32_MIN → 0x80000000 as u32
    assert np.all(magnitude <= 2**31)
    high = (magnitude * np.asarray(mult, np.uint64)) >> np.uint64(32)   # vmulh.u32
    operand = fc_kernel.shift_operand(shift).astype(np.int64)
    assert np.all((-31 <= operand) & (operand <= -1))           # vrshl: a rounding right shift
    right = (-operand).astype(np.uint64)
    rounded = ((high + (np.uint64(1) << (right - np.uint64(1)))) >> right).astype(np.int64)
    assert np.all(rounded < 2**31)
    out = np.where(acc < 0, -rounded, rounded) + zp             # vneg (predicated), vadd
    saturated = np.clip(out * 2**24, INT32_MIN, INT32_MAX)      # vqshl.s32 #24
    return (saturated >> 24).astype(np.int8)                    # vshr #24, vstrb.32 keeps the low byte


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
@pytest.mark.parametrize("zp", [-128, -7, 0, 127])
def test_vector_requantization_is_exact(shift, zp):
    rng = np.random.default_rng(2000 + 7 * shift + zp)
    acc, mult, shifts = _cases(rng, shift)
    np.testing.assert_array_equal(_vector(acc, mult, shifts, zp), _reference(acc, mult, shifts, zp))


def _ties(shift):
    """Accumulators at, next to and between exact .5 ties of acc·2^30 / 2^(31−shift), both signs."""
    t = 1 - shift
    q = np.arange(-300, 301, dtype=np.int64)
    acc = np.concatenate([q * 2**t + 2**(t - 1), q * 2**t - 2**(t - 1), q * 2**t + 2**(t - 1) - 1,
                          q * 2**t - 2**(t - 1) + 1, q * 2**t])
    return acc[(acc >= INT32_MIN) & (acc <= INT32_MAX)]


@pytest.mark.parametrize("shift", range(-31, fc_kernel.HIGH_WORD_MAX_SHIFT + 1))
def test_high_word_requantization_rounds_ties_away_from_zero(shift):
    # m = 2^30 (a power-of-two scale): acc·m / 2^(31−shift) = acc / 2^(1−shift), exact ties at odd
    # multiples of 2^(−shift); both signs, around every output value and the clamp edges.
    t = 1 - shift
    acc = _ties(shift)
    for mult in (2**30, 2**30 + 1, 2**31 - 1):
        m = np.full(len(acc), mult)
        s = np.full(len(acc), shift)
        for zp in (-128, -7, 0, 127):
            np.testing.assert_array_equal(_high_word(acc, m, s, zp), _reference(acc, m, s, zp))
            np.testing.assert_array_equal(_vector(acc, m, s, zp), _reference(acc, m, s, zp))
    ref = quant_math.multiply_by_quantized_multiplier_ties_away(acc, np.full(len(acc), 2**30), s)
    assert np.any(ref < 0) and np.any((acc < 0) & (acc % 2**t == 2**(t - 1)))   # negative ties hit


def test_shift_operand_selects_the_form():
    assert fc_kernel.uses_high_word(np.array([-31, -5, -2]))
    assert fc_kernel.shift_operand(np.array([-31, -5, -2])).tolist() == [-30, -4, -1]
    assert not fc_kernel.uses_high_word(np.array([-5, -1]))
    assert fc_kernel.shift_operand(np.array([-5, -1])).tolist() == [-5, -1]
    assert fc_kernel.shift_operand(np.array([-5, 30])).dtype == np.int32


def test_row_params_are_laid_out_in_the_kernels_row_blocks():
    n, k, x_zp = 11, 3, -2
    weight = np.arange(n * k).reshape(n, k) % 7 - 3
    consts = {"bias": np.arange(n) * 10, "multiplier": 2**30 + np.arange(n), "shift": -3 - np.arange(n) % 4}
    per_row = np.stack([fc_kernel.folded_bias(weight, consts["bias"], x_zp), consts["multiplier"],
                        fc_kernel.shift_operand(consts["shift"])], axis=1)
    params = fc_kernel.row_params(weight, consts, x_zp, rows=4)
    assert params.dtype == np.int32 and params.shape == (3 * n,)
    for block in range(2):                       # two blocks of 4: biases, multipliers, operands
        np.testing.assert_array_equal(params[12 * block:12 * block + 12].reshape(3, 4), per_row[4 * block:4 * block + 4].T)
    np.testing.assert_array_equal(params[24:], per_row[8:].ravel())   # three tail rows side by side
    np.testing.assert_array_equal(fc_kernel.row_params(weight, consts, x_zp, rows=1), per_row.ravel())
    with pytest.raises(ValueError, match="non-negative"):
        fc_kernel.row_params(weight, {**consts, "multiplier": -consts["multiplier"]}, x_zp)


_VECTOR_HARNESS = """\
#include <stdint.h>
#include "tvmse_rt.h"
{helper}
{data}
static int8_t out[{count}] __attribute__((aligned(16)));

int main(void)
{{
    for (int i = 0; i < {count}; i += 4)
        tvmse_fc_requantize4(acc[i], acc[i + 1], acc[i + 2], acc[i + 3], (int32_t *)&mult[i],
                             (int32_t *)&operand[i], &out[i], zp[i / 4]);
    tvmse_print_hex("out", out, sizeof(out));
    return 0;
}}
"""


def test_vector_requantization_c_is_exact_on_the_cortex_m55(qemu, tmp_path):
    """``REQUANTIZE4_C`` itself (Helium intrinsics, clang as the FC kernels are built) under QEMU."""
    rng = np.random.default_rng(7)
    acc, mult, shift = [], [], []
    for s in range(-31, fc_kernel.HIGH_WORD_MAX_SHIFT + 1):
        ties = _ties(s)
        extremes = [INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX]
        draws = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, 40, endpoint=True), rng.integers(-600, 600, 40),
                                rng.choice(ties, min(len(ties), 400), replace=False), extremes])
        draws = draws[:len(draws) // 4 * 4]
        acc.append(draws)
        mult.append(np.where(np.arange(len(draws)) % 3 == 0, 2**30,
                             np.where(np.arange(len(draws)) % 3 == 1, 2**31 - 1, rng.integers(2**30, 2**31, len(draws)))))
        shift.append(np.full(len(draws), s))
    acc, mult, shift = np.concatenate(acc), np.concatenate(mult), np.concatenate(shift)
    zp = rng.choice([-128, -7, 0, 5, 127], len(acc) // 4)
    lane_zp = np.repeat(zp, 4)
    data = (qemu.c_array("acc", acc, "int32_t") + qemu.c_array("mult", mult, "uint32_t")
            + qemu.c_array("operand", fc_kernel.shift_operand(shift), "int32_t") + qemu.c_array("zp", zp, "int32_t"))
    main_c = tmp_path / "main.c"
    main_c.write_text(_VECTOR_HARNESS.format(helper=fc_kernel.REQUANTIZE4_C, data=data, count=len(acc)))
    elf = qemu.build_elf([main_c], [], tmp_path, "clang", "-O2", name="requantize4")
    result = qemu.run_elf(elf)
    assert result.exit_code == 0, result.stdout + result.stderr
    got = np.frombuffer(result.arrays()["out"], np.int8)
    np.testing.assert_array_equal(got, _reference(acc, mult, shift, lane_zp))
