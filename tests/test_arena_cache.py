"""`compile --arena-cache-size`: Vela's arena cache in Dedicated_Sram (Ethos-U65/U85), and its misuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvmse.compile import compile_model, main as compile_main

BLOCK80 = Path(__file__).resolve().parents[1] / "examples" / "tinylstm_block80.onnx"


def test_a_cache_below_the_working_set_costs_cycles_and_is_reported(tmp_path):
    def build(size):
        return compile_model(BLOCK80, "ethos-u65", memory_mode="Dedicated_Sram", output_dir=tmp_path / str(size),
                             verify_trials=1, arena_cache_size=size).report["npu"]
    default, small = build(None), build(2048)
    assert small["arena_cache_size"] == 2048 and default["arena_cache_size"] is None
    assert small["memory"]["sram_bytes"] <= 2048 < default["memory"]["sram_bytes"]
    assert small["total_cycles_per_frame"] > 1.1 * default["total_cycles_per_frame"]


@pytest.mark.parametrize("extra, phrase", [
    (["--arena-cache-size", "4096"], "applies only to --memory-mode Dedicated_Sram"),
    (["--target", "ethos-u65", "--arena-cache-size", "4096"], "in Shared_Sram the whole arena is in SRAM"),
    (["--target", "ethos-u65", "--memory-mode", "Dedicated_Sram", "--arena-cache-size", "0"], "must be a whole number"),
    (["--target", "cortex-m55", "--arena-cache-size", "4096"], "--arena-cache-size does not apply to --target cortex-m55"),
])
def test_misuse_is_one_error_line_before_any_work(small_onnx, extra, phrase, tmp_path, capsys):
    out = tmp_path / "out"
    assert compile_main([str(small_onnx), "--output-dir", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and phrase in err and not out.exists()
