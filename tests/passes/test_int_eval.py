"""The numpy evaluator used by the property tests equals the host reference (TVM) bit for bit."""

from __future__ import annotations

import numpy as np

from tests.passes import int_eval
from tests.passes.graphs import assert_same_rollout, lstm_graph
from tvmse.targets.host import HostReference


def test_numpy_evaluator_matches_host_reference(small_graph):
    rng = np.random.default_rng(0)
    assert_same_rollout(HostReference(small_graph).run, small_graph,
                        lambda x: int_eval.run(small_graph, x), small_graph, rng, frames=4)


def test_numpy_evaluator_matches_host_reference_on_test_graphs():
    rng = np.random.default_rng(1)
    graph = lstm_graph(rng, 5, [6, 4], 3)
    assert_same_rollout(HostReference(graph).run, graph, lambda x: int_eval.run(graph, x), graph, rng, frames=4)
