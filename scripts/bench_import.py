"""Compile every imported-model fixture (tests/fixtures/imported) and print the "imported models" table.

Per fixture: source format and op types, tvmse's cycles per frame against Vela alone on the source
file (TFLite sources; an ONNX file has no Vela-alone baseline) in both memory modes, ops left on the
CPU, and for float sources the int8-vs-float error of tvmse.quantize over the calibration rollout.
ethos-u55-128, Ethos_U55_High_End_Embedded, 500 MHz, Vela's performance model. Usage:

    .venv/bin/python scripts/bench_import.py [--fixtures tests/fixtures/imported] [--only NAME ...]

A fixture tvmse refuses is listed with the first line of its error.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path

import onnx

from tvmse.compile import compile_model, resolve_vela_config
from tvmse.errors import TvmseError
from tvmse.targets.ethosu.vela_driver import compile_tflite

REPO = Path(__file__).resolve().parents[1]
MODES = ("Shared_Sram", "Sram_Only")


def source_ops(path: Path) -> str:
    if path.suffix == ".tflite":
        from tvmse.frontend.tflite_import import TfliteImport
        kinds = Counter(op.kind for op in TfliteImport(path).operators())
    else:
        kinds = Counter(n.op_type for n in onnx.load(str(path)).graph.node
                        if n.op_type not in ("Constant", "QuantizeLinear", "DequantizeLinear"))
    return ", ".join(f"{k}×{n}" if n > 1 else k for k, n in sorted(kinds.items()))


def bench(path: Path, manifest: dict) -> dict:
    row = {"name": path.name, "format": "TFLite" if path.suffix == ".tflite" else
           ("ONNX QDQ" if path.stem.endswith("_qdq") else "ONNX float"), "ops": source_ops(path)}
    calibration = manifest.get("calibration")
    calibration = path.parent / calibration if calibration and row["format"] != "TFLite" else None
    for mode in MODES:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                result = compile_model(path, memory_mode=mode, output_dir=Path(tmp) / "out", calibration=calibration)
            except TvmseError as e:
                lines = [line.strip() for line in str(e).splitlines() if line.strip()]
                row["error"] = (lines[1] if len(lines) > 1 else lines[0])[:160]   # the first problem, not the header
                return row
        npu = result.report["npu"]
        row[mode] = npu["total_cycles_per_frame"]
        row["cpu_ops"] = len(npu["cpu_fallback_ops"])
        quantization = result.report["import"].get("quantization")
        if quantization:
            row["error_rms"] = max(e["rel_rms"] for e in quantization["int8_vs_float"].values())
        if row["format"] == "TFLite":
            config = resolve_vela_config("ethos-u55", None, None, mode)
            row[f"vela_{mode}"] = compile_tflite(path.read_bytes(), config, name="alone").total_cycles
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fixtures", type=Path, default=REPO / "tests" / "fixtures" / "imported")
    p.add_argument("--only", nargs="*", default=None, help="fixture file names (default: all)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    manifest = json.loads((args.fixtures / "manifest.json").read_text())
    names = args.only or sorted(manifest)
    print(f"# bench_import: ethos-u55-128, Ethos_U55_High_End_Embedded, 500 MHz, Vela performance model; "
          f"{platform.machine()}, python {platform.python_version()}", flush=True)
    print("| fixture | source | ops in the source | tvmse Shared_Sram | Vela alone Shared_Sram | tvmse Sram_Only "
          "| Vela alone Sram_Only | CPU ops | int8 vs float (max rel. RMS) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        r = bench(args.fixtures / name, manifest[name])
        if "error" in r:
            print(f"| {r['name']} | {r['format']} | {r['ops']} | refused: {r['error']} | | | | | |", flush=True)
            continue
        fmt = lambda key: f"{r[key]:,}" if key in r else "—"
        print(f"| {r['name']} | {r['format']} | {r['ops']} | {fmt('Shared_Sram')} | {fmt('vela_Shared_Sram')} | "
              f"{fmt('Sram_Only')} | {fmt('vela_Sram_Only')} | {r['cpu_ops']} | "
              f"{r['error_rms']:.2%} |" if "error_rms" in r else
              f"| {r['name']} | {r['format']} | {r['ops']} | {fmt('Shared_Sram')} | {fmt('vela_Shared_Sram')} | "
              f"{fmt('Sram_Only')} | {fmt('vela_Sram_Only')} | {r['cpu_ops']} | — |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
