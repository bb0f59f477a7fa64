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
- CONV_2D and DEPTHWISE_CONV_2D (NHWC, zero point subtracted before the zero padding) requantize
  per channel with ``MultiplyByQuantizedMultiplier`` like ADD; fused activations are an int8 clamp;
- QUANTIZE (int8→int8), RELU, RELU6, RELU_N1_TO_1: one ``MultiplyByQuantizedMultiplier`` and a clamp;
  LEAKY_RELU picks the identity or the alpha multiplier by the sign of the centred input;
- AVERAGE_POOL: the window sum over in-bounds positions divided by their count, halves away from
  zero; MAX_POOL, PAD (with the zero point), RESHAPE, TRANSPOSE, CONCATENATION, SLICE move bytes;
- LOGISTIC/TANH as the 256-entry lookup tables TFLite builds, RSQRT as the table of TFLite's
  element-wise fixed-point inverse square root (``quant_math.rsqrt_lut``);
- SOFTMAX as TFLite's reference kernel: gemmlowp fixed-point exp and reciprocal (``_softmax``);
- MEAN as TFLite's reference QuantizedMeanOrSum: integer sum, one requantization (``_mean``).

Because the bodies are ordinary Relax, the same module runs on the host (Relax VM, LLVM) and
legalizes to TIR for the Cortex-M55.
"""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax import op as R

I64 = "int64"
I32 = "int32"
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def const(value, dtype: str) -> relax.Constant:
    return relax.const(np.asarray(value, dtype=dtype), dtype)


def saturating_rounding_doubling_high_mul(bb: relax.BlockBuilder, a: relax.Expr, b: relax.Expr) -> relax.Expr:
    """gemmlowp SaturatingRoundingDoublingHighMul on int64 operands holding int32 values: (a·b + nudge) / 2^31,
    truncating as C's division. The saturating case a = b = INT32_MIN cannot occur where tvmse calls it (one
    operand is always a positive multiplier or a value of magnitude below 2^30)."""
    zero = const(0, I64)
    ab = bb.emit(R.multiply(a, b))
    t = bb.emit(R.add(ab, R.where(R.greater_equal(ab, zero), const(1 << 30, I64), const(1 - (1 << 30), I64))))
    return bb.emit(R.where(R.greater_equal(t, zero), R.right_shift(t, const(31, I64)),
                           R.negative(R.right_shift(R.negative(t), const(31, I64)))))


def rounding_divide_by_pot(bb: relax.BlockBuilder, x: relax.Expr, exponent: relax.Expr) -> relax.Expr:
    """gemmlowp RoundingDivideByPOT on int64: x / 2^exponent, halves away from zero (exponent may be a tensor)."""
    zero = const(0, I64)
    mask = bb.emit(R.subtract(R.left_shift(const(1, I64), exponent), const(1, I64)))
    remainder = bb.emit(R.bitwise_and(x, mask))
    threshold = bb.emit(R.add(R.right_shift(mask, const(1, I64)), R.where(R.less(x, zero), const(1, I64), zero)))
    return bb.emit(R.add(R.right_shift(x, exponent), R.where(R.greater(remainder, threshold), const(1, I64), zero)))


def saturating_left_shift(bb: relax.BlockBuilder, x: relax.Expr, exponent: int) -> relax.Expr:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent > 0> on int64 holding int32 values."""
    threshold = (1 << (31 - exponent)) - 1
    return bb.emit(R.where(R.greater(x, const(threshold, I64)), const(INT32_MAX, I64),
                           R.where(R.less(x, const(-threshold, I64)), const(INT32_MIN, I64),
                                   R.left_shift(x, const(exponent, I64)))))


def requantize(bb: relax.BlockBuilder, acc: relax.Expr, multiplier: relax.Expr, shift: relax.Expr) -> relax.Expr:
    """TFLite MultiplyByQuantizedMultiplier on int32 ``acc`` (any shape); int64 result."""
    x = bb.emit(R.astype(acc, I64))
    s = bb.emit(R.astype(shift, I64))
    zero = const(0, I64)
    left = bb.emit(R.maximum(s, zero))
    right = bb.emit(R.maximum(R.negative(s), zero))
    high = saturating_rounding_doubling_high_mul(bb, R.left_shift(x, left), R.astype(multiplier, I64))
    return rounding_divide_by_pot(bb, high, right)


def requantize_single_rounding(bb: relax.BlockBuilder, acc: relax.Expr, multiplier: relax.Expr,
                               shift: relax.Expr) -> relax.Expr:
    """round(acc·m / 2^(31−shift)), halves away from zero, in int64."""
    total = bb.emit(R.subtract(const(31, I64), R.astype(shift, I64)))
    half = bb.emit(R.left_shift(const(1, I64), R.subtract(total, const(1, I64))))
    product = bb.emit(R.multiply(R.astype(acc, I64), R.astype(multiplier, I64)))
    magnitude = bb.emit(R.right_shift(R.add(R.abs(product), half), total))
    return bb.emit(R.where(R.less(product, const(0, I64)), R.negative(magnitude), magnitude))


def centered(bb: relax.BlockBuilder, x: relax.Expr, zero_point: int) -> relax.Expr:
    """int8 → int32 minus zero point."""
    return bb.emit(R.subtract(R.astype(x, I32), const(zero_point, I32)))


def lookup(bb, x, table: np.ndarray) -> relax.Expr:
    """int8 → int8 through a 256-entry table indexed by x + 128."""
    index = bb.emit(R.add(R.astype(x, I32), const(128, I32)))
    return bb.emit(R.take(const(table, "int8"), index, axis=0, mode="clip"))


# ---- the richer op set: every body takes (bb, op, args, tensors) ----------------------------------
# ``args`` are the op function's parameters (activation inputs, then constants in OP_KINDS order);
# ``tensors`` maps tensor names to TensorInfo (for input zero points and shapes).

INT8_RANGE = (-128, 127)


def clamp_to_int8(bb, value64: relax.Expr, zero_point: int, clamp=INT8_RANGE) -> relax.Expr:
    """Add the output zero point, clamp to the (fused activation's) int8 range, cast."""
    lo, hi = clamp
    shifted = bb.emit(R.add(value64, const(zero_point, I64)))
    return bb.emit(R.astype(R.clip(shifted, int(lo), int(hi)), "int8"))


def _clamp(op) -> tuple[int, int]:
    return tuple(op.attrs.get("clamp", INT8_RANGE))


def _fully_connected(bb, op, args, tensors):
    x, w, bias, multiplier, shift = args
    x_info = tensors[op.inputs[0]]
    k = op.consts["weight"].shape[1]
    flat = bb.emit(R.reshape(centered(bb, x, x_info.zero_point), (-1, k)))
    acc = bb.emit(R.add(R.matmul(flat, R.permute_dims(R.astype(w, I32)), out_dtype=I32), bias))
    y = clamp_to_int8(bb, requantize_single_rounding(bb, acc, multiplier, shift), op.output.zero_point, _clamp(op))
    rows = int(np.prod(x_info.shape)) // k
    return y if tuple(op.output.shape) == (rows, op.consts["weight"].shape[0]) else bb.emit(R.reshape(y, op.output.shape))


def _conv(bb, op, args, tensors, depthwise: bool):
    x, w, bias, multiplier, shift = args
    a = op.attrs
    x_info = tensors[op.inputs[0]]
    weight = R.astype(w, I32)
    groups = 1
    if depthwise:   # TFLite [1, KH, KW, C·M] → grouped OHWI [C·M, KH, KW, 1], one group per input channel
        weight = R.permute_dims(weight, [3, 1, 2, 0])
        groups = x_info.shape[3]
    acc = bb.emit(R.nn.conv2d(centered(bb, x, x_info.zero_point), weight, strides=a["strides"],
                              padding=a["padding"], dilation=a["dilation"], groups=groups,
                              data_layout="NHWC", kernel_layout="OHWI", out_dtype=I32))
    acc = bb.emit(R.add(acc, bias))
    return clamp_to_int8(bb, requantize(bb, acc, multiplier, shift), op.output.zero_point, _clamp(op))


def _add_or_sub(bb, op, args, tensors):
    p = op.attrs
    scaled = []
    for x, zp, m, s in ((args[0], p["a_zp"], p["a_mult"], p["a_shift"]), (args[1], p["b_zp"], p["b_mult"], p["b_shift"])):
        shifted = bb.emit(R.multiply(centered(bb, x, zp), const(1 << p["left_shift"], I32)))
        scaled.append(requantize(bb, shifted, const(m, I32), const(s, I32)))
    combine = R.subtract if op.kind == "sub" else R.add
    total = bb.emit(R.astype(combine(scaled[0], scaled[1]), I32))
    y = requantize(bb, total, const(p["out_mult"], I32), const(p["out_shift"], I32))
    return clamp_to_int8(bb, y, op.output.zero_point, _clamp(op))


def _mul(bb, op, args, tensors):
    p = op.attrs
    prod = bb.emit(R.multiply(centered(bb, args[0], p["a_zp"]), centered(bb, args[1], p["b_zp"])))
    y = requantize(bb, prod, const(p["mult"], I32), const(p["shift"], I32))
    return clamp_to_int8(bb, y, op.output.zero_point, _clamp(op))


def _requantize_op(bb, op, args, tensors):
    """TFLite QUANTIZE (int8 → int8) and RELU/RELU6/RELU_N1_TO_1: rescale, add zero point, clamp."""
    p = op.attrs
    y = requantize(bb, centered(bb, args[0], p["in_zp"]), const(p["mult"], I32), const(p["shift"], I32))
    return clamp_to_int8(bb, y, op.output.zero_point, _clamp(op))


def _leaky_relu(bb, op, args, tensors):
    p = op.attrs
    x = centered(bb, args[0], p["in_zp"])
    identity = requantize(bb, x, const(p["mult_identity"], I32), const(p["shift_identity"], I32))
    alpha = requantize(bb, x, const(p["mult_alpha"], I32), const(p["shift_alpha"], I32))
    y = bb.emit(R.where(R.greater_equal(x, const(0, I32)), identity, alpha))
    return clamp_to_int8(bb, y, op.output.zero_point)


def _lookup_op(bb, op, args, tensors):
    return lookup(bb, args[0], np.asarray(op.attrs["table"], np.int8))


def _slice(bb, op, args, tensors):
    a = op.attrs
    return bb.emit(R.strided_slice(args[0], axes=[a["axis"]], begin=[a["begin"]], end=[a["end"]]))


def _pool_window_counts(shape, a) -> np.ndarray:
    """Per output position, how many input positions of the (padded) window lie inside the input."""
    _, h, w, _ = shape
    (fh, fw), (sh, sw), (top, left, _, _) = a["filter"], a["strides"], a["padding"]
    oh, ow = a["out_hw"]
    rows = np.arange(oh) * sh - top
    cols = np.arange(ow) * sw - left
    count_h = np.minimum(rows + fh, h) - np.maximum(rows, 0)
    count_w = np.minimum(cols + fw, w) - np.maximum(cols, 0)
    return np.outer(count_h, count_w).reshape(1, oh, ow, 1).astype(np.int32)


def _average_pool(bb, op, args, tensors):
    """TFLite int8 AVERAGE_POOL_2D: sum of the valid window, divided with rounding half away from zero."""
    a = op.attrs
    channels = tensors[op.inputs[0]].shape[3]
    fh, fw = a["filter"]
    ones = const(np.ones((channels, fh, fw, 1), np.int32), I32)
    total = bb.emit(R.nn.conv2d(R.astype(args[0], I32), ones, strides=a["strides"], padding=a["padding"],
                                groups=channels, data_layout="NHWC", kernel_layout="OHWI", out_dtype=I32))
    counts = const(_pool_window_counts(tensors[op.inputs[0]].shape, a), I32)
    magnitude = bb.emit(R.floor_divide(R.add(R.abs(total), R.floor_divide(counts, const(2, I32))), counts))
    mean = bb.emit(R.where(R.less(total, const(0, I32)), R.negative(magnitude), magnitude))
    lo, hi = _clamp(op)
    return bb.emit(R.astype(R.clip(mean, lo, hi), "int8"))


def _max_pool(bb, op, args, tensors):
    a = op.attrs
    top, left, bottom, right = a["padding"]
    y = bb.emit(R.nn.max_pool2d(args[0], pool_size=a["filter"], strides=a["strides"], padding=(top, left, bottom, right),
                                layout="NHWC"))
    lo, hi = _clamp(op)
    return bb.emit(R.clip(y, lo, hi)) if (lo, hi) != INT8_RANGE else y


def _pad(bb, op, args, tensors):
    flat = [int(v) for pair in op.attrs["paddings"] for v in pair]
    return bb.emit(R.nn.pad(args[0], flat, pad_value=float(tensors[op.inputs[0]].zero_point)))


# ---- SOFTMAX: TFLite's int8 reference kernel (reference_ops::Softmax), gemmlowp fixed point ------------
# Fixed-point formats: the scaled input difference is Q5.26, exp() results Q0.31, their sum Q12.19.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
               (4, 242))   # exp(-2^k) in Q0.31, applied for each set bit 2^k of the remainder


def _exp_on_interval_between_negative_one_quarter_and_0(bb, a):
    """gemmlowp: exp(a) for Q0.31 a in [-1/4, 0), a Taylor series around -1/8."""
    srdhm = lambda u, v: saturating_rounding_doubling_high_mul(bb, u, v)   # noqa: E731
    exp_minus_one_eighth, one_third = const(1895147668, I64), const(715827883, I64)
    x = bb.emit(R.add(a, const(1 << 28, I64)))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4_over_4 = rounding_divide_by_pot(bb, srdhm(x2, x2), const(2, I64))
    poly = rounding_divide_by_pot(bb, R.add(srdhm(R.add(x4_over_4, x3), one_third), x2), const(1, I64))
    return bb.emit(R.add(exp_minus_one_eighth, srdhm(exp_minus_one_eighth, R.add(x, poly))))


def exp_on_negative_values(bb, a):
    """gemmlowp exp_on_negative_values: Q5.26 a ≤ 0 → Q0.31 exp(a), on int64 holding int32 values."""
    quarter = 1 << 24
    a_mod_quarter_minus_quarter = bb.emit(R.subtract(R.bitwise_and(a, const(quarter - 1, I64)), const(quarter, I64)))
    result = _exp_on_interval_between_negative_one_quarter_and_0(
        bb, saturating_left_shift(bb, a_mod_quarter_minus_quarter, 5))
    remainder = bb.emit(R.subtract(a_mod_quarter_minus_quarter, a))
    for exponent, multiplier in _EXP_BARREL:
        bit = R.not_equal(R.bitwise_and(remainder, const(1 << (26 + exponent), I64)), const(0, I64))
        result = bb.emit(R.where(bit, saturating_rounding_doubling_high_mul(bb, result, const(multiplier, I64)),
                                 result))
    return bb.emit(R.where(R.equal(a, const(0, I64)), const(INT32_MAX, I64), result))


def _one_over_one_plus_x_for_x_in_0_1(bb, a):
    """gemmlowp: 1/(1+a) for Q0.31 a in [0, 1), three Newton-Raphson steps in Q2.29; Q0.31 result."""
    srdhm = lambda u, v: saturating_rounding_doubling_high_mul(bb, u, v)   # noqa: E731
    half_denominator = bb.emit(R.right_shift(R.add(a, const(INT32_MAX + 1, I64)), const(1, I64)))  # a ≥ 0
    x = bb.emit(R.add(const(1515870810, I64), srdhm(half_denominator, const(-1010580540, I64))))  # 48/17 − 32/17·d
    for _ in range(3):
        one_minus = bb.emit(R.subtract(const(1 << 29, I64), srdhm(half_denominator, x)))
        x = bb.emit(R.add(x, saturating_left_shift(bb, srdhm(x, one_minus), 2)))
    return saturating_left_shift(bb, x, 1)


def _count_leading_zeros(bb, x):
    """Leading zero bits of positive int32 values (held in int64): how many of 2^0..2^31 exceed x."""
    powers = const(np.left_shift(1, np.arange(32, dtype=np.int64)), I64)
    below = R.less(R.expand_dims(x, -1), powers)
    return bb.emit(R.sum(R.astype(below, I64), axis=-1))


def _softmax(bb, op, args, tensors):
    """TFLite int8 SOFTMAX (reference kernel) over the last axis; output (1/256, −128).

    Differences to the row maximum below ``diff_min`` give −128; the others are scaled to Q5.26
    (MultiplyByQuantizedMultiplierGreaterThanOne), exponentiated in fixed point, summed in Q12.19
    and normalised with gemmlowp's reciprocal. Checked against the interpreter for rows of up to 600
    elements; TFLite itself aborts once the Q12.19 sum reaches 2^31 (512 or more equal values in a row)."""
    a = op.attrs
    x = bb.emit(R.astype(args[0], I64))
    diff = bb.emit(R.subtract(x, R.max(x, axis=-1, keepdims=True)))
    used = bb.emit(R.greater_equal(diff, const(a["diff_min"], I64)))
    zero = const(0, I64)
    scaled = saturating_rounding_doubling_high_mul(
        bb, R.left_shift(R.where(used, diff, zero), const(a["left_shift"], I64)), const(a["multiplier"], I64))
    exps = exp_on_negative_values(bb, scaled)
    total = bb.emit(R.sum(R.where(used, rounding_divide_by_pot(bb, exps, const(12, I64)), zero), axis=-1,
                          keepdims=True))
    headroom = _count_leading_zeros(bb, total)
    shifted_minus_one = bb.emit(R.subtract(R.left_shift(total, headroom), const(1 << 31, I64)))
    reciprocal = _one_over_one_plus_x_for_x_in_0_1(bb, shifted_minus_one)
    # num_bits_over_unit + 31 − 8 with num_bits_over_unit = 12 − headroom
    exponent = bb.emit(R.subtract(const(12 + 31 - 8, I64), headroom))
    y = rounding_divide_by_pot(bb, saturating_rounding_doubling_high_mul(bb, reciprocal, exps), exponent)
    y = bb.emit(R.where(used, R.clip(R.subtract(y, const(128, I64)), -128, 127), const(-128, I64)))
    return bb.emit(R.astype(y, "int8"))


def _mean(bb, op, args, tensors):
    """TFLite int8 MEAN (reference QuantizedMeanOrSum): the sum minus count·zero point, rescaled by the
    multiplier of in_scale/out_scale with 1/count folded in."""
    a = op.attrs
    total = bb.emit(R.sum(R.astype(args[0], I32), axis=a["axes"], keepdims=a["keep_dims"]))
    centred = bb.emit(R.subtract(total, const(a["in_zp"] * a["count"], I32)))
    y = requantize(bb, centred, const(a["mult"], I32), const(a["shift"], I32))
    return clamp_to_int8(bb, y, op.output.zero_point)


BODIES = {
    "fully_connected": _fully_connected,
    "conv_2d": lambda bb, op, args, tensors: _conv(bb, op, args, tensors, depthwise=False),
    "depthwise_conv_2d": lambda bb, op, args, tensors: _conv(bb, op, args, tensors, depthwise=True),
    "add": _add_or_sub,
    "sub": _add_or_sub,
    "mul": _mul,
    "logistic": _lookup_op,
    "tanh": _lookup_op,
    "rsqrt": _lookup_op,
    "requantize": _requantize_op,
    "leaky_relu": _leaky_relu,
    "concat": lambda bb, op, args, tensors: bb.emit(R.concat(args, axis=op.attrs["axis"])),
    "slice": _slice,
    "reshape": lambda bb, op, args, tensors: bb.emit(R.reshape(args[0], op.output.shape)),
    "transpose": lambda bb, op, args, tensors: bb.emit(R.permute_dims(args[0], op.attrs["perm"])),
    "pad": _pad,
    "average_pool": _average_pool,
    "max_pool": _max_pool,
    "constant": lambda bb, op, args, tensors: args[0],
    "softmax": _softmax,
    "mean": _mean,
}
