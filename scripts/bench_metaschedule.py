"""MetaSchedule against tvmse's hand-scheduled FC kernel, per FC workload of the bundled models, on QEMU.

    python scripts/bench_metaschedule.py [--model examples/x.onnx ...] [--shapes N] [--workload NxK ...] \
        [--trials 64] [--db runs/metaschedule.jsonl] [--workers 2]

For each model, the FC workloads (weight shape and requantization form) of its default Cortex-M55 build
(what ``compile --target cortex-m55`` builds), most MACs first, ``--shapes`` of them per model (default
all), and any ``--workload`` (``NxK``, ``NxK/int64`` for the general requantization) given. Each workload
is searched as ``autotune --target cortex-m55 --metaschedule-trials N`` searches it
(``targets.cortex_m.metaschedule.search_shape``): N MetaSchedule candidates (TVM's C built with the
firmware's clang flags, one kernel call counted by QEMU, bit-exact against the host reference or
discarded) against the hand kernel at its best row count (1, 2, 4 or 8). Figures are executed
instructions per kernel call (QEMU ``-icount shift=0``: instructions, not cycles). With ``--db`` an
interrupted run resumes and a finished one reprints its table without running anything.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ("tinylstm_block80.onnx", "tinylstm_unit50.onnx")


def model_workloads(path: Path):
    """The FC workloads of the model's default Cortex-M55 build, most MACs first."""
    from tvmse.compile import load_model
    from tvmse.passes.cost_model import CPU_OBJECTIVE
    from tvmse.passes.pipeline import run_pipeline
    from tvmse.targets.cortex_m import lower, metaschedule
    graph, _ = run_pipeline(load_model(path).graph, objective=CPU_OBJECTIVE)
    return metaschedule.network_shapes(lower.lower(graph))


def main(argv=None) -> int:
    from tvmse import tuning
    from tvmse.targets.cortex_m import metaschedule
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", type=Path,
                   help=f"model(s) to take FC workloads from (default: {', '.join(DEFAULT_MODELS)} in examples/)")
    p.add_argument("--trials", type=int, default=64, help="MetaSchedule candidates per workload (default 64)")
    p.add_argument("--shapes", type=int, help="the first N workloads of each model by MACs (default all)")
    p.add_argument("--workload", action="append", default=[], metavar="NxK",
                   help="also this FC workload (repeatable), e.g. a small tile shape")
    p.add_argument("--db", type=Path, help="tuning database to record into and resume from")
    p.add_argument("--workers", type=int, default=2, help="parallel QEMU runs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    models = args.model or [REPO / "examples" / m for m in DEFAULT_MODELS]
    started = time.monotonic()
    records = metaschedule.KernelRecords(args.db, {"target": {"cpu": "cortex-m55"}, "tools": tuning.tool_versions()})
    owners: dict = {}
    for path in models:
        for shape in model_workloads(path)[:args.shapes]:
            owners.setdefault(shape, []).append(path.stem.replace("tinylstm_", ""))
    for key in args.workload:
        owners.setdefault(metaschedule.FcShape.parse(key), ["--workload"])
    print(f"MetaSchedule vs the hand FC kernel: {len(owners)} workloads of {len(models)} model(s), {args.trials} "
          f"trials each, seed {args.seed}, {args.workers} parallel QEMU runs (QEMU mps3-an547, clang -O2, "
          "-force-vector-width=16). Executed instructions per call, NOT cycles.\n", flush=True)
    results = [metaschedule.search_shape(shape, args.trials, records, args.seed, args.workers,
                                         progress=lambda line: print(line, flush=True)) for shape in owners]
    print("\n" + metaschedule.kernel_table(results, {r.shape: owners[r.shape] for r in results}))
    wins = [r for r in results if r.wins]
    print(f"\nMetaSchedule beats the hand kernel on {len(wins)} of {len(results)} workloads"
          + (": " + ", ".join(r.shape.key for r in wins) if wins else "")
          + f"; {sum(r.new_evaluations for r in results)} new evaluations, {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
