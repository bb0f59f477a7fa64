"""tvmse's Cortex-M55 FC kernel against CMSIS-DSP, per FC shape of the bundled models, on QEMU.

    python scripts/bench_cpu_kernels.py [--model examples/x.onnx ...] [--json out.json]

For every bundled model (examples/*.onnx, or --model) the FC weight shapes it compiles to: after the
default passes for the Cortex-M55 (tiling ranked by the CPU's cost, what ``compile --target cortex-m55``
builds) and for Ethos-U (ranked by Vela's), and with every block-sparse FC tiled
``grouped/16@cortex-m55`` (what ``autotune --target cortex-m55`` picks on block80). Each distinct shape
is then measured

- as tvmse's kernel (``targets/cortex_m/fc_kernel.py``, clang -O2, MVE width 16): one generated
  network holds one FC per shape, run under QEMU once per row count of ``fc_kernel.ROW_CHOICES`` and
  checked bit-exact against the host reference; "default" is ``fc_kernel.ROWS`` rows per input pass,
  "tuned" the best row count for the shape (what the tuner picks per shape);
- as CMSIS-DSP 1.10.3 ``arm_mat_vec_mult_q7``, Helium path, clang -O2 (``cmsis_dsp``), checked
  against numpy.

Both count the kernel function's own executed instructions per call (QEMU, ``-icount shift=0``:
instructions, not cycles). tvmse's kernel also folds the input zero point, adds the bias and
requantizes per output channel, and unpacks TVM's packed-call arguments; CMSIS-DSP's q7 kernel
shifts by 7 and saturates.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def model_shapes(path: Path) -> set[tuple[int, int]]:
    """FC weight shapes of the default compiles (CPU- and NPU-ranked tiling) and of ``grouped/16`` tiling."""
    from tvmse import autotune_cpu, tuning
    from tvmse.compile import load_model
    from tvmse.passes.cost_model import CPU_OBJECTIVE
    from tvmse.passes.pipeline import run_pipeline
    source = load_model(path).graph
    graphs = [run_pipeline(source, objective=CPU_OBJECTIVE)[0], run_pipeline(source)[0]]
    options = autotune_cpu.tiling_options(source, True)
    if options:
        cpu = tuning.Decisions.make(True, {layer: tuning.tiling_id("grouped/16", "cortex-m55") for layer in options})
        graphs.append(tuning.apply(source, cpu, autotune_cpu.TILING_ACCELERATOR)[0])
    from tvmse.targets.cortex_m import lower
    shapes = set()
    for graph in graphs:
        network = lower.lower(graph)
        shapes |= {tuple(network.tensors[s.args[1]].shape) for s in network.steps if s.kind == "fully_connected"}
    return shapes


def shapes_graph(shapes: list[tuple[int, int]]):
    """One network: input x [1, K_max], one FC per shape over the first K inputs, every FC an output."""
    from tvmse.ir import IntegerGraph, TensorInfo, build
    rng = np.random.default_rng(0)
    k_max = max(k for _, k in shapes)
    x = TensorInfo("x", (1, k_max), 0.02, -3)
    ops, outputs = [], []
    for n, k in shapes:
        source = x
        if k < k_max:
            ops.append(build.slice_(f"x_{k}_{n}", x, 0, k, axis=1))
            source = ops[-1].output
        ops.append(build.fully_connected(f"fc_{n}x{k}", source, rng.integers(-127, 128, (n, k)),
                                         rng.integers(-3000, 3000, n), rng.uniform(0.001, 0.01, n), 0.05, 3))
        outputs.append(ops[-1].output.name)
    return IntegerGraph([x], outputs, ops)


def tvmse_per_call(graph, rows: int) -> dict[tuple[int, int], float]:
    """Instructions per call of each shape's FC kernel with ``rows`` rows per input pass (QEMU, bit-exact)."""
    from tvmse.targets.cortex_m import emulate, glue, lower
    from tvmse.targets.cortex_m.compile_cpu import random_frames
    from tvmse.targets.host import HostReference
    shapes = [tuple(op.consts["weight"].shape) for op in graph.ops if op.kind == "fully_connected"]
    network = lower.lower(graph, fc_rows={s: rows for s in shapes})
    generated = glue.generate(network)
    with tempfile.TemporaryDirectory(prefix="tvmse-bench-fc-") as work:
        work = Path(work)
        glue.write(generated, work / "src")
        run = emulate.run_on_qemu(network, generated, work / "src", HostReference(graph),
                                  {"x": random_frames(graph.inputs[0].shape, 2)}, work / "run")
    return {tuple(network.tensors[s.args[1]].shape): k["instructions_per_frame"]
            for s, k in zip(network.steps, run.kernels) if s.kind == "fully_connected"}


def main(argv=None) -> int:
    import logging

    from tvmse.targets.cortex_m import cmsis_dsp, fc_kernel
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", type=Path, help="model(s) to take FC shapes from (default: examples/)")
    p.add_argument("--json", type=Path, help="also write every figure here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    models = args.model or sorted((REPO / "examples").glob("*.onnx"))
    owners: dict[tuple[int, int], list[str]] = {}
    for path in models:
        for shape in model_shapes(path):
            owners.setdefault(shape, []).append(path.stem.replace("tinylstm_", ""))
    shapes = sorted(owners, key=lambda s: (-s[0] * s[1], s))
    print(f"Cortex-M55 FC kernels, {len(shapes)} shapes of {len(models)} models (QEMU mps3-an547, -icount shift=0, "
          "clang 14 -O2). Executed instructions per call / MACs, NOT cycles.\n")
    graph = shapes_graph(shapes)
    per_rows = {rows: tvmse_per_call(graph, rows) for rows in fc_kernel.ROW_CHOICES}
    print(f"| FC shape (rows × cols) | models | tvmse {fc_kernel.ROWS} rows | tvmse tuned (rows) | CMSIS-DSP | "
          "ratio default | ratio tuned |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows_out = []
    for n, k in shapes:
        macs = n * k
        default = per_rows[fc_kernel.ROWS][(n, k)] / macs
        best_rows = min(fc_kernel.ROW_CHOICES, key=lambda r: (per_rows[r][(n, k)], r != fc_kernel.ROWS))
        tuned = per_rows[best_rows][(n, k)] / macs
        ref = cmsis_dsp.measure_cmsis_mat_vec_q7(n, k, compiler="clang").instructions_per_mac
        rows_out.append({"shape": [n, k], "models": owners[(n, k)], "tvmse_default": default, "tvmse_tuned": tuned,
                         "tuned_rows": best_rows, "cmsis_dsp": ref,
                         "per_call": {str(r): per_rows[r][(n, k)] for r in fc_kernel.ROW_CHOICES}})
        print(f"| {n} × {k} | {', '.join(owners[(n, k)])} | {default:.3f} | {tuned:.3f} ({best_rows}) | {ref:.3f} | "
              f"{default / ref:.2f} | {tuned / ref:.2f} |", flush=True)
    ratios = [r["tvmse_tuned"] / r["cmsis_dsp"] for r in rows_out]
    over = [r for r, q in zip(rows_out, ratios) if q > 1.2]
    print(f"\ntuned/CMSIS-DSP: {min(ratios):.2f}–{max(ratios):.2f}; {len(over)} of {len(rows_out)} shapes over 1.2×"
          + (": " + ", ".join(f"{r['shape'][0]}×{r['shape'][1]}" for r in over) if over else ""))
    if args.json:
        args.json.write_text(json.dumps(rows_out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
