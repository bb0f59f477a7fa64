"""TinyLSTM.forward_layerwise (the QAT training path) computes what the frame-by-frame step computes."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_models import random_features, tiny_model  # noqa: E402


@pytest.mark.parametrize("quantized", [False, True])
def test_layerwise_matches_the_step_by_step_forward(quantized):
    model = tiny_model(hidden=32, quantized=quantized, structure="unit", sparsity=0.25)
    features = random_features(3, 40, seed=7)
    with torch.no_grad():
        reference, _ = model(features)
        masks = model.forward_layerwise(features)
    assert masks.shape == reference.shape
    differ = (masks - reference).abs()
    if quantized:  # gate sums add in another order: a rare value on a rounding boundary moves one int8 step
        assert float((differ > 1e-6).float().mean()) < 1e-3
        assert float(differ.max()) <= 2 / 256 + 1e-6
    else:
        assert float(differ.max()) < 1e-5


def test_layerwise_observers_see_the_same_running_maxima_and_gradients_flow():
    a, b = tiny_model(hidden=16, quantized=True), tiny_model(hidden=16, quantized=True)
    features = random_features(2, 30, seed=3)
    a.observing = b.observing = True
    a(features)
    b.forward_layerwise(features)
    assert torch.allclose(a.act_max, b.act_max, rtol=1e-5)
    b.observing = False
    b.train()
    b.forward_layerwise(features).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*b.cell_weights, b.out_weight])


def test_pruning_may_run_on_into_the_int8_qat_phase(tmp_path):
    """Activations learn their int8 grids while the last masks are chosen: --prune-end inside the qat phase."""
    from test_train import tiny_config
    from tvmse.models.sparsity import sparsity_report
    from tvmse.train import Trainer
    config = tiny_config(structure="weight", sparsity=0.6, float_steps=2, wqat_steps=2, qat_steps=6,
                         prune_start=2, prune_end=7, prune_every=1)
    trainer = Trainer(config, tmp_path / "run", quiet=True)
    trainer.run(stop_after=5)  # two steps into qat: the ramp is not done yet
    assert trainer.model.quantized and sparsity_report(trainer.model, False).weight_sparsity < 0.6
    trainer.run()
    assert sparsity_report(trainer.model).weight_sparsity >= 0.6
