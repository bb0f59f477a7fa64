"""The int8 fully-connected kernel for the Cortex-M55, written as TIR.

Legalizing the integer form's FC body would give a kernel that widens and transposes the whole
weight matrix to int32 on every call (4× the weight bytes in RAM) and requantizes in int64 per
element of several separate loops. This kernel computes the same bits the way a microcontroller
library does:

- the input zero point is folded into the bias at compile time,
  ``Σ_k (x_k − x_zp)·w_nk + b_n = Σ_k x_k·w_nk + (b_n − x_zp·Σ_k w_nk)`` (exact in int32, both
  sides wrap alike), so the inner loop is a plain int8×int8 → int32 dot product that clang turns
  into Helium ``vmladava.s8`` (16 MACs per instruction);
- rows are computed ``ROWS`` at a time, so each input vector load feeds ``ROWS`` dot products
  (the same blocking as CMSIS-DSP's Helium ``arm_mat_vec_mult_q7``);
- requantization is the integer form's per-channel FULLY_CONNECTED rule (``tvmse.ir.kernels``):
  one rounding of ``p = acc·m`` by ``2^t``, ``t = 31−shift``, halves away from zero, once per
  output. When every channel has ``shift ≤ −2`` (rescale < 1/4, the usual FC case) only the high
  word of ``|acc|·m`` is needed, since floors nest:
  ``round_away(p / 2^t) = sign(acc)·⌊(⌊|acc|·m / 2^32⌋ + 2^(t−33)) / 2^(t−32)⌋`` (``m ≥ 0``).
  Each block of four rows does this in Helium vectors (``REQUANTIZE4_C``: ``vabs``, ``vmulh.u32``,
  the rounding shift ``vrshl``, a predicated ``vneg``, the zero point, a saturating shift and a
  narrowing store: ~16 instructions per four outputs with the gathering of the accumulators and
  the loads, instead of ~34 scalar ones); rows outside such blocks use the scalar form of the
  same rule, ``((⌊(p + s) / 2^32⌋ >> (t − 33)) + 1 + 2·zp) >> 1`` with ``s = acc >> 31`` (one
  ``smlal``), clamped in int32 (``ssat``). Otherwise the general int64 form is used, one row at a
  time.

``params`` holds per output row the folded bias, the multiplier and the shift operand, laid out in
the kernel's row blocks (``row_params``) so that one pointer reaches all three and a block's
multipliers and shift operands are each one vector load.
"""

from __future__ import annotations

import numpy as np
from tvm.script import tirx as T

#: Output rows computed together (sharing the input vector loads): the best single choice measured
#: on the bundled models' shapes; ``autotune --target cortex-m55`` may pick another per shape.
ROWS = 4
#: The choices the tuner tries per FC shape.
ROW_CHOICES = (1, 2, 4, 8)
#: Rows requantized together in one Helium vector (int32 lanes of a 128-bit register).
VECTOR_ROWS = 4
#: The C function that requantizes four rows in Helium vectors (``REQUANTIZE4_C``).
REQUANTIZE4 = "tvmse_fc_requantize4"
#: Largest per-channel shift for which the requantization runs in the high word of ``acc·m``.
HIGH_WORD_MAX_SHIFT = -2

#: C of ``REQUANTIZE4``, placed in the kernels' source by ``kernels_c.build_c``. The empty ``asm``
#: keeps the four accumulators scalar up to here: without it clang merges the rows' sums into one
#: vector inside the dot-product loop (three more instructions per 16 columns).
REQUANTIZE4_C = r"""
#if !defined(__ARM_FEATURE_MVE)
#error "tvmse's FC kernels need Helium (MVE): compile for the Cortex-M55 (-mcpu=cortex-m55)"
#endif
#include <arm_mve.h>

/* Four outputs of the high-word requantization (fc_kernel.py): y[i] = clamp(sign(a_i) *
 * ((floor(|a_i| * mult[i] / 2^32) + 2^(t-33)) >> (t-32)) + zp) with t = 31 - shift_i and
 * operand[i] = 1 + shift_i = 32 - t (a right shift for vrshl). |INT32_MIN| = 2^31 is right as an
 * unsigned lane; mult[i] >= 0. */
static inline __attribute__((always_inline)) void tvmse_fc_requantize4(
    int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t *mult, int32_t *operand,
    int8_t *y, int32_t zp)
{
    __asm__("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3));
    int32x4_t acc = vdupq_n_s32(a0);
    acc = vsetq_lane_s32(a1, acc, 1);
    acc = vsetq_lane_s32(a2, acc, 2);
    acc = vsetq_lane_s32(a3, acc, 3);
    mve_pred16_t negative = vcmpltq_n_s32(acc, 0);
    uint32x4_t high = vmulhq_u32(vreinterpretq_u32_s32(vabsq_s32(acc)), vldrwq_u32((uint32_t *)mult));
    int32x4_t magnitude = vreinterpretq_s32_u32(vrshlq_u32(high, vldrwq_s32(operand)));
    int32x4_t out = vaddq_n_s32(vnegq_m_s32(magnitude, magnitude, negative), zp);
    /* saturate to int8: shift into the top byte with saturation, back down arithmetically */
    vstrbq_s32(y, vshrq_n_s32(vqshlq_n_s32(out, 24), 24));
}
"""


def folded_bias(weight: np.ndarray, bias: np.ndarray, x_zero_point: int) -> np.ndarray:
    """``b_n − x_zp·Σ_k w_nk``, wrapped to int32 as the kernel's int32 accumulator wraps."""
    rowsum = weight.astype(np.int64).sum(axis=1)
    folded = bias.astype(np.int64) - int(x_zero_point) * rowsum
    return ((folded + 2**31) % 2**32 - 2**31).astype(np.int32)


def uses_high_word(shift: np.ndarray) -> bool:
    """Whether an FC with these per-channel shifts gets the high-word requantization."""
    return int(np.max(shift)) <= HIGH_WORD_MAX_SHIFT


def shift_operand(shift: np.ndarray) -> np.ndarray:
    """The kernel's shift operand for these per-channel shifts (int32).

    The high-word form takes ``1 + shift = 32 − t`` ∈ [−30, −1], what Helium's ``vrshl`` shifts
    the high word by (a rounding right shift by ``t − 32``); the scalar rows shift the high word
    right by its complement ``~(1 + shift) = t − 33`` (``mvn``, no clamp for TVM's simplifier to get
    wrong). The general form takes ``shift`` itself.
    """
    shift = np.asarray(shift, np.int64)
    return (1 + shift if uses_high_word(shift) else shift).astype(np.int32)


def _block_layout(n: int, rows: int) -> tuple[int, int]:
    """``(blocks, tail)``: full blocks of ``rows`` rows, then the remaining rows one at a time."""
    if rows < 1:
        raise ValueError(f"rows per input pass must be at least 1, not {rows}")
    return divmod(n, rows)


def row_params(weight: np.ndarray, consts: dict, x_zero_point: int, rows: int = ROWS) -> np.ndarray:
    """The kernel's ``params`` [3·n] int32: per output row the folded bias, the multiplier and the
    shift operand, in the kernel's row blocks: each full block of ``rows`` rows holds its biases,
    then its multipliers, then its shift operands (each group one vector load), the ``n mod rows``
    rows after the last block hold theirs side by side. One pointer reaches all of a row's
    parameters (fewer registers and loads per row than three arrays)."""
    multiplier = np.asarray(consts["multiplier"], np.int64)
    if np.any(multiplier < 0):
        raise ValueError("FC multipliers must be non-negative (positive scales)")
    per_row = np.stack([folded_bias(weight, consts["bias"], x_zero_point), multiplier,
                        shift_operand(consts["shift"])], axis=1).astype(np.int32)
    blocks, _ = _block_layout(len(per_row), rows)
    blocked = per_row[:blocks * rows].reshape(blocks, rows, 3).transpose(0, 2, 1)
    return np.concatenate([blocked.ravel(), per_row[blocks * rows:].ravel()]).astype(np.int32)


@T.macro
def _requantize(y, index, acc, params, m_at, s_at, zp):
    # p = acc·m rounded once by 2^(31−shift), halves away from zero, without a branch:
    # (p + 2^(30−shift) + (p >> 63)) >> (31−shift); p >> 63 is −1 for negative p, which moves
    # exact negative ties down (away from zero) and changes nothing else.
    y[0, index] = T.Cast("int8", T.max(T.min(
        ((T.Cast("int64", acc) * T.Cast("int64", params[m_at])
          + (T.int64(1) << (T.int64(30) - T.Cast("int64", params[s_at])))
          + ((T.Cast("int64", acc) * T.Cast("int64", params[m_at])) >> T.int64(63)))
         >> (T.int64(31) - T.Cast("int64", params[s_at])))
        + T.int64(zp), T.int64(127)), T.int64(-128)))


@T.macro
def _requantize_high_word(y, index, acc, params, m_at, s_at, zp2):
    # For shift ≤ −2, i.e. t = 31 − shift ≥ 33 (see the module docstring):
    # round_away(p / 2^t) = ((⌊(p + s) / 2^32⌋ >> (t − 33)) + 1) >> 1 with s = acc >> 31 and
    # t − 33 = ~params[s_at] (multiplier at m_at, shift operand at s_at). The zero point enters as (… + 1 + 2·zp) >> 1 and the clamp is in
    # int32 (|⌊(p + s) / 2^32⌋| ≤ 2^30).
    y[0, index] = T.Cast("int8", T.max(T.min(
        ((T.Cast("int32", (T.Cast("int64", acc) * T.Cast("int64", params[m_at])
                           + T.Cast("int64", acc >> T.int32(31))) >> T.int64(32))
          >> T.bitwise_not(params[s_at]))
         + T.int32(zp2)) >> T.int32(1), T.int32(127)), T.int32(-128)))


def fully_connected(n: int, k: int, y_zero_point: int, high_word: bool = False, rows: int = ROWS):
    """PrimFunc ``(x[1,k] i8, w[n,k] i8, params[3·n] i32) → y[1,n] i8``.

    ``params`` must be ``row_params(…, rows)`` (folded bias, multiplier, shift operand in row
    blocks); ``high_word`` must be ``uses_high_word(shift)`` (the cheaper requantization of the
    high word of ``acc·m``; otherwise the general int64 one). ``rows``: output rows computed per
    pass over the input (the rest, ``n mod rows``, one at a time); with the high-word form, blocks
    of a multiple of ``VECTOR_ROWS`` rows are requantized in Helium vectors (``REQUANTIZE4_C``).
    """
    blocks, tail = _block_layout(n, rows)
    zp = int(y_zero_point)
    requantize = _requantize_high_word if high_word else _requantize
    zq = 1 + 2 * zp if high_word else zp
    vector = high_word and rows % VECTOR_ROWS == 0
    block_words = 3 * rows

    @T.prim_func
    def fc(x: T.Buffer((1, k), "int8"), w: T.Buffer((n, k), "int8"), params: T.Buffer((3 * n,), "int32"),
           y: T.Buffer((1, n), "int8")):
        T.func_attr({"tirx.noalias": True})
        # "global" scope: a small fixed-size array on the stack (other scopes go to the workspace allocator)
        acc = T.alloc_buffer((rows,), "int32", scope="global")
        for nb in range(blocks):
            for r in T.unroll(rows):
                acc[r] = params[nb * block_words + r]
            for kk in range(k):
                for r in T.unroll(rows):
                    acc[r] = acc[r] + T.Cast("int32", x[0, kk]) * T.Cast("int32", w[nb * rows + r, kk])
            if vector:
                for g in T.unroll(rows // VECTOR_ROWS):
                    T.evaluate(T.call_extern(
                        "void", REQUANTIZE4, acc[g * 4], acc[g * 4 + 1], acc[g * 4 + 2], acc[g * 4 + 3],
                        T.address_of(params[nb * block_words + rows + g * 4]),
                        T.address_of(params[nb * block_words + 2 * rows + g * 4]),
                        T.address_of(y[0, nb * rows + g * 4]), zp))
            else:
                for r in T.unroll(rows):
                    requantize(y, nb * rows + r, acc[r], params, nb * block_words + rows + r,
                               nb * block_words + 2 * rows + r, zq)
        for t in range(tail):
            acc[0] = params[blocks * block_words + 3 * t]
            for kk in range(k):
                acc[0] = acc[0] + T.Cast("int32", x[0, kk]) * T.Cast("int32", w[blocks * rows + t, kk])
            requantize(y, blocks * rows + t, acc[0], params, blocks * block_words + 3 * t + 1,
                       blocks * block_words + 3 * t + 2, zq)

    return fc.with_attr("tvmse.c_helpers", REQUANTIZE4_C) if vector else fc
