"""Evaluation: the enhancement pipeline, the metrics it reports, and the command line."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_models import tiny_model  # noqa: E402
from tvmse import evaluate, metrics  # noqa: E402
from tvmse.data import MixtureSet, bundled_sample_corpus, stft  # noqa: E402
from tvmse.models.export import export_qdq_onnx  # noqa: E402
from tvmse.train import atomic_save, model_state  # noqa: E402

SAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "audio" / "manifest.json")


@pytest.fixture(scope="module")
def mixtures():
    return MixtureSet(bundled_sample_corpus(), "dev", n=2, seed=0)


def test_unit_mask_returns_the_input_and_improves_nothing(mixtures):
    m = mixtures[0]
    out = evaluate.enhance(lambda f: np.ones_like(f), m.noisy)
    np.testing.assert_allclose(out, m.noisy, atol=1e-5)
    summary = evaluate.summarize(evaluate.score_noisy(mixtures, ["si_sdr"]),
                                 evaluate.score_enhanced(lambda f: np.ones_like(f), mixtures, ["si_sdr"]))
    assert abs(summary["improvement"]["si_sdr"]) < 1e-3


def test_an_ideal_ratio_mask_improves_every_metric(mixtures):
    """Reference: the oracle mask |S|/|Y| (clipped to 1) must beat the noisy input on all four metrics."""
    scores_noisy, scores_oracle = [], []
    for m in mixtures:
        oracle = np.clip(np.abs(stft(m.clean)) / (np.abs(stft(m.noisy)) + 1e-8), 0, 1)
        enhanced = evaluate.enhance(lambda f, o=oracle: o, m.noisy)
        scores_noisy.append(metrics.evaluate_pair(m.clean, m.noisy))
        scores_oracle.append(metrics.evaluate_pair(m.clean, enhanced))
    summary = evaluate.summarize(scores_noisy, scores_oracle)
    assert all(v > 0 for v in summary["improvement"].values()), summary


def test_summary_means_match_the_metrics_module(mixtures):
    noisy = evaluate.score_noisy(mixtures, ["sdr", "si_sdr"])
    expected = np.mean([metrics.si_sdr(m.clean, m.noisy) for m in mixtures])
    assert evaluate.summarize(noisy, noisy)["noisy"]["si_sdr"] == pytest.approx(expected)
    assert all(m.snr_db == pytest.approx(metrics.si_sdr(m.clean, m.noisy), abs=0.5) for m in mixtures)


def test_onnx_and_checkpoint_give_the_same_enhancement(tmp_path, mixtures):
    model = tiny_model(hidden=16, structure="block", sparsity=0.5)
    onnx_path = export_qdq_onnx(model, tmp_path / "m.onnx")
    atomic_save(model_state(model), tmp_path / "m.pt")
    noisy = mixtures[0].noisy[:16000]
    a = evaluate.enhance(evaluate.load_mask_function(onnx_path), noisy)
    b = evaluate.enhance(evaluate.load_mask_function(tmp_path / "m.pt"), noisy)
    np.testing.assert_array_equal(a, b)


def test_cli_prints_noisy_enhanced_and_improvement(tmp_path, capsys):
    path = export_qdq_onnx(tiny_model(hidden=8), tmp_path / "m.onnx")
    code = evaluate.main([str(path), "--data", SAMPLE, "--n", "1", "--metrics", "si_sdr,stoi",
                          "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "noisy" in out and "enhanced" in out and "improvement" in out and "si_sdr" in out
    assert (tmp_path / "s.json").is_file()


def test_cli_errors_exit_non_zero_without_traceback(tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "none.onnx"), "--data", SAMPLE]) == 2
    assert evaluate.main([str(tmp_path / "m.txt"), "--data", SAMPLE]) == 2
    assert evaluate.main([str(tmp_path / "none.onnx"), "--data", SAMPLE, "--metrics", "snr"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 3


def test_report_breaks_down_by_noise_type_and_speaker_and_counts_worse(mixtures):
    """A mask that halves everything leaves SI-SDR unchanged; one that zeroes high bins makes mixtures worse."""
    noisy = evaluate.score_noisy(mixtures, ["sdr", "si_sdr"])
    low_pass = evaluate.score_enhanced(lambda f: (np.arange(f.shape[1]) < 20) * np.ones_like(f), mixtures,
                                       ["sdr", "si_sdr"], quiet=True)
    result = evaluate.report(mixtures, noisy, low_pass)
    assert result["worse"] == sum(e["si_sdr"] < n["si_sdr"] for n, e in zip(noisy, low_pass)) > 0
    assert sum(row["n"] for row in result["by_noise"].values()) == len(mixtures)
    assert set(result["by_noise"]) == {m.noise_source.split(".")[0] for m in mixtures}
    assert set(result["by_source"]) == {m.speech_file.split("_")[0] for m in mixtures}
    assert evaluate.count_worse(noisy, noisy) == 0 and evaluate.count_worse(noisy, noisy, "pesq") is None


def test_cli_scores_dev_and_dev_unseen_by_default(tmp_path, capsys):
    path = export_qdq_onnx(tiny_model(hidden=8), tmp_path / "m.onnx")
    assert evaluate.main([str(path), "--data", SAMPLE, "--n", "1", "--metrics", "si_sdr", "-q",
                          "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "split dev seed" in out and "split dev_unseen seed" in out and "noise type" in out
    saved = json.loads((tmp_path / "s.json").read_text())
    assert set(saved) == {"dev", "dev_unseen"} and set(saved["dev_unseen"]["by_noise"]) == {"running_tap"}
