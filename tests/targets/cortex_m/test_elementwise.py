"""The int32 ADD/MUL kernels compute the host reference's bits for every int8 input pair.

Each random case (scales log-uniform over four decades, so multipliers above and below one and
heavy saturation both occur; zero points anywhere, plus the LOGISTIC/TANH ones) is checked on all
65 536 input pairs: the TIR kernel built for the host (LLVM) against the Relax reference of the
same op. A small network with a saturating MUL and ADD then runs on the emulated Cortex-M55.
"""
import numpy as np
import tvm

import tvmse.ir.build as ops
from tvmse.ir import IntegerGraph, TensorInfo
from tvmse.targets.cortex_m import elementwise_kernel, emulate, glue, lower
from tvmse.targets.cortex_m.compile_cpu import random_frames
from tvmse.targets.host import HostReference

CASES = 24
PAIRS = 256 * 256


def _random_cases(seed: int = 7):
    rng = np.random.default_rng(seed)
    special = [-128, 0]
    graph_inputs, graph_ops = [], []
    for i in range(CASES):
        zps = [int(rng.choice(special)) if rng.random() < 0.4 else int(rng.integers(-128, 128)) for _ in range(3)]
        scales = 10.0 ** rng.uniform(-3.5, 0.5, 3)
        a = TensorInfo(f"a{i}", (1, PAIRS), float(np.float32(scales[0])), zps[0])
        b = TensorInfo(f"b{i}", (1, PAIRS), float(np.float32(scales[1])), zps[1])
        build = ops.mul if i % 2 == 0 else ops.add
        graph_inputs += [a, b]
        graph_ops.append(build(f"y{i}", a, b, float(scales[2]), zps[2]))
    return IntegerGraph(inputs=graph_inputs, outputs=[op.name for op in graph_ops], ops=graph_ops)


def test_int32_kernels_match_the_host_reference_on_every_input_pair():
    graph = _random_cases()
    a = np.repeat(np.arange(-128, 128, dtype=np.int8), 256).reshape(1, PAIRS)
    b = np.tile(np.arange(-128, 128, dtype=np.int8), 256).reshape(1, PAIRS)
    expected = HostReference(graph).run({t.name: (a if t.name[0] == "a" else b) for t in graph.inputs})
    forms, saturated = set(), 0
    for op in graph.ops:
        build = elementwise_kernel.mul if op.kind == "mul" else elementwise_kernel.add
        built = build((1, PAIRS), op.attrs, op.output.zero_point)
        assert built is not None, f"{op.kind} {op.attrs} fell back to int64"
        func, form = built
        forms |= set(form.split("+"))
        lib = tvm.tirx.build(func, target="llvm")
        y = tvm.runtime.tensor(np.zeros((1, PAIRS), np.int8))
        lib(tvm.runtime.tensor(a), tvm.runtime.tensor(b), y)
        want = expected[op.name]
        assert np.array_equal(y.numpy(), want), (op.kind, op.attrs, int((y.numpy() != want).sum()))
        saturated += int(np.isin(want, [-128, 127]).mean() > 0.2)
    assert forms == {"split32", "mul64"} and saturated >= 4


def test_high_multiply_refuses_what_would_wrap_in_tflite():
    span = elementwise_kernel.Span(-255 * 255, 255 * 255)
    d = tvm.tirx.Var("d", "int32")
    assert elementwise_kernel.high_mul(d, span, 0, 2**31 - 1)[1] == "mul64"  # |d| > 2^15: no split
    assert elementwise_kernel.high_mul(d, elementwise_kernel.Span(-32640, 32640), 0, 2**31 - 1)[1] == "split32"
    assert elementwise_kernel.high_mul(d, span, 16, 2**30) is None             # d·2^16 leaves int32


def test_saturating_mul_and_add_run_bit_exact_on_the_cortex_m55(tmp_path):
    frame = TensorInfo("frame", (1, 96), 0.05, 11)
    a = ops.slice_("a", frame, 0, 48)
    b = ops.tanh("b", ops.slice_("bs", frame, 48, 96).output)
    m = ops.mul("m", a.output, b.output, 0.004, -20)           # saturates often
    y = ops.add("y", m.output, a.output, 0.03, 5)
    bs = ops.slice_("bs", frame, 48, 96)
    graph = IntegerGraph(inputs=[frame], outputs=["y"], ops=[a, bs, b, m, y])
    network = lower.lower(graph)
    kernels = {s.kind: s.kernel for s in network.steps}
    assert "tvmse.ir" not in network.other_kernels[kernels["mul"]].script()  # a te-built kernel, not legalized
    generated = glue.generate(network)
    glue.write(generated, tmp_path / "src")
    run = emulate.run_on_qemu(network, generated, tmp_path / "src", HostReference(graph),
                              random_frames((1, 96), 12, seed=5), tmp_path / "work")
    assert run.bit_exact
