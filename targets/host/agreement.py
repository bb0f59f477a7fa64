"""How closely the host reference follows onnxruntime on a QDQ step model, on real input.

Two measurements over a sequence of int8 frames:

- **rollout**: each side carries its own state from zero, as two devices would; the per-frame
  deviation of every output shows whether differences accumulate through the recurrence;
- **same state**: every frame, both sides are given the host's state; the deviation then comes from
  that single step only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvmse.onnx_runtime import StepRunner
from tvmse.targets.host.reference import HostReference, streaming_state_pairs


@dataclass
class Agreement:
    """Per-frame maximum |host − onnxruntime| in LSB, per output: arrays of shape [frames]."""
    rollout: dict[str, np.ndarray]
    same_state: dict[str, np.ndarray]
    rollout_mean: dict[str, np.ndarray]  # per-frame mean |Δ| (LSB), per output

    def summary(self) -> str:
        lines = []
        for kind, table in (("same state", self.same_state), ("rollout", self.rollout)):
            for name, d in table.items():
                lines.append(f"{kind:10s} {name:8s} max {int(d.max())} LSB, frames with Δ ≤ 1: "
                             f"{np.mean(d <= 1):.1%}, first/second half max {int(d[:len(d) // 2].max())}/"
                             f"{int(d[len(d) // 2:].max())}")
        return "\n".join(lines)


def compare_with_onnxruntime(model_path, reference: HostReference, frames: np.ndarray) -> Agreement:
    """``frames``: int8 [T, 1, n_bins] model inputs."""
    runner = StepRunner(model_path)
    pairs = streaming_state_pairs(reference.graph)
    outputs = reference.graph.outputs
    rollout = {o: [] for o in outputs}
    rollout_mean = {o: [] for o in outputs}
    same = {o: [] for o in outputs}
    ours = theirs = runner.initial_state()
    for frame in frames:
        host = reference.run({"frame": frame, **ours})
        mask, state = runner.step(frame, theirs)
        ort_out = {"mask": mask, **{f"{k}_out": v for k, v in state.items()}}
        mask_same, state_from_ours = runner.step(frame, ours)
        ort_same = {"mask": mask_same, **{f"{k}_out": v for k, v in state_from_ours.items()}}
        for o in outputs:
            d = np.abs(host[o].astype(np.int32) - ort_out[o])
            rollout[o].append(int(d.max()))
            rollout_mean[o].append(float(d.mean()))
            same[o].append(int(np.abs(host[o].astype(np.int32) - ort_same[o]).max()))
        ours = {i: host[o] for i, o in pairs.items()}
        theirs = state
    as_arrays = lambda t: {k: np.asarray(v) for k, v in t.items()}
    return Agreement(as_arrays(rollout), as_arrays(same), as_arrays(rollout_mean))
