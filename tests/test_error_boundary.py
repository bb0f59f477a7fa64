"""The error boundary of every command: exit 2 for the user's errors, 3 (one line, log file) for bugs,
128 + signal for Ctrl-C / SIGTERM, with clean-up, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tvmse.errors import ConfigError, Interrupted, cli_entry, guarded


def test_user_error_is_one_line_exit_2(capsys):
    def body():
        raise ConfigError("unknown thing 'x'; valid: a, b")
    assert guarded(body) == 2
    assert capsys.readouterr().err == "tvmse: error: unknown thing 'x'; valid: a, b\n"


def test_bug_is_one_line_exit_3_with_the_traceback_in_a_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TVMSE_LOG_DIR", str(tmp_path))

    @cli_entry
    def main(argv):
        return {}["missing key"]
    assert main(["--some", "args"]) == 3
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("tvmse: internal error (a bug in tvmse, please report it): KeyError: 'missing key'")
    logs = list(tmp_path.glob("tvmse-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    text = logs[0].read_text()
    assert "Traceback" in text and "KeyError" in text and "--some args" in text


def test_interrupt_exits_130_quietly(capsys):
    def body():
        raise KeyboardInterrupt
    assert guarded(body) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_environment_oserror_is_a_user_error(capsys):
    def body():
        raise OSError(28, "No space left on device", "/some/file")
    assert guarded(body) == 2
    assert "tvmse: error: No space left on device: /some/file" in capsys.readouterr().err


def test_argparse_usage_errors_still_exit_2(capsys):
    from tvmse.compile import main
    with pytest.raises(SystemExit) as exc:
        main(["--target"])
    assert exc.value.code == 2


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_unwinds_cleanup_and_exits_quietly(tmp_path, signum, code):
    """The handler raises in the main thread, so ``finally`` blocks (staging removal) run."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from tvmse.errors import guarded
        def body():
            marker = Path({str(tmp_path)!r}) / "staging"
            marker.mkdir()
            try:
                print("ready", flush=True)
                time.sleep(60)
            finally:
                marker.rmdir()
        sys.exit(guarded(body))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "staging").exists()


def test_interrupted_is_a_keyboard_interrupt():
    """Handlers that save work on Ctrl-C (training's checkpoint) run on SIGTERM too."""
    assert isinstance(Interrupted(signal.SIGTERM), KeyboardInterrupt)


@pytest.mark.parametrize("module", ["tvmse.train", "tvmse.prune", "tvmse.evaluate", "tvmse.quantize"])
def test_training_side_commands_use_the_boundary(module, tmp_path):
    """A missing input is one ``tvmse: error:`` line with exit 2 in every command."""
    args = {"tvmse.train": ["--out", str(tmp_path / "run"), "--init", str(tmp_path / "none.pt"),
                            "--data", str(tmp_path / "none.json")],
            "tvmse.prune": [str(tmp_path / "none.pt"), "--structure", "unit", "--sparsity", "0.5"],
            "tvmse.evaluate": [str(tmp_path / "none.onnx"), "--data", str(tmp_path / "none.json")],
            "tvmse.quantize": [str(tmp_path / "none.onnx"), "--output", str(tmp_path / "q.onnx"),
                               "--calibration", str(tmp_path / "none.npz")]}[module]
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TVMSE_LOG_DIR": str(tmp_path / "logs")})
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("tvmse: error:"), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "logs").exists()
    assert time.monotonic() - started < 120
