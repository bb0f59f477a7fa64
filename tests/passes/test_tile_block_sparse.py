"""TileBlockSparse: block-sparse FCs become dense kernels over their tiles, bit-exact; dense ones stay."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.passes import int_eval
from tests.passes.examples import property_tests
from tvmse.ir import IntegerGraph, TensorInfo, build
from tvmse.passes import tile_block_sparse as T
from tvmse.passes.arch import U55_128


def _fc_graph(weight: np.ndarray, rng, x_zp: int = 3) -> IntegerGraph:
    n, k = weight.shape
    x = TensorInfo("x", (1, k), 0.011, x_zp)
    op = build.fully_connected("y", x, weight, rng.integers(-3000, 3000, n), rng.uniform(0.002, 0.02, n), 0.07, -4)
    return IntegerGraph([x], ["y"], [op])


def _block_sparse(rng, n, k, block, keep) -> np.ndarray:
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    mask = rng.random((-(-n // block[0]), -(-k // block[1]))) < keep
    return w * np.kron(mask, np.ones(block, np.int8))[:n, :k].astype(np.int8)


def _assert_exact(graph, new, rng, trials=4):
    for _ in range(trials):
        x = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs}
        np.testing.assert_array_equal(int_eval.run(graph, x)["y"], int_eval.run(new, x)["y"])


def _apply(graph, tiling_name):
    return T.TileBlockSparse(force=tiling_name).run(graph)


def test_smallest_tiled_fc():
    """32 outputs × 64 inputs, two 16×32 tiles non-zero on a diagonal: two FCs of 16×32, no gather."""
    rng = np.random.default_rng(0)
    w = np.zeros((32, 64), np.int8)
    w[:16, :32] = rng.integers(-127, 128, (16, 32))
    w[16:, 32:] = rng.integers(-127, 128, (16, 32))
    graph = _fc_graph(w, rng)
    new, records = _apply(graph, "row-blocks/16")  # the same groups as row-blocks/32 here
    kinds = [op.kind for op in new.ops]
    assert kinds == ["slice", "fully_connected", "slice", "fully_connected", "concat"]
    assert records[0]["after"] == [[16, 32], [16, 32]] and records[0]["macs_after"] == 1024
    assert new.ops[-1].name == "y"
    _assert_exact(graph, new, rng)


def test_tiled_fc_matches_host_reference_and_tflite():
    from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
    from tvmse.targets.host import HostReference
    rng = np.random.default_rng(1)
    graph = _fc_graph(_block_sparse(rng, 48, 96, (16, 32), 0.4), rng)
    new, _ = _apply(graph, "row-blocks/16")
    assert sum(op.kind == "fully_connected" for op in new.ops) == 3
    reference = HostReference(new)
    x = {"x": rng.integers(-128, 128, (1, 96), dtype=np.int8)}
    np.testing.assert_array_equal(HostReference(graph).run(x)["y"], reference.run(x)["y"])
    check_against_host(new, lower_to_tflite(new), reference, n_trials=3)


def test_dense_fc_left_alone():
    rng = np.random.default_rng(2)
    graph = _fc_graph(rng.integers(1, 128, (32, 64)).astype(np.int8), rng)
    new, records = T.TileBlockSparse().run(graph)
    assert new is graph and records == []


def test_unaligned_zeros_are_not_a_tile():
    # Negative: 30 % scattered zeros leave no all-zero 16×16 tile: nothing to skip.
    rng = np.random.default_rng(3)
    w = rng.integers(1, 128, (32, 64)).astype(np.int8)
    w[rng.random(w.shape) < 0.3] = 0
    assert T.check(_fc_graph(w, rng).ops[0], U55_128) == "no all-zero tile"


def test_all_zero_row_block_keeps_one_input_run():
    rng = np.random.default_rng(4)
    w = _block_sparse(rng, 48, 64, (16, 32), 1.0)
    w[16:32] = 0
    graph = _fc_graph(w, rng)
    new, _ = _apply(graph, "row-blocks/16")
    assert all(op.consts["weight"].shape[1] > 0 for op in new.ops if op.kind == "fully_connected")
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


def test_vela_referee_never_applies_a_slower_tiling():
    from tvmse.targets.ethosu.vela_driver import VelaConfig
    rng = np.random.default_rng(6)
    for keep in (0.1, 0.5):
        graph = _fc_graph(_block_sparse(rng, 256, 256, (16, 32), keep), rng)
        new, records = T.TileBlockSparse().run(graph, config=VelaConfig("ethos-u55-128", None, "Sram_Only"))
        for r in records:
            assert r["cycles_after"] < r["cycles_before"], r
        if keep == 0.1:
            assert records and records[0]["cycles_after"] < 0.6 * records[0]["cycles_before"]
            _assert_exact(graph, new, rng)


def _random_block_patterns_bit_exact(seed, n, k, block, keep, choice, x_zp):
    rng = np.random.default_rng(seed)
    graph = _fc_graph(_block_sparse(rng, n, k, block, keep), rng, x_zp)
    weight = graph.ops[0].consts["weight"]
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
    x_zp=st.integers(-128, 127))
