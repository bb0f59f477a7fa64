"""Fold dead units: drop every channel that cannot reach a model output at any future frame.

    FC(x, W[N×K]) … h_in[1×H] … h_out[1×H]   →   FC(x', W[n×k]) … h_in[1×h] … h_out[1×h]
    rows n ∉ live(out) dropped (with bias, multiplier, shift, weight scale), columns k ∉ live(in)
    dropped, elementwise tensors, slice extents, concat segments and state slots shrunk alike.

Liveness (a least fixed point, channel by channel, backwards from the model outputs):

- the model outputs that are not streaming state are live in every channel, and so is every
  non-state graph input (the frame keeps its interface);
- FC: input column k is live iff some live output row n has W[n, k] ≠ 0 (the bias never makes an
  input live); elementwise ops (add, mul, logistic, tanh): input channel j iff output channel j;
  slice: input channel begin+j iff output channel j; concat: per segment;
- state: the state output channel j is live iff the state input channel j is (and back), so a
  unit that only feeds its own recurrence stays dead.

The live sets are then closed so each op can run on the kept channels: an elementwise op keeps
the union of its operands' and result's sets on all of them, a slice keeps what its input keeps
inside its window, a live FC keeps at least one input column, a state keeps at least one slot.
Keeping a superset of the live channels is always exact; the closure only adds channels.

A pruned unit (its four gate rows, their biases, its recurrent and consumer columns zero) has
no live consumer, so it vanishes. A unit whose incoming rows are zero but whose outgoing columns
are not is *live* (its gates are constants, its c still recurs), and is kept.

Matches: any integer graph whose activations are [1, C] and whose concat/slice run on axis 1.
Preconditions: state inputs and outputs paired by name ('h0' → 'h0_out',
``targets.host.reference.streaming_state_pairs``).
Leaves unchanged: graphs without dead channels; graph inputs and outputs that are not state;
graphs with other tensor ranks or axes (logged at debug level with the reason).
Numerics: bit-exact on every non-state output and on every kept state slot, for any state values
(dead channels never reach a kept one). ``IntegerGraph.state_slots`` maps each compiled state
slot to its source slot.
Must run before: tile_block_sparse (tiling should see the compacted weights).
"""

from __future__ import annotations

import logging

import numpy as np

from tvmse.ir import IntegerGraph, IntOp, TensorInfo
from tvmse.passes import cost_model

logger = logging.getLogger(__name__)

ELEMENTWISE = ("add", "mul", "logistic", "tanh")
Kept = dict[str, np.ndarray]  # tensor name → bool per channel


def state_pairs(graph: IntegerGraph) -> dict[str, str]:
    from tvmse.targets.host.reference import streaming_state_pairs
    return streaming_state_pairs(graph)


# ---- check --------------------------------------------------------------------------------------
def check(graph: IntegerGraph) -> str | None:
    """None if the pass can analyse ``graph``, else why not."""
    for t in graph.tensors().values():
        if len(t.shape) != 2 or t.shape[0] != 1:
            return f"tensor '{t.name}' has shape {t.shape}, not [1, C]"
    for op in graph.ops:
        if op.kind in ("concat", "slice") and op.attrs.get("axis") != 1:
            return f"{op.kind} '{op.name}' runs on axis {op.attrs.get('axis')}, not 1"
    return None


# ---- match: liveness and closure --------------------------------------------------------------
def _backward(op: IntOp, kept: Kept) -> None:
    out = kept[op.name]
    if op.kind == "fully_connected":
        x = kept[op.inputs[0]]
        x |= (op.consts["weight"][out] != 0).any(axis=0)
        if out.any() and not x.any():
            x[0] = True  # a live FC needs an input to read, even if all its live rows are zero
    elif op.kind in ELEMENTWISE:
        for name in op.inputs:
            kept[name] |= out
    elif op.kind == "slice":
        kept[op.inputs[0]][op.attrs["begin"]:op.attrs["end"]] |= out
    elif op.kind == "concat":
        start = 0
        for name in op.inputs:
            n = len(kept[name])
            kept[name] |= out[start:start + n]
            start += n


def _forward(op: IntOp, kept: Kept) -> None:
    out = kept[op.name]
    if op.kind in ELEMENTWISE:
        for name in op.inputs:
            out |= kept[name]
    elif op.kind == "slice":
        out |= kept[op.inputs[0]][op.attrs["begin"]:op.attrs["end"]]
    elif op.kind == "concat":
        start = 0
        for name in op.inputs:
            n = len(kept[name])
            out[start:start + n] |= kept[name]
            start += n


def kept_channels(graph: IntegerGraph) -> Kept:
    """Live channels of every tensor, closed so that every op can run on them (see module doc)."""
    tensors = graph.tensors()
    pairs = state_pairs(graph)
    kept = {name: np.zeros(t.shape[1], bool) for name, t in tensors.items()}
    for t in graph.inputs:
        if t.name not in pairs:
            kept[t.name][:] = True
    for name in graph.outputs:
        if name not in pairs.values():
            kept[name][:] = True
    while True:
        before = [k.copy() for k in kept.values()]
        for op in reversed(graph.ops):
            _backward(op, kept)
        for op in graph.ops:
            _forward(op, kept)
        for state_in, state_out in pairs.items():
            both = kept[state_in] | kept[state_out]
            if not both.any():
                both[0] = True  # keep the state interface non-empty
            kept[state_in][:] = kept[state_out][:] = both
        if all(np.array_equal(a, b) for a, b in zip(before, kept.values())):
            return kept


# ---- rewrite ------------------------------------------------------------------------------------
def _shrunk(t: TensorInfo, keep: np.ndarray) -> TensorInfo:
    return TensorInfo(t.name, (1, int(keep.sum())), t.scale, t.zero_point)


def _rewrite_op(op: IntOp, kept: Kept, tensors: dict[str, TensorInfo]) -> IntOp | None:
    out = kept[op.name]
    if not out.any():
        return None
    output = _shrunk(op.output, out)
    if op.kind == "fully_connected":
        rows, cols = np.flatnonzero(out), np.flatnonzero(kept[op.inputs[0]])
        consts = {"weight": op.consts["weight"][np.ix_(rows, cols)]}
        consts.update({c: op.consts[c][rows] for c in ("bias", "multiplier", "shift")})
        attrs = dict(op.attrs, weight_scales=[op.attrs["weight_scales"][r] for r in rows])
        return IntOp(op.kind, list(op.inputs), output, consts, attrs)
    if op.kind == "slice":
        x = kept[op.inputs[0]]
        begin = int(x[:op.attrs["begin"]].sum())
        return IntOp(op.kind, list(op.inputs), output, {}, dict(op.attrs, begin=begin, end=begin + int(out.sum())))
    if op.kind == "concat":
        return IntOp(op.kind, [n for n in op.inputs if kept[n].any()], output, {}, dict(op.attrs))
    return IntOp(op.kind, list(op.inputs), output, dict(op.consts), dict(op.attrs))


def rewrite(graph: IntegerGraph, kept: Kept) -> IntegerGraph:
    """The graph restricted to the ``kept`` channels, with the state slot mapping updated."""
    tensors = graph.tensors()
    ops = [new for op in graph.ops if (new := _rewrite_op(op, kept, tensors)) is not None]
    inputs = [_shrunk(t, kept[t.name]) for t in graph.inputs]
    slots = {}
    for state_in in state_pairs(graph):
        source = graph.state_slots.get(state_in, list(range(tensors[state_in].shape[1])))
        slots[state_in] = [int(source[j]) for j in np.flatnonzero(kept[state_in])]
    return IntegerGraph(inputs=inputs, outputs=list(graph.outputs), ops=ops, state_slots=slots)


def _records(graph: IntegerGraph, new: IntegerGraph, config) -> list[dict]:
    after = {op.name: op for op in new.ops}
    tensors, new_tensors = graph.tensors(), new.tensors()
    records = []
    for op in graph.ops:
        if op.kind != "fully_connected":
            continue
        small = after.get(op.name)
        before_shape = list(op.consts["weight"].shape)
        after_shape = list(small.consts["weight"].shape) if small else [0, 0]
        if before_shape == after_shape:
            continue
        record = {"layer": op.name, "rewrite": "drop dead units", "before": before_shape, "after": after_shape,
                  "macs_before": int(np.prod(before_shape)), "macs_after": int(np.prod(after_shape))}
        record.update(cost_model.layer_cycles([tensors[op.inputs[0]]], [op], [op.name],
                                              [new_tensors[small.inputs[0]]] if small else [],
                                              [small] if small else [], [op.name] if small else [], config))
        records.append(record)
    state = {s: [tensors[s].shape[1], len(slots)] for s, slots in new.state_slots.items()
             if len(slots) != tensors[s].shape[1]}
    if state:
        records.append({"layer": "state", "rewrite": "drop dead state slots",
                        "before": {s: v[0] for s, v in state.items()}, "after": {s: v[1] for s, v in state.items()},
                        "state_slots": {s: new.state_slots[s] for s in state}})
    return records


class FoldDeadUnits:
    """Remove dead hidden units (channels) across the recurrence; see the module docstring."""

    name = "fold_dead_units"
    must_run_before = ("tile_block_sparse",)

    def run(self, graph: IntegerGraph, config=None) -> tuple[IntegerGraph, list[dict]]:
        reason = check(graph)
        if reason:
            logger.debug("%s: graph left unchanged: %s", self.name, reason)
            return graph, []
        kept = kept_channels(graph)
        if all(k.all() for k in kept.values()):
            logger.debug("%s: graph left unchanged: every channel is live", self.name)
            return graph, []
        new = rewrite(graph, kept)
        records = _records(graph, new, config)
        logger.info("%s: %d of %d channels kept; state %s", self.name, sum(int(k.sum()) for k in kept.values()),
                    sum(len(k) for k in kept.values()),
                    {s: len(v) for s, v in new.state_slots.items()})
        return new, records
