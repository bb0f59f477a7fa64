"""The cost model ranks tilings of a layer as Vela does (the model chooses, Vela referees)."""

from __future__ import annotations

import numpy as np
import pytest

from tvmse.ir import TensorInfo, build
from tvmse.passes import cost_model
from tvmse.passes import tile_block_sparse as T
from tvmse.passes.arch import U55_128
from tvmse.passes.vela_probe import vela_estimate


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.mark.parametrize("mode, min_rank_corr, best_slack", [("Sram_Only", 0.9, 0.05), ("Shared_Sram", 0.5, 0.15)])
def test_model_ranking_agrees_with_vela(mode, min_rank_corr, best_slack):
    from tvmse.targets.ethosu.vela_driver import VelaConfig
    rng = np.random.default_rng(0)
    n, k = 512, 256
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    w *= np.kron(rng.random((n // 16, k // 32)) < 0.15, np.ones((16, 32), np.int8)).astype(np.int8)
    x = TensorInfo("x", (1, k), 0.01, 0)
    op = build.fully_connected("y", x, w, np.zeros(n), np.full(n, 0.01), 0.1, 0)
    tilings = T.candidates(U55_128, mode, w) + [T.grouped(w, [0, g, 32], 16, 32, f"halves{g}") for g in (8, 16)]
    model = [T.tiling_cycles(U55_128, mode, w, t) for t in tilings]
    config = VelaConfig("ethos-u55-128", None, mode)
    vela = [vela_estimate([x], [op] if t.name == "untouched" else T.rewrite(op, x, t), ["y"], config).total_cycles
            for t in tilings]
    assert _spearman(model, vela) >= min_rank_corr, list(zip([t.name for t in tilings], model, vela))
    assert vela[int(np.argmin(model))] <= (1 + best_slack) * min(vela)


@pytest.mark.parametrize("n, k", [(16, 32), (128, 512), (1024, 512), (256, 257)])
def test_dense_fc_cycles_within_5_percent_of_vela_in_sram_only(n, k):
    from tvmse.targets.ethosu.vela_driver import VelaConfig
    rng = np.random.default_rng(1)
    x = TensorInfo("x", (1, k), 0.01, 0)
    op = build.fully_connected("y", x, rng.integers(-127, 128, (n, k)), np.zeros(n), np.full(n, 0.01), 0.1, 0)
    vela = vela_estimate([x], [op], ["y"], VelaConfig("ethos-u55-128", None, "Sram_Only")).npu_cycles
    assert abs(cost_model.fc_npu_cycles(U55_128, n, k) / vela - 1) <= 0.05
