"""Score a model on a fixed mixture set: SDR, SI-SDR, PESQ-WB, STOI of noisy input and enhanced output.

Usage::

    python -m tvmse.evaluate examples/tinylstm_int8.onnx --data ../shared/data/manifest.json
    python -m tvmse.evaluate runs/dense/float.pt          # a training checkpoint (fp32 or fake-quant)

An ``.onnx`` file (a QDQ TinyLSTM step) runs in onnxruntime one frame per call with the int8 state
carried (:class:`tvmse.onnx_runtime.StepRunner`), exactly as a device would; a ``.pt`` checkpoint
runs in torch (float, or fake-quant if it was saved quantized). Enhancement is
``istft(stft(noisy) · mask, len(noisy))``, aligned with the input (delay 0), so every metric sees
the rule of :mod:`tvmse.metrics` without a shift.

The mixture set is ``MixtureSet(corpus, split, n, seed)`` with full utterances: the same for every
model, so rows of a table are comparable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tvmse.cli import command_parser
from tvmse.data import Corpus, MixtureSet, apply_mask, default_corpus_manifest, features, istft, stft
from tvmse.errors import ConfigError, ModelFileError, run_command
from tvmse.metrics import METRICS, evaluate_pair, improvement, mean_scores

log = logging.getLogger("tvmse.evaluate")

DEFAULT_DATA = str(default_corpus_manifest())
DEFAULT_SPLIT, DEFAULT_N, DEFAULT_SEED = "dev", 100, 0

MaskFunction = Callable[[np.ndarray], np.ndarray]  # features [T, n_bins] → mask [T, n_bins]


def onnx_masks(path: str | os.PathLike) -> MaskFunction:
    """Mask function of an exported QDQ step run frame by frame in onnxruntime."""
    from tvmse.onnx_runtime import StepRunner

    return StepRunner(path).run


def torch_masks(path: str | os.PathLike) -> MaskFunction:
    """Mask function of a training checkpoint (fused float LSTM, or the fake-quant step)."""
    import torch

    from tvmse.train import fast_forward, load_model

    model = load_model(path).eval()

    def run(feats: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(feats, np.float32))[None]
        with torch.no_grad():
            mask = model(x)[0] if model.quantized else fast_forward(model, x)
        return mask[0].numpy()

    return run


def load_mask_function(path: str | os.PathLike) -> MaskFunction:
    if Path(path).is_dir():  # a compile output folder: its integer graph on the host reference
        from tvmse.enhance import compiled_masks
        return compiled_masks(path)
    suffix = Path(path).suffix
    if suffix == ".onnx":
        return onnx_masks(path)
    if suffix == ".pt":
        return torch_masks(path)
    raise ModelFileError(f"{path}: expected a QDQ .onnx step, a .pt training checkpoint or a compile output folder")


def enhance(mask_function: MaskFunction, noisy: np.ndarray) -> np.ndarray:
    """Enhanced signal, same length and alignment as ``noisy``."""
    spectrum = stft(noisy)
    masks = mask_function(features(spectrum))
    return istft(apply_mask(spectrum, masks), len(noisy))


def mixture_set(data: str, split: str = DEFAULT_SPLIT, n: int = DEFAULT_N, seed: int = DEFAULT_SEED) -> MixtureSet:
    return MixtureSet(Corpus.from_manifest(data), split, n=n, seed=seed)


def score_noisy(mixtures: Sequence, metrics: Sequence[str] = METRICS) -> list[dict[str, float]]:
    """Per-mixture scores of the unprocessed input (the same for every model: compute once)."""
    return [evaluate_pair(m.clean, m.noisy, metrics=metrics) for m in mixtures]


def score_enhanced(mask_function: MaskFunction, mixtures: Sequence,
                   metrics: Sequence[str] = METRICS) -> list[dict[str, float]]:
    scores = []
    started = time.monotonic()
    for i, m in enumerate(mixtures):
        scores.append(evaluate_pair(m.clean, enhance(mask_function, m.noisy), metrics=metrics))
        if (i + 1) % 20 == 0 or i + 1 == len(mixtures):
            log.info("scored %d/%d mixtures (%.0f s)", i + 1, len(mixtures), time.monotonic() - started)
    return scores


def summarize(noisy: list[dict[str, float]], enhanced: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Means over the set: {"noisy": …, "enhanced": …, "improvement": …}."""
    noisy_mean, enhanced_mean = mean_scores(noisy), mean_scores(enhanced)
    return {"noisy": noisy_mean, "enhanced": enhanced_mean,
            "improvement": improvement(noisy_mean, enhanced_mean)}


def format_summary(summary: dict[str, dict[str, float]]) -> str:
    lines = [f"{'metric':<8} {'noisy':>8} {'enhanced':>9} {'improvement':>12}"]
    for name in summary["enhanced"]:
        lines.append(f"{name:<8} {summary['noisy'][name]:8.3f} {summary['enhanced'][name]:9.3f} "
                     f"{summary['improvement'][name]:+12.3f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = command_parser("evaluate", __doc__)
    p.add_argument("model", help="QDQ ONNX step (.onnx), training checkpoint (.pt) or `tvmse compile` output folder")
    p.add_argument("--data", default=DEFAULT_DATA, help="corpus manifest.json")
    p.add_argument("--split", default=DEFAULT_SPLIT, help="corpus split the mixtures are drawn from")
    p.add_argument("--n", type=int, default=DEFAULT_N, help="number of mixtures")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="mixture set seed")
    p.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of " + ",".join(METRICS))
    p.add_argument("--json", help="also write the means here")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, _evaluate)


def _evaluate(args: argparse.Namespace) -> None:
    metrics = [m for m in args.metrics.split(",") if m]
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    mask_function = load_mask_function(args.model)
    mixtures = mixture_set(args.data, args.split, args.n, args.seed)
    log.info("%d mixtures of split %r, seed %d", len(mixtures), args.split, args.seed)
    summary = summarize(score_noisy(mixtures, metrics), score_enhanced(mask_function, mixtures, metrics))
    print(f"{args.model}: {len(mixtures)} mixtures of {args.data} split {args.split} seed {args.seed}")
    print(format_summary(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.exit(main())
