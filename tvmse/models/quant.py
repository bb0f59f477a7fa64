"""Fake quantization with the exact rounding of ONNX QuantizeLinear.

QuantizeLinear computes ``saturate(round_half_even(x / scale) + zero_point)``; the functions
here compute the same thing in torch (float32, division, ``torch.round`` is half-to-even), so a
fake-quant torch model and its QDQ ONNX export agree. Gradients pass straight through the
rounding (straight-through estimator) and are zero outside the clamp range.
"""

from __future__ import annotations

import torch

INT8_MIN, INT8_MAX = -128, 127
# Weights are symmetric in [-127, 127]: -128 has no positive twin, and TFLite's int8 weight
# convention (zero point 0, range ±127) keeps every channel's scale exactly max|w| / 127.
WEIGHT_MAX = 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_int(x: torch.Tensor, scale, zero_point: int = 0, qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> torch.Tensor:
    """Integer values (as float tensor) that QuantizeLinear would produce."""
    return torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)


def fake_quant(x: torch.Tensor, scale, zero_point: int = 0, qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> torch.Tensor:
    """Quantize-dequantize ``x`` with a straight-through gradient inside the representable range."""
    q = (quantize_int(x, scale, zero_point, qmin, qmax) - zero_point) * scale
    lo = (qmin - zero_point) * scale
    hi = (qmax - zero_point) * scale
    inside = (x >= lo) & (x <= hi)
    return torch.where(inside, x + (q - x).detach(), q.detach())


# Scale of an all-zero row (a pruned output): its weights are 0 on any grid, and a normal-sized
# scale keeps the row's int32 bias grid (input scale × weight scale) fine enough for its bias. A
# tiny floor (1e-8) would make that grid ~1e-10 and saturate any real bias at int32's limit.
ZERO_ROW_SCALE = 1.0 / WEIGHT_MAX


def weight_scales(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric scales (rows of ``w``): max|w_row| / 127; ZERO_ROW_SCALE for a zero row."""
    peak = w.detach().abs().amax(dim=1)
    return torch.where(peak > 0, peak / WEIGHT_MAX, torch.full_like(peak, ZERO_ROW_SCALE))


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-channel symmetric int8 fake quantization of a [out, in] weight."""
    s = weight_scales(w)[:, None]
    return fake_quant(w, s, 0, -WEIGHT_MAX, WEIGHT_MAX)


def fake_quant_bias(b: torch.Tensor, bias_scale: torch.Tensor) -> torch.Tensor:
    """int32 bias on the accumulator grid (scale = input scale × per-channel weight scale)."""
    return fake_quant(b, bias_scale, 0, INT32_MIN, INT32_MAX)
