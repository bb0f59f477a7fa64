"""Small models for tests and examples: a calibrated fake-quant TinyLSTM exported to QDQ ONNX."""

from __future__ import annotations

from pathlib import Path

import torch

from tvmse.models import TinyLSTM, TinyLSTMConfig
from tvmse.models.export import export_qdq_onnx


def calibrated_tinylstm(config: TinyLSTMConfig, seed: int = 0, frames: int = 40) -> TinyLSTM:
    """Random weights, activation ranges observed on random features, int8 fake-quant on."""
    torch.manual_seed(seed)
    model = TinyLSTM(config)
    model.observing = True
    with torch.no_grad():
        model(torch.rand(4, frames, config.n_bins) * 2 - 1)
    model.observing = False
    model.quantized = True
    return model


def export_small_model(path: Path, hidden: int = 32, n_bins: int = 40, layers: int = 2, seed: int = 0) -> Path:
    return export_qdq_onnx(calibrated_tinylstm(TinyLSTMConfig(n_bins=n_bins, hidden=hidden, layers=layers), seed), path)
