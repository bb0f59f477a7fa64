"""Training speed: seconds per batch of mixing, and steps/s of each training phase, with the configuration.

    .venv/bin/python scripts/bench_train.py [--steps 10] [--repeats 5] [--device cpu] [--batch-size 16] [--seconds 2]

Mixing is timed alone (one process, ``TrainingBatches.waveforms``, with and without augmentation) and the
phases on pre-made batches (so they measure the model, not the data): ``float`` (fused LSTM), ``wqat``
(fused LSTM with int8 weights), ``qat`` (the per-frame fake-quant step, at ``--qat-batch-size`` ×
``--qat-seconds``). Each phase is timed ``--repeats`` times (``--steps`` steps each) and the median is printed
with the range, so a machine shared with other jobs gives a stable figure. A training run mixing in the
background is limited by max(mixing / workers, step).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tvmse.data import MixConfig, TrainingBatches  # noqa: E402
from tvmse.data.batches import batch_from_waveforms  # noqa: E402
from tvmse.data.mixing import TRAINING_MIX  # noqa: E402
from tvmse.train import DEFAULT_DATA, TrainConfig, Trainer, open_corpus  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Mean seconds per call after one warm-up call."""
    fn(0)
    start = time.perf_counter()
    for i in range(1, repeats + 1):
        fn(i)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--steps", type=int, default=10, help="timed steps per phase and repeat")
    p.add_argument("--repeats", type=int, default=5, help="timings per phase; the median is reported")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--qat-batch-size", type=int, default=8)
    p.add_argument("--qat-seconds", type=float, default=1.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    corpus = open_corpus(args.data)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} torch thread(s), device {args.device}")
    print(f"batch {args.batch_size} x {args.seconds} s (qat {args.qat_batch_size} x {args.qat_seconds} s), "
          f"hidden {args.hidden}, {args.steps} timed steps per phase, median of {args.repeats}")
    for name, mix in (("plain", MixConfig()), ("augmented", TRAINING_MIX)):
        batches = TrainingBatches(corpus, "train", args.batch_size, args.seconds, seed=0, config=mix)
        batches.waveforms(0)  # decode and cache the files the first batches need
        seconds = timed(batches.waveforms, max(args.steps // 2, 2))
        print(f"mixing ({name}): {seconds:.3f} s/batch in one process")
    features = timed(lambda i: batch_from_waveforms(*batches.waveforms(0), device=args.device), args.steps) - \
        timed(lambda i: batches.waveforms(0), args.steps)
    print(f"spectra + features (torch, {args.device}): {max(features, 0):.4f} s/batch")

    config = TrainConfig(data=args.data, hidden=args.hidden, batch_size=args.batch_size, seconds=args.seconds,
                         qat_batch_size=args.qat_batch_size, qat_seconds=args.qat_seconds, float_steps=1,
                         wqat_steps=1, qat_steps=1, calib_batches=1, threads=args.threads)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, out, corpus=corpus, device=args.device, quiet=True)
        for phase, step in (("float", 0), ("wqat", 1), ("qat", 2)):
            trainer.step = step
            trainer._phase_transitions()
            batch = trainer._batch(step)

            def one(_):
                trainer.step = step
                trainer.train_step(batch)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

            runs = sorted(timed(one, args.steps if phase != "qat" else max(args.steps // 5, 2))
                          for _ in range(args.repeats))
            seconds = statistics.median(runs)
            print(f"{phase:>5}: {1 / seconds:7.2f} steps/s ({seconds:.3f} s/step; "
                  f"range {1 / runs[-1]:.2f}-{1 / runs[0]:.2f} steps/s)")


if __name__ == "__main__":
    main()
