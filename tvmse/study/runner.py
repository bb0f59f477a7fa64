"""Run a study's trials on Ray, resume what a killed run left, and write the results.

The dense reference run goes first (every trial starts from its float checkpoint), then the sparse trials,
at most ``--max-concurrent`` at a time (default: the cluster's CPUs), each a Ray task holding one CPU.
``ray.init()`` starts a local Ray on this machine (CPUs from ``os.cpu_count()``, no dashboard, a small object
store: trials pass only their figures around); ``--address`` joins an existing cluster instead, whose nodes
must see ``DIR``, the corpus and tvmse at the same paths (a shared file system). Trials report their phase
to a small actor; the driver logs every change with the counts of trials done, running and queued and an
ETA from the trials finished so far, and every minute each running trial's phase and training step.

A trial whose folder holds ``measurements.json`` made with the study's evaluation and build settings is
finished and never started again: rerunning a finished study starts no trial, says so, and rewrites the
results. The results are also rewritten after every finished trial, and ``--results-only`` writes those of
the trials finished so far without starting any.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

from tvmse import __version__
from tvmse.cli import command_parser
from tvmse.errors import EXIT_INTERNAL_ERROR, ConfigError, OutputError, TvmseError, cli_entry
from tvmse.progress import log_stages
from tvmse.study.config import PRESETS, DenseSpec, StudyConfig, TrialSpec, load_config, read_toml
from tvmse.study.results import result_row, write_results
from tvmse.study.trial import Trial, finished

log = logging.getLogger("tvmse.study")

STATUS_INTERVAL_S = 60.0  # a line with every running trial's phase at least this often
OBJECT_STORE_BYTES = 256 * 2**20  # trials exchange only small dicts; Ray's default takes 30 % of RAM
TRIALS_DIR = "trials"


class TrialFailed(TvmseError):
    """A trial stopped with an error that is not the user's input (its log names the cause)."""

    exit_code = EXIT_INTERNAL_ERROR


def check_out_dir(out: Path) -> Path:
    """``out`` exists (created if needed) and is writable, or a clear OutputError."""
    out = out.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder for the study")
    try:
        (out / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OutputError(f"--out {out} cannot be written ({err.strerror or err}); choose another folder") from None
    return out


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address answers a TCP connection, or a ConfigError now: Ray
    itself retries an unreachable address for many minutes. ``auto`` and other forms are left to Ray."""
    import socket
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"--address {address}: nothing answers there ({err.strerror or err}); start the cluster "
                          "(ray start --head) or give its head node's address") from None


# ---- one trial inside a Ray worker ---------------------------------------------------------------
def run_trial(spec: TrialSpec | DenseSpec, study: StudyConfig, folder: str, init: str | None, board) -> dict:
    """The body of a trial's Ray task: run its phases with tvmse's log going to ``folder/trial.log``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "trial.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    tvmse_log = logging.getLogger("tvmse")
    tvmse_log.addHandler(handler)
    tvmse_log.setLevel(logging.INFO)
    try:
        report = (lambda phase: board.set.remote(spec.id, phase)) if board is not None else (lambda phase: None)
        return Trial(spec, study, folder, init, report).run()
    except Exception:
        tvmse_log.exception("trial %s failed", spec.id)
        raise
    finally:
        tvmse_log.removeHandler(handler)
        handler.close()


class PhaseBoard:
    """Ray actor: the phase each trial last reported."""

    def __init__(self):
        self.phases: dict[str, str] = {}

    def set(self, trial_id: str, phase: str) -> None:
        self.phases[trial_id] = phase

    def get(self) -> dict[str, str]:
        return dict(self.phases)


# ---- the study -----------------------------------------------------------------------------------
class Study:
    """A study in ``out``: which trials are finished, running them on Ray, the results."""

    def __init__(self, config: StudyConfig, out: Path, address: str | None = None, max_concurrent: int | None = None,
                 command: str = ""):
        self.config, self.out, self.address = config, out, address
        self.max_concurrent, self.command = max_concurrent, command
        self.started_trials: list[str] = []
        self.durations: list[float] = []  # seconds of each trial finished in this run
        self.waiting = 0  # trials queued behind the current stage (the sparse ones while the dense one runs)

    def folder(self, spec) -> Path:
        return self.out / TRIALS_DIR / spec.id

    def pending(self) -> list:
        """Specs (dense first) whose trials are not finished."""
        return [s for s in (self.config.dense, *self.config.trials) if finished(self.folder(s), self.config) is None]

    def run(self, start: bool = True) -> dict:
        """Run the unfinished trials (none if not ``start``), then write the results of the finished ones."""
        pending = self.pending()
        total = 1 + len(self.config.trials)
        if not pending:
            log.info("all %d trials of %s already finished: no trial started", total, self.out)
        elif not start:
            log.info("%d of %d trials unfinished; none started (--results-only)", len(pending), total)
        else:
            log.info("%d of %d trials to run (%d finished before)", len(pending), total, total - len(pending))
            self._run_on_ray(pending)
        return self.write()

    def write(self) -> dict:
        """results.json/.csv, the plots and study.md of the trials finished so far (the dense run first)."""
        dense = finished(self.folder(self.config.dense), self.config)
        if dense is None:
            raise TvmseError(f"{self.out}: no results yet, the dense reference run is not finished; run the study "
                             "without --results-only")
        measured = {s.name: finished(self.folder(s), self.config) for s in self.config.trials}
        rows = [result_row(dense, dense)] + [result_row(m, dense) for m in measured.values() if m is not None]
        header = {"preset": self.config.preset, "command": self.command, "tvmse_version": __version__,
                  "memory_modes": list(self.config.memory_modes), "evaluation": self.config.evaluation(),
                  "started": self.started_trials, "unfinished": [n for n, m in measured.items() if m is None]}
        write_results(self.out, rows, dense, header)
        return {"rows": rows, "dense": dense, "started": self.started_trials, "unfinished": header["unfinished"]}

    # -- Ray
    def _run_on_ray(self, pending: list) -> None:
        import ray

        local = self.address is None
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(address=self.address, num_cpus=os.cpu_count() if local else None, include_dashboard=False,
                     object_store_memory=OBJECT_STORE_BYTES if local else None, logging_level=logging.ERROR,
                     log_to_driver=False, configure_logging=True)
        except (ConnectionError, ValueError, RuntimeError) as err:
            where = f"join the Ray cluster at --address {self.address}" if self.address else "start a local Ray"
            raise ConfigError(f"cannot {where} ({type(err).__name__}: {' '.join(str(err).split())[:200]}); "
                              "check the address (ray status on the head node) or run without --address") from None
        for signum, handler in handlers.items():  # Ray installs its own; ours stop the study cleanly (exit 130/143)
            signal.signal(signum, handler)
        try:
            concurrent = self.max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 1)))
            board = ray.remote(num_cpus=0)(PhaseBoard).remote()
            task = ray.remote(num_cpus=1, max_retries=0)(run_trial)
            dense_spec = self.config.dense
            sparse = [s for s in pending if s is not dense_spec]
            if dense_spec in pending:
                self.waiting = len(sparse)
                self._schedule([dense_spec], task, board, concurrent, init=None)
            self.waiting = 0
            init = finished(self.folder(dense_spec))["train"]["float_checkpoint"]
            self._schedule(sparse, task, board, concurrent, init=init)
        finally:
            ray.shutdown()

    def _schedule(self, specs: list, task, board, concurrent: int, init: str | None) -> None:
        import ray

        queued, running, failures = list(specs), {}, []
        phases: dict[str, str] = {}
        last_status = time.monotonic()
        while queued or running:
            while queued and len(running) < concurrent:
                spec = queued.pop(0)
                running[task.remote(spec, self.config, str(self.folder(spec)), init, board)] = (spec, time.monotonic())
                self.started_trials.append(spec.id)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                spec, started = running.pop(ref)
                try:
                    ray.get(ref)
                    self.write()  # the results so far: a study stopped later still has them
                    self.durations.append(time.monotonic() - started)
                    log.info("%s: finished in %.0f s%s", spec.id, self.durations[-1],
                             self._counts(queued, running, concurrent))
                except ray.exceptions.RayError as err:  # the task raised, or its worker died (out of memory, killed)
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, TvmseError):
                        raise cause from None
                    failures.append(f"{spec.id} ({type(cause).__name__ if cause else 'error'}: "
                                    f"{str(cause or err).strip().splitlines()[0][:120]}; log: "
                                    f"{self.folder(spec) / 'trial.log'})")
                    log.warning("trial %s failed; see %s", spec.id, self.folder(spec) / "trial.log")
            for trial_id, phase in ray.get(board.get.remote()).items():
                if phases.get(trial_id) != phase and phase != "done":
                    log.info("%s: %s%s", trial_id, phase, self._counts(queued, running, concurrent))
                phases[trial_id] = phase
            if running and time.monotonic() - last_status >= STATUS_INTERVAL_S:  # long phases: a line now and then
                last_status = time.monotonic()
                now = "; ".join(f"{spec.id}: {self._phase_detail(spec, phases.get(spec.id, 'starting'))}"
                                for spec, _ in running.values())
                log.info("%s%s", now, self._counts(queued, running, concurrent))
        if failures:
            raise TrialFailed(f"{len(failures)} trial(s) failed: {'; '.join(failures)}; fix the cause and run the "
                              "same command again (finished trials are kept)")

    def _phase_detail(self, spec, phase: str) -> str:
        """The phase, with the training step reached for a trial in training (from its train_log.jsonl)."""
        if phase != "train":
            return phase
        try:
            last = (self.folder(spec) / "train" / "train_log.jsonl").read_text().strip().splitlines()[-1]
            step = json.loads(last)["step"]
        except (OSError, IndexError, ValueError, KeyError):
            return phase
        config = spec.train_config(self.config.data) if isinstance(spec, DenseSpec) else \
            spec.train_config(self.config.data, "")
        return f"train step {step}/{config.total_steps}"

    def _counts(self, queued: list, running: dict, concurrent: int) -> str:
        """`` (2 done, 2 running, 5 queued; ETA 300 s)``: the ETA assumes the trials left take as long as the
        ones finished in this run took on average, ``concurrent`` at a time."""
        left = len(queued) + self.waiting + len(running)
        text = f" ({len(self.durations)} done, {len(running)} running, {len(queued) + self.waiting} queued"
        if self.durations and left:
            mean = sum(self.durations) / len(self.durations)
            text += f"; ETA {mean * left / max(1, min(concurrent, left)):.0f} s"
        return text + ")"


# ---- command line --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from tvmse.study import __doc__ as doc
    p = command_parser("study", doc)
    p.add_argument("--preset", required=True, help=f"the grid to run: {', '.join(PRESETS)}")
    p.add_argument("--config", help="study.toml laid over the preset (its sections: tvmse/study/config.py)")
    p.add_argument("--out", required=True, help="study folder: trials/, results.json/.csv, pareto_*.png, study.md")
    p.add_argument("--address", help="join this Ray cluster (its head's HOST:6379, or auto) instead of a local Ray")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: the Ray cluster's CPUs)")
    p.add_argument("--results-only", action="store_true",
                   help="start no trial: write the results of the trials finished so far")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines; only the summary")
    return p


def summary(result: dict, out: Path) -> str:
    started = result["started"]
    lines = [f"study {out}: {len(result['rows'])} trials (dense included), "
             + (f"{len(started)} started" if started else
                "0 started" + ("" if result["unfinished"] else ": every trial was already finished"))]
    lines.append(f"{'trial':<22} {'SDR drop':>9} {'speed-up':>9} {'compression':>12}")
    for r in result["rows"]:
        lines.append(f"{r['name']:<22} {r['sdr_drop']:+9.2f} {r.get('speedup_Shared_Sram', 0):8.2f}× "
                     f"{r['compression']:11.1f}×")
    if result["unfinished"]:
        lines.append(f"unfinished: {', '.join(result['unfinished'])} (run the same command to complete them)")
    lines.append(f"wrote {out / 'study.md'}, results.json, results.csv, pareto_speed.png, pareto_memory.png")
    return "\n".join(lines)


@cli_entry
def main(argv: list[str] | None = None) -> int | None:
    args = build_parser().parse_args(argv)
    log_stages(args.quiet)
    if args.quiet:
        logging.getLogger("tvmse").setLevel(logging.WARNING)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise TvmseError("--max-concurrent must be >= 1")
    where = args.config or f"preset {args.preset}"
    config = load_config(args.preset, read_toml(args.config) if args.config else None, where)
    if args.address:
        check_reachable(args.address)
    out = check_out_dir(Path(args.out))
    command = "python -m tvmse.study " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = Study(config, out, args.address, args.max_concurrent, command).run(start=not args.results_only)
    print(summary(result, out))
    return None
