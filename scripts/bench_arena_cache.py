"""Vela's arena cache on Ethos-U65/U85 (Dedicated_Sram): where does its size matter?

In Dedicated_Sram the arena lives in DRAM and Vela caches it in at most ``--arena-cache-size`` bytes of
SRAM (default: the system's whole SRAM). For each bundled model and NPU, the default tvmse compile with
the cache limited to each size: cycles per frame and the SRAM Vela actually uses.

    .venv/bin/python scripts/bench_arena_cache.py [--models tinylstm_int8,tinylstm_block80,tinylstm_unit50]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (None, 1 << 20, 1 << 17, 1 << 15, 1 << 13, 1 << 11)
TARGETS = (("ethos-u65", "ethos-u65-256", "Ethos_U65_High_End"),
           ("ethos-u85", "ethos-u85-256", "Ethos_U85_SYS_DRAM_High"))


def main() -> None:
    from tvmse.compile import compile_model
    from tvmse.progress import progress

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tinylstm_int8,tinylstm_block80,tinylstm_unit50")
    args = p.parse_args()
    runs = [(m, t, s) for m in args.models.split(",") for t in TARGETS for s in SIZES]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tvmse-arena-cache-") as work:
        for k, (model, (target, accelerator, system), size) in enumerate(progress(runs, len(runs), desc="compiles")):
            result = compile_model(ROOT / "examples" / f"{model}.onnx", target, accelerator, system, "Dedicated_Sram",
                                   Path(work) / str(k), verify_trials=1, arena_cache_size=size)
            npu = result.report["npu"]
            rows[(model, accelerator, size)] = (npu["total_cycles_per_frame"], npu["memory"]["sram_bytes"])
    print("# default tvmse compile, Dedicated_Sram; cycles/frame (SRAM used, B) per --arena-cache-size")
    print("| model | NPU | " + " | ".join("Vela default" if s is None else f"{s // 1024} KiB" for s in SIZES) + " |")
    print("|---|---|" + "---:|" * len(SIZES))
    for model in args.models.split(","):
        for _, accelerator, _ in TARGETS:
            cells = [f"{rows[(model, accelerator, s)][0]:,} ({rows[(model, accelerator, s)][1]:,})" for s in SIZES]
            print(f"| {model} | {accelerator} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
