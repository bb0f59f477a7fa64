"""SOFTMAX and MEAN over many quantizations, betas and shapes: the integer form equals the TFLite interpreter's
reference kernels on thousands of random rows (slow: one host build per configuration)."""

from __future__ import annotations

import numpy as np
import pytest

from tvmse.ir import IntegerGraph, TensorInfo, build
from tvmse.targets.ethosu.lower_to_tflite import lower_to_tflite
from tvmse.targets.ethosu.tflite_writer import run_tflite
from tvmse.targets.host import HostReference


def _compare(graph: IntegerGraph, rng, n_inputs: int) -> int:
    """Runs ``n_inputs`` random inputs (some concentrated near one value, as real logits are) through both."""
    model, reference = lower_to_tflite(graph), HostReference(graph)
    x = graph.inputs[0]
    for trial in range(n_inputs):
        values = rng.integers(-128, 128, x.shape)
        if trial % 3 == 1:
            values = values // 8 + int(rng.integers(-110, 110))
        inputs = {x.name: np.clip(values, -128, 127).astype(np.int8)}
        expected, got = run_tflite(model, inputs)["y"], reference.run(inputs)["y"]
        np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}")
    return n_inputs * int(np.prod(x.shape[:-1]))


@pytest.mark.slow
def test_softmax_sweep():
    rng = np.random.default_rng(7)
    rows = 0
    for config in range(24):
        depth = int(rng.choice([1, 2, 5, 12, 35, 256])) if config % 4 else int(rng.integers(3, 64))
        scale = float(np.float32(10 ** rng.uniform(-3, 0.7)))
        x = TensorInfo("x", (8, depth), scale, int(rng.integers(-128, 128)))
        beta = 1.0 if config % 2 else float(rng.uniform(0.05, 4.0))
        rows += _compare(IntegerGraph([x], ["y"], [build.softmax("y", x, beta)]), rng, 25)
    assert rows >= 4000


@pytest.mark.slow
def test_mean_sweep():
    rng = np.random.default_rng(8)
    for config in range(16):
        if config % 2:
            x = TensorInfo("x", (1, int(rng.integers(1, 12)), int(rng.integers(1, 12)), 5), 0.02, 0)
            axes, keep = [1, 2], bool(config % 4 == 1)
        else:
            x = TensorInfo("x", (1, int(rng.integers(1, 40)), 6), 0.02, 0)
            axes, keep = [1], bool(config % 4 == 0)
        x.scale = float(np.float32(10 ** rng.uniform(-3, -0.5)))
        x.zero_point = int(rng.integers(-100, 100))
        same = config % 3 == 0
        out_scale = x.scale if same else float(np.float32(x.scale * rng.uniform(0.2, 4)))
        out_zp = x.zero_point if same else int(rng.integers(-100, 100))
        _compare(IntegerGraph([x], ["y"], [build.mean("y", x, axes, keep, out_scale, out_zp)]), rng, 20)
