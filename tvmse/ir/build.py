"""Constructors for integer ops: derive every integer parameter from float scales as TFLite does.

TFLite stores float scales in the model and derives multipliers and lookup tables from them when
it prepares a kernel; these functions derive the same numbers (via ``tvmse.quant_math``) so the
integer form, the TFLite file written from it and the interpreter agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from tvmse import quant_math
from tvmse.ir.graph import IntOp, TensorInfo

SIGMOID_QUANT = (1.0 / 256.0, -128)
TANH_QUANT = (1.0 / 128.0, 0)


def _f32(x) -> float:
    return float(np.float32(x))


def fully_connected(name: str, x: TensorInfo, weight: np.ndarray, bias: np.ndarray, weight_scales: np.ndarray,
                    out_scale: float, out_zp: int) -> IntOp:
    """FC with per-output-channel weight scales; multiplier_n = x_scale·w_scale_n / out_scale."""
    weight_scales = np.asarray(weight_scales, np.float32)
    mult, shift = quant_math.fully_connected_multipliers(x.scale, weight_scales, out_scale)
    n = weight.shape[0]
    return IntOp("fully_connected", [x.name], TensorInfo(name, (1, n), _f32(out_scale), int(out_zp)),
                 consts={"weight": np.asarray(weight, np.int8), "bias": np.asarray(bias, np.int32),
                         "multiplier": np.asarray(mult, np.int32), "shift": np.asarray(shift, np.int32)},
                 attrs={"weight_scales": [float(s) for s in weight_scales]})


def add(name: str, a: TensorInfo, b: TensorInfo, out_scale: float, out_zp: int) -> IntOp:
    """Elementwise int8 ADD with TFLite's parameters (inputs scaled to 2·max(scale), left shift 20)."""
    params = quant_math.add_params(a.scale, a.zero_point, b.scale, b.zero_point, _f32(out_scale))
    return IntOp("add", [a.name, b.name], TensorInfo(name, a.shape, _f32(out_scale), int(out_zp)), attrs=params)


def mul(name: str, a: TensorInfo, b: TensorInfo, out_scale: float, out_zp: int) -> IntOp:
    """Elementwise int8 MUL: one multiplier for a_scale·b_scale / out_scale (float32, as TFLite)."""
    m, s = quant_math.mul_multiplier(a.scale, b.scale, out_scale)
    attrs = {"a_zp": a.zero_point, "b_zp": b.zero_point, "mult": int(m), "shift": int(s)}
    return IntOp("mul", [a.name, b.name], TensorInfo(name, a.shape, _f32(out_scale), int(out_zp)), attrs=attrs)


def logistic(name: str, x: TensorInfo) -> IntOp:
    table = quant_math.logistic_lut(x.scale, x.zero_point)
    return IntOp("logistic", [x.name], TensorInfo(name, x.shape, _f32(SIGMOID_QUANT[0]), SIGMOID_QUANT[1]),
                 attrs={"table": [int(v) for v in table]})


def tanh(name: str, x: TensorInfo) -> IntOp:
    table = quant_math.tanh_lut(x.scale, x.zero_point)
    return IntOp("tanh", [x.name], TensorInfo(name, x.shape, _f32(TANH_QUANT[0]), TANH_QUANT[1]),
                 attrs={"table": [int(v) for v in table]})


def concat(name: str, parts: list[TensorInfo], axis: int = 1) -> IntOp:
    """Concatenation of int8 tensors that share one quantization (TFLite's int8 rule)."""
    quants = {p.quant() for p in parts}
    if len(quants) != 1:
        raise ValueError(f"concat '{name}': inputs {[p.name for p in parts]} have different quantization "
                         f"{sorted(quants)}; int8 concatenation needs one scale and zero point")
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    return IntOp("concat", [p.name for p in parts], TensorInfo(name, tuple(shape), *parts[0].quant()),
                 attrs={"axis": axis})


def slice_(name: str, x: TensorInfo, begin: int, end: int, axis: int = 1) -> IntOp:
    shape = list(x.shape)
    shape[axis] = end - begin
    return IntOp("slice", [x.name], TensorInfo(name, tuple(shape), *x.quant()),
                 attrs={"axis": axis, "begin": begin, "end": end})
