"""TileBlockSparse: block-sparse FCs (one row, any rank) and 1×1 convolutions become dense kernels over
their tiles, bit-exact; dense ones, FCs over several rows and larger kernels stay."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.passes import int_eval
from tests.passes.examples import property_tests
from tests.passes.graphs import side_by_side
from tvmse.ir import IntegerGraph, IntOp, TensorInfo, build
from tvmse.passes import tile_block_sparse as T
from tvmse.passes.arch import U55_128


FORMS = ("fc", "fc_rank3", "conv1x1", "conv1x1_strided_padded")


def _fc_graph(weight: np.ndarray, rng, x_zp: int = 3, form: str = "fc") -> IntegerGraph:
    """y = FC(x, weight) on x [1, K] (``fc``) or [1, 1, K] (``fc_rank3``), or a 1×1 conv_2d with weight
    [N, 1, 1, K] on x [1, 3, 2, K] (``conv1x1``; strided and padded: ``conv1x1_strided_padded``)."""
    n, k = weight.shape
    bias, scales = rng.integers(-3000, 3000, n), rng.uniform(0.002, 0.02, n)
    if form.startswith("conv1x1"):
        x = TensorInfo("x", (1, 3, 2, k), 0.011, x_zp)
        strided = form == "conv1x1_strided_padded"
        op = build.conv_2d("y", x, weight.reshape(n, 1, 1, k), bias, scales, 0.07, -4, strides=(2, 1) if strided
                           else (1, 1), padding=(1, 0, 0, 1) if strided else (0, 0, 0, 0), activation="RELU")
    else:
        x = TensorInfo("x", (1, 1, k) if form == "fc_rank3" else (1, k), 0.011, x_zp)
        op = build.fully_connected("y", x, weight, bias, scales, 0.07, -4, out_shape=(*x.shape[:-1], n))
    return IntegerGraph([x], ["y"], [op])


def _block_sparse(rng, n, k, block, keep) -> np.ndarray:
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    mask = rng.random((-(-n // block[0]), -(-k // block[1]))) < keep
    return w * np.kron(mask, np.ones(block, np.int8))[:n, :k].astype(np.int8)


def _assert_exact(graph, new, rng, trials=4):
    for _ in range(trials):
        x = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs}
        np.testing.assert_array_equal(int_eval.run(graph, x)["y"], int_eval.run(new, x)["y"])


def _kernels(graph) -> list[IntOp]:
    return [op for op in graph.ops if op.kind in ("fully_connected", "conv_2d")]


def _apply(graph, tiling_name):
    return T.TileBlockSparse(force=tiling_name).run(graph)


@pytest.mark.parametrize("form", FORMS)
def test_smallest_tiled_layer(form):
    """32 outputs × 64 inputs, two 16×32 tiles non-zero on a diagonal: two kernels of 16×32, no gather."""
    rng = np.random.default_rng(0)
    w = np.zeros((32, 64), np.int8)
    w[:16, :32] = rng.integers(-127, 128, (16, 32))
    w[16:, 32:] = rng.integers(-127, 128, (16, 32))
    graph = _fc_graph(w, rng, form=form)
    new, records = _apply(graph, "row-blocks/16")  # the same groups as row-blocks/32 here
    kind = graph.ops[0].kind
    assert [op.kind for op in new.ops] == ["slice", kind, "slice", kind, "concat"]
    assert [op.attrs["axis"] for op in new.ops if op.kind != kind] == [len(graph.inputs[0].shape) - 1] * 3
    assert [list(matrix_shape) for matrix_shape in (T.matrix(op).shape for op in _kernels(new))] == [[16, 32]] * 2
    positions = int(np.prod(graph.ops[0].output.shape[:-1]))
    assert records[0]["macs_after"] == 1024 * positions and records[0]["macs_before"] == 2048 * positions
    assert new.ops[-1].name == "y" and new.ops[-1].output.shape == graph.ops[0].output.shape
    _assert_exact(graph, new, rng)


def test_tiled_layers_match_host_reference_and_tflite():
    from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
    from tvmse.targets.host import HostReference
    rng = np.random.default_rng(1)
    pairs = []
    for form in ("fc", "fc_rank3", "conv1x1_strided_padded"):
        graph = _fc_graph(_block_sparse(rng, 48, 96, (16, 32), 0.4), rng, form=form)
        new, _ = _apply(graph, "row-blocks/16")
        assert len(_kernels(new)) == 3
        pairs.append((graph, new))
    before, after = side_by_side([g for g, _ in pairs]), side_by_side([n for _, n in pairs])
    reference = HostReference(after)
    x = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in before.inputs}
    expected = HostReference(before).run(x)
    for name, value in reference.run(x).items():
        np.testing.assert_array_equal(expected[name], value, err_msg=name)
    check_against_host(after, lower_to_tflite(after), reference, n_trials=3)


def test_fc_over_several_rows_and_larger_kernels_left_alone():
    # Negative: an FC over a [2, K] input (two rows) and a 3×3 convolution are not matched, however sparse.
    rng = np.random.default_rng(7)
    w = _block_sparse(rng, 32, 64, (16, 32), 0.3)
    x2 = TensorInfo("x2", (2, 64), 0.01, 0)
    fc = build.fully_connected("rows2", x2, w, None, 0.01, 0.05, 0)
    x4 = TensorInfo("x4", (1, 4, 4, 8), 0.01, 0)
    conv = build.conv_2d("conv3x3", x4, np.repeat(_block_sparse(rng, 32, 8, (16, 8), 0.3)[:, None, None, :], 3, 1)
                         .repeat(3, 2), None, 0.01, 0.05, 0, padding=(1, 1, 1, 1))
    graph = IntegerGraph([x2, x4], ["rows2", "conv3x3"], [fc, conv])
    assert T.match(graph) == []
    new, records = T.TileBlockSparse(force="row-blocks/16").run(graph)
    assert new is graph and records == []


def test_state_pairs_and_slots_survive():
    rng = np.random.default_rng(8)
    graph = _fc_graph(_block_sparse(rng, 48, 96, (16, 32), 0.4), rng)
    graph.state_pairs, graph.state_slots = {"x": "y"}, {"x": list(range(0, 192, 2))}
    new, _ = _apply(graph, "row-blocks/16")
    assert new is not graph and new.state_pairs == {"x": "y"} and new.state_slots == graph.state_slots


@pytest.mark.parametrize("form", ["fc", "conv1x1"])
def test_dense_layer_left_alone(form):
    rng = np.random.default_rng(2)
    graph = _fc_graph(rng.integers(1, 128, (32, 64)).astype(np.int8), rng, form=form)
    new, records = T.TileBlockSparse().run(graph)
    assert new is graph and records == []


def test_unaligned_zeros_are_not_a_tile():
    # Negative: 30 % scattered zeros leave no all-zero 16×16 tile: nothing to skip.
    rng = np.random.default_rng(3)
    w = rng.integers(1, 128, (32, 64)).astype(np.int8)
    w[rng.random(w.shape) < 0.3] = 0
    assert T.check(_fc_graph(w, rng).ops[0], U55_128) == "no all-zero tile"


@pytest.mark.parametrize("form", ["fc", "conv1x1"])
def test_all_zero_row_block_keeps_one_input_run(form):
    rng = np.random.default_rng(4)
    w = _block_sparse(rng, 48, 64, (16, 32), 1.0)
    w[16:32] = 0
    graph = _fc_graph(w, rng, form=form)
    new, _ = _apply(graph, "row-blocks/16")
    assert all(op.consts["weight"].shape[-1] > 0 for op in _kernels(new))
    _assert_exact(graph, new, rng)


def test_cost_model_alone_keeps_dense_layer_when_tiling_costs_more():
    # One zero 16×32 tile in the middle of every row block, at a different column each: skipping it
    # saves one input step but costs a two-run gather (MemoryCopy of ~220 bytes), so leave it.
    rng = np.random.default_rng(5)
    w = rng.integers(1, 128, (256, 256)).astype(np.int8)
    for r in range(16):
        c = 32 * (1 + r % 6)
        w[16 * r:16 * (r + 1), c:c + 32] = 0
    graph = _fc_graph(w, rng)
    tiling, record = T.choose(graph.ops[0], graph.inputs[0], U55_128, "Sram_Only", None)
    assert tiling is None and record["decision"].startswith("left alone")


@pytest.mark.parametrize("form, gain", [("fc", 0.6), ("conv1x1", 0.8)])
def test_vela_referee_never_applies_a_slower_tiling(form, gain):
    from tvmse.targets.ethosu.vela_driver import VelaConfig
    rng = np.random.default_rng(6)
    for keep in (0.1, 0.5):
        graph = _fc_graph(_block_sparse(rng, 256, 256, (16, 32), keep), rng, form=form)
        new, records = T.TileBlockSparse().run(graph, config=VelaConfig("ethos-u55-128", None, "Sram_Only"))
        for r in records:
            assert r["cycles_after"] < r["cycles_before"], r
        if keep == 0.1:
            assert records and records[0]["cycles_after"] < gain * records[0]["cycles_before"]
            _assert_exact(graph, new, rng)


def _random_block_patterns_bit_exact(seed, n, k, block, keep, choice, x_zp, form):
    rng = np.random.default_rng(seed)
    graph = _fc_graph(_block_sparse(rng, n, k, block, keep), rng, x_zp, form)
    weight = T.matrix(graph.ops[0])
    if choice == "random":
        blocks = -(-n // U55_128.row_block)
        cuts = sorted({0, blocks, *rng.integers(0, blocks + 1, 3).tolist()})
        tiling = T.grouped(weight, cuts, U55_128.row_block, int(rng.choice([1, 8, 16, 32])), "random")
    else:
        tiling = next((t for t in T.candidates(U55_128, "Sram_Only", weight, unique=False)
                       if t.name == choice), T.untouched(weight))
    covered = np.concatenate([np.arange(*g.rows) for g in tiling.groups])
    assert np.array_equal(covered, np.arange(n))  # tiles cover every output row once
    for g in tiling.groups:
        r0, r1 = g.rows
        outside = np.setdiff1d(np.arange(k), g.cols)
        assert not weight[r0:r1][:, outside].any()  # each row's whole reduction stays in its kernel
    new = IntegerGraph(graph.inputs, graph.outputs, T.rewrite(graph.ops[0], graph.inputs[0], tiling))
    _assert_exact(graph, new, rng, trials=2)


test_random_block_patterns_bit_exact, test_random_block_patterns_bit_exact_10k = property_tests(
    _random_block_patterns_bit_exact, seed=st.integers(0, 2**31), n=st.integers(1, 70), k=st.integers(1, 90),
    block=st.tuples(st.integers(1, 20), st.integers(1, 40)), keep=st.floats(0.0, 1.0),
    choice=st.sampled_from(["grouped/16", "row-blocks/16", "grouped/32", "row-blocks/32", "random"]),
    x_zp=st.integers(-128, 127), form=st.sampled_from(FORMS))


def test_cpu_objective_weighs_kernel_calls_against_skipped_tiles():
    """For the Cortex-M55 a kernel call costs more than one skipped 16×16 tile saves: one zero tile is left
    alone, a zero half (each row block reads half the columns) is tiled, and the result stays bit-exact."""
    from tvmse.passes.cost_model import CPU_OBJECTIVE
    rng = np.random.default_rng(7)
    weight = rng.integers(-127, 128, (64, 128)).astype(np.int8)
    weight[weight == 0] = 1
    one_zero_tile = weight.copy()
    one_zero_tile[:16, :16] = 0
    best = T.optimal(U55_128, CPU_OBJECTIVE, one_zero_tile, 16)
    assert T.tiling_cycles(U55_128, CPU_OBJECTIVE, one_zero_tile, best) >= T.tiling_cycles(
        U55_128, CPU_OBJECTIVE, one_zero_tile, T.untouched(one_zero_tile))
    half = weight.copy()
    half[:32, 64:] = 0
    half[32:, :64] = 0
    best = T.optimal(U55_128, CPU_OBJECTIVE, half, 16)
    assert [g.rows for g in best.groups] == [(0, 32), (32, 64)]
    assert T.tiling_cycles(U55_128, CPU_OBJECTIVE, half, best) < T.tiling_cycles(
        U55_128, CPU_OBJECTIVE, half, T.untouched(half))
    graph = _fc_graph(half, rng)
    new, _ = T.TileBlockSparse(memory_mode=CPU_OBJECTIVE).run(graph)
    assert len(_kernels(new)) == 2
    _assert_exact(graph, new, rng)
