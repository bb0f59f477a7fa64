"""Integer form → TIR kernels and the call sequence that runs them, ready for C generation.

TVM 0.27 builds a whole Relax module only to VM bytecode, which needs the C++ runtime. For a
microcontroller we lower each integer op on its own and keep the call sequence ourselves:

- ``fully_connected`` of one row without a fused activation → the hand-scheduled TIR kernel of
  ``fc_kernel`` (zero point folded into the bias, rows blocked for Helium);
- ``add`` / ``mul`` without a fused activation → the int32 TIR kernels of ``elementwise_kernel``
  when every intermediate provably stays in int32 (the legalized bodies requantize in int64);
- ``constant`` → a constant array, no kernel;
- ``concat`` on a contiguous axis of tensors that kernels of this network write (a tiled FC's
  tile outputs, its gathered input slices) → no kernel: each part becomes a view of its slice of the
  concatenation (``LoweredNetwork.views``), so the kernel that computes a part writes it in place
  and the memory plan gives the whole concatenation one region (``memory_plan``);
- every other op → its Relax body through ``ConvertToDataflow → LegalizeOps → FuseOps → FuseTIR``,
  normally one fused PrimFunc per op; each fused PrimFunc is scheduled so all its intermediate
  blocks are computed inside the output loop (``compute_at``), which turns the per-op temporaries
  into scalars instead of whole arrays.

The result (``LoweredNetwork``) names every tensor a kernel reads or writes: network inputs, arena
tensors (op results and any temporaries between fused kernels) and constants (weights, tables,
scalars), so the memory planner and the C glue need nothing from TVM.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tvm
from tvm import relax, s_tir

from tvmse.ir import IntegerGraph
from tvmse.ir.graph import OP_KINDS, relax_name
from tvmse.targets.cortex_m import elementwise_kernel, fc_kernel
from tvmse.targets.cortex_m.errors import LoweringError

log = logging.getLogger(__name__)
SYMBOL_NAME_CHARS = 48   # characters of the op name kept in a kernel's C symbol


@dataclasses.dataclass
class Tensor:
    """A buffer a kernel touches. ``kind``: "input" (network input), "arena", "const"."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    value: np.ndarray | None = None  # constants only

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclasses.dataclass
class Step:
    """One kernel call: C symbol of the kernel, its argument tensors (inputs…, output last)."""

    kernel: str
    op: str  # the integer op this call belongs to
    kind: str  # the integer op's kind
    args: list[str]
    macs: int = 0


@dataclasses.dataclass
class LoweredNetwork:
    graph: IntegerGraph
    tensors: dict[str, Tensor]
    steps: list[Step]
    fc_kernels: dict[str, tvm.tirx.PrimFunc]  # built with MVE-width vectorization
    other_kernels: dict[str, tvm.tirx.PrimFunc]
    #: part of a concatenation → (the concatenation, byte offset): the part lives inside it
    views: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)


def _legalize_pipeline() -> tvm.transform.Pass:
    return tvm.transform.Sequential([
        relax.transform.ConvertToDataflow(min_size=1),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        relax.transform.DeadCodeElimination(),
    ])


def schedule_elementwise(func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc:
    """Compute every intermediate block inside the last block's innermost loop.

    FuseTIR keeps one full-size buffer per fused Relax op (dozens per requantization); computed
    at the output loop they shrink to one element each, i.e. registers. A PrimFunc whose blocks
    cannot be moved (not expected for the integer ops) is left as it is.
    """
    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    if len(blocks) < 2:
        return func
    loops = sch.get_loops(blocks[-1])
    if not loops:
        return func
    try:
        for block in reversed(blocks[:-1]):
            sch.compute_at(block, loops[-1], preserve_unit_loops=False)
    except Exception as exc:  # noqa: BLE001 - any schedule failure leaves the correct unscheduled kernel
        log.debug("compute_at failed (%s); kernel left unscheduled", exc)
        return func
    return sch.mod["main"]


def _op_functions(graph: IntegerGraph) -> list[relax.Function]:
    """The private Relax function of each op, in the order of ``graph.ops``."""
    mod = graph.to_module()
    funcs = []
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar):
                funcs.append(mod[value.op])
    names = [str(f.attrs["tvmse.name"]) for f in funcs]
    if names != [op.name for op in graph.ops]:
        raise LoweringError(f"integer module's calls {names} do not match the graph's ops")
    return funcs


class _Lowerer:
    def __init__(self, graph: IntegerGraph, int32_elementwise: bool = True, in_place_concat: bool = True,
                 fc_rows: dict[tuple[int, int], int] | None = None):
        self.graph = graph
        self.int32_elementwise = int32_elementwise
        self.in_place_concat = in_place_concat
        self.fc_rows = fc_rows or {}
        self.views: dict[str, tuple[str, int]] = {}
        self.written: set[str] = set()   # arena tensors a kernel (or in-place parts) computes
        self.tensors: dict[str, Tensor] = {t.name: Tensor(t.name, tuple(t.shape), "int8", "input")
                                           for t in graph.inputs}
        self.steps: list[Step] = []
        self.fc: dict[str, tvm.tirx.PrimFunc] = {}
        self.other: dict[str, tvm.tirx.PrimFunc] = {}
        self.constant_arrays: dict[str, str] = {}   # constant op → its array (a C identifier)

    def const(self, name: str, value: np.ndarray) -> str:
        value = np.ascontiguousarray(value)
        self.tensors[name] = Tensor(name, tuple(value.shape), str(value.dtype), "const", value)
        return name

    def lower(self) -> LoweredNetwork:
        for index, (op, func) in enumerate(zip(self.graph.ops, _op_functions(self.graph))):
            # the op index keeps symbols unique; the name is cut so that converter-made tensor names (often
            # 200 characters) stay readable symbols within the instruction counter's 127-character names
            symbol = f"tvmse_k{index:02d}_{relax_name(op.name)[:SYMBOL_NAME_CHARS]}"
            if op.kind == "constant":   # no kernel: the value is a constant array
                self.constant_arrays[op.name] = self.const(f"{symbol}_value", op.consts["value"])
                continue
            self.tensors[op.name] = Tensor(op.name, tuple(op.output.shape), "int8", "arena")
            plain = tuple(op.attrs.get("clamp", (-128, 127))) == (-128, 127)   # the hand kernels do not clamp
            if op.kind == "fully_connected" and plain and self._row_vector(op):
                self._fully_connected(symbol, op)
            elif op.kind in ("add", "mul") and plain and self.int32_elementwise and self._elementwise(symbol, op):
                pass
            elif op.kind == "concat" and self.in_place_concat and self._in_place(op):
                pass
            else:
                self._legalized(symbol, op, func)
            self.written.add(op.name)
        return LoweredNetwork(self.graph, self.tensors, self.steps, self.fc, self.other, self.views)

    def _in_place(self, op) -> bool:
        """A concatenation without a kernel: each part a view of its slice of the output.

        Applies when the parts lie one after the other in memory (every axis before the concat axis
        has size 1) and each part is an arena tensor written by a kernel of this network, used in no
        other concatenation and listed once. Network inputs, state and constants stay where they are, so
        a concatenation with any of them keeps its copy kernel.
        """
        axis = op.attrs["axis"] % len(op.output.shape)
        if int(np.prod(op.output.shape[:axis])) != 1 or len(set(op.inputs)) != len(op.inputs):
            return False
        parts = [self.tensor_of(i) for i in op.inputs]
        if any(self.tensors[p].kind != "arena" or p in self.views or p not in self.written for p in parts):
            return False
        offset = 0
        for part in parts:
            self.views[part] = (op.name, offset)
            offset += self.tensors[part].nbytes
        log.debug("concat '%s': %d parts written in place", op.name, len(parts))
        return True

    def tensor_of(self, name: str) -> str:
        """The lowered tensor holding graph tensor ``name`` (a constant op's value is a renamed array)."""
        return self.constant_arrays.get(name, name)

    def _row_vector(self, op) -> bool:
        """The hand-written FC kernel computes one row: input [1, K] (any leading unit axes)."""
        return int(np.prod(self.graph.tensors()[op.inputs[0]].shape)) == op.consts["weight"].shape[1]

    def _fully_connected(self, symbol: str, op) -> None:
        weight = op.consts["weight"]
        x = self.graph.tensors()[op.inputs[0]]
        n, k = weight.shape
        rows = self.fc_rows.get((n, k), fc_kernel.ROWS)
        args = [self.tensor_of(op.inputs[0]),
                self.const(f"{symbol}_weight", weight.astype(np.int8)),
                self.const(f"{symbol}_params", fc_kernel.row_params(weight, op.consts, x.zero_point, rows)),
                op.name]
        func = fc_kernel.fully_connected(n, k, op.output.zero_point,
                                         high_word=fc_kernel.uses_high_word(op.consts["shift"]), rows=rows)
        self.fc[symbol] = func.with_attr("global_symbol", symbol)
        self.steps.append(Step(symbol, op.name, op.kind, args, macs=int(n * k)))

    def _elementwise(self, symbol: str, op) -> bool:
        """ADD/MUL through the int32 kernel; False (legalized kernel instead) if it does not apply."""
        tensors = self.graph.tensors()
        if any(tuple(tensors[i].shape) != tuple(op.output.shape) for i in op.inputs):
            log.debug("op '%s' (%s): broadcast operands, legalized kernel", op.name, op.kind)
            return False
        build = elementwise_kernel.mul if op.kind == "mul" else elementwise_kernel.add
        built = build(tuple(op.output.shape), op.attrs, op.output.zero_point)
        if built is None:
            log.debug("op '%s' (%s): an intermediate could leave int32, legalized int64 kernel", op.name, op.kind)
            return False
        func, form = built
        log.debug("op '%s' (%s): int32 kernel, high multiply %s", op.name, op.kind, form)
        self.other[symbol] = func.with_attr("global_symbol", symbol)
        self.steps.append(Step(symbol, op.name, op.kind, [*map(self.tensor_of, op.inputs), op.name]))
        return True

    def _legalized(self, symbol: str, op, func: relax.Function) -> None:
        mod = _legalize_pipeline()(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}))
        main = mod["main"]
        names: dict[relax.Var, str] = {p: self.tensor_of(t) for p, t in zip(main.params, op.inputs)}
        # the op's constant operands (weights, biases, multipliers) are parameters of its function too
        for param, const_name in zip(main.params[len(op.inputs):], OP_KINDS[op.kind]):
            names[param] = self.const(f"{symbol}_{const_name}", op.consts[const_name])
        result = main.body.body
        calls = []
        for block in main.body.blocks:
            for binding in block.bindings:
                value = binding.value
                if isinstance(value, relax.Var):
                    names[binding.var] = names[value]
                elif isinstance(value, relax.Call) and value.op.name == "relax.call_tir":
                    calls.append(binding)
                else:
                    raise LoweringError(f"op '{op.name}' ({op.kind}): cannot lower Relax binding "
                                        f"{binding.var.name_hint} = {value}")
        for j, binding in enumerate(calls):
            gv, tir_args = binding.value.args[0], binding.value.args[1]
            kernel = symbol if len(calls) == 1 else f"{symbol}_{j}"
            args = []
            for a, arg in enumerate(tir_args.fields):
                if isinstance(arg, tvm.ir.expr.Constant):
                    args.append(self.const(f"{kernel}_c{a}", arg.value.numpy().reshape(-1)
                                           if arg.value.numpy().ndim == 0 else arg.value.numpy()))
                else:
                    args.append(names[arg])
            out = op.name if binding.var.same_as(result) else f"{kernel}_out"
            if out != op.name:
                shape = tuple(int(d) for d in binding.var.ty.shape)
                self.tensors[out] = Tensor(out, shape, str(binding.var.ty.dtype), "arena")
            names[binding.var] = out
            self.other[kernel] = schedule_elementwise(mod[gv]).with_attr("global_symbol", kernel)
            self.steps.append(Step(kernel, op.name, op.kind, args + [out]))
        if names.get(result) != op.name:
            raise LoweringError(f"op '{op.name}' ({op.kind}): its result is not computed by a TIR kernel")


def lower(graph: IntegerGraph, int32_elementwise: bool = True, in_place_concat: bool = True,
          fc_rows: dict[tuple[int, int], int] | None = None) -> LoweredNetwork:
    """Lower every op of ``graph`` to TIR kernels (see the module docstring).

    ``int32_elementwise=False`` keeps the legalized int64 ADD/MUL kernels (the benchmark's baseline);
    ``in_place_concat=False`` keeps a copy kernel for every concatenation (where a caller fixes the
    tensors' places itself, as the NPU glue does with Vela's); ``fc_rows`` maps an FC weight shape (rows,
    columns) to the output rows its kernels compute per input pass (default ``fc_kernel.ROWS``).
    """
    network = _Lowerer(graph, int32_elementwise, in_place_concat, fc_rows).lower()
    log.info("lowered %d integer ops to %d TIR kernels (%d fully connected)", len(graph.ops),
             len(network.steps), len(network.fc_kernels))
    return network
