"""The pass pipeline the Ethos-U compile runs by default, as one ordered list.

Each entry is a pass object with a ``name`` and ``run(graph) -> (graph, records)``; records are
dicts describing each rewrite (layer, shapes before/after, MACs before/after) for the report.
``--disable-pass NAME`` on the command line removes one by name.
"""

from __future__ import annotations

import copy
import logging

from tvmse.errors import ConfigError
from tvmse.ir import IntegerGraph
from tvmse.passes.fold_dead_units import FoldDeadUnits
from tvmse.passes.reorder_units import ReorderUnits
from tvmse.passes.tile_block_sparse import TileBlockSparse

logger = logging.getLogger(__name__)

PIPELINE: list = [
    # structure: shrink the network to what reaches an output, then densify what is left
    FoldDeadUnits(),
    ReorderUnits(),   # no layer by default (the boundary gathers cost more than they save); autotune decides
    TileBlockSparse(),
]


def check_order(pipeline: list) -> None:
    """Raise one error listing every ``must_run_before`` / ``must_run_after`` the list breaks."""
    position = {p.name: i for i, p in enumerate(pipeline)}
    broken = []
    for i, p in enumerate(pipeline):
        broken += [f"{p.name} must run before {n}" for n in getattr(p, "must_run_before", ()) if position.get(n, i + 1) < i]
        broken += [f"{p.name} must run after {n}" for n in getattr(p, "must_run_after", ()) if position.get(n, -1) > i]
    if broken:
        raise RuntimeError("pass pipeline order broken: " + "; ".join(broken))


check_order(PIPELINE)


def pass_names() -> list[str]:
    return [p.name for p in PIPELINE]


def check_disabled(disabled: tuple[str, ...]) -> None:
    unknown = sorted(set(disabled) - set(pass_names()))
    if unknown:
        raise ConfigError(f"unknown pass(es) {', '.join(unknown)}; passes: {', '.join(pass_names()) or 'none'}")


def run_pipeline(graph: IntegerGraph, disabled: tuple[str, ...] = (), config=None,
                 objective: str | None = None) -> tuple[IntegerGraph, list[dict]]:
    """Run the enabled passes; ``config`` (a VelaConfig) lets passes ask Vela to referee rewrites.

    ``objective``, without a config: the memory mode a pass's cost model ranks its rewrites for, in place
    of its default (``cost_model.CPU_OBJECTIVE``: the Cortex-M55's instructions)."""
    check_disabled(disabled)
    records: list[dict] = []
    for p in PIPELINE:
        if p.name in disabled:
            logger.info("pass %s disabled", p.name)
            continue
        if objective is not None and config is None and hasattr(p, "memory_mode"):
            p = copy.copy(p)
            p.memory_mode = objective
        graph, done = p.run(graph, config=config)
        records += [{"pass": p.name, **r} for r in done]
    return graph, records
