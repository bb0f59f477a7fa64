"""The default pipeline: order validated, each pass can be disabled, rewrites listed, state mapped."""

from __future__ import annotations

import numpy as np
import pytest

from tests.passes.graphs import load_imported, lstm_graph, prune_units
from tvmse.errors import ConfigError
from tvmse.passes.pipeline import PIPELINE, check_disabled, check_order, pass_names, run_pipeline


def test_default_pipeline_runs_structural_passes_in_order():
    assert pass_names() == ["fold_dead_units", "reorder_units", "tile_block_sparse"]
    check_order(PIPELINE)


def test_broken_order_is_reported():
    with pytest.raises(RuntimeError, match="fold_dead_units must run before (reorder_units|tile_block_sparse)"):
        check_order(list(reversed(PIPELINE)))


def test_unknown_pass_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="fold_dead_units"):
        check_disabled(("no_such_pass",))


def test_disable_each_pass():
    graph = prune_units(lstm_graph(np.random.default_rng(0), 3, [4], 2), 0, [1])
    new, records = run_pipeline(graph)
    assert records and records[0]["pass"] == "fold_dead_units" and new.state_slots["h0"] == [0, 2, 3]
    same, none = run_pipeline(graph, ("fold_dead_units",))
    assert same is graph and none == []


def test_imported_gru_keeps_its_state_pairing_through_the_pipeline():
    graph = load_imported("keras_gru_step_pruned.tflite")
    new, records = run_pipeline(graph)
    state_in = "serving_default_state:0"
    assert new.state_pairs == graph.state_pairs and len(new.state_slots[state_in]) == 24
    assert [r["pass"] for r in records] == ["fold_dead_units"] * 4


def test_compile_report_lists_rewrites_and_state_slots(tmp_path):
    import torch
    from tvmse.compile import compile_model
    from tvmse.models import TinyLSTMConfig, sparsity
    from tvmse.models.export import export_qdq_onnx
    from tvmse.testing import calibrated_tinylstm
    model = calibrated_tinylstm(TinyLSTMConfig(n_bins=20, hidden=32, layers=1))
    kept = [torch.arange(32) % 4 != 1]
    sparsity.apply_masks(model, sparsity.unit_masks_from_keep(model, kept))
    path = export_qdq_onnx(model, tmp_path / "unit.onnx")
    result = compile_model(path, output_dir=tmp_path / "out", verify_trials=2)
    assert result.state_slots["h0"] == [j for j in range(32) if j % 4 != 1]
    state = {s["input"]: s for s in result.report["model"]["state"]}
    assert state["c0"]["size"] == 24 and state["c0"]["source_slots"] == result.state_slots["c0"]
    layers = {r["layer"]: r for r in result.report["passes"]}
    assert layers["lstm0/fc"]["before"] == [128, 52] and layers["lstm0/fc"]["after"] == [96, 44]
    assert layers["lstm0/fc"]["cycles_after"] < layers["lstm0/fc"]["cycles_before"]
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Passes" in markdown and "| fold_dead_units | lstm0/fc | 128×52 → 96×44 |" in markdown
    assert "`h0`: 24 slots ← source 0, 2–4, 6–8," in markdown
