"""Speech quality metrics with one definition everywhere: SDR, SI-SDR, PESQ-WB and STOI at 16 kHz.

* ``sdr``: BSS-eval SDR of a single source, as in the reference study: the estimate is projected onto the
  reference filtered by any 512-tap FIR filter (least squares), SDR = 10*log10(|projection|^2 / |rest|^2).
  Computed by ``fast_bss_eval.sdr`` (filter_length=512, exact solve, no zero-mean) over the whole signal; for one
  source this equals mir_eval's ``bss_eval_sources`` SDR (tests check it against a direct least-squares
  projection). museval's BSS-eval v4 would instead take the median over 1-s windows; we score whole utterances.
* ``si_sdr``: scale-invariant SDR (Le Roux et al. 2019) of zero-mean signals: the target is the reference scaled
  by the least-squares gain, SI-SDR = 10*log10(|target|^2 / |estimate - target|^2).
* ``pesq``: ITU-T P.862.2 wide-band PESQ (MOS-LQO, about 1.04..4.64) from the ``pesq`` package.
* ``stoi``: short-time objective intelligibility (Taal et al. 2011, 0..1) from ``pystoi``, not the extended one.

Alignment rule: every metric compares sample ``n`` of the clean reference with sample ``n + delay`` of the
estimate. ``tvmse.data.istft`` output is already aligned (``delay=0``). The concatenated output of
``tvmse.data.StreamingISTFT`` lags the input by ``STREAM_DELAY`` (one hop, 256 samples): pass
``delay=STREAM_DELAY``. After the shift both signals are cut to their common length; the estimate may be any
amount longer, but if that would drop more than one hop (256 samples) of the reference, :func:`align` raises,
because the streamed run was not flushed or the delay is wrong and the score would silently cover less speech.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping, Sequence

import numpy as np

from tvmse.data.framing import HOP, SAMPLE_RATE

log = logging.getLogger(__name__)

METRICS = ("sdr", "si_sdr", "pesq", "stoi")
SDR_FILTER_LENGTH = 512
MAX_REFERENCE_TRIM = HOP  # samples of the reference an alignment may drop (a streamed run's unflushed last hop)


def _as_signal(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a mono 1-D signal, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return x.astype(np.float64)


def align(reference: np.ndarray, estimate: np.ndarray, delay: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Apply the alignment rule: drop ``delay`` leading estimate samples, cut both to the common length."""
    reference, estimate = _as_signal(reference, "reference"), _as_signal(estimate, "estimate")
    if delay < 0:
        raise ValueError(f"delay must be >= 0 samples (the estimate lags the reference), got {delay}")
    estimate = estimate[delay:]
    length = min(len(reference), len(estimate))
    if len(reference) - length > MAX_REFERENCE_TRIM:
        raise ValueError(f"estimate has {len(estimate)} samples after removing a delay of {delay}, but the "
                         f"reference has {len(reference)}: more than {MAX_REFERENCE_TRIM} reference samples "
                         f"would go unscored; flush the stream with trailing zeros or check the delay")
    return reference[:length], estimate[:length]


def _require_energy(x: np.ndarray, name: str) -> None:
    if not np.any(x):
        raise ValueError(f"{name} is silent (all zeros); the metric is undefined")


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """BSS-eval SDR in dB with a 512-tap distortion filter; NaN (logged) for a silent estimate, inf if exact."""
    import fast_bss_eval  # deferred: it imports torch, which the other metrics do not need

    reference, estimate = _as_signal(reference, "reference"), _as_signal(estimate, "estimate")
    _require_energy(reference, "reference")
    if not np.any(estimate):
        log.warning("SDR of a silent estimate is undefined; returning NaN")
        return float("nan")
    # sdr_loss (= -SDR) skips fast_bss_eval.sdr's source-permutation search, which is pointless for one source
    # and fails on an exact match; an exact match (up to a 512-tap filter) is +inf dB.
    with np.errstate(divide="ignore"):
        negative = fast_bss_eval.sdr_loss(estimate[np.newaxis], reference[np.newaxis], filter_length=SDR_FILTER_LENGTH,
                                          use_cg_iter=None, zero_mean=False, pairwise=True)
    return float(-negative[0, 0])  # pairwise matrix [ref, est] of one source


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB of the zero-mean signals."""
    reference, estimate = _as_signal(reference, "reference"), _as_signal(estimate, "estimate")
    reference, estimate = reference - reference.mean(), estimate - estimate.mean()
    _require_energy(reference, "reference")
    target = reference * (np.dot(estimate, reference) / np.dot(reference, reference))
    residual = estimate - target
    return float(10.0 * np.log10(np.dot(target, target) / np.dot(residual, residual)))


def pesq(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Wide-band PESQ (MOS-LQO); NaN (logged) when PESQ finds no speech or the signal is too short."""
    from pesq import PesqError
    from pesq import pesq as pesq_score

    reference, estimate = _as_signal(reference, "reference"), _as_signal(estimate, "estimate")
    if not (np.any(reference) and np.any(estimate)):
        log.warning("PESQ of a silent signal is undefined; returning NaN")
        return float("nan")
    try:
        return float(pesq_score(SAMPLE_RATE, reference, estimate, "wb"))
    except PesqError as err:
        log.warning("PESQ failed (%s: %s); returning NaN", type(err).__name__, err)
        return float("nan")


def stoi(reference: np.ndarray, estimate: np.ndarray) -> float:
    """STOI (0..1) at 16 kHz (pystoi resamples internally to its 10 kHz analysis rate)."""
    from pystoi import stoi as stoi_score

    reference, estimate = _as_signal(reference, "reference"), _as_signal(estimate, "estimate")
    return float(stoi_score(reference, estimate, SAMPLE_RATE, extended=False))


_FUNCTIONS = {"sdr": sdr, "si_sdr": si_sdr, "pesq": pesq, "stoi": stoi}


def evaluate_pair(clean: np.ndarray, estimate: np.ndarray, delay: int = 0,
                  metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Scores of ``estimate`` against ``clean`` after :func:`align` (see the module's alignment rule)."""
    unknown = [m for m in metrics if m not in _FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {METRICS}")
    clean, estimate = align(clean, estimate, delay)
    return {name: _FUNCTIONS[name](clean, estimate) for name in metrics}


def improvement(noisy_scores: Mapping[str, float], enhanced_scores: Mapping[str, float]) -> dict[str, float]:
    """Enhanced minus noisy for every metric both dicts hold (dB for SDR/SI-SDR, MOS for PESQ, 0..1 for STOI)."""
    shared = [name for name in enhanced_scores if name in noisy_scores]
    if not shared:
        raise ValueError(f"no metric in common: noisy has {sorted(noisy_scores)}, enhanced has "
                         f"{sorted(enhanced_scores)}")
    return {name: float(enhanced_scores[name]) - float(noisy_scores[name]) for name in shared}


def mean_scores(scores: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per-metric mean over a set of pairs, ignoring NaN entries (failed PESQ, silent estimate)."""
    scores = list(scores)
    if not scores:
        raise ValueError("mean_scores needs at least one score dict")
    names = [name for name in scores[0] if all(name in s for s in scores)]
    return {name: float(np.nanmean([s[name] for s in scores])) for name in names}
