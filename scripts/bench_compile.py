"""Compile the bundled model for every Ethos-U accelerator config and print one table.

For each config: wall time of the whole `tvmse.compile` pipeline (median of --repeats runs:
ONNX import, integer form, host reference build, TFLite check, Vela), and Vela's performance-model
figures per frame. Usage:

    .venv/bin/python scripts/bench_compile.py [--model examples/tinylstm_int8.onnx] [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tvmse.compile import compile_model
from tvmse.progress import progress
from tvmse.targets.ethosu.vela_driver import FAMILY_DEFAULTS, accelerators, family

REPO = Path(__file__).resolve().parents[1]


def bench(model: Path, accelerator: str, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = compile_model(model, family(accelerator), accelerator_config=accelerator,
                                   output_dir=Path(tmp) / "out")
            times.append(time.perf_counter() - start)
    npu = result.report["npu"]
    return {"accelerator": accelerator, "system_config": npu["system_config"], "memory_mode": npu["memory_mode"],
            "clock_mhz": npu["core_clock_hz"] / 1e6, "wall_s": statistics.median(times),
            "npu_cycles": npu["npu_cycles_per_frame"], "total_cycles": npu["total_cycles_per_frame"],
            "ms": npu["ms_per_frame"], "flash": npu["memory"]["flash_bytes"], "sram": npu["memory"]["sram_bytes"],
            "cpu_ops": len(npu["cpu_fallback_ops"])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=REPO / "examples" / "tinylstm_int8.onnx")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--accelerators", nargs="*", default=None, help="default: every config Vela knows")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    configs = args.accelerators or accelerators()
    print(f"# bench_compile: model {args.model.name}, median of {args.repeats} runs, "
          f"{platform.processor() or platform.machine()}, python {platform.python_version()}", flush=True)
    print("defaults per family: " + "; ".join(f"{f}: {s}, {m}" for f, (s, m) in FAMILY_DEFAULTS.items()))
    print("| accelerator | system config | memory mode | clock MHz | compile s (median) | NPU cycles/frame "
          "| total cycles/frame | ms/frame | flash B | SRAM B | CPU ops |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for accelerator in progress(configs, desc="bench_compile", quiet=args.quiet, unit="configs"):
        r = bench(args.model, accelerator, args.repeats)
        print(f"| {r['accelerator']} | {r['system_config']} | {r['memory_mode']} | {r['clock_mhz']:.0f} | "
              f"{r['wall_s']:.2f} | {r['npu_cycles']:,} | {r['total_cycles']:,} | {r['ms']:.3f} | "
              f"{r['flash']:,} | {r['sram']:,} | {r['cpu_ops']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
