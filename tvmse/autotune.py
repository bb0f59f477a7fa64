"""``python -m tvmse.autotune``: search weight placement and pass decisions for the fastest NPU build.

    python -m tvmse.autotune model.onnx --target ethos-u55 --sram-budget 262144 \\
        [--trials N | --time-budget S] [--db tuning.jsonl] --output tuning.json

What is searched (``tvmse.tuning.Decisions``), in order of payoff:

- **weight placement per layer** (flash or SRAM) within ``--sram-budget`` (Vela's arena, the
  boundary buffer between segments and the placed weights all count): for each pass structure, the
  greedy fit of ``targets.ethosu.placement`` over measured per-layer gains;
- **pass decisions**: the unit fold on, off, or aligned (dead units kept back so each folded state
  stays a multiple of the NPU's 16-row output grid), unit reordering per recurrent layer where
  ``passes.reorder_units`` would move units (ragged blocks last, gathered back at the state boundary),
  and a tiling candidate per FC. Tilings come from
  ``passes.tile_block_sparse.candidates`` for either memory mode (a layer in SRAM is compute-bound
  and wants finer tiles than one streaming from flash); ``passes.cost_model`` is the cheap filter
  (only the two best of each mode, and only those it calls cheaper than the untouched layer).

Every candidate is costed by Vela's estimate of the whole segmented build (``build_segmented``),
in worker processes (``--workers``, default 2). The search starts from the default compile's own
decisions, so the result is never slower than the default compile, then tries the other pass
structures and finally one-layer changes of the best so far. Each evaluation is appended to the
``--db`` JSONL file (``tvmse.tuning_db``); a rerun finds its evaluations there and makes only new
ones (none, and says so, when nothing is new). At the end the best build is verified bit-exact
(TFLite interpreter, segments chained, against the host reference) and written as a tuning file
for ``python -m tvmse.compile MODEL --tuning tuning.json``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tvmse import tuning
from tvmse.errors import ConfigError, TvmseError, cli_entry
from tvmse.ir import IntegerGraph
from tvmse.tuning import Decisions
from tvmse.tuning_db import TuningDatabase

logger = logging.getLogger("tvmse.autotune")

DEFAULT_TRIALS = 40
DEFAULT_WORKERS = 2
TILINGS_PER_MODE = 2        # cost-model filter: the best candidates kept per FC and memory mode


# ---- evaluation (in worker processes) ---------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(source: IntegerGraph, config) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    _WORKER.update(source=source, config=config)


def evaluate(source: IntegerGraph, config, decisions: Decisions) -> dict:
    """Vela's figures for the build ``decisions`` describe ({"error": …} if it cannot be built); for a
    ``autotune_cpu.CpuTarget``, QEMU's (``autotune_cpu.evaluate``)."""
    from tvmse.targets.ethosu import build_segmented
    if getattr(config, "cpu", None):
        from tvmse import autotune_cpu
        return autotune_cpu.evaluate(source, config, decisions)
    try:
        graph, _ = tuning.apply(source, decisions, config.accelerator)
        built = build_segmented(graph, config, decisions.placement)
    except (TvmseError, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    return {"cycles": built.total_cycles, "npu_cycles": built.npu_cycles, "sram_bytes": built.sram_bytes,
            "arena_bytes": built.arena_bytes, "boundary_bytes": built.boundary_bytes,
            "sram_weight_bytes": built.sram_weight_bytes, "flash_bytes": built.flash_bytes,
            "segments": [s.vela.total_cycles for s in built.segments]}


def _evaluate_in_worker(decisions_json: dict) -> tuple[dict, float]:
    start = time.monotonic()
    result = evaluate(_WORKER["source"], _WORKER["config"], Decisions.from_json(decisions_json, "candidate"))
    return result, time.monotonic() - start


class OutOfTrials(Exception):
    """The trial or time budget is spent."""


@dataclass
class Evaluator:
    """Looks candidates up in the database, evaluates the rest in parallel, enforces the budgets."""

    source: IntegerGraph
    config: object
    db: TuningDatabase
    workers: int
    trials: int | None
    time_budget: float | None
    progress: object = print
    started: float = field(default_factory=time.monotonic)
    considered: set = field(default_factory=set)
    new: int = 0
    new_seconds: float = 0.0
    best: tuple | None = None          # (cycles, sram, decisions) of the best candidate within budget
    default_cycles: int | None = None
    greedy_cycles: int | None = None   # the best after the greedy placement of the default structure
    budget: int = 0
    pool: ProcessPoolExecutor | None = None
    unit: str = "cycles"   # what a result's "cycles" counts (QEMU's instructions for the Cortex-M55)

    def _pool(self) -> ProcessPoolExecutor:
        """Started on the first new evaluation: a fully resumed tune starts no worker."""
        if self.pool is None:
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(self.source, self.config))
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def _remaining(self) -> int | None:
        return None if self.trials is None else self.trials - len(self.considered)

    def _out_of_time(self) -> bool:
        return self.time_budget is not None and time.monotonic() - self.started >= self.time_budget

    def run(self, batch: list[Decisions]) -> list[dict | None]:
        """Results of ``batch`` in order; None for those the budgets left out. Raises OutOfTrials when no
        candidate of the batch could be run."""
        fresh = [d for d in dict.fromkeys(batch) if d.key() not in self.considered]
        remaining = self._remaining()
        if self.considered and fresh and ((remaining is not None and remaining <= 0) or self._out_of_time()):
            raise OutOfTrials()  # (the first candidate, the default build, always runs)
        allowed = fresh if remaining is None else fresh[:remaining]
        todo = [d for d in allowed if self.db.get(d) is None]
        self.considered.update(d.key() for d in allowed)
        if todo:
            if self.workers > 1 and len(todo) > 1 or self.pool is not None:
                outcomes = list(self._pool().map(_evaluate_in_worker, [d.to_json() for d in todo]))
            else:
                outcomes = [_evaluate_in_worker_local(self.source, self.config, d) for d in todo]
            for d, (result, seconds) in zip(todo, outcomes):
                self.db.add(d, result, seconds)
                self.new += 1
                self.new_seconds += seconds
        results = [self.db.get(d) if d.key() in self.considered else None for d in batch]
        for d, r in zip(batch, results):
            self._note(d, r)
        if allowed:
            self._report()
        if not allowed and fresh:
            raise OutOfTrials()
        return results

    def _note(self, d: Decisions, r: dict | None) -> None:
        if r is None or "error" in r or r["sram_bytes"] > self.budget:
            return
        if self.best is None or (r["cycles"], r["sram_bytes"]) < (self.best[0], self.best[1]):
            self.best = (r["cycles"], r["sram_bytes"], d)

    def _report(self) -> None:
        elapsed = time.monotonic() - self.started
        best = f"best {self.best[0]:,} {self.unit}" if self.best else "no candidate within the budget yet"
        if self.best and self.default_cycles:
            best += f" ({self.best[0] / self.default_cycles:.3f}× default)"
        eta = ""
        remaining = self._remaining()
        if self.new:
            per = self.new_seconds / self.new / max(1, self.workers)
            left = [x for x in (remaining * per if remaining is not None else None,
                                self.time_budget - elapsed if self.time_budget else None) if x is not None]
            eta = f", ETA ≤ {max(0.0, min(left)):.0f} s" if left else ""
        total = f"/{self.trials}" if self.trials is not None else ""
        self.progress(f"[{len(self.considered)}{total} evaluated, {self.new} new, {elapsed:.0f} s] {best}{eta}")


def _evaluate_in_worker_local(source, config, d: Decisions) -> tuple[dict, float]:
    start = time.monotonic()
    return evaluate(source, config, d), time.monotonic() - start


# ---- the search ---------------------------------------------------------------------------------------
def tiling_options(source: IntegerGraph, fold: tuning.Fold, config) -> dict[str, list[str]]:
    """FC layer → tiling ids worth trying (cost-model filter): per memory mode, the best candidates
    the cost model calls cheaper than the untouched layer."""
    from tvmse.passes import tile_block_sparse
    from tvmse.passes.arch import arch_for
    from tvmse.targets.ethosu.segments import SRAM_MODE

    arch = arch_for(config.accelerator)
    graph, _ = tuning.apply(source, Decisions.make(fold), config.accelerator)
    options: dict[str, list[str]] = {}
    for op in tile_block_sparse.match(graph):
        if tile_block_sparse.check(op, arch):
            continue
        weight, ids = op.consts["weight"], []
        for mode in dict.fromkeys([config.memory_mode, SRAM_MODE]):
            ranked = sorted(tile_block_sparse.candidates(arch, mode, weight),
                            key=lambda t: tile_block_sparse.tiling_cycles(arch, mode, weight, t))
            untouched = tile_block_sparse.tiling_cycles(arch, mode, weight, tile_block_sparse.untouched(weight))
            kept = [t for t in ranked if t.name != "untouched"
                    and tile_block_sparse.tiling_cycles(arch, mode, weight, t) < untouched]
            ids += [tuning.tiling_id(t.name, mode) for t in kept[:TILINGS_PER_MODE]]
        options[op.name] = ids
    return options


def _layers(source: IntegerGraph, structure: Decisions, accelerator: str) -> list[str]:
    from tvmse.targets.ethosu.segments import weighted_layers
    graph, _ = tuning.apply(source, structure, accelerator)
    return weighted_layers(graph)


def greedy_for(ev: Evaluator, structure: Decisions, accelerator: str) -> None:
    """The greedy placement of ``targets.ethosu.placement`` for one pass structure, on evaluations."""
    layers = _layers(ev.source, structure, accelerator)
    singles = [structure.with_placement([layer]) for layer in layers]
    results = ev.run([structure.with_placement(())] + singles)
    base = results[0]
    if base is None or "error" in base:
        return
    gains, overhead = [], base["sram_bytes"]
    for layer, r in zip(layers, results[1:]):
        if r is None or "error" in r:
            continue
        gains.append((layer, base["cycles"] - r["cycles"], r["sram_weight_bytes"]))
        overhead = max(overhead, r["sram_bytes"] - r["sram_weight_bytes"])
    gains.sort(key=lambda g: (-g[1] / max(g[2], 1), g[0]))
    chosen, used = [], overhead
    for layer, gain, size in gains:
        if gain > 0 and used + size <= ev.budget:
            chosen.append(layer)
            used += size
    while chosen:  # over the budget (more boundaries than the one-layer builds had): drop the least gain per byte
        r = ev.run([structure.with_placement(chosen)])[0]
        if r is None or ("error" not in r and r["sram_bytes"] <= ev.budget):
            return
        chosen = chosen[:-1]


def _structures(source, config, default: Decisions, options_by_fold, reorders=None) -> list[Decisions]:
    """Pass structures (placement left empty) to try after the default, most promising first; ``reorders``:
    fold → the layers whose units may be reordered (each structure is tried again with all of them, after
    the others: the cost model expects less of it)."""
    from tvmse.targets.ethosu.segments import SRAM_MODE
    found = []
    for fold, options in options_by_fold.items():
        for mode in (SRAM_MODE, config.memory_mode):
            tiling = {layer: next((i for i in ids if i.endswith("@" + mode)), None) for layer, ids in options.items()}
            found.append(Decisions.make(fold, {k: v for k, v in tiling.items() if v}))
        found.append(Decisions.make(fold, {}))
        found.append(Decisions.make(fold, dict(default.tiling)))
    found += [d.with_reorder((reorders or {}).get(d.fold, ())) for d in found if (reorders or {}).get(d.fold)]
    return [d for d in dict.fromkeys(found) if d != default]


def _mutations(best: Decisions, options: dict[str, list[str]], folds: list[tuning.Fold],
               rng: random.Random, reorders: dict | None = None) -> list[Decisions]:
    """One-decision changes of ``best``'s pass structure: another tiling option for one layer, another
    fold, or one layer's units reordered or not (``reorders``: fold → layers; tried last, the cost model
    expects least of them); in a seeded order."""
    tiling = dict(best.tiling)
    reorders = reorders or {}
    found = [Decisions.make(fold, tiling, reorder=set(best.reorder) & set(reorders.get(fold, ())))
             for fold in folds if fold != best.fold]
    for layer, ids in options.items():
        for tid in [None, *ids]:
            if tiling.get(layer) == tid:
                continue
            changed = {k: v for k, v in tiling.items() if k != layer}
            if tid is not None:
                changed[layer] = tid
            found.append(Decisions.make(best.fold, changed, reorder=best.reorder))
    rng.shuffle(found)
    return found + [best.with_reorder(set(best.reorder) ^ {layer}) for layer in reorders.get(best.fold, ())]


def _placement_matched(best: Decisions, options: dict[str, list[str]]) -> Decisions:
    """``best``'s structure with each layer tiled for where it lives: SRAM-placed layers get the cost
    model's best Sram_Only tiling."""
    from tvmse.targets.ethosu.segments import SRAM_MODE
    tiling = dict(best.tiling)
    for layer in best.placement:
        sram = [i for i in options.get(layer, []) if i.endswith("@" + SRAM_MODE)]
        if sram:
            tiling[layer] = sram[0]
    return Decisions.make(best.fold, tiling, reorder=best.reorder)


@dataclass
class TuneResult:
    tuning: tuning.TuningFile
    default_cycles: int
    tuned_cycles: int
    sram_bytes: int
    flash_bytes: int
    greedy_cycles: int | None  # the greedy placement alone (what compile --sram-budget builds); None if not reached
    evaluations: int          # candidates evaluated (from the database or new)
    new_evaluations: int
    seconds: float
    table: str
    kernels: list = field(default_factory=list)   # cortex-m55 with MetaSchedule: per FC workload


def autotune(model: str | os.PathLike, target: str = "ethos-u55", sram_budget: int = 0,
             accelerator_config: str | None = None, system_config: str | None = None, memory_mode: str | None = None,
             trials: int | None = None, time_budget: float | None = None, db: str | os.PathLike | None = None,
             output: str | os.PathLike | None = None, workers: int = DEFAULT_WORKERS, seed: int = 0,
             verify_trials: int = 8, progress=print, state: dict[str, str] | None = None,
             metaschedule_trials: int = 0) -> TuneResult:
    """Tune ``model`` for ``target`` within ``sram_budget`` bytes; see the module docstring. ``state``
    pairs state inputs with their outputs as ``compile --state`` does."""
    from tvmse.compile import CORTEX_M_TARGET, load_model, resolve_vela_config
    from tvmse.passes.pipeline import run_pipeline

    if target == CORTEX_M_TARGET:
        from tvmse import autotune_cpu
        npu_only = [o for o, v in (("--accelerator-config", accelerator_config), ("--system-config", system_config),
                                   ("--memory-mode", memory_mode)) if v is not None]
        if npu_only:
            raise ConfigError(f"{', '.join(npu_only)} does not apply to --target cortex-m55 (no NPU); drop it")
        return autotune_cpu.autotune_cpu(model, trials, time_budget, db, output, workers, seed, progress, state,
                                         ram_budget=sram_budget or None, metaschedule_trials=metaschedule_trials)
    if metaschedule_trials:
        raise ConfigError("--metaschedule-trials applies to --target cortex-m55 only (the NPU runs Vela's kernels)")
    if sram_budget is None or sram_budget <= 0:
        raise ConfigError(f"--sram-budget must be a positive number of bytes for --target {target}, not "
                          f"{sram_budget}")
    if trials is not None and trials <= 0 or time_budget is not None and time_budget <= 0:
        raise ConfigError("--trials and --time-budget must be positive")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    if trials is None and time_budget is None:
        trials = DEFAULT_TRIALS
    config = resolve_vela_config(target, accelerator_config, system_config, memory_mode)
    started = time.monotonic()
    model = Path(model)
    source = load_model(model, state).graph
    identity, database = open_database(model, config, db, progress)
    _, records = run_pipeline(source, (), config)
    default = tuning.default_decisions(records, config.memory_mode)
    ev = Evaluator(source, config, database, workers, trials, time_budget, progress, started)
    ev.budget = sram_budget
    try:
        _search(ev, config, default, seed)
    finally:
        ev.close()
    return _finish(ev, model, config, source, default, identity, sram_budget, output, verify_trials, started, progress)


def open_database(model: Path, target, db, progress) -> tuple[dict, TuningDatabase]:
    """The identity evaluations are stored under (model hash, target, tool versions) and the database,
    saying how many earlier evaluations it holds."""
    identity = {"model_sha256": tuning.model_hash(model), "target": tuning.target_of(target),
                "tools": tuning.tool_versions()}
    database = TuningDatabase(db, identity)
    if database.results:
        progress(f"database {db}: {len(database.results)} earlier evaluation(s) of this model, target and toolchain")
    return identity, database


def _search(ev: Evaluator, config, default: Decisions, seed: int) -> None:
    rng = random.Random(seed)
    try:
        base = ev.run([default])[0]
        if base is None or "error" in base:
            raise TvmseError(f"the default build of the model fails: {base and base.get('error')}")
        ev.default_cycles = base["cycles"]
        if base["sram_bytes"] > ev.budget:
            raise TvmseError(f"the network needs {base['sram_bytes']:,} B of SRAM with every weight in flash "
                             f"(Vela's arena), more than --sram-budget {ev.budget:,} B; raise the budget")
        from tvmse.passes.arch import arch_for
        options = {fold: tiling_options(ev.source, fold, config)
                   for fold in tuning.fold_variants(ev.source, arch_for(config.accelerator).row_block)}
        reorders = {fold: tuning.reorder_options(ev.source, fold, config.accelerator) for fold in options}
        greedy_for(ev, default, config.accelerator)
        ev.greedy_cycles = ev.best[0]
        greedy_for(ev, _placement_matched(ev.best[2], options[ev.best[2].fold]), config.accelerator)
        for structure in _structures(ev.source, config, default, options, reorders):
            greedy_for(ev, structure, config.accelerator)
        _local_search(ev, config, options, rng, reorders)
    except OutOfTrials:
        pass


def _local_search(ev: Evaluator, config, options, rng: random.Random, reorders: dict | None = None) -> None:
    """One-decision changes around the best, a batch (one per worker) at a time: each is evaluated with
    the best placement; those within 5 % of the best get their own greedy placement."""
    tried: set = set()
    while True:
        best = ev.best[2]
        structure = best.with_placement(())
        moves = [m for m in _mutations(structure, options[structure.fold], list(options), rng, reorders)
                 if m not in tried]
        if not moves:
            return
        batch = moves[:ev.workers]
        tried.update(batch)
        results = ev.run([m.with_placement(best.placement) for m in batch])
        for move, r in zip(batch, results):
            if r is not None and "error" not in r and r["cycles"] <= ev.best[0] * 1.05:
                greedy_for(ev, move, config.accelerator)


def _finish(ev: Evaluator, model: Path, config, source, default: Decisions, identity: dict, budget: int,
            output, verify_trials: int, started: float, progress) -> TuneResult:
    from tvmse.targets.ethosu import build_segmented
    from tvmse.targets.host import HostReference

    default_result = ev.db.get(default)
    cycles, sram, best = ev.best
    if ev.new == 0:
        progress(f"nothing new to evaluate: all {len(ev.considered)} candidates were in the database "
                 "(0 new evaluations)")
    graph, _ = tuning.apply(source, best, config.accelerator)
    if verify_trials > 0:
        progress(f"verifying the tuned build against the host reference ({verify_trials} random inputs)")
        built = build_segmented(graph, config, best.placement, HostReference(graph), verify_trials)
        if built.total_cycles != cycles:
            raise TvmseError(f"the tuned build gives {built.total_cycles:,} cycles, not the {cycles:,} it was "
                             "tuned for; Vela is not deterministic here")
    result = ev.db.get(best)
    plan = tuning.TuningFile(identity["model_sha256"], identity["target"], identity["tools"], budget, best, cycles,
                             default_result["cycles"], sram,
                             extra={"model": model.name, "evaluations": len(ev.considered),
                                    "flash_bytes": result["flash_bytes"]})
    if output is not None:
        plan.save(output)
    seconds = time.monotonic() - started
    table = _table(model, config, budget, default_result, result, best, len(ev.considered), ev.new, seconds)
    progress(table)
    return TuneResult(plan, default_result["cycles"], cycles, sram, result["flash_bytes"], ev.greedy_cycles,
                      len(ev.considered), ev.new, seconds, table)


def _table(model: Path, config, budget: int, default: dict, tuned: dict, best: Decisions, evaluations: int,
           new: int, seconds: float) -> str:
    return comparison_table(f"{model.name} → {config.describe()}, SRAM budget {budget:,} B: {evaluations} candidates "
                            f"({new} new evaluations) in {seconds:.0f} s", default, tuned,
                            [("cycles/frame", "cycles"), ("SRAM used (B)", "sram_bytes"),
                             ("flash used (B)", "flash_bytes")], best)


def comparison_table(heading: str, default: dict, tuned: dict, figures: list[tuple[str, str]],
                     best: Decisions) -> str:
    """The final table of a tune: ``heading``, a default and a tuned column for each (label, result key) of
    ``figures`` (the first is the cost, followed by the tuned/default ratio), then the tuned decisions."""
    (cost_label, cost), *others = figures
    rows = [(cost_label, f"{default[cost]:,}", f"{tuned[cost]:,}"), ("ratio", "1.000", f"{tuned[cost] / default[cost]:.3f}")]
    rows += [(label, f"{default[key]:,}", f"{tuned[key]:,}") for label, key in others]
    width = max(len(name) for name, _, _ in rows) + 2
    lines = [heading, f"{'':{width}} {'default':>12} {'tuned':>12}"]
    lines += [f"{name:{width}} {a:>12} {b:>12}" for name, a, b in rows]
    lines.append(f"tuned: {best.describe()}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from tvmse.cli import command_parser
    p = command_parser("autotune", __doc__)
    p.add_argument("model", help="model of one streaming step: int8 .tflite or int8 QDQ .onnx")
    p.add_argument("--target", default="ethos-u55", help="ethos-u55, ethos-u65, ethos-u85 or cortex-m55 (QEMU "
                   "instruction counts: tiling for the CPU, rows per FC kernel; see tvmse.autotune_cpu)")
    p.add_argument("--accelerator-config", help="Vela accelerator, e.g. ethos-u55-128 (default per target)")
    p.add_argument("--system-config", help="Vela system config (default per target)")
    p.add_argument("--memory-mode", help="Vela memory mode of the layers left in flash (default Shared_Sram)")
    p.add_argument("--sram-budget", type=int, metavar="BYTES",
                   help="SRAM for the arena, the boundary buffer and the weights placed in SRAM (required for "
                        "Ethos-U; for cortex-m55 an optional limit on arena + state)")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--trials", type=int, metavar="N", help=f"candidates to evaluate (default {DEFAULT_TRIALS})")
    limit.add_argument("--time-budget", type=float, metavar="S", help="seconds to search")
    p.add_argument("--metaschedule-trials", type=int, default=0, metavar="N",
                   help="cortex-m55: also search each FC kernel with MetaSchedule, N candidates per FC workload "
                        "(default 0: off; ~2 s per candidate)")
    p.add_argument("--db", metavar="TUNING.jsonl", help="append-only database of evaluations; reruns resume from it")
    p.add_argument("--output", required=True, metavar="TUNING.json", help="the tuning file to write")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="parallel evaluation processes")
    p.add_argument("--state", action="append", default=[], metavar="IN=OUT",
                   help="pair a state input with the output that feeds it next step, as for compile (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="order of the one-layer changes tried")
    p.add_argument("-q", "--quiet", action="store_true", help="only the final table")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="tvmse: %(message)s", stream=sys.stderr)
    progress = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    from tvmse.compile import parse_state_pairs
    result = autotune(args.model, args.target, args.sram_budget, args.accelerator_config, args.system_config,
                      args.memory_mode, args.trials, args.time_budget, args.db, args.output, args.workers,
                      args.seed, progress=progress, state=parse_state_pairs(args.state),
                      metaschedule_trials=args.metaschedule_trials)
    if args.quiet:
        print(result.table)
    target = f" --target {args.target}" if args.target == "cortex-m55" else ""
    print(f"tuning file: {args.output} (use: python -m tvmse.compile {args.model}{target} --tuning {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
