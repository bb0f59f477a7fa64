"""One small integer graph per op kind of the integer form, with random quantization (asymmetric
zero points, fused activations, broadcasting, padding): shared by the per-kind exactness tests of
every target."""

from __future__ import annotations

import numpy as np

from tvmse.ir import IntegerGraph, TensorInfo, build


def _act(rng, name, shape) -> TensorInfo:
    return TensorInfo(name, tuple(shape), float(np.float32(rng.uniform(0.002, 0.1))), int(rng.integers(-40, 40)))


def _weights(rng, shape) -> np.ndarray:
    w = rng.integers(-127, 128, shape).astype(np.int8)
    w[rng.random(shape) < 0.3] = 0
    return w


def _conv(rng, kind: str) -> IntegerGraph:
    x = _act(rng, "x", (1, 9, 7, 4))
    oz = int(rng.integers(-20, 20))
    if kind == "depthwise_conv_2d":
        w = _weights(rng, (1, 3, 3, 8))
        op = build.depthwise_conv_2d("y", x, w, rng.integers(-3000, 3000, 8), rng.uniform(0.001, 0.02, 8), 0.05, oz,
                                     strides=(2, 1), padding=build.same_padding((9, 7), (3, 3), (2, 1)),
                                     activation="RELU")
    else:
        w = _weights(rng, (5, 3, 2, 4))
        pad = (1, 0, 2, 1) if kind == "conv_2d_explicit_padding" else build.same_padding((9, 7), (3, 2), (1, 2))
        op = build.conv_2d("y", x, w, rng.integers(-3000, 3000, 5), rng.uniform(0.001, 0.02, 5), 0.05, oz,
                           strides=(1, 2), padding=pad, activation="RELU6")
    return IntegerGraph([x], ["y"], [op])


def op_graph(kind: str, seed: int) -> IntegerGraph:
    """A one-op graph (two for a constant operand) of ``kind``; see ``KINDS``."""
    rng = np.random.default_rng(seed)
    out_zp, out_scale = int(rng.integers(-20, 20)), float(rng.uniform(0.01, 0.2))
    if kind.startswith(("conv_2d", "depthwise")):
        return _conv(rng, kind)
    if kind == "fully_connected_3d":
        x = _act(rng, "x", (1, 3, 12))
        w = _weights(rng, (6, 12))
        return IntegerGraph([x], ["y"], [build.fully_connected("y", x, w, None, 0.01, 0.07, out_zp, "RELU")])
    if kind in ("add", "sub", "mul"):
        a, b = _act(rng, "a", (1, 4, 6)), _act(rng, "b", (1, 1, 6))
        return IntegerGraph([a, b], ["y"], [getattr(build, kind)("y", a, b, out_scale, out_zp)])
    if kind == "mul_by_constant":
        a = _act(rng, "a", (1, 6))
        c = build.constant("c", rng.integers(-128, 128, (1, 6)), 0.02, 3)
        return IntegerGraph([a], ["y"], [c, build.mul("y", a, c.output, out_scale, out_zp)])
    if kind.startswith("requantize"):
        a = _act(rng, "a", (1, 2, 10))
        activation = kind.split("/")[1] if "/" in kind else "NONE"
        return IntegerGraph([a], ["y"], [build.requantize("y", a, out_scale, out_zp, activation)])
    if kind == "rsqrt":   # defined for inputs at or above the zero point: a non-negative input, as a variance
        a = TensorInfo("a", (1, 2, 10), float(np.float32(rng.uniform(0.002, 0.1))), -128)
        return IntegerGraph([a], ["y"], [build.rsqrt("y", a, out_scale, out_zp)])
    if kind == "leaky_relu":
        a = _act(rng, "a", (1, 10))
        return IntegerGraph([a], ["y"], [build.leaky_relu("y", a, 0.2, out_scale, out_zp)])
    x = _act(rng, "x", (1, 6, 5, 3))
    if kind == "transpose":
        return IntegerGraph([x], ["y"], [build.transpose("y", x, [0, 2, 1, 3])])
    if kind == "pad":
        return IntegerGraph([x], ["y"], [build.pad("y", x, [[0, 0], [1, 2], [0, 1], [0, 0]])])
    if kind == "reshape":
        return IntegerGraph([x], ["y"], [build.reshape("y", x, (1, 30, 3))])
    if kind == "slice_axis_2":
        return IntegerGraph([x], ["y"], [build.slice_("y", x, 1, 4, axis=2)])
    if kind == "concat_axis_3":
        b = TensorInfo("b", (1, 6, 5, 2), x.scale, x.zero_point)
        return IntegerGraph([x, b], ["y"], [build.concat("y", [x, b], axis=3)])
    if kind in ("average_pool", "max_pool"):
        pad = build.same_padding((6, 5), (3, 2), (2, 2))
        return IntegerGraph([x], ["y"], [getattr(build, kind)("y", x, (3, 2), (2, 2), pad)])
    if kind == "average_pool_global":
        return IntegerGraph([x], ["y"], [build.average_pool("y", x, (6, 5), (1, 1))])
    if kind == "softmax":
        return IntegerGraph([x], ["y"], [build.softmax("y", x, beta=float(rng.uniform(0.5, 2.0)))])
    if kind.startswith("mean"):   # mean: spatial axes to [1, C] (Keras global pooling), mean_keep_dims: [1, 1, 1, C]
        return IntegerGraph([x], ["y"], [build.mean("y", x, [1, 2], kind == "mean_keep_dims", out_scale, out_zp)])
    if kind in ("logistic", "tanh"):
        return IntegerGraph([x], ["y"], [getattr(build, kind)("y", x)])
    raise KeyError(kind)


KINDS = ["conv_2d", "conv_2d_explicit_padding", "depthwise_conv_2d", "fully_connected_3d", "add", "sub", "mul",
         "mul_by_constant", "requantize", "requantize/RELU", "requantize/RELU6", "requantize/RELU_N1_TO_1",
         "rsqrt", "leaky_relu", "transpose", "pad", "reshape", "slice_axis_2", "concat_axis_3", "average_pool", "max_pool",
         "average_pool_global", "logistic", "tanh", "softmax", "mean", "mean_keep_dims"]

