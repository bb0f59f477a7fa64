"""Run an exported TinyLSTM step (QDQ ONNX) in onnxruntime, one frame per call, state carried.

One place for the details evaluation and tests must agree on:

* The session uses ``ORT_ENABLE_BASIC``. The extended level fuses QDQ groups into uint8 QLinear
  kernels whose rounding differs from the QDQ semantics by tens of LSB on the cell state; the
  basic level runs the graph as written, which is what the fake-quant torch model computes.
* Features in [-1, 1] become int8 with scale 1/127, zero point 0 (``FEATURE_SCALE``), rounded half
  to even like QuantizeLinear.
* The state is a dict of int8 arrays named like the graph inputs (``h0, c0, h1, c1, …``); outputs
  ``<name>_out`` feed the next call. The mask is dequantized with the scale and zero point the
  graph's own QuantizeLinear carries.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tvmse.errors import ModelFileError
from tvmse.models.tinylstm import FEATURE_SCALE


def create_session(path: str | os.PathLike):
    """An onnxruntime session with basic graph optimizations only (see the module docstring)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = 1  # a 257×1024 int8 step is too small to gain from threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable models
        raise ModelFileError(f"onnxruntime cannot load {path}: {err}") from err


def quantize_features(features: np.ndarray) -> np.ndarray:
    """Float features → int8 model input (scale 1/127, zero point 0, round half to even)."""
    scaled = np.asarray(features, np.float32) / np.float32(FEATURE_SCALE)
    return np.clip(np.round(scaled), -128, 127).astype(np.int8)


def _output_quantization(model_path: Path, tensor: str) -> tuple[float, int]:
    """(scale, zero point) of the QuantizeLinear that produces graph tensor ``tensor``."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] == tensor:
            return float(init[node.input[1]]), int(init[node.input[2]])
    raise ModelFileError(f"{model_path} has no QuantizeLinear producing {tensor!r}: not a tvmse QDQ step")


class StepRunner:
    """The exported streaming step: ``step`` on int8 tensors, ``run`` over a whole feature sequence."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.session = create_session(self.path)
        names = [i.name for i in self.session.get_inputs()]
        if not names or names[0] != "frame":
            raise ModelFileError(f"{self.path}: first input is {names[:1]}, expected 'frame' (a tvmse TinyLSTM step)")
        self.state_names = names[1:]
        self.state_shapes = {i.name: [int(d) for d in i.shape] for i in self.session.get_inputs()[1:]}
        self.output_names = ["mask"] + [f"{n}_out" for n in self.state_names]
        self.mask_scale, self.mask_zero_point = _output_quantization(self.path, "mask")

    def initial_state(self) -> dict[str, np.ndarray]:
        """All-zero int8 state (the device's state after reset)."""
        return {n: np.zeros(s, np.int8) for n, s in self.state_shapes.items()}

    def step(self, frame: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One call: int8 frame [1, n_bins] and state → int8 mask [1, n_bins] and the next state."""
        outputs = self.session.run(self.output_names, {"frame": frame, **state})
        return outputs[0], dict(zip(self.state_names, outputs[1:]))

    def dequantize_mask(self, mask: np.ndarray) -> np.ndarray:
        return (mask.astype(np.float32) - self.mask_zero_point) * np.float32(self.mask_scale)

    def run(self, features: np.ndarray) -> np.ndarray:
        """Masks [T, n_bins] (float) for features [T, n_bins], frame by frame from a zero state."""
        frames = quantize_features(features)
        state = self.initial_state()
        masks = np.empty(frames.shape, np.int8)
        for t in range(len(frames)):
            mask, state = self.step(frames[t:t + 1], state)
            masks[t] = mask[0]
        return self.dequantize_mask(masks)
