"""MetaSchedule over the Cortex-M55 FC kernel, measured by QEMU's instruction counts.

Every kernel of the Cortex-M55 build is TIR (``lower``): the FC kernel is scheduled by hand
(``fc_kernel``: rows blocked for Helium, zero point folded), ADD/MUL are hand-written int32 TIR, every
other op is legalized Relax with one generic schedule. The FC kernels hold nearly all of a network's
instructions, so they are what MetaSchedule (``tvm.s_tir.meta_schedule``) searches here:

- **the workload** (``workload``): the same computation and arguments as ``fc_kernel.fully_connected``
  (``x[1,K]``, ``w[N,K]``, ``params[3N]`` → ``y[1,N]``, the folded bias as the reduction's initial
  value, the same scalar requantization macro), written as blocks MetaSchedule can transform; unscheduled,
  it is the plain row-by-row loop. It reads each row's bias, multiplier and shift operand side by side
  (``fc_kernel.row_params`` with one row per block), so a network running it carries that layout;
- **the design space** (``space``): MetaSchedule's CPU rules without TVM's vectorization and parallel
  loops, plus one rule of ours that moves the requantization into the reduction's tiles (else every
  candidate of more than 256 rows needs a 1 KiB+ accumulator array);
- **the builder** (``QemuBuilder``): TVM's C output of a candidate (``kernels_c``, as in the firmware)
  in a one-FC network's generated sources (``glue``). A candidate that calls TVM's workspace
  allocator (``TVMBackendAllocWorkspace``: some sampled schedules allocate their buffers that way) is
  rejected, since the bare-metal build has no heap;
- **the runner** (``QemuRunner``): that network built with the project's clang flags for FC kernels and
  run on QEMU (``emulate.run_on_qemu``) over random frames, every output checked bit-exact against the
  host reference (a mismatch is a failed candidate, never a result); its cost is the FC kernel
  function's executed instructions per call (reported to MetaSchedule in place of seconds);
- **the database**: each evaluation is one line of the tuning database (``KernelRecords``), keyed by
  the workload and the SHA-256 of the candidate's C source, so a repeated candidate, within a search or
  in a rerun, is never run again; a finished search is recorded too, and a rerun of the same search
  takes its best from the database without generating a candidate.

The hand kernel is measured the same way at every row count (``fc_kernel.ROW_CHOICES``);
``search_shape`` returns both, and a schedule is used only where it runs fewer instructions than the
best hand kernel. A chosen schedule is a MetaSchedule trace (JSON), replayed by ``apply_schedules``
on the network's own FC (its zero point; the schedule depends only on the shape and the
requantization form).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import sys
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tvmse.targets.cortex_m.qemu import QemuTimeoutError
from tvmse.tuning_db import KERNEL_DB_FORMAT

log = logging.getLogger(__name__)

#: Random frames per kernel evaluation: the count does not depend on the data, the check does.
FRAMES = 3
#: Candidates MetaSchedule proposes per round (its ``num_trials_per_iter``).
TRIALS_PER_ROUND = 16
#: The evolutionary search's population: MetaSchedule's 512 costs more host time per round than a small
#: search spends on QEMU (the cost model is random: no xgboost here, see ``_tune``).
POPULATION = 64
#: The explicit unroll lengths MetaSchedule samples from (its CPU default adds 512).
UNROLL_STEPS = [0, 16, 64]
#: What defines a search besides its workload, trials and seed (recorded with it: a rerun under another
#: configuration searches again; evaluations are reused whatever the configuration, keyed by their C).
SEARCH_CONFIG = (f"post-order-apply requantize-in-tiles unroll{UNROLL_STEPS} evolutionary pop{POPULATION} "
                 f"round{TRIALS_PER_ROUND} random-model")
#: Wall-clock limit of one candidate's QEMU run (a sound one takes about a second; a timeout is not recorded).
RUN_TIMEOUT_S = 60.0
_WORKSPACE_CALL = "TVMBackendAllocWorkspace"


class ScheduleError(RuntimeError):
    """A recorded schedule cannot be replayed on a workload."""


@dataclasses.dataclass(frozen=True)
class FcShape:
    """An FC kernel's workload: weight shape and requantization form (high word or int64)."""

    n: int
    k: int
    high_word: bool = True

    @property
    def key(self) -> str:
        """``"NxK"``, ``"NxK/int64"`` for the general requantization (the tuning file's key)."""
        return f"{self.n}x{self.k}" + ("" if self.high_word else "/int64")

    @classmethod
    def parse(cls, key: str) -> "FcShape":
        shape, _, form = key.partition("/")
        n, k = (int(d) for d in shape.split("x"))
        return cls(n, k, form != "int64")


def workload(n: int, k: int, y_zero_point: int, high_word: bool):
    """Block-form PrimFunc computing exactly ``fc_kernel.fully_connected(n, k, y_zero_point, high_word)``."""
    from tvm.script import tirx as T

    from tvmse.targets.cortex_m import fc_kernel
    zp = int(y_zero_point)
    requantize = fc_kernel._requantize_high_word if high_word else fc_kernel._requantize
    zq = 1 + 2 * zp if high_word else zp

    @T.prim_func(s_tir=True)
    def fc(x: T.Buffer((1, k), "int8"), w: T.Buffer((n, k), "int8"), params: T.Buffer((3 * n,), "int32"),
           y: T.Buffer((1, n), "int8")):
        T.func_attr({"tirx.noalias": True, "global_symbol": "main"})
        acc = T.sblock_alloc_buffer((n,), "int32")
        for i, j in T.grid(n, k):
            with T.sblock("acc"):
                vi, vj = T.axis.remap("SR", [i, j])
                with T.init():
                    acc[vi] = params[3 * vi]
                acc[vi] = acc[vi] + T.Cast("int32", x[0, vj]) * T.Cast("int32", w[vi, vj])
        for i in range(n):
            with T.sblock("requantize"):
                vi = T.axis.spatial(n, i)
                requantize(y, vi, acc[vi], params, 3 * vi + 1, 3 * vi + 2, zq)

    return fc


def target():
    """The target MetaSchedule's rules see: Helium Cortex-M55, one core (the build itself is TVM's C)."""
    from tvm.target import Target
    return Target({"kind": "llvm", "mtriple": "thumbv8.1m.main-none-eabi", "mcpu": "cortex-m55", "num-cores": 1})


def _requantize_in_tiles_rule():
    """A schedule rule for the reduction block ``acc``, after multi-level tiling: the requantization is
    moved into the innermost spatial tile loop it may go to (``reverse_compute_at``; where the tiling's
    write cache is copied out, if it has one), so ``acc`` shrinks to one tile (a small stack array).
    Without it every candidate keeps the whole ``acc[N]`` live between two loops, which for N > 256
    (over 1 KiB) TVM's C puts in its workspace allocator, absent on the bare-metal build. Both variants
    are kept in the design space."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.schedule_rule import PyScheduleRule

    @derived_object
    class RequantizeInTiles(PyScheduleRule):
        def _initialize_with_tune_context(self, context) -> None:
            pass

        def apply(self, sch, block):
            if sch.get(block).name_hint != "acc":
                return [sch]
            # the deepest of the reduction's loops the requantization may move into: inside any loop of the
            # reduction itself (or of its write cache's copy) it would read unfinished sums, which TVM refuses
            for depth in range(len(sch.get_loops(block)) - 1, -1, -1):
                fused = sch.copy()
                try:
                    fused.reverse_compute_at(fused.get_sblock("requantize"), fused.get_loops(block)[depth],
                                             preserve_unit_loops=True)
                except Exception:  # noqa: BLE001 - TVM's schedule error: not a legal place, try one loop out
                    continue
                return [fused, sch]
            return [sch]

        def clone(self):
            return RequantizeInTiles()

    return RequantizeInTiles()


def space():
    """MetaSchedule's design space for the FC: its CPU rules (inlining, rfactor, multi-level tiling with a
    write cache, unrolling, compute locations), without parallel loops (one core) or TVM's own
    vectorization (TVM's C writes vector types the plain C build lacks; clang vectorizes the loops itself,
    as it does the hand kernel's), without layout rewriting (the firmware passes the weights as they are),
    and with explicit unrolling up to 64 steps (512-step unrolls of a dot product took clang minutes)."""
    from tvm.s_tir import meta_schedule as ms
    rules = [ms.schedule_rule.ParallelizeVectorizeUnroll(max_jobs_per_core=-1, max_vectorize_extent=-1,
                                                          unroll_max_steps=UNROLL_STEPS, unroll_explicit=True)
             if isinstance(r, ms.schedule_rule.ParallelizeVectorizeUnroll) else r
             for r in ms.ScheduleRule.create("llvm")]
    at = next(i for i, r in enumerate(rules) if isinstance(r, ms.schedule_rule.MultiLevelTiling)) + 1
    rules.insert(at, _requantize_in_tiles_rule())
    postprocs = [p for p in ms.Postproc.create("llvm") if not isinstance(p, ms.postproc.RewriteLayout)]
    mutators = {m: p for m, p in ms.Mutator.create("llvm").items() if not isinstance(m, ms.mutator.MutateParallel)}
    return ms.space_generator.PostOrderApply(sch_rules=rules, postprocs=postprocs, mutator_probs=mutators)


def apply_trace(trace_json, n: int, k: int, y_zero_point: int, high_word: bool):
    """The workload scheduled by a recorded trace (``ScheduleError`` if it does not fit)."""
    import tvm
    from tvm import s_tir
    sch = s_tir.Schedule(tvm.IRModule({"main": workload(n, k, y_zero_point, high_word)}))
    try:
        s_tir.schedule.Trace.apply_json_to_schedule(trace_json, sch)
    except Exception as e:  # noqa: BLE001 - TVM raises its own error kinds for a trace that does not fit
        raise ScheduleError(f"the recorded schedule does not apply to a {n}x{k} FC: {str(e).splitlines()[0]}") from None
    return sch.mod["main"]


def fc_workloads(network) -> list[tuple[str, FcShape, int]]:
    """(kernel symbol, workload, output zero point) of each hand-scheduled FC kernel of ``network``
    (``lower.LoweredNetwork``), in call order."""
    from tvmse.targets.cortex_m import fc_kernel
    ops = {op.name: op for op in network.graph.ops}
    found = []
    for step in network.steps:
        if step.kind == "fully_connected" and step.kernel in network.fc_kernels:
            op = ops[step.op]
            n, k = op.consts["weight"].shape
            found.append((step.kernel, FcShape(int(n), int(k), fc_kernel.uses_high_word(op.consts["shift"])),
                          int(op.output.zero_point)))
    return found


def network_shapes(network) -> list[FcShape]:
    """The distinct FC workloads of ``network``, most MACs per frame first."""
    macs: dict[FcShape, int] = {}
    for _, shape, _ in fc_workloads(network):
        macs[shape] = macs.get(shape, 0) + shape.n * shape.k
    return sorted(macs, key=lambda s: (-macs[s], s.key))


def apply_schedules(network, schedules: dict[str, object]) -> int:
    """Replace the hand FC kernels of ``network`` (``lower.LoweredNetwork``) whose workload key
    (``FcShape.key``) has a schedule in ``schedules`` (key → trace JSON); returns how many."""
    from tvmse.targets.cortex_m import fc_kernel
    ops = {op.name: op for op in network.graph.ops}
    steps = {step.kernel: step for step in network.steps}
    replaced = 0
    for symbol, shape, zero_point in fc_workloads(network):
        trace = schedules.get(shape.key)
        if trace is not None:
            func = apply_trace(trace, shape.n, shape.k, zero_point, shape.high_word)
            network.fc_kernels[symbol] = func.with_attr("global_symbol", symbol)
            # the workload reads each row's parameters side by side: the one-row layout of row_params
            step = steps[symbol]
            params = network.tensors[step.args[2]]
            op = ops[step.op]
            x = network.graph.tensors()[op.inputs[0]]
            value = fc_kernel.row_params(op.consts["weight"], op.consts, x.zero_point, rows=1)
            network.tensors[params.name] = dataclasses.replace(params, value=value)
            replaced += 1
    return replaced


def replay(network, decisions, path) -> None:
    """``compile --tuning``: the tuning file's MetaSchedule kernels in ``network``; a trace that does not
    fit the model's workload is a ``TuningError`` naming the file."""
    from tvmse.tuning import TuningError
    schedules = decisions.fc_schedule_by_key()
    unknown = sorted(set(schedules) - {shape.key for _, shape, _ in fc_workloads(network)})
    if unknown:
        raise TuningError(f"tuning file {path}: decisions.fc_schedule names FC workloads the build does not have "
                          f"({', '.join(unknown)}); tune again for this model")
    try:
        apply_schedules(network, schedules)
    except ScheduleError as e:
        raise TuningError(f"tuning file {path}: {e}; tune again for this model") from None


def kernel_table(results: list["ShapeResult"], models: dict | None = None) -> str:
    """Per FC workload: the best hand kernel against MetaSchedule's best (instructions per call);
    ``models``: workload → the models that have it (an extra column)."""
    lines = ["| FC workload |" + (" models |" if models else "") + " MACs | hand kernel (rows) | MetaSchedule best | "
             "ratio | trials | failed | wall s | beats hand |",
             "|---|" + ("---|" if models else "") + "---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        best = f"{r.schedule_instructions:,}" if r.schedule_instructions else "none valid"
        ratio = f"{r.schedule_instructions / r.hand_instructions:.2f}" if r.schedule_instructions else "–"
        owner = f" {', '.join(models[r.shape])} |" if models else ""
        lines.append(f"| {r.shape.key} |{owner} {r.shape.n * r.shape.k:,} | {r.hand_instructions:,} ({r.hand_rows}) | "
                     f"{best} | {ratio} | {r.trials} | {sum(r.failed.values())} | {r.search_seconds:.0f} | "
                     f"{'yes' if r.wins else 'no'} |")
    return "\n".join(lines)


# ---- one FC on QEMU ----------------------------------------------------------------------------------------
def fc_graph(shape: FcShape):
    """A network of one FC of ``shape`` (random weights; scales giving the shape's requantization form)."""
    from tvmse.ir import IntegerGraph, TensorInfo, build
    from tvmse.targets.cortex_m import fc_kernel
    rng = np.random.default_rng(shape.n * 7919 + shape.k)
    x = TensorInfo("x", (1, shape.k), 0.02, -3)
    y_scale = 0.05 if shape.high_word else 0.0002   # rescale ≈ 1e-3 (high word) or ≈ 0.5 (int64 form)
    op = build.fully_connected("fc", x, rng.integers(-127, 128, (shape.n, shape.k)),
                               rng.integers(-3000, 3000, shape.n), rng.uniform(0.002, 0.008, shape.n), y_scale, 3)
    if fc_kernel.uses_high_word(op.consts["shift"]) != shape.high_word:
        raise ValueError(f"could not make an FC with the {'high-word' if shape.high_word else 'int64'} form")
    return IntegerGraph([x], [op.output.name], [op])


class _ReferenceOutputs:
    """The host reference's outputs for a fixed set of frames, computed once: every candidate of a workload
    runs the same frames, and the runner's threads then run no TVM code of their own."""

    def __init__(self, graph, frames: np.ndarray):
        from tvmse.targets.host import HostReference
        reference = HostReference(graph)
        self.input = graph.inputs[0].name
        self.outputs = {frame.tobytes(): reference.run({self.input: frame}) for frame in frames}

    def run(self, inputs: dict) -> dict:
        return self.outputs[np.asarray(inputs[self.input], np.int8).tobytes()]


class Bench:
    """One FC workload on QEMU: its one-FC network (lowered once), frames and expected outputs."""

    def __init__(self, shape: FcShape):
        from tvmse.targets.cortex_m import lower
        from tvmse.targets.cortex_m.compile_cpu import random_frames
        self.shape = shape
        self.graph = fc_graph(shape)
        self.frames = random_frames((1, shape.k), FRAMES, seed=shape.n)
        self.reference = _ReferenceOutputs(self.graph, self.frames)
        self.hand = {rows: lower.lower(self.graph, fc_rows={(shape.n, shape.k): rows})
                     for rows in _row_choices()}

    def build(self, func, work: Path, rows: int | None = None) -> "Built":
        """The network's sources with ``func`` as its FC kernel (None: the hand kernel at ``rows``)."""
        from tvmse.targets.cortex_m import fc_kernel, glue
        # a MetaSchedule kernel reads the one-row parameter layout (see ``workload``): the 1-row network has it
        network = self.hand[1 if func is not None else rows or fc_kernel.ROWS]
        if func is not None:
            (symbol,) = network.fc_kernels
            network = dataclasses.replace(network, fc_kernels={symbol: func.with_attr("global_symbol", symbol)})
        generated = glue.generate(network)
        fc_source = "".join(generated.files[f] for f in generated.fc_sources)
        if _WORKSPACE_CALL in fc_source:
            raise ScheduleError(f"the schedule calls TVM's workspace allocator ({_WORKSPACE_CALL}), which the "
                                "bare-metal build does not have")
        glue.write(generated, work / "src")
        return Built(work, network, generated, hashlib.sha256(fc_source.encode()).hexdigest())

    def run(self, built: "Built", timeout: float = 300.0) -> int:
        """Instructions per call of the FC kernel on QEMU, its outputs bit-exact (else ``MismatchError``)."""
        from tvmse.targets.cortex_m import emulate
        run = emulate.run_on_qemu(built.network, built.glue, built.directory / "src", self.reference, self.frames,
                                  built.directory / "run", timeout=timeout)
        (kernel,) = [k for k in run.kernels if k["kind"] == "fully_connected"]
        return int(round(kernel["instructions_per_frame"]))


def _row_choices() -> tuple[int, ...]:
    from tvmse.targets.cortex_m import fc_kernel
    return fc_kernel.ROW_CHOICES


@dataclasses.dataclass
class Built:
    """One candidate's generated sources, ready to build and run."""

    directory: Path
    network: object
    glue: object
    source_sha256: str


# ---- the database ------------------------------------------------------------------------------------------
class KernelRecords:
    """Kernel evaluations and finished searches, lines of the tuning database (``tvmse.tuning_db``'s file).

    A kernel's figure depends on its workload, the target and the tools, not on the model, so these lines
    are keyed by ``identity`` = target and tool versions. Lines of other formats are the model tuner's and
    are left to it; a line of this format that is malformed, or of other tools, is skipped (counted, one
    warning)."""

    def __init__(self, path, identity: dict):
        self.path = Path(path) if path is not None else None
        self.identity = identity
        self.evaluations: dict[tuple[str, str], dict] = {}   # (workload, candidate) → record
        self.searches: dict[tuple[str, int, int, str], dict] = {}   # (workload, trials, seed, config) → record
        self.skipped = 0
        if self.path is not None and self.path.is_file():
            for number, line in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
                self._read(number, line)
            if self.skipped:
                log.warning("tuning database %s: skipped %d malformed or foreign kernel line(s)", self.path,
                            self.skipped)

    def _read(self, number: int, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return   # the model tuner's database reports lines that are not JSON
        if not isinstance(record, dict) or record.get("format") != KERNEL_DB_FORMAT:
            return
        try:
            if {k: record[k] for k in self.identity} != self.identity:
                self.skipped += 1
                return
            FcShape.parse(record["workload"])
            if "search" in record:
                search = record["search"]
                trials, seed, config = search["trials"], search["seed"], search["config"]
                if not (isinstance(trials, int) and isinstance(seed, int) and isinstance(config, str)
                        and isinstance(search.get("seconds"), (int, float))):
                    raise ValueError("bad search")
                self.searches[(record["workload"], trials, seed, config)] = search
                return
            candidate, result = record["candidate"], record["result"]
            if not isinstance(candidate, str) or not isinstance(result, dict):
                raise ValueError("bad candidate")
            if "error" in result:
                if not isinstance(result["error"], str):
                    raise ValueError("bad error")
            elif not (isinstance(result.get("instructions"), int) and not isinstance(result["instructions"], bool)
                      and result["instructions"] > 0):
                raise ValueError("bad instructions")
            self.evaluations[(record["workload"], candidate)] = {"result": result, "trace": record.get("trace")}
        except (KeyError, TypeError, ValueError) as e:
            log.debug("tuning database %s line %d skipped: %s", self.path, number, e)
            self.skipped += 1

    def _append(self, record: dict) -> None:
        if self.path is None:
            return
        line = json.dumps({"format": KERNEL_DB_FORMAT, **self.identity, **record}, sort_keys=True)
        with self.path.open("a") as f:   # one write per line: a crash leaves at most one partial line
            f.write(line + "\n")
            f.flush()

    def get(self, workload: str, candidate: str) -> dict | None:
        found = self.evaluations.get((workload, candidate))
        return found["result"] if found else None

    def add(self, workload: str, candidate: str, result: dict, trace, seconds: float) -> None:
        self.evaluations[(workload, candidate)] = {"result": result, "trace": trace}
        self._append({"workload": workload, "candidate": candidate, "trace": trace, "result": result,
                      "seconds": round(seconds, 3)})

    def finish(self, workload: str, trials: int, seed: int, seconds: float, best) -> None:
        search = {"trials": trials, "seed": seed, "config": SEARCH_CONFIG, "seconds": round(seconds, 1), "best": best}
        self.searches[(workload, trials, seed, SEARCH_CONFIG)] = search
        self._append({"workload": workload, "search": search})

    def best_schedule(self, workload: str) -> tuple[int, object] | None:
        """(instructions, trace) of the fastest MetaSchedule candidate recorded for ``workload``."""
        found = [(e["result"]["instructions"], e["trace"]) for (w, c), e in self.evaluations.items()
                 if w == workload and c.startswith("sha256:") and "error" not in e["result"] and e["trace"]]
        return min(found, key=lambda f: f[0]) if found else None


# ---- MetaSchedule's builder, runner and record keeping ---------------------------------------------------------
@dataclasses.dataclass
class Counter:
    """What one search did: candidates measured (from the database or new), new QEMU runs, failures."""

    candidates: int = 0
    new: int = 0
    failed: dict = dataclasses.field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.failed[why] = self.failed.get(why, 0) + 1


def plain_json(obj):
    """A trace's JSON form (TVM containers, IntImm/FloatImm) as plain Python lists, numbers and strings."""
    from tvm.tirx import FloatImm, IntImm
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (IntImm, FloatImm)):
        return obj.value
    if hasattr(obj, "items"):
        return {str(k): plain_json(v) for k, v in obj.items()}
    return [plain_json(v) for v in obj]


def _error(e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first[:300]}"


def _search_parts(bench: Bench, records: KernelRecords, work: Path, workers: int, counter: Counter):
    """MetaSchedule's builder, runner and a measure callback that writes each new evaluation, with the
    candidate's trace, to ``records``."""
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
    from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerFuture, RunnerResult
    from tvm.ir.utils import derived_object
    shape = bench.shape

    built: dict[str, Built] = {}          # artifact path → the candidate's sources
    measured: dict[str, tuple] = {}       # artifact path → (candidate key, result, seconds, new)
    pool = ThreadPoolExecutor(max(1, workers))   # clang and QEMU are processes: threads suffice

    @derived_object
    class QemuBuilder(PyBuilder):
        def build(self, build_inputs):
            results = []
            for inp in build_inputs:
                directory = Path(tempfile.mkdtemp(prefix="cand-", dir=work))
                try:
                    # the artifact is a path inside the candidate's folder: MetaSchedule removes its parent folder
                    artifact = str(directory / "src")
                    built[artifact] = bench.build(inp.mod["main"], directory)
                    results.append(BuilderResult(artifact, None))
                except Exception as e:  # noqa: BLE001 - a candidate TVM cannot turn into C is rejected, only it
                    counter.fail(type(e).__name__)
                    results.append(BuilderResult(None, _error(e)))
            return results

    def measure(artifact: str) -> dict:
        candidate = built.pop(artifact)
        key = "sha256:" + candidate.source_sha256
        known = records.get(shape.key, key)
        if known is not None:
            measured[artifact] = (key, known, 0.0, False)
            return known
        start = time.monotonic()
        keep = True
        try:
            result = {"instructions": bench.run(candidate, RUN_TIMEOUT_S)}
        except Exception as e:  # noqa: BLE001 - a wrong or crashing candidate is a failed trial, never a result
            counter.fail(type(e).__name__)
            result = {"error": _error(e)}
            keep = not isinstance(e, QemuTimeoutError)   # a busy machine's timeout says nothing of the candidate
        measured[artifact] = (key, result, time.monotonic() - start, keep)
        return result

    def runner_result(result: dict):
        if "error" in result:
            return RunnerResult(None, result["error"])
        # MetaSchedule ranks candidates by seconds: one instruction counts as 1 ns (only the order matters)
        return RunnerResult([result["instructions"] * 1e-9], None)

    @derived_object
    class QemuRunner(PyRunner):
        def run(self, runner_inputs):
            futures = [pool.submit(measure, inp.artifact_path) for inp in runner_inputs]
            return [RunnerFuture(f_done=f.done, f_result=lambda f=f: runner_result(f.result())) for f in futures]

    @derived_object
    class RecordEvaluations(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            for candidate, build in zip(measure_candidates, builder_results):
                counter.candidates += 1
                if build.artifact_path is None or build.artifact_path not in measured:
                    continue
                key, result, seconds, new = measured.pop(build.artifact_path)
                if new:
                    counter.new += 1
                    trace = plain_json(candidate.sch.trace.as_json(remove_postproc=False))
                    records.add(shape.key, key, result, trace, seconds)

    return QemuBuilder(), QemuRunner(), RecordEvaluations(), pool


@dataclasses.dataclass
class ShapeResult:
    """One FC workload: the best hand kernel and MetaSchedule's best, with what the search cost."""

    shape: FcShape
    hand_instructions: int
    hand_rows: int
    schedule_instructions: int | None   # None: no candidate built, ran and matched
    trace: object
    trials: int
    candidates: int       # MetaSchedule candidates measured (from the database or new)
    new_evaluations: int  # QEMU runs this call made (hand kernels included)
    seconds: float        # this call's wall time
    search_seconds: float   # the search's own wall time when it ran (recorded with it)
    failed: dict

    @property
    def wins(self) -> bool:
        return self.schedule_instructions is not None and self.schedule_instructions < self.hand_instructions


def hand_kernel(shape: FcShape, records: KernelRecords, work: Path, bench) -> tuple[int, int, int]:
    """(instructions, rows, new evaluations) of the best hand kernel over ``fc_kernel.ROW_CHOICES``;
    ``bench()`` gives the workload's ``Bench`` (made only if something must run)."""
    from tvmse.targets.cortex_m import fc_kernel
    best, new = None, 0
    for rows in fc_kernel.ROW_CHOICES:
        key = f"hand/rows={rows}"
        result = records.get(shape.key, key)
        if result is None or "error" in result:
            start = time.monotonic()
            directory = Path(tempfile.mkdtemp(prefix=f"hand{rows}-", dir=work))
            result = {"instructions": bench().run(bench().build(None, directory, rows))}
            records.add(shape.key, key, result, None, time.monotonic() - start)
            new += 1
        count = result["instructions"]
        if best is None or (count, rows != fc_kernel.ROWS) < (best[0], best[1] != fc_kernel.ROWS):
            best = (count, rows)
    return best[0], best[1], new


def search_shape(shape: FcShape, trials: int, records: KernelRecords, seed: int = 0, workers: int = 1,
                 progress=None) -> ShapeResult:
    """MetaSchedule over ``shape``'s FC kernel for ``trials`` candidates, and the hand kernel's best.

    A search already recorded for this workload, trial count and seed is not run again: its best is taken
    from the database (no candidate generated, no evaluation)."""
    started = time.monotonic()
    counter = Counter()
    benches: list[Bench] = []

    def bench() -> Bench:
        if not benches:
            benches.append(Bench(shape))
        return benches[0]

    with tempfile.TemporaryDirectory(prefix="tvmse-msched-") as tmp:
        work = Path(tmp)
        hand, hand_rows, hand_new = hand_kernel(shape, records, work, bench)
        done = records.searches.get((shape.key, trials, seed, SEARCH_CONFIG))
        if done is None:
            _tune(bench(), trials, seed, records, work, workers, counter)
            search_seconds = time.monotonic() - started
            best = records.best_schedule(shape.key)
            records.finish(shape.key, trials, seed, search_seconds,
                           {"instructions": best[0] if best else None, "candidates": counter.candidates,
                            "failed": counter.failed})
            candidates, failed = counter.candidates, counter.failed
        else:
            search_seconds = done["seconds"]
            info = done.get("best") if isinstance(done.get("best"), dict) else {}
            candidates, failed = info.get("candidates", 0), info.get("failed", {})
    best = records.best_schedule(shape.key)
    result = ShapeResult(shape, hand, hand_rows, best[0] if best else None, best[1] if best else None, trials,
                         candidates, hand_new + counter.new, time.monotonic() - started, search_seconds, failed)
    if progress:
        ms = f"{result.schedule_instructions:,}" if result.schedule_instructions else "none valid"
        progress(f"MetaSchedule {shape.key}: hand kernel {hand:,} instructions ({hand_rows} rows), MetaSchedule best "
                 f"{ms} after {trials} trials ({result.new_evaluations} new evaluations, {result.seconds:.0f} s)")
    return result


def _tune(bench: Bench, trials: int, seed: int, records: KernelRecords, work: Path, workers: int,
          counter: Counter) -> None:
    """``tune_tir`` with the QEMU builder and runner. MetaSchedule's cost model is the random one: its
    xgboost model would add a dependency, and the evolutionary search still breeds from the best measured
    candidates (``init_measured_ratio``); TVM's own database is in memory, the tuning database is ours."""
    import tvm
    from tvm.s_tir import meta_schedule as ms
    builder, runner, record, pool = _search_parts(bench, records, work, workers, counter)
    shape = bench.shape
    func = workload(shape.n, shape.k, bench.graph.ops[0].output.zero_point, shape.high_word)
    try:
        with _quiet_tvm_logs(), _without_tensor_intrinsics():
            ms.tir_integration.tune_tir(
                tvm.IRModule({"main": func}), target(), str(work / "ms"), max_trials_global=trials,
                num_trials_per_iter=min(TRIALS_PER_ROUND, trials), builder=builder, runner=runner,
                database=ms.database.MemoryDatabase(), cost_model="random",
                measure_callbacks=[record, *ms.measure_callback.MeasureCallback.create("default")], space=space(),
                strategy=ms.search_strategy.EvolutionarySearch(
                    population_size=POPULATION, init_min_unmeasured=POPULATION // 4, genetic_num_iters=2),
                task_scheduler="round-robin", num_tuning_cores=1, seed=seed)
    finally:
        pool.shutdown()


@contextlib.contextmanager
def _without_tensor_intrinsics():
    """Let MetaSchedule's ``TuneContext`` skip importing ``tvm.s_tir.tensor_intrin`` (~22 s on this machine,
    more than a small search): it registers CUDA, x86, Hexagon… intrinsics for tensorization rules, and
    this search's rules (``space``) tensorize nothing. The stand-in module is removed afterwards, so a
    later real import in this process loads the intrinsics as usual."""
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        yield
        return
    stand_in = sys.modules[name] = types.ModuleType(name)
    try:
        yield
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]


class _quiet_tvm_logs:
    """MetaSchedule logs every round at INFO to its own loggers; the tuner prints its own progress."""

    def __enter__(self):
        self.loggers = [logging.getLogger(n) for n in ("tvm.s_tir.meta_schedule", "tvm.meta_schedule")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)
