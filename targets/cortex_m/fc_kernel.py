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
  word of ``p + s`` (``s = acc >> 31``, one ``smlal``) is needed, since floors nest:
  ``⌊(p + s + 2^(t−1)) / 2^t⌋ = (((⌊(p + s) / 2^32⌋ >> (t − 33)) + 1) >> 1``; the zero point is
  folded in as ``(… + 1 + 2·zp) >> 1`` and the clamp stays in int32 (``ssat``), ~9 instructions
  per output instead of ~29. Otherwise the general int64 form is used.
"""

from __future__ import annotations

import numpy as np
from tvm.script import tirx as T

#: Output rows computed together (sharing the input vector loads): the best single choice measured
#: on the bundled models' shapes; ``autotune --target cortex-m55`` may pick another per shape.
ROWS = 4
#: The choices the tuner tries per FC shape.
ROW_CHOICES = (1, 2, 4, 8)


def folded_bias(weight: np.ndarray, bias: np.ndarray, x_zero_point: int) -> np.ndarray:
    """``b_n − x_zp·Σ_k w_nk``, wrapped to int32 as the kernel's int32 accumulator wraps."""
    rowsum = weight.astype(np.int64).sum(axis=1)
    folded = bias.astype(np.int64) - int(x_zero_point) * rowsum
    return ((folded + 2**31) % 2**32 - 2**31).astype(np.int32)


def row_params(weight: np.ndarray, consts: dict, x_zero_point: int) -> np.ndarray:
    """The kernel's ``params`` [n, 3] int32: per output row the folded bias, the multiplier and the
    shift operand, side by side so that one pointer reaches all three (fewer registers and loads
    per row than three arrays, and three kernel arguments fewer to unpack)."""
    return np.stack([folded_bias(weight, consts["bias"], x_zero_point), consts["multiplier"].astype(np.int32),
                     shift_operand(consts["shift"])], axis=1).astype(np.int32)


@T.macro
def _requantize(y, index, acc, params, zp):
    # p = acc·m rounded once by 2^(31−shift), halves away from zero, without a branch:
    # (p + 2^(30−shift) + (p >> 63)) >> (31−shift); p >> 63 is −1 for negative p, which moves
    # exact negative ties down (away from zero) and changes nothing else.
    y[0, index] = T.Cast("int8", T.max(T.min(
        ((T.Cast("int64", acc) * T.Cast("int64", params[index, 1])
          + (T.int64(1) << (T.int64(30) - T.Cast("int64", params[index, 2])))
          + ((T.Cast("int64", acc) * T.Cast("int64", params[index, 1])) >> T.int64(63)))
         >> (T.int64(31) - T.Cast("int64", params[index, 2])))
        + T.int64(zp), T.int64(127)), T.int64(-128)))


#: Largest per-channel shift for which the requantization runs in the high word of ``acc·m``.
HIGH_WORD_MAX_SHIFT = -2


def uses_high_word(shift: np.ndarray) -> bool:
    """Whether an FC with these per-channel shifts gets the high-word requantization."""
    return int(np.max(shift)) <= HIGH_WORD_MAX_SHIFT


def shift_operand(shift: np.ndarray) -> np.ndarray:
    """The kernel's ``shift`` argument for these per-channel shifts (int32).

    The high-word form takes the right shift of the high word, ``−2 − shift`` ∈ [0, 29] (from
    flash, one load instead of a load and a subtract; TVM's simplifier also drops the clamp after
    a shift by ``c − shift[i]``, a bound it gets wrong), the general form ``shift`` itself.
    """
    shift = np.asarray(shift, np.int64)
    return (HIGH_WORD_MAX_SHIFT - shift if uses_high_word(shift) else shift).astype(np.int32)


@T.macro
def _requantize_high_word(y, index, acc, params, zp2):
    # For shift ≤ −2, i.e. t = 31 − shift ≥ 33 (see the module docstring):
    # round_away(p / 2^t) = ((⌊(p + s) / 2^32⌋ >> (t − 33)) + 1) >> 1 with s = acc >> 31 and
    # params[index, 2] = t − 33 = −2 − shift. The zero point enters as (… + 1 + 2·zp) >> 1 and the
    # clamp is in int32 (|⌊(p + s) / 2^32⌋| ≤ 2^30).
    y[0, index] = T.Cast("int8", T.max(T.min(
        ((T.Cast("int32", (T.Cast("int64", acc) * T.Cast("int64", params[index, 1])
                           + T.Cast("int64", acc >> T.int32(31))) >> T.int64(32))
          >> params[index, 2])
         + T.int32(zp2)) >> T.int32(1), T.int32(127)), T.int32(-128)))


def fully_connected(n: int, k: int, y_zero_point: int, high_word: bool = False, rows: int = ROWS):
    """PrimFunc ``(x[1,k] i8, w[n,k] i8, bias[n] i32, mult[n] i32, shift[n] i32) → y[1,n] i8``.

    ``bias`` must already hold the folded bias (``folded_bias``). ``shift`` holds
    ``shift_operand(shift)``; ``high_word`` must be ``uses_high_word(shift)`` (the cheaper
    requantization of the high word of ``acc·m``; otherwise the general int64 one). ``rows``: output
    rows computed per pass over the input (the rest, ``n mod rows``, one at a time).
    """
    if rows < 1:
        raise ValueError(f"rows per input pass must be at least 1, not {rows}")
    blocks, tail = divmod(n, rows)
    zp = int(y_zero_point)
    requantize = _requantize_high_word if high_word else _requantize
    zq = 1 + 2 * zp if high_word else zp

    @T.prim_func
    def fc(x: T.Buffer((1, k), "int8"), w: T.Buffer((n, k), "int8"), params: T.Buffer((n, 3), "int32"),
           y: T.Buffer((1, n), "int8")):
        T.func_attr({"tirx.noalias": True})
        # "global" scope: a small fixed-size array on the stack (other scopes go to the workspace allocator)
        acc = T.alloc_buffer((rows,), "int32", scope="global")
        for nb in range(blocks):
            for r in T.unroll(rows):
                acc[r] = params[nb * rows + r, 0]
            for kk in range(k):
                for r in T.unroll(rows):
                    acc[r] = acc[r] + T.Cast("int32", x[0, kk]) * T.Cast("int32", w[nb * rows + r, kk])
            for r in T.unroll(rows):
                requantize(y, nb * rows + r, acc[r], params, zq)
        for t in range(tail):
            acc[0] = params[blocks * rows + t, 0]
            for kk in range(k):
                acc[0] = acc[0] + T.Cast("int32", x[0, kk]) * T.Cast("int32", w[blocks * rows + t, kk])
            requantize(y, blocks * rows + t, acc[0], params, zq)

    return fc
