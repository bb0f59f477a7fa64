"""Training: the fused float path equals the streaming step, loss goes down, resume is exact."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_models import random_features, tiny_model  # noqa: E402
from tvmse import train  # noqa: E402
from tvmse.errors import ConfigError  # noqa: E402
from tvmse.train import TrainConfig, Trainer, fast_forward, load_model, sisdr_loss, spectral_loss  # noqa: E402

SAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "audio" / "manifest.json")


def tiny_config(**overrides) -> TrainConfig:
    base = dict(data=SAMPLE, split="dev", hidden=16, batch_size=4, seconds=0.5, qat_batch_size=2,
                qat_seconds=0.3, calib_batches=1, float_steps=6, wqat_steps=6, qat_steps=2, lr=3e-3,
                prune_every=2)
    base.update(overrides)
    return TrainConfig(**base)


def same_model(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert a.weight_masks.keys() == b.weight_masks.keys() and a.bias_masks.keys() == b.bias_masks.keys()
    for k in a.weight_masks:
        assert torch.equal(a.weight_masks[k], b.weight_masks[k]), k
    assert a.quantized == b.quantized


def test_fused_float_path_equals_the_streaming_step():
    model = tiny_model(hidden=16, structure="unit", sparsity=0.25, quantized=False)
    x = random_features(2, 25, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(fast_forward(model, x), model(x)[0], rtol=0, atol=1e-6)


def test_a_tiny_run_lowers_the_loss(tmp_path):
    config = tiny_config(float_steps=40, wqat_steps=0, qat_steps=0, batch_size=4)
    trainer = Trainer(config, tmp_path / "run")
    probe = trainer.batches.batch(1_000_000)  # a batch the run never trains on
    with torch.no_grad():
        before = float(spectral_loss(fast_forward(trainer.model, probe.features), probe))
    trainer.run()
    with torch.no_grad():
        after = float(spectral_loss(fast_forward(trainer.model, probe.features), probe))
    assert after < 0.9 * before
    assert (tmp_path / "run" / "float.pt").is_file() and (tmp_path / "run" / "final.pt").is_file()
    assert load_model(tmp_path / "run" / "final.pt").quantized


@pytest.mark.parametrize("structure,stop", [("none", 5), ("block", 8), ("unit", 13)])
def test_resume_after_interruption_gives_the_same_model(tmp_path, structure, stop):
    """Stop points fall in the float, wqat (mid-pruning) and qat (after calibration) phases."""
    sparsity = 0.0 if structure == "none" else 0.5
    config = tiny_config(structure=structure, sparsity=sparsity, block="4x8", qat_steps=4)
    whole = Trainer(config, tmp_path / "whole").run()
    Trainer(config, tmp_path / "parts").run(stop_after=stop)
    resumed = Trainer(config, tmp_path / "parts", resume=True)
    assert resumed.step == stop
    same_model(whole, resumed.run())


def test_ctrl_c_writes_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch):
    config = tiny_config(structure="weight", sparsity=0.6)
    whole = Trainer(config, tmp_path / "whole").run()
    trainer = Trainer(config, tmp_path / "parts")
    original = Trainer.train_step

    def interrupted(self, batch):
        if self.step == 7:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = Trainer(config, tmp_path / "parts", resume=True)
    assert resumed.step == 7
    same_model(whole, resumed.run())
    assert not list((tmp_path / "parts").glob(".*")), "a temporary checkpoint file was left behind"


def test_resume_refuses_changed_options_and_overwrite(tmp_path):
    config = tiny_config(float_steps=2, wqat_steps=0, qat_steps=0)
    Trainer(config, tmp_path / "run").run(stop_after=1)
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(config, tmp_path / "run")
    with pytest.raises(ConfigError, match="options differ"):
        Trainer(tiny_config(float_steps=2, wqat_steps=0, qat_steps=0, lr=0.1), tmp_path / "run", resume=True)


def test_seed_makes_runs_deterministic(tmp_path):
    config = tiny_config(float_steps=3, wqat_steps=2, qat_steps=1)
    same_model(Trainer(config, tmp_path / "a").run(), Trainer(config, tmp_path / "b").run())


def test_cli_trains_exports_and_reports_errors_without_traceback(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--data", SAMPLE, "--split", "dev", "--out", str(out), "--hidden", "8", "--batch-size", "2",
            "--seconds", "0.3", "--float-steps", "2", "--wqat-steps", "2", "--qat-steps", "1",
            "--qat-batch-size", "1", "--qat-seconds", "0.2", "--calib-batches", "1",
            "--structure", "unit", "--sparsity", "0.5", "--export", str(out / "m.onnx")]
    assert train.main(args) == 0
    assert (out / "m.onnx").is_file()
    assert train.main(args) == 2  # the checkpoint exists and --resume was not given
    assert "--resume" in capsys.readouterr().err
    assert train.main(["--out", str(tmp_path / "x"), "--data", str(tmp_path / "missing.json")]) == 2


def test_worker_processes_and_evaluation_leave_the_result_unchanged(tmp_path):
    """Mixing in 2 processes and evaluating every 3 steps train exactly the model of the plain run."""
    config = tiny_config(float_steps=4, wqat_steps=3, qat_steps=1)
    plain = Trainer(config, tmp_path / "plain").run()
    busy = Trainer(config, tmp_path / "busy", workers=2)
    busy.eval_every, busy.eval_mixtures, busy.log_every = 3, 2, 2
    same_model(plain, busy.run())
    rows = [json.loads(line) for line in (tmp_path / "busy" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6, 8]
    evals = [r for r in rows if "eval" in r]
    assert [r["step"] for r in evals] == [3, 6, 8] and set(evals[0]["eval"]) == {"dev", "dev_unseen"}
    assert (tmp_path / "busy" / "training.png").read_bytes()[:4] == b"\x89PNG"


def test_resumed_log_reads_as_one_run(tmp_path):
    config = tiny_config(float_steps=6, wqat_steps=0, qat_steps=0)
    trainer = Trainer(config, tmp_path / "run")
    trainer.log_every = 1
    trainer.run(stop_after=4)
    with open(tmp_path / "run" / "train_log.jsonl", "a") as f:  # a row written after the last checkpoint
        f.write(json.dumps({"step": 5, "loss": 1.0}) + "\n")
    resumed = Trainer(config, tmp_path / "run", resume=True)
    resumed.log_every = 1
    resumed.run()
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_complex_loss_term_is_zero_for_a_perfect_estimate_and_charges_phase_errors():
    from tvmse.data.batches import batch_from_waveforms

    rng = np.random.default_rng(0)
    clean = rng.standard_normal((2, 4000)).astype(np.float32) * 0.1
    noise = rng.standard_normal((2, 4000)).astype(np.float32) * 0.1
    same = batch_from_waveforms(clean, clean)
    ones = torch.ones_like(same.features)
    assert float(spectral_loss(ones, same, 0.5)) < 1e-6
    noisy = batch_from_waveforms(clean + noise, clean)
    oracle = (noisy.clean_magnitude / noisy.noisy_spectrum.abs().clamp_min(1e-8)).clamp(max=1.0)
    magnitude_only, with_phase = (float(spectral_loss(oracle, noisy, w)) for w in (0.0, 0.5))
    assert with_phase > magnitude_only  # right magnitudes, noisy phase: only the complex term sees it
    with pytest.raises(ConfigError, match="complex-loss-weight"):
        tiny_config(complex_loss_weight=1.5).validate()


def test_torch_istft_inverts_the_training_stft_and_matches_the_numpy_framing():
    from tvmse.data import istft, stft
    from tvmse.data.batches import torch_istft, torch_stft

    x = np.random.default_rng(1).standard_normal((3, 5000)).astype(np.float32)
    y = torch_istft(torch_stft(torch.from_numpy(x))).numpy()
    assert y.shape[1] >= x.shape[1]
    np.testing.assert_allclose(y[:, :5000], x, atol=2e-5)
    np.testing.assert_allclose(y[0, :5000], istft(stft(x[0]), 5000), atol=2e-5)


def test_sisdr_loss_is_the_negative_scaled_si_sdr_and_rewards_a_better_mask():
    from tvmse.data.batches import batch_from_waveforms
    from tvmse.metrics import si_sdr

    rng = np.random.default_rng(0)
    clean = rng.standard_normal((2, 4000)).astype(np.float32) * 0.1
    noise = rng.standard_normal((2, 4000)).astype(np.float32) * 0.1
    noisy = batch_from_waveforms(clean + noise, clean)
    ones = torch.ones_like(noisy.features)
    expected = np.mean([si_sdr(clean[i], clean[i] + noise[i]) for i in range(2)])
    assert float(sisdr_loss(ones, noisy)) == pytest.approx(-train.SISDR_LOSS_SCALE * expected, abs=2e-3)
    oracle = (noisy.clean_magnitude / noisy.noisy_spectrum.abs().clamp_min(1e-8)).clamp(max=1.0)
    assert float(sisdr_loss(oracle, noisy)) < float(sisdr_loss(ones, noisy)) - 0.02  # > 2 dB better
    mask = torch.full_like(noisy.features, 0.5, requires_grad=True)
    sisdr_loss(mask, noisy).backward()
    assert torch.isfinite(mask.grad).all() and mask.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="sisdr-loss-weight"):
        tiny_config(sisdr_loss_weight=-0.1).validate()


def test_a_tiny_run_with_the_sisdr_loss_raises_si_sdr(tmp_path):
    config = tiny_config(float_steps=40, wqat_steps=0, qat_steps=0, sisdr_loss_weight=1.0, augment=False)
    trainer = Trainer(config, tmp_path / "run")
    probe = trainer.batches.batch(1_000_000)
    with torch.no_grad():
        before = float(sisdr_loss(fast_forward(trainer.model, probe.features), probe))
    trainer.run()
    with torch.no_grad():
        after = float(sisdr_loss(fast_forward(trainer.model, probe.features), probe))
    assert after < before - 0.005  # SI-SDR up by more than 0.5 dB on a batch it never trained on
