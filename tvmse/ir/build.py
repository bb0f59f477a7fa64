"""Constructors for integer ops: derive every integer parameter from float scales as TFLite does.

TFLite stores float scales in the model and derives multipliers and lookup tables from them when
it prepares a kernel; these functions derive the same numbers (via ``tvmse.quant_math``) so the
integer form, the TFLite file written from it and the interpreter agree bit for bit. Importers
(``tvmse.frontend``) build every op through them.
"""

from __future__ import annotations

import numpy as np

from tvmse import quant_math
from tvmse.ir.graph import IntOp, TensorInfo

SIGMOID_QUANT = (1.0 / 256.0, -128)
TANH_QUANT = (1.0 / 128.0, 0)


def _f32(x) -> float:
    return float(np.float32(x))


def _activation_attrs(activation: str, out_scale: float, out_zp: int) -> dict:
    return {"activation": activation, "clamp": list(quant_math.activation_range(activation, out_scale, out_zp))}


def _weighted(kind: str, name: str, x: TensorInfo, out_shape, weight, bias, weight_scales, out_scale, out_zp,
              activation: str, attrs: dict) -> IntOp:
    channels = weight.shape[-1] if kind == "depthwise_conv_2d" else weight.shape[0]
    weight_scales = np.broadcast_to(np.asarray(weight_scales, np.float32).reshape(-1), (channels,))
    mult, shift = quant_math.fully_connected_multipliers(x.scale, weight_scales, out_scale)
    bias = np.zeros(channels, np.int32) if bias is None else np.asarray(bias, np.int32)
    return IntOp(kind, [x.name], TensorInfo(name, tuple(int(d) for d in out_shape), _f32(out_scale), int(out_zp)),
                 consts={"weight": np.asarray(weight, np.int8), "bias": bias,
                         "multiplier": np.asarray(mult, np.int32), "shift": np.asarray(shift, np.int32)},
                 attrs={"weight_scales": [float(s) for s in weight_scales],
                        **_activation_attrs(activation, out_scale, out_zp), **attrs})


def fully_connected(name: str, x: TensorInfo, weight: np.ndarray, bias: np.ndarray | None, weight_scales,
                    out_scale: float, out_zp: int, activation: str = "NONE", out_shape=None) -> IntOp:
    """FC over the last axis of ``x`` ([..., K] → [rows, N], or ``out_shape``); weights [N, K]."""
    n, k = weight.shape
    rows = int(np.prod(x.shape)) // k
    return _weighted("fully_connected", name, x, out_shape or (rows, n), weight, bias, weight_scales, out_scale,
                     out_zp, activation, {})


def conv_output_hw(in_hw, filter_hw, strides, dilation, padding) -> tuple[int, int]:
    (h, w), (fh, fw), (sh, sw), (dh, dw), (top, left, bottom, right) = in_hw, filter_hw, strides, dilation, padding
    return ((h + top + bottom - dh * (fh - 1) - 1) // sh + 1, (w + left + right - dw * (fw - 1) - 1) // sw + 1)


def same_padding(in_hw, filter_hw, strides, dilation=(1, 1)) -> list[int]:
    """TFLite's SAME padding [top, left, bottom, right] (the odd pixel goes after)."""
    pads = []
    for size, f, s, d in zip(in_hw, filter_hw, strides, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + (f - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]


def conv_2d(name: str, x: TensorInfo, weight: np.ndarray, bias, weight_scales, out_scale, out_zp, strides=(1, 1),
            dilation=(1, 1), padding=(0, 0, 0, 0), activation: str = "NONE") -> IntOp:
    """NHWC convolution, weights [O, KH, KW, I] (TFLite's layout)."""
    oh, ow = conv_output_hw(x.shape[1:3], weight.shape[1:3], strides, dilation, padding)
    return _weighted("conv_2d", name, x, (x.shape[0], oh, ow, weight.shape[0]), weight, bias, weight_scales,
                     out_scale, out_zp, activation,
                     {"strides": list(strides), "dilation": list(dilation), "padding": list(padding)})


def depthwise_conv_2d(name: str, x: TensorInfo, weight: np.ndarray, bias, weight_scales, out_scale, out_zp,
                      strides=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), activation: str = "NONE") -> IntOp:
    """NHWC depthwise convolution, weights [1, KH, KW, C·M]: output channel c·M + m reads input channel c."""
    oh, ow = conv_output_hw(x.shape[1:3], weight.shape[1:3], strides, dilation, padding)
    return _weighted("depthwise_conv_2d", name, x, (x.shape[0], oh, ow, weight.shape[3]), weight, bias,
                     weight_scales, out_scale, out_zp, activation,
                     {"strides": list(strides), "dilation": list(dilation), "padding": list(padding),
                      "depth_multiplier": weight.shape[3] // x.shape[3]})


def _broadcast_shape(a: TensorInfo, b: TensorInfo) -> tuple[int, ...]:
    return tuple(int(d) for d in np.broadcast_shapes(tuple(a.shape), tuple(b.shape)))


def add(name: str, a: TensorInfo, b: TensorInfo, out_scale: float, out_zp: int, activation: str = "NONE",
        subtract: bool = False) -> IntOp:
    """Elementwise int8 ADD (or SUB) with TFLite's parameters (inputs scaled to 2·max(scale), left shift 20)."""
    params = quant_math.add_params(a.scale, a.zero_point, b.scale, b.zero_point, _f32(out_scale))
    return IntOp("sub" if subtract else "add", [a.name, b.name],
                 TensorInfo(name, _broadcast_shape(a, b), _f32(out_scale), int(out_zp)),
                 attrs={**params, **_activation_attrs(activation, out_scale, out_zp)})


def sub(name: str, a: TensorInfo, b: TensorInfo, out_scale: float, out_zp: int, activation: str = "NONE") -> IntOp:
    return add(name, a, b, out_scale, out_zp, activation, subtract=True)


def mul(name: str, a: TensorInfo, b: TensorInfo, out_scale: float, out_zp: int, activation: str = "NONE") -> IntOp:
    """Elementwise int8 MUL: one multiplier for a_scale·b_scale / out_scale (float32, as TFLite)."""
    m, s = quant_math.mul_multiplier(a.scale, b.scale, out_scale)
    attrs = {"a_zp": a.zero_point, "b_zp": b.zero_point, "mult": int(m), "shift": int(s),
             **_activation_attrs(activation, out_scale, out_zp)}
    return IntOp("mul", [a.name, b.name], TensorInfo(name, _broadcast_shape(a, b), _f32(out_scale), int(out_zp)),
                 attrs=attrs)


def logistic(name: str, x: TensorInfo) -> IntOp:
    table = quant_math.logistic_lut(x.scale, x.zero_point)
    return IntOp("logistic", [x.name], TensorInfo(name, x.shape, _f32(SIGMOID_QUANT[0]), SIGMOID_QUANT[1]),
                 attrs={"table": [int(v) for v in table]})


def tanh(name: str, x: TensorInfo) -> IntOp:
    table = quant_math.tanh_lut(x.scale, x.zero_point)
    return IntOp("tanh", [x.name], TensorInfo(name, x.shape, _f32(TANH_QUANT[0]), TANH_QUANT[1]),
                 attrs={"table": [int(v) for v in table]})


def rsqrt(name: str, x: TensorInfo, out_scale: float, out_zp: int) -> IntOp:
    """int8 RSQRT (1/sqrt) as TFLite's reference kernel computes it, tabulated for the 256 input codes."""
    table = quant_math.rsqrt_lut(x.scale, x.zero_point, out_scale, out_zp)
    return IntOp("rsqrt", [x.name], TensorInfo(name, x.shape, _f32(out_scale), int(out_zp)),
                 attrs={"table": [int(v) for v in table]})


def requantize(name: str, x: TensorInfo, out_scale: float, out_zp: int, activation: str = "NONE") -> IntOp:
    """Rescale to another quantization: TFLite's QUANTIZE (int8 → int8) or, with an activation, its RELU,
    RELU6, RELU_N1_TO_1 op (those derive the multiplier in float32, QUANTIZE in double)."""
    if activation == "NONE":
        m, s = quant_math.requantize_multiplier(x.scale, out_scale)
    else:
        m, s = quant_math.relu_multiplier(x.scale, out_scale)
    return IntOp("requantize", [x.name], TensorInfo(name, x.shape, _f32(out_scale), int(out_zp)),
                 attrs={"in_zp": x.zero_point, "mult": int(m), "shift": int(s),
                        **_activation_attrs(activation, out_scale, out_zp)})


def leaky_relu(name: str, x: TensorInfo, alpha: float, out_scale: float, out_zp: int) -> IntOp:
    (mi, si), (ma, sa) = quant_math.leaky_relu_multipliers(x.scale, alpha, out_scale)
    return IntOp("leaky_relu", [x.name], TensorInfo(name, x.shape, _f32(out_scale), int(out_zp)),
                 attrs={"in_zp": x.zero_point, "alpha": float(np.float32(alpha)), "mult_identity": int(mi),
                        "shift_identity": int(si), "mult_alpha": int(ma), "shift_alpha": int(sa)})


def concat(name: str, parts: list[TensorInfo], axis: int = 1) -> IntOp:
    """Concatenation of int8 tensors that share one quantization (TFLite's int8 rule)."""
    quants = {p.quant() for p in parts}
    if len(quants) != 1:
        raise ValueError(f"concat '{name}': inputs {[p.name for p in parts]} have different quantization "
                         f"{sorted(quants)}; int8 concatenation needs one scale and zero point")
    axis %= len(parts[0].shape)
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    return IntOp("concat", [p.name for p in parts], TensorInfo(name, tuple(shape), *parts[0].quant()),
                 attrs={"axis": axis})


def slice_(name: str, x: TensorInfo, begin: int, end: int, axis: int = 1) -> IntOp:
    axis %= len(x.shape)
    shape = list(x.shape)
    shape[axis] = end - begin
    return IntOp("slice", [x.name], TensorInfo(name, tuple(shape), *x.quant()),
                 attrs={"axis": axis, "begin": begin, "end": end})


def reshape(name: str, x: TensorInfo, shape) -> IntOp:
    shape = tuple(int(d) for d in shape)
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise ValueError(f"reshape '{name}': cannot reshape {x.shape} to {shape}")
    return IntOp("reshape", [x.name], TensorInfo(name, shape, *x.quant()))


def transpose(name: str, x: TensorInfo, perm) -> IntOp:
    perm = [int(p) for p in perm]
    return IntOp("transpose", [x.name], TensorInfo(name, tuple(x.shape[p] for p in perm), *x.quant()),
                 attrs={"perm": perm})


def pad(name: str, x: TensorInfo, paddings) -> IntOp:
    """Constant padding with the zero point (the real value 0), as TFLite's int8 PAD."""
    paddings = [[int(a), int(b)] for a, b in paddings]
    shape = tuple(d + a + b for d, (a, b) in zip(x.shape, paddings))
    return IntOp("pad", [x.name], TensorInfo(name, shape, *x.quant()), attrs={"paddings": paddings})


def _pool(kind: str, name: str, x: TensorInfo, filter_hw, strides, padding, activation: str) -> IntOp:
    oh, ow = conv_output_hw(x.shape[1:3], filter_hw, strides, (1, 1), padding)
    return IntOp(kind, [x.name], TensorInfo(name, (x.shape[0], oh, ow, x.shape[3]), *x.quant()),
                 attrs={"filter": list(filter_hw), "strides": list(strides), "padding": list(padding),
                        "out_hw": [oh, ow], **_activation_attrs(activation, x.scale, x.zero_point)})


def average_pool(name: str, x: TensorInfo, filter_hw, strides, padding=(0, 0, 0, 0), activation="NONE") -> IntOp:
    return _pool("average_pool", name, x, filter_hw, strides, padding, activation)


def max_pool(name: str, x: TensorInfo, filter_hw, strides, padding=(0, 0, 0, 0), activation="NONE") -> IntOp:
    return _pool("max_pool", name, x, filter_hw, strides, padding, activation)


def constant(name: str, value: np.ndarray, scale: float, zero_point: int) -> IntOp:
    value = np.asarray(value, np.int8)
    return IntOp("constant", [], TensorInfo(name, tuple(value.shape), _f32(scale), int(zero_point)),
                 consts={"value": value})


SOFTMAX_QUANT = SIGMOID_QUANT   # TFLite's int8 SOFTMAX output: 1/256, −128
_SCALED_DIFF_INTEGER_BITS = 5   # TFLite's kScaledDiffIntegerBits: input differences in Q5.26


def softmax(name: str, x: TensorInfo, beta: float = 1.0) -> IntOp:
    """int8 SOFTMAX over the last axis with TFLite's parameters (PreprocessSoftmaxScaling, diff_min)."""
    beta = _f32(beta)
    if not beta > 0:
        raise ValueError(f"softmax '{name}': beta must be positive, got {beta}")
    bits = _SCALED_DIFF_INTEGER_BITS
    real = min(beta * _f32(x.scale) * (1 << (31 - bits)), float((1 << 31) - 1))
    multiplier, left_shift = quant_math.quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError(f"softmax '{name}': input scale {x.scale} × beta {beta} is too small for TFLite's int8 "
                         "softmax (its multiplier must be at least 1)")
    radius = int(np.floor(((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << left_shift)))
    return IntOp("softmax", [x.name], TensorInfo(name, x.shape, _f32(SOFTMAX_QUANT[0]), SOFTMAX_QUANT[1]),
                 attrs={"beta": beta, "multiplier": int(multiplier), "left_shift": int(left_shift),
                        "diff_min": -radius})


def mean(name: str, x: TensorInfo, axes, keep_dims: bool, out_scale: float, out_zp: int) -> IntOp:
    """int8 MEAN over ``axes`` as TFLite's reference kernel: multiplier of in/out scale with 1/count folded in
    (the count's power of two moved into the shift)."""
    rank = len(x.shape)
    axes = sorted({int(a) % rank for a in axes})
    count = int(np.prod([x.shape[a] for a in axes]))
    multiplier, shift = quant_math.quantize_multiplier(float(np.float32(x.scale)) / float(_f32(out_scale)))
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << extra) // count
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep_dims or i not in axes)
    return IntOp("mean", [x.name], TensorInfo(name, shape, _f32(out_scale), int(out_zp)),
                 attrs={"axes": axes, "keep_dims": bool(keep_dims), "in_zp": x.zero_point, "count": count,
                        "mult": int(multiplier), "shift": int(shift - extra)})
