"""The tuning database: an append-only JSONL file, one line per evaluated candidate.

Each line holds the identity of what was measured — model SHA-256, target (accelerator, system
config, memory mode), tool versions (tvmse, Vela, TVM) — the candidate's ``Decisions`` and Vela's
figures for it. Opening a database reads every line that matches this tune's identity; a line that
is not JSON, lacks a field or has the wrong types is skipped with one warning (counted), and so are
lines of other models, targets or tool versions (they stay in the file for their own tunes). A
line is appended (and flushed) as soon as its evaluation ends, so an interrupted tune resumes with
every finished evaluation.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tvmse.tuning import Decisions, TuningError

logger = logging.getLogger(__name__)

DB_FORMAT = "tvmse-tuning-db/1"
#: Lines of the same file that ``targets.cortex_m.metaschedule`` reads and checks (kernel evaluations).
KERNEL_DB_FORMAT = "tvmse-kernel-db/1"


class TuningDatabase:
    """Results of earlier evaluations for one (model, target, tools) identity, and the file to append to."""

    def __init__(self, path: str | os.PathLike | None, identity: dict):
        self.path = Path(path) if path is not None else None
        self.identity = identity
        self.results: dict[str, dict] = {}
        self.skipped_corrupt = 0
        self.skipped_foreign = 0
        if self.path is not None:
            self._load()
            self._check_writable()

    def _load(self) -> None:
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise TuningError(f"tuning database {self.path} is not a file; give --db a JSONL file path")
        try:
            text = self.path.read_text(errors="replace")
        except OSError as e:
            raise TuningError(f"tuning database {self.path} cannot be read: {e.strerror or e}") from None
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                self._read_line(number, line)
        if self.skipped_corrupt:
            logger.warning("tuning database %s: skipped %d corrupt line(s) (not a tvmse tuning record)",
                           self.path, self.skipped_corrupt)
        if self.skipped_foreign:
            logger.warning("tuning database %s: skipped %d line(s) of another model, target or tool version",
                           self.path, self.skipped_foreign)

    def _read_line(self, number: int, line: str) -> None:
        try:
            record = json.loads(line)
            if isinstance(record, dict) and record.get("format") == KERNEL_DB_FORMAT:
                return
            if not isinstance(record, dict) or record.get("format") != DB_FORMAT:
                raise ValueError("not a tuning record")
            identity = {k: record[k] for k in self.identity}
            decisions = Decisions.from_json(record["decisions"], f"line {number}")
            result = record["result"]
            if not isinstance(result, dict) or not ("error" in result or _valid_result(result)):
                raise ValueError("bad result")
        except (ValueError, KeyError, TypeError, TuningError) as e:
            logger.debug("tuning database %s line %d skipped: %s", self.path, number, e)
            self.skipped_corrupt += 1
            return
        if identity != self.identity:
            self.skipped_foreign += 1
            return
        self.results[decisions.key()] = result

    def _check_writable(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a"):
                pass
        except OSError as e:
            raise TuningError(f"tuning database {self.path} cannot be written: {e.strerror or e}; "
                              "choose a writable --db") from None

    def get(self, decisions: Decisions) -> dict | None:
        return self.results.get(decisions.key())

    def add(self, decisions: Decisions, result: dict, seconds: float) -> None:
        self.results[decisions.key()] = result
        if self.path is None:
            return
        line = json.dumps({"format": DB_FORMAT, **self.identity, "decisions": decisions.to_json(),
                           "result": result, "seconds": round(seconds, 3)}, sort_keys=True)
        with self.path.open("a") as f:  # one write per line: a crash leaves at most one partial line
            f.write(line + "\n")
            f.flush()


_RESULT_INTS = ("cycles", "npu_cycles", "sram_bytes", "arena_bytes", "boundary_bytes", "sram_weight_bytes",
                "flash_bytes")


#: a Cortex-M55 evaluation (tvmse.autotune_cpu): "cycles" is its cost, QEMU's instructions per frame
_CPU_RESULT_INTS = ("cycles", "instructions", "sram_bytes", "arena_bytes", "flash_bytes")


def _valid_result(result: dict) -> bool:
    return any(all(isinstance(result.get(k), int) and not isinstance(result.get(k), bool) and result[k] >= 0
                   for k in keys) for keys in (_RESULT_INTS, _CPU_RESULT_INTS))
