"""Reorder the hidden units of a recurrent layer so that the block-sparse tiles of its FCs line up.

A *unit layer* is the set of tensors that carry one value per hidden unit (width H on the last axis)
and are joined channel by channel: the gate slices of the FCs that produce them, the per-channel ops
between (an LSTM's σ, tanh, c' = f·c + i·g, h' = o·tanh(c')), its state inputs and outputs among
them. A unit permutation p (internal position i holds source unit p[i]) rewrites, before → after::

    FC W[G·H, K] sliced into gates g·H … (g+1)·H   →  gate rows g·H + i ← g·H + p[i] (with their bias,
       (directly or through per-channel ops)           multiplier, shift and weight scale), each gate;
                                                       a G·H-wide constant on the way likewise
    FC reading a unit tensor at columns o … o+H    →  columns o + i ← o + p[i] (the next layer, the
       (directly or through a channel concat)          output FC; with ``carry_state`` its own recurrence)
    constant [… , H] in the layer                  →  value[…, i] ← value[…, p[i]]
    state input s [… , H] in the layer             →  s (unchanged, public order) → gather(s, p) as
                                                       ``s/reordered`` for the ops that read s
    state or model output y [… , H] in the layer   →  ``y/reordered`` (internal order) → y =
                                                       gather(y/reordered, p⁻¹): the public order
    per-channel ops                                →  unchanged (they read and write internal order)

A gather is a concatenation of channel slices, one per run of consecutive source units (the
permutations chosen here have few runs). The compiled step's inputs and outputs, state included,
keep their layout and names: the permutation lives between the boundary gathers only. A state
input read only by FCs (an LSTM's h) is not in the layer at all (its FC columns stay), so the
boundary costs a gather of c in and of c and h out per LSTM layer.

Carried state (``carry_state=True``, not a tuning decision): the state pairs of the layer (c and, then in the
layer too, h) keep the internal order and ``IntegerGraph.state_slots`` records it, as the fold records the
slots it drops; no gather on the state, but the compiled state layout is no longer the source's order.

The permutation (``ragged_last``): consecutive units are linked when their gate rows have non-zero
weights in the same column granules, or their consumer columns in the same row blocks; the linked
runs (the trained blocks, or blocks a unit fold cut short) keep their order, those whose length is a
multiple of the output grid first and the ragged ones last. After ``fold_dead_units`` drops one unit
of a 16×32-block layer, this moves the short block to the end, so the blocks after it return to the
tiling grid of the consuming FCs. With every run aligned the permutation is the identity and the
layer is left alone.

Matches: tensors cut into ≥ 2 equal gates by channel slices and nothing else, computed by per-channel
ops (a bias add, FC(x) + FC(h) as the TFLite converter writes Keras' LSTM) from FCs and constants,
whose unit tensors reach only per-channel ops, channel concats read only by FCs, FCs, state and model
outputs, and state inputs. A gate tensor's FCs have their rows permuted within each gate block.
Preconditions: streaming state pairs known (as for ``fold_dead_units``).
Leaves unchanged: layers whose permutation is the identity; layers not named (``layers``) or, with
``layers=None``, those the cost model calls no cheaper after the boundary gathers; any layer whose
unit tensors reach another op kind (logged).
Numerics: bit-exact on every output, state included, for any input and state (a permutation of
independent per-channel computations and of the terms of each FC's reduction, undone at the boundary).
Must run after: fold_dead_units (reorders the units it keeps). Must run before: tile_block_sparse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from tvmse.ir import IntegerGraph, IntOp, TensorInfo, build
from tvmse.passes import cost_model
from tvmse.passes.arch import arch_for
from tvmse.passes.fold_dead_units import channel_rule, state_pairs

logger = logging.getLogger(__name__)

SUFFIX = "/reordered"


def _width(t: TensorInfo) -> int:
    return int(t.shape[-1]) if t.shape else 1


@dataclass
class UnitLayer:
    """The tensors of one layer that carry its H units, and the ops that meet them at its edges."""

    name: str                                            # the first gate FC (the decision's key)
    units: int
    tensors: set[str] = field(default_factory=set)       # width-H tensors in internal order
    producers: dict[str, list[int]] = field(default_factory=dict)   # gate FC → slice begins
    readers: list[tuple[str, int]] = field(default_factory=list)    # (FC, column offset)
    constants: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)      # graph inputs (state) read in internal order
    outputs: list[str] = field(default_factory=list)     # graph outputs written in internal order
    gate_width: int = 0                                  # G·H: the width of the tensors the gates are cut from
    gates: set[str] = field(default_factory=set)         # G·H-wide tensors, each gate block in internal order
    gate_constants: list[str] = field(default_factory=list)


class NotAUnitLayer(Exception):
    """The unit tensors reach an op the permutation cannot be carried through."""


def _gate_slices(graph: IntegerGraph, tensor: TensorInfo) -> list[int] | None:
    """The begins of the ≥ 2 equal channel slices that are the only consumers of ``tensor``, covering it;
    else None."""
    width, last = _width(tensor), len(tensor.shape) - 1
    users = graph.consumers(tensor.name)
    if len(users) < 2 or tensor.name in graph.outputs or any(
            u.kind != "slice" or u.attrs["axis"] != last for u in users):
        return None
    spans = sorted((u.attrs["begin"], u.attrs["end"]) for u in users)
    size = spans[0][1] - spans[0][0]
    if [b for b, _ in spans] != list(range(0, width, size)) or any(e - b != size for b, e in spans):
        return None
    return [b for b, _ in spans]


def find_layer(graph: IntegerGraph, seed: str, carry_state: bool = False) -> UnitLayer:
    """The unit layer grown from the gate tensor ``seed`` (one cut into equal gate slices); NotAUnitLayer
    says why there is none. ``carry_state``: a state input fed by an output of the layer joins it (its
    readers' columns permuted)."""
    tensors = graph.tensors()
    begins = _gate_slices(graph, tensors[seed])
    if begins is None:
        raise NotAUnitLayer(f"{seed} is not cut into equal gate slices only")
    layer = UnitLayer("", begins[1] - begins[0], gate_width=_width(tensors[seed]))
    grow = _Growth(graph, layer, tensors)
    grow.todo.append(("gate", seed))
    pairs = state_pairs(graph)
    while grow.todo:
        grow.run()
        if carry_state:
            grow.todo += [("unit", i) for i, o in pairs.items() if o in layer.outputs and i not in layer.tensors]
    if not layer.producers:
        raise NotAUnitLayer(f"no FC computes the gates of {seed}")
    order = {op.name: k for k, op in enumerate(graph.ops)}
    layer.name = min(layer.producers, key=order.__getitem__)
    layer.readers = list(dict.fromkeys(layer.readers))
    return layer


class _Growth:
    """The worklist that grows a unit layer: ("unit", name) tensors of width H, ("gate", name) tensors of
    width G·H whose gate blocks each hold the units."""

    def __init__(self, graph: IntegerGraph, layer: UnitLayer, tensors: dict[str, TensorInfo]):
        self.graph, self.layer, self.tensors = graph, layer, tensors
        self.producer = {op.name: op for op in graph.ops}
        self.pairs = state_pairs(graph)
        self.todo: list[tuple[str, str]] = []

    def _add(self, kind: str, name: str) -> None:
        want = self.layer.units if kind == "unit" else self.layer.gate_width
        if _width(self.tensors[name]) != want:
            raise NotAUnitLayer(f"{name} has {_width(self.tensors[name])} channels where the layer has {want}")
        self.todo.append((kind, name))

    def run(self) -> None:
        while self.todo:
            kind, name = self.todo.pop()
            seen = self.layer.tensors if kind == "unit" else self.layer.gates
            if name in seen:
                continue
            seen.add(name)
            if name in self.graph.outputs and kind == "gate":
                raise NotAUnitLayer(f"gate tensor {name} is a model output")
            self._producer(kind, name)
            if name in self.graph.outputs:
                self.layer.outputs.append(name)
            for user in self.graph.consumers(name):
                self._consumer(kind, name, user)

    def _producer(self, kind: str, name: str) -> None:
        op, layer, units = self.producer.get(name), self.layer, self.layer.units
        if op is None:
            if kind == "gate" or name not in self.pairs:
                raise NotAUnitLayer(f"graph input {name} is not the streaming state of a unit")
            layer.inputs.append(name)
        elif op.kind == "fully_connected" and kind == "gate":
            layer.producers[op.name] = list(range(0, layer.gate_width, units))
        elif op.kind == "slice" and kind == "unit":
            if op.attrs["axis"] != len(op.output.shape) - 1 or op.attrs["begin"] % units:
                raise NotAUnitLayer(f"{name} is not one gate of {op.inputs[0]}")
            self._add("gate", op.inputs[0])
        elif op.kind == "constant":
            (layer.constants if kind == "unit" else layer.gate_constants).append(name)
        elif channel_rule(op, self.tensors)[0] == "elementwise":
            for operand in op.inputs:
                if _width(self.tensors[operand]) != 1:
                    self._add(kind, operand)
        else:
            raise NotAUnitLayer(f"{name} is made by a {op.kind} op")

    def _consumer(self, kind: str, name: str, user: IntOp) -> None:
        layer, tensors = self.layer, self.tensors
        if channel_rule(user, tensors)[0] == "elementwise" and _width(user.output) == _width(tensors[name]):
            self._add(kind, user.name)
        elif kind == "gate":
            if user.kind != "slice" or user.attrs["axis"] != len(user.output.shape) - 1 or (
                    user.attrs["begin"] % layer.units or user.attrs["end"] - user.attrs["begin"] != layer.units):
                raise NotAUnitLayer(f"gate tensor {name} is read by {user.kind} op {user.name}")
            self._add("unit", user.name)
        elif user.kind == "fully_connected":
            layer.readers.append((user.name, 0))
        elif user.kind == "concat" and user.attrs["axis"] == len(user.output.shape) - 1:
            readers = self.graph.consumers(user.name)
            if user.name in self.graph.outputs or not readers or any(r.kind != "fully_connected" for r in readers):
                raise NotAUnitLayer(f"{user.name} concatenates {name} for something other than FCs")
            offset = 0
            for part in user.inputs:
                if part == name:
                    layer.readers += [(r.name, offset) for r in readers]
                offset += _width(tensors[part])
        else:
            raise NotAUnitLayer(f"{name} is read by {user.kind} op {user.name}")


def unit_layers(graph: IntegerGraph, carry_state: bool = False) -> dict[str, UnitLayer]:
    """Every unit layer of the graph, keyed by its first gate FC (``carry_state``: see ``find_layer``)."""
    found: dict[str, UnitLayer] = {}
    claimed: set[str] = set()
    for op in graph.ops:
        if op.name in claimed or _gate_slices(graph, op.output) is None:
            continue
        try:
            layer = find_layer(graph, op.name, carry_state)
        except NotAUnitLayer as e:
            logger.debug("reorder_units: no unit layer at %s: %s", op.name, e)
            continue
        claimed.update(layer.gates)
        found[layer.name] = layer
    return found


# ---- the permutation -------------------------------------------------------------------------------
def _ops(graph: IntegerGraph) -> dict[str, IntOp]:
    return {op.name: op for op in graph.ops}


def _row_patterns(graph: IntegerGraph, layer: UnitLayer, granule: int) -> np.ndarray:
    """[units, …] bool: the column granules in which each unit's gate rows hold a non-zero weight."""
    ops, parts = _ops(graph), []
    for fc, begins in layer.producers.items():
        w = ops[fc].consts["weight"] != 0
        pad = np.zeros((w.shape[0], -(-w.shape[1] // granule) * granule), bool)
        pad[:, :w.shape[1]] = w
        per_granule = pad.reshape(w.shape[0], -1, granule).any(axis=2)
        parts += [per_granule[b:b + layer.units] for b in begins]
    return np.concatenate(parts, axis=1)


def _column_patterns(graph: IntegerGraph, layer: UnitLayer, rows: int) -> np.ndarray:
    """[units, …] bool: the row blocks in which each unit's consumer columns hold a non-zero weight."""
    ops, parts = _ops(graph), [np.zeros((layer.units, 0), bool)]
    for fc, offset in layer.readers:
        w = ops[fc].consts["weight"]
        w = w.reshape(w.shape[0], -1)[:, offset:offset + layer.units] != 0
        pad = np.zeros((-(-w.shape[0] // rows) * rows, layer.units), bool)
        pad[:w.shape[0]] = w
        parts.append(pad.reshape(-1, rows, layer.units).any(axis=1).T)
    return np.concatenate(parts, axis=1)


def ragged_last(graph: IntegerGraph, layer: UnitLayer, rows: int = 16, granule: int = 16) -> np.ndarray:
    """The permutation of the module docstring: linked runs of units, those a multiple of ``rows`` long
    first, the ragged ones last (each in source order)."""
    row_pat, col_pat = _row_patterns(graph, layer, granule), _column_patterns(graph, layer, rows)
    same = (row_pat[1:] == row_pat[:-1]).all(axis=1) | (col_pat[1:] == col_pat[:-1]).all(axis=1)
    starts = [0] + [u + 1 for u in np.flatnonzero(~same)] + [layer.units]
    runs = [np.arange(a, b) for a, b in zip(starts, starts[1:])]
    aligned = [r for r in runs if len(r) % rows == 0]
    ragged = [r for r in runs if len(r) % rows != 0]
    return np.concatenate(aligned + ragged)


def runs_of(index: np.ndarray) -> list[tuple[int, int]]:
    """[begin, end) runs of consecutive values in ``index``, in order."""
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    return [(int(part[0]), int(part[-1]) + 1) for part in np.split(index, breaks)]


# ---- rewrite ---------------------------------------------------------------------------------------
def _gather(name: str, x: TensorInfo, index: np.ndarray) -> list[IntOp]:
    """Ops writing ``name`` = x[..., index] (slices of its runs, concatenated)."""
    axis = len(x.shape) - 1
    pieces = [build.slice_(f"{name}/run{r}", x, b, e, axis=axis) for r, (b, e) in enumerate(runs_of(index))]
    return pieces + [build.concat(name, [p.output for p in pieces], axis=axis)]


def _gate_order(layer: UnitLayer, perm: np.ndarray) -> np.ndarray:
    """The permutation of a gate tensor: ``perm`` within each gate block."""
    return np.concatenate([b + perm for b in range(0, layer.gate_width, layer.units)])


def _weighted(op: IntOp, rows: np.ndarray | None = None, cols: np.ndarray | None = None) -> IntOp:
    consts, attrs = dict(op.consts), dict(op.attrs)
    if rows is not None:
        consts.update({c: op.consts[c][rows] for c in ("weight", "bias", "multiplier", "shift")})
        attrs["weight_scales"] = [op.attrs["weight_scales"][r] for r in rows]
    if cols is not None:
        consts["weight"] = consts["weight"][..., cols]
    return replace(op, consts=consts, attrs=attrs)


def carried(graph: IntegerGraph, layer: UnitLayer) -> dict[str, str]:
    """The state pairs of ``layer`` whose input and output both hold its units (kept in internal order by
    ``carry_state``)."""
    return {i: o for i, o in state_pairs(graph).items() if i in layer.inputs and o in layer.outputs}


def permute(graph: IntegerGraph, layer: UnitLayer, perm: np.ndarray, carry_state: bool = False) -> IntegerGraph:
    """The graph with ``layer``'s units in order ``perm`` between boundary gathers (module docstring);
    ``carry_state``: the layer's state pairs hold the internal order instead, recorded in ``state_slots``."""
    tensors = graph.tensors()
    inverse = np.argsort(perm)
    kept = carried(graph, layer) if carry_state else {}
    renamed = {name: name + SUFFIX for name in layer.inputs + layer.outputs
               if name not in kept and name not in kept.values()}
    slots = dict(graph.state_slots)
    for name in kept:
        source = graph.state_slots.get(name, list(range(layer.units)))
        slots[name] = [int(source[u]) for u in perm]
    ops: list[IntOp] = []
    for name in layer.inputs:
        if name in renamed:
            ops += _gather(renamed[name], tensors[name], perm)
    for op in graph.ops:
        # every reader of a boundary tensor is an op of the layer or an FC (or concat) reading it permuted
        new = replace(op, inputs=[renamed.get(n, n) for n in op.inputs])
        if op.name in layer.producers:
            new = _weighted(new, rows=_gate_order(layer, perm))
        columns = [o for fc, o in layer.readers if fc == op.name]
        if columns:
            cols = np.arange(op.consts["weight"].shape[-1])
            for o in columns:
                cols[o:o + layer.units] = o + perm
            new = _weighted(new, cols=cols)
        if op.name in layer.constants:
            new = replace(new, consts={"value": op.consts["value"][..., perm]})
        if op.name in layer.gate_constants:
            new = replace(new, consts={"value": op.consts["value"][..., _gate_order(layer, perm)]})
        if op.name in renamed:
            new = replace(new, output=replace(op.output, name=renamed[op.name]))
            ops.append(new)
            ops += _gather(op.name, new.output, inverse)
            continue
        ops.append(new)
    return replace(graph, ops=ops, state_slots=slots)


# ---- cost ------------------------------------------------------------------------------------------
def _fc_cost(arch, memory_mode: str, op: IntOp) -> float:
    from tvmse.passes import tile_block_sparse
    weight = tile_block_sparse.matrix(op)
    return min(tile_block_sparse.tiling_cycles(arch, memory_mode, weight, t)
               for t in tile_block_sparse.candidates(arch, memory_mode, weight))


def _gather_cost(arch, memory_mode: str, runs: list[tuple[int, int]]) -> float:
    lengths = [e - b for b, e in runs]
    if memory_mode == cost_model.CPU_OBJECTIVE:
        return cost_model.cpu_gather_instructions(lengths, sum(lengths))
    return cost_model.gather_cycles(arch, lengths)


def layer_cost(graph: IntegerGraph, layer: UnitLayer, perm: np.ndarray, arch, memory_mode: str,
               carry_state: bool = False) -> float:
    """Modelled cost of the FCs ``layer`` touches (each at its cheapest tiling) and of its boundary gathers."""
    ops = _ops(graph)
    touched = list(dict.fromkeys([*layer.producers, *(fc for fc, _ in layer.readers)]))
    kept = carried(graph, layer) if carry_state else {}
    gathers = len(layer.inputs) + len(layer.outputs) - 2 * len(kept)
    identity = np.array_equal(perm, np.arange(layer.units))
    new = ops if identity else _ops(permute(graph, layer, perm, carry_state))
    return (sum(_fc_cost(arch, memory_mode, new[name]) for name in touched)
            + (0.0 if identity else gathers * _gather_cost(arch, memory_mode, runs_of(perm))))


class ReorderUnits:
    """Permute the hidden units of recurrent layers so their tiles line up; see the module docstring.

    ``layers``: the gate FCs (``UnitLayer.name``) whose layers to reorder (an autotune decision), or
    None: each layer the cost model (``memory_mode``, the tiling's) calls cheaper reordered. The
    default, none, leaves the pipeline's graph unchanged: on the bundled models the boundary gathers
    cost more than the denser tiles save (BENCHMARKS.md). ``carry_state``: keep the layer's state in
    internal order (``IntegerGraph.state_slots`` records it, as the fold records dropped slots) instead of
    gathering it back at the boundary: no gather on the state, but the compiled state layout moves."""

    name = "reorder_units"
    must_run_after = ("fold_dead_units",)
    must_run_before = ("tile_block_sparse",)

    def __init__(self, layers: tuple[str, ...] | None = (), memory_mode: str = "Shared_Sram",
                 accelerator: str = "ethos-u55-128", carry_state: bool = False):
        self.layers, self.memory_mode, self.accelerator = layers, memory_mode, accelerator
        self.carry_state = carry_state

    def permutations(self, graph: IntegerGraph) -> dict[str, np.ndarray]:
        """Each unit layer's permutation (the identity where its runs are aligned already)."""
        arch = arch_for(self.accelerator)
        return {name: ragged_last(graph, layer, arch.row_block, min(arch.col_granules))
                for name, layer in unit_layers(graph, self.carry_state).items()}

    def run(self, graph: IntegerGraph, config=None) -> tuple[IntegerGraph, list[dict]]:
        if self.layers is not None and not self.layers:
            return graph, []
        accelerator = config.accelerator if config is not None else self.accelerator
        memory_mode = (config.resolved().memory_mode if config is not None else None) or self.memory_mode
        arch = arch_for(accelerator)
        records = []
        for name in [n for n in unit_layers(graph, self.carry_state) if self.layers is None or n in self.layers]:
            # found again: an earlier permutation renamed the boundary tensors
            layer = unit_layers(graph, self.carry_state)[name]
            perm = ragged_last(graph, layer, arch.row_block, min(arch.col_granules))
            if np.array_equal(perm, np.arange(layer.units)):
                logger.info("%s: %s left alone: its units are already in aligned runs", self.name, name)
                continue
            kept = carried(graph, layer) if self.carry_state else {}
            order = ", ".join(f"{b}–{e - 1}" for b, e in runs_of(perm))
            record = {"layer": name, "rewrite": "reorder units", "before": f"{layer.units} units",
                      "after": f"units {order}", "units": layer.units, "runs": runs_of(perm),
                      "boundary_gathers": len(layer.inputs) + len(layer.outputs) - 2 * len(kept),
                      "state_carried": sorted(kept)}
            if self.layers is None:
                before = layer_cost(graph, layer, np.arange(layer.units), arch, memory_mode)
                after = layer_cost(graph, layer, perm, arch, memory_mode, self.carry_state)
                record.update(model_cycles_before=round(before), model_cycles_after=round(after),
                              memory_mode=memory_mode)
                if after >= before:
                    logger.info("%s: %s left alone: the cost model finds it no cheaper (%.0f → %.0f)",
                                self.name, name, before, after)
                    continue
            graph = permute(graph, layer, perm, self.carry_state)
            logger.info("%s: %s: units in %d runs %s", self.name, name, len(record["runs"]), record["runs"])
            records.append(record)
        return graph, records
