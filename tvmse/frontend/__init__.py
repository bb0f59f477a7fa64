"""Frontend: a model file → TVM Relax → tvmse's integer form (tvmse.ir).

``load(path)`` reads an int8 QDQ ONNX file, checks it (all problems reported at once, with node
names), imports it with TVM's ONNX frontend (constants bound) and canonicalizes the fake-quant
graph into the integer form.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from tvmse.frontend.onnx_checks import load_onnx
from tvmse.frontend.qdq_to_integer import qdq_to_integer
from tvmse.ir import IntegerGraph


def import_onnx(model: onnx.ModelProto):
    """ONNX → Relax with weights bound as constants (TVM's importer).

    Returns the module and the ONNX tensor name of every bound Relax variable that computes one,
    so integer ops keep the source model's names (the importer emits values in the order they are
    used, not in the file's node order, so names cannot be matched by position).
    """
    from tvm.relax.frontend.onnx.onnx_frontend import ONNXGraphImporter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    importer = ONNXGraphImporter({}, {}, keep_params_in_input=False, sanitize=True)
    mod = importer.from_onnx(model.graph, opset)
    by_expr = {}
    for name, expr in importer._nodes.items():   # the importer's ONNX name → Relax expression table
        by_expr.setdefault(expr, name)
    names = {}
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            name = by_expr.get(binding.value) or by_expr.get(binding.var)
            if name is not None:
                names[binding.var] = name
    return mod, names


def load(path: str | Path) -> IntegerGraph:
    model = load_onnx(path)
    mod, names = import_onnx(model)
    return qdq_to_integer(mod, names)
