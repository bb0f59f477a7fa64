"""Writes int8 TFLite flatbuffers for Vela, and runs them in the TFLite interpreter.

Vela consumes a ``.tflite`` file, so the Ethos-U path ends by serialising the
integer graph.  Writing the flatbuffer ourselves (with the ``tflite`` schema
package's builder functions) keeps TensorFlow out of the dependencies and
lets every tensor carry exactly the scales and zero points our passes chose.

The model written is schema version 3 with one subgraph; buffer 0 is the
empty sentinel and every constant gets its own 16-byte-aligned buffer.
Operator codes are deduplicated by (op, version) and carry both the
deprecated 8-bit code and the 32-bit ``builtin_code``.  Parameters TFLite
takes as tensors (the SPLIT axis, SLICE/STRIDED_SLICE bounds, the RESHAPE
shape) are given as plain ``Operator.options`` and become int32 constant
tensors here.

Everything is validated before anything is written: an unknown tensor name,
a weight shape that does not fit its input, quantisation that TFLite would
refuse (or abort on) raises ``ValueError`` naming the op and tensor.

``run_tflite`` uses TFLite's reference kernels (``OpResolverType.BUILTIN_REF``),
the only resolver that is bit-exact with ``tvmse.quant_math`` (its
FULLY_CONNECTED requantises in double: ``requantize="float"``).  The default
resolver hands int8 ops to XNNPACK and the optimised builtin kernels round
differently; see the ``tvmse.quant_math`` docstring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import flatbuffers
import numpy as np
import tflite

from tvmse import quant_math

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
_BUFFER_ALIGNMENT = 16
_DTYPES = {"int8": (np.int8, tflite.TensorType.INT8), "int32": (np.int32, tflite.TensorType.INT32)}


@dataclass
class Tensor:
    """A quantised tensor; ``data`` holds the values of constants (weights, biases)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8" | "int32"
    scale: np.ndarray  # float32, length 1 (per-tensor) or N (per-channel)
    zero_point: np.ndarray  # int64, same length
    quantized_dimension: int = 0
    data: np.ndarray | None = None


@dataclass
class Operator:
    """One TFLite op; ``inputs``/``outputs`` are tensor names, "" an omitted optional input.

    ``options`` by kind (every fused activation must be "NONE"):
    FULLY_CONNECTED inputs [x, weights, bias or ""]; ADD, MUL
    ``fused_activation_function``; CONCATENATION ``axis``; SPLIT ``axis``,
    ``num_splits`` (default: one part per output); SLICE ``begin``, ``size``
    (-1: to the end); STRIDED_SLICE ``begin``, ``end``, ``strides`` (default 1);
    RESHAPE ``new_shape`` (default: the output's shape); LOGISTIC, TANH none;
    SOFTMAX ``beta``; MEAN ``axis`` (list), ``keep_dims``.
    """

    kind: str
    inputs: list[str]
    outputs: list[str]
    options: dict = field(default_factory=dict)


def bias_scale(x_scale, w_scales) -> np.ndarray:
    """The int32 bias scales TFLite expects: float32 ``x_scale * w_scale[c]``."""
    return (np.float32(x_scale) * np.asarray(w_scales, dtype=np.float32)).astype(np.float32)


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _OpSpec:
    """Per op kind: TFLite code and version, accepted input counts (empty: any),
    ``check`` raising ValueError on inconsistency, ``lower`` to TFLite form."""

    code: int
    version: int
    num_inputs: tuple[int, ...]
    check: Callable[[Operator, dict[str, Tensor], str], None]
    lower: Callable


def _fail(where: str, message: str) -> None:
    raise ValueError(f"{where}: {message}")


def _per_tensor(t: Tensor, where: str) -> tuple[np.float32, int]:
    if t.scale.size != 1 or t.zero_point.size != 1:
        _fail(where, f"tensor '{t.name}' must be quantised per tensor")
    return np.float32(t.scale[0]), int(t.zero_point[0])


def _same_quant(a: Tensor, b: Tensor, where: str) -> None:
    if _per_tensor(a, where) != _per_tensor(b, where):
        _fail(where, f"'{a.name}' and '{b.name}' must share scale and zero point "
                     f"(int8 data movement does not requantise)")


def _expect_shape(t: Tensor, shape: Sequence[int], where: str) -> None:
    if tuple(t.shape) != tuple(int(d) for d in shape):
        _fail(where, f"output '{t.name}' has shape {tuple(t.shape)}, expected {tuple(shape)}")


_ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _activation_code(op: Operator) -> int:
    return _ACTIVATIONS[op.options.get("fused_activation_function", "NONE")]


def _no_activation(op: Operator, where: str) -> None:
    """Checks the fused activation is one TFLite's int8 kernels implement (the name keeps old callers)."""
    activation = op.options.get("fused_activation_function", "NONE")
    if activation not in _ACTIVATIONS:
        _fail(where, f"fused activation {activation!r} is not supported (one of {sorted(_ACTIVATIONS)})")


def _check_fully_connected(op: Operator, t: dict[str, Tensor], where: str) -> None:
    _no_activation(op, where)
    x, w, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    if w.data is None or w.dtype != "int8" or len(w.shape) != 2:
        _fail(where, f"weights '{w.name}' must be a constant int8 [N, K] tensor")
    units, depth = w.shape
    size = int(np.prod(x.shape))
    if x.shape[-1] != depth or size % depth:
        _fail(where, f"weights '{w.name}' {tuple(w.shape)} do not fit input '{x.name}' {tuple(x.shape)}")
    _expect_shape(y, (*x.shape[:-1], units) if op.options.get("keep_num_dims") else (size // depth, units), where)
    if np.any(w.zero_point != 0) or w.quantized_dimension != 0 or w.scale.size not in (1, units):
        _fail(where, f"weights '{w.name}' need zero point 0 and 1 or {units} scales on dimension 0")
    x_scale, _ = _per_tensor(x, where)
    y_scale, _ = _per_tensor(y, where)
    quant_math.fully_connected_multipliers(x_scale, w.scale, y_scale)
    if len(op.inputs) == 3 and op.inputs[2]:
        _check_bias(t[op.inputs[2]], x_scale, w, y_scale, where)


def _check_bias(b: Tensor, x_scale, w: Tensor, y_scale, where: str) -> None:
    units = w.shape[0]
    if b.data is None or b.dtype != "int32" or tuple(b.shape) != (units,):
        _fail(where, f"bias '{b.name}' must be a constant int32 [{units}] tensor")
    expected = bias_scale(x_scale, w.scale)
    if b.scale.size != expected.size or np.any(b.zero_point != 0) or b.quantized_dimension != 0:
        _fail(where, f"bias '{b.name}' needs {expected.size} scale(s), zero point 0, dimension 0")
    if not np.allclose(b.scale, expected, rtol=1e-6, atol=0):
        _fail(where, f"bias '{b.name}' scale {b.scale} is not input_scale * weight_scale {expected}")
    if w.scale.size == 1:
        quant_math.check_fully_connected_bias_scale(x_scale, w.scale[0], b.scale[0], y_scale)


def _check_elementwise(op: Operator, t: dict[str, Tensor], where: str) -> None:
    _no_activation(op, where)
    a, b, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    try:
        shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        _fail(where, f"shapes of '{a.name}' {tuple(a.shape)} and '{b.name}' {tuple(b.shape)} do not broadcast")
    _expect_shape(y, shape, where)
    (sa, za), (sb, zb), (sy, _) = (_per_tensor(v, where) for v in (a, b, y))
    if op.kind in ("ADD", "SUB"):
        quant_math.add_params(sa, za, sb, zb, sy)
    else:
        quant_math.mul_multiplier(sa, sb, sy)


def _check_lookup(op: Operator, t: dict[str, Tensor], where: str) -> None:
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    _expect_shape(y, x.shape, where)
    _per_tensor(x, where)
    wanted = {
        "LOGISTIC": (quant_math.LOGISTIC_OUTPUT_SCALE, quant_math.LOGISTIC_OUTPUT_ZERO_POINT),
        "TANH": (quant_math.TANH_OUTPUT_SCALE, quant_math.TANH_OUTPUT_ZERO_POINT),
    }[op.kind]
    if _per_tensor(y, where) != (np.float32(wanted[0]), wanted[1]):
        _fail(where, f"output '{y.name}' must be quantised with scale {wanted[0]}, zero point {wanted[1]}")


def _axis(value, rank: int, where: str) -> int:
    axis = int(value)
    if not -rank <= axis < rank:
        _fail(where, f"axis {value} is out of range for rank {rank}")
    return axis % rank


def _check_concatenation(op: Operator, t: dict[str, Tensor], where: str) -> None:
    _no_activation(op, where)
    parts, y = [t[n] for n in op.inputs], t[op.outputs[0]]
    axis = _axis(op.options.get("axis", 0), len(y.shape), where)
    shape = list(parts[0].shape)
    for part in parts:
        _same_quant(part, y, where)
        if len(part.shape) != len(shape) or any(
            d != s for i, (d, s) in enumerate(zip(part.shape, shape)) if i != axis
        ):
            _fail(where, f"input '{part.name}' {tuple(part.shape)} does not match the others off axis {axis}")
    shape[axis] = sum(p.shape[axis] for p in parts)
    _expect_shape(y, shape, where)


def _check_split(op: Operator, t: dict[str, Tensor], where: str) -> None:
    x = t[op.inputs[0]]
    axis = _axis(op.options.get("axis", 0), len(x.shape), where)
    num_splits = int(op.options.get("num_splits", len(op.outputs)))
    if num_splits != len(op.outputs) or x.shape[axis] % num_splits:
        _fail(where, f"cannot split axis {axis} of '{x.name}' {tuple(x.shape)} into "
                     f"{num_splits} parts for {len(op.outputs)} outputs")
    shape = list(x.shape)
    shape[axis] //= num_splits
    for name in op.outputs:
        _expect_shape(t[name], shape, where)
        _same_quant(x, t[name], where)


def _slice_bounds(op: Operator, x: Tensor, where: str) -> tuple[list[int], list[int], list[int]]:
    """(begin, end, strides) of a SLICE or STRIDED_SLICE, checked against the input."""
    rank = len(x.shape)
    begin = [int(v) for v in op.options.get("begin", ())]
    if op.kind == "SLICE":
        size = [int(v) for v in op.options.get("size", ())]
        end = [d if n == -1 else b + n for b, n, d in zip(begin, size, x.shape)] if len(size) == rank else []
        strides = [1] * rank
    else:
        end = [int(v) for v in op.options.get("end", ())]
        strides = [int(v) for v in op.options.get("strides", [1] * rank)]
    if not len(begin) == len(end) == len(strides) == rank:
        _fail(where, f"bounds must have one entry per dimension of '{x.name}' (rank {rank})")
    for b, e, s, d in zip(begin, end, strides, x.shape):
        if s <= 0 or not 0 <= b < e <= d:
            _fail(where, f"bounds [{b}:{e}:{s}] are outside an axis of length {d} of '{x.name}'")
    return begin, end, strides


def _check_slice(op: Operator, t: dict[str, Tensor], where: str) -> None:
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    begin, end, strides = _slice_bounds(op, x, where)
    _expect_shape(y, [-(-(e - b) // s) for b, e, s in zip(begin, end, strides)], where)
    _same_quant(x, y, where)


def _check_reshape(op: Operator, t: dict[str, Tensor], where: str) -> None:
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    new_shape = tuple(int(d) for d in op.options.get("new_shape", y.shape))
    _expect_shape(y, new_shape, where)
    if int(np.prod(x.shape)) != int(np.prod(y.shape)):
        _fail(where, f"cannot reshape '{x.name}' {tuple(x.shape)} to {tuple(y.shape)}")
    _same_quant(x, y, where)


def _normalized(t: Tensor) -> Tensor:
    """A copy with the shape as ints and scale/zero point as flat float32/int64 arrays."""
    return replace(t, shape=tuple(int(d) for d in t.shape),
                   scale=np.asarray(t.scale, dtype=np.float32).reshape(-1),
                   zero_point=np.asarray(t.zero_point, dtype=np.int64).reshape(-1))


def _check_tensor(t: Tensor) -> None:
    where = f"tensor '{t.name}'"
    if t.dtype not in _DTYPES:
        _fail(where, f"dtype {t.dtype!r} is not one of {sorted(_DTYPES)}")
    if t.dtype == "int32" and t.data is None:
        _fail(where, "int32 tensors must be constants (biases); activations are int8")
    if any(d <= 0 for d in t.shape):
        _fail(where, f"shape {t.shape} has a non-positive dimension")
    if t.scale.size == 0 or t.scale.size != t.zero_point.size:
        _fail(where, "scale and zero_point must be non-empty and of equal length")
    if not np.all(np.isfinite(t.scale) & (t.scale > 0)):
        _fail(where, f"scales must be positive and finite, got {t.scale}")
    if t.scale.size > 1 and not (
        0 <= t.quantized_dimension < len(t.shape) and t.shape[t.quantized_dimension] == t.scale.size
    ):
        _fail(where, f"{t.scale.size} scales do not match dimension {t.quantized_dimension} of {tuple(t.shape)}")
    if t.data is not None:
        data = np.asarray(t.data)
        if data.shape != tuple(t.shape) or data.dtype != _DTYPES[t.dtype][0]:
            _fail(where, f"data is {data.dtype}{list(data.shape)}, expected {t.dtype}{list(t.shape)}")


def _check_operator(index: int, op: Operator, tensors: dict[str, Tensor]) -> None:
    where = f"{op.kind} op #{index} (outputs {op.outputs})"
    spec = _SPECS.get(op.kind)
    if spec is None:
        _fail(where, f"unsupported op kind; expected one of {sorted(_SPECS)}")
    if spec.num_inputs and len(op.inputs) not in spec.num_inputs:
        _fail(where, f"takes {' or '.join(map(str, spec.num_inputs))} inputs, got {len(op.inputs)}")
    if not op.inputs or not op.outputs:
        _fail(where, "needs at least one input and one output")
    optional = {2} if op.kind == "FULLY_CONNECTED" else set()
    for position, name in enumerate(op.inputs):
        if name == "" and position in optional:
            continue
        if name not in tensors:
            _fail(where, f"input {position} names unknown tensor {name!r}")
    for name in op.outputs:
        if name not in tensors:
            _fail(where, f"output names unknown tensor {name!r}")
        if tensors[name].data is not None or tensors[name].dtype != "int8":
            _fail(where, f"output '{name}' must be an int8 activation (no data)")
    spec.check(op, tensors, where)


def _check_dataflow(tensors: dict[str, Tensor], operators: Sequence[Operator],
                    inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Operators must come in execution order, each activation defined once."""
    for name in list(inputs) + list(outputs):
        if name not in tensors:
            _fail("model", f"graph input/output names unknown tensor {name!r}")
        if tensors[name].data is not None:
            _fail("model", f"graph input/output '{name}' is a constant")
    available = set(inputs)
    for index, op in enumerate(operators):
        for name in op.inputs:
            if name and tensors[name].data is None and name not in available:
                _fail(f"{op.kind} op #{index}", f"input '{name}' is not produced before it is used")
        for name in op.outputs:
            if name in available:
                _fail(f"{op.kind} op #{index}", f"tensor '{name}' is defined twice")
            available.add(name)
    missing = [name for name in outputs if name not in available]
    if missing:
        _fail("model", f"graph outputs {missing} are produced by no operator")


def _validate(tensors: Sequence[Tensor], operators: Sequence[Operator],
              inputs: Sequence[str], outputs: Sequence[str]) -> dict[str, Tensor]:
    by_name: dict[str, Tensor] = {}
    for t in map(_normalized, tensors):
        if t.name in by_name:
            _fail(f"tensor '{t.name}'", "name is used twice")
        _check_tensor(t)
        by_name[t.name] = t
    for index, op in enumerate(operators):
        _check_operator(index, op, by_name)
    _check_dataflow(by_name, operators, inputs, outputs)
    return by_name


# --------------------------------------------------------------------------
# Lowering to TFLite conventions
# --------------------------------------------------------------------------


@dataclass
class _Lowered:
    """An operator in TFLite form: parameter tensors added, options as a builder."""

    spec: _OpSpec
    inputs: list[str]
    outputs: list[str]
    options_type: int
    build_options: Callable[[flatbuffers.Builder], int] | None


def _int32_constant(name: str, values: Sequence[int], scalar: bool = False) -> Tensor:
    data = np.asarray(values, dtype=np.int32).reshape(() if scalar else (-1,))
    return Tensor(name, data.shape, "int32", np.zeros(0, np.float32), np.zeros(0, np.int64), data=data)


def _table(start, *adders) -> Callable[[flatbuffers.Builder], int]:
    """Options table builder from ``tflite`` module functions (``XStart``, adders, ``XEnd``)."""
    end = getattr(tflite, start.__name__[: -len("Start")] + "End")

    def build(builder: flatbuffers.Builder) -> int:
        start(builder)
        for add, value in adders:
            add(builder, value)
        return end(builder)

    return build


_NONE = tflite.ActivationFunctionType.NONE
_BO = tflite.BuiltinOptions
# (TFLite inputs, added constant tensors, builtin options type, options table builder)
_Lowering = tuple[list[str], list[Tensor], int, Callable[[flatbuffers.Builder], int] | None]


def _lower_fully_connected(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    build = _table(tflite.FullyConnectedOptionsStart,
                   (tflite.FullyConnectedOptionsAddFusedActivationFunction, _activation_code(op)),
                   (tflite.FullyConnectedOptionsAddWeightsFormat, tflite.FullyConnectedOptionsWeightsFormat.DEFAULT),
                   (tflite.FullyConnectedOptionsAddKeepNumDims, bool(op.options.get("keep_num_dims", False))))
    return list(op.inputs) + [""] * (3 - len(op.inputs)), [], _BO.FullyConnectedOptions, build


def _lower_elementwise(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    if op.kind == "ADD":
        build = _table(tflite.AddOptionsStart, (tflite.AddOptionsAddFusedActivationFunction, _activation_code(op)))
        return list(op.inputs), [], _BO.AddOptions, build
    if op.kind == "SUB":
        build = _table(tflite.SubOptionsStart, (tflite.SubOptionsAddFusedActivationFunction, _activation_code(op)))
        return list(op.inputs), [], _BO.SubOptions, build
    build = _table(tflite.MulOptionsStart, (tflite.MulOptionsAddFusedActivationFunction, _activation_code(op)))
    return list(op.inputs), [], _BO.MulOptions, build


def _lower_lookup(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    return list(op.inputs), [], _BO.NONE, None


def _lower_concatenation(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    axis = _axis(op.options.get("axis", 0), len(tensors[op.outputs[0]].shape), op.kind)
    build = _table(tflite.ConcatenationOptionsStart, (tflite.ConcatenationOptionsAddAxis, axis),
                   (tflite.ConcatenationOptionsAddFusedActivationFunction, _NONE))
    return list(op.inputs), [], _BO.ConcatenationOptions, build


def _lower_split(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    """TFLite's SPLIT takes its axis as a leading int32 scalar tensor."""
    axis = _axis(op.options.get("axis", 0), len(tensors[op.inputs[0]].shape), op.kind)
    axis_tensor = _int32_constant(fresh(op.outputs[0] + "/axis"), [axis], scalar=True)
    build = _table(tflite.SplitOptionsStart, (tflite.SplitOptionsAddNumSplits, len(op.outputs)))
    return [axis_tensor.name, *op.inputs], [axis_tensor], _BO.SplitOptions, build


def _lower_slice(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    """SLICE takes begin/size, STRIDED_SLICE begin/end/strides, as int32 tensors."""
    begin, end, strides = _slice_bounds(op, tensors[op.inputs[0]], op.kind)
    if op.kind == "SLICE":
        bounds = {"begin": begin, "size": [e - b for b, e in zip(begin, end)]}
        options_type, build = _BO.SliceOptions, _table(tflite.SliceOptionsStart)
    else:
        bounds = {"begin": begin, "end": end, "strides": strides}
        options_type, build = _BO.StridedSliceOptions, _table(tflite.StridedSliceOptionsStart)
    extra = [_int32_constant(fresh(f"{op.outputs[0]}/{key}"), values) for key, values in bounds.items()]
    return [*op.inputs, *(t.name for t in extra)], extra, options_type, build


def _lower_reshape(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    shape = _int32_constant(fresh(op.outputs[0] + "/shape"), tensors[op.outputs[0]].shape)
    return [*op.inputs, shape.name], [shape], _BO.ReshapeOptions, None


def _check_conv(op: Operator, t: dict[str, Tensor], where: str) -> None:
    _no_activation(op, where)
    x, w, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    if w.data is None or w.dtype != "int8" or len(w.shape) != 4 or len(x.shape) != 4:
        _fail(where, f"weights '{w.name}' must be a constant int8 4-D tensor and the input NHWC")
    channel_axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
    if np.any(w.zero_point != 0) or w.scale.size not in (1, w.shape[channel_axis]):
        _fail(where, f"weights '{w.name}' need zero point 0 and 1 or {w.shape[channel_axis]} scales")
    if op.options.get("padding") not in ("SAME", "VALID"):
        _fail(where, "padding must be SAME or VALID")


def _check_passthrough(op: Operator, t: dict[str, Tensor], where: str) -> None:
    """Data movement and pooling: the output keeps the input's quantization."""
    _no_activation(op, where)
    _same_quant(t[op.inputs[0]], t[op.outputs[0]], where)


def _check_rescale(op: Operator, t: dict[str, Tensor], where: str) -> None:
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    _expect_shape(y, x.shape, where)
    _per_tensor(x, where), _per_tensor(y, where)


def _check_softmax(op: Operator, t: dict[str, Tensor], where: str) -> None:
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    _expect_shape(y, x.shape, where)
    _per_tensor(x, where)
    if _per_tensor(y, where) != (np.float32(1.0 / 256.0), -128):
        _fail(where, f"output '{y.name}' must be quantised with scale 1/256, zero point -128 (int8 SOFTMAX)")
    if not float(op.options.get("beta", 1.0)) > 0:
        _fail(where, f"beta must be positive, got {op.options.get('beta')}")


def _check_mean(op: Operator, t: dict[str, Tensor], where: str) -> None:
    x, y = t[op.inputs[0]], t[op.outputs[0]]
    axes = sorted({_axis(a, len(x.shape), where) for a in op.options.get("axis", ())})
    if not axes:
        _fail(where, "needs at least one axis to reduce")
    keep = bool(op.options.get("keep_dims", False))
    shape = [1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes]
    _expect_shape(y, shape, where)
    _per_tensor(x, where), _per_tensor(y, where)


def _padding_code(op: Operator) -> int:
    return tflite.Padding.SAME if op.options.get("padding") == "SAME" else tflite.Padding.VALID


def _lower_conv(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    sh, sw = op.options.get("strides", (1, 1))
    dh, dw = op.options.get("dilation", (1, 1))
    if op.kind == "CONV_2D":
        build = _table(tflite.Conv2DOptionsStart, (tflite.Conv2DOptionsAddPadding, _padding_code(op)),
                       (tflite.Conv2DOptionsAddStrideH, sh), (tflite.Conv2DOptionsAddStrideW, sw),
                       (tflite.Conv2DOptionsAddDilationHFactor, dh), (tflite.Conv2DOptionsAddDilationWFactor, dw),
                       (tflite.Conv2DOptionsAddFusedActivationFunction, _activation_code(op)))
        return list(op.inputs), [], _BO.Conv2DOptions, build
    build = _table(tflite.DepthwiseConv2DOptionsStart, (tflite.DepthwiseConv2DOptionsAddPadding, _padding_code(op)),
                   (tflite.DepthwiseConv2DOptionsAddStrideH, sh), (tflite.DepthwiseConv2DOptionsAddStrideW, sw),
                   (tflite.DepthwiseConv2DOptionsAddDilationHFactor, dh),
                   (tflite.DepthwiseConv2DOptionsAddDilationWFactor, dw),
                   (tflite.DepthwiseConv2DOptionsAddDepthMultiplier, int(op.options.get("depth_multiplier", 1))),
                   (tflite.DepthwiseConv2DOptionsAddFusedActivationFunction, _activation_code(op)))
    return list(op.inputs), [], _BO.DepthwiseConv2DOptions, build


def _lower_pool(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    (fh, fw), (sh, sw) = op.options["filter"], op.options.get("strides", (1, 1))
    build = _table(tflite.Pool2DOptionsStart, (tflite.Pool2DOptionsAddPadding, _padding_code(op)),
                   (tflite.Pool2DOptionsAddStrideH, sh), (tflite.Pool2DOptionsAddStrideW, sw),
                   (tflite.Pool2DOptionsAddFilterHeight, fh), (tflite.Pool2DOptionsAddFilterWidth, fw),
                   (tflite.Pool2DOptionsAddFusedActivationFunction, _activation_code(op)))
    return list(op.inputs), [], _BO.Pool2DOptions, build


def _lower_leaky_relu(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    build = _table(tflite.LeakyReluOptionsStart, (tflite.LeakyReluOptionsAddAlpha, float(op.options["alpha"])))
    return list(op.inputs), [], _BO.LeakyReluOptions, build


def _lower_transpose(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    perm = _int32_constant(fresh(op.outputs[0] + "/perm"), op.options["perm"])
    return [*op.inputs, perm.name], [perm], _BO.TransposeOptions, _table(tflite.TransposeOptionsStart)


def _lower_pad(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    paddings = np.asarray(op.options["paddings"], np.int32)
    tensor = Tensor(fresh(op.outputs[0] + "/paddings"), paddings.shape, "int32", np.zeros(0, np.float32),
                    np.zeros(0, np.int64), data=paddings)
    return [*op.inputs, tensor.name], [tensor], _BO.PadOptions, _table(tflite.PadOptionsStart)


def _lower_softmax(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    build = _table(tflite.SoftmaxOptionsStart, (tflite.SoftmaxOptionsAddBeta, float(op.options.get("beta", 1.0))))
    return list(op.inputs), [], _BO.SoftmaxOptions, build


def _lower_mean(op: Operator, tensors: dict[str, Tensor], fresh) -> _Lowering:
    axis = _int32_constant(fresh(op.outputs[0] + "/axis"), op.options["axis"])
    build = _table(tflite.ReducerOptionsStart, (tflite.ReducerOptionsAddKeepDims, bool(op.options.get("keep_dims"))))
    return [*op.inputs, axis.name], [axis], _BO.ReducerOptions, build


def _lower(op: Operator, tensors: dict[str, Tensor], fresh: Callable[[str], str]) -> tuple[_Lowered, list[Tensor]]:
    """Turns option-borne parameters into the constant tensors and options table TFLite expects."""
    spec = _SPECS[op.kind]
    inputs, extra, options_type, build = spec.lower(op, tensors, fresh)
    return _Lowered(spec, inputs, list(op.outputs), options_type, build), extra


_B = tflite.BuiltinOperator
_SPECS: dict[str, _OpSpec] = {
    "FULLY_CONNECTED": _OpSpec(_B.FULLY_CONNECTED, 4, (2, 3), _check_fully_connected, _lower_fully_connected),
    "ADD": _OpSpec(_B.ADD, 2, (2,), _check_elementwise, _lower_elementwise),
    "MUL": _OpSpec(_B.MUL, 2, (2,), _check_elementwise, _lower_elementwise),
    "LOGISTIC": _OpSpec(_B.LOGISTIC, 2, (1,), _check_lookup, _lower_lookup),
    "TANH": _OpSpec(_B.TANH, 2, (1,), _check_lookup, _lower_lookup),
    "CONCATENATION": _OpSpec(_B.CONCATENATION, 2, (), _check_concatenation, _lower_concatenation),
    "SPLIT": _OpSpec(_B.SPLIT, 2, (1,), _check_split, _lower_split),
    "SLICE": _OpSpec(_B.SLICE, 2, (1,), _check_slice, _lower_slice),
    "STRIDED_SLICE": _OpSpec(_B.STRIDED_SLICE, 2, (1,), _check_slice, _lower_slice),
    "RESHAPE": _OpSpec(_B.RESHAPE, 1, (1,), _check_reshape, _lower_reshape),
    "SUB": _OpSpec(_B.SUB, 2, (2,), _check_elementwise, _lower_elementwise),
    "CONV_2D": _OpSpec(_B.CONV_2D, 3, (3,), _check_conv, _lower_conv),
    "DEPTHWISE_CONV_2D": _OpSpec(_B.DEPTHWISE_CONV_2D, 3, (3,), _check_conv, _lower_conv),
    "QUANTIZE": _OpSpec(_B.QUANTIZE, 2, (1,), _check_rescale, _lower_lookup),
    "RSQRT": _OpSpec(_B.RSQRT, 2, (1,), _check_rescale, _lower_lookup),
    "RELU": _OpSpec(_B.RELU, 2, (1,), _check_rescale, _lower_lookup),
    "RELU6": _OpSpec(_B.RELU6, 2, (1,), _check_rescale, _lower_lookup),
    "RELU_N1_TO_1": _OpSpec(_B.RELU_N1_TO_1, 1, (1,), _check_rescale, _lower_lookup),
    "LEAKY_RELU": _OpSpec(_B.LEAKY_RELU, 2, (1,), _check_rescale, _lower_leaky_relu),
    "TRANSPOSE": _OpSpec(_B.TRANSPOSE, 2, (1,), _check_passthrough, _lower_transpose),
    "PAD": _OpSpec(_B.PAD, 2, (1,), _check_passthrough, _lower_pad),
    "AVERAGE_POOL_2D": _OpSpec(_B.AVERAGE_POOL_2D, 2, (1,), _check_passthrough, _lower_pool),
    "MAX_POOL_2D": _OpSpec(_B.MAX_POOL_2D, 2, (1,), _check_passthrough, _lower_pool),
    "SOFTMAX": _OpSpec(_B.SOFTMAX, 2, (1,), _check_softmax, _lower_softmax),
    "MEAN": _OpSpec(_B.MEAN, 2, (1,), _check_mean, _lower_mean),
}


# --------------------------------------------------------------------------
# Serialisation
# --------------------------------------------------------------------------


def _aligned_bytes(builder: flatbuffers.Builder, payload: bytes) -> int:
    builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
    builder.head -= len(payload)
    builder.Bytes[builder.head: builder.head + len(payload)] = payload
    return builder.EndVector()


def _vector(builder: flatbuffers.Builder, values, dtype) -> int:
    return builder.CreateNumpyVector(np.asarray(values, dtype=dtype).reshape(-1))


def _table_vector(builder: flatbuffers.Builder, start_vector, offsets: Sequence[int]) -> int:
    start_vector(builder, len(offsets))
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _write_quantization(builder: flatbuffers.Builder, t: Tensor) -> int | None:
    if t.scale.size == 0:
        return None
    scale = _vector(builder, t.scale, np.float32)
    zero_point = _vector(builder, t.zero_point, np.int64)
    tflite.QuantizationParametersStart(builder)
    tflite.QuantizationParametersAddScale(builder, scale)
    tflite.QuantizationParametersAddZeroPoint(builder, zero_point)
    tflite.QuantizationParametersAddQuantizedDimension(builder, t.quantized_dimension)
    return tflite.QuantizationParametersEnd(builder)


def _write_tensor(builder: flatbuffers.Builder, t: Tensor, buffer: int) -> int:
    name = builder.CreateString(t.name)
    shape = _vector(builder, t.shape, np.int32)
    quantization = _write_quantization(builder, t)
    tflite.TensorStart(builder)
    tflite.TensorAddShape(builder, shape)
    tflite.TensorAddType(builder, _DTYPES[t.dtype][1])
    tflite.TensorAddBuffer(builder, buffer)
    tflite.TensorAddName(builder, name)
    if quantization is not None:
        tflite.TensorAddQuantization(builder, quantization)
    return tflite.TensorEnd(builder)


def _write_buffer(builder: flatbuffers.Builder, data: np.ndarray | None) -> int:
    payload = None if data is None else _aligned_bytes(builder, data.astype(data.dtype.newbyteorder("<")).tobytes())
    tflite.BufferStart(builder)
    if payload is not None:
        tflite.BufferAddData(builder, payload)
    return tflite.BufferEnd(builder)


def _write_operator(builder: flatbuffers.Builder, op: _Lowered, opcode: int, index: dict[str, int]) -> int:
    inputs = _vector(builder, [index[n] if n else -1 for n in op.inputs], np.int32)
    outputs = _vector(builder, [index[n] for n in op.outputs], np.int32)
    options = op.build_options(builder) if op.build_options else None
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, opcode)
    tflite.OperatorAddInputs(builder, inputs)
    tflite.OperatorAddOutputs(builder, outputs)
    tflite.OperatorAddBuiltinOptionsType(builder, op.options_type)
    if options is not None:
        tflite.OperatorAddBuiltinOptions(builder, options)
    return tflite.OperatorEnd(builder)


def _write_operator_code(builder: flatbuffers.Builder, code: int, version: int) -> int:
    tflite.OperatorCodeStart(builder)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(code, 127))
    tflite.OperatorCodeAddBuiltinCode(builder, code)
    tflite.OperatorCodeAddVersion(builder, version)
    return tflite.OperatorCodeEnd(builder)


def _write_subgraph(builder, tensors: list[Tensor], ops: list[_Lowered], opcodes: dict[tuple[int, int], int],
                    inputs: Sequence[str], outputs: Sequence[str]) -> int:
    index = {t.name: i for i, t in enumerate(tensors)}
    buffers, next_buffer = [], 1
    for t in tensors:
        buffers.append(next_buffer if t.data is not None else 0)
        next_buffer += t.data is not None
    tensor_offsets = [_write_tensor(builder, t, b) for t, b in zip(tensors, buffers)]
    op_offsets = [_write_operator(builder, op, opcodes[(op.spec.code, op.spec.version)], index) for op in ops]
    tensor_vector = _table_vector(builder, tflite.SubGraphStartTensorsVector, tensor_offsets)
    op_vector = _table_vector(builder, tflite.SubGraphStartOperatorsVector, op_offsets)
    input_vector = _vector(builder, [index[n] for n in inputs], np.int32)
    output_vector = _vector(builder, [index[n] for n in outputs], np.int32)
    name = builder.CreateString("main")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensor_vector)
    tflite.SubGraphAddInputs(builder, input_vector)
    tflite.SubGraphAddOutputs(builder, output_vector)
    tflite.SubGraphAddOperators(builder, op_vector)
    tflite.SubGraphAddName(builder, name)
    return tflite.SubGraphEnd(builder)


def _serialize(tensors: list[Tensor], ops: list[_Lowered], inputs: Sequence[str],
               outputs: Sequence[str], description: str) -> bytes:
    builder = flatbuffers.Builder(1024)
    opcodes: dict[tuple[int, int], int] = {}
    for op in ops:
        opcodes.setdefault((op.spec.code, op.spec.version), len(opcodes))
    code_offsets = [_write_operator_code(builder, code, version) for code, version in opcodes]
    constants = [t.data for t in tensors if t.data is not None]
    buffer_offsets = [_write_buffer(builder, data) for data in [None, *constants]]
    subgraph = _write_subgraph(builder, tensors, ops, opcodes, inputs, outputs)
    codes = _table_vector(builder, tflite.ModelStartOperatorCodesVector, code_offsets)
    subgraphs = _table_vector(builder, tflite.ModelStartSubgraphsVector, [subgraph])
    buffers = _table_vector(builder, tflite.ModelStartBuffersVector, buffer_offsets)
    text = builder.CreateString(description)
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(builder, codes)
    tflite.ModelAddSubgraphs(builder, subgraphs)
    tflite.ModelAddDescription(builder, text)
    tflite.ModelAddBuffers(builder, buffers)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def write_model(tensors: list[Tensor], operators: list[Operator], inputs: list[str], outputs: list[str],
                description: str = "tvmse") -> bytes:
    """Serialises an int8 graph as a TFLite flatbuffer.

    Args:
        tensors: every tensor the operators and graph inputs/outputs name.
        operators: in execution order.
        inputs, outputs: graph input and output tensor names.
        description: the model's description string.

    Returns:
        The ``.tflite`` file contents.

    Raises:
        ValueError: naming the op and tensor, if the graph is inconsistent or
            uses quantisation TFLite would refuse.
    """
    by_name = _validate(tensors, operators, inputs, outputs)
    names = set(by_name)

    def fresh(base: str) -> str:
        name, suffix = base, 1
        while name in names:
            name, suffix = f"{base}_{suffix}", suffix + 1
        names.add(name)
        return name

    lowered, all_tensors = [], list(by_name.values())
    for op in operators:
        low, extra = _lower(op, by_name, fresh)
        lowered.append(low)
        all_tensors.extend(extra)
    model = _serialize(all_tensors, lowered, inputs, outputs, description)
    logger.debug("wrote %d ops, %d tensors, %d bytes", len(lowered), len(all_tensors), len(model))
    return model


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


def run_tflite(model_bytes: bytes, inputs: dict[str, np.ndarray],
               resolver: str = "BUILTIN_REF") -> dict[str, np.ndarray]:
    """Runs a model in the TFLite interpreter; inputs and outputs keyed by tensor name.

    Args:
        model_bytes: a ``.tflite`` flatbuffer.
        inputs: one array per graph input, with its exact dtype and shape.
        resolver: an ``OpResolverType`` name.  The default, TFLite's reference
            kernels, is the one that matches ``tvmse.quant_math`` bit for bit.

    Returns:
        Copies of every graph output.
    """
    # Imported here: writing a model must not need the interpreter.
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model_bytes, num_threads=1,
                              experimental_op_resolver_type=OpResolverType[resolver])
    interpreter.allocate_tensors()
    details = {d["name"]: d for d in interpreter.get_input_details()}
    if set(details) != set(inputs):
        raise ValueError(f"model inputs are {sorted(details)}, got {sorted(inputs)}")
    for name, detail in details.items():
        value = np.asarray(inputs[name])
        shape = [int(d) for d in detail["shape"]]
        if value.dtype != detail["dtype"] or list(value.shape) != shape:
            raise ValueError(f"input '{name}' must be {np.dtype(detail['dtype'])}{shape}, "
                             f"got {value.dtype}{list(value.shape)}")
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()}
