"""Ask Vela what a few ops cost on their own: the referee of every structural rewrite.

A layer and its rewrite are each written as a one-input integer graph, lowered to int8 TFLite and
compiled with Vela (``targets/ethosu``); the passes compare the two estimates and never apply a
rewrite Vela calls slower. Each call costs one Vela compile (~0.1–1 s).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tvmse.ir import IntegerGraph, IntOp, TensorInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Estimate:
    total_cycles: int
    npu_cycles: int
    weight_bytes: int


def vela_estimate(inputs: list[TensorInfo], ops: list[IntOp], outputs: list[str], config) -> Estimate:
    """Vela's figures for ``ops`` as a graph of their own (inputs become graph inputs)."""
    from tvmse.targets.ethosu.lower_to_tflite import lower_to_tflite
    from tvmse.targets.ethosu.vela_driver import compile_tflite

    graph = IntegerGraph(inputs=list(inputs), outputs=list(outputs), ops=list(ops))
    result = compile_tflite(lower_to_tflite(graph, description="tvmse probe"), config, name="probe")
    weight_bytes = sum(layer.weight_bytes for layer in result.layers)
    return Estimate(result.total_cycles, result.npu_cycles, weight_bytes)
