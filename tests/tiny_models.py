"""Tiny TinyLSTM models for fast tests: random weights, calibrated on random features."""

import torch

from tvmse.models import TinyLSTM, TinyLSTMConfig
from tvmse.models.sparsity import apply_masks, compute_masks

N_BINS = 257


def random_features(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """Features in [-1, 1] with some temporal structure (a random walk), like log spectra."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(batch, frames, N_BINS, generator=g) * 0.2
    return torch.tanh(steps.cumsum(1) * 0.3 + torch.randn(batch, 1, N_BINS, generator=g) * 0.5)


def tiny_model(hidden: int = 16, layers: int = 2, seed: int = 0, structure: str | None = None,
               sparsity: float = 0.0, block=(4, 8), quantized: bool = True,
               calib_frames: int = 40) -> TinyLSTM:
    """Random model (weights scaled up so activations use their int8 range), masks, calibration."""
    torch.manual_seed(seed)
    model = TinyLSTM(TinyLSTMConfig(N_BINS, hidden, layers))
    with torch.no_grad():
        for w in list(model.cell_weights) + [model.out_weight]:
            w.mul_(3.0)
        for b in model.cell_biases:
            b.add_(torch.randn_like(b) * 0.3)
        model.out_bias.add_(torch.randn_like(model.out_bias) * 0.3)
    if structure:
        apply_masks(model, compute_masks(model, structure, sparsity, block))
    model.observing = True
    with torch.no_grad():
        model(random_features(4, calib_frames, seed + 1))
    model.observing = False
    model.quantized = quantized
    return model.eval()
