"""The numpy evaluator used by the property tests equals the host reference (TVM) bit for bit."""

from __future__ import annotations

import numpy as np

from tests.op_graphs import KINDS, op_graph
from tests.passes import int_eval
from tests.passes.graphs import assert_same_rollout, side_by_side


def test_numpy_evaluator_matches_host_reference(small_graph, small_reference):
    rng = np.random.default_rng(0)
    assert_same_rollout(small_reference.run, small_graph, lambda x: int_eval.run(small_graph, x), small_graph, rng,
                        frames=4)


def test_numpy_evaluator_matches_host_reference_on_every_op_kind():
    from tvmse.targets.host import HostReference
    rng = np.random.default_rng(2)
    graph = side_by_side([op_graph(kind, seed=3) for kind in KINDS])
    reference = HostReference(graph)
    for _ in range(3):
        x = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs}
        expected, got = reference.run(x), int_eval.run(graph, x)
        for name in graph.outputs:
            kind = KINDS[int(name.split("/")[0][1:])]
            np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{name} ({kind})")
