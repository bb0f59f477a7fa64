"""TFLite-exact int8 arithmetic in numpy: the one integer semantics of tvmse.

Every int8 kernel the compiler emits, on the Ethos-U55 through Vela or on the
Cortex-M55, has to agree bit for bit with TensorFlow Lite's integer kernels:
those are what Vela and CMSIS-NN reproduce and what the TFLite interpreter
lets us check on the host.  This module restates that arithmetic in
vectorised numpy so that passes can compute expected outputs, fold constants
and check rewrites without running an interpreter.

Requantisation is TFLite's integer ``MultiplyByQuantizedMultiplier`` with
*double rounding* (gemmlowp ``SaturatingRoundingDoublingHighMul``, then
``RoundingDivideByPOT``), not the ``TFLITE_SINGLE_ROUNDING`` build variant;
FULLY_CONNECTED is different: tvmse's integer form rounds it once, halves away
from zero (``requantize="single_away"``, the default), because that is what the
interpreter's reference kernel computes (see below); the other forms TFLite
uses are available for comparison.
Scales are float32 as stored in a ``.tflite`` file; every place where TFLite
promotes them to double, or deliberately does not, is reproduced.

What the ai-edge-litert 2.3.0 interpreter really runs (x86-64 with AVX2;
checked on thousands of random models, extreme scales included):

* ``OpResolverType.BUILTIN_REF`` (TFLite's reference kernels) matches this
  module bit for bit on ADD, MUL, LOGISTIC, TANH and the data-movement ops.
  Its FULLY_CONNECTED, however, no longer uses the integer multiplier: it
  computes ``round(double(acc) * in_s * w_s[c] / out_s)`` in double (ties
  away from zero; an out-of-range result becomes INT32_MIN).  That is
  ``fully_connected(..., requantize="float")``.  The integer forms differ from
  it by one code near rounding ties only: double rounding (the default here)
  where the exact value is within about ``2**-(r+1)`` of a tie (r = the right
  shift), measured 3.5e-4 of outputs on random scales; single rounding
  (``requantize="single"``, halves up) in no output out of 320 000 on random
  scales, but on negative exact ties, which power-of-two scales produce
  (2e-4 of outputs).
* The default resolver (``AUTO``) hands int8 ops to the XNNPACK delegate, and
  the optimised builtin kernels (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``) run
  FULLY_CONNECTED through ruy, whose AVX2 kernel rounds the final shift
  half-up instead of half-away-from-zero; their ADD and MUL differ too.  None
  of them is bit-exact with the reference; do not use them as oracles.
* int8 LOGISTIC and TANH use the same 256-entry table in the reference and the
  optimised kernels, built in float32 with the C library's ``expf`` and
  ``tanhf``.  glibc 2.36's ``tanhf`` is not correctly rounded (11 % of the
  arguments tried were off by an ulp or more), which changes roughly one TANH table in
  10 000 by one code compared with a correctly rounded ``tanhf``.  The
  tables here therefore call the same C functions (a correctly rounded
  float32 fallback is used only where no C math library can be loaded).
* The MUL multiplier is computed in float32 (``s1 * s2 / s_out`` on floats)
  before promotion to double, unlike FULLY_CONNECTED, which promotes each
  scale to double first.
* ADD aborts the interpreter process (``TFLITE_CHECK``, SIGABRT) when its
  output multiplier ``2 * max(s1, s2) / (2**20 * s_out)`` is not below 1;
  ``add_params`` raises ``ValueError`` instead.
"""

from __future__ import annotations

import builtins
import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

INT8_MIN = -128
INT8_MAX = 127
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# Largest left shift TFLite's requantisation can express (``1 << shift`` in int32).
MAX_LEFT_SHIFT = 30
# TFLite's int8 ADD lifts both inputs by 2**20 before rescaling them.
ADD_LEFT_SHIFT = 20
# Output quantisation TFLite requires for int8 LOGISTIC and TANH.
LOGISTIC_OUTPUT_SCALE = 1.0 / 256.0
LOGISTIC_OUTPUT_ZERO_POINT = -128
TANH_OUTPUT_SCALE = 1.0 / 128.0
TANH_OUTPUT_ZERO_POINT = 0


# --------------------------------------------------------------------------
# Multipliers
# --------------------------------------------------------------------------


def _round_half_away_from_zero(values: np.ndarray) -> np.ndarray:
    """``std::round``/``roundf``: numpy's ``round`` rounds half to even instead.

    Works on the fraction rather than ``floor(v + 0.5)``, which would round
    0.49999997f up in float32.
    """
    truncated = np.trunc(values)
    bump = np.abs(values - truncated) >= 0.5
    return truncated + np.copysign(bump.astype(values.dtype), values)


def quantize_multipliers(real_multipliers) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``tflite::QuantizeMultiplier``.

    Splits each real multiplier into a Q31 significand and a power-of-two
    exponent, ``real ~= multiplier * 2**(shift - 31)``.  Follows TFLite's
    edge cases exactly: a significand that rounds up to 2**31 is halved with
    the exponent bumped, and exponents below -31 flush to (0, 0).

    Returns:
        (multiplier int32 array, shift int32 array), same shape as the input.
    """
    real = np.asarray(real_multipliers, dtype=np.float64)
    if not np.all(np.isfinite(real)):
        raise ValueError(f"multipliers must be finite, got {real}")
    significand, shift = np.frexp(real)
    q_fixed = _round_half_away_from_zero(significand * float(2**31)).astype(np.int64)
    carry = q_fixed == 2**31
    q_fixed = np.where(carry, q_fixed // 2, q_fixed)
    shift = shift.astype(np.int64) + carry
    flushed = shift < -31
    q_fixed = np.where(flushed, 0, q_fixed)
    shift = np.where(flushed, 0, shift)
    return q_fixed.astype(np.int32), shift.astype(np.int32)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """Scalar ``tflite::QuantizeMultiplier``: returns (int32 multiplier, shift)."""
    multiplier, shift = quantize_multipliers(np.float64(real_multiplier))
    return int(multiplier), int(shift)


def quantize_multiplier_smaller_than_one_exp(real_multiplier: float) -> tuple[int, int]:
    """``tflite::QuantizeMultiplierSmallerThanOneExp``, raising where TFLite aborts."""
    real = float(real_multiplier)
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier must lie in (0, 1) for TFLite, got {real!r}")
    return quantize_multiplier(real)


# --------------------------------------------------------------------------
# gemmlowp fixed-point primitives
# --------------------------------------------------------------------------


def _as_int64(values) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise TypeError(f"expected an integer array, got dtype {array.dtype}")
    return array.astype(np.int64)


def _check_int32_range(values: np.ndarray, what: str) -> None:
    if values.size and (values.min() < INT32_MIN or values.max() > INT32_MAX):
        raise ValueError(f"{what} does not fit in int32 (range {values.min()}..{values.max()})")


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    """Two's-complement wrap, as a 32-bit multiply does on every target we run."""
    return ((values + 2**31) & 0xFFFFFFFF) - 2**31


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values.

    ``(a * b + nudge) / 2**31`` with C++ truncating division and the nudge
    ``2**30`` or ``1 - 2**30`` by sign, so halves round towards +infinity;
    the single overflowing case ``INT32_MIN * INT32_MIN`` saturates.
    """
    a64, b64 = np.broadcast_arrays(_as_int64(a), _as_int64(b))
    product = a64 * b64
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    # C++ '/' truncates toward zero; numpy shifts floor, so shift magnitudes.
    quotient = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    overflow = (a64 == INT32_MIN) & (b64 == INT32_MIN)
    return np.where(overflow, INT32_MAX, quotient).astype(np.int32)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent``, halves away from zero."""
    x64 = _as_int64(x)
    exponent = _as_int64(exponent)
    if exponent.size and (exponent.min() < 0 or exponent.max() > 31):
        raise ValueError(f"exponent must lie in [0, 31], got {exponent}")
    mask = (np.int64(1) << exponent) - 1
    remainder = x64 & mask
    threshold = (mask >> 1) + (x64 < 0)
    return ((x64 >> exponent) + (remainder > threshold)).astype(np.int32)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """``tflite::MultiplyByQuantizedMultiplier`` (int32 input, double rounding).

    ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2**max(shift, 0),
    multiplier), max(-shift, 0))``.  ``multiplier`` and ``shift`` broadcast
    against ``x`` (per-channel use).  The left shift wraps like the 32-bit
    multiply it is in C++; shifts above 30 are refused, since TFLite's
    ``1 << shift`` is then undefined (x86 takes the shift modulo 32).
    """
    x64 = _as_int64(x)
    _check_int32_range(x64, "multiply_by_quantized_multiplier input")
    shift = _as_int64(shift)
    if shift.size and shift.max() > MAX_LEFT_SHIFT:
        raise ValueError(f"shift {shift.max()} exceeds {MAX_LEFT_SHIFT}: the multiplier is too large for TFLite")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    high = saturating_rounding_doubling_high_mul(_wrap_int32(x64 << left), multiplier)
    return rounding_divide_by_pot(high, right)


def _saturate_int8(values: np.ndarray) -> np.ndarray:
    return np.clip(values, INT8_MIN, INT8_MAX).astype(np.int8)


def _check_int8(name: str, array) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.int8:
        raise TypeError(f"{name} must be an int8 array, got {array.dtype}")
    return array


def _scale(value) -> np.float32:
    """A quantisation scale as TFLite holds it: a positive finite float32."""
    scale = np.float32(value)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite float32, got {value!r}")
    return scale


def _zero_point(value) -> int:
    zero_point = int(value)
    if not INT8_MIN <= zero_point <= INT8_MAX:
        raise ValueError(f"int8 zero point must lie in [-128, 127], got {value!r}")
    return zero_point


# --------------------------------------------------------------------------
# FULLY_CONNECTED
# --------------------------------------------------------------------------


def fully_connected_scales(x_scale, w_scales, y_scale) -> np.ndarray:
    """Per-output-channel real rescale factors, as TFLite's FC computes them.

    Each float32 scale is promoted to double before
    ``input_scale * filter_scale[c] / output_scale``; a single filter scale
    (per-tensor weights) yields a one-element array.
    """
    w = np.asarray(w_scales, dtype=np.float32).reshape(-1)
    for scale in w:
        _scale(scale)
    return np.float64(_scale(x_scale)) * w.astype(np.float64) / np.float64(_scale(y_scale))


def fully_connected_multipliers(x_scale, w_scales, y_scale) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) exactly as TFLite's FC Prepare."""
    return quantize_multipliers(fully_connected_scales(x_scale, w_scales, y_scale))


def check_fully_connected_bias_scale(x_scale, w_scale, bias_scale, y_scale) -> None:
    """TFLite's per-tensor FC check that the bias scale matches input*filter.

    Per-tensor FC Prepare fails unless ``|x_s*w_s - b_s| / y_s <= 0.02``
    (per-channel weights skip the check).
    """
    product = np.float64(np.float32(x_scale)) * np.float64(np.float32(w_scale))
    diff = abs(product - np.float64(np.float32(bias_scale)))
    if diff / np.float64(np.float32(y_scale)) > 0.02:
        raise ValueError(
            f"bias scale {bias_scale!r} differs from input*filter scale {product!r} "
            f"by more than 2% of the output scale {y_scale!r}"
        )


REQUANTIZE_MODES = ("integer", "single", "single_away", "float")


def _one_rounding_operands(x, multiplier, shift, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x * m, 31 - shift)`` in int64 for the one-rounding requantizations, arguments checked."""
    x64 = _as_int64(x)
    _check_int32_range(x64, f"{what} input")
    shift = _as_int64(shift)
    if shift.size and (shift.max() > MAX_LEFT_SHIFT or shift.min() < -31):
        raise ValueError(f"shift must lie in [-31, {MAX_LEFT_SHIFT}], got {shift}")
    return x64 * _as_int64(multiplier), 31 - shift


def multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift) -> np.ndarray:
    """The ``TFLITE_SINGLE_ROUNDING`` form: ``(x * m + 2**(30 - shift)) >> (31 - shift)``.

    One rounding, halves towards +infinity, in 64 bits.
    """
    product, total = _one_rounding_operands(x, multiplier, shift, "multiply_by_quantized_multiplier_single_rounding")
    return ((product + (np.int64(1) << (total - 1))) >> total).astype(np.int64)


def multiply_by_quantized_multiplier_ties_away(x, multiplier, shift) -> np.ndarray:
    """One rounding of ``x * m / 2**(31 - shift)``, halves away from zero, in 64 bits.

    tvmse's FULLY_CONNECTED requantization (the integer form's, see tvmse.ir.kernels): the
    integer twin of the interpreter's ``round(double(acc) * scale)``, equal to it on every output
    tried, exact ties from power-of-two scales included.
    """
    product, total = _one_rounding_operands(x, multiplier, shift, "multiply_by_quantized_multiplier_ties_away")
    magnitude = (np.abs(product) + (np.int64(1) << (total - 1))) >> total
    return np.where(product < 0, -magnitude, magnitude).astype(np.int64)


def _float_requantize(acc: np.ndarray, effective_scales: np.ndarray) -> np.ndarray:
    """``static_cast<int32_t>(round(double(acc) * scale))`` as compiled for x86-64.

    C's ``round`` takes halves away from zero; a result outside int32 converts
    to INT32_MIN (``cvttsd2si``), which then clamps to -128 after the zero point.
    """
    product = acc.astype(np.float64) * effective_scales
    rounded = _round_half_away_from_zero(product)
    in_range = (rounded >= INT32_MIN) & (rounded <= INT32_MAX)
    return np.where(in_range, rounded, INT32_MIN).astype(np.int64)


def fully_connected(x, w, bias, x_scale, x_zp, w_scales, y_scale, y_zp, requantize="single_away") -> np.ndarray:
    """int8 FULLY_CONNECTED (no fused activation).

    Args:
        x: int8 [B, K] activations (any leading shape flattening to rows of K).
        w: int8 [N, K] weights, symmetric (zero point 0).
        bias: int32 [N] or None.
        x_scale, x_zp: input quantisation.
        w_scales: float32 scales, length N (per channel) or 1 (per tensor).
        y_scale, y_zp: output quantisation.
        requantize: ``"integer"`` is TFLite's integer kernel arithmetic,
            ``MultiplyByQuantizedMultiplier`` with double rounding.
            ``"single"`` is the ``TFLITE_SINGLE_ROUNDING`` integer form (one
            rounding of ``acc * m``, halves up).  ``"float"`` is what the
            reference kernel of current TFLite (ai-edge-litert 2.3.0,
            ``BUILTIN_REF``) does: ``round(acc * in_s * w_s[c] / out_s)`` in
            double, halves away from zero.  They differ by one code near
            rounding ties only; ``"single"`` agrees with ``"float"`` except
            where the exact value is within ``|v| * 2**-31`` of a tie (or on a
            negative exact tie). ``"single_away"`` (the default, tvmse's integer form) rounds
            once with halves away from zero: equal to ``"float"`` on every case tried.

    Returns:
        int8 [B, N].
    """
    if requantize not in REQUANTIZE_MODES:
        raise ValueError(f"requantize must be one of {REQUANTIZE_MODES}, got {requantize!r}")
    acc = _fully_connected_accumulators(_check_int8("x", x), _check_int8("w", w), bias, _zero_point(x_zp))
    if np.size(w_scales) not in (1, acc.shape[1]):
        raise ValueError(f"expected 1 or {acc.shape[1]} weight scales, got {np.size(w_scales)}")
    if requantize == "integer":
        multiplier, shift = fully_connected_multipliers(x_scale, w_scales, y_scale)
        scaled = multiply_by_quantized_multiplier(acc, multiplier, shift).astype(np.int64)
    elif requantize == "single":
        multiplier, shift = fully_connected_multipliers(x_scale, w_scales, y_scale)
        scaled = _wrap_int32(multiply_by_quantized_multiplier_single_rounding(acc, multiplier, shift))
    elif requantize == "single_away":
        multiplier, shift = fully_connected_multipliers(x_scale, w_scales, y_scale)
        scaled = _wrap_int32(multiply_by_quantized_multiplier_ties_away(acc, multiplier, shift))
    else:
        scaled = _float_requantize(acc, fully_connected_scales(x_scale, w_scales, y_scale))
    return _saturate_int8(_wrap_int32(scaled + _zero_point(y_zp)))


def _fully_connected_accumulators(x: np.ndarray, w: np.ndarray, bias, x_zp: int) -> np.ndarray:
    """int32 ``sum_k (x - x_zp) * w + bias`` per row and output channel."""
    if w.ndim != 2 or x.size % w.shape[1]:
        raise ValueError(f"weights {w.shape} do not fit input {x.shape}")
    acc = (x.reshape(-1, w.shape[1]).astype(np.int64) - x_zp) @ w.astype(np.int64).T
    if bias is not None:
        bias = np.asarray(bias)
        if bias.dtype != np.int32 or bias.shape != (w.shape[0],):
            raise ValueError(f"bias must be int32 [{w.shape[0]}], got {bias.dtype} {bias.shape}")
        acc = acc + bias.astype(np.int64)
    _check_int32_range(acc, "FULLY_CONNECTED accumulator")
    return acc


# --------------------------------------------------------------------------
# ADD / MUL
# --------------------------------------------------------------------------


def add_params(a_scale, a_zp, b_scale, b_zp, y_scale) -> dict:
    """The integer parameters TFLite's int8 ADD Prepare derives from the scales.

    ``2 * max(s1, s2)`` and ``2**20 * s_out`` are float32 products (exact
    powers of two); the ratios are taken in double.  Returns a dict with
    ``a_zp, a_mult, a_shift, b_zp, b_mult, b_shift, out_mult, out_shift,
    left_shift``; shifts are <= 0 (right shifts), as TFLite requires.
    """
    a, b, y = _scale(a_scale), _scale(b_scale), _scale(y_scale)
    twice_max = np.float64(np.float32(2) * max(a, b))
    output_denominator = np.float64(np.float32(1 << ADD_LEFT_SHIFT) * y)
    a_mult, a_shift = quantize_multiplier_smaller_than_one_exp(np.float64(a) / twice_max)
    b_mult, b_shift = quantize_multiplier_smaller_than_one_exp(np.float64(b) / twice_max)
    out_mult, out_shift = quantize_multiplier_smaller_than_one_exp(twice_max / output_denominator)
    return {
        "a_zp": _zero_point(a_zp), "a_mult": a_mult, "a_shift": a_shift,
        "b_zp": _zero_point(b_zp), "b_mult": b_mult, "b_shift": b_shift,
        "out_mult": out_mult, "out_shift": out_shift, "left_shift": ADD_LEFT_SHIFT,
    }


def add(a, b, a_scale, a_zp, b_scale, b_zp, y_scale, y_zp) -> np.ndarray:
    """int8 ADD (no fused activation; numpy broadcasting), as TFLite computes it."""
    p = add_params(a_scale, a_zp, b_scale, b_zp, y_scale)
    scaled = []
    for x, side in ((a, "a"), (b, "b")):
        centred = _check_int8(side, x).astype(np.int64) - p[f"{side}_zp"]
        scaled.append(multiply_by_quantized_multiplier(
            centred << p["left_shift"], p[f"{side}_mult"], p[f"{side}_shift"]).astype(np.int64))
    raw = multiply_by_quantized_multiplier(scaled[0] + scaled[1], p["out_mult"], p["out_shift"])
    return _saturate_int8(_wrap_int32(raw.astype(np.int64) + _zero_point(y_zp)))


def mul_multiplier(a_scale, b_scale, y_scale) -> tuple[int, int]:
    """TFLite's int8 MUL multiplier: ``s1 * s2 / s_out`` evaluated in float32."""
    with np.errstate(over="ignore", under="ignore"):
        real = (_scale(a_scale) * _scale(b_scale)) / _scale(y_scale)
    multiplier, shift = quantize_multiplier(np.float64(np.float32(real)))
    if shift > MAX_LEFT_SHIFT:
        raise ValueError(f"MUL multiplier {real!r} is too large for TFLite (shift {shift})")
    return multiplier, shift


def mul(a, b, a_scale, a_zp, b_scale, b_zp, y_scale, y_zp) -> np.ndarray:
    """int8 MUL (no fused activation; numpy broadcasting), as TFLite computes it."""
    a = _check_int8("a", a).astype(np.int64) - _zero_point(a_zp)
    b = _check_int8("b", b).astype(np.int64) - _zero_point(b_zp)
    multiplier, shift = mul_multiplier(a_scale, b_scale, y_scale)
    raw = multiply_by_quantized_multiplier(a * b, multiplier, shift)
    return _saturate_int8(_wrap_int32(raw.astype(np.int64) + _zero_point(y_zp)))


# --------------------------------------------------------------------------
# LOGISTIC / TANH lookup tables
# --------------------------------------------------------------------------


@functools.cache
def _c_float_function(name: str):
    """The C library's float function ``name`` (what TFLite's LUTPopulate calls), or None."""
    library = ctypes.util.find_library("m")
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError, TypeError):
        logger.debug("no C %s available; using a correctly rounded float32 %s instead", name, name)
        return None
    function.restype = ctypes.c_float
    function.argtypes = [ctypes.c_float]
    return function


def _c_float_map(name: str, values: np.ndarray, fallback) -> np.ndarray:
    """Applies the C library's ``name`` element-wise, or ``fallback`` without one."""
    function = _c_float_function(name)
    if function is None:
        return fallback(values.astype(np.float64)).astype(np.float32)
    return np.array([function(float(v)) for v in values.ravel()], dtype=np.float32).reshape(values.shape)


def _sigmoid_f32(values: np.ndarray) -> np.ndarray:
    """``1.0f / (1.0f + expf(-v))`` in float32, as TFLite's LOGISTIC table."""
    return np.float32(1) / (np.float32(1) + _c_float_map("expf", -values, np.exp))


def _tanh_f32(values: np.ndarray) -> np.ndarray:
    """``tanhf(v)``, as TFLite's TANH table."""
    return _c_float_map("tanhf", values, np.tanh)


def _populate_lut(transform, x_scale, x_zp, y_scale, y_zp) -> np.ndarray:
    """TFLite ``LUTPopulate`` for int8, every step in float32 as in C++.

    Returns the table indexed by ``x + 128`` (TFLite itself indexes by the
    byte pattern ``uint8(x)``; the entries are the same).
    """
    codes = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int32)
    dequantized = _scale(x_scale) * (codes - _zero_point(x_zp)).astype(np.float32)
    with np.errstate(over="ignore"):
        transformed = transform(dequantized)
    inverse_scale = np.float32(1) / _scale(y_scale)
    rescaled = _round_half_away_from_zero(transformed * inverse_scale)
    quantized = (rescaled + np.float32(_zero_point(y_zp))).astype(np.int64)
    return _saturate_int8(quantized)


@functools.lru_cache(maxsize=1024)
def _cached_lut(kind: str, x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    transform = _sigmoid_f32 if kind == "logistic" else _tanh_f32
    table = _populate_lut(transform, x_scale, x_zp, y_scale, y_zp)
    table.flags.writeable = False
    return table


def logistic_lut(
    x_scale, x_zp, y_scale=LOGISTIC_OUTPUT_SCALE, y_zp=LOGISTIC_OUTPUT_ZERO_POINT
) -> np.ndarray:
    """The int8[256] LOGISTIC table TFLite builds, indexed by ``x + 128``."""
    key = (float(_scale(x_scale)), _zero_point(x_zp), float(_scale(y_scale)), _zero_point(y_zp))
    return _cached_lut("logistic", *key).copy()


def tanh_lut(x_scale, x_zp, y_scale=TANH_OUTPUT_SCALE, y_zp=TANH_OUTPUT_ZERO_POINT) -> np.ndarray:
    """The int8[256] TANH table TFLite builds, indexed by ``x + 128``."""
    key = (float(_scale(x_scale)), _zero_point(x_zp), float(_scale(y_scale)), _zero_point(y_zp))
    return _cached_lut("tanh", *key).copy()


def apply_lut(x, lut: np.ndarray) -> np.ndarray:
    """Looks every int8 value up in a table indexed by ``x + 128``."""
    x = _check_int8("x", x)
    return lut[x.astype(np.int64) - INT8_MIN]


def logistic(x, x_scale, x_zp) -> np.ndarray:
    """int8 LOGISTIC; output quantised with scale 1/256, zero point -128."""
    return apply_lut(x, logistic_lut(x_scale, x_zp))


def tanh(x, x_scale, x_zp) -> np.ndarray:
    """int8 TANH; output quantised with scale 1/128, zero point 0."""
    return apply_lut(x, tanh_lut(x_scale, x_zp))


# --------------------------------------------------------------------------
# Data movement
# --------------------------------------------------------------------------


def concatenation(arrays: Sequence[np.ndarray], axis: int, scales, zero_points, y_scale, y_zp) -> np.ndarray:
    """int8 CONCATENATION; TFLite requires one shared scale and zero point.

    With differing quantisation TFLite would requantise each input, which
    neither our passes nor Vela's in-place concatenation do, so it is refused.
    """
    if len(arrays) != len(scales) or len(arrays) != len(zero_points):
        raise ValueError("concatenation needs one scale and zero point per input")
    y = (_scale(y_scale), _zero_point(y_zp))
    for index, (scale, zp) in enumerate(zip(scales, zero_points)):
        if (_scale(scale), _zero_point(zp)) != y:
            raise ValueError(
                f"concatenation input {index} is quantised ({scale}, {zp}), "
                f"output ({y_scale}, {y_zp}): int8 inputs must share the output's"
            )
    return np.concatenate([_check_int8(f"input {i}", a) for i, a in enumerate(arrays)], axis=axis)


def split(x, num_splits: int, axis: int) -> list[np.ndarray]:
    """SPLIT into ``num_splits`` equal parts along ``axis``."""
    x = np.asarray(x)
    if num_splits <= 0 or x.shape[axis] % num_splits:
        raise ValueError(f"cannot split axis {axis} of {x.shape} into {num_splits} equal parts")
    return np.split(x, num_splits, axis=axis)


def strided_slice(x, begin: Sequence[int], end: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """STRIDED_SLICE with explicit bounds (no masks)."""
    x = np.asarray(x)
    if not len(begin) == len(end) == len(strides) == x.ndim:
        raise ValueError(f"begin/end/strides must each have {x.ndim} entries")
    return x[tuple(builtins.slice(b, e, s) for b, e, s in zip(begin, end, strides))]


def slice(x, begin: Sequence[int], size: Sequence[int]) -> np.ndarray:  # noqa: A001 (TFLite's op name)
    """SLICE: ``size[i] == -1`` takes everything from ``begin[i]`` on."""
    x = np.asarray(x)
    if len(begin) != x.ndim or len(size) != x.ndim:
        raise ValueError(f"begin and size must each have {x.ndim} entries")
    end = [dim if n == -1 else b + n for b, n, dim in zip(begin, size, x.shape)]
    for b, e, dim in zip(begin, end, x.shape):
        if not 0 <= b <= e <= dim:
            raise ValueError(f"slice [{b}, {e}) is outside an axis of length {dim}")
    return strided_slice(x, begin, end, [1] * x.ndim)


# --------------------------------------------------------------------------
# Rescaling ops: QUANTIZE (int8 → int8), RELU family, LEAKY_RELU, fused activations
# --------------------------------------------------------------------------


def requantize_multiplier(x_scale, y_scale) -> tuple[int, int]:
    """TFLite QUANTIZE int8 → int8: ``double(s_in) / double(s_out)``."""
    return quantize_multiplier(np.float64(_scale(x_scale)) / np.float64(_scale(y_scale)))


def relu_multiplier(x_scale, y_scale) -> tuple[int, int]:
    """TFLite RELU/RELU6/RELU_N1_TO_1: ``s_in / s_out`` divided in float32, then promoted."""
    with np.errstate(over="ignore", under="ignore"):
        real = np.float32(_scale(x_scale) / _scale(y_scale))
    return quantize_multiplier(np.float64(real))


def leaky_relu_multipliers(x_scale, alpha, y_scale) -> tuple[tuple[int, int], tuple[int, int]]:
    """TFLite LEAKY_RELU: (identity, alpha) multipliers, ``s_in·alpha / s_out`` in float32."""
    x, y = _scale(x_scale), _scale(y_scale)
    with np.errstate(over="ignore", under="ignore"):
        alpha_real = np.float32(np.float32(x * np.float32(alpha)) / y)
        identity_real = np.float32(x / y)
    return quantize_multiplier(np.float64(identity_real)), quantize_multiplier(np.float64(alpha_real))


# Fused activation → its real-valued range (None: unbounded), as CalculateActivationRangeQuantized.
ACTIVATION_RANGES = {"NONE": (None, None), "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0),
                     "RELU_0_TO_1": (0.0, 1.0)}


def activation_range(activation: str, y_scale, y_zp) -> tuple[int, int]:
    """The int8 clamp a fused activation means for an output quantized (y_scale, y_zp)."""
    if activation not in ACTIVATION_RANGES:
        raise ValueError(f"fused activation {activation!r} is not one of {sorted(ACTIVATION_RANGES)}")
    low, high = ACTIVATION_RANGES[activation]
    scale, zp = _scale(y_scale), _zero_point(y_zp)

    def quantize(value: float) -> int:
        return zp + int(_round_half_away_from_zero(np.float32(np.float32(value) / scale)))

    lo = INT8_MIN if low is None else max(INT8_MIN, quantize(low))
    hi = INT8_MAX if high is None else min(INT8_MAX, quantize(high))
    return lo, hi


# --------------------------------------------------------------------------
# RSQRT (int8): TFLite's reference kernel, element by element, as a 256-entry table
# --------------------------------------------------------------------------

_RSQRT_SHIFT = 20   # TFLite's kShift: keeps the intermediate 1/sqrt an integer


def _saturating_shift_left(raw: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent > 0> on one int32."""
    threshold = (1 << (31 - exponent)) - 1
    if raw > threshold:
        return INT32_MAX
    if raw < -threshold:
        return INT32_MIN
    return raw << exponent


def _srdhm(a: int, b: int) -> int:
    return int(saturating_rounding_doubling_high_mul(np.int64(a), np.int64(b)))


def inv_sqrt_multiplier_exp(value: int) -> tuple[int, int]:
    """TFLite's ``GetInvSqrtQuantizedMultiplierExp(value, reverse_shift=-1)``: 1/sqrt(value) as a Q31
    multiplier and a (left) shift, by five gemmlowp fixed-point Newton-Raphson steps."""
    if value <= 1:
        return INT32_MAX, 0
    shift = 11
    while value >= (1 << 29):
        value //= 4
        shift += 1
    left_shift_bit_pairs = (32 - value.bit_length() - 1) // 2 - 1
    shift -= left_shift_bit_pairs
    value <<= 2 * left_shift_bit_pairs
    half_input = int(rounding_divide_by_pot(np.int64(value >> 1), 1))   # F3 input / 2
    half_three = (1 << 28) + (1 << 27)                                  # F3 1.5
    x = 1 << 28                                                         # F3 1.0
    for _ in range(5):
        x3 = _saturating_shift_left(_srdhm(_srdhm(x, x), x), 6)         # Rescale<3>(x·x·x)
        x = _saturating_shift_left(_wrap_int32(np.int64(_srdhm(half_three, x)) - _srdhm(half_input, x3)).item(), 3)
    x = _srdhm(x, 1518500250)                                           # × sqrt(2)/2 (F0)
    if shift < 0:
        x = int(_wrap_int32(np.int64(x) << -shift))
        shift = 0
    return x, -shift


def rsqrt_lut(x_scale, x_zp, y_scale, y_zp) -> np.ndarray:
    """TFLite int8 RSQRT for every input code: 1/sqrt(x) rescaled by 1/(sqrt(s_in)·s_out); the zero point
    gives the maximum code (TFLite: "any value close to 0 represents the max"), and so, here, does a code
    below it (the interpreter stops there: RSQRT is defined for x ≥ 0 only)."""
    multiplier, shift = quantize_multiplier(1.0 / (np.sqrt(np.float64(_scale(x_scale))) * np.float64(_scale(y_scale))))
    table = np.empty(256, np.int8)
    for code in range(-128, 128):
        value = code - _zero_point(x_zp)
        if value <= 0:   # the interpreter refuses negative inputs; a variance never is one
            table[code + 128] = INT8_MAX
            continue
        inv, inv_shift = inv_sqrt_multiplier_exp(value)
        data = multiply_by_quantized_multiplier(np.int64(1), inv, inv_shift + _RSQRT_SHIFT)
        out = int(multiply_by_quantized_multiplier(data, multiplier, shift - _RSQRT_SHIFT)) + _zero_point(y_zp)
        table[code + 128] = min(max(out, INT8_MIN), INT8_MAX)
    return table
