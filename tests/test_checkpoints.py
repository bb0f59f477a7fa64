"""Checkpoint loading: every broken checkpoint is one clear error, unfinished writes of killed runs are
removed, and a run killed with SIGKILL resumes to the same weights."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_train import SAMPLE, same_model, tiny_config  # noqa: E402
from tvmse import train  # noqa: E402
from tvmse.errors import ModelFileError  # noqa: E402
from tvmse.train import Trainer, load_model, remove_stale_temporaries  # noqa: E402

CONFIG = dict(float_steps=2, wqat_steps=0, qat_steps=0)


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("ckpt") / "run"
    Trainer(tiny_config(**CONFIG), out).run(stop_after=1)
    return (out / "checkpoint.pt").read_bytes()


def _spoil(kind: str, path: Path, real: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(real[:len(real) // 2])
    elif kind == "corrupt":
        path.write_bytes(bytes(range(256)) * 40)
    elif kind == "foreign":
        torch.save({"weights": [1, 2, 3]}, path)


@pytest.mark.parametrize("kind, phrase", [("directory", "is not a file"), ("empty", "is empty"),
                                          ("truncated", "damaged or truncated"), ("corrupt", "damaged or truncated"),
                                          ("foreign", "is not a tvmse training checkpoint")])
def test_broken_checkpoint_with_resume_is_a_clear_error(tmp_path, real_checkpoint, kind, phrase):
    path = tmp_path / "run" / "checkpoint.pt"
    _spoil(kind, path, real_checkpoint)
    with pytest.raises(ModelFileError, match=phrase):
        Trainer(tiny_config(**CONFIG), tmp_path / "run", resume=True)


@pytest.mark.parametrize("kind", ["directory", "truncated", "foreign"])
def test_broken_checkpoint_through_the_cli_and_load_model(tmp_path, real_checkpoint, capsys, kind):
    path = tmp_path / "run" / "checkpoint.pt"
    _spoil(kind, path, real_checkpoint)
    args = ["--data", SAMPLE, "--split", "dev", "--out", str(tmp_path / "run"), "--resume", "--hidden", "16",
            "--float-steps", "2", "--wqat-steps", "0", "--qat-steps", "0"]
    assert train.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and sum(line.startswith("tvmse: error:") for line in err.splitlines()) == 1
    assert str(path) in err
    with pytest.raises(ModelFileError):
        load_model(path)


def test_directory_named_checkpoint_is_not_silently_restarted(tmp_path):
    (tmp_path / "run" / "checkpoint.pt").mkdir(parents=True)
    with pytest.raises(Exception, match="checkpoint.pt"):
        Trainer(tiny_config(**CONFIG), tmp_path / "run")   # without --resume: refused as an existing checkpoint


def test_unfinished_writes_of_a_killed_run_are_removed(tmp_path, real_checkpoint):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(real_checkpoint)
    stale = [run / ".checkpoint.pt.k2j4_x9a", run / ".float.pt.abcdefgh", run / ".final.pt.00000000"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    keep = [run / ".notes", run / ".checkpoint.pt.backup-copy", run / "model.onnx"]
    for p in keep:
        p.write_text("the user's")
    trainer = Trainer(tiny_config(**CONFIG), run, resume=True)
    assert trainer.step == 1
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert remove_stale_temporaries(tmp_path / "nowhere") == []


@pytest.mark.slow
def test_sigkill_at_random_instants_resumes_bit_exact(tmp_path):
    """kill -9 the training command several times (mid-step or mid-write), resume each time: the final
    weights equal an uninterrupted run's, and no temporary file is left."""
    config = dict(float_steps=30, wqat_steps=20, qat_steps=4, structure="block", sparsity=0.5, block="4x8")
    whole = Trainer(tiny_config(**config), tmp_path / "whole").run()
    args = [sys.executable, "-m", "tvmse.train", "--data", SAMPLE, "--split", "dev", "--out", str(tmp_path / "run"),
            "--hidden", "16", "--batch-size", "4", "--seconds", "0.5", "--qat-batch-size", "2", "--qat-seconds", "0.3",
            "--calib-batches", "1", "--lr", "3e-3", "--prune-every", "2", "--checkpoint-every", "1",
            "--float-steps", "30", "--wqat-steps", "20", "--qat-steps", "4", "--structure", "block",
            "--sparsity", "0.5", "--block", "4x8", "--resume"]
    checkpoint, kills = tmp_path / "run" / "checkpoint.pt", 0
    for pause in (0.0, 0.05, 0.1, 0.2, 0.3):
        before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and (
                not checkpoint.exists() or checkpoint.stat().st_mtime_ns == before):
            time.sleep(0.01)
        time.sleep(pause)   # then somewhere in the next step or checkpoint write
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 5 and not (tmp_path / "run" / "final.pt").exists(), kills
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    same_model(whole, load_model(tmp_path / "run" / "final.pt"))
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]
