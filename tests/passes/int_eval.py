"""A numpy evaluator of the integer form, for fast property tests (checked equal to HostReference).

Same arithmetic as ``tvmse.ir.kernels``, op kind by op kind: FC requantizes with one rounding
(halves away from zero), convolutions, ADD/SUB/MUL, QUANTIZE, LEAKY_RELU and MEAN with TFLite's two
roundings (in int64, as the Relax bodies), LOGISTIC/TANH/RSQRT by table, pools on the raw int8 values.
SOFTMAX (gemmlowp fixed point) is not restated here: its op runs alone through the host reference.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tvmse.ir import IntegerGraph, IntOp
from tvmse.quant_math import multiply_by_quantized_multiplier_ties_away


def _requantize(x, m, shift) -> np.ndarray:
    """``kernels.requantize``: MultiplyByQuantizedMultiplier in int64 (m, shift broadcast per channel)."""
    shift = np.asarray(shift, np.int64)
    x = np.asarray(x, np.int64) << np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    ab = x * np.asarray(m, np.int64)
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def _to_int8(v: np.ndarray, op: IntOp) -> np.ndarray:
    lo, hi = op.attrs.get("clamp", (-128, 127))
    return np.clip(np.asarray(v, np.int64) + op.output.zero_point, lo, hi).astype(np.int8)


def _windows(x: np.ndarray, filter_hw, strides, dilation, out_hw):
    """(ky, kx, view [N, OH, OW, C]) for every filter tap over the (already padded) NHWC ``x``."""
    (fh, fw), (sh, sw), (dh, dw), (oh, ow) = filter_hw, strides, dilation, out_hw
    for ky in range(fh):
        for kx in range(fw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, x[:, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw, :]


def _padded(x: np.ndarray, padding, value) -> np.ndarray:
    top, left, bottom, right = padding
    return np.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)], constant_values=value)


def _conv(op: IntOp, x: np.ndarray, x_zp: int) -> np.ndarray:
    a, c = op.attrs, op.consts
    w = c["weight"].astype(np.int64)
    xp = _padded(x - x_zp, a["padding"], 0)
    out_hw = op.output.shape[1:3]
    acc = np.zeros(op.output.shape, np.int64)
    for ky, kx, view in _windows(xp, w.shape[1:3], a["strides"], a["dilation"], out_hw):
        if op.kind == "depthwise_conv_2d":
            acc += np.repeat(view, a["depth_multiplier"], axis=-1) * w[0, ky, kx]
        else:
            acc += view @ w[:, ky, kx, :].T
    return _to_int8(_requantize(acc + c["bias"], c["multiplier"], c["shift"]), op)


def _pool(op: IntOp, x: np.ndarray) -> np.ndarray:
    a = op.attrs
    if op.kind == "max_pool":
        xp = _padded(x, a["padding"], np.iinfo(np.int64).min)
        y = np.max([v for _, _, v in _windows(xp, a["filter"], a["strides"], (1, 1), a["out_hw"])], axis=0)
        return np.clip(y, *a.get("clamp", (-128, 127))).astype(np.int8)
    xp = _padded(x, a["padding"], 0)
    total = sum(v for _, _, v in _windows(xp, a["filter"], a["strides"], (1, 1), a["out_hw"]))
    valid = _padded(np.ones((1, *x.shape[1:3], 1), np.int64), a["padding"], 0)
    counts = sum(v for _, _, v in _windows(valid, a["filter"], a["strides"], (1, 1), a["out_hw"]))
    mean = np.sign(total) * ((np.abs(total) + counts // 2) // counts)
    return np.clip(mean, *a.get("clamp", (-128, 127))).astype(np.int8)


def _binary(op: IntOp, x: list[np.ndarray]) -> np.ndarray:
    a = op.attrs
    if op.kind == "mul":
        return _to_int8(_requantize((x[0] - a["a_zp"]) * (x[1] - a["b_zp"]), a["mult"], a["shift"]), op)
    s = [_requantize((v - a[f"{k}_zp"]) << a["left_shift"], a[f"{k}_mult"], a[f"{k}_shift"]) for v, k in zip(x, "ab")]
    total = s[0] - s[1] if op.kind == "sub" else s[0] + s[1]
    return _to_int8(_requantize(total.astype(np.int32), a["out_mult"], a["out_shift"]), op)


def _op(op: IntOp, x: list[np.ndarray], tensors) -> np.ndarray:
    a, c = op.attrs, op.consts
    if op.kind == "fully_connected":
        k = c["weight"].shape[1]
        acc = (x[0].reshape(-1, k) - tensors[op.inputs[0]].zero_point) @ c["weight"].astype(np.int64).T + c["bias"]
        y = multiply_by_quantized_multiplier_ties_away(acc, c["multiplier"], c["shift"])
        return _to_int8(y, op).reshape(op.output.shape)
    if op.kind in ("conv_2d", "depthwise_conv_2d"):
        return _conv(op, x[0], tensors[op.inputs[0]].zero_point)
    if op.kind in ("add", "sub", "mul"):
        return _binary(op, x)
    if op.kind == "requantize":
        return _to_int8(_requantize(x[0] - a["in_zp"], a["mult"], a["shift"]), op)
    if op.kind == "leaky_relu":
        v = x[0] - a["in_zp"]
        y = np.where(v >= 0, _requantize(v, a["mult_identity"], a["shift_identity"]),
                     _requantize(v, a["mult_alpha"], a["shift_alpha"]))
        return np.clip(y + op.output.zero_point, -128, 127).astype(np.int8)
    if op.kind in ("logistic", "tanh", "rsqrt"):
        return np.asarray(a["table"], np.int8)[x[0] + 128]
    if op.kind == "concat":
        return np.concatenate(x, axis=a["axis"]).astype(np.int8)
    if op.kind == "slice":
        return np.take(x[0], np.arange(a["begin"], a["end"]), axis=a["axis"]).astype(np.int8)
    if op.kind == "reshape":
        return x[0].reshape(op.output.shape).astype(np.int8)
    if op.kind == "transpose":
        return np.transpose(x[0], a["perm"]).astype(np.int8)
    if op.kind == "pad":
        return np.pad(x[0], a["paddings"], constant_values=tensors[op.inputs[0]].zero_point).astype(np.int8)
    if op.kind in ("average_pool", "max_pool"):
        return _pool(op, x[0])
    if op.kind == "constant":
        return c["value"].astype(np.int8)
    if op.kind == "mean":
        total = x[0].sum(axis=tuple(a["axes"]), keepdims=a["keep_dims"]) - a["in_zp"] * a["count"]
        return np.clip(_requantize(total, a["mult"], a["shift"]) + op.output.zero_point, -128, 127).astype(np.int8)
    if op.kind == "softmax":
        return _on_host(op, x, tensors)
    raise NotImplementedError(f"int_eval: op kind '{op.kind}' ({op.name})")


_HOST_OPS: dict[str, object] = {}


def _on_host(op: IntOp, x: list[np.ndarray], tensors) -> np.ndarray:
    """``op`` alone through the host reference, compiled once per distinct op (names aside)."""
    from tvmse.targets.host import HostReference
    inputs = [replace(tensors[n], name=f"in{i}") for i, n in enumerate(op.inputs)]
    alone = replace(op, inputs=[t.name for t in inputs], output=replace(op.output, name="out"))
    key = repr((alone.kind, alone.attrs, inputs, alone.output))
    if key not in _HOST_OPS:
        _HOST_OPS[key] = HostReference(IntegerGraph(inputs, ["out"], [alone]))
    return _HOST_OPS[key].run({t.name: v.astype(np.int8) for t, v in zip(inputs, x)})["out"]


def run(graph: IntegerGraph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    values = {t.name: np.asarray(inputs[t.name]) for t in graph.inputs}
    tensors = graph.tensors()
    for op in graph.ops:
        y = _op(op, [values[n].astype(np.int64) for n in op.inputs], tensors)
        if tuple(y.shape) != tuple(op.output.shape):
            raise AssertionError(f"int_eval: '{op.name}' computed shape {y.shape}, the graph says {op.output.shape}")
        values[op.name] = y
    return {n: values[n] for n in graph.outputs}
