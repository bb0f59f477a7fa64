"""Shared fixtures: a small exported TinyLSTM and the bundled example model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvmse.testing import export_small_model

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "examples" / "tinylstm_int8.onnx"


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory) -> Path:
    """2 × LSTM(32) on 40 bins, random weights, calibrated: every op kind of the real model, fast to build."""
    return export_small_model(tmp_path_factory.mktemp("small") / "small.onnx")


@pytest.fixture(scope="session")
def small_graph(small_onnx):
    from tvmse import frontend
    return frontend.load(small_onnx)


@pytest.fixture(scope="session")
def small_reference(small_graph):
    from tvmse.targets.host import HostReference
    return HostReference(small_graph)


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    assert BUNDLED_MODEL.exists(), f"bundled example model missing: {BUNDLED_MODEL}"
    return BUNDLED_MODEL
