"""Integer form → TFLite: bit-exact against the host reference, per op kind and for a whole model."""

from __future__ import annotations

import numpy as np
import pytest

from tvmse.ir import IntegerGraph, TensorInfo, build
from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
from tvmse.targets.ethosu.tflite_writer import run_tflite
from tvmse.targets.host import HostReference


def _act(rng, name, n, zp=None):
    return TensorInfo(name, (1, n), float(np.float32(rng.uniform(0.002, 0.1))),
                      int(rng.integers(-20, 20)) if zp is None else zp)


def _one_op_graph(kind: str, seed: int) -> IntegerGraph:
    rng = np.random.default_rng(seed)
    a, b = _act(rng, "a", 24), _act(rng, "b", 24)
    if kind == "fully_connected":
        w = rng.integers(-127, 128, (10, 24)).astype(np.int8)
        w[rng.random(w.shape) < 0.5] = 0
        ws = rng.uniform(0.001, 0.02, 10).astype(np.float32)
        op, inputs = build.fully_connected("y", a, w, rng.integers(-3000, 3000, 10), ws, 0.07, -5), [a]
    elif kind in ("add", "mul"):
        op, inputs = getattr(build, kind)("y", a, b, float(rng.uniform(0.01, 0.2)), int(rng.integers(-10, 10))), [a, b]
    elif kind in ("logistic", "tanh"):
        op, inputs = getattr(build, kind)("y", a), [a]
    elif kind == "concat":
        b = TensorInfo("b", (1, 7), a.scale, a.zero_point)
        op, inputs = build.concat("y", [a, b]), [a, b]
    elif kind == "slice":
        op, inputs = build.slice_("y", a, 5, 17), [a]
    return IntegerGraph(inputs=inputs, outputs=["y"], ops=[op])


@pytest.mark.parametrize("kind", ["fully_connected", "add", "mul", "logistic", "tanh", "concat", "slice"])
@pytest.mark.parametrize("seed", [0, 1])
def test_each_op_kind_bit_exact(kind, seed):
    graph = _one_op_graph(kind, seed)
    reference = HostReference(graph)
    check_against_host(graph, lower_to_tflite(graph), reference, n_trials=20, seed=seed)


def test_whole_model_bit_exact(small_graph, small_reference):
    check_against_host(small_graph, lower_to_tflite(small_graph), small_reference, n_trials=10)


def test_bit_exact_over_a_carried_state_rollout(small_graph, small_reference):
    """Each side carries its own state for 30 frames; every output stays identical."""
    model = lower_to_tflite(small_graph)
    rng = np.random.default_rng(5)
    pairs = {"h0": "h0_out", "c0": "c0_out", "h1": "h1_out", "c1": "c1_out"}
    ours = {i: np.zeros((1, 32), np.int8) for i in pairs}
    theirs = dict(ours)
    for _ in range(30):
        frame = rng.integers(-128, 128, (1, 40), dtype=np.int8)
        a = small_reference.run({"frame": frame, **ours})
        b = run_tflite(model, {"frame": frame, **theirs})
        for name in small_graph.outputs:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        ours = {i: a[o] for i, o in pairs.items()}
        theirs = {i: b[o] for i, o in pairs.items()}


def test_mismatch_is_detected(small_graph, small_reference):
    """The check itself can fail: a TFLite model whose FC bias was altered is caught."""
    import copy
    broken = copy.deepcopy(small_graph)
    fc = next(op for op in broken.ops if op.kind == "fully_connected")
    fc.consts["bias"] = fc.consts["bias"] + 5000
    with pytest.raises(AssertionError, match="differs from the host reference"):
        check_against_host(small_graph, lower_to_tflite(broken), small_reference, n_trials=3)
