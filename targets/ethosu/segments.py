"""Split an integer graph into weight-placement segments, one Vela compile per segment.

Vela has no per-layer weight placement: a whole network has its weights in flash (``Shared_Sram``)
or in SRAM (``Sram_Only``). A network whose *layers* are placed one by one is therefore compiled as
a chain of segments, each a maximal run of the op list whose weighted ops share one placement::

    ops:        fc0  slice…  mul  fc1  add  fc2  logistic
    placement:  sram              flash      sram
    segments:   [fc0 slice… mul]  [fc1 add]  [fc2 logistic]
                 Sram_Only         Shared_Sram Sram_Only

Ops without weights join the segment open when they come (the first segment if none is). A
segment's inputs are the tensors it reads but does not produce (graph inputs or results of earlier
segments), its outputs the tensors it produces that a later segment or the caller reads. Each
segment is lowered with ``lower_to_tflite`` as an integer graph of its own, so any op kind the
lowering knows works here. Vela's network total is the plain sum of its per-op cycles (TOOLCHAIN.md,
"Tuning"), so the segments' totals add up to the network's.

A *layer* is the unit of placement: the ops one source op became. ``tile_block_sparse`` names its
pieces ``<layer>/tile<g>…``, so the layer of an op is its name up to ``/tile``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tvmse.ir import IntegerGraph, IntOp

SRAM_MODE = "Sram_Only"
_TILE_SUFFIX = re.compile(r"/tile\d+(/.*)?$")


def layer_of(op_name: str) -> str:
    """The layer (source op) an op of the compiled graph belongs to."""
    return _TILE_SUFFIX.sub("", op_name)


def has_weights(op: IntOp) -> bool:
    """True for ops that read a constant weight tensor (the ops whose placement matters)."""
    return "weight" in op.consts


def weighted_layers(graph: IntegerGraph) -> list[str]:
    """Layers with weights, in graph order."""
    found: dict[str, None] = {}
    for op in graph.ops:
        if has_weights(op):
            found.setdefault(layer_of(op.name))
    return list(found)


@dataclass
class Segment:
    """A contiguous run of ops compiled by Vela on its own."""

    index: int
    in_sram: bool          # weights of this segment's layers live in SRAM (Vela Sram_Only)
    graph: IntegerGraph    # the segment as an integer graph: inputs read, outputs needed later

    @property
    def layers(self) -> list[str]:
        return weighted_layers(self.graph)


def _runs(graph: IntegerGraph, placed: frozenset[str]) -> list[tuple[bool, list[IntOp]]]:
    runs: list[tuple[bool | None, list[IntOp]]] = []
    for op in graph.ops:
        where = (layer_of(op.name) in placed) if has_weights(op) else None
        if runs and (where is None or runs[-1][0] in (None, where)):
            runs[-1] = (where if runs[-1][0] is None else runs[-1][0], runs[-1][1] + [op])
        else:
            runs.append((where, [op]))
    return [(bool(where), ops) for where, ops in runs]


def split(graph: IntegerGraph, placed: frozenset[str] | set[str]) -> list[Segment]:
    """The segments of ``graph`` for the layers ``placed`` in SRAM (every other layer in flash).

    Raises ValueError naming layers of ``placed`` that have no weighted op in ``graph``.
    """
    placed = frozenset(placed)
    unknown = sorted(placed - set(weighted_layers(graph)))
    if unknown:
        raise ValueError(f"placement names layers without weights in this graph: {', '.join(unknown)}")
    tensors = graph.tensors()
    runs = _runs(graph, placed)
    produced_in = {op.name: k for k, (_, ops) in enumerate(runs) for op in ops}
    read_later: dict[int, set[str]] = {k: set() for k in range(len(runs))}
    for k, (_, ops) in enumerate(runs):
        for op in ops:
            for name in op.inputs:
                if name in produced_in and produced_in[name] != k:
                    read_later[produced_in[name]].add(name)
    segments = []
    for k, (in_sram, ops) in enumerate(runs):
        own = {op.name for op in ops}
        inputs: list[str] = []
        for op in ops:
            inputs += [name for name in op.inputs if name not in own and name not in inputs]
        outputs = [op.name for op in ops if op.name in read_later[k] or op.name in graph.outputs]
        sub = IntegerGraph(inputs=[tensors[name] for name in inputs], outputs=outputs, ops=list(ops))
        segments.append(Segment(k, in_sram, sub))
    return segments


def boundary_tensors(segments: list[Segment]) -> list[str]:
    """Tensors that outlive the segment that made them: the outputs of every segment but the last
    (read by a later segment, or a graph output made early). The firmware keeps them in a small
    persistent buffer while the segments share one arena; the last segment's outputs are copied
    out of the arena directly."""
    names: list[str] = []
    for seg in segments[:-1]:
        names += [name for name in seg.graph.outputs if name not in names]
    return names


#: alignment of each tensor in the keep buffer
KEEP_ALIGN = 4


def keep_layout(segments: list[Segment], graph: IntegerGraph) -> tuple[dict[str, int], int]:
    """Offsets of the boundary tensors in the keep buffer, and its size in bytes."""
    tensors = graph.tensors()
    offsets, size = {}, 0
    for name in boundary_tensors(segments):
        offsets[name] = size
        size += -(-int(np.prod(tensors[name].shape)) // KEEP_ALIGN) * KEEP_ALIGN
    return offsets, size
