"""Concatenations written in place: the kernels of a tiled FC write their tiles straight into the
concatenated output (and the slices of a gathered input into the gathered buffer), with no copy
kernel, and the step stays bit-exact under QEMU.

Needs the Debian toolchain (scripts/install_system_packages.sh); a missing tool fails naming its package.
"""
import numpy as np

from tvmse.ir import IntegerGraph, TensorInfo, build
from tvmse.passes.tile_block_sparse import TileBlockSparse
from tvmse.targets.cortex_m import emulate, glue, lower, memory_plan
from tvmse.targets.cortex_m.compile_cpu import random_frames
from tvmse.targets.host import HostReference


def _tiled_graph() -> IntegerGraph:
    """frame [1, 40] → dense FC h [1, 64] → block-sparse FC y [1, 48], tiled by 16-row blocks.

    Row block 0 reads input granules 0 and 2 (a gathered input of two runs), block 1 granule 1 (one
    slice), block 2 all four (the whole input): three FC kernels, two slices, two concatenations."""
    rng = np.random.default_rng(11)
    x = TensorInfo("frame", (1, 40), 0.02, -3)
    dense = build.fully_connected("h", x, rng.integers(-127, 128, (64, 40)), rng.integers(-3000, 3000, 64),
                                  rng.uniform(0.002, 0.01, 64), 0.05, 4)
    keep = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]], np.int8)
    weight = rng.integers(-127, 128, (48, 64)).astype(np.int8) * np.kron(keep, np.ones((16, 16), np.int8))
    sparse = build.fully_connected("y", dense.output, weight, rng.integers(-3000, 3000, 48),
                                   rng.uniform(0.002, 0.01, 48), 0.07, -5)
    graph = IntegerGraph([x], ["y"], [dense, sparse])
    tiled, records = TileBlockSparse(force="row-blocks/16").run(graph)
    assert records and [op.kind for op in tiled.ops].count("concat") == 2
    return tiled


def _run(graph, tmp_path, in_place):
    network = lower.lower(graph, in_place_concat=in_place)
    generated = glue.generate(network)
    glue.write(generated, tmp_path / "src")
    frames = random_frames((1, 40), 12, seed=4)
    run = emulate.run_on_qemu(network, generated, tmp_path / "src", HostReference(graph), frames, tmp_path / "work")
    return network, generated, run


def test_tiled_fc_writes_its_tiles_in_place_bit_exact(tmp_path):
    graph = _tiled_graph()
    network, generated, run = _run(graph, tmp_path / "in_place", in_place=True)
    assert run.bit_exact and run.frames == 12   # run_on_qemu raises on any differing byte
    assert "concat" not in {s.kind for s in network.steps}
    tiles = [op.output for op in graph.ops if op.kind == "fully_connected" and op.name != "h"]
    offset = 0
    for tile in tiles:   # each tile at its place in y, one after the other
        assert network.views[tile.name] == ("y", offset)
        assert generated.plan.offset_of(tile.name) == generated.plan.offset_of("y") + offset
        offset += int(np.prod(tile.shape))
    gathered = next(op for op in graph.ops if op.kind == "concat" and op.name != "y")
    assert all(network.views[p][0] == gathered.name for p in gathered.inputs)

    copied, _, copied_run = _run(graph, tmp_path / "copied", in_place=False)
    assert [s.kind for s in copied.steps].count("concat") == 2 and not copied.views
    assert run.instructions_per_frame < copied_run.instructions_per_frame


def test_views_share_their_root_region_and_nothing_live_overlaps_it():
    graph = _tiled_graph()
    network = lower.lower(graph)
    plan = glue.generate(network).plan
    views = memory_plan.resolve_views(network.views)
    assert set(views) == set(network.views) and not set(views) & set(plan.placements)
    for name, (root, offset) in views.items():
        start = plan.offset_of(name)
        assert plan.placements[root].offset <= start
        assert start + network.tensors[name].nbytes <= plan.placements[root].offset + plan.placements[root].size
        assert offset == start - plan.placements[root].offset
    for x, px in plan.placements.items():   # roots included: their lifetimes cover their views' writes and reads
        for y, py in plan.placements.items():
            if x < y and px.first <= py.last and py.first <= px.last:
                assert px.offset + px.size <= py.offset or py.offset + py.size <= px.offset, (x, y)
    writes = {s.args[-1]: i for i, s in enumerate(network.steps)}
    for name, (root, _) in views.items():
        if name in writes:
            assert plan.placements[root].first <= writes[name]


def test_nested_views_resolve_to_the_outer_root():
    assert memory_plan.resolve_views({"a": ("b", 4), "b": ("c", 16), "d": ("c", 0)}) == {
        "a": ("c", 20), "b": ("c", 16), "d": ("c", 0)}


def test_concat_of_a_network_input_keeps_its_copy_kernel():
    rng = np.random.default_rng(2)
    x = TensorInfo("frame", (1, 8), float(np.float32(0.02)), 0)   # the scale the FC output keeps (float32)
    fc = build.fully_connected("h", x, rng.integers(-127, 128, (8, 8)), None, rng.uniform(0.002, 0.01, 8), 0.02, 0)
    cat = build.concat("y", [x, fc.output], axis=1)
    network = lower.lower(IntegerGraph([x], ["y"], [fc, cat]))
    assert [s.kind for s in network.steps] == ["fully_connected", "concat"] and not network.views
