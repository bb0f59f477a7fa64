"""Run an integer-form module on the host with TVM (Relax VM, LLVM), one step at a time.

This is the reference every other target is checked against: the TFLite file handed to Vela,
the Cortex-M55 code, and (within one LSB) onnxruntime on the QDQ source model.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from tvmse.ir import IntegerGraph


class HostReference:
    """Compiled once; ``run(inputs)`` maps input names to int8 arrays and returns the outputs."""

    def __init__(self, graph: IntegerGraph):
        self.graph = graph
        executable = tvm.compile(graph.to_module(), target=tvm.target.Target({"kind": "llvm"}))
        self.vm = relax.VirtualMachine(executable, tvm.cpu())

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = []
        for t in self.graph.inputs:
            value = np.asarray(inputs[t.name])
            if value.dtype != np.int8 or tuple(value.shape) != tuple(t.shape):
                raise ValueError(f"input '{t.name}' must be int8 {t.shape}, got {value.dtype} {value.shape}")
            args.append(tvm.runtime.tensor(value))
        result = self.vm["main"](*args)
        return {name: result[i].numpy() for i, name in enumerate(self.graph.outputs)}

    def rollout(self, frames: np.ndarray, state: dict[str, np.ndarray] | None = None,
                frame_input: str = "frame", state_pairs: dict[str, str] | None = None):
        """Run frame after frame, feeding each state output back; yields the outputs per frame."""
        pairs = state_pairs or streaming_state_pairs(self.graph)
        state = dict(state or {i: np.zeros(self.graph.tensors()[i].shape, np.int8) for i in pairs})
        for frame in frames:
            out = self.run({frame_input: frame, **state})
            state = {i: out[o].reshape(state[i].shape) for i, o in pairs.items()}
            yield out


def streaming_state_pairs(graph: IntegerGraph) -> dict[str, str]:
    """State input → state output: the pairs the frontend recorded, else the export's naming ('h0' → 'h0_out')."""
    if graph.state_pairs:
        return dict(graph.state_pairs)
    outputs = set(graph.outputs)
    return {t.name: f"{t.name}_out" for t in graph.inputs if f"{t.name}_out" in outputs}
