"""The integer audio hop against the float-STFT pipeline, and its cost on the Cortex-M55.

For each bundled model, compiled for the Cortex-M55: the dev mixtures enhanced two ways with the same
compiled integer graph (host reference) — (a) float STFT, float features quantized, float mask applied,
float inverse STFT (what ``enhance --compiled`` ran before the device pipeline existed), (b) the integer
hop of the firmware's ``tvmse_process`` (``tvmse.integer_hop``) — and the SI-SDR of both; then, with
``--qemu``, the bundled noisy sample streamed through ``tvmse_process`` on QEMU (bit-exact check,
instructions per hop: pipeline and network).

    .venv/bin/python scripts/bench_hop.py [--models tinylstm_int8,tinylstm_block80] [--n 100] [--qemu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from tvmse import evaluate
    from tvmse.compile import compile_model
    from tvmse.enhance import CompiledHop
    from tvmse.integer_hop import float_pipeline
    from tvmse.metrics import si_sdr
    from tvmse.progress import progress
    from tvmse.targets.host import HostReference

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tinylstm_int8,tinylstm_block80", help="bundled models (examples/*.onnx)")
    p.add_argument("--n", type=int, default=100, help="dev mixtures (seed 0)")
    p.add_argument("--qemu", action="store_true", help="also stream the bundled noisy sample on QEMU")
    args = p.parse_args()
    mixtures = evaluate.mixture_set(evaluate.DEFAULT_DATA, "dev", args.n, 0)
    print(f"# integer hop vs float STFT: dev split, {args.n} mixtures, seed 0; SI-SDR in dB (mean over mixtures)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tvmse-bench-hop-") as work:
        for name in args.models.split(","):
            model = ROOT / "examples" / f"{name}.onnx"
            audio = ROOT / "examples" / "audio" / "noisy_sample.flac" if args.qemu else None
            result = compile_model(model, target="cortex-m55", output_dir=Path(work) / name, run="qemu" if args.qemu
                                   else None, frames=2, audio=audio)
            reference, hop = HostReference(result.graph), CompiledHop(result.output_dir)
            float_scores, int_scores, noisy_scores = [], [], []
            started = time.monotonic()
            for m in progress(list(mixtures), len(mixtures), desc=name, unit="mix"):
                noisy_scores.append(si_sdr(m.clean, m.noisy))
                float_scores.append(si_sdr(m.clean, float_pipeline(result.graph, reference, m.noisy)))
                int_scores.append(si_sdr(m.clean, hop.enhance(m.noisy)[0]))
            diffs = np.abs(np.array(int_scores) - np.array(float_scores))
            row = {"model": name, "noisy": statistics.fmean(noisy_scores), "float_stft": statistics.fmean(float_scores),
                   "integer_hop": statistics.fmean(int_scores), "mean_abs_diff": float(diffs.mean()),
                   "max_abs_diff": float(diffs.max()), "seconds": time.monotonic() - started}
            if args.qemu:
                row["qemu"] = result.report["audio"]["instructions_per_hop"]
            rows.append(row)
            print(json.dumps(row))
    print()
    print("| model | noisy | float STFT | integer hop | difference (mean / max over mixtures) |"
          + (" pipeline instr/hop | network instr/hop |" if args.qemu else ""))
    print("|---|---:|---:|---:|---:|" + ("---:|---:|" if args.qemu else ""))
    for r in rows:
        line = (f"| {r['model']} | {r['noisy']:+.2f} | {r['float_stft']:+.2f} | {r['integer_hop']:+.2f} | "
                f"{r['integer_hop'] - r['float_stft']:+.3f} / {r['max_abs_diff']:.3f} |")
        if args.qemu:
            line += f" {r['qemu']['pipeline']:,.0f} | {r['qemu']['network']:,.0f} |"
        print(line)


if __name__ == "__main__":
    main()
