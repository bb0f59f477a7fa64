"""Tile block-sparse FCs and 1×1 convolutions: one dense op per group of output rows, over the input
channels it uses.

    y = FC(x, W[N×K])   →   x_g = concat(slice(x, run) for run in runs_g)       (gathered columns)
                            y_g = FC(x_g, W[rows_g, cols_g])                     (rows_g contiguous)
                            y   = concat(y_0, …, y_G−1)                          (original name)

    y = conv_2d(x, W[O×1×1×I])  →  the same with conv_2d(x_g, W[rows_g, 1, 1, cols_g]) per group (same
                                   strides and padding), slices and concatenations on the channel axis

Every output row keeps its whole reduction in one op: ``cols_g`` holds every column in which a
row of the group has a non-zero weight, so Σ_k (x_k − zp)·W[n,k] is unchanged (the dropped terms
are zero) and the row's bias, multiplier, shift and weight scale are sliced with it; each group
keeps the op's kind, so its requantization is the original one. Splitting a row's reduction would
requantize partial sums and is never done. A 1×1 convolution is an FC over the channel axis at
every output position (padded positions read zero-centred inputs in every group alike).

Choices per layer (``Tiling`` candidates, on the weight as an [N, K] matrix; for the Cortex-M55 the
"memory mode" ``cost_model.CPU_OBJECTIVE`` ranks them by the CPU's modelled instructions instead): the rows are cut into
row blocks of the FC output step (16 on Ethos-U55), the columns into granules (16 or 32,
``arch.col_granules``); a dynamic program over contiguous row-block groups minimises the cost model
(fewer, larger kernels against fewer MACs and fewer gathered runs), next to the finest cut (one
group per row block). The cost model (``passes.cost_model``, fitted on one-row FCs) ranks the
candidates with the layer left alone; Vela then compiles the layer alone and the best two
candidates, and the fastest is applied only if Vela's total cycles beat the untouched layer. In
Shared_Sram Vela's weight codec already takes most of the gain, so this often leaves a layer alone.
For a 1×1 convolution over several positions the model's figures are per position: only Vela's
referee (``config`` given) measures the real trade-off.

Matches: fully_connected ops reading one row (input [..., K] with every other axis 1) and 1×1
conv_2d ops (any input size, strides and padding) whose weight has an all-zero
(row block × granule) tile.
Preconditions: none beyond the integer form's (slices and concatenations run on the last axis).
Leaves unchanged: dense layers; FCs over several rows; convolutions with larger kernels; layers
whose tilings the cost model or Vela call slower (logged with the reason); every other op.
Numerics: bit-exact (same integer reduction, same requantization per row).
Must run after: fold_dead_units (tiles the compacted weights).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from tvmse.ir import IntegerGraph, IntOp, TensorInfo, build
from tvmse.passes import cost_model
from tvmse.passes.arch import EthosUArch, arch_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    rows: tuple[int, int]              # [begin, end) of output rows
    runs: tuple[tuple[int, int], ...]  # [begin, end) runs of input columns, ascending

    @property
    def cols(self) -> np.ndarray:
        return np.concatenate([np.arange(b, e) for b, e in self.runs])


@dataclass(frozen=True)
class Tiling:
    name: str
    groups: tuple[Group, ...]

    def macs(self) -> int:
        return sum((g.rows[1] - g.rows[0]) * sum(e - b for b, e in g.runs) for g in self.groups)


def untouched(weight: np.ndarray) -> Tiling:
    n, k = weight.shape
    return Tiling("untouched", (Group((0, n), ((0, k),)),))


# ---- cost ---------------------------------------------------------------------------------------
def group_cycles(arch: EthosUArch, memory_mode: str, weight: np.ndarray, group: Group, full_width: int) -> float:
    """Cost of one group: Vela's cycles, or the Cortex-M55's instructions for ``cost_model.CPU_OBJECTIVE``."""
    r0, r1 = group.rows
    cols = group.cols
    if memory_mode == cost_model.CPU_OBJECTIVE:
        return (cost_model.cpu_fc_instructions(r1 - r0, len(cols))
                + cost_model.cpu_gather_instructions([e - b for b, e in group.runs], full_width))
    nonzero = int(np.count_nonzero(weight[r0:r1][:, cols]))
    fc = cost_model.fc_cycles(arch, memory_mode, r1 - r0, len(cols), nonzero)
    return fc + cost_model.gather_cycles(arch, [e - b for b, e in group.runs])


def tiling_cycles(arch: EthosUArch, memory_mode: str, weight: np.ndarray, tiling: Tiling) -> float:
    return sum(group_cycles(arch, memory_mode, weight, g, weight.shape[1]) for g in tiling.groups)


# ---- candidates ---------------------------------------------------------------------------------
def _runs(granules: np.ndarray, granule: int, width: int) -> tuple[tuple[int, int], ...]:
    """Column runs [b, e) covering the kept granules (granule 0 if none: a live FC needs an input)."""
    kept = np.flatnonzero(granules) if granules.any() else np.array([0])
    runs, start, prev = [], kept[0], kept[0]
    for j in kept[1:]:
        if j != prev + 1:
            runs.append((start, prev))
            start = j
        prev = j
    runs.append((start, prev))
    return tuple((int(b * granule), int(min((e + 1) * granule, width))) for b, e in runs)


def _block_masks(weight: np.ndarray, rows: int, granule: int) -> np.ndarray:
    """[row blocks, granules] bool: does the tile hold a non-zero weight."""
    n, k = weight.shape
    nz = weight != 0
    pad = np.zeros((-(-n // rows) * rows, -(-k // granule) * granule), bool)
    pad[:n, :k] = nz
    return pad.reshape(pad.shape[0] // rows, rows, pad.shape[1] // granule, granule).any(axis=(1, 3))


def _group(weight: np.ndarray, masks: np.ndarray, a: int, b: int, rows: int, granule: int) -> Group:
    n, k = weight.shape
    return Group((a * rows, min(b * rows, n)), _runs(masks[a:b].any(axis=0), granule, k))


def grouped(weight: np.ndarray, cuts: list[int], rows: int, granule: int, name: str) -> Tiling:
    """The tiling whose groups are row blocks [cuts[i], cuts[i+1])."""
    masks = _block_masks(weight, rows, granule)
    return Tiling(name, tuple(_group(weight, masks, a, b, rows, granule) for a, b in zip(cuts, cuts[1:])))


def optimal(arch: EthosUArch, memory_mode: str, weight: np.ndarray, granule: int) -> Tiling:
    """Contiguous row-block grouping of least modelled cost (dynamic program over cut points)."""
    rows = arch.row_block
    masks = _block_masks(weight, rows, granule)
    count = masks.shape[0]
    best, cut_from = [0.0] + [float("inf")] * count, [0] * (count + 1)
    for a in range(count):
        for b in range(a + 1, count + 1):
            cost = best[a] + group_cycles(arch, memory_mode, weight, _group(weight, masks, a, b, rows, granule),
                                          weight.shape[1])
            if cost < best[b]:
                best[b], cut_from[b] = cost, a
    cuts = [count]
    while cuts[-1] > 0:
        cuts.append(cut_from[cuts[-1]])
    return grouped(weight, cuts[::-1], rows, granule, f"grouped/{granule}")


def candidates(arch: EthosUArch, memory_mode: str, weight: np.ndarray, unique: bool = True) -> list[Tiling]:
    """The tilings offered for one layer (the layer left alone first); ``unique``: without duplicates."""
    found = [untouched(weight)]
    count = -(-weight.shape[0] // arch.row_block)
    for granule in arch.col_granules:
        found.append(optimal(arch, memory_mode, weight, granule))
        found.append(grouped(weight, list(range(count + 1)), arch.row_block, granule, f"row-blocks/{granule}"))
    if not unique:
        return found
    distinct = {}
    for t in found:
        distinct.setdefault(t.groups, t)
    return list(distinct.values())


# ---- match / check / rewrite ---------------------------------------------------------------------
def matrix(op: IntOp) -> np.ndarray:
    """The weight as an [outputs, input channels] matrix (a 1×1 conv's [O, 1, 1, I] → [O, I])."""
    weight = op.consts["weight"]
    return weight.reshape(weight.shape[0], weight.shape[-1])


def match(graph: IntegerGraph) -> list[IntOp]:
    """FCs reading one row ([..., K] with every other axis 1) and 1×1 convolutions."""
    tensors = graph.tensors()
    return [op for op in graph.ops
            if (op.kind == "fully_connected" and int(np.prod(tensors[op.inputs[0]].shape[:-1])) == 1)
            or (op.kind == "conv_2d" and op.consts["weight"].shape[1:3] == (1, 1))]


def check(op: IntOp, arch: EthosUArch) -> str | None:
    """None if the layer has an all-zero tile to skip, else why it is left alone."""
    weight = matrix(op)
    if min(arch.col_granules) >= weight.shape[1] and weight.shape[0] <= arch.row_block:
        return "smaller than one tile"
    if _block_masks(weight, arch.row_block, min(arch.col_granules)).all():
        return "no all-zero tile"
    return None


def _macs(ops: list[IntOp]) -> int:
    return IntegerGraph([], [], list(ops)).macs()


def rewrite(op: IntOp, x: TensorInfo, tiling: Tiling) -> list[IntOp]:
    """The ops computing ``op`` by ``tiling``; the last one writes ``op``'s output tensor."""
    ops, parts = [], []
    single = len(tiling.groups) == 1
    axis = len(x.shape) - 1
    for g, group in enumerate(tiling.groups):
        prefix = f"{op.name}/tile{g}"
        if group.runs == ((0, x.shape[axis]),):
            source = x
        elif len(group.runs) == 1:
            ops.append(build.slice_(f"{prefix}/x", x, *group.runs[0], axis=axis))
            source = ops[-1].output
        else:
            pieces = [build.slice_(f"{prefix}/x{r}", x, b, e, axis=axis) for r, (b, e) in enumerate(group.runs)]
            ops += pieces + [build.concat(f"{prefix}/x", [p.output for p in pieces], axis=axis)]
            source = ops[-1].output
        r0, r1 = group.rows
        rows, cols = np.arange(r0, r1), group.cols
        output = TensorInfo(op.name if single else prefix, (*op.output.shape[:-1], r1 - r0), op.output.scale,
                            op.output.zero_point)
        consts = {"weight": op.consts["weight"][rows][..., cols]}
        consts.update({c: op.consts[c][rows] for c in ("bias", "multiplier", "shift")})
        ops.append(IntOp(op.kind, [source.name], output, consts,
                         dict(op.attrs, weight_scales=list(op.attrs["weight_scales"][r0:r1]))))
        parts.append(output)
    if not single:
        ops.append(build.concat(op.name, parts, axis=len(op.output.shape) - 1))
    return ops


def choose(op: IntOp, x: TensorInfo, arch: EthosUArch, memory_mode: str, config, vela_tries: int = 4):
    """(tiling or None, record): the model's best candidates, refereed by Vela when ``config`` is given."""
    weight = matrix(op)
    ranked = sorted(((tiling_cycles(arch, memory_mode, weight, t), t) for t in candidates(arch, memory_mode, weight)),
                    key=lambda ct: ct[0])
    model = {t.name: round(c) for c, t in ranked}
    tiled = [(c, t) for c, t in ranked if t.name != "untouched"]
    record = {"layer": op.name, "before": list(op.consts["weight"].shape), "macs_before": _macs([op]),
              "model_cycles": model, "memory_mode": memory_mode}
    if not tiled or tiled[0][0] >= model["untouched"]:
        return None, dict(record, decision="left alone: the cost model finds no cheaper tiling")
    if config is None:
        return tiled[0][1], dict(record, decision=f"{tiled[0][1].name} (cost model only)")
    from tvmse.passes.vela_probe import vela_estimate
    base = vela_estimate([x], [op], [op.name], config)
    measured = {"untouched": base.total_cycles}
    best, best_est = None, base
    for _, tiling in tiled[:vela_tries]:
        est = vela_estimate([x], rewrite(op, x, tiling), [op.name], config)
        measured[tiling.name] = est.total_cycles
        if est.total_cycles < best_est.total_cycles:
            best, best_est = tiling, est
    record.update(vela_cycles=measured, cycles_before=base.total_cycles, npu_cycles_before=base.npu_cycles,
                  cycles_source=f"Vela, layer on its own ({config.accelerator}, {config.memory_mode})")
    if best is None:
        return None, dict(record, decision="left alone: Vela finds every tried tiling slower")
    return best, dict(record, decision=best.name, cycles_after=best_est.total_cycles,
                      npu_cycles_after=best_est.npu_cycles)


class TileBlockSparse:
    """Rewrite block-sparse FCs and 1×1 convolutions into dense kernels over their non-zero tiles; see
    the module docstring.

    ``config`` (a VelaConfig) sets the memory mode the cost model optimises for and lets Vela
    referee every choice; without one (unit tests) the cost model alone decides, for
    ``memory_mode`` given here.
    """

    name = "tile_block_sparse"
    must_run_after = ("fold_dead_units",)

    def __init__(self, memory_mode: str = "Shared_Sram", accelerator: str = "ethos-u55-128", force: str | None = None):
        self.memory_mode, self.accelerator, self.force = memory_mode, accelerator, force

    def run(self, graph: IntegerGraph, config=None) -> tuple[IntegerGraph, list[dict]]:
        accelerator = config.accelerator if config is not None else self.accelerator
        memory_mode = (config.resolved().memory_mode if config is not None else None) or self.memory_mode
        if config is not None:
            config = config.resolved()
        arch = arch_for(accelerator)
        tensors = graph.tensors()
        replaced: dict[str, list[IntOp]] = {}
        records = []
        for op in match(graph):
            reason = check(op, arch)
            if reason:
                logger.debug("%s: %s left alone: %s", self.name, op.name, reason)
                continue
            x = tensors[op.inputs[0]]
            if self.force:
                tiling = next((t for t in candidates(arch, memory_mode, matrix(op), unique=False)
                              if t.name == self.force), None)
                record = {"layer": op.name, "before": list(op.consts["weight"].shape), "macs_before": _macs([op]),
                          "decision": f"{self.force} (forced)"}
            else:
                tiling, record = choose(op, x, arch, memory_mode, config)
            logger.info("%s: %s: %s", self.name, op.name, record["decision"])
            if tiling is None or tiling.name == "untouched":
                continue
            replaced[op.name] = rewrite(op, x, tiling)
            kernels = [o for o in replaced[op.name] if o.kind == op.kind]
            layer = "FC" if op.kind == "fully_connected" else "1×1 conv"
            records.append(dict(record, rewrite=f"tile block-sparse {layer}",
                                after=[list(o.consts["weight"].shape) for o in kernels], macs_after=_macs(kernels),
                                gather_runs=sum(len(g.runs) for g in tiling.groups if len(g.runs) > 1)))
        if not replaced:
            return graph, records
        ops = [new for op in graph.ops for new in replaced.get(op.name, [op])]
        return replace(graph, ops=ops), records
