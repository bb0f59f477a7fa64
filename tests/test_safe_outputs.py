"""Output folders: options checked before any work, nothing of the user's replaced, atomic publish,
one run per folder, litter from killed runs cleaned (tvmse.output_folder, tvmse.compile)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tvmse.compile import default_output_dir, main
from tvmse.errors import OutputError
from tvmse.output_folder import MARKER, _Lock, check_output_dir, publish, staged_output


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tvmse: error:"), err
    return lines[0]


def _entries(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("args, phrase", [
    (["--verify-trials", "-5"], "--verify-trials -5: must be a whole number ≥ 1"),
    (["--verify-trials", "0"], "--verify-trials 0"),
    (["--run", "qemu"], "--run does not apply to --target ethos-u55"),
    (["--ram-budget", "1000"], "--ram-budget does not apply to --target ethos-u55"),
    (["--frames", "5"], "--frames does not apply to --target ethos-u55"),
    (["--target", "cortex-m55", "--memory-mode", "Sram_Only"], "--memory-mode does not apply to --target cortex-m55"),
    (["--target", "cortex-m55", "--verify-trials", "3"], "--verify-trials does not apply to --target cortex-m55"),
    (["--target", "cortex-m55", "--frames", "5"], "--frames applies only with --run qemu"),
    (["--target", "cortex-m55", "--run", "qemu", "--frames", "-1"], "--frames -1"),
    (["--target", "cortex-m55", "--run", "fvp"], "--run fvp cannot run"),
    (["--output-dir", "x" * 300], "too long for the file system"),
    (["--output-dir", "a/" + "b" * 256 + "/c"], "too long for the file system"),
])
def test_bad_options_fail_before_any_work(bundled_model, tmp_path, monkeypatch, capsys, args, phrase):
    monkeypatch.chdir(tmp_path)
    code = main([str(bundled_model), *args])
    assert code == 2
    assert phrase in _error_line(capsys)
    assert _entries(tmp_path) == set(), "nothing may be created"


@pytest.mark.parametrize("where", [".", "..", "model folder", "model folder parent"])
def test_folders_that_hold_the_cwd_or_the_model_are_refused_even_with_force(tmp_path, monkeypatch, capsys, where):
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    model = work / "models" / "m.onnx"
    model.write_bytes(b"model bytes")
    (work / "notes.txt").write_text("user's file")
    monkeypatch.chdir(work)
    out = {".": ".", "..": "..", "model folder": "models", "model folder parent": str(work)}[where]
    before = _entries(tmp_path)
    assert main([str(model), "--output-dir", out, "--force"]) == 2
    line = _error_line(capsys)
    assert ("current folder" in line) if where in (".", "..") or out == str(work) else ("holds the input model" in line)
    assert _entries(tmp_path) == before and model.read_bytes() == b"model bytes"


def test_foreign_folder_is_refused_unless_force(bundled_model, small_onnx, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    assert main([str(bundled_model), "--output-dir", str(out)]) == 2
    line = _error_line(capsys)
    assert "was not written by tvmse" in line and "--force" in line
    assert (out / "thesis.tex").read_text() == "months of work"
    assert main([str(small_onnx), "--output-dir", str(out), "--force", "-q"]) == 0
    assert (out / MARKER).is_file() and not (out / "thesis.tex").exists()
    marker = json.loads((out / MARKER).read_text())
    assert marker["model"] == str(small_onnx) and marker["written_by"].startswith("tvmse ")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results.")], "no staging, lock or old folder"
    # tvmse's own folder is replaced without --force; a failed run leaves it as it was
    first = (out / "report.json").read_bytes()
    assert main([str(tmp_path / "missing.onnx"), "--output-dir", str(out)]) == 2
    assert (out / "report.json").read_bytes() == first


def test_no_empty_parents_left_by_a_bad_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage" * 10)
    for args in ([str(junk)], [str(junk), "--output-dir", "a/b/c"], [str(junk), "--target", "cortex-m55"]):
        assert main(args) == 2
        capsys.readouterr()
    assert _entries(tmp_path) == {"junk.onnx"}


def test_default_names_tell_builds_apart():
    m = Path("models/net.onnx")
    names = {default_output_dir(m, ("ethos-u55-128", "Shared_Sram")),
             default_output_dir(m, ("ethos-u55-128", "Sram_Only")),
             default_output_dir(m, ("ethos-u55-256", "Shared_Sram")),
             default_output_dir(m, ("ethos-u55-128", "Shared_Sram"), ["tile_block_sparse"]),
             default_output_dir(m, ("ethos-u55-128", "Shared_Sram"), ["tile_block_sparse", "fold_dead_units"]),
             default_output_dir(m, ("cortex-m55",))}
    assert len(names) == 6
    assert default_output_dir(m, ("cortex-m55",), ["fold_dead_units"]) == Path("out/net-cortex-m55-no-fold_dead_units")


def test_a_second_run_to_a_locked_folder_fails_clearly(bundled_model, tmp_path, capsys):
    out = tmp_path / "out"
    lock = _Lock(out)
    lock.acquire()                      # as a run still writing ``out`` holds it
    try:
        code = main([str(bundled_model), "--output-dir", str(out), "-q"])
    finally:
        lock.release()
    assert code == 2
    assert f"being written by another tvmse run (pid {os.getpid()})" in _error_line(capsys)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_stale_staging_is_removed_and_an_aside_output_restored(tmp_path):
    out = tmp_path / "out"
    old = tmp_path / ".out.old-12345"      # a run killed between the two renames of a publish
    old.mkdir()
    (old / MARKER).write_text("{}")
    (old / "report.json").write_text("old")
    (tmp_path / ".out.tmp-abcdefgh").mkdir()
    (tmp_path / ".out.tmp-abcdefgh" / "half").write_text("x")
    (tmp_path / ".out.lock").write_text("999999\n")   # a lock file whose holder was killed
    with pytest.raises(RuntimeError):
        with staged_output(out):
            assert (out / "report.json").read_text() == "old"   # restored before the work starts
            raise RuntimeError("the build failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_output(out) as staging:
        (staging / "report.json").write_text("new")
    assert (out / "report.json").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("exchange", [True, False])
def test_publish_replaces_in_one_step(tmp_path, monkeypatch, exchange):
    if not exchange:  # a file system without renameat2(RENAME_EXCHANGE): rename aside, then into place
        monkeypatch.setattr("tvmse.output_folder._exchange", lambda a, b: False)
    out, staging = tmp_path / "out", tmp_path / ".out.tmp-1"
    out.mkdir()
    (out / "f").write_text("old")
    staging.mkdir()
    (staging / "f").write_text("new")
    publish(staging, out)
    assert (out / "f").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_rename_aside_restores_the_old_output_when_the_second_rename_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("tvmse.output_folder._exchange", lambda a, b: False)
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text("{}")
    (out / "f").write_text("old")
    real_rename = os.rename

    def failing_rename(src, dst):
        if Path(src).name.startswith(".out.tmp"):
            raise KeyboardInterrupt    # as a signal between the two renames would
        real_rename(src, dst)
    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(KeyboardInterrupt):
        with staged_output(out) as staging:
            (staging / "f").write_text("new")
    assert (out / "f").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_check_output_dir_has_no_side_effects(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_dir(target) == target
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output_dir(tmp_path / "file" / "sub")
    os.symlink(tmp_path, tmp_path / "link")
    with pytest.raises(OutputError, match="symbolic link"):
        check_output_dir(tmp_path / "link")


def test_fvp_never_replaces_earlier_results(small_onnx, tmp_path, capsys):
    out = tmp_path / "m55"
    out.mkdir()
    (out / MARKER).write_text("{}")
    (out / "report.json").write_text('{"earlier": "qemu results"}')
    snapshot = {p: p.read_bytes() for p in out.iterdir()}
    assert main([str(small_onnx), "--target", "cortex-m55", "--run", "fvp", "--output-dir", str(out)]) == 2
    assert "--run fvp cannot run" in _error_line(capsys)
    assert {p: p.read_bytes() for p in out.iterdir()} == snapshot


def test_api_refuses_a_non_positive_verification_count(bundled_model, tmp_path):
    """The report can only say "bit-exact" for trials that ran: none is not an option."""
    from tvmse.compile import compile_model
    from tvmse.errors import ConfigError
    for trials in (0, -5):
        with pytest.raises(ConfigError, match="must be a whole number"):
            compile_model(bundled_model, output_dir=tmp_path / "out", verify_trials=trials)
    assert list(tmp_path.iterdir()) == []
