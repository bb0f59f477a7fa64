"""`python -m tvmse.compile`: a complete output folder on success; one clear message and nothing left behind on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvmse.compile import main


def _run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tvmse.compile", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def _assert_clean_failure(code, err, out_dir, *phrases):
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("tvmse: error:")]
    assert len(lines) == 1, err
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    assert not out_dir.exists()
    assert not list(out_dir.parent.glob(f".{out_dir.name}.tmp-*")), "staging folder left behind"


def test_cli_compiles_small_model(small_onnx, tmp_path):
    out = tmp_path / "build"
    result = _run_cli(small_onnx, "--target", "ethos-u55", "--output-dir", out)
    assert result.returncode == 0, result.stderr
    assert "ethos-u55-128 (Ethos_U55_High_End_Embedded, Shared_Sram" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".tvmse-output", "report.json", "report.md", "report_cycles.png", "report_memory.png", "integer_graph.json",
         "small_vela.tflite", "small_vela.h", "small_int8.tflite", "src"])
    report = json.loads((out / "report.json").read_text())
    assert report["npu"]["cpu_fallback_ops"] == [] and report["npu"]["total_cycles_per_frame"] > 0
    assert report["verification"]["tflite_vs_host_reference"] == "bit-exact"
    header = (out / "small_vela.h").read_text()
    assert "__attribute__((aligned(16)))" in header
    assert f"SMALL_VELA_SIZE {(out / 'small_vela.tflite').stat().st_size}u" in header


def test_existing_output_is_replaced_only_on_success(small_onnx, tmp_path, capsys):
    out = tmp_path / "build"
    out.mkdir()
    (out / "old.txt").write_text("previous build")
    assert main([str(tmp_path / "missing.onnx"), "--output-dir", str(out)]) != 0
    assert (out / "old.txt").exists()                       # a failed run leaves the old output alone
    assert main([str(small_onnx), "--output-dir", str(out), "-q", "--force"]) == 0  # not tvmse's: --force
    assert not (out / "old.txt").exists() and (out / "report.md").exists()


def test_missing_file_subprocess(tmp_path):
    out = tmp_path / "out"
    r = _run_cli(tmp_path / "nope.onnx", "--output-dir", out)
    _assert_clean_failure(r.returncode, r.stderr, out, "model file not found", "nope.onnx")


OPSET = [helper.make_opsetid("", 21)]


def _bad_models(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage\xff" * 40)
    float_graph = helper.make_graph([helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq"),
                                     helper.make_node("Erf", ["xf"], ["y"], name="r")], "g",
                                    [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])],
                                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                                    [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                                     numpy_helper.from_array(np.array(0, np.int8), "z")])
    floaty = tmp_path / "float.onnx"
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [numpy_helper.from_array(np.ones((4, 2), np.float32), "W")])
    onnx.save(helper.make_model(graph, opset_imports=OPSET), floaty)
    unsupported = tmp_path / "unsupported.onnx"
    onnx.save(helper.make_model(float_graph, opset_imports=OPSET), unsupported)
    dynamic = tmp_path / "dynamic.onnx"
    dq = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], name="dq")]
    g = helper.make_graph(dq, "g", [helper.make_tensor_value_info("x", TensorProto.INT8, ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
                          [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                           numpy_helper.from_array(np.array(0, np.int8), "z")])
    onnx.save(helper.make_model(g, opset_imports=OPSET), dynamic)
    return {"not ONNX": (junk, ["is neither an ONNX nor a TFLite model"]),
            "float model": (floaty, ["float model", "--calibration CALIB.npz"]),
            "unsupported op": (unsupported, ["unsupported op Erf at node(s) r"]),
            "dynamic shape": (dynamic, ["input 'x': axis 0 is dynamic ('n')"])}


@pytest.mark.parametrize("case", ["not ONNX", "float model", "unsupported op", "dynamic shape"])
def test_bad_models(case, tmp_path, capsys):
    path, phrases = _bad_models(tmp_path)[case]
    out = tmp_path / "out"
    code = main([str(path), "--output-dir", str(out)])
    _assert_clean_failure(code, capsys.readouterr().err, out, *phrases)


def test_unknown_accelerator_lists_valid_ones(small_onnx, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(small_onnx), "--accelerator-config", "ethos-u55-100", "--output-dir", str(out)])
    _assert_clean_failure(code, capsys.readouterr().err, out, "unknown accelerator config 'ethos-u55-100'",
                          "ethos-u55-32", "ethos-u55-256", "ethos-u65-512")


@pytest.mark.parametrize("args, phrase", [
    (["--target", "ethos-u99"], "unknown target 'ethos-u99'; valid: ethos-u55, ethos-u65, ethos-u85"),
    (["--accelerator-config", "ethos-u65-256"], "does not belong to target 'ethos-u55'"),
    (["--system-config", "Ethos_U65_High_End"], "is not for ethos-u55-128"),
    (["--memory-mode", "Dedicated_Sram"], "memory mode 'Dedicated_Sram' is not valid for ethos-u55-128"),
])
def test_bad_options(small_onnx, tmp_path, capsys, args, phrase):
    out = tmp_path / "out"
    code = main([str(small_onnx), *args, "--output-dir", str(out)])
    _assert_clean_failure(code, capsys.readouterr().err, out, phrase)


def test_unwritable_output_dir(small_onnx, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "out"          # its parent is a regular file: cannot be created, even as root
    code = main([str(small_onnx), "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "cannot write output directory" in err and "--output-dir" in err
    assert blocker.read_text() == "not a folder"
