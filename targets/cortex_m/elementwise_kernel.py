"""int8 ADD and MUL kernels for the Cortex-M55 in 32-bit arithmetic, written as TIR.

The integer form states TFLite's requantization ``MultiplyByQuantizedMultiplier`` in int64 so that
no intermediate can wrap (``tvmse.ir.kernels.requantize``). Legalized as it stands, every element
goes through a dozen 64-bit operations with sign-dependent branches (~80 instructions per MUL
element, ~200 per ADD element on the M55). Because every parameter is a compile-time constant and
every input is int8, the value range of each intermediate is known exactly, and the same bits come
out of plain int32 arithmetic that clang vectorizes for Helium (4 lanes, ``vldrb.s32`` …
``vstrb.32``):

- ``SaturatingRoundingDoublingHighMul(d·2^L, M)``: gemmlowp's nudge-and-truncate equals
  ``floor((d·M + 2^(30−L)) / 2^(31−L))`` for every sign (for ``p < 0`` the truncated
  ``(p + 1 − 2^30) / 2^31`` is ``⌈…⌉ = ⌊(p + 2^30) / 2^31⌋``); ``M ≥ 0`` rules out its one
  saturating case. With ``M = Mh·2^16 + Ml`` the 64-bit product splits into two 32-bit products,
  ``⌊(d·Mh + 2^(e−17) + ⌊d·Ml / 2^16⌋) / 2^(e−16)⌋`` for ``e = 31 − L ≥ 17`` (floors nest), and
  ``(d·Mh)·2^(16−e) + ⌊(d·Ml + 2^(e−1)) / 2^e⌋`` for ``e ≤ 16``. Used when no intermediate leaves
  int32 over the input range; otherwise (e.g. a MUL of two full-range int8 inputs, |d| up to
  65 025, or ADD's output rescale, |d| up to 2^27) the product is taken in int64 and only the high
  multiply is 64-bit — clang then keeps that loop scalar (``umlal``), still ~10× fewer instructions
  than the legalized form;
- ``RoundingDivideByPOT(h, r)`` (halves away from zero) is ``(h + 2^(r−1) + (h >> 31)) >> r``
  (``h >> 31`` is −1 for negative ``h``, which moves the tie down);
- zero points, the sum of ADD's two rescaled inputs and the final clamp stay in int32.

Every intermediate takes its extremes at the corners of the int8 input box (MUL's product is
bilinear, everything after it monotone), so checking the corners proves the int32 bounds; a site where even the int64 product would need a wider ``d·2^L`` is refused
(``None``) and the op keeps its legalized kernel. Only same-shape (non-broadcast) operands are
handled here.
"""

from __future__ import annotations

import dataclasses
import logging

import tvm
from tvm import te, tirx

from tvmse import quant_math

log = logging.getLogger(__name__)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
#: Bits of the multiplier's low part in the split high multiply.
SPLIT_BITS = 16


@dataclasses.dataclass(frozen=True)
class Span:
    """Inclusive integer range of a value over every int8 input."""

    lo: int
    hi: int

    def fits_int32(self) -> bool:
        return INT32_MIN <= self.lo and self.hi <= INT32_MAX


def _i32(value: int) -> tirx.PrimExpr:
    return tirx.const(int(value), "int32")


def _high_mul_split_values(d: int, left: int, m: int) -> list[int]:
    """Every intermediate of the split high multiply for one ``d`` (Python ints, no wrapping)."""
    e, mh, ml = 31 - left, m >> SPLIT_BITS, m & ((1 << SPLIT_BITS) - 1)
    if e >= SPLIT_BITS + 1:
        low = (d * ml) >> SPLIT_BITS
        total = d * mh + (1 << (e - SPLIT_BITS - 1)) + low
        return [d * ml, d * mh, total, total >> (e - SPLIT_BITS)]
    high = (d * mh) << (SPLIT_BITS - e)
    low = d * ml + (1 << (e - 1))
    return [d * mh, high, d * ml, low, high + (low >> e)]


def high_mul(d: tirx.PrimExpr, span: Span, left: int, m: int) -> tuple[tirx.PrimExpr, str] | None:
    """``SaturatingRoundingDoublingHighMul(d·2^left, m)`` as an int32 expression, and its form.

    ``d`` is int32 with values in ``span``. Form "split32" needs no 64-bit value at all; "mul64"
    takes the one product in int64. ``None`` when ``d·2^left`` itself leaves int32.
    """
    if not 0 <= m <= INT32_MAX or not 0 <= left <= 30:
        return None
    if not Span(span.lo << left, span.hi << left).fits_int32():
        return None  # TFLite's own int32 ``x * (1 << left)`` would wrap
    corners = [v for dd in (span.lo, span.hi) for v in _high_mul_split_values(dd, left, m)]
    if all(INT32_MIN <= v <= INT32_MAX for v in corners):
        e, mh, ml = 31 - left, m >> SPLIT_BITS, m & ((1 << SPLIT_BITS) - 1)
        if e >= SPLIT_BITS + 1:
            total = d * _i32(mh) + _i32(1 << (e - SPLIT_BITS - 1)) + ((d * _i32(ml)) >> _i32(SPLIT_BITS))
            return total >> _i32(e - SPLIT_BITS), "split32"
        # a multiply, not ``<<``: C leaves the left shift of a negative value undefined
        high = (d * _i32(mh)) * _i32(1 << (SPLIT_BITS - e)) if e < SPLIT_BITS else d * _i32(mh)
        return high + ((d * _i32(ml) + _i32(1 << (e - 1))) >> _i32(e)), "split32"
    x = d * _i32(1 << left) if left else d
    product = tirx.Cast("int64", x) * tirx.const(m, "int64") + tirx.const(1 << 30, "int64")
    return tirx.Cast("int32", product >> tirx.const(31, "int64")), "mul64"


def rounding_divide(h: tirx.PrimExpr, span: Span, right: int) -> tirx.PrimExpr | None:
    """``RoundingDivideByPOT(h, right)`` in int32; ``None`` if ``h + 2^(right−1)`` could wrap."""
    if right == 0:
        return h
    if not 0 < right <= 31 or span.hi + (1 << (right - 1)) > INT32_MAX:
        return None
    return (h + _i32(1 << (right - 1)) + (h >> _i32(31))) >> _i32(right)


def _high_mul_exact(x: int, m: int) -> int:
    """gemmlowp's nudge-and-truncate high multiply on Python ints (no saturation case: m ≥ 0)."""
    p = x * m
    nudged = p + ((1 << 30) if p >= 0 else 1 - (1 << 30))
    return nudged >> 31 if nudged >= 0 else -((-nudged) >> 31)


def _requantize_span(span: Span, left_in: int, m: int, shift: int) -> Span:
    """Exact range of ``MultiplyByQuantizedMultiplier(d·2^left_in, m, shift)`` for ``d`` in ``span``."""
    ends = quant_math.multiply_by_quantized_multiplier([span.lo << left_in, span.hi << left_in], m, shift)
    return Span(int(ends[0]), int(ends[1]))


def requantize(d: tirx.PrimExpr, span: Span, left_in: int, m: int,
               shift: int) -> tuple[tirx.PrimExpr, Span, str] | None:
    """``MultiplyByQuantizedMultiplier(d·2^left_in, m, shift)`` in int32 (expression, range, form)."""
    left, right = max(shift, 0) + left_in, max(-shift, 0)
    high = high_mul(d, span, left, m)
    if high is None:
        return None
    h_span = Span(_high_mul_exact(span.lo << left, m), _high_mul_exact(span.hi << left, m))
    result = rounding_divide(high[0], h_span, right)
    if result is None:
        return None
    return result, _requantize_span(span, left_in, m, shift), high[1]


def _centered(x: tirx.PrimExpr, zp: int) -> tuple[tirx.PrimExpr, Span]:
    value = tirx.Cast("int32", x)
    if zp:
        value = value - _i32(zp)
    return value, Span(-128 - zp, 127 - zp)


def _to_int8(r: tirx.PrimExpr, span: Span, zp: int) -> tirx.PrimExpr | None:
    if not Span(span.lo + zp, span.hi + zp).fits_int32():
        return None
    value = r + _i32(zp) if zp else r
    return tirx.Cast("int8", tirx.Max(tirx.Min(value, _i32(127)), _i32(-128)))


def _product_span(a: Span, b: Span) -> Span:
    corners = [x * y for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    return Span(min(corners), max(corners))


def _elementwise(shape: tuple[int, ...], body) -> tvm.tirx.PrimFunc:
    a = te.placeholder(shape, "int8", name="a")
    b = te.placeholder(shape, "int8", name="b")
    y = te.compute(shape, lambda *i: body(a(*i), b(*i)), name="y")
    return te.create_prim_func([a, b, y]).with_attr("tirx.noalias", True)


def _requantize_output(d: tirx.PrimExpr, span: Span, m: int, shift: int, y_zp: int,
                       forms: list[str]) -> tirx.PrimExpr:
    """Last step of both MUL and ADD: rescale the int32 result ``d`` to the output and clamp to int8.

    Appends the high-multiply form used to ``forms``; raises ``_NotInt32`` if an intermediate could
    leave int32 (the op then keeps its legalized kernel).
    """
    req = requantize(d, span, 0, m, shift)
    if req is None:
        raise _NotInt32
    forms.append(req[2])
    out = _to_int8(req[0], req[1], y_zp)
    if out is None:
        raise _NotInt32
    return out


def mul(shape: tuple[int, ...], params: dict, y_zp: int) -> tuple[tvm.tirx.PrimFunc, str] | None:
    """PrimFunc ``(a i8, b i8) → y i8`` of TFLite's int8 MUL, and the high-multiply form used."""
    forms = []

    def body(a, b):
        da, sa = _centered(a, params["a_zp"])
        db, sb = _centered(b, params["b_zp"])
        span = _product_span(sa, sb)
        return _requantize_output(da * db, span, params["mult"], params["shift"], y_zp, forms)

    try:
        return _elementwise(shape, body), forms[0]
    except _NotInt32:
        return None


def add(shape: tuple[int, ...], params: dict, y_zp: int) -> tuple[tvm.tirx.PrimFunc, str] | None:
    """PrimFunc ``(a i8, b i8) → y i8`` of TFLite's int8 ADD, and the high-multiply forms used."""
    forms = []

    def body(a, b):
        scaled, spans = [], []
        for x, side in ((a, "a"), (b, "b")):
            d, span = _centered(x, params[f"{side}_zp"])
            req = requantize(d, span, params["left_shift"], params[f"{side}_mult"], params[f"{side}_shift"])
            if req is None:
                raise _NotInt32
            scaled.append(req[0])
            spans.append(req[1])
            forms.append(req[2])
        total = Span(spans[0].lo + spans[1].lo, spans[0].hi + spans[1].hi)
        if not total.fits_int32():
            raise _NotInt32
        return _requantize_output(scaled[0] + scaled[1], total, params["out_mult"], params["out_shift"], y_zp, forms)

    try:
        return _elementwise(shape, body), "+".join(forms)
    except _NotInt32:
        return None


class _NotInt32(Exception):
    """Some intermediate could leave int32: the op keeps its legalized int64 kernel."""
