"""Canonicalize a QDQ Relax module (as TVM's ONNX importer produces it) into the integer form.

Before (fake-quant: float ops between dequantize and quantize)::

    a = R.dequantize(x, s_x, z_x)            w = R.dequantize(W_int8 [K, N], s_w [N], 0, axis=1)
    m = R.matmul(a, w);  y = R.add(m, R.dequantize(b_int32, s_x·s_w))
    q = R.quantize(y, s_y, z_y)

After (integer form, see tvmse.ir.graph)::

    q = cls.fc(x, W.T [N, K], b, multiplier, shift)     # TFLite int8 FULLY_CONNECTED semantics

Matches, for every ``R.quantize`` of a float value: matmul (+ bias add) → fully_connected;
add / multiply of two dequantized activations → add / mul; sigmoid / tanh → logistic / tanh;
concat → concat; split item or strided_slice → slice. A quantize of a plain dequantize with the
same quantization is an identity.

Preconditions: int8 activations with per-tensor quantization; int8 weights with zero point 0
(per-tensor or per-output-channel); bias int32 on the grid x_scale·w_scale (a float bias, or one
on another grid, is rounded onto it); LOGISTIC output quantized 1/256, −128 and TANH 1/128, 0;
concat inputs sharing one quantization.

Numerics: the integer form computes what TFLite computes. The QDQ graph's float arithmetic can
differ from it where a value lies within float32 rounding of a .5 boundary (one LSB at that op).

Everything that does not match is collected and reported in one error naming the ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from tvmse.errors import UnsupportedModelError
from tvmse.ir import IntegerGraph, IntOp, TensorInfo, build


@dataclass
class _Dequantized:
    """A dequantize of an int8 activation tensor."""
    tensor: str


@dataclass
class _DequantizedConst:
    """A dequantize of a constant (weights, bias): integer data, scales and zero points."""
    data: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


def _const_value(expr) -> np.ndarray | None:
    """numpy data of a Relax constant (tensor or scalar), else None."""
    if isinstance(expr, tvm.ir.expr.GenericConst):
        return expr.value.numpy()
    return None


def _op_name(call) -> str:
    return call.op.name if isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op) else ""


class QdqToInteger:
    """One walk over main's dataflow bindings, emitting IntOps as quantize points are met."""

    def __init__(self, mod: tvm.IRModule, tensor_names: dict | None = None):
        self.main = mod["main"]
        self.values: dict = {}        # relax.Var → _Dequantized | _DequantizedConst | str (int8 tensor) | expr
        self.tensors: dict[str, TensorInfo] = {}
        self.inputs: list[TensorInfo] = []
        self.ops: list[IntOp] = []
        self.problems: list[str] = []
        self.names = dict(tensor_names or {})
        self.pending_inputs = {p.name: tuple(int(d) for d in p.ty.shape) for p in self.main.params}

    # ---- driver -------------------------------------------------------------------------------
    def run(self) -> IntegerGraph:
        self.values.update({p: p.name for p in self.main.params})
        for block in self.main.body.blocks:
            for binding in block.bindings:
                self._visit(binding.var, binding.value)
        outputs = self._outputs()
        if self.problems:
            raise UnsupportedModelError("cannot canonicalize the quantized graph:\n  " + "\n  ".join(self.problems))
        order = [p.name for p in self.main.params]
        inputs = sorted(self.inputs, key=lambda t: order.index(t.name))
        return IntegerGraph(inputs=inputs, outputs=outputs, ops=self.ops)

    def _visit(self, var, value) -> None:
        op = _op_name(value)
        if op == "relax.dequantize":
            self.values[var] = self._dequantize(value)
        elif op == "relax.quantize":
            name = self.names.get(var) or f"t{len(self.ops)}"
            self.values[var] = self._quantize(value, name)
        elif isinstance(value, relax.Var) and value in self.values:
            self.values[var] = self.values[value]
        else:
            self.values[var] = value

    def _outputs(self) -> list[str]:
        ret = self.main.body.body
        expr = self.values.get(ret, ret)
        fields = expr.fields if isinstance(expr, relax.Tuple) else [ret]
        names = []
        for f in fields:
            v = self.values.get(f)
            if not isinstance(v, str):
                self.problems.append("a model output is not an int8 tensor produced by QuantizeLinear")
                continue
            names.append(v)
        return names

    # ---- dequantize / quantize ----------------------------------------------------------------
    def _dequantize(self, call):
        src, scale, zp = call.args[0], _const_value(call.args[1]), _const_value(call.args[2])
        if scale is None or zp is None:
            self.problems.append("a DequantizeLinear has non-constant scale or zero point")
            return call
        data = _const_value(src)
        if data is not None:
            return _DequantizedConst(data, np.atleast_1d(scale).astype(np.float32),
                                     np.atleast_1d(zp).astype(np.int64), int(call.attrs.axis))
        tensor = self.values.get(src)
        if not isinstance(tensor, str):
            self.problems.append("a DequantizeLinear reads a value that is not an int8 tensor")
            return call
        if scale.size != 1 or zp.size != 1:
            self.problems.append(f"activation '{tensor}' is quantized per axis; tvmse needs per-tensor activations")
            return call
        self._note_input(tensor, float(scale), int(zp))
        return _Dequantized(tensor)

    def _note_input(self, tensor: str, scale: float, zp: int) -> None:
        """Graph inputs take their quantization from the first DequantizeLinear reading them."""
        if tensor in self.pending_inputs:
            info = TensorInfo(tensor, self.pending_inputs.pop(tensor), scale, zp)
            self.inputs.append(info)
            self.tensors[tensor] = info
        elif tensor in self.tensors and not self._same_quant(self.tensors[tensor], scale, zp):
            known = self.tensors[tensor]
            self.problems.append(f"tensor '{tensor}' is dequantized with ({scale}, {zp}) but was quantized "
                                 f"with ({known.scale}, {known.zero_point})")

    @staticmethod
    def _same_quant(t: TensorInfo, scale: float, zp: int) -> bool:
        return bool(np.isclose(t.scale, scale, rtol=1e-6)) and t.zero_point == zp

    def _quantize(self, call, name: str):
        scale, zp = _const_value(call.args[1]), _const_value(call.args[2])
        if call.ty.dtype != "int8" or scale is None or scale.size != 1:
            self.problems.append(f"QuantizeLinear '{name}': tvmse needs per-tensor int8 activations "
                                 f"(got {call.ty.dtype}, scale size {None if scale is None else scale.size})")
            return None
        scale, zp = float(scale), int(zp)
        source = self.values.get(call.args[0], call.args[0])
        op = self._match(source, name, scale, zp)
        if op is None:
            return None
        if isinstance(op, str):          # identity: the value already is this int8 tensor
            return op
        self.ops.append(op)
        self.tensors[op.name] = op.output
        return op.name

    # ---- matching -----------------------------------------------------------------------------
    def _act(self, expr) -> TensorInfo | None:
        v = self.values.get(expr, expr)
        return self.tensors.get(v.tensor) if isinstance(v, _Dequantized) else None

    def _match(self, source, name: str, scale: float, zp: int):
        kind = _op_name(source)
        if isinstance(source, _Dequantized):
            if self._same_quant(self.tensors[source.tensor], scale, zp):
                return source.tensor
            return self._fail(name, "requantize (QuantizeLinear of a DequantizeLinear with another scale)")
        if kind == "relax.matmul":
            return self._fully_connected(source, None, name, scale, zp)
        if kind == "relax.add":
            return self._add(source, name, scale, zp)
        if kind == "relax.multiply":
            a, b = (self._act(x) for x in source.args)
            if a is None or b is None:
                return self._fail(name, "Mul of a non-activation operand")
            return build.mul(name, a, b, scale, zp)
        if kind in ("relax.sigmoid", "relax.tanh"):
            return self._activation(source, kind, name, scale, zp)
        if kind == "relax.concat":
            parts = [self._act(x) for x in self.values.get(source.args[0], source.args[0]).fields]
            if any(p is None for p in parts):
                return self._fail(name, "Concat of a non-activation operand")
            if not self._same_quant(parts[0], scale, zp):
                return self._fail(name, "Concat whose output quantization differs from its inputs'")
            return build.concat(name, parts, axis=int(source.attrs.axis))
        if isinstance(source, relax.TupleGetItem) or kind == "relax.strided_slice":
            return self._slice(source, name, scale, zp)
        return self._fail(name, f"{kind or type(source).__name__} before QuantizeLinear")

    def _fail(self, name: str, what: str):
        self.problems.append(f"at '{name}': unsupported pattern: {what}")
        return None

    def _add(self, call, name, scale, zp):
        lhs, rhs = (self.values.get(x, x) for x in call.args)
        for mm, bias in ((lhs, rhs), (rhs, lhs)):
            if _op_name(mm) == "relax.matmul" and isinstance(bias, (_DequantizedConst, tvm.ir.expr.GenericConst)):
                return self._fully_connected(mm, bias, name, scale, zp)
        a, b = self._act(call.args[0]), self._act(call.args[1])
        if a is None or b is None:
            return self._fail(name, "Add of operands that are neither two activations nor MatMul + bias")
        return build.add(name, a, b, scale, zp)

    def _fully_connected(self, matmul, bias, name, scale, zp):
        x = self._act(matmul.args[0])
        w = self.values.get(matmul.args[1], matmul.args[1])
        transposed = False
        if _op_name(w) == "relax.permute_dims":
            w, transposed = self.values.get(w.args[0], w.args[0]), True
        if x is None or not isinstance(w, _DequantizedConst):
            return self._fail(name, "MatMul whose operands are not an int8 activation and int8 constant weights")
        if w.data.dtype != np.int8 or np.any(w.zero_point != 0):
            return self._fail(name, "weights must be int8 with zero point 0 (symmetric)")
        weight = w.data if transposed else w.data.T          # → [N, K]
        n = weight.shape[0]
        if w.scale.size == 1:
            w_scales = np.full(n, w.scale[0], np.float32)
        elif w.scale.size == n and w.axis == (0 if transposed else 1):
            w_scales = w.scale
        else:
            return self._fail(name, f"weight scales of size {w.scale.size} on axis {w.axis} are not per output channel")
        acc_scale = np.float32(x.scale) * w_scales.astype(np.float32)
        return build.fully_connected(name, x, weight, self._bias(bias, acc_scale, n), w_scales, scale, zp)

    @staticmethod
    def _bias(bias, acc_scale: np.ndarray, n: int) -> np.ndarray:
        """int32 bias on the accumulator grid; a bias on another grid (or float) is rounded onto it."""
        if bias is None:
            return np.zeros(n, np.int32)
        if isinstance(bias, _DequantizedConst):
            if bias.data.dtype == np.int32 and np.all(bias.zero_point == 0) and np.allclose(
                    np.broadcast_to(bias.scale, (n,)), acc_scale, rtol=1e-6):
                return bias.data.astype(np.int32)
            values = (bias.data.astype(np.float64) - bias.zero_point) * bias.scale.astype(np.float64)
        else:
            values = _const_value(bias).astype(np.float64)
        return np.clip(np.round(values / acc_scale), -2**31, 2**31 - 1).astype(np.int32)

    def _activation(self, call, kind, name, scale, zp):
        x = self._act(call.args[0])
        if x is None:
            return self._fail(name, f"{kind} of a non-activation operand")
        op = build.logistic(name, x) if kind == "relax.sigmoid" else build.tanh(name, x)
        if not self._same_quant(op.output, scale, zp):
            return self._fail(name, f"{'Sigmoid' if kind == 'relax.sigmoid' else 'Tanh'} output quantized "
                                    f"({scale}, {zp}); int8 needs ({op.output.scale}, {op.output.zero_point})")
        return op

    def _slice(self, source, name, scale, zp):
        if isinstance(source, relax.TupleGetItem):
            split = self.values.get(source.tuple_value, source.tuple_value)
            if _op_name(split) != "relax.split":
                return self._fail(name, "tuple item that is not a Split output")
            x = self._act(split.args[0])
            axis = int(split.attrs.axis)
            if x is None:
                return self._fail(name, "Split of a non-activation operand")
            bounds = _split_bounds(split.attrs.indices_or_sections, x.shape[axis])
            begin, end = bounds[source.index], bounds[source.index + 1]
        else:
            x = self._act(source.args[0])
            if x is None or len(source.attrs.axes) != 1:
                return self._fail(name, "StridedSlice that is not a single-axis slice of an activation")
            axis = int(source.attrs.axes[0])
            begin, end = int(source.attrs.begin[0]), min(int(source.attrs.end[0]), x.shape[axis])
        if not self._same_quant(x, scale, zp):
            return self._fail(name, "slice whose output quantization differs from its input's")
        return build.slice_(name, x, begin, end, axis=axis)


def _split_bounds(indices_or_sections, length: int) -> list[int]:
    if isinstance(indices_or_sections, (int, tvm.tirx.IntImm)) or hasattr(indices_or_sections, "value"):
        sections = int(indices_or_sections)
        step = length // sections
        return [k * step for k in range(sections)] + [length]
    return [0] + [int(i) for i in indices_or_sections] + [length]


def qdq_to_integer(mod: tvm.IRModule, tensor_names: dict | None = None) -> IntegerGraph:
    """Integer view of a QDQ module; raises UnsupportedModelError listing every mismatch.

    ``tensor_names`` maps bound Relax variables to source tensor names (see frontend.import_onnx).
    """
    return QdqToInteger(mod, tensor_names).run()
