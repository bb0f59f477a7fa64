"""Lower tvmse's integer form to an int8 TFLite flatbuffer, the input Vela compiles.

One lowering per op kind (``_LOWERINGS``)::

    fully_connected   → FULLY_CONNECTED (int8 weights [N, K], per-channel scales on axis 0,
                        int32 bias with scale x_scale·w_scale[n]); fused activations kept
    conv_2d / depthwise_conv_2d → CONV_2D / DEPTHWISE_CONV_2D (padding SAME or VALID; any other
                        explicit padding becomes a PAD with the zero point in front)
    add / sub / mul   → ADD / SUB / MUL          logistic / tanh / rsqrt → LOGISTIC / TANH / RSQRT
    requantize        → QUANTIZE, or RELU / RELU6 / RELU_N1_TO_1 when it clamps like one
    leaky_relu        → LEAKY_RELU               concat → CONCATENATION
    slice             → STRIDED_SLICE (free on Ethos-U: a read offset)
    reshape / transpose / pad → RESHAPE / TRANSPOSE / PAD
    average_pool / max_pool → AVERAGE_POOL_2D / MAX_POOL_2D
    softmax           → SOFTMAX (beta)           mean → MEAN (axes tensor, keep_dims)
    constant          → a constant int8 tensor (no operator)

Every tensor keeps the scale and zero point of the integer form, so the interpreter derives the
same multipliers and tables; ``check_against_host`` proves it on random inputs.
"""

from __future__ import annotations

import numpy as np

from tvmse.ir import IntegerGraph, IntOp, TensorInfo
from tvmse.ir.build import same_padding
from tvmse.targets.ethosu.tflite_writer import Operator, Tensor, bias_scale, run_tflite, write_model

_SIMPLE = {"add": "ADD", "sub": "SUB", "mul": "MUL", "logistic": "LOGISTIC", "tanh": "TANH", "rsqrt": "RSQRT"}
_RELU_OPS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1"}


class LoweringError(ValueError):
    """An integer op that TFLite cannot express (e.g. pooling with padding other than SAME/VALID)."""


def _activation(t: TensorInfo) -> Tensor:
    return Tensor(t.name, tuple(t.shape), "int8", np.array([t.scale], np.float32), np.array([t.zero_point], np.int64))


def _fused(op: IntOp) -> dict:
    return {"fused_activation_function": op.attrs.get("activation", "NONE")}


def _weights(op: IntOp, x: TensorInfo, channel_axis: int) -> list[Tensor]:
    w_scales = np.asarray(op.attrs["weight_scales"], np.float32)
    n = len(w_scales)
    weight = Tensor(f"{op.name}.weight", op.consts["weight"].shape, "int8", w_scales, np.zeros(n, np.int64),
                    quantized_dimension=channel_axis, data=op.consts["weight"])
    bias = Tensor(f"{op.name}.bias", (n,), "int32", bias_scale(x.scale, w_scales), np.zeros(n, np.int64),
                  quantized_dimension=0, data=op.consts["bias"])
    return [weight, bias]


def _padding_mode(op: IntOp, x: TensorInfo, filter_hw) -> str | None:
    """'SAME' / 'VALID' when the explicit padding is one of them, else None."""
    padding = list(op.attrs["padding"])
    if not any(padding):
        return "VALID"
    if padding == same_padding(x.shape[1:3], filter_hw, op.attrs["strides"], op.attrs.get("dilation", (1, 1))):
        return "SAME"
    return None


def _lower_fully_connected(op, tensors):
    x = tensors[op.inputs[0]]
    constants = _weights(op, x, 0)
    units = op.consts["weight"].shape[0]
    options = {**_fused(op), "keep_num_dims": tuple(op.output.shape) == (*x.shape[:-1], units) and len(x.shape) > 2}
    if not options["keep_num_dims"] and tuple(op.output.shape) != (int(np.prod(x.shape)) // x.shape[-1], units):
        raise LoweringError(f"op '{op.name}': FC output shape {op.output.shape} is neither [rows, N] nor "
                            f"the input's leading axes + [N]")
    return [Operator("FULLY_CONNECTED", [x.name, *(c.name for c in constants)], [op.name], options)], constants


def _lower_conv(op, tensors):
    x = tensors[op.inputs[0]]
    depthwise = op.kind == "depthwise_conv_2d"
    constants = _weights(op, x, 3 if depthwise else 0)
    options = {**_fused(op), "strides": op.attrs["strides"], "dilation": op.attrs["dilation"],
               "depth_multiplier": op.attrs.get("depth_multiplier", 1)}
    operators, source = [], x.name
    mode = _padding_mode(op, x, op.consts["weight"].shape[1:3])
    if mode is None:   # explicit padding: pad with the zero point (the real value 0), then VALID
        top, left, bottom, right = op.attrs["padding"]
        padded = TensorInfo(f"{op.name}/pad", (x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right,
                                                x.shape[3]), x.scale, x.zero_point)
        operators.append(Operator("PAD", [x.name], [padded.name],
                                  {"paddings": [[0, 0], [top, bottom], [left, right], [0, 0]]}))
        constants.append(_activation(padded))
        source, mode = padded.name, "VALID"
    kind = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    operators.append(Operator(kind, [source, *(c.name for c in constants[:2])], [op.name], {**options, "padding": mode}))
    return operators, constants


def _lower_requantize(op, tensors):
    activation = op.attrs.get("activation", "NONE")
    kind = "QUANTIZE" if activation == "NONE" else _RELU_OPS.get(activation)
    if kind is None:
        raise LoweringError(f"op '{op.name}': requantize with activation {activation} has no TFLite op")
    return [Operator(kind, list(op.inputs), [op.name])], []


def _lower_pool(op, tensors):
    x = tensors[op.inputs[0]]
    mode = _padding_mode(op, x, op.attrs["filter"])
    if mode is None:
        raise LoweringError(f"op '{op.name}': {op.kind} padding {op.attrs['padding']} is neither SAME nor VALID")
    kind = "AVERAGE_POOL_2D" if op.kind == "average_pool" else "MAX_POOL_2D"
    return [Operator(kind, list(op.inputs), [op.name], {**_fused(op), "filter": op.attrs["filter"],
                                                         "strides": op.attrs["strides"], "padding": mode})], []


def _lower_slice(op, tensors):
    x = tensors[op.inputs[0]]
    begin, end = [0] * len(x.shape), list(x.shape)
    begin[op.attrs["axis"]], end[op.attrs["axis"]] = op.attrs["begin"], op.attrs["end"]
    return [Operator("STRIDED_SLICE", list(op.inputs), [op.name], {"begin": begin, "end": end})], []


def _lower_constant(op, tensors):
    t = op.output
    return [], [Tensor(t.name, tuple(t.shape), "int8", np.array([t.scale], np.float32),
                       np.array([t.zero_point], np.int64), data=op.consts["value"])]


def _simple(kind: str, **options_from_attrs):
    def lower(op, tensors):
        options = {key: op.attrs[attr] for key, attr in options_from_attrs.items()}
        return [Operator(kind, list(op.inputs), [op.name], options)], []
    return lower


_LOWERINGS = {
    "fully_connected": _lower_fully_connected,
    "conv_2d": _lower_conv,
    "depthwise_conv_2d": _lower_conv,
    **{kind: (lambda tfl: lambda op, tensors: ([Operator(tfl, list(op.inputs), [op.name], _fused(op))], []))(tfl)
       for kind, tfl in _SIMPLE.items()},
    "requantize": _lower_requantize,
    "leaky_relu": _simple("LEAKY_RELU", alpha="alpha"),
    "concat": _simple("CONCATENATION", axis="axis"),
    "slice": _lower_slice,
    "reshape": _simple("RESHAPE"),
    "transpose": _simple("TRANSPOSE", perm="perm"),
    "pad": _simple("PAD", paddings="paddings"),
    "average_pool": _lower_pool,
    "max_pool": _lower_pool,
    "constant": _lower_constant,
    "softmax": _simple("SOFTMAX", beta="beta"),
    "mean": _simple("MEAN", axis="axes", keep_dims="keep_dims"),
}


def _lower_op(op: IntOp, tensors: dict[str, TensorInfo]) -> tuple[list[Operator], list[Tensor]]:
    lowering = _LOWERINGS.get(op.kind)
    if lowering is None:
        raise LoweringError(f"op '{op.name}': kind '{op.kind}' has no TFLite lowering")
    return lowering(op, tensors)


def lower_to_tflite(graph: IntegerGraph, description: str = "tvmse") -> bytes:
    """The integer graph as TFLite flatbuffer bytes (inputs and outputs in graph order)."""
    table = graph.tensors()
    constants = {op.name for op in graph.ops if op.kind == "constant"}
    tensors = [_activation(t) for name, t in table.items() if name not in constants]
    operators = []
    for op in graph.ops:
        lowered, extra = _lower_op(op, table)
        operators += lowered
        tensors += extra
    return write_model(tensors, operators, [t.name for t in graph.inputs], list(graph.outputs), description)


def check_against_host(graph: IntegerGraph, model: bytes, reference, n_trials: int = 8, seed: int = 0) -> None:
    """Run random int8 inputs through the TFLite interpreter and the host reference; demand equality.

    Raises AssertionError naming the first output that differs (with the count of differing elements).
    """
    rng = np.random.default_rng(seed)
    for trial in range(n_trials):
        inputs = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs}
        expected = reference.run(inputs)
        got = run_tflite(model, inputs)
        for name in graph.outputs:
            if not np.array_equal(expected[name], got[name]):
                n = int(np.sum(expected[name] != got[name]))
                raise AssertionError(f"TFLite output '{name}' differs from the host reference in {n} elements "
                                     f"(trial {trial}, seed {seed})")
