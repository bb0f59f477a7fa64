"""Training batches of fixed-length mixtures as torch tensors, reproducible per (seed, batch index).

Each batch holds ``batch_size`` fresh mixtures of ``seconds`` length (see :mod:`tvmse.data.mixing`), turned into
what a mask-based model trains on: the model input ``features(stft(noisy))``, the target ``|stft(clean)|`` and
``stft(noisy)`` to apply the mask to. Batch ``i`` is drawn from ``default_rng((seed, TRAINING_STREAM, i))``, so
a run can resume at any batch index and two runs with one seed see the same data.

Two halves, so the mixing can run in other processes and the STFT on the training device:
:meth:`TrainingBatches.waveforms` (numpy, the mixing) and :func:`batch_from_waveforms` (torch, the spectra and
features, the same framing as :func:`tvmse.data.framing.stft` computed in float32 on any torch device).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Iterator, NamedTuple

import numpy as np

from .corpus import Corpus
from .framing import (FEATURE_DB_HIGH, FEATURE_DB_LOW, HOP, N_FFT, POWER_FLOOR, SAMPLE_RATE, analysis_window,
                      n_frames)
from .mixing import MixConfig, Mixer

if TYPE_CHECKING:
    import torch

TRAINING_STREAM = 1  # SeedSequence word that keeps training batches apart from MixtureSet items


class Batch(NamedTuple):
    """One training batch; every tensor is ``[batch, frames, N_BINS]``."""

    features: torch.Tensor  # float32 model input in [-1, 1]
    clean_magnitude: torch.Tensor  # float32 |STFT(clean)|
    noisy_spectrum: torch.Tensor  # complex64 STFT(noisy)
    clean_spectrum: torch.Tensor  # complex64 STFT(clean)


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

    def waveforms(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean) float32 ``[batch_size, samples]`` of batch number ``index`` (pure function of seed, index)."""
        rng = np.random.default_rng([self.seed, TRAINING_STREAM, index])
        mixtures = [self.mixer.draw(rng, self.length) for _ in range(self.batch_size)]
        return np.stack([m.noisy for m in mixtures]), np.stack([m.clean for m in mixtures])

    def batch(self, index: int, device: str = "cpu") -> Batch:
        """Batch number ``index`` on ``device``; the same for every call with the same seed."""
        return batch_from_waveforms(*self.waveforms(index), device=device)

    def __iter__(self) -> Iterator[Batch]:
        indices = itertools.count() if self.n_batches is None else range(self.n_batches)
        return (self.batch(i) for i in indices)

    def __len__(self) -> int:
        if self.n_batches is None:
            raise TypeError("TrainingBatches without n_batches is infinite and has no length")
        return self.n_batches


def batch_from_waveforms(noisy: np.ndarray, clean: np.ndarray, device: str = "cpu") -> Batch:
    """Spectra and features of ``[batch, samples]`` waveforms, computed by torch on ``device``.

    Same framing and feature map as :func:`tvmse.data.framing.stft` / :func:`~tvmse.data.framing.features` (which
    compute in float64 and round to float32; this path stays in float32: they agree to ~1e-5).
    """
    import torch  # deferred: the rest of tvmse.data is usable without paying torch's import time

    noisy_spectrum = torch_stft(torch.from_numpy(noisy).to(device))
    clean_spectrum = torch_stft(torch.from_numpy(clean).to(device))
    return Batch(torch_features(noisy_spectrum), clean_spectrum.abs(), noisy_spectrum, clean_spectrum)


def torch_stft(x: "torch.Tensor") -> "torch.Tensor":
    """complex64 ``[batch, n_frames, N_BINS]`` of float ``[batch, samples]``, framed as :func:`framing.stft`."""
    import torch

    count = n_frames(x.shape[-1])
    padded = torch.zeros(x.shape[0], (count + 1) * HOP, dtype=torch.float32, device=x.device)
    padded[:, HOP:HOP + x.shape[-1]] = x
    window = torch.from_numpy(analysis_window().astype(np.float32)).to(x.device)
    return torch.fft.rfft(padded.unfold(-1, N_FFT, HOP) * window, dim=-1)


def torch_istft(spectrum: "torch.Tensor") -> "torch.Tensor":
    """float ``[batch, (n_frames - 1) * HOP]`` of complex ``[batch, n_frames, N_BINS]``: inverse rfft, synthesis
    window, overlap-add (as :func:`framing.istft`, without trimming to a length). Differentiable."""
    import torch

    window = torch.from_numpy(analysis_window().astype(np.float32)).to(spectrum.device)
    frames = torch.fft.irfft(spectrum, n=N_FFT, dim=-1) * window  # [B, T, N_FFT]
    count = frames.shape[1]
    out = torch.nn.functional.fold(frames.transpose(1, 2), output_size=(1, (count + 1) * HOP),
                                   kernel_size=(1, N_FFT), stride=(1, HOP))
    return out.reshape(frames.shape[0], -1)[:, HOP:count * HOP]


def torch_features(spectrum: "torch.Tensor") -> "torch.Tensor":
    """:func:`tvmse.data.framing.features` in torch (float32)."""
    import torch

    db = 10.0 * torch.log10(spectrum.real.square() + spectrum.imag.square() + POWER_FLOOR)
    scaled = (2.0 * db - (FEATURE_DB_HIGH + FEATURE_DB_LOW)) / (FEATURE_DB_HIGH - FEATURE_DB_LOW)
    return torch.clamp(scaled, -1.0, 1.0)
