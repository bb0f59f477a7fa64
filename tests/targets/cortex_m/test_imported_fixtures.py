"""Converter-made fixtures (tests/fixtures/imported) compiled for the Cortex-M55 run bit-exactly on QEMU against
the host reference, state carried. The Conv1D net (pad, conv, max pool, leaky ReLU, concatenation, mean, FC,
softmax) runs by default; every other TFLite fixture in the slow set.
Needs the Debian toolchain (scripts/install_system_packages.sh); a missing tool fails naming its package.
"""

from pathlib import Path

import pytest

from tvmse.targets.cortex_m.compile_cpu import compile_cortex_m

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "imported"
SLOW = [pytest.param(name, marks=pytest.mark.slow) for name in
        ["keras_kws_cnn", "keras_kws_cnn_small", "keras_gru_step", "keras_gru_step_per_tensor", "keras_lstm_step"]]


@pytest.mark.parametrize("name", ["keras_conv1d_branches", *SLOW])
def test_imported_fixture_is_bit_exact_on_qemu(name, tmp_path):
    report = compile_cortex_m(FIXTURES / f"{name}.tflite", tmp_path / "out", run="qemu", frames=12)
    qemu = report["cpu"]["qemu"]
    assert qemu["bit_exact_vs_host_reference"] and qemu["frames"] == 12
    assert qemu["instructions_per_frame"] > 0
