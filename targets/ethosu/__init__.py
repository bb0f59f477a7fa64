"""Ethos-U target: integer form → int8 TFLite (checked bit-exact) → Vela → deployable model + figures.

``build`` compiles the whole network in one memory mode. ``build_segmented`` compiles it as a
chain of placement segments (``segments``): layers placed in SRAM with Vela's ``Sram_Only``, the
rest in the configured mode, one Vela run per segment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from tvmse.ir import IntegerGraph
from tvmse.targets.ethosu import segments as segmenting
from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
from tvmse.targets.ethosu.vela_driver import VelaConfig, VelaResult, compile_tflite

logger = logging.getLogger(__name__)


@dataclass
class EthosUBuild:
    tflite: bytes          # the int8 model handed to Vela (runs in the TFLite interpreter)
    vela: VelaResult       # Vela's optimised model and performance estimates
    verified_trials: int   # random input sets on which TFLite == host reference, bit for bit


def build(graph: IntegerGraph, config: VelaConfig, reference=None, verify_trials: int = 8,
          name: str = "model") -> EthosUBuild:
    """Lower, verify against ``reference`` (a HostReference; skipped when None), compile with Vela."""
    tflite = lower_to_tflite(graph, description=f"tvmse: {name}")
    if reference is not None and verify_trials > 0:
        logger.info("checking the TFLite model against the host reference (%d random inputs)", verify_trials)
        check_against_host(graph, tflite, reference, n_trials=verify_trials)
    logger.info("compiling with Vela (%s)", config.describe() if config.system_config else config.accelerator)
    vela = compile_tflite(tflite, config, name=name)
    return EthosUBuild(tflite, vela, verify_trials if reference is not None else 0)


@dataclass
class SegmentBuild:
    """One placement segment as Vela compiled it."""

    segment: segmenting.Segment
    tflite: bytes
    vela: VelaResult
    arena_bytes: int           # Vela's planned scratch area (feature maps) for this segment
    sram_weight_bytes: int     # read-only data (encoded weights, scales) copied into SRAM; 0 in flash

    @property
    def memory_mode(self) -> str:
        return self.vela.config.memory_mode


@dataclass
class SegmentedBuild:
    """A network compiled segment by segment; cycles add up (Vela's total is the sum over ops)."""

    graph: IntegerGraph
    config: VelaConfig         # accelerator, system config, memory mode of the layers in flash
    placement: frozenset[str]
    segments: list[SegmentBuild]
    boundary_bytes: int        # tensors kept between segments (and graph outputs), a persistent buffer
    verified_trials: int = 0
    layer_cycles: dict[str, int] = field(default_factory=dict)

    @property
    def total_cycles(self) -> int:
        return sum(s.vela.total_cycles for s in self.segments)

    @property
    def npu_cycles(self) -> int:
        return sum(s.vela.npu_cycles for s in self.segments)

    @property
    def arena_bytes(self) -> int:
        """The segments run one after another over one shared arena."""
        return max((s.arena_bytes for s in self.segments), default=0)

    @property
    def sram_weight_bytes(self) -> int:
        return sum(s.sram_weight_bytes for s in self.segments)

    @property
    def sram_bytes(self) -> int:
        """SRAM the firmware needs: shared arena + boundary buffer + weights placed in SRAM."""
        return self.arena_bytes + self.boundary_bytes + self.sram_weight_bytes

    @property
    def flash_bytes(self) -> int:
        return sum(len(s.vela.optimized_model) for s in self.segments)


def _read_only_bytes(optimized_model: bytes) -> tuple[int, int]:
    """(arena bytes, bytes of every NPU call's region 0) of a Vela-optimised model."""
    from tvmse.targets.ethosu import vela_model
    model = vela_model.read(optimized_model)
    read_only = {call.regions[0] for call in model.npu_calls}
    return model.arena_bytes, sum(len(model.tensors[t].data) for t in read_only)


def compile_segment(segment: segmenting.Segment, config: VelaConfig, name: str) -> SegmentBuild:
    """Lower one segment and compile it with Vela in its memory mode."""
    mode_config = replace(config, memory_mode=segmenting.SRAM_MODE) if segment.in_sram else config
    tflite = lower_to_tflite(segment.graph, description=f"tvmse: {name} segment {segment.index}")
    vela = compile_tflite(tflite, mode_config, name=f"{name}_seg{segment.index}")
    arena, read_only = _read_only_bytes(vela.optimized_model)
    return SegmentBuild(segment, tflite, vela, arena, read_only if segment.in_sram else 0)


def check_segments_against_host(graph: IntegerGraph, segments: list[SegmentBuild], reference,
                                n_trials: int = 8, seed: int = 0) -> None:
    """Run random inputs through the segments' TFLite models in order (each feeding the next) and demand
    the host reference's outputs, bit for bit; AssertionError names the first output that differs."""
    from tvmse.targets.ethosu.tflite_writer import run_tflite
    rng = np.random.default_rng(seed)
    for trial in range(n_trials):
        values = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs}
        expected = reference.run(values)
        for seg in segments:
            values.update(run_tflite(seg.tflite, {t.name: values[t.name] for t in seg.segment.graph.inputs}))
        for name in graph.outputs:
            if not np.array_equal(expected[name], values[name]):
                n = int(np.sum(expected[name] != values[name]))
                raise AssertionError(f"segmented TFLite output '{name}' differs from the host reference in {n} "
                                     f"elements (trial {trial}, seed {seed})")


def build_segmented(graph: IntegerGraph, config: VelaConfig, placement, reference=None, verify_trials: int = 8,
                    name: str = "model") -> SegmentedBuild:
    """Compile ``graph`` with the layers in ``placement`` holding their weights in SRAM.

    ``config`` gives the accelerator, system config and the memory mode of the other layers. Each
    segment is verified in the TFLite interpreter chained as the firmware runs them (when a
    ``reference`` is given), then compiled by Vela."""
    config = config.resolved()
    placement = frozenset(placement)
    parts = segmenting.split(graph, placement)
    logger.info("compiling %d segment(s) with Vela: %s", len(parts),
                ", ".join(f"{len(p.graph.ops)} ops {'SRAM' if p.in_sram else 'flash'}" for p in parts))
    built = [compile_segment(p, config, name) for p in parts]
    if reference is not None and verify_trials > 0:
        logger.info("checking the segments against the host reference (%d random inputs)", verify_trials)
        check_segments_against_host(graph, built, reference, n_trials=verify_trials)
    _, boundary = segmenting.keep_layout(parts, graph)
    layer_cycles: dict[str, int] = {}
    for seg in built:
        for layer in seg.vela.layers:
            key = segmenting.layer_of(layer.name)
            layer_cycles[key] = layer_cycles.get(key, 0) + layer.op_cycles
    return SegmentedBuild(graph, config, placement, built, boundary, verify_trials if reference is not None else 0,
                          layer_cycles)
