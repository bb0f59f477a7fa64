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
model, so rows of a table are comparable. By default both sets of the generalization protocol are scored:
``dev`` (dev speakers, all 16 noise types) and ``dev_unseen`` (dev speakers, the noise types no training run
sees; :mod:`tvmse.data.corpus`). For each set it prints the means, then ΔSDR / ΔSI-SDR per noise type and per
speech source (speaker: the file name up to its first ``_``), and how many mixtures came out worse than the
noisy input (lower SI-SDR). A progress bar with ETA runs on a terminal (plain lines otherwise, none with
``-q``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from tvmse.cli import command_parser
from tvmse.data import (UNSEEN_SPLIT, Corpus, MixtureSet, apply_mask, default_corpus_manifest, features, istft,
                        noise_type, stft)
from tvmse.errors import ConfigError, ModelFileError, run_command
from tvmse.metrics import METRICS, evaluate_pair, improvement, mean_scores

log = logging.getLogger("tvmse.evaluate")

DEFAULT_DATA = str(default_corpus_manifest())
DEFAULT_SPLIT, DEFAULT_N, DEFAULT_SEED = "dev", 100, 0
DEFAULT_SPLITS = ("dev", UNSEEN_SPLIT)

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
    if Path(path).is_dir():  # a compile output folder: the device's integer hop around its integer graph
        from tvmse.enhance import CompiledHop
        return CompiledHop(path)
    suffix = Path(path).suffix
    if suffix == ".onnx":
        return onnx_masks(path)
    if suffix == ".pt":
        return torch_masks(path)
    raise ModelFileError(f"{path}: expected a QDQ .onnx step, a .pt training checkpoint or a compile output folder")


def enhance(mask_function: MaskFunction, noisy: np.ndarray) -> np.ndarray:
    """Enhanced signal, same length and alignment as ``noisy``. A compiled folder's model
    (``enhance.CompiledHop``) runs the device's integer hop instead of the float STFT."""
    from tvmse.enhance import CompiledHop
    if isinstance(mask_function, CompiledHop):
        return mask_function.enhance(noisy)[0]
    spectrum = stft(noisy)
    masks = mask_function(features(spectrum))
    return istft(apply_mask(spectrum, masks), len(noisy))


def mixture_set(data: str, split: str = DEFAULT_SPLIT, n: int = DEFAULT_N, seed: int = DEFAULT_SEED) -> MixtureSet:
    return MixtureSet(Corpus.from_manifest(data), split, n=n, seed=seed)


def progress(items: Sequence, label: str, quiet: bool = False) -> Iterable:
    """``items`` with a tqdm bar (ETA) on a terminal, a log line every 20 items otherwise, nothing if ``quiet``."""
    if quiet:
        return items
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(items, desc=label, unit="mix", leave=False, dynamic_ncols=True)
    return _logged(items, label)


def _logged(items: Sequence, label: str) -> Iterable:
    started = time.monotonic()
    for i, item in enumerate(items):
        yield item
        if (i + 1) % 20 == 0 or i + 1 == len(items):
            log.info("%s: %d/%d mixtures (%.0f s)", label, i + 1, len(items), time.monotonic() - started)


def score_noisy(mixtures: Sequence, metrics: Sequence[str] = METRICS, quiet: bool = True) -> list[dict[str, float]]:
    """Per-mixture scores of the unprocessed input (the same for every model: compute once)."""
    return [evaluate_pair(m.clean, m.noisy, metrics=metrics) for m in progress(mixtures, "noisy", quiet)]


def score_enhanced(mask_function: MaskFunction, mixtures: Sequence, metrics: Sequence[str] = METRICS,
                   quiet: bool = False) -> list[dict[str, float]]:
    return [evaluate_pair(m.clean, enhance(mask_function, m.noisy), metrics=metrics)
            for m in progress(mixtures, "enhanced", quiet)]


def speech_source(mixture) -> str:
    """Speaker of a mixture's utterance: its file name up to the first ``_`` (the corpus's naming)."""
    return mixture.speech_file.split("_")[0]


def breakdown(mixtures: Sequence, noisy: list[dict[str, float]], enhanced: list[dict[str, float]],
              key: Callable) -> dict[str, dict[str, float]]:
    """Per group (``key(mixture)``): count, mean improvement of every metric, mixtures made worse (SI-SDR)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(mixtures):
        groups[key(m)].append(i)
    table = {}
    for name in sorted(groups):
        idx = groups[name]
        row = {"n": len(idx), **summarize([noisy[i] for i in idx], [enhanced[i] for i in idx])["improvement"]}
        row["worse"] = count_worse([noisy[i] for i in idx], [enhanced[i] for i in idx])
        table[name] = row
    return table


def count_worse(noisy: list[dict[str, float]], enhanced: list[dict[str, float]],
                metric: str = "si_sdr") -> int | None:
    """Mixtures whose enhanced ``metric`` is below the noisy input's (None when ``metric`` was not scored)."""
    if not noisy or metric not in noisy[0]:
        return None
    return sum(e[metric] < n[metric] for n, e in zip(noisy, enhanced))


def report(mixtures: Sequence, noisy: list[dict[str, float]], enhanced: list[dict[str, float]]) -> dict:
    """Means, mixtures made worse, and the per noise type / per speech source breakdowns of one set."""
    return {"n": len(mixtures), **summarize(noisy, enhanced), "worse": count_worse(noisy, enhanced),
            "by_noise": breakdown(mixtures, noisy, enhanced, lambda m: noise_label(m.noise_source)),
            "by_source": breakdown(mixtures, noisy, enhanced, speech_source)}


def noise_label(source: str) -> str:
    """Noise type of a mixture's noise source (``rain.flac`` → ``rain``; ``a.flac+pink`` → ``a+pink``)."""
    return "+".join(noise_type(part) for part in source.split("+"))


def summarize(noisy: list[dict[str, float]], enhanced: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Means over the set: {"noisy": …, "enhanced": …, "improvement": …}."""
    noisy_mean, enhanced_mean = mean_scores(noisy), mean_scores(enhanced)
    return {"noisy": noisy_mean, "enhanced": enhanced_mean,
            "improvement": improvement(noisy_mean, enhanced_mean)}


def format_breakdown(table: dict[str, dict[str, float]], title: str) -> str:
    shown = [m for m in ("sdr", "si_sdr", "pesq", "stoi") if m in next(iter(table.values()))]
    lines = [f"{title:<16} {'n':>3} " + " ".join(f"{'Δ' + m:>8}" for m in shown) + f" {'worse':>6}"]
    for name, row in table.items():
        lines.append(f"{name:<16} {row['n']:>3} " + " ".join(f"{row[m]:+8.2f}" for m in shown)
                     + f" {'-' if row['worse'] is None else row['worse']:>6}")
    return "\n".join(lines)


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
    p.add_argument("--split", default=",".join(DEFAULT_SPLITS),
                   help=f"comma-separated mixture sets: dev (all noise types), {UNSEEN_SPLIT} (noise types held out "
                        "of training), or any split of the corpus")
    p.add_argument("--n", type=int, default=DEFAULT_N, help="number of mixtures")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="mixture set seed")
    p.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of " + ",".join(METRICS))
    p.add_argument("--json", help="also write the figures here: {split: {means, worse, by_noise, by_source}}")
    p.add_argument("--by-source", action="store_true", help="also print the per speech source table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, _evaluate)


def _evaluate(args: argparse.Namespace) -> None:
    metrics = [m for m in args.metrics.split(",") if m]
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    if args.quiet:
        logging.getLogger("tvmse").setLevel(logging.WARNING)
    splits = [s for s in args.split.split(",") if s]
    if not splits:
        raise ConfigError("--split names no mixture set; use e.g. --split dev,dev_unseen")
    mask_function = load_mask_function(args.model)
    corpus = Corpus.from_manifest(args.data)
    results = {}
    for split in splits:
        mixtures = MixtureSet(corpus, split, n=args.n, seed=args.seed)
        log.info("%d mixtures of split %r, seed %d", len(mixtures), split, args.seed)
        noisy = score_noisy(mixtures, metrics, quiet=args.quiet)
        result = results[split] = report(mixtures, noisy, score_enhanced(mask_function, mixtures, metrics,
                                                                            quiet=args.quiet))
        print(f"{args.model}: {len(mixtures)} mixtures of {args.data} split {split} seed {args.seed}")
        print(format_summary(result))
        if result["worse"] is not None:
            print(f"made worse than the noisy input (SI-SDR): {result['worse']} of {len(mixtures)}")
        print(format_breakdown(result["by_noise"], "noise type"))
        if args.by_source:
            print(format_breakdown(result["by_source"], "speech source"))
        print()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
