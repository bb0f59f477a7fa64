"""The `tvmse` command: every subcommand reachable, one help style with every default shown, one error style."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from tvmse import cli


def _help(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in cli.COMMANDS)


def test_console_entry_runs_a_subcommand():
    r = subprocess.run([sys.executable, "-m", "tvmse.cli", "prune", "--help"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("usage: tvmse prune"), r.stderr


def test_unknown_command_is_one_error_line(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tvmse: error: unknown command 'frobnicate'") and "compile" in err


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_subcommand_help_is_the_module_help_and_shows_every_default(name, capsys):
    module = importlib.import_module(cli.COMMANDS[name][0])
    via_cli = _help(cli.main, [name, "--help"], capsys)
    via_module = _help(module.main, ["--help"], capsys)
    assert via_cli.startswith(f"usage: tvmse {name}") and via_module.startswith(f"usage: python -m tvmse.{name}")
    options = lambda text: " ".join(text.split("options:", 1)[1].split())  # usage wraps by the name's length
    assert options(via_cli) == options(via_module)
    parser = module.build_parser() if hasattr(module, "build_parser") else None
    for action in parser._actions if parser else []:  # argparse itself hides defaults of help-less options
        if action.option_strings and action.nargs != 0 and action.default != [] and not any(
                action.default is skip for skip in (None, False, argparse.SUPPRESS)):
            assert f"default: {action.default}" in " ".join(via_cli.split()), (name, action.dest)


def test_train_help_shows_the_float_steps_default(capsys):
    out = " ".join(_help(cli.main, ["train", "--help"], capsys).split())
    assert "--float-steps FLOAT_STEPS default: 2000" in out and "--seed SEED default: 0" in out


def test_train_and_evaluate_errors_carry_the_prefix(tmp_path, capsys):
    for argv in (["train", "--out", str(tmp_path / "run"), "--structure", "none", "--sparsity", "0.5"],
                 ["evaluate", str(tmp_path / "missing.onnx"), "--metrics", "si_sdr"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert [line for line in err.splitlines() if line.startswith("tvmse: error:")], err
