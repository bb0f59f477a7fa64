"""Relax bodies of the integer ops: TFLite's int8 arithmetic written with Relax integer ops.

Each builder emits, inside an open ``BlockBuilder`` function, the exact computation TFLite's
int8 kernels perform (see ``tvmse.quant_math`` for the numpy statement of the same rules):

- ADD and MUL requantize with ``MultiplyByQuantizedMultiplier(x, m, shift)`` =
  ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x·2^max(shift,0), m), max(-shift,0))``
  (two roundings), evaluated in int64 so no intermediate wraps (m > 0, so the one saturating
  case of the doubling high multiply, x = m = INT32_MIN, cannot occur);
- FULLY_CONNECTED (per-channel int8) requantizes with one rounding, halves away from zero:
  ``sign(p)·((|p| + 2^(30−shift)) >> (31−shift))`` with ``p = acc·m``. The TFLite interpreter's
  reference kernel computes ``round(double(acc)·scale)`` for it; this integer twin agrees on every
  case tried (the two-rounding form differs near every .5; halves-up differs on negative ties);
- LOGISTIC/TANH as the 256-entry lookup tables TFLite builds.

Because the bodies are ordinary Relax, the same module runs on the host (Relax VM, LLVM) and
legalizes to TIR for the Cortex-M55.
"""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax import op as R

I64 = "int64"
I32 = "int32"


def const(value, dtype: str) -> relax.Constant:
    return relax.const(np.asarray(value, dtype=dtype), dtype)


def requantize(bb: relax.BlockBuilder, acc: relax.Expr, multiplier: relax.Expr, shift: relax.Expr) -> relax.Expr:
    """TFLite MultiplyByQuantizedMultiplier on int32 ``acc`` (any shape); int64 result."""
    x = bb.emit(R.astype(acc, I64))
    m = bb.emit(R.astype(multiplier, I64))
    s = bb.emit(R.astype(shift, I64))
    zero = const(0, I64)
    left = bb.emit(R.maximum(s, zero))
    right = bb.emit(R.maximum(R.negative(s), zero))
    ab = bb.emit(R.multiply(R.left_shift(x, left), m))
    nudge = bb.emit(R.where(R.greater_equal(ab, zero), const(1 << 30, I64), const(1 - (1 << 30), I64)))
    t = bb.emit(R.add(ab, nudge))
    # division by 2^31 truncating toward zero, as C's integer division does
    high = bb.emit(R.where(R.greater_equal(t, zero), R.right_shift(t, const(31, I64)),
                           R.negative(R.right_shift(R.negative(t), const(31, I64)))))
    mask = bb.emit(R.subtract(R.left_shift(const(1, I64), right), const(1, I64)))
    remainder = bb.emit(R.bitwise_and(high, mask))
    threshold = bb.emit(R.add(R.right_shift(mask, const(1, I64)),
                              R.where(R.less(high, zero), const(1, I64), zero)))
    return bb.emit(R.add(R.right_shift(high, right),
                         R.where(R.greater(remainder, threshold), const(1, I64), zero)))


def requantize_single_rounding(bb: relax.BlockBuilder, acc: relax.Expr, multiplier: relax.Expr,
                               shift: relax.Expr) -> relax.Expr:
    """round(acc·m / 2^(31−shift)), halves away from zero, in int64."""
    total = bb.emit(R.subtract(const(31, I64), R.astype(shift, I64)))
    half = bb.emit(R.left_shift(const(1, I64), R.subtract(total, const(1, I64))))
    product = bb.emit(R.multiply(R.astype(acc, I64), R.astype(multiplier, I64)))
    magnitude = bb.emit(R.right_shift(R.add(R.abs(product), half), total))
    return bb.emit(R.where(R.less(product, const(0, I64)), R.negative(magnitude), magnitude))


def to_int8(bb: relax.BlockBuilder, value64: relax.Expr, zero_point: int) -> relax.Expr:
    """Add the output zero point, clamp to int8, cast."""
    shifted = bb.emit(R.add(value64, const(zero_point, I64)))
    return bb.emit(R.astype(R.clip(shifted, -128, 127), "int8"))


def centered(bb: relax.BlockBuilder, x: relax.Expr, zero_point: int) -> relax.Expr:
    """int8 → int32 minus zero point."""
    return bb.emit(R.subtract(R.astype(x, I32), const(zero_point, I32)))


def fully_connected(bb, x, w, bias, multiplier, shift, x_zp: int, y_zp: int) -> relax.Expr:
    """y = requant(Σ_k (x_k − x_zp)·w_nk + b_n) + y_zp, per-channel multipliers, one rounding."""
    acc = bb.emit(R.matmul(centered(bb, x, x_zp), R.permute_dims(R.astype(w, I32)), out_dtype=I32))
    acc = bb.emit(R.add(acc, bias))
    return to_int8(bb, requantize_single_rounding(bb, acc, multiplier, shift), y_zp)


def add(bb, a, b, params: dict, y_zp: int) -> relax.Expr:
    """TFLite int8 ADD: inputs shifted left by ``left_shift``, rescaled, summed, rescaled."""
    scaled = []
    for x, zp, m, s in ((a, params["a_zp"], params["a_mult"], params["a_shift"]),
                        (b, params["b_zp"], params["b_mult"], params["b_shift"])):
        shifted = bb.emit(R.multiply(centered(bb, x, zp), const(1 << params["left_shift"], I32)))
        scaled.append(requantize(bb, shifted, const(m, I32), const(s, I32)))
    total = bb.emit(R.astype(R.add(scaled[0], scaled[1]), I32))
    return to_int8(bb, requantize(bb, total, const(params["out_mult"], I32), const(params["out_shift"], I32)), y_zp)


def mul(bb, a, b, params: dict, y_zp: int) -> relax.Expr:
    """TFLite int8 MUL: requant((a − a_zp)(b − b_zp)) + y_zp."""
    prod = bb.emit(R.multiply(centered(bb, a, params["a_zp"]), centered(bb, b, params["b_zp"])))
    return to_int8(bb, requantize(bb, prod, const(params["mult"], I32), const(params["shift"], I32)), y_zp)


def lookup(bb, x, table: np.ndarray) -> relax.Expr:
    """int8 → int8 through a 256-entry table indexed by x + 128."""
    index = bb.emit(R.add(R.astype(x, I32), const(128, I32)))
    return bb.emit(R.take(const(table, "int8"), index, axis=0, mode="clip"))
