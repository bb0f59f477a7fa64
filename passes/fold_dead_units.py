"""Fold dead units: drop every channel that cannot reach a model output at any future frame.

A tensor's channels are its last axis (a rank-0 tensor has one). The rewrites, before → after
(x', W', … hold the kept channels only)::

    FC(x[…, K], W[N, K])                  → FC(x'[…, k], W[n, k])
    conv_2d(x[…, I], W[O, KH, KW, I])     → conv_2d(x'[…, i], W[o, KH, KW, i])
        output channels n, o ∉ live dropped with their bias, multiplier, shift and weight scale;
        input channels k, i ∉ live dropped with their weight columns
    depthwise(x[…, C], W[1, KH, KW, C·M]) → depthwise(x'[…, c], W[1, KH, KW, c·M])
        output channels c·M … c·M+M−1 kept or dropped with input channel c
    add/sub/mul(a, b), logistic, tanh, rsqrt, requantize, leaky_relu, average/max pool, pad (not of the
    channel axis), mean (not over it), reshape (same last axis), transpose (last axis stays last),
    slice/concat on another axis          → the same op on the kept channels
        an operand broadcast over the channel axis (size 1: the constant 1 of a GRU's 1 − z) stays
    slice(x, b:e) on the channel axis     → slice(x', b':e'), the kept channels it reads (a run of
                                            x's kept channels)
    concat(parts) on the channel axis     → concat(parts'), parts left with no channel dropped
    constant[…, C]                        → constant[…, c]
    state input / output [… , H]          → [… , h]; ``IntegerGraph.state_slots`` maps each kept
                                            slot to its source slot, ``state_pairs`` are kept
    an op none of whose channels is live  → removed

Liveness (a least fixed point, channel by channel, backwards from the model outputs):

- the model outputs that are not streaming state are live in every channel, and so is every
  non-state graph input (the frame keeps its interface);
- FC and conv_2d: input channel k is live iff some live output channel n has a non-zero weight
  W[n, …, k] (the bias never makes an input live); depthwise: input c iff an output c·M+m;
  per-channel ops: operand channel j iff output channel j; a broadcast operand iff any output
  channel; slice on the channel axis: input channel begin+j iff output channel j; concat: per part;
- ops the pass cannot see through (a transpose that moves the last axis, a reshape that changes
  it, a pad of or a mean over the channel axis, softmax, any other op kind) make every channel of
  their operands live once any of their own is, and keep all of theirs;
- state: the state output channel j is live iff the state input channel j is (and back), so a
  unit that only feeds its own recurrence stays dead; a pair whose channel counts differ is kept
  whole.

The live sets are then closed so each op can run on the kept channels: a per-channel op keeps
the union of its operands' and result's sets on all of them, a depthwise convolution whole
channel groups, a channel slice what its input keeps between its first and last kept channel,
a concat what its parts keep, a live FC or conv at least one input channel, a state at least one
slot. Keeping a superset of the live channels is always exact; the closure only adds channels.

A pruned LSTM or GRU unit (its gate rows, their biases, its recurrent and consumer columns zero)
and a pruned convolution channel (its filter, bias and consumer columns zero) have no live
consumer, so they vanish. A unit whose incoming rows are zero but whose outgoing columns are not
is *live* (its gates are constants, its state still recurs), and is kept.

Matches: any integer graph (every op kind; what the pass cannot see through is kept whole).
Preconditions: streaming state pairs in ``IntegerGraph.state_pairs`` (or named 'h0' → 'h0_out',
``targets.host.reference.streaming_state_pairs``).
Leaves unchanged: graphs without dead channels; graph inputs and outputs that are not state.
Numerics: bit-exact on every non-state output and on every kept state slot, for any state values
(dead channels never reach a kept one).
Must run before: tile_block_sparse (tiling should see the compacted weights).

Aligned variant (``FoldDeadUnits(align=A)``, an autotune decision): before the rewrite, dead state
slots are kept back, lowest-numbered first, until every folded state is a multiple of A slots wide
or whole, and the sets are closed again (``aligned_channels``). Dropping one unit of 256 moves an
LSTM's four gate slices off the NPU's 16-row output grid; keeping it is exact and can be faster.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from tvmse.ir import IntegerGraph, IntOp, TensorInfo
from tvmse.passes import cost_model

logger = logging.getLogger(__name__)

PER_CHANNEL = ("add", "sub", "mul", "logistic", "tanh", "rsqrt", "requantize", "leaky_relu", "average_pool", "max_pool")
WEIGHTED = ("fully_connected", "conv_2d", "depthwise_conv_2d")
Kept = dict[str, np.ndarray]  # tensor name → bool per channel


def state_pairs(graph: IntegerGraph) -> dict[str, str]:
    from tvmse.targets.host.reference import streaming_state_pairs
    return streaming_state_pairs(graph)


def channels(t: TensorInfo) -> int:
    return int(t.shape[-1]) if t.shape else 1


# ---- match: how each op maps channels -----------------------------------------------------------
def channel_rule(op: IntOp, tensors: dict[str, TensorInfo]) -> tuple[str, str]:
    """(rule, why): how ``op`` maps its operands' channels to its result's.

    Rules: the weighted kinds by name; ``elementwise`` (output channel j reads channel j of each
    operand, or channel 0 of one broadcast over the channel axis); ``channel_slice``,
    ``channel_concat``; ``constant``; ``opaque`` (every channel may read every channel)."""
    ins = [tensors[n] for n in op.inputs]
    rank, out_c = len(op.output.shape), channels(op.output)
    last = rank - 1
    if op.kind in WEIGHTED or op.kind == "constant":
        return op.kind, ""
    if op.kind in ("slice", "concat") and op.attrs["axis"] == last:
        return f"channel_{op.kind}", ""
    if op.kind == "reshape" and channels(ins[0]) != out_c:
        return "opaque", f"reshape {ins[0].shape} → {op.output.shape} changes the last axis"
    if op.kind == "transpose" and op.attrs["perm"][-1] != last:
        return "opaque", f"transpose {op.attrs['perm']} moves the last axis"
    if op.kind == "pad" and list(op.attrs["paddings"][-1]) != [0, 0]:
        return "opaque", "pads the channel axis"
    if op.kind == "mean" and len(ins[0].shape) - 1 in op.attrs["axes"]:
        return "opaque", "averages over the channel axis"
    if op.kind == "softmax":
        return "opaque", "softmax normalises over the channel axis"
    if op.kind not in PER_CHANNEL + ("slice", "concat", "reshape", "transpose", "pad", "mean"):
        return "opaque", f"op kind '{op.kind}' is not analysed"
    if any(channels(t) not in (out_c, 1) for t in ins):
        return "opaque", f"operand channels {[channels(t) for t in ins]} against {out_c}"
    return "elementwise", ""


def _full_operands(op: IntOp, kept: Kept) -> list[str]:
    """Operands with as many channels as the result (the others are broadcast over the channel axis)."""
    n = len(kept[op.name])
    return [name for name in op.inputs if len(kept[name]) == n]


def _needed_columns(op: IntOp, out: np.ndarray) -> np.ndarray:
    """Input channels of a FC or conv_2d that some kept output channel reads with a non-zero weight."""
    w = op.consts["weight"][out]
    return (w != 0).reshape(-1, w.shape[-1]).any(axis=0)


def _backward(op: IntOp, rule: str, kept: Kept) -> None:
    """Make live every operand channel that a live channel of ``op``'s result reads."""
    out = kept[op.name]
    if rule in ("fully_connected", "conv_2d"):
        x = kept[op.inputs[0]]
        x |= _needed_columns(op, out)
        if out.any() and not x.any():
            x[0] = True  # a live FC/conv needs an input to read, even if all its live rows are zero
    elif rule == "depthwise_conv_2d":
        x = kept[op.inputs[0]]
        x |= out.reshape(len(x), -1).any(axis=1)
    elif rule == "elementwise":
        for name in op.inputs:
            kept[name] |= out if len(kept[name]) == len(out) else out.any()
    elif rule == "channel_slice":
        kept[op.inputs[0]][op.attrs["begin"]:op.attrs["end"]] |= out
    elif rule == "channel_concat":
        start = 0
        for name in op.inputs:
            n = len(kept[name])
            kept[name] |= out[start:start + n]
            start += n
    elif rule == "opaque" and out.any():
        for name in op.inputs:
            kept[name][:] = True


def _close(op: IntOp, rule: str, kept: Kept) -> None:
    """Widen the kept sets of a live op so that it can run on them (see the module docstring)."""
    out = kept[op.name]
    if not out.any():
        return
    if rule == "depthwise_conv_2d":
        x = kept[op.inputs[0]]
        x |= out.reshape(len(x), -1).any(axis=1)
        out[:] = np.repeat(x, len(out) // len(x))
    elif rule == "elementwise":
        full = _full_operands(op, kept)
        for name in full:
            out |= kept[name]
        for name in full:
            kept[name][:] = out
        for name in set(op.inputs) - set(full):
            kept[name][:] = True
    elif rule == "channel_slice":  # a contiguous run of the input's kept channels
        first, last = np.flatnonzero(out)[[0, -1]]
        out[first:last + 1] |= kept[op.inputs[0]][op.attrs["begin"] + first:op.attrs["begin"] + last + 1]
    elif rule == "channel_concat":
        start = 0
        for name in op.inputs:
            n = len(kept[name])
            out[start:start + n] |= kept[name]
            start += n
    elif rule == "opaque":
        out[:] = True


def _close_state(graph: IntegerGraph, pairs: dict[str, str], kept: Kept) -> None:
    for state_in, state_out in pairs.items():
        if len(kept[state_in]) != len(kept[state_out]):
            kept[state_in][:] = kept[state_out][:] = True  # no channel correspondence: keep the pair whole
            continue
        both = kept[state_in] | kept[state_out]
        if not both.any():
            both[0] = True  # keep the state interface non-empty
        kept[state_in][:] = kept[state_out][:] = both


def kept_channels(graph: IntegerGraph, seeds: Kept | None = None) -> Kept:
    """Live channels of every tensor, closed so that every op can run on them (see module doc).
    ``seeds``: channels to keep in any case (a superset of the live ones is always exact)."""
    tensors = graph.tensors()
    pairs = state_pairs(graph)
    rules = {op.name: channel_rule(op, tensors)[0] for op in graph.ops}
    kept = {name: np.zeros(channels(t), bool) for name, t in tensors.items()}
    for name, seed in (seeds or {}).items():
        kept[name] |= seed
    for t in graph.inputs:
        if t.name not in pairs:
            kept[t.name][:] = True
    for name in graph.outputs:
        if name not in pairs.values():
            kept[name][:] = True
    while True:
        before = [k.copy() for k in kept.values()]
        for op in reversed(graph.ops):
            _backward(op, rules[op.name], kept)
        for op in graph.ops:
            _close(op, rules[op.name], kept)
        _close_state(graph, pairs, kept)
        if all(np.array_equal(a, b) for a, b in zip(before, kept.values())):
            return kept


def aligned_channels(graph: IntegerGraph, kept: Kept, align: int) -> Kept:
    """``kept`` with dead state slots kept back (the lowest-numbered first) until every folded state is a
    multiple of ``align`` slots wide or whole, then closed again: the fold that keeps the gate rows of a
    recurrent layer on the NPU's ``align``-row output grid (``FoldDeadUnits(align=…)``)."""
    pairs = state_pairs(graph)
    while True:
        seeds = {s: kept[s].copy() for s in pairs}
        for s, keep in seeds.items():
            count, total = int(keep.sum()), len(keep)
            want = min(total, -(-count // align) * align)
            keep[np.flatnonzero(~keep)[:want - count]] = True
        if all(np.array_equal(seeds[s], kept[s]) for s in pairs):
            return kept
        kept = kept_channels(graph, seeds)


# ---- rewrite ------------------------------------------------------------------------------------
def _shrunk(t: TensorInfo, keep: np.ndarray) -> TensorInfo:
    if not t.shape or keep.all():
        return t
    return replace(t, shape=(*t.shape[:-1], int(keep.sum())))


def _rows(op: IntOp, rows: np.ndarray, weight: np.ndarray) -> tuple[dict, dict]:
    """The consts and attrs of a weighted op keeping output channels ``rows`` and weight ``weight``."""
    consts = {"weight": weight, **{c: op.consts[c][rows] for c in ("bias", "multiplier", "shift")}}
    return consts, dict(op.attrs, weight_scales=[op.attrs["weight_scales"][r] for r in rows])


def _rewrite_op(op: IntOp, rule: str, kept: Kept) -> IntOp | None:
    out = kept[op.name]
    if not out.any():
        return None
    new = replace(op, inputs=list(op.inputs), output=_shrunk(op.output, out), consts=dict(op.consts),
                  attrs=dict(op.attrs))
    rows = np.flatnonzero(out)
    if rule in ("fully_connected", "conv_2d"):
        w = op.consts["weight"][rows]
        new.consts, new.attrs = _rows(op, rows, w[..., np.flatnonzero(kept[op.inputs[0]])])
    elif rule == "depthwise_conv_2d":
        new.consts, new.attrs = _rows(op, rows, op.consts["weight"][..., rows])
    elif rule == "channel_slice":
        begin = int(kept[op.inputs[0]][:op.attrs["begin"] + rows[0]].sum())
        new.attrs.update(begin=begin, end=begin + len(rows))
    elif rule == "channel_concat":
        new.inputs = [n for n in op.inputs if kept[n].any()]
    elif rule == "constant" and op.output.shape:
        new.consts["value"] = op.consts["value"][..., rows]
    return new


def rewrite(graph: IntegerGraph, kept: Kept) -> IntegerGraph:
    """The graph restricted to the ``kept`` channels, with the state slot mapping updated."""
    tensors = graph.tensors()
    ops = [new for op in graph.ops if (new := _rewrite_op(op, channel_rule(op, tensors)[0], kept)) is not None]
    inputs = [_shrunk(t, kept[t.name]) for t in graph.inputs]
    slots = dict(graph.state_slots)
    for state_in in state_pairs(graph):
        source = graph.state_slots.get(state_in, list(range(channels(tensors[state_in]))))
        slots[state_in] = [int(source[j]) for j in np.flatnonzero(kept[state_in])]
    return IntegerGraph(inputs=inputs, outputs=list(graph.outputs), ops=ops, state_slots=slots,
                        state_pairs=dict(graph.state_pairs))


def _op_macs(op: IntOp | None) -> int:
    return IntegerGraph([], [], [op]).macs() if op is not None else 0


def _records(graph: IntegerGraph, new: IntegerGraph, config) -> list[dict]:
    after = {op.name: op for op in new.ops}
    tensors, new_tensors = graph.tensors(), new.tensors()
    records = []
    for op in graph.ops:
        if op.kind not in WEIGHTED:
            continue
        small = after.get(op.name)
        before_shape = list(op.consts["weight"].shape)
        after_shape = list(small.consts["weight"].shape) if small else [0] * len(before_shape)
        if before_shape == after_shape:
            continue
        record = {"layer": op.name, "rewrite": "drop dead units" if op.kind == "fully_connected" else
                  "drop dead channels", "before": before_shape, "after": after_shape,
                  "macs_before": _op_macs(op), "macs_after": _op_macs(small)}
        record.update(cost_model.layer_cycles([tensors[op.inputs[0]]], [op], [op.name],
                                              [new_tensors[small.inputs[0]]] if small else [],
                                              [small] if small else [], [op.name] if small else [], config))
        records.append(record)
    state = {s: [channels(tensors[s]), len(slots)] for s, slots in new.state_slots.items()
             if len(slots) != channels(tensors[s])}
    if state:
        records.append({"layer": "state", "rewrite": "drop dead state slots",
                        "before": {s: v[0] for s, v in state.items()}, "after": {s: v[1] for s, v in state.items()},
                        "state_slots": {s: new.state_slots[s] for s in state}})
    return records


class FoldDeadUnits:
    """Remove dead hidden units and channels across the recurrence; see the module docstring.

    ``align``: keep each folded streaming state a multiple of ``align`` slots wide (or whole) by keeping
    some dead units (exact: a superset of the live channels), so that an LSTM's four gate slices of the
    FC output start on the NPU's output grid (16 rows on Ethos-U55); autotune's tile-aligned fold."""

    name = "fold_dead_units"
    must_run_before = ("tile_block_sparse",)

    def __init__(self, align: int | None = None):
        self.align = align

    def run(self, graph: IntegerGraph, config=None) -> tuple[IntegerGraph, list[dict]]:
        tensors = graph.tensors()
        for op in graph.ops:
            rule, why = channel_rule(op, tensors)
            if rule == "opaque":
                logger.debug("%s: %s keeps every channel of its operands: %s", self.name, op.name, why)
        kept = kept_channels(graph)
        if self.align:
            kept = aligned_channels(graph, kept, self.align)
        if all(k.all() for k in kept.values()):
            logger.debug("%s: graph left unchanged: every channel is live", self.name)
            return graph, []
        new = rewrite(graph, kept)
        records = _records(graph, new, config)
        logger.info("%s: %d of %d channels kept; state %s", self.name, sum(int(k.sum()) for k in kept.values()),
                    sum(len(k) for k in kept.values()),
                    {s: len(v) for s, v in new.state_slots.items()})
        return new, records
