"""Converter-made CNN fixtures with SOFTMAX and MEAN (tests/fixtures/imported): they compile for the Ethos-U55 with
every op on the NPU, and the int8 TFLite tvmse hands to Vela computes exactly what the source file computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tvmse.compile import compile_model
from tvmse.errors import UnsupportedModelError
from tvmse.frontend import import_model
from tvmse.targets.ethosu.tflite_writer import run_tflite

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "imported"


@pytest.mark.parametrize("name", ["keras_kws_cnn", "keras_conv1d_branches"])
def test_cnn_fixture_compiles_on_the_npu_bit_exact(name, tmp_path):
    source = (FIXTURES / f"{name}.tflite").read_bytes()
    kinds = {op.kind for op in import_model(FIXTURES / f"{name}.tflite").graph.ops}
    assert "softmax" in kinds and (name != "keras_conv1d_branches" or "mean" in kinds)
    result = compile_model(FIXTURES / f"{name}.tflite", target="ethos-u55", output_dir=tmp_path / "out")
    report = json.loads((result.output_dir / "report.json").read_text())
    assert report["npu"]["cpu_fallback_ops"] == []
    compiled = (result.output_dir / f"{name}_int8.tflite").read_bytes()
    rng = np.random.default_rng(0)
    shapes = {t.name: t.shape for t in import_model(FIXTURES / f"{name}.tflite").graph.inputs}
    for trial in range(30):
        inputs = {n: rng.integers(-128, 128, s, dtype=np.int8) for n, s in shapes.items()}
        if trial % 2:   # values bunched near one level, as real features are
            inputs = {n: np.clip(v // 4 + int(rng.integers(-60, 60)), -128, 127).astype(np.int8)
                      for n, v in inputs.items()}
        expected, got = run_tflite(source, inputs), run_tflite(compiled, inputs)
        assert sorted(got) == sorted(expected)
        for output in expected:
            np.testing.assert_array_equal(got[output], expected[output], err_msg=f"trial {trial}, '{output}'")


def test_fused_sequence_lstm_is_refused_with_the_reason():
    with pytest.raises(UnsupportedModelError) as info:
        import_model(FIXTURES / "keras_lstm_seq.tflite")
    message = str(info.value)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in message and "variable tensors" in message
    assert "initial_state" in message and "unrolls" in message
