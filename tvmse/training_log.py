"""What a training run reports while it runs: a progress bar with ETA, a JSONL log and a curve plot.

* Progress: a tqdm bar (steps, steps/s, ETA, phase, smoothed loss) on stderr when it is a terminal; when it is
  not (a log file, CI), plain log lines every ``log_every`` steps instead; nothing with ``quiet``.
* ``<run>/train_log.jsonl``: one JSON object per line, ``{"step", "phase", "loss", "lr", "elapsed_s"}`` every
  ``log_every`` steps and ``{"step", "eval": {set: ΔSI-SDR dB}}`` at each evaluation. A resumed run first drops
  the lines after its checkpoint's step, so the log reads as one uninterrupted run.
* ``<run>/training.png``: training loss and the evaluation curves against the step, redrawn at each evaluation
  and at the end (written to a temporary file and renamed).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("tvmse.train")

LOG_NAME, PLOT_NAME = "train_log.jsonl", "training.png"


class TrainingLog:
    """The JSONL log and curve plot of the run in ``out``, and the progress display."""

    def __init__(self, out: Path, total_steps: int, start_step: int, quiet: bool = False):
        self.path, self.plot_path = out / LOG_NAME, out / PLOT_NAME
        self.total, self.quiet = total_steps, quiet
        out.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start_step)
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)

    def _truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        _atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def append(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def progress(self, step: int, phase: str, loss: float, lr: float, elapsed: float, log_due: bool) -> None:
        """Advance the bar by one step; every ``log_due`` step also log a line (no bar) and a JSONL row."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"{phase} loss {loss:.4f}", refresh=False)
            self.bar.update(1)
        if log_due:
            self.append({"step": step, "phase": phase, "loss": loss, "lr": lr, "elapsed_s": round(elapsed, 2)})
            if self.bar is None and not self.quiet:
                log.info("step %d/%d [%s] loss %.5f lr %.2e  %.1f s", step, self.total, phase, loss, lr, elapsed)

    def evaluation(self, step: int, scores: dict[str, float]) -> None:
        self.append({"step": step, "eval": scores})
        message = "step %d: ΔSI-SDR " + ", ".join(f"{k} {v:+.2f} dB" for k, v in scores.items())
        if self.bar is not None:
            self.bar.write(message % step)
        elif not self.quiet:
            log.info(message, step)
        self.plot()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def plot(self) -> None:
        """Loss (left axis, log scale) and evaluation ΔSI-SDR (right axis) against the step."""
        rows = self.rows()
        losses = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        evals = [(r["step"], r["eval"]) for r in rows if "eval" in r]
        if not losses and not evals:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.5))
        if losses:
            ax.plot(*zip(*losses), color="tab:blue", label="training loss (smoothed)")
            if min(loss for _, loss in losses) > 0:  # the SI-SDR term makes the loss negative: linear axis then
                ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss", color="tab:blue")
        if evals:
            right = ax.twinx()
            for name in evals[-1][1]:
                points = [(s, e[name]) for s, e in evals if name in e]
                right.plot(*zip(*points), marker="o", label=f"{name} ΔSI-SDR")
            right.set_ylabel("ΔSI-SDR [dB]")
            right.legend(loc="lower right")
        ax.legend(loc="upper right")
        ax.set_title(self.path.parent.name)
        fig.tight_layout()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.plot_path.name}.", suffix=".png", dir=self.plot_path.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=100)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.plot_path)
        finally:
            plt.close(fig)
            if os.path.exists(tmp):
                os.unlink(tmp)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
