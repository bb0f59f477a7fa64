"""`compile --sram-budget`: weights placed in SRAM per layer within the budget, never slower than the default."""

from __future__ import annotations

import json
import subprocess
import sys


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tvmse.compile", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_sram_budget_places_layers_and_reports_segments(small_onnx, tmp_path):
    out = tmp_path / "placed"
    result = _run_cli(small_onnx, "--sram-budget", 1 << 20, "--output-dir", out, "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    placement = report["placement"]
    assert placement["layers_in_sram"] == ["lstm0/fc", "lstm1/fc", "out/fc"]  # a MiB holds every layer
    assert placement["sram"]["total_bytes"] <= 1 << 20
    assert placement["achieved_cycles_per_frame"] < placement["default_cycles_per_frame"]
    assert report["npu"]["total_cycles_per_frame"] == sum(s["cycles"] for s in placement["segments"])
    assert report["verification"]["tflite_vs_host_reference"] == "bit-exact"
    for seg in placement["segments"]:
        assert (out / f"small_seg{seg['index']}_vela.tflite").is_file()
    model_c = (out / "src" / "tvmse_model.c").read_text()
    assert "weights flash → SRAM, once" in model_c
    assert "## Weight placement" in (out / "report.md").read_text()


def test_sram_budget_below_the_arena_is_a_clean_error(small_onnx, tmp_path):
    out = tmp_path / "placed"
    for budget, phrase in ((100, "--sram-budget 100 B"), (0, "--sram-budget 0: must be a whole number ≥ 1")):
        result = _run_cli(small_onnx, "--sram-budget", budget, "--output-dir", out)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert [l for l in result.stderr.splitlines() if l.startswith("tvmse: error:")], result.stderr
        assert phrase in result.stderr, result.stderr
        assert not out.exists() and not list(tmp_path.glob(".placed.tmp-*"))


def test_placement_options_are_refused_for_the_cpu_target(small_onnx, tmp_path, capsys):
    from tvmse.compile import main
    code = main([str(small_onnx), "--target", "cortex-m55", "--sram-budget", "1000", "--output-dir",
                 str(tmp_path / "cpu")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tvmse: error:") and "--ram-budget" in err
    assert not (tmp_path / "cpu").exists()
