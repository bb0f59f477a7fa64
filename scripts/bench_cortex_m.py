"""Whole network on the Cortex-M55 (emulated): instructions per frame, per kernel, sizes, yardstick.

For each bundled model (examples/*.onnx, or --model): compile with tvmse (TVM → C, static glue),
build with clang 14 -O2, run --frames random frames with the state carried on QEMU mps3-an547,
check bit-exactness against the host reference, and print the figures. Then, for every distinct FC
shape, CMSIS-DSP's Helium ``arm_mat_vec_mult_q7`` is measured the same way and the ratio of
instructions per MAC (tvmse's FC kernel / CMSIS-DSP) is printed.

ADD and MUL run as the int32 kernels of ``elementwise_kernel``; ``--baseline`` also measures every
model with the legalized int64 ADD/MUL kernels in the same run and prints the ratio.

All figures are executed instructions counted by QEMU, **not cycles** (QEMU has no cycle model).
Note the two kernels do not compute the same thing: CMSIS-DSP's q7 kernel shifts by 7 and
saturates; tvmse's adds a per-channel bias and requantizes per channel (TFLite int8 semantics).

    .venv/bin/python scripts/bench_cortex_m.py [--model examples/tinylstm_int8.onnx] [--frames 50]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from tvmse import frontend
from tvmse.passes.pipeline import run_pipeline
from tvmse.progress import progress
from tvmse.passes.cost_model import CPU_OBJECTIVE
from tvmse.targets.cortex_m import cmsis_dsp, emulate, glue, lower
from tvmse.targets.cortex_m.compile_cpu import random_frames
from tvmse.targets.host import HostReference

REPO = Path(__file__).resolve().parents[1]


def bench_model(path: Path, frames: int, with_passes: bool,
                int32_elementwise: bool = True) -> tuple[emulate.EmulatedRun, lower.LoweredNetwork]:
    graph = frontend.load(path)
    if with_passes:
        graph, _ = run_pipeline(graph, objective=CPU_OBJECTIVE)   # as compile --target cortex-m55
    network = lower.lower(graph, int32_elementwise=int32_elementwise)
    generated = glue.generate(network)
    with tempfile.TemporaryDirectory(prefix="tvmse-bench-m55-") as tmp:
        src = Path(tmp) / "src"
        glue.write(generated, src)
        frame_shape = graph.tensors()[generated.interface.frame].shape
        run = emulate.run_on_qemu(network, generated, src, HostReference(graph),
                                  random_frames(frame_shape, frames), Path(tmp) / "work")
    return run, network


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", type=Path, help="model(s) (default: examples/*.onnx)")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--no-passes", action="store_true", help="compile the imported graph without tvmse's passes")
    p.add_argument("--baseline", action="store_true",
                   help="also run each model with the legalized int64 ADD/MUL kernels and print the ratio")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    models = args.model or sorted((REPO / "examples").glob("*.onnx"))
    print("Cortex-M55 (QEMU mps3-an547, -icount shift=0; clang 14 -O2). "
          "Figures are executed instructions, NOT cycles.\n")
    shapes: dict[tuple[int, int], list[float]] = {}
    for path in progress(models, desc="bench_cortex_m", quiet=args.quiet, unit="models"):
        run, network = bench_model(path, args.frames, not args.no_passes)
        s = run.sizes
        print(f"## {path.name}: bit-exact vs host reference over {run.frames} frames (state carried)")
        print(f"instructions/frame {run.instructions_per_frame:,.0f} (glue {run.glue_instructions_per_frame:,.0f}); "
              f"text {s.text:,} B, rodata {s.rodata:,} B, data {s.data:,} B, bss {s.bss:,} B "
              f"(arena {run.arena_bytes:,} B), state {run.state_bytes:,} B, stack high-water {run.stack_bytes:,} B")
        by_kind: dict[str, float] = {}
        for k in run.kernels:
            by_kind[k["kind"]] = by_kind.get(k["kind"], 0) + k["instructions_per_frame"]
        print("per op kind: " + ", ".join(f"{kind} {v:,.0f}" for kind, v in sorted(by_kind.items(), key=lambda kv: -kv[1])))
        if args.baseline:
            base, _ = bench_model(path, args.frames, not args.no_passes, int32_elementwise=False)
            base_kind: dict[str, float] = {}
            for k in base.kernels:
                base_kind[k["kind"]] = base_kind.get(k["kind"], 0) + k["instructions_per_frame"]
            ours = by_kind.get("mul", 0) + by_kind.get("add", 0)
            theirs = base_kind.get("mul", 0) + base_kind.get("add", 0)
            print(f"baseline (legalized int64 ADD/MUL, same run): instructions/frame {base.instructions_per_frame:,.0f}, "
                  f"mul+add {theirs:,.0f} → {ours:,.0f} ({theirs / max(ours, 1):.1f}× fewer); "
                  f"whole step {base.instructions_per_frame / run.instructions_per_frame:.2f}× fewer")
        print(f"| kernel | kind | instructions/frame | MACs | instr/MAC |")
        print("|---|---|---:|---:|---:|")
        for k, step in zip(run.kernels, network.steps):
            per_mac = f"{k['instructions_per_mac']:.3f}" if k["instructions_per_mac"] else ""
            print(f"| {k['op']} | {k['kind']} | {k['instructions_per_frame']:,.0f} | {k['macs'] or ''} | {per_mac} |")
            if step.kind == "fully_connected":
                n, kk = network.tensors[step.args[1]].shape
                shapes.setdefault((n, kk), []).append(k["instructions_per_mac"])
        print()
    print("## Yardstick: CMSIS-DSP arm_mat_vec_mult_q7 (Helium, clang -O2), same shapes, instructions per MAC")
    print("| rows x cols | tvmse FC | CMSIS-DSP | ratio |")
    print("|---|---:|---:|---:|")
    for (n, k), ours in sorted(shapes.items()):
        ref = cmsis_dsp.measure_cmsis_mat_vec_q7(n, k, compiler="clang")
        mine = min(ours)
        print(f"| {n} x {k} | {mine:.3f} | {ref.instructions_per_mac:.3f} | {mine / ref.instructions_per_mac:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
