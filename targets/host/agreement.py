"""How closely the host reference follows onnxruntime on a QDQ step model, on real input.

Two measurements over a sequence of int8 frames:

- **same state**: every frame, both sides are given the host's state; a deviation comes from that
  one step only;
- **rollout**: each side carries its own state from zero, as two devices would; the per-frame
  deviation shows whether differences accumulate through the recurrence.

Why they differ at all: fed the same int8 inputs, each op agrees within one LSB (TFLite's ADD and
MUL round twice, onnxruntime rounds the float result once), but within a step those LSBs travel on:
one LSB of an int8 cell state with a range of ±8 moves tanh(c), and so h, by about eight LSB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvmse.onnx_runtime import StepRunner
from tvmse.targets.host.reference import HostReference, streaming_state_pairs


@dataclass
class Agreement:
    """|host − onnxruntime| in LSB per output, arrays [frames, channels]."""
    same_state: dict[str, np.ndarray]
    rollout: dict[str, np.ndarray]

    def summary(self) -> str:
        lines = [f"{'':10s} {'output':8s} {'max':>4s} {'mean':>6s} {'≤1 LSB':>8s} {'mean, 1st/2nd half':>20s}"]
        for kind, table in (("same state", self.same_state), ("rollout", self.rollout)):
            for name, d in table.items():
                half = len(d) // 2
                lines.append(f"{kind:10s} {name:8s} {int(d.max()):4d} {d.mean():6.3f} {np.mean(d <= 1):8.2%} "
                             f"{d[:half].mean():9.3f} / {d[half:].mean():.3f}")
        return "\n".join(lines)


def compare_with_onnxruntime(model_path, reference: HostReference, frames: np.ndarray) -> Agreement:
    """``frames``: int8 [T, 1, n_bins] model inputs; onnxruntime runs the QDQ file at basic optimization."""
    runner = StepRunner(model_path)
    pairs = streaming_state_pairs(reference.graph)
    outputs = reference.graph.outputs
    same = {o: [] for o in outputs}
    rollout = {o: [] for o in outputs}
    ours = theirs = runner.initial_state()
    for frame in frames:
        host = reference.run({"frame": frame, **ours})
        for table, state in ((same, ours), (rollout, theirs)):
            mask, new_state = runner.step(frame, state)
            ort = {"mask": mask, **{f"{k}_out": v for k, v in new_state.items()}}
            for o in outputs:
                table[o].append(np.abs(host[o].astype(np.int32) - ort[o])[0])
            if table is rollout:
                theirs = new_state
        ours = {i: host[o] for i, o in pairs.items()}
    as_arrays = lambda t: {k: np.stack(v) for k, v in t.items()}
    return Agreement(as_arrays(same), as_arrays(rollout))
