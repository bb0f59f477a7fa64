"""Kill a run at several instants, including inside the publish step: the old output or the new one is
in place (after a rename-aside fallback, the next run puts the old one back), and the next run leaves
no litter. SIGTERM and Ctrl-C end a compile quietly with its staging removed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tvmse.output_folder import MARKER, staged_output

# A child that publishes ``version`` into ``out`` and stops (prints the instant's name, sleeps) at one
# instant, for the parent to kill it there.
CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import tvmse.output_folder as of
    out, version, instant = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def stop(name):
        if name == instant:
            print(name, flush=True)
            time.sleep(60)

    real_exchange, real_rename, real_rmtree = of._exchange, os.rename, of.shutil.rmtree
    def exchange(a, b):
        if instant.startswith("aside"):
            return False          # a file system without renameat2(RENAME_EXCHANGE)
        done = real_exchange(a, b)
        stop("after-exchange")
        return done
    def rename(a, b):
        real_rename(a, b)
        if ".old-" in str(b):
            stop("aside-between-renames")
    def rmtree(path, *args, **kwargs):
        stop("removing-old")
        real_rmtree(path, *args, **kwargs)
    of._exchange, of.os.rename, of.shutil.rmtree = exchange, rename, rmtree

    with of.staged_output(out) as staging:
        for i in range(50):
            (staging / f"part{i}").write_text(version)
        stop("filling-staging")
        (staging / "version").write_text(version)
""")

INSTANTS = ["filling-staging", "after-exchange", "removing-old", "aside-between-renames"]


def _version(out: Path) -> str | None:
    """The complete output's version, or None when ``out`` is missing or incomplete."""
    if not (out / MARKER).is_file() or not (out / "version").is_file():
        return None
    version = (out / "version").read_text()
    assert all((out / f"part{i}").read_text() == version for i in range(50)), "a mixed output folder"
    return version


def _publish_in_child(out: Path, version: str, instant: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), version, instant], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == instant
    return proc


@pytest.mark.parametrize("instant", INSTANTS)
def test_sigkill_inside_publish_never_loses_both_outputs(tmp_path, instant):
    out = tmp_path / "out"
    with staged_output(out) as staging:
        for i in range(50):
            (staging / f"part{i}").write_text("old")
        (staging / "version").write_text("old")
    proc = _publish_in_child(out, "new", instant)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    found = _version(out)
    if instant == "aside-between-renames":   # only without an atomic exchange: the old output is set aside
        assert found is None
        aside = [p for p in tmp_path.iterdir() if ".old-" in p.name]
        assert len(aside) == 1 and _version(aside[0]) == "old"
    else:
        assert found in ("old", "new")
        assert found == ("old" if instant == "filling-staging" else "new")
    # the next run first restores or removes what the killed one left, then publishes
    with staged_output(out) as staging:
        assert _version(out) in ("old", "new")
        for i in range(50):
            (staging / f"part{i}").write_text("next")
        (staging / "version").write_text("next")
    assert _version(out) == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "litter after the next run"


def _compile(model: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tvmse.compile", str(model), "--output-dir", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_staging(proc: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(out.parent.glob(f".{out.name}.tmp-*")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no staging folder appeared"
        time.sleep(0.02)


@pytest.fixture
def earlier_output(small_onnx, tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text("{}\n")
    (out / "report.json").write_text('{"earlier": true}\n')
    return out


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_a_compile_quietly(small_onnx, earlier_output, signum, code):
    out = earlier_output
    proc = _compile(small_onnx, out)
    _wait_for_staging(proc, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert (out / "report.json").read_text() == '{"earlier": true}\n'
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"], "staging or lock left behind"


def _sigkill_then_rerun(small_onnx, out: Path, delay: float | None) -> None:
    proc = _compile(small_onnx, out)
    if delay is None:
        _wait_for_staging(proc, out)
    else:
        time.sleep(delay)
    proc.kill()
    proc.communicate()
    report = (out / "report.json").read_text()
    assert report == '{"earlier": true}\n' or '"npu"' in report, "neither the old output nor the new one"
    rerun = subprocess.run([sys.executable, "-m", "tvmse.compile", str(small_onnx), "--output-dir", str(out), "-q"],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"], "litter after the next run"


def test_sigkill_during_a_compile_then_rerun(small_onnx, earlier_output):
    _sigkill_then_rerun(small_onnx, earlier_output, None)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0])
def test_sigkill_at_many_instants_then_rerun(small_onnx, earlier_output, delay):
    _sigkill_then_rerun(small_onnx, earlier_output, delay)


def test_two_compiles_to_one_folder_cannot_both_claim_it(small_onnx, earlier_output):
    out = earlier_output
    first = _compile(small_onnx, out)
    _wait_for_staging(first, out)
    first.send_signal(signal.SIGSTOP)      # the first run holds the folder for as long as the second takes
    try:
        second = subprocess.run([sys.executable, "-m", "tvmse.compile", str(small_onnx), "--output-dir", str(out),
                                 "-q"], capture_output=True, text=True, timeout=600)
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and "being written by another tvmse run" in second.stderr
    assert "Traceback" not in second.stderr and '"npu"' in (out / "report.json").read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
