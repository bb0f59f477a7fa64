"""ReorderUnits: unit permutations of LSTM and GRU layers are bit-exact over several frames of random inputs
and states, keep the step's interface (or carry the order in state_slots), put the ragged blocks a fold
leaves last, and leave alone what they cannot see through."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.passes import int_eval
from tests.passes.graphs import assert_same_rollout, gru_graph, load_imported, lstm_graph, prune_units
from tvmse import tuning
from tvmse.ir import IntegerGraph, build
from tvmse.passes import tile_block_sparse
from tvmse.passes.fold_dead_units import FoldDeadUnits
from tvmse.passes.reorder_units import (SUFFIX, ReorderUnits, permute, ragged_last, runs_of, unit_layers)

ROOT = Path(__file__).resolve().parents[2]


def _numpy(graph):
    return lambda x: int_eval.run(graph, x)


def _interface(graph: IntegerGraph):
    tensors = graph.tensors()
    return ([(t.name, t.shape, t.quant()) for t in graph.inputs],
            [(n, tensors[n].shape, tensors[n].quant()) for n in graph.outputs])


def _permuted(graph, rng, carry_state=False):
    new = graph
    for name in unit_layers(graph, carry_state):
        layer = unit_layers(new, carry_state)[name]
        new = permute(new, layer, rng.permutation(layer.units), carry_state)
    return new


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("carry_state", [False, True])
def test_random_permutations_are_exact_over_frames_of_random_state(seed, carry_state):
    rng = np.random.default_rng(seed)
    for graph in (lstm_graph(rng, 5, [6, 7], 3), gru_graph(rng, 4, 5, 3, state_rank=2 + seed % 2)):
        new = _permuted(graph, rng, carry_state)
        assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng, frames=5)
        if carry_state:   # the order lives in the state: no gathers, the slots say where each unit went
            assert len(new.ops) == len(graph.ops) and new.state_slots != graph.state_slots
        else:             # boundary gathers: the interface and its slots stay
            assert len(new.ops) > len(graph.ops)
            assert _interface(new) == _interface(graph) and new.state_slots == graph.state_slots


@pytest.mark.parametrize("carry_state", [False, True])
@pytest.mark.parametrize("fixture", ["keras_gru_step_pruned.tflite", "keras_lstm_step.tflite"])
def test_imported_keras_steps_permuted_are_exact(fixture, carry_state):
    """Steps as the TFLite converter writes Keras' cells: a GRU (FC(x) and FC(h) sliced apart, gate adds, a
    reshape before the output FC) and an LSTM (FC(x) + FC(h) + bias summed, then split into the gates)."""
    rng = np.random.default_rng(11)
    graph = load_imported(fixture)
    assert len(unit_layers(graph, carry_state)) == 1
    new = _permuted(graph, rng, carry_state)
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng, frames=3)


def test_lstm_layers_are_found_with_their_edges():
    graph = lstm_graph(np.random.default_rng(0), 5, [6, 7], 3)
    layers = unit_layers(graph)
    assert list(layers) == ["lstm0/fc", "lstm1/fc"]
    first = layers["lstm0/fc"]
    assert first.units == 6 and first.producers == {"lstm0/fc": [0, 6, 12, 18]}
    assert first.inputs == ["c0"] and sorted(first.outputs) == ["c0_out", "h0_out"]
    assert first.readers == [("lstm1/fc", 0)]        # the next layer's concat; h0 keeps its public order
    carried = unit_layers(graph, carry_state=True)["lstm0/fc"]
    assert sorted(carried.inputs) == ["c0", "h0"] and ("lstm0/fc", 5) in carried.readers


def test_carried_state_is_recorded_in_state_slots_after_a_fold():
    rng = np.random.default_rng(3)
    graph = prune_units(lstm_graph(rng, 3, [5], 2), 0, [1])
    folded, _ = FoldDeadUnits().run(graph)
    layer = unit_layers(folded, carry_state=True)["lstm0/fc"]
    perm = np.array([3, 0, 2, 1])
    new = permute(folded, layer, perm, carry_state=True)
    assert new.state_slots == {"h0": [4, 0, 3, 2], "c0": [4, 0, 3, 2]}   # source slots of [0, 2, 3, 4] permuted
    assert not any(op.name.endswith(SUFFIX) for op in new.ops)          # no gather on the state
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng, frames=4)


def test_unit_tensors_reaching_an_opaque_op_leave_the_layer_alone():
    graph = lstm_graph(np.random.default_rng(1), 3, [4], 2)
    h = graph.tensors()["h0_out"]
    moved = build.reshape("h0_flat", h, (4, 1))            # changes the last axis: no unit order to carry
    odd = IntegerGraph(graph.inputs, graph.outputs + ["h0_flat"], graph.ops + [moved])
    assert unit_layers(odd) == {}
    assert ReorderUnits(layers=None).run(odd)[0] is odd
    assert unit_layers(graph) != {}


def _block_lstm(rng, hidden=64, n_in=32, n_out=48, rows=16, cols=32, keep=0.35) -> IntegerGraph:
    """LSTM(hidden) with 16×32-block-sparse weights (trained-like: blocks of units share their pattern)."""
    def blocks(shape):
        mask = rng.random((shape[0] // rows, -(-shape[1] // cols))) < keep
        full = np.repeat(np.repeat(mask, rows, 0), cols, 1)[:, :shape[1]]
        return (rng.integers(1, 128, shape) * rng.choice([-1, 1], shape) * full).astype(np.int8)
    w = np.concatenate([np.concatenate([blocks((hidden, n_in)), blocks((hidden, hidden))], axis=1)
                        for _ in range(4)])
    out = blocks((n_out, hidden))                          # rows: outputs, columns: units
    return lstm_graph(rng, n_in, [hidden], n_out, cell_weights=[w], out_weight=out)


def test_ragged_block_goes_last_and_the_tiles_get_denser():
    """A unit fold drops unit 5 of a 16×32-block LSTM: the blocks after it slide off the grid; reordering
    puts the 31 units of its column block last, so the output FC's column granules line up again."""
    rng = np.random.default_rng(7)
    graph = prune_units(_block_lstm(rng), 0, [5])
    folded, _ = FoldDeadUnits().run(graph)
    assert folded.tensors()["h0"].shape == (1, 63)
    layer = unit_layers(folded)["lstm0/fc"]
    perm = ragged_last(folded, layer)
    assert runs_of(perm) == [(31, 63), (0, 31)]
    new, records = ReorderUnits(layers=("lstm0/fc",)).run(folded)
    assert records[0]["runs"] == [(31, 63), (0, 31)] and records[0]["boundary_gathers"] == 3

    def fine_macs(g):
        w = tile_block_sparse.matrix({op.name: op for op in g.ops}["out/fc"])
        return tile_block_sparse.grouped(w, list(range(-(-w.shape[0] // 16) + 1)), 16, 32, "rb").macs()
    assert fine_macs(new) < fine_macs(folded)
    assert _interface(new) == _interface(folded) and new.state_slots == folded.state_slots
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng, frames=4)
    # left to the cost model: applied only where it calls the layer cheaper, gathers included
    modelled, done = ReorderUnits(layers=None, memory_mode="Sram_Only").run(folded)
    assert (modelled is folded) == (not done)


def test_aligned_units_are_left_alone_and_the_default_pipeline_reorders_nothing():
    rng = np.random.default_rng(8)
    graph = _block_lstm(rng)
    assert np.array_equal(ragged_last(graph, unit_layers(graph)["lstm0/fc"]), np.arange(64))
    assert ReorderUnits(layers=("lstm0/fc",)).run(graph) == (graph, [])
    assert ReorderUnits().run(prune_units(_block_lstm(rng), 0, [5]))[1] == []   # off by default


def test_reordered_graph_matches_host_reference_and_tflite():
    """The reordered graph through TVM (host reference) and the TFLite interpreter, gathers included."""
    from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
    from tvmse.targets.host import HostReference
    rng = np.random.default_rng(9)
    graph = prune_units(_block_lstm(rng, n_in=8), 0, [2])
    folded, _ = FoldDeadUnits().run(graph)
    new, records = ReorderUnits(layers=("lstm0/fc",)).run(folded)
    assert records
    reference = HostReference(new)
    assert_same_rollout(_numpy(graph), graph, reference.run, new, rng, frames=3)
    check_against_host(new, lower_to_tflite(new), reference, n_trials=3)


# ---- block80: the decision, its replay and the Vela build --------------------------------------------
@pytest.fixture(scope="module")
def block80():
    from tvmse.compile import load_model
    return load_model(ROOT / "examples" / "tinylstm_block80.onnx").graph


def test_block80_offers_its_folded_layer_and_the_decision_round_trips(block80, tmp_path):
    assert tuning.reorder_options(block80, (True, 0), "ethos-u55-128") == ["lstm1/fc"]
    assert tuning.reorder_options(block80, (True, 16), "ethos-u55-128") == []   # aligned: nothing ragged
    decisions = tuning.Decisions.make(True, {"out/fc": "grouped/16@Sram_Only"}, reorder=["lstm1/fc"])
    assert tuning.Decisions.from_json(decisions.to_json(), "x") == decisions
    assert "units reordered in lstm1/fc" in decisions.describe()
    assert "reorder" not in tuning.Decisions.make(True).to_json()
    plan = tuning.TuningFile("0" * 64, {"accelerator": "ethos-u55-128"}, {}, 1, decisions, 2, 3, 4)
    plan.save(tmp_path / "t.json")
    assert tuning.load(tmp_path / "t.json").decisions == decisions
    for bad, phrase in [({"reorder": "lstm1/fc"}, "list of layer names"), ({"reorder": [3]}, "list of layer names")]:
        with pytest.raises(tuning.TuningError, match=phrase):
            tuning.Decisions.from_json({**decisions.to_json(), **bad}, "x")
    with pytest.raises(tuning.TuningError, match="not recurrent layers of this model: out/fc"):
        tuning.apply(block80, tuning.Decisions.make(True, reorder=["out/fc"]), "ethos-u55-128")


def test_block80_reordered_through_vela_equals_the_default_build(block80):
    """The reordered build's Vela TFLite (interpreter) equals its host reference, and that equals the default
    build's on random frames and states: the same bits, the same state layout."""
    from tvmse.targets.ethosu import build_segmented
    from tvmse.targets.ethosu.vela_driver import VelaConfig
    from tvmse.targets.host import HostReference
    config = VelaConfig("ethos-u55-128", memory_mode="Sram_Only").resolved()
    tiling = {"lstm1/fc": "grouped/16@Sram_Only", "out/fc": "grouped/16@Sram_Only"}
    default, _ = tuning.apply(block80, tuning.Decisions.make(True, tiling), config.accelerator)
    reordered, records = tuning.apply(block80, tuning.Decisions.make(True, tiling, reorder=["lstm1/fc"]),
                                      config.accelerator)
    assert [r["pass"] for r in records].count("reorder_units") == 1
    assert _interface(reordered) == _interface(default) and reordered.state_slots == default.state_slots
    reference = HostReference(reordered)
    built = build_segmented(reordered, config, ("out/fc",), reference, 2)   # checked in the TFLite interpreter
    assert built.total_cycles > 0
    # both carry the folded state in the same layout: compare them slot for slot
    assert_same_rollout(_numpy(default), replace(default, state_slots={}), _numpy(reordered),
                        replace(reordered, state_slots={}), np.random.default_rng(4), frames=3)
