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


_FAILED = object()   # a value whose conversion failed; everything reading it is skipped, not re-reported


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
        self.pending: list[IntOp] = []   # ops the current match needs before its own
        self.source_weights: list[_DequantizedConst] = []
        self.count = 0

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

    def _tainted(self, value) -> bool:
        """Whether ``value`` reads a result that already failed (its problem is reported once, at the root)."""
        args = list(value.args) if isinstance(value, relax.Call) else \
            [value.tuple_value] if isinstance(value, relax.TupleGetItem) else \
            list(value.fields) if isinstance(value, relax.Tuple) else [value]
        for arg in args:
            seen = self.values.get(arg, arg) if isinstance(arg, relax.Var) else arg
            if seen is _FAILED or (seen is not arg and not isinstance(seen, (str, _Dequantized, _DequantizedConst))
                                   and isinstance(seen, (relax.Call, relax.Tuple, relax.TupleGetItem))
                                   and self._tainted(seen)):
                return True
        return False

    def _visit(self, var, value) -> None:
        op = _op_name(value)
        if self._tainted(value):
            self.values[var] = _FAILED
            return
        if op == "relax.dequantize":
            self.values[var] = self._dequantize(value)
        elif op == "relax.quantize":
            name = self.names.get(var) or f"t{len(self.ops)}"
            result = self._quantize(value, name)
            self.values[var] = _FAILED if result is None else result
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
            if v is _FAILED:
                continue
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
        for one in self.pending + [op]:  # helper ops (constants, requantizations) come first
            self.ops.append(one)
            self.tensors[one.name] = one.output
        self.pending = []
        return op.name

    # ---- matching -----------------------------------------------------------------------------
    def _act(self, expr) -> TensorInfo | None:
        v = self.values.get(expr, expr)
        return self.tensors.get(v.tensor) if isinstance(v, _Dequantized) else None

    def _operand(self, expr, name: str) -> TensorInfo | None:
        """An activation, or an int8 per-tensor constant turned into a ``constant`` op."""
        x = self._act(expr)
        if x is not None:
            return x
        v = self.values.get(expr, expr)
        if isinstance(v, _DequantizedConst) and v.data.dtype == np.int8 and v.scale.size == 1:
            self.count += 1
            op = build.constant(f"{name}/const{self.count}", v.data, float(v.scale[0]), int(v.zero_point[0]))
            self.pending.append(op)
            return op.output
        return None

    def _requantized(self, op: IntOp, name: str, scale: float, zp: int) -> IntOp:
        """``op`` as it is when its result quantization is (scale, zp); else op, then a requantize."""
        if self._same_quant(op.output, scale, zp):
            return op
        op.output.name = f"{name}/before_requantize"
        self.pending.append(op)
        return build.requantize(name, op.output, scale, zp)

    def _match(self, source, name: str, scale: float, zp: int):
        kind = _op_name(source)
        if isinstance(source, _Dequantized):
            x = self.tensors[source.tensor]
            return source.tensor if self._same_quant(x, scale, zp) else build.requantize(name, x, scale, zp)
        if isinstance(source, relax.TupleGetItem):
            return self._slice(source, name, scale, zp)
        convert = _CONVERTERS.get(kind)
        if convert is None:
            return self._fail(name, f"{kind or type(source).__name__} before QuantizeLinear")
        return convert(self, source, name, scale, zp)

    def _binary(self, call, name, scale, zp):
        a, b = (self._operand(x, name) for x in call.args)
        if a is None or b is None:
            return self._fail(name, f"{_op_name(call)} of an operand that is neither an activation nor an int8 constant")
        return {"relax.add": build.add, "relax.subtract": build.sub, "relax.multiply": build.mul}[_op_name(call)](
            name, a, b, scale, zp)

    def _unary_data(self, call, name, scale, zp):
        """Reshape-like ops and transposes: int8 data movement, then a requantize if the file rescales."""
        x = self._act(call.args[0])
        if x is None:
            return self._fail(name, f"{_op_name(call)} of a non-activation operand")
        shape = tuple(int(d) for d in call.ty.shape)
        if _op_name(call) == "relax.permute_dims":
            perm = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else list(range(len(x.shape)))[::-1]
            op = build.transpose(name, x, perm)
        else:
            op = build.reshape(name, x, shape)
        return self._requantized(op, name, scale, zp)

    def _relu(self, call, name, scale, zp):
        x = self._act(call.args[0])
        if x is None:
            return self._fail(name, "Relu of a non-activation operand")
        if _op_name(call) == "relax.clip":
            low, high = float(call.args[1].value), float(call.args[2].value)
            activation = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, 1.0): "RELU_0_TO_1"}.get(
                (low, high))
            if activation is None or activation == "RELU_0_TO_1":
                return self._fail(name, f"Clip({low}, {high}): only Relu6 (0, 6) and (-1, 1) map onto int8 ops")
            return build.requantize(name, x, scale, zp, activation)
        return build.requantize(name, x, scale, zp, "RELU")

    def _concat(self, call, name, scale, zp):
        parts = [self._act(x) for x in self.values.get(call.args[0], call.args[0]).fields]
        if any(p is None for p in parts):
            return self._fail(name, "Concat of a non-activation operand")
        fitted = []
        for k, p in enumerate(parts):   # int8 concatenation needs one quantization: requantize the others
            if not self._same_quant(p, scale, zp):
                op = build.requantize(f"{name}/input{k}", p, scale, zp)
                self.pending.append(op)
                p = op.output
            fitted.append(p)
        return build.concat(name, fitted, axis=int(call.attrs.axis))

    def _fail(self, name: str, what: str):
        self.problems.append(f"at '{name}': unsupported pattern: {what}")
        return None

    def _add(self, call, name, scale, zp):
        lhs, rhs = (self.values.get(x, x) for x in call.args)
        for mm, bias in ((lhs, rhs), (rhs, lhs)):
            bias = self._constant_bias(bias)
            if bias is None:
                continue
            if _op_name(mm) == "relax.matmul":
                return self._fully_connected(mm, bias, name, scale, zp)
            if _op_name(mm) in _CONVOLUTIONS:
                return self._conv(mm, bias, name, scale, zp)
        return self._binary(call, name, scale, zp)

    def _constant_bias(self, expr):
        """A bias operand: a dequantized or float constant, possibly reshaped to broadcast ([1, C, 1])."""
        if _op_name(expr) == "relax.reshape":
            expr = self.values.get(expr.args[0], expr.args[0])
        return expr if isinstance(expr, (_DequantizedConst, tvm.ir.expr.GenericConst)) else None

    def _channels_last(self, x: TensorInfo, name: str) -> tuple[TensorInfo, int]:
        """x [1, C, W] or [1, C, H, W] (ONNX layout) as NHWC [1, H, W, C] for the integer convolution."""
        rank = len(x.shape)
        perm = [0, 2, 1] if rank == 3 else [0, 2, 3, 1]
        op = build.transpose(f"{name}/channels_last", x, perm)
        self.pending.append(op)
        if rank == 3:
            op = build.reshape(f"{name}/nhwc", op.output, (1, 1, x.shape[2], x.shape[1]))
            self.pending.append(op)
        return op.output, rank

    def _channels_first(self, y: IntOp, rank: int, name: str) -> IntOp:
        """The NHWC result back in the source layout, the last op named ``name``."""
        self.pending.append(y)
        out = y.output
        if rank == 3:
            reshaped = build.reshape(f"{name}/nwc", out, (1, out.shape[2], out.shape[3]))
            self.pending.append(reshaped)
            return build.transpose(name, reshaped.output, [0, 2, 1])
        return build.transpose(name, out, [0, 3, 1, 2])

    def _folded_weight(self, expr):
        """The int8 weight behind a float constant that the importer folded from a DequantizeLinear."""
        value = _const_value(expr)
        if value is None:
            return expr
        for w in self.source_weights:
            if w.data.shape != value.shape:
                continue
            shape = [1] * w.data.ndim
            if w.scale.size > 1:
                shape[w.axis % w.data.ndim] = -1
            dequantized = (w.data.astype(np.float32) - w.zero_point.reshape(shape).astype(np.float32)) * \
                w.scale.reshape(shape)
            if np.allclose(dequantized, value, rtol=1e-6, atol=0):
                return w
        return expr

    def _conv(self, conv, bias, name, scale, zp):
        x = self._act(conv.args[0])
        w = self._folded_weight(self.values.get(conv.args[1], conv.args[1]))
        if x is None or not isinstance(w, _DequantizedConst) or w.data.dtype != np.int8 or np.any(w.zero_point != 0):
            return self._fail(name, "Conv whose operands are not an int8 activation and symmetric int8 weights")
        a = conv.attrs
        one_d = _op_name(conv) == "relax.nn.conv1d"
        if str(a.data_layout) not in ("NCW", "NCHW") or x.shape[0] != 1:
            return self._fail(name, f"Conv with layout {a.data_layout} or batch {x.shape[0]}")
        strides, dilation, pads = [int(v) for v in a.strides], [int(v) for v in a.dilation], [int(v) for v in a.padding]
        if one_d:
            strides, dilation, pads = [1, strides[0]], [1, dilation[0]], [0, pads[0], 0, pads[1]]
        data = w.data if not one_d else w.data[:, :, None, :]           # OIHW
        out_channels, groups, channels = data.shape[0], int(a.groups), x.shape[1]
        w_scales = np.broadcast_to(w.scale, (out_channels,)) if w.scale.size in (1, out_channels) else None
        if w_scales is None or (w.scale.size > 1 and w.axis != 0):
            return self._fail(name, "Conv weight scales that are not per output channel")
        acc_scale = np.float32(x.scale) * w_scales.astype(np.float32)
        bias_values = self._bias(bias, acc_scale, out_channels)
        nhwc, rank = self._channels_last(x, name)
        inner = f"{name}/conv"
        if groups == 1:
            op = build.conv_2d(inner, nhwc, data.transpose(0, 2, 3, 1), bias_values, w_scales, scale, zp,
                               strides, dilation, pads)
        elif groups == channels and data.shape[1] == 1:
            op = build.depthwise_conv_2d(inner, nhwc, data.transpose(1, 2, 3, 0), bias_values, w_scales, scale, zp,
                                         strides, dilation, pads)
        else:
            return self._fail(name, f"grouped Conv with {groups} groups (only 1 or depthwise)")
        return self._channels_first(op, rank, name)

    def _pool(self, call, name, scale, zp):
        x = self._act(call.args[0])
        if x is None:
            return self._fail(name, "MaxPool of a non-activation operand")
        a = call.attrs
        one_d = _op_name(call) == "relax.nn.max_pool1d"
        size, strides, pads = [int(v) for v in a.pool_size], [int(v) for v in a.strides], [int(v) for v in a.padding]
        if any(int(d) != 1 for d in a.dilation) or bool(a.ceil_mode):
            return self._fail(name, "MaxPool with dilation or ceil_mode")
        if one_d:
            size, strides, pads = [1, size[0]], [1, strides[0]], [0, pads[0], 0, pads[1]]
        nhwc, rank = self._channels_last(x, name)
        op = build.max_pool(f"{name}/pool", nhwc, size, strides, pads)
        return self._requantized(self._channels_first(op, rank, name), name, scale, zp)

    def _take(self, call, name, scale, zp):
        """Gather with constant indices: one contiguous run along the axis → a slice (and a reshape when
        a scalar index drops the axis)."""
        x = self._act(call.args[0])
        index = _const_value(self.values.get(call.args[1], call.args[1]))
        if x is None or index is None:
            return self._fail(name, "Gather of a non-activation operand or with indices that are not constant")
        axis = int(call.attrs.axis) % len(x.shape) if call.attrs.axis is not None else 0
        flat = np.asarray(index).reshape(-1) % x.shape[axis]
        if flat.size == 0 or np.any(np.diff(flat) != 1):
            return self._fail(name, f"Gather of indices {flat.tolist()} that are not one contiguous run")
        out_shape = tuple(int(d) for d in call.ty.shape)
        op = build.slice_(name, x, int(flat[0]), int(flat[-1]) + 1, axis=axis)
        if tuple(op.output.shape) != out_shape:
            op.output.name = f"{name}/run"
            self.pending.append(op)
            op = build.reshape(name, op.output, out_shape)
        return self._requantized(op, name, scale, zp)

    def _reciprocal(self, call, name, scale, zp):
        """1 / sqrt(x), quantized once (``onnx_fold.divisions_to_multiplications``): TFLite's int8 RSQRT."""
        one, root = (self.values.get(a, a) for a in call.args)
        if _const_value(one) is None or float(np.asarray(_const_value(one)).reshape(-1)[0]) != 1.0 \
                or _op_name(root) != "relax.sqrt":
            return self._fail(name, "Div that is not 1 / Sqrt(x) (int8 has only the reciprocal square root)")
        x = self._act(root.args[0])
        if x is None:
            return self._fail(name, "Sqrt of a non-activation operand")
        return build.rsqrt(name, x, scale, zp)

    def _mean(self, call, name, scale, zp):
        x = self._act(call.args[0])
        if x is None:
            return self._fail(name, "ReduceMean of a non-activation operand")
        axes = [int(a) for a in call.attrs.axis] if call.attrs.axis is not None else list(range(len(x.shape)))
        return build.mean(name, x, axes, bool(call.attrs.keepdims), scale, zp)

    def _softmax(self, call, name, scale, zp):
        x = self._act(call.args[0])
        if x is None or int(call.attrs.axis) % len(x.shape) != len(x.shape) - 1:
            return self._fail(name, "Softmax that is not over the last axis of an activation")
        return self._requantized(build.softmax(name, x), name, scale, zp)

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
        return build.fully_connected(name, x, weight, self._bias(bias, acc_scale, n), w_scales, scale, zp,
                                     out_shape=tuple(int(d) for d in matmul.ty.shape))

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
        return self._requantized(op, name, scale, zp)   # TFLite fixes their output grid

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
            axes, begins, ends, strides = _slice_args(source)
            if x is None or len(axes) != 1 or any(st != 1 for st in strides):
                return self._fail(name, "StridedSlice that is not a single-axis, unit-stride slice of an activation")
            axis = axes[0] % len(x.shape)
            size = x.shape[axis]
            begin = begins[0] + size if begins[0] < 0 else begins[0]
            end = min(ends[0] + size if ends[0] < 0 else ends[0], size)
        return self._requantized(build.slice_(name, x, begin, end, axis=axis), name, scale, zp)


_CONVOLUTIONS = ("relax.nn.conv1d", "relax.nn.conv2d")

_CONVERTERS = {
    "relax.nn.conv1d": lambda self, call, name, scale, zp: self._conv(call, None, name, scale, zp),
    "relax.nn.conv2d": lambda self, call, name, scale, zp: self._conv(call, None, name, scale, zp),
    "relax.nn.max_pool1d": QdqToInteger._pool,
    "relax.mean": QdqToInteger._mean,
    "relax.divide": QdqToInteger._reciprocal,
    "relax.take": QdqToInteger._take,
    "relax.nn.softmax": QdqToInteger._softmax,
    "relax.nn.max_pool2d": QdqToInteger._pool,
    "relax.matmul": lambda self, call, name, scale, zp: self._fully_connected(call, None, name, scale, zp),
    "relax.add": lambda self, call, name, scale, zp: self._add(call, name, scale, zp),
    "relax.subtract": QdqToInteger._binary,
    "relax.multiply": QdqToInteger._binary,
    "relax.sigmoid": lambda self, call, name, scale, zp: self._activation(call, "relax.sigmoid", name, scale, zp),
    "relax.tanh": lambda self, call, name, scale, zp: self._activation(call, "relax.tanh", name, scale, zp),
    "relax.nn.relu": QdqToInteger._relu,
    "relax.clip": QdqToInteger._relu,
    "relax.concat": QdqToInteger._concat,
    "relax.strided_slice": lambda self, call, name, scale, zp: self._slice(call, name, scale, zp),
    "relax.reshape": QdqToInteger._unary_data,
    "relax.squeeze": QdqToInteger._unary_data,
    "relax.expand_dims": QdqToInteger._unary_data,
    "relax.permute_dims": QdqToInteger._unary_data,
}


def _ints(value) -> list[int]:
    if isinstance(value, relax.Tuple):
        value = value.fields
    if isinstance(value, relax.ShapeExpr):
        value = value.values
    return [int(v.value) if hasattr(v, "value") else int(v) for v in value]


def _slice_args(call) -> tuple[list[int], list[int], list[int], list[int]]:
    """(axes, begin, end, strides) of a relax.strided_slice (attributes in older TVM, arguments in 0.27)."""
    attrs = call.attrs
    if hasattr(attrs, "axes"):
        axes, begin, end = _ints(attrs.axes), _ints(attrs.begin), _ints(attrs.end)
        strides = _ints(attrs.strides) if getattr(attrs, "strides", None) else [1] * len(axes)
        return axes, begin, end, strides
    axes, begin, end = (_ints(a) for a in call.args[1:4])
    strides = _ints(call.args[4]) if len(call.args) > 4 and call.args[4] is not None else [1] * len(axes)
    return axes, begin, end, strides


def _split_bounds(indices_or_sections, length: int) -> list[int]:
    if isinstance(indices_or_sections, (int, tvm.tirx.IntImm)) or hasattr(indices_or_sections, "value"):
        sections = int(indices_or_sections)
        step = length // sections
        return [k * step for k in range(sections)] + [length]
    return [0] + [int(i) for i in indices_or_sections] + [length]


def qdq_to_integer(mod: tvm.IRModule, tensor_names: dict | None = None,
                   source_weights: list[_DequantizedConst] | None = None) -> IntegerGraph:
    """Integer view of a QDQ module; raises UnsupportedModelError listing every mismatch.

    ``tensor_names`` maps bound Relax variables to source tensor names (see frontend.import_onnx);
    ``source_weights`` are the model's dequantized constant weights (``dequantized_weights``), to
    recover the int8 data of weights the importer folded into float constants (it does for Conv).
    """
    converter = QdqToInteger(mod, tensor_names)
    converter.source_weights = list(source_weights or [])
    return converter.run()


def dequantized_weights(model) -> list[_DequantizedConst]:
    """Every DequantizeLinear of an int8 initializer in an ONNX model, as (data, scale, zero point, axis)."""
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and inits[node.input[0]].dtype == np.int8:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            zp = inits[node.input[2]] if len(node.input) > 2 and node.input[2] in inits else np.zeros(1, np.int8)
            found.append(_DequantizedConst(inits[node.input[0]], np.atleast_1d(inits[node.input[1]]).astype(np.float32),
                                           np.atleast_1d(zp).astype(np.int64), axis))
    return found
