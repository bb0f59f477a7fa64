"""Hybrid sparsity (unit+weight, unit+block): whole units removed, then the promised share of what survives."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_sparsity import tiles  # noqa: E402
from tiny_models import tiny_model  # noqa: E402
from tvmse.errors import ConfigError  # noqa: E402
from tvmse.models.sparsity import (alive_units, apply_masks, block_mask, compute_masks, unit_keep,  # noqa: E402
                                   unit_masks_from_keep, weight_mask)
from tvmse.train import TrainConfig  # noqa: E402


def unit_masks(model, fraction):
    return unit_masks_from_keep(model, unit_keep(model, fraction))


@pytest.mark.parametrize("structure,block", [("unit+weight", None), ("unit+block", (4, 8))])
@pytest.mark.parametrize("units,level", [(0.5, 0.5), (0.25, 0.8), (0.75, 0.3)])
def test_hybrid_masks_remove_units_then_the_level_of_the_survivors(structure, block, units, level):
    model = tiny_model(hidden=16, structure=None, quantized=False)
    alive_before, unit_biases = unit_masks(model, units)
    weight_masks, bias_masks = compute_masks(model, structure, level, block or (16, 32), unit_sparsity=units)
    apply_masks(model, (weight_masks, bias_masks))
    H = model.config.hidden
    # units: exactly ceil(units·H) removed per layer, everywhere they appear (gate rows, biases, columns)
    assert alive_units(model) == [H - int(torch.tensor(units * H).ceil())] * model.config.layers
    for name, mask in weight_masks.items():
        alive = alive_before[name]
        assert torch.all(mask <= alive), f"{name}: a weight of a removed unit survived"
        survivors, kept = float(alive.sum()), float(mask.sum())
        reached = 1 - kept / survivors
        tile_size = block[0] * block[1] if block else 1
        assert level <= reached < level + tile_size / survivors + 1e-9, (name, reached)
        if structure == "unit+block":  # the fine pruning is in whole tiles: a tile's alive weights all go or stay
            for m_tile, a_tile in zip(tiles(mask.numpy(), block), tiles(alive.numpy(), block)):
                live = m_tile[a_tile > 0]
                assert live.size == 0 or live.min() == live.max(), "a tile is partly pruned"
    assert bias_masks.keys() == unit_biases.keys()
    for name, b in bias_masks.items():  # a removed unit's gate biases go with it; every other bias stays
        assert torch.equal(b, unit_biases[name])


def test_alive_weights_rank_only_among_themselves():
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(3))
    alive = torch.ones_like(w)
    alive[:8] = 0  # the largest weights sit in dead rows: they must not take the places of live ones
    w[:8] *= 100
    mask = weight_mask(w, 0.5, alive)
    assert mask[:8].sum() == 0 and mask[8:].sum() == 0.5 * alive.sum()
    kept, dropped = w[mask == 1].abs(), w[(mask == 0) & (alive == 1)].abs()
    assert dropped.max() <= kept.min()
    tiles_mask = block_mask(w, 0.5, (8, 16), alive)
    assert tiles_mask[:8].sum() == 0 and tiles_mask[8:].sum() == 0.5 * alive.sum()


def test_hybrid_training_config_needs_both_levels():
    TrainConfig(structure="unit+block", sparsity=0.5, unit_sparsity=0.5).validate()
    with pytest.raises(ConfigError, match="unit-sparsity"):
        TrainConfig(structure="unit+weight", sparsity=0.5).validate()
    with pytest.raises(ConfigError, match="unit-sparsity"):
        TrainConfig(structure="weight", sparsity=0.5, unit_sparsity=0.5).validate()


def test_hybrid_training_reaches_both_levels(tmp_path):
    from test_train import tiny_config
    from tvmse.train import Trainer
    config = tiny_config(structure="unit+weight", sparsity=0.6, unit_sparsity=0.5, float_steps=2, wqat_steps=6,
                         qat_steps=0, prune_every=1)
    model = Trainer(config, tmp_path / "run", quiet=True).run()
    assert alive_units(model) == [config.hidden // 2] * config.layers
    report_w = compute_masks(model, "unit", 0.5)[0]
    for name, w, _ in model.effective_weights():
        alive = float(report_w[name].sum())
        assert 1 - float((w != 0).sum()) / alive >= 0.6 - 1e-6, name
