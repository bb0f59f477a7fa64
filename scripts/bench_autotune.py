"""Autotune the bundled models under several SRAM budgets and print one table.

For each model and budget: the default compile's cycles (every weight in flash), the tuned build's
cycles, their ratio, the SRAM the tuned build uses (arena + boundary buffer + placed weights), the
tuning wall time and the candidates evaluated; "greedy placement" is the search's first result, the
greedy per-layer placement over the default compile's decisions (what ``compile --sram-budget`` builds).
Every figure is Vela 5.2's performance-model estimate
per frame for the accelerator, system config and memory mode printed above the table. Each tune
starts from an empty database (so wall times and evaluation counts are independent of each other).
Usage:

    .venv/bin/python scripts/bench_autotune.py [--trials 30] [--budgets-kib 64 128 256 512] \\
        [--models dense block80 unit50] [--workers 2] [--out runs/bench_autotune.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from tvmse.autotune import autotune

REPO = Path(__file__).resolve().parents[1]
MODELS = {"dense": "tinylstm_int8.onnx", "block80": "tinylstm_block80.onnx", "unit50": "tinylstm_unit50.onnx"}


def bench(model: str, budget: int, trials: int, workers: int, accelerator: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = autotune(REPO / "examples" / MODELS[model], "ethos-u55", budget, accelerator_config=accelerator,
                          memory_mode="Shared_Sram", trials=trials, db=Path(tmp) / "db.jsonl",
                          output=Path(tmp) / "tuning.json", workers=workers, verify_trials=0,
                          progress=lambda line: None)
        wall = time.perf_counter() - start
    return {"model": model, "budget_kib": budget // 1024, "default_cycles": result.default_cycles,
            "greedy_cycles": result.greedy_cycles, "tuned_cycles": result.tuned_cycles,
            "ratio": result.tuned_cycles / result.default_cycles,
            "sram_bytes": result.sram_bytes, "wall_s": wall, "evaluations": result.evaluations,
            "decisions": result.tuning.decisions.describe()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--budgets-kib", nargs="*", type=int, default=[64, 128, 256, 512])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--accelerator-config", default="ethos-u55-128")
    p.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"# {args.accelerator_config}, Ethos_U55_High_End_Embedded, Shared_Sram (layers in SRAM: Sram_Only "
          f"segments); Vela 5.2 estimates; --trials {args.trials}, --workers {args.workers}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs", flush=True)
    rows = []
    header = ("| model | SRAM budget | default cycles | greedy placement cycles | tuned cycles | tuned/default | "
              "SRAM used B | tuning s | evaluations | tuned decisions |")
    print(header + "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", flush=True)
    for model in args.models:
        for kib in args.budgets_kib:
            row = bench(model, kib * 1024, args.trials, args.workers, args.accelerator_config)
            rows.append(row)
            print(f"| {model} | {kib} KiB | {row['default_cycles']:,} | {row['greedy_cycles'] or 0:,} | "
                  f"{row['tuned_cycles']:,} | {row['ratio']:.3f} | "
                  f"{row['sram_bytes']:,} | {row['wall_s']:.0f} | {row['evaluations']} | {row['decisions']} |",
                  flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    slower = [r for r in rows if r["tuned_cycles"] > r["default_cycles"]]
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
