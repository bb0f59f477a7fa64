"""Tests for tvmse.metrics against analytic values and an independent least-squares BSS-eval SDR."""

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tvmse import metrics  # noqa: E402
from tvmse.data import (  # noqa: E402
    HOP, STREAM_DELAY, MixtureSet, StreamingISTFT, StreamingSTFT, bundled_sample_corpus, istft, n_frames, stft,
)


@pytest.fixture(scope="module")
def mixture():
    return MixtureSet(bundled_sample_corpus(), "dev", n=1, seed=0)[0]


def reference_sdr(reference, estimate, taps=512):
    """mir_eval-style single-source SDR: least-squares projection on a full-convolution matrix of the reference."""
    padded_ref = np.concatenate([reference, np.zeros(taps - 1)])
    conv = scipy.linalg.toeplitz(padded_ref, np.zeros(taps))  # (n + taps - 1) x taps, column k = ref delayed by k
    target = np.concatenate([estimate, np.zeros(taps - 1)])
    coef, *_ = np.linalg.lstsq(conv, target, rcond=None)
    projection = conv @ coef
    return 10 * np.log10(np.sum(projection ** 2) / np.sum((target - projection) ** 2))


def test_si_sdr_matches_the_analytic_value():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000)
    x -= x.mean()
    n = rng.standard_normal(8000)
    n -= n.mean()
    n -= x * np.dot(n, x) / np.dot(x, x)  # orthogonal to x: the residual is exactly a * n
    for a in (0.1, 0.5, 2.0):
        expected = 10 * np.log10(np.dot(x, x) / (a ** 2 * np.dot(n, n)))
        assert metrics.si_sdr(x, x + a * n) == pytest.approx(expected, abs=1e-9)
        assert metrics.si_sdr(x, 3.7 * (x + a * n) + 0.2) == pytest.approx(expected, abs=1e-9)  # scale, offset


def test_sdr_matches_an_independent_least_squares_projection():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal(4000)
    filtered = scipy.signal.lfilter([1.0, 0.5, -0.2], [1.0], reference)
    for noise_gain in (0.05, 0.3, 1.0):
        estimate = filtered + noise_gain * rng.standard_normal(4000)
        assert metrics.sdr(reference, estimate) == pytest.approx(reference_sdr(reference, estimate), abs=1e-4)


def test_sdr_forgives_short_filters_but_si_sdr_does_not():
    rng = np.random.default_rng(2)
    reference = np.concatenate([rng.standard_normal(6000), np.zeros(600)])  # trailing silence: no truncated tail
    estimate = scipy.signal.lfilter(rng.standard_normal(64), [1.0], reference)
    assert metrics.sdr(reference, estimate) > 80.0
    assert metrics.si_sdr(reference, estimate) < 10.0


def test_pesq_and_stoi_known_values(mixture):
    clean, noisy = mixture.clean, mixture.noisy
    assert metrics.pesq(clean, clean) == pytest.approx(4.64, abs=0.01)
    assert metrics.pesq(clean, noisy) < 4.0
    assert metrics.stoi(clean, clean) == pytest.approx(1.0, abs=1e-6)
    assert metrics.stoi(clean, noisy) < metrics.stoi(clean, clean)


def test_evaluate_pair_and_improvement(mixture):
    clean, noisy = mixture.clean, mixture.noisy
    noisy_scores = metrics.evaluate_pair(clean, noisy)
    assert set(noisy_scores) == set(metrics.METRICS)
    assert noisy_scores["si_sdr"] == pytest.approx(mixture.snr_db, abs=1.0)  # noise nearly orthogonal to speech
    better = clean + 0.3 * (noisy - clean)
    enhanced_scores = metrics.evaluate_pair(clean, better)
    gain = metrics.improvement(noisy_scores, enhanced_scores)
    assert gain["si_sdr"] > 5.0 and gain["sdr"] > 5.0 and gain["pesq"] > 0 and gain["stoi"] > 0
    assert metrics.improvement({"sdr": 1.0, "stoi": 0.5}, {"sdr": 4.0}) == {"sdr": 3.0}
    with pytest.raises(ValueError, match="no metric in common"):
        metrics.improvement({"sdr": 1.0}, {"pesq": 2.0})
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.evaluate_pair(clean, noisy, metrics=("snr",))


def test_streamed_output_scores_like_the_whole_signal_output_with_the_stream_delay(mixture):
    """The alignment rule: StreamingISTFT output needs delay=STREAM_DELAY, istft output needs none."""
    noisy, clean = mixture.noisy, mixture.clean
    spectra = stft(noisy)
    whole = istft(spectra, len(noisy))
    analysis, synthesis = StreamingSTFT(), StreamingISTFT()
    padded = np.zeros(n_frames(len(noisy)) * HOP, np.float32)
    padded[:len(noisy)] = noisy
    streamed = np.concatenate([synthesis.push(analysis.push(padded[k:k + HOP])) for k in range(0, len(padded), HOP)])
    chosen = ("sdr", "si_sdr")
    aligned = metrics.evaluate_pair(clean, streamed, delay=STREAM_DELAY, metrics=chosen)
    assert aligned == metrics.evaluate_pair(clean, whole, metrics=chosen)
    assert metrics.si_sdr(*metrics.align(clean, streamed, delay=0)) < aligned["si_sdr"] - 10.0


def test_align_rules():
    ref = np.arange(1000.0)
    r, e = metrics.align(ref, np.concatenate([np.zeros(7), ref, np.zeros(50)]), delay=7)
    assert np.array_equal(r, e)
    r, e = metrics.align(ref, ref[:1000 - HOP])  # an unflushed last hop is tolerated
    assert len(r) == len(e) == 1000 - HOP
    with pytest.raises(ValueError, match="unscored"):
        metrics.align(ref, ref[:500])
    with pytest.raises(ValueError, match="delay must be >= 0"):
        metrics.align(ref, ref, delay=-1)
    with pytest.raises(ValueError, match="mono 1-D"):
        metrics.align(ref[None], ref)


def test_degenerate_inputs():
    x = np.random.default_rng(3).standard_normal(16000)
    assert np.isnan(metrics.sdr(x, np.zeros_like(x)))
    with pytest.raises(ValueError, match="silent"):
        metrics.si_sdr(np.zeros_like(x), x)
    assert np.isnan(metrics.pesq(np.zeros(16000), np.zeros(16000)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        metrics.stoi(x, np.full_like(x, np.nan))
    assert metrics.mean_scores([{"pesq": 2.0}, {"pesq": float("nan")}, {"pesq": 3.0}]) == {"pesq": 2.5}
