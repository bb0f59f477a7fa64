"""Every op kind of the integer form compiled for the Cortex-M55 (lower → glue → C) runs bit-exactly on QEMU.

One network holds the small graph of every kind in ``tests.op_graphs.KINDS`` side by side (many inputs and
outputs, so it also exercises ``tvmse_run``'s pointer-array API): one build, one emulated run.
Needs the Debian toolchain (scripts/install_system_packages.sh); a missing tool fails naming its package.
"""

import numpy as np

from tests.op_graphs import KINDS, op_graph
from tests.passes.graphs import side_by_side
from tvmse.targets.cortex_m import emulate, glue, lower
from tvmse.targets.host import HostReference


def test_every_op_kind_is_bit_exact_on_the_cortex_m55(tmp_path):
    graph = side_by_side([op_graph(kind, seed=0) for kind in KINDS])
    network = lower.lower(graph)
    generated = glue.generate(network)
    assert not generated.interface.streaming and len(generated.interface.inputs) == len(graph.inputs)
    header = generated.files["tvmse_model.h"]
    assert "int tvmse_run(" in header and "tvmse_step" not in header
    glue.write(generated, tmp_path / "src")
    rng = np.random.default_rng(0)
    frames = {t.name: rng.integers(-128, 128, (3, *t.shape), dtype=np.int8) for t in graph.inputs}
    run = emulate.run_on_qemu(network, generated, tmp_path / "src", HostReference(graph), frames, tmp_path / "work")
    assert run.bit_exact and run.frames == 3
    assert {k["kind"] for k in run.kernels} == {op.kind for op in graph.ops} - {"constant"}
    assert {"softmax", "mean", "rsqrt", "conv_2d", "depthwise_conv_2d"} <= {op.kind for op in graph.ops}
