"""Vela compile of the bundled model, config checking and report figures."""

from __future__ import annotations

import pytest

from tvmse import frontend
from tvmse.errors import ConfigError
from tvmse.targets.ethosu.lower_to_tflite import lower_to_tflite
from tvmse.targets.ethosu.vela_driver import VelaConfig, accelerators, compile_tflite, cpu_operators


@pytest.fixture(scope="module")
def bundled_tflite(bundled_model):
    return lower_to_tflite(frontend.load(bundled_model))


def test_bundled_model_runs_entirely_on_u55_128(bundled_tflite):
    result = compile_tflite(bundled_tflite, VelaConfig("ethos-u55-128"), name="tinylstm")
    assert result.config.describe() == "ethos-u55-128, Ethos_U55_High_End_Embedded, Shared_Sram"
    assert result.cpu_operators == []
    assert result.total_cycles >= result.npu_cycles > 0
    fcs = [layer for layer in result.layers if layer.operator == "FullyConnected"]
    assert sorted(layer.name for layer in fcs) == ["lstm0/fc", "lstm1/fc", "mask"]
    # per-layer MACs add up to the network's three FCs: 1024·513 + 1024·512 + 257·256
    assert sum(layer.macs for layer in fcs) == 1024 * 513 + 1024 * 512 + 257 * 256
    assert all(layer.weight_bytes > 0 for layer in fcs)


def test_sram_only_is_compute_bound(bundled_tflite):
    shared = compile_tflite(bundled_tflite, VelaConfig("ethos-u55-128", memory_mode="Shared_Sram"))
    sram = compile_tflite(bundled_tflite, VelaConfig("ethos-u55-128", memory_mode="Sram_Only"))
    assert sram.total_cycles < shared.total_cycles       # weights no longer stream from flash


def test_cpu_fallback_is_detected_in_an_optimised_model():
    """The detector itself can fail: a model that is not Vela's output lists its ops as CPU ops."""
    from tvmse.ir import IntegerGraph, TensorInfo, build
    x = TensorInfo("x", (1, 8), 0.05, 0)
    graph = IntegerGraph([x], ["y"], [build.logistic("y", x)])
    assert cpu_operators(lower_to_tflite(graph)) == ["LOGISTIC:y"]


def test_every_accelerator_family_has_valid_defaults():
    for accelerator in accelerators():
        config = VelaConfig(accelerator).resolved()
        assert config.system_config and config.memory_mode


def test_config_errors_list_valid_values():
    with pytest.raises(ConfigError, match="valid: .*ethos-u55-128"):
        VelaConfig("ethos-u56-128").resolved()
    with pytest.raises(ConfigError, match="valid for it: Ethos_U55_Deep_Embedded, Ethos_U55_High_End_Embedded"):
        VelaConfig("ethos-u55-64", system_config="Ethos_U85_SYS_DRAM_High").resolved()
