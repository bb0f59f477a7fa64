"""FoldDeadUnits: dead units vanish across the recurrence, live look-alikes stay, outputs bit-exact."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.passes import int_eval
from tests.passes.examples import property_tests
from tests.passes.graphs import assert_same_rollout, lstm_graph, prune_units
from tvmse.ir import IntegerGraph, TensorInfo, build
from tvmse.passes.fold_dead_units import FoldDeadUnits, kept_channels

PASS = FoldDeadUnits()


def _numpy(graph):
    return lambda x: int_eval.run(graph, x)


def _fc_shapes(graph) -> dict[str, tuple]:
    return {op.name: op.consts["weight"].shape for op in graph.ops if op.kind == "fully_connected"}


def test_smallest_graph_pruned_unit_vanishes():
    """One LSTM(2) cell with unit 1 pruned: gate rows, biases, recurrent and output columns zero."""
    rng = np.random.default_rng(0)
    graph = prune_units(lstm_graph(rng, 3, [2], 2), 0, [1])
    new, records = PASS.run(graph)
    assert _fc_shapes(new) == {"lstm0/fc": (4, 4), "out/fc": (2, 1)}
    assert new.state_slots == {"h0": [0], "c0": [0]}
    assert [t.shape for t in new.inputs] == [(1, 3), (1, 1), (1, 1)]
    assert {r["layer"] for r in records} == {"lstm0/fc", "out/fc", "state"}
    assert records[0]["macs_before"] == 8 * 5 and records[0]["macs_after"] == 4 * 4
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng)


def test_smallest_graph_matches_host_reference_and_tflite():
    from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
    from tvmse.targets.host import HostReference
    rng = np.random.default_rng(1)
    graph = prune_units(lstm_graph(rng, 3, [3], 2), 0, [0, 2])
    new, _ = PASS.run(graph)
    reference = HostReference(new)
    assert_same_rollout(_numpy(graph), graph, reference.run, new, rng)
    check_against_host(new, lower_to_tflite(new), reference, n_trials=3)


def test_zero_incoming_rows_but_live_outgoing_columns_is_not_dead():
    # Negative: unit 0's gate rows and biases are zero, but h0[0] still feeds the output FC
    # (its gates are constants; its c still recurs), so nothing may be removed.
    rng = np.random.default_rng(2)
    graph = prune_units(lstm_graph(rng, 3, [2], 2), 0, [0], recurrent=False, consumer=False)
    new, records = PASS.run(graph)
    assert new is graph and records == []


def test_zero_rows_with_bias_feeding_consumer_is_not_dead():
    # Negative: zero rows, non-zero bias (a constant gate pre-activation) and live consumer columns.
    rng = np.random.default_rng(3)
    graph = prune_units(lstm_graph(rng, 3, [2], 2), 0, [1], bias=False, recurrent=False)
    new, _ = PASS.run(graph)
    assert new is graph


def test_unit_feeding_only_its_own_recurrence_is_dead():
    # Live rows, but its only consumer is its own recurrent column (and c): no output ever sees it.
    rng = np.random.default_rng(4)
    graph = lstm_graph(rng, 3, [3], 2)
    graph.ops[-2].consts["weight"][:, 2] = 0  # out/fc drops unit 2 ...
    fc = next(op for op in graph.ops if op.name == "lstm0/fc")
    fc.consts["weight"][[0, 1], 3 + 2] = 0      # ... units 0 and 1 ignore h[2] ...
    fc.consts["weight"][[3, 4, 6, 7, 9, 10], 3 + 2] = 0  # ... in every gate; unit 2 still reads its own h
    new, _ = PASS.run(graph)
    assert new.state_slots == {"h0": [0, 1], "c0": [0, 1]}
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng)


def test_dead_units_across_two_layers():
    rng = np.random.default_rng(5)
    graph = lstm_graph(rng, 4, [5, 4], 3)
    prune_units(graph, 0, [1, 3])
    prune_units(graph, 1, [0])
    new, _ = PASS.run(graph)
    assert _fc_shapes(new) == {"lstm0/fc": (12, 7), "lstm1/fc": (12, 6), "out/fc": (3, 3)}
    assert new.state_slots == {"h0": [0, 2, 4], "c0": [0, 2, 4], "h1": [1, 2, 3], "c1": [1, 2, 3]}
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng)


def test_dense_graph_left_alone():
    graph = lstm_graph(np.random.default_rng(6), 3, [2], 2)
    new, records = PASS.run(graph)
    assert new is graph and records == []


def test_graph_with_other_rank_left_alone():
    x = TensorInfo("x", (2, 4), 0.01, 0)
    graph = IntegerGraph([x], ["y"], [build.logistic("y", x)])
    assert PASS.run(graph)[0] is graph


def test_state_slots_round_trip_through_relax():
    rng = np.random.default_rng(7)
    new, _ = PASS.run(prune_units(lstm_graph(rng, 3, [3], 2), 0, [1]))
    again = IntegerGraph.from_module(new.to_module())
    assert again.state_slots == new.state_slots == {"h0": [0, 2], "c0": [0, 2]}


def test_kept_sets_are_closed_under_elementwise_ops():
    rng = np.random.default_rng(8)
    graph = prune_units(lstm_graph(rng, 3, [4], 2), 0, [2])
    kept = kept_channels(graph)
    for op in graph.ops:
        if op.kind in ("add", "mul", "logistic", "tanh"):
            for name in op.inputs:
                assert np.array_equal(kept[name], kept[op.name]), op.name


def _random_unit_masks_bit_exact(seed, n_in, hidden, n_out, data):
    rng = np.random.default_rng(seed)
    graph = lstm_graph(rng, n_in, hidden, n_out)
    for layer, H in enumerate(hidden):
        dead = data.draw(st.lists(st.integers(0, H - 1), unique=True, max_size=H), label=f"dead{layer}")
        # partly pruned look-alikes: some pieces of a unit left non-zero
        keep_piece = data.draw(st.sampled_from(["none", "rows", "bias", "recurrent", "consumer"]), label="kept piece")
        prune_units(graph, layer, dead, rows=keep_piece != "rows", bias=keep_piece != "bias",
                    recurrent=keep_piece != "recurrent", consumer=keep_piece != "consumer")
    new, _ = PASS.run(graph)
    for t in new.inputs:
        assert t.shape[1] >= 1
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng, frames=3)


test_random_unit_masks_bit_exact, test_random_unit_masks_bit_exact_10k = property_tests(
    _random_unit_masks_bit_exact, seed=st.integers(0, 2**31), n_in=st.integers(1, 6),
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=2), n_out=st.integers(1, 4), data=st.data())
