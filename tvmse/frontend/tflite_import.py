"""int8 TFLite (as the TensorFlow Lite converter, LiteRT and Arm's model zoo write it) → integer form.

TVM 0.27's TFLite frontend rejects quantized STRIDED_SLICE and LSTM and turns every int8 op into
dequantize → float → quantize, so this importer reads the flatbuffer itself (``tflite`` package)
and emits integer ops through ``tvmse.ir.build``, whose parameters follow TFLite's kernels: the
result computes what the TFLite interpreter computes on the source file, bit for bit.

One converter per builtin op (``CONVERTERS``). Each reads the op's tensors and options and emits
one or more integer ops named after the op's output tensors. Where TFLite's int8 kernel keeps its
input's quantization but the file gives the output another (a reshape, a concatenation), the
converter adds a ``requantize`` op, and every one added is listed (``TfliteImport.inserted``).

Everything the importer cannot take is collected and reported at once: one line per op type with
the output tensors of its ops, and what to do.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import tflite

from tvmse.errors import ModelFileError, QuantizationError, UnsupportedModelError
from tvmse.frontend.state import Port, StatePairs, pair_states
from tvmse.ir import IntegerGraph, IntOp, TensorInfo, build

_OP_NAMES = {code: name for name, code in vars(tflite.BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {code: name for name, code in vars(tflite.TensorType).items() if not name.startswith("_")}
_ACTIVATIONS = {code: name for name, code in vars(tflite.ActivationFunctionType).items() if not name.startswith("_")}


@dataclass
class _Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int
    data: np.ndarray | None


@dataclass
class _Op:
    kind: str
    inputs: list[int]      # tensor indices, -1 for an omitted optional input
    outputs: list[int]
    options: object | None

    def option(self, cls):
        """The builtin options table read as ``cls`` (e.g. tflite.Conv2DOptions)."""
        table = cls()
        table.Init(self.options.Bytes, self.options.Pos)
        return table


class ImportProblem(Exception):
    """One op the importer cannot convert; collected, then reported together."""


def _read_tensor(model, subgraph, index: int) -> _Tensor:
    t = subgraph.Tensors(index)
    q = t.Quantization()
    scale = q.ScaleAsNumpy() if q is not None and not q.ScaleIsNone() else np.zeros(0)
    zp = q.ZeroPointAsNumpy() if q is not None and not q.ZeroPointIsNone() else np.zeros(0)
    buffer = model.Buffers(t.Buffer())
    dtype = _TYPE_NAMES.get(t.Type(), str(t.Type())).lower()
    data = None
    if buffer is not None and buffer.DataLength() > 0:
        np_dtype = {"int8": np.int8, "int32": np.int32, "int64": np.int64, "float32": np.float32,
                    "uint8": np.uint8, "int16": np.int16}.get(dtype)
        if np_dtype is not None:
            data = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=np_dtype).reshape(
                tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ())
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    return _Tensor(index, t.Name().decode(errors="replace"), shape, dtype, np.asarray(scale, np.float32).reshape(-1),
                   np.asarray(zp, np.int64).reshape(-1), int(q.QuantizedDimension()) if q is not None else 0, data)


def read_model(path: Path) -> tuple[object, object]:
    data = path.read_bytes()
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        subgraph = model.Subgraphs(0)
        subgraph.TensorsLength()
    except Exception as e:   # noqa: BLE001 - any flatbuffer decoding failure means a damaged file
        raise ModelFileError(f"{path} is not a readable TFLite file ({type(e).__name__}: {e}); "
                             "pass an int8 .tflite as the TensorFlow Lite converter writes it") from None
    if model.SubgraphsLength() != 1:
        raise UnsupportedModelError(f"{path}: has {model.SubgraphsLength()} subgraphs; tvmse compiles models with "
                                    "one (no control flow); convert a single streaming step")
    return model, subgraph


class TfliteImport:
    """One pass over the subgraph's operators, in file order (TFLite stores them in execution order)."""

    def __init__(self, path: Path, state: dict[str, str] | None = None):
        self.path = path
        self.model, self.subgraph = read_model(path)
        self.raw = [_read_tensor(self.model, self.subgraph, i) for i in range(self.subgraph.TensorsLength())]
        self.names = self._unique_names()
        self.tensors: dict[str, TensorInfo] = {}
        self.ops: list[IntOp] = []
        self.inserted: list[str] = []
        self.explicit_state = state
        self._fresh_count = 0

    # ---- names and tensors ----------------------------------------------------------------------
    def _unique_names(self) -> list[str]:
        seen: dict[str, int] = defaultdict(int)
        names = []
        for t in self.raw:
            base = t.name or f"tensor{t.index}"
            names.append(base if seen[base] == 0 else f"{base}#{seen[base]}")
            seen[base] += 1
        return names

    def fresh(self, base: str) -> str:
        self._fresh_count += 1
        return f"{base}/tvmse{self._fresh_count}"

    def info(self, index: int) -> TensorInfo:
        """The integer-form tensor of a TFLite tensor, emitting a constant op for int8 constant data."""
        name = self.names[index]
        if name in self.tensors:
            return self.tensors[name]
        t = self.raw[index]
        if t.data is not None and t.dtype == "int8":
            scale, zp = self.quant(t)
            return self.emit(build.constant(name, t.data, scale, zp))
        raise ImportProblem(f"tensor '{t.name}' is read before any op produces it")

    def quant(self, t: _Tensor) -> tuple[float, int]:
        if t.dtype != "int8":
            raise ImportProblem(f"tensor '{t.name}' is {t.dtype}; tvmse's activations are int8")
        if t.scale.size != 1 or t.zero_point.size != 1:
            raise ImportProblem(f"tensor '{t.name}' is quantized per axis ({t.scale.size} scales); "
                                "activations need one scale and zero point")
        return float(t.scale[0]), int(t.zero_point[0])

    def out(self, op: _Op, k: int = 0) -> tuple[str, float, int, tuple[int, ...]]:
        t = self.raw[op.outputs[k]]
        scale, zp = self.quant(t)
        return self.names[t.index], scale, zp, t.shape

    def const(self, index: int, what: str) -> np.ndarray:
        t = self.raw[index]
        if t.data is None:
            raise ImportProblem(f"{what} '{t.name}' must be a constant")
        return t.data

    def emit(self, op: IntOp) -> TensorInfo:
        self.ops.append(op)
        self.tensors[op.name] = op.output
        return op.output

    def emit_as(self, op: IntOp, name: str, scale: float, zp: int) -> TensorInfo:
        """Emit ``op`` (built under a fresh name if needed) so that tensor ``name`` ends up quantized
        (scale, zp): a ``requantize`` follows when the op's own result quantization differs."""
        if _same_quant(op.output, scale, zp):
            op.output.name = name
            return self.emit(op)
        self.emit(op)
        self.inserted.append(f"'{name}': requantize after {op.kind} ({op.output.scale:.6g}, {op.output.zero_point}) "
                             f"→ ({scale:.6g}, {zp})")
        return self.emit(build.requantize(name, op.output, scale, zp))

    def matching(self, x: TensorInfo, scale: float, zp: int, why: str) -> TensorInfo:
        """``x`` in the quantization (scale, zp), through an inserted requantize if it has another."""
        if _same_quant(x, scale, zp):
            return x
        name = self.fresh(x.name)
        self.inserted.append(f"'{x.name}': requantize ({x.scale:.6g}, {x.zero_point}) → ({scale:.6g}, {zp}) {why}")
        return self.emit(build.requantize(name, x, scale, zp))

    # ---- driver ------------------------------------------------------------------------------
    def operators(self) -> list[_Op]:
        ops = []
        for i in range(self.subgraph.OperatorsLength()):
            op = self.subgraph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            kind = _OP_NAMES.get(builtin, f"builtin {builtin}")
            if builtin == tflite.BuiltinOperator.CUSTOM:
                kind = f"CUSTOM ({code.CustomCode().decode(errors='replace')})"
            ops.append(_Op(kind, [int(v) for v in op.InputsAsNumpy()], [int(v) for v in op.OutputsAsNumpy()],
                           op.BuiltinOptions()))
        return ops

    def _ports(self, indices, signature_method: str) -> list[Port]:
        keys: dict[int, list[str]] = defaultdict(list)
        for s in range(self.model.SignatureDefsLength()):
            sig = self.model.SignatureDefs(s)
            for j in range(getattr(sig, f"{signature_method}Length")()):
                entry = getattr(sig, signature_method)(j)
                keys[int(entry.TensorIndex())].append(entry.Name().decode(errors="replace"))
        return [Port(self.names[i], self.raw[i].shape, tuple(keys[i]),
                     (float(self.raw[i].scale[0]), int(self.raw[i].zero_point[0])) if self.raw[i].scale.size == 1
                     else None) for i in indices]

    def run(self) -> tuple[IntegerGraph, StatePairs]:
        operators = self.operators()
        unsupported: dict[str, list[str]] = defaultdict(list)
        for op in operators:
            if op.kind not in CONVERTERS:
                unsupported[op.kind].append(self.raw[op.outputs[0]].name if op.outputs else "?")
        problems = [f"unsupported op {kind} (outputs {', '.join(names[:6])}{' …' if len(names) > 6 else ''})"
                    + (f": {REFUSED[kind]}" if kind in REFUSED else "") for kind, names in sorted(unsupported.items())]
        if problems:
            problems.append(f"supported TFLite ops: {', '.join(sorted(CONVERTERS))}; see the README "
                            "('Bring your own model') for how to re-export without the others")
            raise UnsupportedModelError(f"{self.path}: cannot compile this model:\n  " + "\n  ".join(problems))

        input_indices = [int(i) for i in self.subgraph.InputsAsNumpy()]
        output_indices = [int(i) for i in self.subgraph.OutputsAsNumpy()]
        inputs = []
        for index in input_indices:
            t = self.raw[index]
            if t.dtype != "int8":
                raise QuantizationError(
                    f"{self.path}: input '{t.name}' is {t.dtype}; tvmse compiles full-int8 models. Convert with "
                    "the TFLite converter's int8 settings (representative dataset, inference_input_type="
                    "tf.int8, inference_output_type=tf.int8), or quantize a float ONNX model with "
                    "`python -m tvmse.quantize`")
            if any(d <= 0 for d in t.shape) or not t.shape:
                raise UnsupportedModelError(f"{self.path}: input '{t.name}' has shape {list(t.shape)}; "
                                            "export with static shapes (batch 1, one frame per step)")
            info = TensorInfo(self.names[index], t.shape, *self.quant(t))
            inputs.append(info)
            self.tensors[info.name] = info

        problems = []
        for op in operators:
            try:
                CONVERTERS[op.kind](self, op)
            except ImportProblem as e:
                problems.append(f"{op.kind} (output '{self.raw[op.outputs[0]].name}'): {e}")
                break   # later ops read this one's result: report the root cause only
        for index in output_indices:
            t = self.raw[index]
            if t.dtype != "int8":
                problems.append(f"output '{t.name}' is {t.dtype}; the model must end in int8 outputs "
                                "(inference_output_type=tf.int8)")
        if problems:
            raise UnsupportedModelError(f"{self.path}: cannot import this model:\n  " + "\n  ".join(problems))

        states = pair_states(self._ports(input_indices, "Inputs"), self._ports(output_indices, "Outputs"),
                             self.explicit_state)
        graph = IntegerGraph(inputs=inputs, outputs=[self.names[i] for i in output_indices], ops=self.ops,
                             state_pairs=dict(states.pairs))
        return graph, states


def _same_quant(t: TensorInfo, scale: float, zp: int) -> bool:
    return float(np.float32(t.scale)) == float(np.float32(scale)) and t.zero_point == zp


def _activation(options) -> str:
    code = options.FusedActivationFunction()
    name = _ACTIVATIONS.get(code, str(code))
    if name not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise ImportProblem(f"fused activation {name} is not an int8 TFLite activation")
    return name


def _weights(imp: TfliteImport, index: int, channel_axis: int) -> tuple[np.ndarray, np.ndarray]:
    t = imp.raw[index]
    if t.data is None or t.dtype != "int8":
        raise ImportProblem(f"weights '{t.name}' must be constant int8 (got {t.dtype}"
                            f"{'' if t.data is not None else ', not constant'}); use full-int8 conversion")
    if np.any(t.zero_point != 0):
        raise ImportProblem(f"weights '{t.name}' have a non-zero zero point; int8 weights are symmetric")
    if t.scale.size > 1 and t.quantized_dimension != channel_axis:
        raise ImportProblem(f"weights '{t.name}' are quantized along axis {t.quantized_dimension}, "
                            f"not the output channel axis {channel_axis}")
    return t.data, t.scale


def _bias(imp: TfliteImport, op: _Op, position: int) -> np.ndarray | None:
    if len(op.inputs) <= position or op.inputs[position] < 0:
        return None
    t = imp.raw[op.inputs[position]]
    if t.data is None or t.dtype != "int32":
        raise ImportProblem(f"bias '{t.name}' must be a constant int32 tensor")
    return t.data


# ---- converters ---------------------------------------------------------------------------------
def _fully_connected(imp: TfliteImport, op: _Op) -> None:
    options = op.option(tflite.FullyConnectedOptions)
    x = imp.info(op.inputs[0])
    weight, scales = _weights(imp, op.inputs[1], 0)
    name, scale, zp, shape = imp.out(op)
    imp.emit(build.fully_connected(name, x, weight, _bias(imp, op, 2), scales, scale, zp, _activation(options),
                                   out_shape=shape))


def _padding(options, x: TensorInfo, filter_hw, strides, dilation) -> list[int]:
    if options.Padding() == tflite.Padding.SAME:
        return build.same_padding(x.shape[1:3], filter_hw, strides, dilation)
    return [0, 0, 0, 0]


def _conv_2d(imp: TfliteImport, op: _Op) -> None:
    o = op.option(tflite.Conv2DOptions)
    x = imp.info(op.inputs[0])
    weight, scales = _weights(imp, op.inputs[1], 0)
    strides, dilation = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    if weight.shape[3] != x.shape[3]:
        raise ImportProblem("grouped convolution (filter depth ≠ input channels) is not supported")
    name, scale, zp, _ = imp.out(op)
    imp.emit(build.conv_2d(name, x, weight, _bias(imp, op, 2), scales, scale, zp, strides, dilation,
                           _padding(o, x, weight.shape[1:3], strides, dilation), _activation(o)))


def _depthwise_conv_2d(imp: TfliteImport, op: _Op) -> None:
    o = op.option(tflite.DepthwiseConv2DOptions)
    x = imp.info(op.inputs[0])
    weight, scales = _weights(imp, op.inputs[1], 3)
    strides, dilation = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    name, scale, zp, _ = imp.out(op)
    imp.emit(build.depthwise_conv_2d(name, x, weight, _bias(imp, op, 2), scales, scale, zp, strides, dilation,
                                     _padding(o, x, weight.shape[1:3], strides, dilation), _activation(o)))


def _binary(kind: str, options_cls):
    def convert(imp: TfliteImport, op: _Op) -> None:
        a, b = imp.info(op.inputs[0]), imp.info(op.inputs[1])
        activation = _activation(op.option(options_cls)) if op.options is not None else "NONE"
        name, scale, zp, _ = imp.out(op)
        imp.emit(getattr(build, kind)(name, a, b, scale, zp, activation))
    return convert


def _table_op(kind: str):
    def convert(imp: TfliteImport, op: _Op) -> None:
        x = imp.info(op.inputs[0])
        name, scale, zp, _ = imp.out(op)
        result = getattr(build, kind)(name, x)
        if not _same_quant(result.output, scale, zp):
            raise ImportProblem(f"int8 {kind.upper()} output must be quantized ({result.output.scale}, "
                                f"{result.output.zero_point}), the file has ({scale}, {zp})")
        imp.emit(result)
    return convert


def _quantize(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    name, scale, zp, _ = imp.out(op)
    imp.emit(build.requantize(name, x, scale, zp))


def _rsqrt(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    name, scale, zp, _ = imp.out(op)
    imp.emit(build.rsqrt(name, x, scale, zp))


def _relu(activation: str):
    def convert(imp: TfliteImport, op: _Op) -> None:
        x = imp.info(op.inputs[0])
        name, scale, zp, _ = imp.out(op)
        imp.emit(build.requantize(name, x, scale, zp, activation))
    return convert


def _leaky_relu(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    name, scale, zp, _ = imp.out(op)
    imp.emit(build.leaky_relu(name, x, op.option(tflite.LeakyReluOptions).Alpha(), scale, zp))


def _concatenation(imp: TfliteImport, op: _Op) -> None:
    o = op.option(tflite.ConcatenationOptions)
    if _activation(o) != "NONE":
        raise ImportProblem("a fused activation on CONCATENATION is not supported")
    name, scale, zp, shape = imp.out(op)
    parts = [imp.matching(imp.info(i), scale, zp, "before a concatenation") for i in op.inputs]
    imp.emit(build.concat(name, parts, axis=o.Axis() % len(shape)))


def _slices(imp: TfliteImport, op: _Op, x: TensorInfo, axis: int, sizes: list[int]) -> None:
    """One slice op per output along ``axis`` (SPLIT, SPLIT_V)."""
    begin = 0
    for k, size in enumerate(sizes):
        name, scale, zp, _ = imp.out(op, k)
        imp.emit_as(build.slice_(imp.fresh(name), x, begin, begin + size, axis=axis), name, scale, zp)
        begin += size


def _split(imp: TfliteImport, op: _Op) -> None:
    axis_index, x_index = op.inputs
    x = imp.info(x_index)
    axis = int(imp.const(axis_index, "SPLIT axis").reshape(-1)[0]) % len(x.shape)
    n = len(op.outputs)
    _slices(imp, op, x, axis, [x.shape[axis] // n] * n)


def _split_v(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    sizes = [int(s) for s in imp.const(op.inputs[1], "SPLIT_V sizes").reshape(-1)]
    axis = int(imp.const(op.inputs[2], "SPLIT_V axis").reshape(-1)[0]) % len(x.shape)
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    _slices(imp, op, x, axis, sizes)


def _unpack(imp: TfliteImport, op: _Op) -> None:
    o = op.option(tflite.UnpackOptions)
    x = imp.info(op.inputs[0])
    axis = o.Axis() % len(x.shape)
    for k in range(len(op.outputs)):
        name, scale, zp, shape = imp.out(op, k)
        part = imp.emit(build.slice_(imp.fresh(name), x, k, k + 1, axis=axis))
        imp.emit_as(build.reshape(imp.fresh(name), part, shape), name, scale, zp)


def _pack(imp: TfliteImport, op: _Op) -> None:
    o = op.option(tflite.PackOptions)
    name, scale, zp, shape = imp.out(op)
    axis = o.Axis() % len(shape)
    parts = []
    for i in op.inputs:
        x = imp.matching(imp.info(i), scale, zp, "before a pack")
        expanded = list(x.shape)
        expanded.insert(axis, 1)
        parts.append(imp.emit(build.reshape(imp.fresh(name), x, expanded)))
    imp.emit(build.concat(name, parts, axis=axis))


def _strided_slice(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    o = op.option(tflite.StridedSliceOptions)
    begin = [int(v) for v in imp.const(op.inputs[1], "STRIDED_SLICE begin").reshape(-1)]
    end = [int(v) for v in imp.const(op.inputs[2], "STRIDED_SLICE end").reshape(-1)]
    strides = [int(v) for v in imp.const(op.inputs[3], "STRIDED_SLICE strides").reshape(-1)]
    if o.EllipsisMask() or o.NewAxisMask() or (hasattr(o, "Offset") and o.Offset()):
        raise ImportProblem("ellipsis, new-axis and offset masks are not supported")
    if any(s != 1 for s in strides):
        raise ImportProblem(f"strides {strides} other than 1 are not supported")
    bounds = []
    for axis, size in enumerate(x.shape):
        b = 0 if (o.BeginMask() >> axis) & 1 else begin[axis]
        e = size if (o.EndMask() >> axis) & 1 else end[axis]
        b, e = (b + size if b < 0 else b), (e + size if e < 0 else e)
        if (o.ShrinkAxisMask() >> axis) & 1:
            e = b + 1
        bounds.append((max(0, min(b, size)), max(0, min(e, size))))
    _slice_chain(imp, op, x, bounds)


def _slice(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    begin = [int(v) for v in imp.const(op.inputs[1], "SLICE begin").reshape(-1)]
    size = [int(v) for v in imp.const(op.inputs[2], "SLICE size").reshape(-1)]
    _slice_chain(imp, op, x, [(b, d if s == -1 else b + s) for b, s, d in zip(begin, size, x.shape)])


def _slice_chain(imp: TfliteImport, op: _Op, x: TensorInfo, bounds: list[tuple[int, int]]) -> None:
    """Single-axis slices for every axis that is cut, then a reshape if the output's shape differs."""
    name, scale, zp, shape = imp.out(op)
    cut = [axis for axis, (b, e) in enumerate(bounds) if (b, e) != (0, x.shape[axis])]
    current = x
    for axis in cut[:-1]:
        current = imp.emit(build.slice_(imp.fresh(name), current, *bounds[axis], axis=axis))
    if cut:
        last = build.slice_(imp.fresh(name), current, *bounds[cut[-1]], axis=cut[-1])
        if tuple(last.output.shape) == tuple(shape):
            imp.emit_as(last, name, scale, zp)
            return
        current = imp.emit(last)
    imp.emit_as(build.reshape(imp.fresh(name), current, shape), name, scale, zp)


def _reshape(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    name, scale, zp, shape = imp.out(op)
    imp.emit_as(build.reshape(imp.fresh(name), x, shape), name, scale, zp)


def _transpose(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    perm = [int(p) for p in imp.const(op.inputs[1], "TRANSPOSE permutation").reshape(-1)]
    name, scale, zp, _ = imp.out(op)
    imp.emit_as(build.transpose(imp.fresh(name), x, perm), name, scale, zp)


def _pad(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    paddings = imp.const(op.inputs[1], "PAD paddings").reshape(-1, 2).tolist()
    name, scale, zp, _ = imp.out(op)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = imp.const(op.inputs[2], "PADV2 value").reshape(-1)
        if int(value[0]) != x.zero_point:
            raise ImportProblem("padding with a value other than the zero point is not supported")
    imp.emit_as(build.pad(imp.fresh(name), x, paddings), name, scale, zp)


def _pool(kind: str):
    def convert(imp: TfliteImport, op: _Op) -> None:
        o = op.option(tflite.Pool2DOptions)
        x = imp.info(op.inputs[0])
        name, scale, zp, _ = imp.out(op)
        filter_hw, strides = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
        x = imp.matching(x, scale, zp, f"before {kind} (int8 pooling keeps the quantization)")
        padding = _padding(o, x, filter_hw, strides, (1, 1))
        imp.emit(getattr(build, kind)(name, x, filter_hw, strides, padding, _activation(o)))
    return convert


def _softmax(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    name, scale, zp, _ = imp.out(op)
    result = build.softmax(name, x, op.option(tflite.SoftmaxOptions).Beta())
    if not _same_quant(result.output, scale, zp):
        raise ImportProblem(f"int8 SOFTMAX output must be quantized ({result.output.scale}, "
                            f"{result.output.zero_point}), the file has ({scale}, {zp})")
    imp.emit(result)


def _mean(imp: TfliteImport, op: _Op) -> None:
    x = imp.info(op.inputs[0])
    axes = [int(a) for a in imp.const(op.inputs[1], "MEAN axes").reshape(-1)]
    keep_dims = bool(op.option(tflite.ReducerOptions).KeepDims()) if op.options is not None else False
    name, scale, zp, shape = imp.out(op)
    result = build.mean(name, x, axes, keep_dims, scale, zp)
    if tuple(result.output.shape) != tuple(shape):
        raise ImportProblem(f"MEAN output shape {list(shape)} is not the input {list(x.shape)} reduced over "
                            f"axes {axes} (keep_dims={keep_dims})")
    imp.emit(result)


CONVERTERS: dict[str, Callable[[TfliteImport, _Op], None]] = {
    "FULLY_CONNECTED": _fully_connected,
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "ADD": _binary("add", tflite.AddOptions),
    "SUB": _binary("sub", tflite.SubOptions),
    "MUL": _binary("mul", tflite.MulOptions),
    "LOGISTIC": _table_op("logistic"),
    "TANH": _table_op("tanh"),
    "QUANTIZE": _quantize,
    "RSQRT": _rsqrt,
    "RELU": _relu("RELU"),
    "RELU6": _relu("RELU6"),
    "RELU_N1_TO_1": _relu("RELU_N1_TO_1"),
    "LEAKY_RELU": _leaky_relu,
    "CONCATENATION": _concatenation,
    "SPLIT": _split,
    "SPLIT_V": _split_v,
    "UNPACK": _unpack,
    "PACK": _pack,
    "STRIDED_SLICE": _strided_slice,
    "SLICE": _slice,
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
    "EXPAND_DIMS": _reshape,
    "TRANSPOSE": _transpose,
    "PAD": _pad,
    "PADV2": _pad,
    "AVERAGE_POOL_2D": _pool("average_pool"),
    "MAX_POOL_2D": _pool("max_pool"),
    "SOFTMAX": _softmax,
    "MEAN": _mean,
}


# Ops refused on purpose, with why and what to do instead (the generic message lists the supported ops).
REFUSED: dict[str, str] = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM":
        "TFLite's fused int8 LSTM computes its gates and cell in int16 and keeps h and c in variable tensors "
        "inside the op, so it is not a streaming step with explicit state; re-export the step with the state "
        "as model inputs and outputs (Keras: LSTM(..., return_state=True, unroll=True) called with "
        "initial_state=[h, c] from keras.Input), which the converter unrolls into FULLY_CONNECTED, LOGISTIC, "
        "TANH, MUL and ADD ops tvmse compiles",
}


def load_tflite(path: str | Path, state: dict[str, str] | None = None) -> tuple[IntegerGraph, StatePairs, list[str]]:
    """Import an int8 ``.tflite``: the integer graph, its state pairs and the requantizations inserted."""
    importer = TfliteImport(Path(path), state)
    graph, states = importer.run()
    return graph, states, importer.inserted
