"""Training batches of fixed-length mixtures as torch tensors, reproducible per (seed, batch index).

Each batch holds ``batch_size`` fresh mixtures of ``seconds`` length (see :mod:`tvmse.data.mixing`), turned into
what a mask-based model trains on: the model input ``features(stft(noisy))``, the target ``|stft(clean)|`` and
``stft(noisy)`` to apply the mask to. Batch ``i`` is drawn from ``default_rng((seed, TRAINING_STREAM, i))``, so
a run can resume at any batch index and two runs with one seed see the same data.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Iterator, NamedTuple

import numpy as np

from .corpus import Corpus
from .framing import SAMPLE_RATE, features, n_frames, stft
from .mixing import MixConfig, Mixer

if TYPE_CHECKING:
    import torch

TRAINING_STREAM = 1  # SeedSequence word that keeps training batches apart from MixtureSet items


class Batch(NamedTuple):
    """One training batch; every tensor is ``[batch, frames, N_BINS]``."""

    features: torch.Tensor  # float32 model input in [-1, 1]
    clean_magnitude: torch.Tensor  # float32 |STFT(clean)|
    noisy_spectrum: torch.Tensor  # complex64 STFT(noisy)


class TrainingBatches:
    """Iterable over training batches (infinite unless ``n_batches`` is given)."""

    def __init__(self, corpus: Corpus, split: str = "train", batch_size: int = 16, seconds: float = 2.0,
                 seed: int = 0, n_batches: int | None = None, config: MixConfig = MixConfig()) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seconds <= 0:
            raise ValueError(f"segment length must be positive, got seconds={seconds}")
        self.mixer = Mixer(corpus, split, config)
        self.batch_size, self.seed, self.n_batches = batch_size, seed, n_batches
        self.length = int(round(seconds * SAMPLE_RATE))

    @property
    def frames(self) -> int:
        """Frames per segment (``n_frames`` of the segment length)."""
        return n_frames(self.length)

    def batch(self, index: int) -> Batch:
        """Batch number ``index``; the same for every call with the same seed."""
        import torch  # deferred: the rest of tvmse.data is usable without paying torch's import time

        rng = np.random.default_rng([self.seed, TRAINING_STREAM, index])
        mixtures = [self.mixer.draw(rng, self.length) for _ in range(self.batch_size)]
        noisy = np.stack([stft(m.noisy) for m in mixtures])
        clean = np.stack([np.abs(stft(m.clean)) for m in mixtures])
        return Batch(torch.from_numpy(features(noisy)), torch.from_numpy(clean), torch.from_numpy(noisy))

    def __iter__(self) -> Iterator[Batch]:
        indices = itertools.count() if self.n_batches is None else range(self.n_batches)
        return (self.batch(i) for i in indices)

    def __len__(self) -> int:
        if self.n_batches is None:
            raise TypeError("TrainingBatches without n_batches is infinite and has no length")
        return self.n_batches
