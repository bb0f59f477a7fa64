"""Every op kind of the integer form: host reference (TVM) == TFLite interpreter (reference kernels) on
the TFLite file tvmse writes, and the TFLite importer reads that file back into the same computation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.op_graphs import KINDS, op_graph
from tvmse.frontend import import_model
from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
from tvmse.targets.ethosu.tflite_writer import run_tflite
from tvmse.targets.host import HostReference


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_host_reference_equals_tflite_interpreter(kind, seed):
    graph = op_graph(kind, seed)
    check_against_host(graph, lower_to_tflite(graph), HostReference(graph), n_trials=8, seed=seed)


@pytest.mark.parametrize("kind", KINDS)
def test_tflite_import_round_trip(kind, tmp_path):
    """Written by tvmse, read back by the importer: its host reference equals the interpreter on the file."""
    source = lower_to_tflite(op_graph(kind, 2))
    path = tmp_path / "model.tflite"
    path.write_bytes(source)
    graph = import_model(path).graph
    reference = HostReference(graph)
    rng = np.random.default_rng(0)
    for _ in range(4):
        inputs = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs}
        expected, got = run_tflite(source, inputs), reference.run(inputs)
        for name in graph.outputs:
            np.testing.assert_array_equal(got[name], expected[name])
