"""The integer form: what every pass and target of tvmse reads and writes.

A tvmse integer module is a Relax ``IRModule`` whose ``main`` takes and returns int8 tensors
(for a streaming model: the frame and the LSTM state in, the mask and the new state out) and
whose dataflow block is a sequence of calls, one per integer op, to private Relax functions::

    lv3 = cls.lstm0_fc(lv2, W, b, multiplier, shift)      # W, b, … are relax.Constant

Each op function carries ``tvmse.op`` (the kind, see ``OP_KINDS``), ``tvmse.name``,
``tvmse.out`` ([scale, zero point] of its int8 result) and ``tvmse.attrs`` (JSON: the op's
integer parameters and the float scales a TFLite writer needs), and its body computes the op
with Relax integer ops exactly as TFLite's int8 kernels do (``tvmse.ir.kernels``). ``main``
carries ``tvmse.inputs`` / ``tvmse.outputs`` (names, shapes, quantization).

Conventions (TFLite's int8 semantics throughout): activations are int8 tensors of any static rank
with one scale and zero point each (asymmetric allowed; images NHWC); weights int8 with zero point
0 and per-output-channel scales; biases int32 with scale x_scale·w_scale[n]; requantization as an
int32 multiplier and a shift per channel (TFLite's QuantizeMultiplier of x_scale·w_scale/y_scale).
Fused activations are an int8 clamp range (attrs ``clamp``, ``activation``) on the op that
computes them. LOGISTIC and SOFTMAX outputs are fixed at scale 1/256, zero point −128, TANH at 1/128, 0;
data-movement ops (concat, slice, reshape, transpose, pad, max_pool, average_pool) keep their
input's quantization, so importers insert ``requantize`` ops where a source model differs.

``IntegerGraph`` is the Python view of such a module: ``IntegerGraph.from_module(mod)`` reads it,
``graph.to_module()`` writes it; the two round-trip.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from tvmse.ir import kernels

# kind → names of its constant operands, in call order after the activation inputs
_CONV_CONSTS = ("weight", "bias", "multiplier", "shift")
OP_KINDS: dict[str, tuple[str, ...]] = {
    "fully_connected": _CONV_CONSTS,   # W int8 [N, K]; input [..., K]
    "conv_2d": _CONV_CONSTS,           # W int8 [O, KH, KW, I]; NHWC
    "depthwise_conv_2d": _CONV_CONSTS,  # W int8 [1, KH, KW, C·M] (TFLite's layout); NHWC
    "add": (), "sub": (), "mul": (),   # broadcasting, TFLite's two-rounding requantization
    "logistic": (), "tanh": (),        # 256-entry tables, fixed output quantization
    "rsqrt": (),                       # 256-entry table of TFLite's int8 RSQRT, any output quantization
    "requantize": (),                  # TFLite QUANTIZE int8 → int8, RELU, RELU6, RELU_N1_TO_1
    "leaky_relu": (),
    "concat": (), "slice": (),         # data movement: one quantization in and out
    "reshape": (), "transpose": (), "pad": (),
    "average_pool": (), "max_pool": (),
    "constant": ("value",),            # an int8 tensor known at compile time
    "softmax": (),                     # over the last axis; output fixed at 1/256, −128
    "mean": (),                        # over some axes (keep_dims or not), any output quantization
}
CONST_DTYPES = {"weight": "int8", "bias": "int32", "multiplier": "int32", "shift": "int32", "value": "int8"}


@dataclass
class TensorInfo:
    """An int8 activation tensor: name, static shape, per-tensor quantization."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    def quant(self) -> tuple[float, int]:
        return (self.scale, self.zero_point)


@dataclass
class IntOp:
    """One integer op: kind, activation inputs (tensor names), constants, attributes, result."""

    kind: str
    inputs: list[str]
    output: TensorInfo
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.output.name


@dataclass
class IntegerGraph:
    inputs: list[TensorInfo]
    outputs: list[str]
    ops: list[IntOp]
    # state input name → source slot (channel of the model as imported) of each compiled slot;
    # empty, or a state missing from it: the identity (no slot was removed or moved)
    state_slots: dict[str, list[int]] = field(default_factory=dict)
    # streaming state: state input name → the output that feeds it at the next step (the frontend
    # pairs them, see tvmse.frontend.state); empty: the export's naming rule ('h0' → 'h0_out')
    state_pairs: dict[str, str] = field(default_factory=dict)

    # ---- queries ------------------------------------------------------------------------------
    def tensors(self) -> dict[str, TensorInfo]:
        table = {t.name: t for t in self.inputs}
        table.update({op.name: op.output for op in self.ops})
        return table

    def producer(self, tensor: str) -> IntOp | None:
        return next((op for op in self.ops if op.name == tensor), None)

    def consumers(self, tensor: str) -> list[IntOp]:
        return [op for op in self.ops if tensor in op.inputs]

    def macs(self) -> int:
        """Multiply-accumulates per step of the weighted ops (FC, convolutions)."""
        total = 0
        for op in self.ops:
            if op.kind == "fully_connected":
                total += int(np.prod(op.output.shape)) * op.consts["weight"].shape[1]
            elif op.kind == "conv_2d":
                total += int(np.prod(op.output.shape)) * int(np.prod(op.consts["weight"].shape[1:]))
            elif op.kind == "depthwise_conv_2d":
                total += int(np.prod(op.output.shape)) * int(np.prod(op.consts["weight"].shape[1:3]))
        return total

    # ---- Relax round trip -----------------------------------------------------------------------
    def to_module(self) -> tvm.IRModule:
        return _ModuleWriter(self).write()

    @classmethod
    def from_module(cls, mod: tvm.IRModule) -> "IntegerGraph":
        return _read_module(mod)


def relax_name(name: str) -> str:
    """A Relax/C identifier for a tensor or op name such as 'lstm0/fc'."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if not ident[:1].isdigit() else f"t_{ident}"


def _tensor_type(shape, dtype="int8") -> relax.TensorType:
    return relax.TensorType(list(shape), dtype)


class _ModuleWriter:
    def __init__(self, graph: IntegerGraph):
        self.graph = graph
        self.bb = relax.BlockBuilder()
        self.tensors = graph.tensors()

    def write(self) -> tvm.IRModule:
        functions = {op.name: self._op_function(op) for op in self.graph.ops}
        params = [relax.Var(relax_name(t.name), _tensor_type(t.shape)) for t in self.graph.inputs]
        values: dict[str, relax.Expr] = {t.name: p for t, p in zip(self.graph.inputs, params)}
        main_attrs = {
            "tvmse.inputs": json.dumps([[t.name, list(t.shape), t.scale, t.zero_point] for t in self.graph.inputs]),
            "tvmse.outputs": json.dumps(self.graph.outputs),
            "tvmse.state_slots": json.dumps(self.graph.state_slots),
            "tvmse.state_pairs": json.dumps(self.graph.state_pairs),
        }
        with self.bb.function("main", params, attrs=main_attrs):
            with self.bb.dataflow():
                for op in self.graph.ops:
                    args = [values[t] for t in op.inputs]
                    args += [relax.const(op.consts[c], CONST_DTYPES[c]) for c in OP_KINDS[op.kind]]
                    values[op.name] = self.bb.emit(relax.Call(functions[op.name], args), relax_name(op.name))
                result = self.bb.emit_output(relax.Tuple([values[t] for t in self.graph.outputs]))
            self.bb.emit_func_output(result)
        return self.bb.get()

    def _op_function(self, op: IntOp) -> relax.GlobalVar:
        if op.kind not in OP_KINDS:
            raise ValueError(f"op '{op.name}': unknown kind '{op.kind}' (known: {', '.join(OP_KINDS)})")
        inputs = [relax.Var(f"in{i}", _tensor_type(self.tensors[t].shape)) for i, t in enumerate(op.inputs)]
        consts = [relax.Var(c, _tensor_type(op.consts[c].shape, CONST_DTYPES[c])) for c in OP_KINDS[op.kind]]
        attrs = {
            "tvmse.op": op.kind,
            "tvmse.name": op.name,
            "tvmse.out": json.dumps([op.output.scale, op.output.zero_point]),
            "tvmse.attrs": json.dumps(op.attrs),
        }
        with self.bb.function(relax_name(op.name), inputs + consts, attrs=attrs, private=True):
            result = self._body(op, inputs, consts)
            gv = self.bb.emit_func_output(result)
        return gv

    def _body(self, op: IntOp, inputs, consts) -> relax.Expr:
        return kernels.BODIES[op.kind](self.bb, op, inputs + consts, self.tensors)


def _read_module(mod: tvm.IRModule) -> IntegerGraph:
    main = mod["main"]
    if main.attrs is None or "tvmse.inputs" not in main.attrs:
        raise ValueError("module is not in tvmse's integer form (main has no 'tvmse.inputs' attribute)")
    inputs = [TensorInfo(n, tuple(s), float(sc), int(zp)) for n, s, sc, zp in json.loads(str(main.attrs["tvmse.inputs"]))]
    names = {p: t.name for p, t in zip(main.params, inputs)}
    ops = []
    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if not isinstance(value, relax.Call) or not isinstance(value.op, relax.GlobalVar):
                continue
            func = mod[value.op]
            kind = str(func.attrs["tvmse.op"])
            n_const = len(OP_KINDS[kind])
            act_args = value.args[: len(value.args) - n_const]
            const_args = value.args[len(value.args) - n_const:]
            scale, zp = json.loads(str(func.attrs["tvmse.out"]))
            name = str(func.attrs["tvmse.name"])
            shape = tuple(int(d) for d in binding.var.ty.shape)
            ops.append(IntOp(kind=kind, inputs=[names[a] for a in act_args],
                             output=TensorInfo(name, shape, float(scale), int(zp)),
                             consts={c: arg.value.numpy() for c, arg in zip(OP_KINDS[kind], const_args)},
                             attrs=json.loads(str(func.attrs["tvmse.attrs"]))))
            names[binding.var] = name
    slots = json.loads(str(main.attrs["tvmse.state_slots"])) if "tvmse.state_slots" in main.attrs else {}
    pairs = json.loads(str(main.attrs["tvmse.state_pairs"])) if "tvmse.state_pairs" in main.attrs else {}
    return IntegerGraph(inputs=inputs, outputs=json.loads(str(main.attrs["tvmse.outputs"])), ops=ops,
                        state_slots=slots, state_pairs=pairs)
