"""Sparsity masks: targets reached, blocks aligned, units removed everywhere, and exact after export."""

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_models import random_features, tiny_model  # noqa: E402
from tvmse.errors import ConfigError, QuantizationError  # noqa: E402
from tvmse.models.export import export_qdq_onnx  # noqa: E402
from tvmse.models.quant import fake_quant_weight, weight_scales  # noqa: E402
from tvmse.models.sparsity import (block_mask, compute_masks, cubic_schedule, parse_block,  # noqa: E402
                                   sparsity_report, weight_mask)
from tvmse.onnx_runtime import StepRunner, quantize_features  # noqa: E402
from tvmse.prune import prune_int8  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def onnx_fcs(path):
    """FC name → (int8 weight [out, in], int32 bias [out]) from an exported file, found through the
    DequantizeLinear nodes ``<fc>/fc/w`` and ``<fc>/fc/b`` (initializers are shared by content)."""
    graph = onnx.load(str(path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    names = [n.name[:-len("/fc/w")] for n in graph.node if n.name.endswith("/fc/w")]
    return {name: (init[nodes[f"{name}/fc/w"].input[0]].T, init[nodes[f"{name}/fc/b"].input[0]]) for name in names}


def tiles(w, block):
    r, c = block
    rows, cols = w.shape
    for i in range(0, rows, r):
        for j in range(0, cols, c):
            yield w[i:i + r, j:j + c]


# ---- masks of one matrix ----------------------------------------------------------------------------
def test_weight_mask_reaches_the_target_and_keeps_the_largest():
    w = torch.randn(64, 96, generator=torch.Generator().manual_seed(0))
    mask = weight_mask(w, 0.9)
    assert 0.9 <= 1 - mask.mean() < 0.9 + 1 / w.numel() + 1e-9
    assert w[mask == 0].abs().max() <= w[mask == 1].abs().min()


@pytest.mark.parametrize("shape", [(64, 96), (257, 256), (1024, 513)])
def test_block_mask_is_tile_aligned_and_reaches_the_target(shape):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    mask = block_mask(w, 0.9, (16, 32)).numpy()
    assert 1 - mask.mean() >= 0.9
    for tile in tiles(mask, (16, 32)):
        assert tile.min() == tile.max(), "a tile is partly pruned"


def test_parse_block_and_errors():
    assert parse_block("16x32") == (16, 32)
    with pytest.raises(ConfigError):
        parse_block("16")
    with pytest.raises(ConfigError):
        compute_masks(tiny_model(), "rows", 0.5)


def test_cubic_schedule_ramps_monotonically_to_the_target():
    values = [cubic_schedule(s, 10, 110, 0.9) for s in range(0, 130)]
    assert values[0] == 0 and values[10] == 0 and values[110] == 0.9 and values[-1] == 0.9
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[35] > 0.9 * 0.5  # front-loaded: more than half the target at a quarter of the ramp


def test_masks_nest_along_a_rising_schedule():
    model = tiny_model(quantized=False)
    from tvmse.models.sparsity import apply_masks
    apply_masks(model, compute_masks(model, "weight", 0.5))
    first = {k: v.clone() for k, v in model.weight_masks.items()}
    apply_masks(model, compute_masks(model, "weight", 0.8))
    for name, mask in model.weight_masks.items():
        assert torch.all(mask <= first[name])


# ---- exactness after export ---------------------------------------------------------------------
@pytest.mark.parametrize("structure,sparsity", [("weight", 0.9), ("block", 0.9)])
def test_exported_zeros_match_the_masks_and_blocks_are_aligned(tmp_path, structure, sparsity):
    block = (4, 8)
    model = tiny_model(hidden=16, structure=structure, sparsity=sparsity, block=block)
    fcs = onnx_fcs(export_qdq_onnx(model, tmp_path / "m.onnx"))
    assert set(fcs) == {"lstm0", "lstm1", "out"}
    for name, (w_int, _) in fcs.items():
        mask = model.weight_masks[name].numpy()
        assert np.all(w_int[mask == 0] == 0), f"{name}: a pruned weight is non-zero in the export"
        assert 1 - np.count_nonzero(w_int) / w_int.size >= sparsity
        if structure == "block":
            for tile in tiles(mask, block):
                assert tile.min() == tile.max()


def check_units_removed(path, dead):
    """Every place a dead unit appears in the exported file is zero: gate rows, biases, columns."""
    fcs = onnx_fcs(path)
    layers = len(dead)
    H = fcs["lstm0"][0].shape[0] // 4
    for layer, units in enumerate(dead):
        w, b = fcs[f"lstm{layer}"]
        k = w.shape[1] - H
        consumer = fcs[f"lstm{layer + 1}"][0] if layer + 1 < layers else fcs["out"][0]
        for j in units:
            rows = [j, H + j, 2 * H + j, 3 * H + j]
            assert np.all(w[rows] == 0) and np.all(b[rows] == 0), f"layer {layer} unit {j}: gate rows/bias"
            assert np.all(w[:, k + j] == 0), f"layer {layer} unit {j}: recurrent column"
            assert np.all(consumer[:, j] == 0), f"layer {layer} unit {j}: consumer column"


def test_unit_pruning_removes_units_everywhere_and_their_state_stays_zero(tmp_path):
    model = tiny_model(hidden=16, structure="unit", sparsity=0.5)
    dead = [torch.nonzero(model.bias_masks[f"lstm{l}"][:16] == 0).flatten().tolist() for l in range(2)]
    assert all(len(units) == 8 for units in dead)
    path = export_qdq_onnx(model, tmp_path / "m.onnx")
    check_units_removed(path, dead)
    runner = StepRunner(path)
    state = runner.initial_state()
    frames = quantize_features(random_features(1, 40, seed=4)[0].numpy())
    for t in range(len(frames)):
        _, state = runner.step(frames[t:t + 1], state)
        for layer, units in enumerate(dead):
            assert not state[f"h{layer}"][0, units].any() and not state[f"c{layer}"][0, units].any()
    assert sparsity_report(model).units_alive == (8, 8)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("tinylstm_unit*.onnx")), ids=lambda p: p.name)
def test_bundled_unit_models_remove_their_level_of_units_everywhere(path):
    fcs = onnx_fcs(path)
    H = fcs["lstm0"][0].shape[0] // 4
    dead = []
    for layer in range(len(fcs) - 1):
        w, b = fcs[f"lstm{layer}"]
        alive = (np.abs(w).reshape(4, H, -1).sum(axis=(0, 2)) + np.abs(b).reshape(4, H).sum(0)) != 0
        dead.append(np.flatnonzero(~alive).tolist())
    assert all(len(units) >= level_of(path) * H for units in dead)
    check_units_removed(path, dead)


def level_of(path):
    """Target sparsity from a bundled file's name: tinylstm_block80.onnx → 0.8."""
    return int("".join(ch for ch in path.stem if ch.isdigit())) / 100


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("tinylstm_block*.onnx")), ids=lambda p: p.name)
def test_bundled_block_models_zero_whole_aligned_tiles_to_their_level(path):
    """Every FC has at least its level of weights inside all-zero 16×32 tiles aligned at (0, 0)."""
    for name, (w, _) in onnx_fcs(path).items():
        in_zero_tiles = sum(tile.size for tile in tiles(w, (16, 32)) if not tile.any())
        assert in_zero_tiles / w.size >= level_of(path), name


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("tinylstm_weight*.onnx")), ids=lambda p: p.name)
def test_bundled_weight_models_reach_their_level_in_every_fc(path):
    for name, (w, _) in onnx_fcs(path).items():
        assert 1 - np.count_nonzero(w) / w.size >= level_of(path), name


# ---- offline baseline -------------------------------------------------------------------------------
@pytest.mark.parametrize("structure", ["weight", "block", "unit"])
def test_offline_pruning_zeroes_int8_weights_and_keeps_the_survivors(tmp_path, structure):
    model = tiny_model(hidden=16)
    before = [fake_quant_weight(w).detach().clone() for _, w, _ in model.effective_weights()]
    prune_int8(model, structure, 0.5, (4, 8))
    report = sparsity_report(model)
    assert report.weight_sparsity >= 0.5 if structure != "unit" else report.units_alive == (8, 8)
    for (_, w, _), old in zip(model.effective_weights(), before):
        new = fake_quant_weight(w).detach()
        kept = new != 0
        same_max = new.abs().amax(1) == old.abs().amax(1)
        exact = kept & same_max[:, None]
        torch.testing.assert_close(new[exact], old[exact], rtol=0, atol=0)
        half_step = (weight_scales(old) / 2)[:, None].expand_as(old)
        assert torch.all((new - old).abs()[kept] <= half_step[kept] * 1.0001)
    path = export_qdq_onnx(model, tmp_path / "p.onnx")
    assert StepRunner(path).run(random_features(1, 3)[0].numpy()).shape == (3, 257)


def test_offline_pruning_refuses_a_float_model():
    with pytest.raises(QuantizationError):
        prune_int8(tiny_model(quantized=False), "weight", 0.5)
