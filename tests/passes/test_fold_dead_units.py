"""FoldDeadUnits: dead units and channels vanish (LSTM and GRU cells across the recurrence, convolution
stacks, imported TFLite models), live look-alikes stay, outputs bit-exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import strategies as st

from tests.passes import int_eval
from tests.passes.examples import property_tests
from tests.passes.graphs import (MIDDLE_OPS, OPAQUE_MIDDLE_OPS, assert_same_rollout, conv_graph, gru_graph,
                                 imported_fixture, load_imported, lstm_graph, prune_conv_channels, prune_gru_units,
                                 prune_units, side_by_side)
from tvmse.ir import IntegerGraph, TensorInfo, build
from tvmse.passes.fold_dead_units import FoldDeadUnits, channel_rule, kept_channels

PASS = FoldDeadUnits()


def _numpy(graph):
    return lambda x: int_eval.run(graph, x)


def _fc_shapes(graph) -> dict[str, tuple]:
    return {op.name: op.consts["weight"].shape for op in graph.ops if op.kind == "fully_connected"}


def _weight_shapes(graph) -> dict[str, tuple]:
    return {op.name: op.consts["weight"].shape for op in graph.ops if "weight" in op.consts}


def _assert_exact(graph, new, rng, frames=3):
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng, frames=frames)


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


def test_graph_without_dead_channels_left_alone():
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


def test_aligned_fold_keeps_dead_units_back_to_the_grid():
    rng = np.random.default_rng(11)
    graph = lstm_graph(rng, 4, [6, 5], 3)
    prune_units(graph, 0, [1, 3, 4])      # 3 of 6 live → 4: the lowest dead unit (1) is kept back
    prune_units(graph, 1, [0])            # 4 of 5 live: already on a grid of 4
    new, _ = FoldDeadUnits(align=4).run(graph)
    assert new.state_slots == {"h0": [0, 1, 2, 5], "c0": [0, 1, 2, 5], "h1": [1, 2, 3, 4], "c1": [1, 2, 3, 4]}
    assert _fc_shapes(new)["lstm0/fc"] == (16, 8)
    _assert_exact(graph, new, rng)


def _aligned_fold_bit_exact(seed, hidden, align, data):
    rng = np.random.default_rng(seed)
    graph = lstm_graph(rng, 3, hidden, 2)
    for layer, H in enumerate(hidden):
        prune_units(graph, layer, data.draw(st.lists(st.integers(0, H - 1), unique=True, max_size=H)))
    plain, _ = PASS.run(graph)
    new, _ = FoldDeadUnits(align=align).run(graph)
    for state, slots in new.state_slots.items():
        width = graph.tensors()[state].shape[-1]
        assert len(slots) % align == 0 or len(slots) == width
        assert set(plain.state_slots.get(state, range(width))) <= set(slots)   # a superset of the live units
    assert_same_rollout(_numpy(graph), graph, _numpy(new), new, rng, frames=3)


test_aligned_fold_bit_exact, test_aligned_fold_bit_exact_10k = property_tests(
    _aligned_fold_bit_exact, seed=st.integers(0, 2**31), hidden=st.lists(st.integers(1, 9), min_size=1, max_size=2),
    align=st.sampled_from([2, 3, 4, 16]), data=st.data())


# ---- GRU cells (the form the TFLite converter writes for Keras' GRU) -------------------------------
def test_pruned_gru_units_vanish():
    """GRU(5), units 1 and 3 pruned: 3 gate rows each in FC(x) and FC(h), recurrent and output columns."""
    rng = np.random.default_rng(10)
    graph = prune_gru_units(gru_graph(rng, 4, 5, 3), [1, 3])
    new, records = PASS.run(graph)
    assert _weight_shapes(new) == {"gru/fc_x": (9, 4), "gru/fc_h": (9, 3), "out/fc": (3, 3)}
    assert new.state_slots == {"state": [0, 2, 4]} and new.state_pairs == {"state": "state_next"}
    assert [t.shape for t in new.inputs] == [(1, 3), (1, 4)]
    assert next(op for op in new.ops if op.name == "gru/one").output.shape == ()  # the broadcast constant 1 stays
    assert {r["layer"] for r in records} == {"gru/fc_x", "gru/fc_h", "out/fc", "state"}
    _assert_exact(graph, new, rng, frames=5)


def test_gru_state_of_rank_three_keeps_its_unit_axes():
    rng = np.random.default_rng(11)
    graph = prune_gru_units(gru_graph(rng, 3, 4, 2, state_rank=3), [0])
    new, _ = PASS.run(graph)
    assert new.inputs[0].shape == (1, 1, 3) and new.tensors()["state_next"].shape == (1, 1, 3)
    assert new.state_slots == {"state": [1, 2, 3]}
    _assert_exact(graph, new, rng)


def test_gru_unit_with_live_output_column_is_kept():
    # Negative: unit 2's gate rows, biases and recurrent column are zero, but the output FC reads it.
    rng = np.random.default_rng(12)
    graph = prune_gru_units(gru_graph(rng, 3, 4, 2), [2], consumer=False)
    new, records = PASS.run(graph)
    assert new is graph and records == []


def test_gru_unit_read_by_the_other_units_is_kept():
    # Negative: unit 2 has no output column, but the other units' gates read its state (recurrent column).
    rng = np.random.default_rng(13)
    graph = prune_gru_units(gru_graph(rng, 3, 4, 2), [2], recurrent=False)
    assert PASS.run(graph)[0] is graph


GRU_CASES = dict(seed=st.integers(0, 2**31), n_in=st.integers(1, 4), H=st.integers(1, 6), n_out=st.integers(1, 3),
                 state_rank=st.sampled_from([2, 3]), data=st.data())


def _check_random_gru(seed, n_in, H, n_out, state_rank, data):
    rng = np.random.default_rng(seed)
    graph = gru_graph(rng, n_in, H, n_out, state_rank)
    dead = data.draw(st.lists(st.integers(0, H - 1), unique=True, max_size=H), label="dead units")
    kept_piece = data.draw(st.sampled_from(["none", "rows", "bias", "recurrent", "consumer"]), label="kept piece")
    prune_gru_units(graph, dead, rows=kept_piece != "rows", bias=kept_piece != "bias",
                    recurrent=kept_piece != "recurrent", consumer=kept_piece != "consumer")
    new, _ = PASS.run(graph)
    if kept_piece in ("none", "rows", "bias") and len(dead) < H:  # fully unreachable units vanish
        assert new.state_slots.get("state", list(range(H))) == [j for j in range(H) if j not in dead]
    _assert_exact(graph, new, rng)


test_random_gru_unit_masks_bit_exact, test_random_gru_unit_masks_bit_exact_10k = property_tests(
    _check_random_gru, **GRU_CASES)


# ---- convolution channels -------------------------------------------------------------------------
def test_pruned_conv_channels_vanish():
    """conv(4) → depthwise(×2) → 1×1 conv(3) → pool → FC: conv channel 1 and 1×1 conv channel 0 pruned."""
    rng = np.random.default_rng(20)
    graph = prune_conv_channels(conv_graph(rng, multiplier=2), conv1=[1], pw=[0])
    new, records = PASS.run(graph)
    assert _weight_shapes(new) == {"conv1": (3, 3, 3, 2), "dw": (1, 3, 3, 6), "pw": (2, 1, 1, 6), "logits": (3, 2)}
    assert [t.shape for t in new.inputs] == [(1, 6, 5, 2)]  # the frame keeps its interface
    assert {r["rewrite"] for r in records} == {"drop dead channels", "drop dead units"}
    _assert_exact(graph, new, rng, frames=2)


def test_dead_filter_with_live_consumer_columns_is_kept():
    # Negative: conv channel 2's filter and bias are zero (its output is a constant), the depthwise still reads it.
    rng = np.random.default_rng(21)
    graph = prune_conv_channels(conv_graph(rng), conv1=[2], consumer=False)
    assert PASS.run(graph)[0] is graph


def test_ops_that_move_channels_keep_their_operands_whole():
    # Negative: a transpose that moves the channel axis (and back) stands between the conv and its
    # consumers: the pass cannot see which channel goes where, so the pruned conv channel stays.
    rng = np.random.default_rng(22)
    graph = prune_conv_channels(conv_graph(rng, middle="transpose_channels"), conv1=[0], pw=[1])
    tensors = graph.tensors()
    assert [channel_rule(op, tensors)[0] for op in graph.ops if op.name.startswith("mid")] == ["opaque", "opaque"]
    new, _ = PASS.run(graph)
    assert _weight_shapes(new)["conv1"][0] == 4 and _weight_shapes(new)["pw"][0] == 2
    _assert_exact(graph, new, rng, frames=2)


def test_softmax_and_means_over_channels_keep_their_operands_whole():
    x = TensorInfo("x", (1, 3, 4, 5), 0.02, 1)
    over_hw = build.mean("over_hw", x, [1, 2], True, 0.02, 0)
    over_c = build.mean("over_c", x, [3], True, 0.02, 0)
    soft = build.softmax("soft", x)
    tensors = IntegerGraph([x], [], [over_hw, over_c, soft]).tensors()
    assert [channel_rule(op, tensors)[0] for op in (over_hw, over_c, soft)] == ["elementwise", "opaque", "opaque"]


CONV_CASES = dict(seed=st.integers(0, 2**31), hw=st.tuples(st.integers(2, 6), st.integers(1, 5)),
                  c_in=st.integers(1, 3), c1=st.integers(1, 5), multiplier=st.integers(1, 2), c2=st.integers(1, 5),
                  kernel=st.sampled_from([(1, 1), (3, 2)]), strides=st.sampled_from([(1, 1), (2, 1)]),
                  middle=st.sampled_from(MIDDLE_OPS), data=st.data())


def _check_random_conv(seed, hw, c_in, c1, multiplier, c2, kernel, strides, middle, data):
    rng = np.random.default_rng(seed)
    graph = conv_graph(rng, hw, c_in, c1, multiplier, c2, 3, kernel, strides, middle)
    dead1 = data.draw(st.lists(st.integers(0, c1 - 1), unique=True, max_size=c1 - 1), label="dead conv1")
    dead2 = data.draw(st.lists(st.integers(0, c2 - 1), unique=True, max_size=c2 - 1), label="dead pw")
    consumer = data.draw(st.booleans(), label="consumer columns pruned")
    prune_conv_channels(graph, dead1, dead2, consumer=consumer)
    new, _ = PASS.run(graph)
    shapes = _weight_shapes(new)
    if consumer and middle not in OPAQUE_MIDDLE_OPS:
        assert shapes["conv1"][0] == c1 - len(dead1) and shapes["pw"][0] == c2 - len(dead2)
    elif not consumer:
        assert new is graph
    _assert_exact(graph, new, rng, frames=2)


test_random_conv_channel_masks_bit_exact, test_random_conv_channel_masks_bit_exact_10k = property_tests(
    _check_random_conv, **CONV_CASES)


# ---- broadcasting, slices and concatenations on the channel axis ------------------------------------
def test_broadcast_operands_and_channel_slices():
    """x[1,2,6] → slices [0:4], [4:6] on the channel axis; add([1,2,4], per-channel constant [4]);
    mul with a [1,1,1] operand; concat back on the channel axis; FC reading only some channels."""
    rng = np.random.default_rng(30)
    q = (0.03, 2)
    x = TensorInfo("x", (1, 2, 6), *q)
    s = TensorInfo("s", (1, 1, 1), *q)
    a, b = build.slice_("a", x, 0, 4, axis=2), build.slice_("b", x, 4, 6, axis=2)
    k = build.constant("k", rng.integers(-128, 128, (4,)), *q)
    added = build.add("added", a.output, k.output, *q)
    scaled = build.mul("scaled", b.output, s, *q)
    cat = build.concat("cat", [added.output, scaled.output], axis=2)
    w = np.zeros((3, 6), np.int8)
    w[:, [1, 4]] = rng.integers(1, 128, (3, 2))
    y = build.fully_connected("y", cat.output, w, rng.integers(-100, 100, 3), np.full(3, 0.01), 0.05, 0)
    graph = IntegerGraph([x, s], ["y"], [a, b, k, added, scaled, cat, y])
    new, _ = PASS.run(graph)
    ops = {op.name: op for op in new.ops}
    assert ops["k"].consts["value"].shape == (1,) and ops["cat"].output.shape == (1, 2, 2)
    assert (ops["a"].attrs["begin"], ops["a"].attrs["end"]) == (1, 2) and ops["b"].attrs["begin"] == 4
    assert [t.shape for t in new.inputs] == [(1, 2, 6), (1, 1, 1)]
    _assert_exact(graph, new, rng)


def test_folded_graphs_build_and_match_the_host_reference():
    """The rewritten graphs are valid Relax modules and compute what the numpy evaluator says."""
    from tvmse.targets.host import HostReference
    rng = np.random.default_rng(31)
    gru = PASS.run(prune_gru_units(gru_graph(rng, 3, 4, 2, state_rank=3), [1]))[0]
    conv = PASS.run(prune_conv_channels(conv_graph(rng, multiplier=2, middle="mul_channels"), [3], [2]))[0]
    both = side_by_side([gru, conv])
    as_is = IntegerGraph(both.inputs, both.outputs, both.ops, state_pairs=both.state_pairs)  # slots: identity
    assert_same_rollout(HostReference(both).run, both, _numpy(both), as_is, rng, frames=2)


@pytest.mark.slow
def test_folded_graphs_lower_to_tflite_bit_exact():
    from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
    from tvmse.targets.host import HostReference
    rng = np.random.default_rng(32)
    for graph in (prune_gru_units(gru_graph(rng, 3, 5, 2), [0, 4]),
                  prune_conv_channels(conv_graph(rng, multiplier=2, middle="add_scalar"), [0], [1])):
        new = PASS.run(graph)[0]
        check_against_host(new, lower_to_tflite(new), HostReference(new), n_trials=3)


# ---- imported models: a pruned network folds to the one built at the smaller width ------------------
def _assert_same_network(new: IntegerGraph, small: IntegerGraph) -> None:
    assert [(op.kind, op.output.shape) for op in new.ops] == [(op.kind, op.output.shape) for op in small.ops]
    assert [t.shape for t in new.inputs] == [t.shape for t in small.inputs]
    for a, b in zip(new.ops, small.ops):
        for name in ("weight", "bias"):
            if name in a.consts:
                np.testing.assert_array_equal(a.consts[name], b.consts[name], err_msg=f"{a.name} {name}")


def test_pruned_gru_fixture_folds_to_its_small_twin():
    pruned = load_imported("keras_gru_step_pruned.tflite")
    small = load_imported("keras_gru_step_small.tflite")
    manifest = json.loads(imported_fixture("manifest.json").read_text())
    kept_units = manifest["keras_gru_step_small.tflite"]["kept_units"]
    new, records = PASS.run(pruned)
    _assert_same_network(new, small)
    assert new.state_slots == {"serving_default_state:0": kept_units}
    assert new.state_pairs == pruned.state_pairs
    # FC(x) loses 8 of 96 gate rows ×3 gates, FC(h) also 8 of 32 columns, the output FC 8 columns
    assert [(r["before"], r["after"]) for r in records if r["layer"] != "state"] == [
        ([96, 32], [72, 32]), ([96, 32], [72, 24]), ([48, 32], [48, 24])]
    rng = np.random.default_rng(40)
    assert_same_rollout(_numpy(pruned), pruned, _numpy(new), new, rng, frames=30)
    assert_same_rollout(_numpy(new), new, _numpy(small), small, rng, frames=30)


def test_pruned_conv_fixture_folds_to_its_small_twin():
    pruned = load_imported("keras_kws_cnn_pruned.tflite")
    small = load_imported("keras_kws_cnn_small.tflite")
    new, _ = PASS.run(pruned)
    _assert_same_network(new, small)
    rng = np.random.default_rng(41)
    assert_same_rollout(_numpy(pruned), pruned, _numpy(new), new, rng, frames=10)
    assert_same_rollout(_numpy(new), new, _numpy(small), small, rng, frames=10)


@pytest.mark.slow
def test_pruned_float_onnx_gru_folds_to_its_small_twin():
    """The PyTorch GRU pair, quantized by tvmse from the calibration frames: the same fold, another GRU form."""
    from tvmse import frontend
    calibration = imported_fixture("torch_gru_step_calib.npz")
    pruned = frontend.import_model(imported_fixture("torch_gru_step_pruned.onnx"), None, calibration).graph
    small = frontend.import_model(imported_fixture("torch_gru_step_small.onnx"), None, calibration).graph
    new, _ = PASS.run(pruned)
    _assert_same_network(new, small)
    assert new.state_slots == {"state_in": [j for j in range(24) if j not in (1, 5, 6, 12, 19, 22)]}
    rng = np.random.default_rng(42)
    assert_same_rollout(_numpy(pruned), pruned, _numpy(new), new, rng, frames=30)
    assert_same_rollout(_numpy(new), new, _numpy(small), small, rng, frames=30)
