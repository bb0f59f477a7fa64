"""Run corpus cases (in this process or each in its own) and judge the outcome by the rules:
no traceback, exit 2 with one ``tvmse: error:`` line (then one line per problem) for bad input,
exit 0 and a marked output folder only for valid input, nothing new left anywhere else."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.corpus import Case

MAX_LINE = 400


@dataclass
class Outcome:
    code: int
    stderr: str
    stdout: str
    verdict: str          # "ok" when every rule holds, else what broke

    @property
    def passed(self) -> bool:
        return self.verdict == "ok"


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_case(case: Case, folder: Path, in_process: bool = True, timeout: float = 600) -> Outcome:
    """Build ``case`` in the empty ``folder``, run the compiler there, judge the result."""
    log_dir = folder.parent / f"{folder.name}-logs"
    tmp_dir = folder.parent / f"{folder.name}-tmp"   # the run's own TMPDIR: what it leaves there is litter
    tmp_dir.mkdir()
    args = case.build(folder)
    before = _tree(folder)
    if in_process:
        code, out, err = _in_process(args, folder, log_dir, tmp_dir)
    else:
        env = {**os.environ, "TVMSE_LOG_DIR": str(log_dir), "TMPDIR": str(tmp_dir)}
        proc = subprocess.run([sys.executable, "-m", "tvmse.compile", *args], cwd=folder, capture_output=True,
                              text=True, timeout=timeout, env=env)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    verdict = judge(case, code, err, out, before, _tree(folder), folder)
    if verdict == "ok" and log_dir.exists():
        verdict = f"a crash log was written: {sorted(os.listdir(log_dir))}"
    if verdict == "ok" and any(tmp_dir.iterdir()):
        verdict = f"left in TMPDIR: {sorted(os.listdir(tmp_dir))[:5]}"
    return Outcome(code, err, out, verdict)


def _in_process(args: list[str], folder: Path, log_dir: Path, tmp_dir: Path) -> tuple[int, str, str]:
    from tvmse.compile import main
    out, err = io.StringIO(), io.StringIO()
    cwd, old_log, old_tmp = os.getcwd(), os.environ.get("TVMSE_LOG_DIR"), tempfile.tempdir
    os.environ["TVMSE_LOG_DIR"] = str(log_dir)
    tempfile.tempdir = str(tmp_dir)
    try:
        os.chdir(folder)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(cwd)
        tempfile.tempdir = old_tmp
        if old_log is None:
            os.environ.pop("TVMSE_LOG_DIR", None)
        else:
            os.environ["TVMSE_LOG_DIR"] = old_log
    return code, out.getvalue(), err.getvalue()


def judge(case: Case, code: int, err: str, out: str, before: set[str], after: set[str], folder: Path) -> str:
    if "Traceback" in err:
        return "traceback on stderr"
    long = [line for line in err.splitlines() if len(line) > MAX_LINE]
    if long:
        return f"a line of {len(long[0])} characters"
    if case.expect == "error":
        if code != 2:
            return f"exit {code}, expected 2"
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [i for i, line in enumerate(lines) if line.startswith("tvmse: error:")]
        if len(errors) != 1:
            return f"{len(errors)} 'tvmse: error:' lines"
        problem_lines = lines[errors[0] + 1:]
        if any(not line.startswith("  ") for line in problem_lines):
            return f"lines after the error that are not problem lines: {problem_lines[:3]}"
        if len(problem_lines) > case.max_problem_lines:
            return f"{len(problem_lines)} problem lines (at most {case.max_problem_lines}): a cascade?"
        missing = [p for p in case.phrases if p not in err]
        if missing:
            return f"message lacks {missing}"
        if after != before:
            return f"files changed: added {sorted(after - before)[:5]}, removed {sorted(before - after)[:5]}"
        return "ok"
    if code != 0:
        return f"exit {code}, expected 0: {err.strip().splitlines()[-1:] if err.strip() else ''}"
    printed = [line.split(" ", 1)[1].split("/ (", 1)[0] for line in out.splitlines() if line.startswith("output: ")]
    if len(printed) != 1:
        return "no 'output:' line"
    output = Path(os.path.relpath(folder / printed[0], folder))
    if not (folder / output / ".tvmse-output").is_file():
        return f"{output} has no .tvmse-output marker"
    stray = [p for p in after - before if not (Path(p) == output or output in Path(p).parents
                                               or Path(p) in output.parents)]
    hidden = [p for p in after if any(part.startswith(".") and (".tmp-" in part or ".old-" in part or
                                                                 part.endswith(".lock")) for part in Path(p).parts)]
    if stray or hidden:
        return f"left behind: {sorted(stray + hidden)[:5]}"
    return "ok"
