"""Placement segments: the split, the segmented Vela build (bit-exact, cycles add up), the greedy placement."""

from __future__ import annotations

import numpy as np
import pytest

from tvmse.errors import BudgetError
from tvmse.ir import IntegerGraph
from tvmse.targets.ethosu import build, build_segmented, check_segments_against_host
from tvmse.targets.ethosu.placement import greedy_placement
from tvmse.targets.ethosu.segments import layer_of, split, weighted_layers
from tvmse.targets.ethosu.vela_driver import VelaConfig

CONFIG = VelaConfig("ethos-u55-128").resolved()


def test_layer_of_strips_the_tile_suffix():
    assert layer_of("lstm0/fc/tile3") == "lstm0/fc"
    assert layer_of("lstm0/fc/tile12/x2") == "lstm0/fc"
    assert layer_of("lstm0/fc") == "lstm0/fc"
    assert layer_of("tile3") == "tile3"


def _check_cover(graph: IntegerGraph, parts):
    """Every op exactly once, in order; each segment reads only graph inputs or earlier segments' outputs."""
    assert [op.name for p in parts for op in p.graph.ops] == [op.name for op in graph.ops]
    available = {t.name for t in graph.inputs}
    for p in parts:
        assert {t.name for t in p.graph.inputs} <= available
        available |= set(p.graph.outputs)
    assert set(graph.outputs) <= available


def test_split_groups_ops_by_the_placement_of_their_layer(small_graph):
    layers = weighted_layers(small_graph)
    assert layers == ["lstm0/fc", "lstm1/fc", "out/fc"]
    whole = split(small_graph, set())
    assert len(whole) == 1 and not whole[0].in_sram
    parts = split(small_graph, {"lstm1/fc"})
    assert [p.in_sram for p in parts] == [False, True, False]
    assert [p.layers for p in parts] == [["lstm0/fc"], ["lstm1/fc"], ["out/fc"]]
    _check_cover(small_graph, parts)
    # neighbours placed alike merge into one segment
    assert [p.in_sram for p in split(small_graph, {"lstm0/fc", "lstm1/fc"})] == [True, False]
    with pytest.raises(ValueError, match="nope"):
        split(small_graph, {"nope"})


def test_segmented_build_is_bit_exact_and_its_cycles_add_up(small_graph, small_reference):
    single = build(small_graph, CONFIG)
    unplaced = build_segmented(small_graph, CONFIG, ())
    assert unplaced.total_cycles == single.vela.total_cycles and unplaced.boundary_bytes == 0
    placed = build_segmented(small_graph, CONFIG, {"lstm1/fc"}, small_reference, verify_trials=3)
    assert placed.verified_trials == 3
    assert [s.memory_mode for s in placed.segments] == ["Shared_Sram", "Sram_Only", "Shared_Sram"]
    assert placed.total_cycles == sum(s.vela.total_cycles for s in placed.segments)
    assert placed.total_cycles < unplaced.total_cycles          # lstm1's weights no longer stream from flash
    assert placed.sram_weight_bytes == placed.segments[1].sram_weight_bytes > 0
    assert placed.sram_bytes == placed.arena_bytes + placed.boundary_bytes + placed.sram_weight_bytes


def test_segment_check_fails_on_a_different_network(small_graph, small_reference):
    """The chained check can fail: segments of a graph whose FC bias differs from the reference's."""
    ops = [op for op in small_graph.ops]
    fc = next(op for op in ops if op.name == "out/fc")
    changed = type(fc)(fc.kind, list(fc.inputs), fc.output, dict(fc.consts, bias=fc.consts["bias"] + 5000), fc.attrs)
    other = IntegerGraph(small_graph.inputs, small_graph.outputs, [changed if op is fc else op for op in ops])
    segments = build_segmented(other, CONFIG, {"lstm1/fc"}).segments
    with pytest.raises(AssertionError, match="differs from the host reference"):
        check_segments_against_host(other, segments, small_reference, n_trials=2)


@pytest.fixture(scope="module")
def greedy_sizes(small_graph):
    """SRAM sizes of the small model: nothing placed, and everything placed."""
    nothing = build_segmented(small_graph, CONFIG, ())
    everything = build_segmented(small_graph, CONFIG, set(weighted_layers(small_graph)))
    return nothing, everything


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.6, 0.9, 1.0, 1.5])
def test_greedy_placement_never_exceeds_the_budget_nor_slows_down(small_graph, greedy_sizes, fraction):
    nothing, everything = greedy_sizes
    budget = nothing.sram_bytes + int(fraction * everything.sram_weight_bytes)
    chosen = greedy_placement(small_graph, CONFIG, budget)
    assert chosen.build.sram_bytes <= budget
    assert chosen.build.total_cycles <= nothing.total_cycles
    if fraction >= 1.5:  # room for everything (and the boundary buffers)
        assert chosen.build.placement == frozenset(weighted_layers(small_graph))
        assert chosen.build.total_cycles == everything.total_cycles


def test_greedy_placement_refuses_a_budget_below_the_arena(small_graph, greedy_sizes):
    nothing, _ = greedy_sizes
    with pytest.raises(BudgetError, match="--sram-budget"):
        greedy_placement(small_graph, CONFIG, nothing.sram_bytes - 1)
