"""``python -m tvmse.autotune MODEL --target cortex-m55``: the fastest Cortex-M55 build, by QEMU's counts.

    python -m tvmse.autotune model.onnx --target cortex-m55 [--trials N | --time-budget S] \\
        [--metaschedule-trials N] [--db tuning.jsonl] --output tuning.json [--sram-budget BYTES]

What is searched (``tvmse.tuning.Decisions``; placement stays empty, the CPU has no NPU SRAM):

- **tiling per block-sparse FC**: the candidates of ``passes.tile_block_sparse`` ranked for the CPU
  (``cost_model.CPU_OBJECTIVE``: call overhead, per-row requantization and Helium MACs, slices of a
  gathered input; tile outputs are written in place, ``targets.cortex_m.lower``), starting from the
  default compile's (the cost model's best), with the layer left alone among them; then one-layer
  changes and the other fold decisions (on, off, aligned to the 16-row grid);
- **rows per FC kernel, per weight shape** (``fc_kernel.ROW_CHOICES``): the best structure is run once
  with every kernel at each row count; each shape takes the count its kernels ran fastest with (the
  per-kernel counts are exact, kernels do not interact), and the combination is run to confirm;
- **unit reordering** (``passes.reorder_units``) of each recurrent layer where it moves units, toggled
  once on the best structure;
- **MetaSchedule over the FC kernels** (``--metaschedule-trials N``, off by default): for each FC workload of
  the best build, N MetaSchedule candidates (``targets.cortex_m.metaschedule``: TVM's C built as the firmware
  builds it, QEMU's count of one kernel call, bit-exact or discarded) against the hand kernel at its best
  row count. A schedule replaces the hand kernel only for the workloads where it runs fewer instructions,
  and only if the whole network then runs fewer (one more network evaluation, on top of ``--trials``).
  Off by default: a candidate costs ~0.5–2 s of clang and QEMU here, and on the bundled shapes the hand kernel
  (its 4-row blocks requantized in Helium vectors) beats 64 trials' best by 12–63 % (BENCHMARKS.md).

The cost is QEMU's executed instructions per frame of the whole step (``targets.cortex_m.emulate``:
``FRAMES`` random frames, state carried, every output checked bit-exact against the host reference, so
every evaluated build is verified), evaluated in worker processes and stored in the ``--db`` JSONL
database (``tvmse.tuning_db``) under the model's hash, ``{"cpu": "cortex-m55"}`` and the tool versions;
a rerun resumes from it. QEMU counts instructions, not cycles. ``--sram-budget``, if given, bounds
arena + state. ``python -m tvmse.compile MODEL --target cortex-m55 --tuning tuning.json`` replays the
result.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tvmse import tuning
from tvmse.errors import TvmseError
from tvmse.ir import IntegerGraph
from tvmse.tuning import Decisions

CPU = "cortex-m55"
#: Random frames per evaluation (instruction counts hardly depend on the data; the check does).
FRAMES = 4
#: The tiling grid (16-row blocks, 16- and 32-column granules) the CPU candidates are cut on.
TILING_ACCELERATOR = "ethos-u55-128"
CPU_TILINGS = ("grouped/16", "grouped/32", "row-blocks/16")


@dataclass(frozen=True)
class CpuTarget:
    """What the evaluator's workers build for (in place of a Vela config)."""

    cpu: str = CPU
    frames: int = FRAMES

    def describe(self) -> str:
        return f"{self.cpu} (QEMU mps3-an547, executed instructions per frame)"


def evaluate(source: IntegerGraph, target: CpuTarget, decisions: Decisions) -> dict:
    """QEMU's figures for the build ``decisions`` describe ({"error": …} if it cannot be built)."""
    from tvmse.targets.cortex_m import emulate, glue, lower, metaschedule
    from tvmse.targets.cortex_m.compile_cpu import random_frames
    from tvmse.targets.cortex_m.errors import LoweringError
    from tvmse.targets.host import HostReference
    try:
        graph, _ = tuning.apply(source, decisions, TILING_ACCELERATOR)
        network = lower.lower(graph, fc_rows=decisions.fc_rows_by_shape())
        if decisions.fc_schedule:
            metaschedule.apply_schedules(network, decisions.fc_schedule_by_key())
        generated = glue.generate(network)
        tensors = graph.tensors()
        frames = {n: random_frames(tensors[n].shape, target.frames, seed=k)
                  for k, n in enumerate(generated.interface.inputs)}
        with tempfile.TemporaryDirectory(prefix="tvmse-tune-m55-") as work:
            work = Path(work)
            glue.write(generated, work / "src")
            run = emulate.run_on_qemu(network, generated, work / "src", HostReference(graph), frames, work / "run")
    except (TvmseError, LoweringError, ValueError, metaschedule.ScheduleError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    shapes: dict[str, float] = {}
    for step, kernel in zip(network.steps, run.kernels):
        if step.kind == "fully_connected":
            n, k = network.tensors[step.args[1]].shape
            shapes[f"{n}x{k}"] = shapes.get(f"{n}x{k}", 0.0) + kernel["instructions_per_frame"]
    instructions = int(round(run.instructions_per_frame))
    return {"cycles": instructions, "instructions": instructions, "arena_bytes": generated.plan.arena_bytes,
            "sram_bytes": generated.plan.arena_bytes + generated.state_bytes,
            "flash_bytes": run.sizes.text + run.sizes.rodata, "kernels": len(network.steps),
            "fc_shapes": {s: round(v, 1) for s, v in shapes.items()}}


def _ok(result: dict | None) -> bool:
    return result is not None and "error" not in result


# ---- the search ---------------------------------------------------------------------------------------
def tiling_options(source: IntegerGraph, fold: tuning.Fold) -> dict[str, list[str]]:
    """Block-sparse FC → tiling ids worth trying on the CPU: the layer left alone and the CPU-ranked
    candidates."""
    from tvmse.passes import tile_block_sparse
    from tvmse.passes.arch import arch_for
    from tvmse.passes.cost_model import CPU_OBJECTIVE
    arch = arch_for(TILING_ACCELERATOR)
    graph, _ = tuning.apply(source, Decisions.make(fold), TILING_ACCELERATOR)
    options = {}
    for op in tile_block_sparse.match(graph):
        if op.kind != "fully_connected" or tile_block_sparse.check(op, arch):
            continue
        options[op.name] = ["untouched@" + CPU_OBJECTIVE] + [tuning.tiling_id(t, CPU_OBJECTIVE) for t in CPU_TILINGS]
    return options


def _structures(default: Decisions, options: dict[tuning.Fold, dict[str, list[str]]]) -> list[Decisions]:
    """Whole-model tilings for the CPU (each candidate kind on every layer), most promising first."""
    found = []
    for name in CPU_TILINGS:
        for fold in options:
            found.append(Decisions.make(fold, {layer: next(i for i in ids if i.startswith(name + "@"))
                                               for layer, ids in options[fold].items()}))
    return [d for d in dict.fromkeys(found) if d != default]


def _mutations(best: Decisions, options: dict[tuning.Fold, dict[str, list[str]]],
               rng: random.Random) -> list[Decisions]:
    """One-decision changes of ``best``'s structure, its rows per shape kept: another tiling for one
    layer, or another fold (with the same tilings where the layers still match)."""
    tiling, rows = dict(best.tiling), dict(best.fc_rows)
    found = [Decisions.make(fold, {k: v for k, v in tiling.items() if k in options[fold]}, fc_rows=rows)
             for fold in options if fold != best.fold]
    for layer, ids in options[best.fold].items():
        for tid in ids:
            if tiling.get(layer) != tid:
                found.append(Decisions.make(best.fold, {**tiling, layer: tid}, fc_rows=rows))
    rng.shuffle(found)
    return found


def _rows_per_shape(ev, best: Decisions) -> None:
    """Every kernel at each row count (one run per count), then each shape at its best count."""
    from tvmse.targets.cortex_m import fc_kernel
    structure = best.with_fc_rows({})
    base = ev.run([structure])[0]
    if not _ok(base):
        return
    shapes = list(base["fc_shapes"])
    uniform = [r for r in fc_kernel.ROW_CHOICES if r != fc_kernel.ROWS]
    runs = ev.run([structure.with_fc_rows({s: r for s in shapes}) for r in uniform])
    per_shape = {s: (base["fc_shapes"][s], fc_kernel.ROWS) for s in shapes}
    for rows, result in zip(uniform, runs):
        if _ok(result):
            for s, count in result["fc_shapes"].items():
                per_shape[s] = min(per_shape[s], (count, rows))
    chosen = {s: rows for s, (_, rows) in per_shape.items() if rows != fc_kernel.ROWS}
    if chosen:
        ev.run([structure.with_fc_rows(chosen)])


def search(ev, default: Decisions, seed: int) -> None:
    from tvmse.autotune import OutOfTrials
    rng = random.Random(seed)
    try:
        base = ev.run([default])[0]
        if not _ok(base):
            raise TvmseError(f"the default Cortex-M55 build of the model fails: {base and base.get('error')}")
        ev.default_cycles = base["cycles"]
        if base["sram_bytes"] > ev.budget:
            raise TvmseError(f"the network needs {base['sram_bytes']:,} B of RAM (arena + state), more than "
                             f"--sram-budget {ev.budget:,} B; raise the budget")
        from tvmse.passes.arch import arch_for
        options = {fold: tiling_options(ev.source, fold)
                   for fold in tuning.fold_variants(ev.source, arch_for(TILING_ACCELERATOR).row_block)}
        ev.run(_structures(default, options))
        _rows_per_shape(ev, ev.best[2])
        tuned_rows_for = ev.best[2].with_fc_rows({})
        tried: set = set()
        while True:   # one-layer changes around the best, one batch per worker, until none improves
            moves = [m for m in _mutations(ev.best[2], options, rng) if m not in tried]
            if not moves:
                break
            batch = moves[:max(ev.workers, 2)]
            tried.update(batch)
            ev.run(batch)
        best = ev.best[2]   # then each recurrent layer's units reordered (or not) in the best structure
        ev.run([best.with_reorder(set(best.reorder) ^ {layer})
                for layer in tuning.reorder_options(ev.source, best.fold, TILING_ACCELERATOR)])
        if ev.best[2].with_fc_rows({}) != tuned_rows_for:   # the structure changed: its own rows
            _rows_per_shape(ev, ev.best[2])
    except OutOfTrials:
        pass


def tune_kernels(ev, identity: dict, db, trials: int, seed: int, progress) -> list:
    """MetaSchedule over each FC workload of the best build (``targets.cortex_m.metaschedule.search_shape``);
    the schedules that beat the hand kernel are tried in the whole network. Returns the per-workload results."""
    from tvmse.targets.cortex_m import lower, metaschedule
    best = ev.best[2]
    graph, _ = tuning.apply(ev.source, best, TILING_ACCELERATOR)
    shapes = metaschedule.network_shapes(lower.lower(graph, fc_rows=best.fc_rows_by_shape()))
    records = metaschedule.KernelRecords(db, {"target": identity["target"], "tools": identity["tools"]})
    progress(f"MetaSchedule: {len(shapes)} FC workload(s), {trials} trials each")
    results = [metaschedule.search_shape(shape, trials, records, seed, ev.workers, progress) for shape in shapes]
    winners = {r.shape.key: r.trace for r in results if r.wins}
    if winners:
        if ev.trials is not None:
            ev.trials += 1   # the network check of the schedules is on top of --trials
        ev.run([best.with_fc_schedule(winners)])
    progress("MetaSchedule against the hand kernel, instructions per call (bit-exact on QEMU):\n"
             + metaschedule.kernel_table(results))
    return results


def autotune_cpu(model, trials: int | None, time_budget: float | None, db, output, workers: int, seed: int,
                 progress, state: dict[str, str] | None, ram_budget: int | None = None,
                 metaschedule_trials: int = 0):
    """``tvmse.autotune.autotune`` for ``target="cortex-m55"``; returns its ``TuneResult``."""
    from tvmse.autotune import DEFAULT_TRIALS, Evaluator, TuneResult, open_database
    from tvmse.compile import load_model
    from tvmse.errors import ConfigError
    from tvmse.passes.cost_model import CPU_OBJECTIVE
    from tvmse.passes.pipeline import run_pipeline
    from tvmse.targets.cortex_m.compile_cpu import check_runner

    if trials is not None and trials <= 0 or time_budget is not None and time_budget <= 0:
        raise ConfigError("--trials and --time-budget must be positive")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    if metaschedule_trials < 0:
        raise ConfigError(f"--metaschedule-trials must be 0 (off) or positive, not {metaschedule_trials}")
    if ram_budget is not None and ram_budget <= 0:
        raise ConfigError(f"--sram-budget must be a positive number of bytes, not {ram_budget}")
    check_runner("qemu")
    if trials is None and time_budget is None:
        trials = DEFAULT_TRIALS
    started = time.monotonic()
    model = Path(model)
    target = CpuTarget()
    source = load_model(model, state).graph
    identity, database = open_database(model, target, db, progress)
    _, records = run_pipeline(source, objective=CPU_OBJECTIVE)   # what compile --target cortex-m55 builds
    default = tuning.default_decisions(records, CPU_OBJECTIVE)
    ev = Evaluator(source, target, database, workers, trials, time_budget, progress, started, unit="instructions")
    ev.budget = ram_budget if ram_budget is not None else 2**63
    kernels = []
    try:
        search(ev, default, seed)
        if metaschedule_trials:
            kernels = tune_kernels(ev, identity, db, metaschedule_trials, seed, progress)
    finally:
        ev.close()
    if ev.new == 0:
        progress(f"nothing new to evaluate: all {len(ev.considered)} candidates were in the database "
                 "(0 new evaluations)")
    default_result = database.get(default)
    instructions, ram, best = ev.best
    result = database.get(best)
    plan = tuning.TuningFile(identity["model_sha256"], identity["target"], identity["tools"], ram_budget or 0, best,
                             instructions, default_result["cycles"], ram,
                             extra={"model": model.name, "evaluations": len(ev.considered),
                                    "cost": "QEMU executed instructions per frame (not cycles)",
                                    "flash_bytes": result["flash_bytes"],
                                    **({"metaschedule": _kernel_summary(kernels)} if kernels else {})})
    if output is not None:
        plan.save(output)
    seconds = time.monotonic() - started
    table = _table(model, target, default_result, result, best, len(ev.considered), ev.new, seconds)
    progress(table)
    return TuneResult(plan, default_result["cycles"], instructions, ram, result["flash_bytes"], None,
                      len(ev.considered), ev.new + sum(k.new_evaluations for k in kernels), seconds, table,
                      kernels=kernels)


def _kernel_summary(kernels) -> list[dict]:
    """The MetaSchedule figures the tuning file keeps (per FC workload)."""
    return [{"workload": k.shape.key, "hand_instructions": k.hand_instructions, "hand_rows": k.hand_rows,
             "metaschedule_instructions": k.schedule_instructions, "trials": k.trials, "used": k.wins}
            for k in kernels]


def _table(model: Path, target: CpuTarget, default: dict, tuned: dict, best: Decisions, evaluations: int,
           new: int, seconds: float) -> str:
    from tvmse.autotune import comparison_table
    return comparison_table(f"{model.name} → {target.describe()}: {evaluations} candidates ({new} new evaluations) "
                            f"in {seconds:.0f} s, every one bit-exact on QEMU", default, tuned,
                            [("instructions/frame", "instructions"), ("RAM (arena+state) B", "sram_bytes"),
                             ("flash (code+data) B", "flash_bytes")], best)


def load_for_replay(path: str | os.PathLike, model_path: str | os.PathLike) -> Decisions:
    """The decisions of a cortex-m55 tuning file, checked against the model and tools (``compile --tuning``)."""
    plan = tuning.load(path)
    tuning.check_matches(plan, path, model_path, CpuTarget())
    if plan.decisions.placement:
        raise tuning.TuningError(f"tuning file {path} places weights in NPU SRAM; the Cortex-M55 build has none")
    return plan
