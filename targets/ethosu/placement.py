"""Greedy weight placement under an SRAM budget: which layers keep their weights in SRAM.

Where weights live is the big lever on an Ethos-U55 with flash (``Shared_Sram``): every weight
byte streams from flash at about one byte per cycle, while a layer whose weights sit in SRAM is
compute-bound. The decision is made per layer (all ops one source op became), never per tile:
placing tiles one by one costs extra copies that no estimate foresees.

    1. the network with every layer in flash (one segment: the default build);
    2. each layer alone in SRAM (one segmented build each, Vela's estimate): its gain in cycles
       and the SRAM its encoded weights take;
    3. layers by gain per byte, best first, taken while the SRAM used (shared arena, boundary
       buffer, weights placed so far, as measured) stays within the budget;
    4. the chosen placement is built; if it is over the budget (arena or boundary grew) the layer
       with the least gain per byte is dropped and it is rebuilt; if it is not faster than the
       default build, the default (nothing placed) is kept.

The result never exceeds the budget (its SRAM is measured, not predicted) and is never slower
than the default build. Each step is one Vela run per segment (~0.1 s each here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tvmse.errors import BudgetError
from tvmse.ir import IntegerGraph
from tvmse.targets.ethosu import SegmentedBuild, build_segmented
from tvmse.targets.ethosu.segments import weighted_layers
from tvmse.targets.ethosu.vela_driver import VelaConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerGain:
    layer: str
    gain_cycles: int     # cycles saved with this layer alone in SRAM (segmented build, Vela)
    sram_bytes: int      # its encoded weights and scales in SRAM

    @property
    def per_byte(self) -> float:
        return self.gain_cycles / max(self.sram_bytes, 1)


@dataclass
class GreedyPlacement:
    build: SegmentedBuild            # the chosen build (the default one if nothing pays)
    default: SegmentedBuild          # every layer in flash
    gains: list[LayerGain]           # per layer, best gain per byte first
    budget: int
    builds: int                      # segmented builds made to decide


def layer_gains(graph: IntegerGraph, config: VelaConfig, default: SegmentedBuild) -> tuple[list[LayerGain], int]:
    """Each weighted layer placed alone in SRAM, best gain per byte first; and the most SRAM besides
    weights (arena + boundary buffer) any of those builds needed."""
    gains, overhead = [], default.sram_bytes
    for layer in weighted_layers(graph):
        alone = build_segmented(graph, config, {layer})
        gains.append(LayerGain(layer, default.total_cycles - alone.total_cycles, alone.sram_weight_bytes))
        overhead = max(overhead, alone.sram_bytes - alone.sram_weight_bytes)
    return sorted(gains, key=lambda g: (-g.per_byte, g.layer)), overhead


def _pick(gains: list[LayerGain], budget: int, fixed_bytes: int) -> list[LayerGain]:
    chosen, used = [], fixed_bytes
    for gain in gains:
        if gain.gain_cycles > 0 and used + gain.sram_bytes <= budget:
            chosen.append(gain)
            used += gain.sram_bytes
    return chosen


def check_default_fits(default: SegmentedBuild, budget: int) -> None:
    if default.sram_bytes > budget:
        raise BudgetError(f"the network needs {default.sram_bytes:,} B of SRAM with every weight in flash "
                          f"(Vela's arena), more than --sram-budget {budget:,} B; raise the budget")


def greedy_placement(graph: IntegerGraph, config: VelaConfig, budget: int) -> GreedyPlacement:
    """Place layers in SRAM greedily under ``budget`` bytes; see the module docstring."""
    config = config.resolved()
    default = build_segmented(graph, config, ())
    check_default_fits(default, budget)
    gains, overhead = layer_gains(graph, config, default)
    builds = 1 + len(gains)
    # besides weights a segmented build needs its arena and boundary buffer: taken from the one-layer
    # builds, checked on the real build below (more segments may keep more tensors alive)
    chosen = _pick(gains, budget, overhead)
    while chosen:
        placed = build_segmented(graph, config, {g.layer for g in chosen})
        builds += 1
        if placed.sram_bytes <= budget:
            if placed.total_cycles < default.total_cycles:
                logger.info("placement: %s in SRAM: %d → %d cycles, SRAM %d of %d B",
                            ", ".join(sorted(placed.placement)), default.total_cycles, placed.total_cycles,
                            placed.sram_bytes, budget)
                return GreedyPlacement(placed, default, gains, budget, builds)
            logger.info("placement %s is not faster than the default build (%d ≥ %d cycles)",
                        sorted(placed.placement), placed.total_cycles, default.total_cycles)
            break
        logger.info("placement %s needs %d B > budget %d B; dropping %s", sorted(placed.placement),
                    placed.sram_bytes, budget, chosen[-1].layer)
        chosen = sorted(chosen, key=lambda g: -g.per_byte)[:-1]
    return GreedyPlacement(default, default, gains, budget, builds)

