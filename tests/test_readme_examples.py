"""The README's tour of the `tvmse` command and its Python API run as written."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _section_blocks(language: str) -> list[str]:
    section = REPO.joinpath("README.md").read_text().split("## The `tvmse` command", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def _in_a_fresh_folder(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(REPO / "examples")
    (tmp_path / "tests").symlink_to(REPO / "tests")  # the float ONNX fixture of the quantize example
    monkeypatch.chdir(tmp_path)


def test_readme_command_tour(tmp_path, monkeypatch, capsys):
    from tvmse import cli
    _in_a_fresh_folder(tmp_path, monkeypatch)
    commands = [line for line in _section_blocks("bash")[0].splitlines() if line.startswith("tvmse ")]
    assert {c.split()[1] for c in commands} == set(cli.COMMANDS)  # every subcommand has an example
    for command in commands:
        assert cli.main(shlex.split(command)[1:]) == 0, command
    assert (tmp_path / "enhanced.wav").is_file() and (tmp_path / "runs/quick/unit25.onnx").is_file()
    assert (tmp_path / "out/dense-m55/enhanced.wav").is_file()   # the audio hop run on QEMU


def test_readme_python_api(tmp_path, monkeypatch, capsys):
    _in_a_fresh_folder(tmp_path, monkeypatch)
    (code,) = _section_blocks("python")
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "enhanced.wav").is_file() and (tmp_path / "runs/api/quick.onnx").is_file()
    assert os.path.isfile(tmp_path / "out/api-m55/report.md")
