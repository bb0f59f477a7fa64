"""The integer form compiled to C for the Cortex-M55 runs bit-exactly under QEMU.

Needs the Debian toolchain (scripts/install_system_packages.sh); a missing tool fails naming its package.
"""
import json

import numpy as np
import pytest

from tvmse.ir import IntegerGraph, TensorInfo
from tvmse.targets.cortex_m import emulate, glue, lower, memory_plan
from tvmse.targets.cortex_m.compile_cpu import random_frames
from tvmse.targets.host import HostReference
from tvmse.testing import export_small_model


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    return export_small_model(tmp_path_factory.mktemp("m") / "small.onnx", hidden=16, n_bins=24)


def _compile_and_run(graph, tmp_path, frames, fc_rows=None):
    network = lower.lower(graph, fc_rows=fc_rows)
    generated = glue.generate(network)
    glue.write(generated, tmp_path / "src")
    run = emulate.run_on_qemu(network, generated, tmp_path / "src", HostReference(graph), frames, tmp_path / "work")
    return network, generated, run


def test_memory_plan_reuses_dead_tensors_and_never_overlaps_live_ones():
    lifetimes = {"a": (100, 0, 1), "b": (50, 1, 2), "c": (100, 2, 3), "d": (20, 3, 3)}
    plan = memory_plan.plan(lifetimes)
    for x, px in plan.placements.items():
        assert px.offset % memory_plan.ALIGN == 0
        for y, py in plan.placements.items():
            if x < y and px.first <= py.last and py.first <= px.last:
                assert px.offset + px.size <= py.offset or py.offset + py.size <= px.offset, (x, y)
    assert plan.placements["a"].offset == plan.placements["c"].offset  # a is dead when c is written
    assert plan.arena_bytes < sum(size for size, _, _ in lifetimes.values())


def _fc_graph(x_zp: int, n: int, k: int) -> IntegerGraph:
    import tvmse.ir.build as ops
    rng = np.random.default_rng(3)
    x = TensorInfo("frame", (1, k), 0.02, x_zp)
    fc = ops.fully_connected("mask", x, rng.integers(-127, 128, (n, k)), rng.integers(-5000, 5000, n),
                             rng.uniform(0.001, 0.01, n), 0.05, -7)
    return IntegerGraph(inputs=[x], outputs=["mask"], ops=[fc])


def test_fully_connected_with_input_zero_point_and_row_tail(tmp_path):
    # n = 4·2 + 3 exercises the row-blocked loop and its tail; x_zp ≠ 0 the folded bias.
    graph = _fc_graph(x_zp=-9, n=11, k=37)
    frames = random_frames((1, 37), 8, seed=1)
    network, _, run = _compile_and_run(graph, tmp_path, frames)
    assert run.bit_exact and run.frames == 8
    assert [k["kind"] for k in run.kernels] == ["fully_connected"]


@pytest.mark.parametrize("rows", [1, 2, 8])
def test_fully_connected_is_bit_exact_at_every_row_count(rows, tmp_path):
    # n = 19: blocks and a tail at every row count; 8 rows requantize two Helium vectors per block,
    # 1 and 2 rows only the scalar form (4 rows: the test above).
    graph = _fc_graph(x_zp=-9, n=19, k=37)
    _, generated, run = _compile_and_run(graph, tmp_path, random_frames((1, 37), 8, seed=1), fc_rows={(19, 37): rows})
    assert run.bit_exact
    assert ("tvmse_fc_requantize4(acc" in generated.files[glue.FC_SOURCE]) == (rows == 8)


def test_fully_connected_with_large_scales_keeps_the_general_requantization(tmp_path):
    """Rescales ≥ 1/4 (shift ≥ −1) take the int64 requantization, not the high-word one."""
    import tvmse.ir.build as ops
    from tvmse.targets.cortex_m import fc_kernel
    rng = np.random.default_rng(5)
    k, n = 24, 9
    x = TensorInfo("frame", (1, k), 0.5, 3)
    fc = ops.fully_connected("mask", x, rng.integers(-3, 4, (n, k)), rng.integers(-20, 20, n),
                             rng.uniform(0.05, 0.6, n), 0.25, -2)
    assert not fc_kernel.uses_high_word(fc.consts["shift"])
    graph = IntegerGraph(inputs=[x], outputs=["mask"], ops=[fc])
    _, _, run = _compile_and_run(graph, tmp_path, random_frames((1, k), 8, seed=3))
    assert run.bit_exact


def test_fully_connected_rounds_exact_ties_away_from_zero(tmp_path):
    """Power-of-two scales make exact .5 ties; negative ones must round away from zero (as TFLite)."""
    import tvmse.ir.build as ops
    from tvmse import quant_math
    rng = np.random.default_rng(4)
    k, n = 16, 32
    x = TensorInfo("frame", (1, k), 2.0**-5, 0)
    w, bias = rng.integers(-2, 3, (n, k)), rng.integers(-64, 64, n)   # small weights: outputs stay in range
    fc = ops.fully_connected("mask", x, w, bias, np.full(n, 2.0**-7), 2.0**-6, 0)
    graph = IntegerGraph(inputs=[x], outputs=["mask"], ops=[fc])
    frames = random_frames((1, k), 16, seed=2)
    halves_up = [quant_math.fully_connected(f, fc.consts["weight"], fc.consts["bias"], x.scale, 0,
                                            np.full(n, 2.0**-7), 2.0**-6, 0, requantize="single") for f in frames]
    away = [quant_math.fully_connected(f, fc.consts["weight"], fc.consts["bias"], x.scale, 0,
                                       np.full(n, 2.0**-7), 2.0**-6, 0) for f in frames]
    assert any(not np.array_equal(a, b) for a, b in zip(halves_up, away))   # the frames do hit negative ties
    _, _, run = _compile_and_run(graph, tmp_path, frames)
    assert run.bit_exact


def test_small_lstm_is_bit_exact_over_50_frames_with_state(small_model, tmp_path):
    from tvmse import frontend
    graph = frontend.load(small_model)
    network, generated, run = _compile_and_run(graph, tmp_path, random_frames((1, 24), 50))
    assert run.bit_exact and run.frames == 50
    assert run.instructions_per_frame == pytest.approx(
        sum(k["instructions_per_frame"] for k in run.kernels) + run.glue_instructions_per_frame)
    assert {k["op"] for k in run.kernels} == {op.name for op in graph.ops}
    assert run.sizes.rodata >= sum(op.consts["weight"].size for op in graph.ops if op.kind == "fully_connected")
    assert run.sizes.bss >= generated.plan.arena_bytes and 0 < run.stack_bytes < 4096
    assert "malloc" not in (tmp_path / "src" / "tvmse_model.c").read_text()


def test_cli_cortex_m55_with_qemu_writes_sources_and_report(small_model, tmp_path, capsys):
    from tvmse.compile import main
    out = tmp_path / "out"
    assert main([str(small_model), "--target", "cortex-m55", "--run", "qemu", "--frames", "50",
                 "--output-dir", str(out), "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    q = report["cpu"]["qemu"]
    assert q["bit_exact_vs_host_reference"] and q["frames"] == 50 and q["instructions_per_frame"] > 0
    assert "not cycles" in q["note"] and "not cycles" in (out / "report.md").read_text()
    assert (out / "src" / "tvmse_model.h").is_file() and (out / "src" / "tvmse_kernels_fc.c").is_file()
    assert "instructions, not cycles" in capsys.readouterr().out


def test_cli_ram_budget_fails_with_the_numbers_and_writes_nothing(small_model, tmp_path, capsys):
    from tvmse.compile import main
    out = tmp_path / "out"
    assert main([str(small_model), "--target", "cortex-m55", "--ram-budget", "100", "--output-dir", str(out)]) != 0
    err = capsys.readouterr().err
    assert "--ram-budget 100 B" in err and "arena" in err and "state" in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))
